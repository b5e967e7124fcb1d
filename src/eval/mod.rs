//! Evaluation: metrics against ground truth, registration, and the `ptycho compare` pipeline.

pub mod compare;
pub mod image;
pub mod metrics;
pub mod plot;
pub mod register;
pub mod report;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EvalError {
    /// Images that cannot be scored; the message says why.
    #[error("{0}")]
    Unscorable(String),

    /// A reconstruction or truth file that cannot be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

impl From<String> for EvalError {
    fn from(message: String) -> Self {
        EvalError::Unscorable(message)
    }
}
