//! The data layer: NPZ files (memory-mapped), the DATA-001 contract, datasets of shards, grouping and
//! normalisation, and batch streaming.

pub mod canonical;
pub mod checked;
pub mod contract;
pub mod dataset;
pub mod grouping;
pub mod stream;
pub mod subset;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{file}: {message}")]
    Format { file: String, message: String },

    /// The I/O error is part of the message and not also a `source`, or a report of the error's
    /// chain (anyhow's `{:#}`) would print it twice.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },

    #[error("{file}: key '{key}': expected {expected}, found {found} (keys present: {present})")]
    Contract {
        file: String,
        key: String,
        expected: String,
        found: String,
        present: String,
    },

    #[error("{0}")]
    Grouping(String),

    #[error("batch stream: {0}")]
    Stream(String),
}

impl DataError {
    pub(crate) fn format(file: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        DataError::Format {
            file: file.to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn io(file: impl std::fmt::Display, source: std::io::Error) -> Self {
        DataError::Io {
            file: file.to_string(),
            error: source,
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
