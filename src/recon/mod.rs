//! Iterative reconstruction (study phase F): engines that refine an object (and optionally the probe)
//! against measured diffraction amplitudes by repeated passes over the scan, on the same physics ops
//! as training (extraction, probe, far field and their adjoints) and on either backend.
//!
//! This module holds what every engine shares: the scan an engine reads ([`Scan`]), the estimate it
//! refines ([`Estimate`]), the [`Engine`] trait, and [`run`], the epoch loop that records each
//! epoch's cost and time and stops at the first non-finite cost with the last good estimate kept.
//! `device.rs` holds the scan and the estimate on the backend, in batches; the engines are
//! `lsqml.rs` (least-squares maximum likelihood, Odstrčil et al. 2018), `pie.rs` (ePIE and rPIE) and
//! `dm.rs` (difference map); `reconstruct.rs` is `ptycho reconstruct`.
//!
//! The forward model is the simulator's: the measured amplitude of pattern j is |FFT(P · O_j)| / N,
//! zero frequency at the centre, where O_j is the N x N patch of the object centred on position j
//! (bilinear, zero outside).

pub mod device;
pub mod dm;
pub mod lsqml;
pub mod pie;
pub mod reconstruct;

use std::time::Instant;

use ptycho_kernels::{Backend, KernelError};
use serde::Serialize;
use thiserror::Error;

use crate::physics::image::ComplexImage;
use crate::study::simulate::check_patches_fit;

#[derive(Debug, Error)]
pub enum ReconError {
    #[error(transparent)]
    Kernel(#[from] KernelError),

    #[error(transparent)]
    Data(#[from] crate::data::DataError),

    #[error(transparent)]
    Persist(#[from] crate::persist::PersistError),

    /// An output that could not be written.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },

    #[error("scan: {0}")]
    Scan(String),

    #[error(
        "{engine}: the cost is {cost} at epoch {epoch}; the estimate of epoch {last_good} is kept"
    )]
    Diverged {
        engine: &'static str,
        epoch: usize,
        cost: f64,
        last_good: usize,
    },
}

/// The measurements an engine reconstructs from.
pub struct Scan<'a> {
    /// Pattern (and probe) side N.
    pub n: usize,
    /// Measured amplitudes √I, (M, N, N) row-major, unshifted (zero frequency at the centre).
    pub amplitudes: &'a [f32],
    /// Patch centres (x, y) in object pixels, one per pattern.
    pub positions: &'a [[f64; 2]],
}

impl Scan<'_> {
    pub fn patterns(&self) -> usize {
        self.positions.len()
    }

    /// Checks that every engine relies on, before any work starts.
    pub fn check(&self, estimate: &Estimate) -> Result<(), ReconError> {
        let (n, m) = (self.n, self.patterns());
        if m == 0 {
            return Err(ReconError::Scan("no patterns".into()));
        }
        if self.amplitudes.len() != m * n * n {
            return Err(ReconError::Scan(format!(
                "{} amplitude values for {m} positions of {n} x {n} patterns",
                self.amplitudes.len()
            )));
        }
        if let Some(i) = self
            .amplitudes
            .iter()
            .position(|a| !a.is_finite() || *a < 0.0)
        {
            return Err(ReconError::Scan(format!(
                "pattern {} holds {}, not a finite amplitude ≥ 0",
                i / (n * n),
                self.amplitudes[i]
            )));
        }
        if estimate.probe.shape() != [n, n] {
            return Err(ReconError::Scan(format!(
                "the probe is {:?}, the patterns {n} x {n}",
                estimate.probe.shape()
            )));
        }
        let (x, y): (Vec<f64>, Vec<f64>) = self.positions.iter().map(|p| (p[0], p[1])).unzip();
        check_patches_fit(&x, &y, n, estimate.object.rows, estimate.object.cols)
            .map_err(|e| ReconError::Scan(e.to_string()))
    }
}

/// What an engine refines.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub object: ComplexImage,
    pub probe: ComplexImage,
}

/// An iterative engine holding its scan and estimate on a backend: one call of [`Engine::epoch`] is
/// one pass over every pattern.
pub trait Engine<B: Backend> {
    fn name(&self) -> &'static str;

