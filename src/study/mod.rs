//! The study (study-pipeline.md): the phases that make and cut its data, and the place its orchestrator
//! will live.
//!
//! - `simulate`: phase C, diffraction of an object scanned by a probe at several doses, seeded Poisson
//!   noise, train/test splits and the run manifest.
//! - `overlap`: phase D, the dense/sparse overlap views cut from phase C's splits, with their metrics.
//!
//! Still to come here (the study issue): the orchestrator that runs phases C→G over the dose × overlap ×
//! model grid headless and resumable, its manifests, and Slurm job arrays beyond one machine. Training
//! (`train`), inference (`infer`), the iterative engines (`recon`) and the comparison (`eval`) are the
//! phases' workers and stay in their own modules.

pub mod overlap;
pub mod simulate;

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
