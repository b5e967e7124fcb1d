//! Benchmarks behind `ptycho bench`. They report ratios measured in one run on one adapter (kernel
//! bandwidth against a copy kernel, GPU against the CPU backend), since absolute times on shared or
//! software devices say little.

pub mod fft;
pub mod infer;
pub mod io;
pub mod physics;
pub mod profile;
pub mod recon;
pub mod train;

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::data::DataError;
use crate::model::ModelError;
use crate::physics::PhysicsError;
use crate::train::TrainError;
use ptycho_kernels::KernelError;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Kernel(#[from] KernelError),

    #[error(transparent)]
    Data(#[from] DataError),

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error(transparent)]
    Physics(#[from] PhysicsError),

    #[error(transparent)]
    Study(Box<crate::study::StudyError>),

    #[error(transparent)]
    Train(Box<TrainError>),

    #[error(transparent)]
    Recon(Box<crate::recon::ReconError>),

    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },

    /// What the benchmark was doing when `cause` happened. `cause` is part of the message and not a
    /// `source`, so that a report of the chain does not print it twice.
    #[error("{what}: {cause}")]
    During {
        what: String,
        cause: Box<BenchError>,
    },

    /// Settings a benchmark cannot run with.
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::study::StudyError> for BenchError {
    fn from(error: crate::study::StudyError) -> Self {
        BenchError::Study(Box::new(error))
    }
}

impl From<TrainError> for BenchError {
    fn from(error: TrainError) -> Self {
        BenchError::Train(Box::new(error))
    }
}

impl From<crate::recon::ReconError> for BenchError {
    fn from(error: crate::recon::ReconError) -> Self {
        BenchError::Recon(Box::new(error))
    }
}

impl BenchError {
    fn io(file: &std::path::Path, error: std::io::Error) -> Self {
        BenchError::Io {
            file: file.display().to_string(),
            error,
        }
    }
}

/// `.during("timing the FFT")`: the step a failure happened in, in its message.
pub trait During<T> {
    fn during(self, what: impl Into<String>) -> Result<T, BenchError>;
}

impl<T, E: Into<BenchError>> During<T> for Result<T, E> {
    fn during(self, what: impl Into<String>) -> Result<T, BenchError> {
        self.map_err(|e| BenchError::During {
            what: what.into(),
            cause: Box::new(e.into()),
        })
    }
}

/// Median seconds per repetition of `run(reps)`, with `reps` chosen so that one sample lasts about
/// `target`, after one untimed warm-up run (pipeline compilation, first allocations). `run` must finish
/// (synchronise) all the work it starts.
pub fn median_seconds_per_rep(
    target: Duration,
    samples: usize,
    mut run: impl FnMut(usize) -> Result<(), BenchError>,
) -> Result<(f64, usize), BenchError> {
    run(1)?;
    let start = Instant::now();
    run(1)?;
    let once = start.elapsed().as_secs_f64().max(1e-6);
    let reps = ((target.as_secs_f64() / once).round() as usize).clamp(1, 10_000);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        run(reps)?;
        times.push(start.elapsed().as_secs_f64() / reps as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], reps))
}