    /// One pass over the scan; returns the epoch's cost: the mean over every pattern pixel of
    /// (|FFT(P · O_j)| / N − measured amplitude)², before the epoch's updates.
    fn epoch(&mut self, b: &B) -> Result<f64, ReconError>;

    /// The current estimate, read back from the backend.
    fn estimate(&self, b: &B) -> Result<Estimate, ReconError>;

    /// The scan positions (x, y) as the engine now has them: the input's, unless it corrects them.
    fn positions(&self) -> Vec<[f64; 2]>;
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub cost: f64,
    pub seconds: f64,
}

/// What a run made: the estimate after the last epoch with a finite cost, every epoch's record, and,
/// when the cost stopped being finite, that error.
pub struct Reconstruction {
    pub estimate: Estimate,
    /// The positions of that epoch (corrected, when the engine corrects them).
    pub positions: Vec<[f64; 2]>,
    pub history: Vec<EpochRecord>,
    pub diverged: Option<ReconError>,
}

/// `epochs` passes of `engine`. `on_epoch` sees each record as it is made (progress bars, logs). A
/// non-finite cost ends the run early with [`Reconstruction::diverged`] set, keeping the estimate of
/// the last epoch whose cost was finite (read back after every epoch, so nothing good is lost).
pub fn run<B: Backend, E: Engine<B> + ?Sized>(
    engine: &mut E,
    b: &B,
    epochs: usize,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<Reconstruction, ReconError> {
    let mut estimate = engine.estimate(b)?;
    let mut positions = engine.positions();
    let mut history = Vec::with_capacity(epochs);
    for epoch in 1..=epochs {
        let start = Instant::now();
        let cost = engine.epoch(b)?;
        let after = engine.estimate(b)?;
        let finite = |image: &ComplexImage| {
            image
                .data
                .iter()
                .all(|v| v.re.is_finite() && v.im.is_finite())
        };
        if !cost.is_finite() || !finite(&after.object) || !finite(&after.probe) {
            return Ok(Reconstruction {
                estimate,
                positions,
                history,
                diverged: Some(ReconError::Diverged {
                    engine: engine.name(),
                    epoch,
                    cost,
                    last_good: epoch - 1,
                }),
            });
        }
        estimate = after;
        positions = engine.positions();
        let record = EpochRecord {
            epoch,
            cost,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        history.push(record);
    }
    Ok(Reconstruction {
        estimate,
        positions,
        history,
        diverged: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptycho_kernels::cpu::CpuBackend;
    use ptycho_kernels::Complex32;

    /// Halves its object towards zero each epoch; its cost turns NaN at epoch `fail_at`.
    struct Halving {
        estimate: Estimate,
        epochs: usize,
        fail_at: usize,
    }

    impl Engine<CpuBackend> for Halving {
        fn name(&self) -> &'static str {
            "halving"
        }

        fn epoch(&mut self, _: &CpuBackend) -> Result<f64, ReconError> {
            self.epochs += 1;
            self.estimate.object.data.iter_mut().for_each(|v| *v *= 0.5);
            Ok(if self.epochs >= self.fail_at {
                f64::NAN
            } else {
                1.0 / self.epochs as f64
            })
        }

        fn estimate(&self, _: &CpuBackend) -> Result<Estimate, ReconError> {
            Ok(self.estimate.clone())
        }

        fn positions(&self) -> Vec<[f64; 2]> {
            vec![[1.0, 2.0]]
        }
    }

    #[test]
    fn a_non_finite_cost_ends_the_run_keeping_the_last_good_epoch() {
        let mut engine = Halving {
            estimate: Estimate {
                object: ComplexImage::filled(2, 2, Complex32::new(1.0, 0.0)),
                probe: ComplexImage::filled(1, 1, Complex32::new(1.0, 0.0)),
            },
            epochs: 0,
            fail_at: 3,
        };
        let mut seen = Vec::new();
        let result = run(&mut engine, &CpuBackend::new(), 5, |r| seen.push(r.epoch)).unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(result.history.len(), 2);
        // Two halvings: the estimate of epoch 2, not of the diverged epoch 3.
        assert_eq!(result.estimate.object.data[0], Complex32::new(0.25, 0.0));
        assert!(matches!(
            result.diverged,
            Some(ReconError::Diverged {
                epoch: 3,
                last_good: 2,
                ..
            })
        ));
    }
}
