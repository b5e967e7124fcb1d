//! The study (study-pipeline.md): the phases that make and cut its data, and the orchestrator that
//! runs phases C→G over the dose × view × arm grid, headless and resumable.
//!
//! - `simulate`: phase C, diffraction of an object scanned by a probe at several doses, seeded Poisson
//!   noise, train/test splits and the run manifest.
//! - `overlap`: phase D, the dense/sparse overlap views cut from phase C's splits, with their metrics.
//! - `config`: the study's settings (study.toml); `plan`: its jobs and the hub layout; `record`: each
//!   job's record and when a job is done; `run`: running the plan; `compare`: phase G for one cell;
//!   `summary` and `report`: the manifests, the metrics summary, the report and its pictures;
//!   `slurm`: the plan as Slurm job arrays.
//!
//! Training (`train`), inference (`infer`), the iterative engines (`recon`) and the scoring (`eval`)
//! are the phases' workers and stay in their own modules.

pub mod compare;
pub mod config;
pub mod overlap;
pub mod plan;
pub mod record;
pub mod report;
pub mod run;
pub mod simulate;
pub mod slurm;
pub mod summary;

use thiserror::Error;

use crate::data::DataError;
use crate::physics::PhysicsError;
use ptycho_kernels::KernelError;

#[derive(Debug, Error)]
pub enum StudyError {
    #[error(transparent)]
    Kernel(#[from] KernelError),

    #[error(transparent)]
    Data(#[from] DataError),

    #[error(transparent)]
    Physics(#[from] PhysicsError),

    /// Settings or inputs a phase cannot run with; the message says which.
    #[error("{0}")]
    Input(String),
}
