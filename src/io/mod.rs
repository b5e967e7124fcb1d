//! Files: the formats the data and the bundles are made of, and the one way every output is written.
//!
//! - `npy`, `npz`: numpy's array files, read memory-mapped; `npz_writer` writes archives numpy reads.
//! - `pickle`: the little of Python's pickle the reference's files need, read and written without
//!   executing anything.
//! - `atomic`: temporary file, fsync, rename, so that a crash never leaves a half-written output at its
//!   final path; every writer of the crate (NPZ, JSON, PNG, bundles) goes through it.
//!
//! Errors are the data layer's [`DataError`](crate::data::DataError), which names the file at fault;
//! the byte parsers return a [`FormatError`] the caller attaches the file to.

use thiserror::Error;

/// What a parser of bytes (an NPY header, a pickle, a size) found wrong, before the caller names the
/// file and key it came from.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl From<String> for FormatError {
    fn from(message: String) -> Self {
        FormatError(message)
    }
}

impl From<&str> for FormatError {
    fn from(message: &str) -> Self {
        FormatError(message.to_string())
    }
}

pub mod atomic;
pub mod npy;
pub mod npz;
pub mod npz_writer;
pub mod pickle;
