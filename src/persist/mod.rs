//! Persistence: trained models as `wts.h5.zip` bundles (HDF5 weights, JSON parameters, the probe, a
//! manifest with per-entry SHA-256) and their whole-file digests; the import of the reference's
//! TensorFlow bundles.

pub mod bundle;
pub mod digest;
pub mod output_dir;
pub mod reference;
pub mod weights;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PersistError {
    /// The I/O error is part of the message and not also a `source`, or a report of the error's
    /// chain (anyhow's `{:#}`) would print it twice.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },

    #[error("{file}: {message}")]
    Format { file: String, message: String },

    #[error("{0}")]
    Invalid(String),

    #[error("{file}: verification failed:\n  {}", problems.join("\n  "))]
    Verification { file: String, problems: Vec<String> },
}

impl PersistError {
    pub(crate) fn io(file: impl std::fmt::Display, source: std::io::Error) -> Self {
        PersistError::Io {
            file: file.to_string(),
            error: source,
        }
    }

    pub(crate) fn format(file: impl std::fmt::Display, message: impl Into<String>) -> Self {
        PersistError::Format {
            file: file.to_string(),
            message: message.into(),
        }
    }
}
