//! Iterative reconstruction (study phase F): engines that refine an object (and optionally the probe)
//! against measured diffraction amplitudes by repeated passes over the scan, on the same physics ops
//! as training (extraction, probe, far field and their adjoints) and on either backend.
//!
//! This module holds what every engine shares: the scan an engine reads ([`Scan`]), the estimate it
//! refines ([`Estimate`]), the [`Engine`] trait, and [`run`], the epoch loop that checks the inputs
//! before the first pass, records each epoch's cost and time, and stops at the first non-finite cost
//! with the last good estimate intact. The engines themselves (LSQML, ePIE/rPIE, DM) each get their
//! own module here, and `ptycho reconstruct` drives them through [`run`].

use std::time::Instant;

use ptycho_kernels::{Backend, KernelError};
use serde::Serialize;
use thiserror::Error;

use crate::physics::image::ComplexImage;

#[derive(Debug, Error)]
pub enum ReconError {
    #[error(transparent)]
    Kernel(#[from] KernelError),

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
        let (rows, cols) = (estimate.object.rows as f64, estimate.object.cols as f64);
        let half = n as f64 / 2.0;
        if let Some(i) = self.positions.iter().position(|&[x, y]| {
            !(x.is_finite() && y.is_finite())
                || x - half < 0.0
                || y - half < 0.0
                || x + half > cols
                || y + half > rows
        }) {
            let [x, y] = self.positions[i];
            return Err(ReconError::Scan(format!(
                "position {i} ({x}, {y}) puts its {n} x {n} patch outside the {} x {} object",
                estimate.object.rows, estimate.object.cols
            )));
        }
        Ok(())
    }
}

/// What an engine refines.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub object: ComplexImage,
    pub probe: ComplexImage,
}

/// An iterative engine: one call of [`Engine::epoch`] is one pass over every pattern of the scan.
pub trait Engine<B: Backend> {
    fn name(&self) -> &'static str;

    /// Refine `estimate` with one pass over `scan`; returns the epoch's cost (the engine's own
    /// data-fidelity measure, lower is better).
    fn epoch(
        &mut self,
        backend: &B,
        scan: &Scan<'_>,
        estimate: &mut Estimate,
    ) -> Result<f64, ReconError>;
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub cost: f64,
    pub seconds: f64,
}

/// `epochs` passes of `engine` over `scan`, starting from and refining `estimate`. `on_epoch` sees each
/// record as it is made (progress bars, logs). A non-finite cost stops the run with
/// [`ReconError::Diverged`], leaving `estimate` as the last epoch with a finite cost made it.
pub fn run<B: Backend, E: Engine<B>>(
    engine: &mut E,
    backend: &B,
    scan: &Scan<'_>,
    estimate: &mut Estimate,
    epochs: usize,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<Vec<EpochRecord>, ReconError> {
    scan.check(estimate)?;
    let mut history = Vec::with_capacity(epochs);
    for epoch in 1..=epochs {
        let start = Instant::now();
        let before = estimate.clone();
        let cost = engine.epoch(backend, scan, estimate)?;
        if !cost.is_finite() {
            *estimate = before;
            return Err(ReconError::Diverged {
                engine: engine.name(),
                epoch,
                cost,
                last_good: epoch - 1,
            });
        }
        let record = EpochRecord {
            epoch,
            cost,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        history.push(record);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptycho_kernels::cpu::CpuBackend;
    use ptycho_kernels::Complex32;

    /// Moves the object halfway to a target each epoch; its cost is the squared distance, and it
    /// reports NaN from epoch `fail_at` on.
    struct Halfway {
        target: Complex32,
        fail_at: usize,
        epochs: usize,
    }

    impl<B: Backend> Engine<B> for Halfway {
        fn name(&self) -> &'static str {
            "halfway"
        }

        fn epoch(
            &mut self,
            _: &B,
            _: &Scan<'_>,
            estimate: &mut Estimate,
        ) -> Result<f64, ReconError> {
            self.epochs += 1;
            for v in &mut estimate.object.data {
                *v = (*v + self.target) * 0.5;
            }
            if self.epochs >= self.fail_at {
                return Ok(f64::NAN);
            }
            Ok(estimate
                .object
                .data
                .iter()
                .map(|v| (*v - self.target).norm_sqr() as f64)
                .sum())
        }
    }

    fn fixture() -> (Vec<f32>, Vec<[f64; 2]>, Estimate) {
        let n = 4;
        let estimate = Estimate {
            object: ComplexImage::filled(8, 8, Complex32::new(1.0, 0.0)),
            probe: ComplexImage::filled(n, n, Complex32::new(1.0, 0.0)),
        };
        (vec![1.0; 2 * n * n], vec![[2.0, 2.0], [6.0, 6.0]], estimate)
    }

    #[test]
    fn the_loop_records_every_epoch_and_keeps_the_last_good_estimate_on_divergence() {
        let (amplitudes, positions, mut estimate) = fixture();
        let scan = Scan {
            n: 4,
            amplitudes: &amplitudes,
            positions: &positions,
        };
        let target = Complex32::new(0.0, 1.0);
        let mut seen = Vec::new();
        let mut engine = Halfway {
            target,
            fail_at: usize::MAX,
            epochs: 0,
        };
        let history = run(
            &mut engine,
            &CpuBackend::new(),
            &scan,
            &mut estimate,
            3,
            |r| seen.push(r.epoch),
        )
        .unwrap();
        assert_eq!(seen, vec![1, 2, 3]);
        assert!(history.windows(2).all(|w| w[1].cost < w[0].cost));

        let (_, _, mut estimate) = fixture();
        let mut engine = Halfway {
            target,
            fail_at: 3,
            epochs: 0,
        };
        let err = run(
            &mut engine,
            &CpuBackend::new(),
            &scan,
            &mut estimate,
            5,
            |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ReconError::Diverged {
                    epoch: 3,
                    last_good: 2,
                    ..
                }
            ),
            "{err}"
        );
        // Two halvings from 1 towards i: the estimate of epoch 2.
        assert_eq!(estimate.object.data[0], Complex32::new(0.25, 0.75));
    }

    #[test]
    fn a_scan_that_does_not_fit_its_estimate_is_refused_before_the_first_epoch() {
        let (amplitudes, _, mut estimate) = fixture();
        let outside = [[2.0, 2.0], [7.0, 6.0]];
        let scan = Scan {
            n: 4,
            amplitudes: &amplitudes,
            positions: &outside,
        };
        let mut engine = Halfway {
            target: Complex32::new(0.0, 0.0),
            fail_at: usize::MAX,
            epochs: 0,
        };
        let err = run(
            &mut engine,
            &CpuBackend::new(),
            &scan,
            &mut estimate,
            1,
            |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("position 1 (7, 6)"), "{err}");
        assert_eq!(engine.epochs, 0);

        let mut negative = amplitudes.clone();
        negative[20] = -1.0;
        let scan = Scan {
            n: 4,
            amplitudes: &negative,
            positions: &[[2.0, 2.0], [6.0, 6.0]],
        };
        let err = scan.check(&estimate).unwrap_err();
        assert!(err.to_string().contains("pattern 1 holds -1"), "{err}");
    }
}
