//! The forward physics of the PINN (physics-and-model.md §4–5), built from the kernels' ops, with the
//! backward pass of each step; the simulator (study phase C) and the overlap views (phase D).

pub mod farfield;
pub mod forward;
pub mod forward_npz;
pub mod image;
pub mod merge;
pub mod poisson;
pub mod probe;

use thiserror::Error;

use crate::data::DataError;
use ptycho_kernels::KernelError;

#[derive(Debug, Error)]
pub enum PhysicsError {
    #[error(transparent)]
    Kernel(#[from] KernelError),

    #[error(transparent)]
    Data(#[from] DataError),

    #[error("{0}")]
    Input(String),
}
