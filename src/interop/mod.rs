//! Files of the tools users already have: Ptychodus's product and diffraction files
//! (`ptychodus`), and conversions between them and this project's NPZ contract (`convert`).

pub mod convert;
pub mod ptychodus;

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum InteropError {
    /// A file that cannot be read or written as the format asks; the message names the file.
    #[error("{0}")]
    Invalid(String),

    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

impl InteropError {
    pub fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        InteropError::Invalid(format!("{}: {message}", path.display()))
    }
}
