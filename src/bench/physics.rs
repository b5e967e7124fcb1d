//! `ptycho bench physics`: the whole forward model (merge, trim, extraction, probe, far field) and its
//! backward pass for B·C patterns, next to the FFT alone on the same patterns in the same run, so that
//! the ratio says what the non-FFT work costs. Each timed repetition is recorded into one submission.

use std::time::Duration;

use super::{BenchError, During};
use serde::Serialize;

use ptycho_kernels::cpu::CpuBackend;
use ptycho_kernels::ops::loss::LossKind;
use ptycho_kernels::ops::BackendKind;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32, FftDirection, FftShift};

use super::median_seconds_per_rep;
use crate::physics::forward::{default_canvas_size, mean_loss_grad, ForwardConfig, ForwardModel};
use crate::physics::merge::relative_tensor;
use crate::physics::probe::{default_probe, normalize, DEFAULT_PROBE_SCALE};

#[derive(Clone, Debug)]
pub struct PhysicsBenchConfig {
    pub n: usize,
    /// B·C, the patterns per step.
    pub patterns: usize,
    pub gridsizes: Vec<usize>,
    pub quick: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhysicsTiming {
    pub gridsize: usize,
    pub groups: usize,
    pub canvas: usize,
    pub forward_ms: f64,
    pub forward_backward_ms: f64,
    pub forward_patterns_per_s: f64,
    pub forward_backward_patterns_per_s: f64,
    /// Forward time / the time of one FFT pass over the same patterns.
    pub forward_over_fft: f64,
    /// Forward + backward time / the time of two FFT passes (the forward's and the backward's).
    pub forward_backward_over_two_ffts: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhysicsBenchReport {
    pub device: String,
    pub n: usize,
    pub patterns: usize,
    pub fft_ms: f64,
    pub results: Vec<PhysicsTiming>,
    /// The same on the CPU backend, when the device is a GPU.
    pub cpu: Option<Box<PhysicsBenchReport>>,
}

pub fn run<B: Backend>(
    b: &B,
    config: &PhysicsBenchConfig,
) -> Result<PhysicsBenchReport, BenchError> {
    let n = config.n;
    let (target, samples) = if config.quick {
        (Duration::from_millis(150), 3)
    } else {
        (Duration::from_millis(1000), 5)
    };
    let mut rng = SplitMix64::new(77);
    let probe = normalize(&default_probe(n, 1.0), n, DEFAULT_PROBE_SCALE)?;
    let psi = b.upload_c64(
        &[config.patterns, n, n],
        &rng.complex_vec(config.patterns * n * n),
    )?;
    let (fft_seconds, _) = median_seconds_per_rep(target, samples, |reps| {
        for _ in 0..reps {
            b.fft2(&psi, FftDirection::Forward, FftShift::OUTPUT)?;
        }
        b.synchronize()?;
        Ok(())
    })
    .during("timing the FFT")?;
    drop(psi);

    let mut results = Vec::new();
    for &gridsize in &config.gridsizes {
        let c = gridsize * gridsize;
        if !config.patterns.is_multiple_of(c) {
            return Err(BenchError::Invalid(format!(
                "{} patterns do not split into groups of {c}",
                config.patterns
            )));
        }
        let groups = config.patterns / c;
        let canvas = default_canvas_size(n, gridsize);
        let model = ForwardModel::new(
            b,
            &probe,
            n,
            ForwardConfig {
                canvas,
                object_big: true,
                probe_mask: false,
                intensity_scale: 100.0,
                separate_ring: false,
            },
        )?;
        let patches: Vec<Complex32> = (0..config.patterns * n * n)
            .map(|i| {
                let (r, col) = ((i / n) % n, i % n);
                let inside = (n / 4..3 * n / 4).contains(&r) && (n / 4..3 * n / 4).contains(&col);
                if inside {
                    Complex32::from_polar(
                        0.75 + 0.25 * rng.next_symmetric_f32(),
                        rng.next_symmetric_f32(),
                    )
                } else {
                    Complex32::default()
                }
            })
            .collect();
        let patches = b.upload_c64(&[groups, c, n, n], &patches)?;
        let offsets: Vec<[f32; 2]> = (0..groups * c)
            .map(|_| {
                if c == 1 {
                    [0.0, 0.0]
                } else {
                    [
                        4.0 * rng.next_symmetric_f32(),
                        4.0 * rng.next_symmetric_f32(),
                    ]
                }
            })
            .collect();
        let rel = relative_tensor(b, &offsets)?;
        let target_amplitude = b.upload_f32(
            &[groups, c, n, n],
            &(0..config.patterns * n * n)
                .map(|_| 10.0 * (1.0 + rng.next_symmetric_f32()))
                .collect::<Vec<f32>>(),
        )?;
        let (forward_seconds, _) = median_seconds_per_rep(target, samples, |reps| {
            for _ in 0..reps {
                model.forward(b, &patches, &rel, c)?;
            }
            b.synchronize()?;
            Ok(())
        })
        .during(format!("timing the forward at gridsize {gridsize}"))?;
        let (both_seconds, _) = median_seconds_per_rep(target, samples, |reps| {
            for _ in 0..reps {
                let pass = model.forward(b, &patches, &rel, c)?;
                let grad =
                    mean_loss_grad(b, LossKind::Poisson, pass.amplitude(), &target_amplitude)?;
                model.backward(b, &pass, &rel, &grad)?;
            }
            b.synchronize()?;
            Ok(())
        })
        .during(format!("timing forward + backward at gridsize {gridsize}"))?;
        results.push(PhysicsTiming {
            gridsize,
            groups,
            canvas,
            forward_ms: forward_seconds * 1e3,
            forward_backward_ms: both_seconds * 1e3,
            forward_patterns_per_s: config.patterns as f64 / forward_seconds,
            forward_backward_patterns_per_s: config.patterns as f64 / both_seconds,
            forward_over_fft: forward_seconds / fft_seconds,
            forward_backward_over_two_ffts: both_seconds / (2.0 * fft_seconds),
        });
    }
    let cpu = if b.kind() == BackendKind::Gpu {
        Some(Box::new(run(&CpuBackend::new(), config)?))
    } else {
        None
    };
    Ok(PhysicsBenchReport {
        device: b.describe(),
        n,
        patterns: config.patterns,
        fft_ms: fft_seconds * 1e3,
        results,
        cpu,
    })
}

impl PhysicsBenchReport {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "physics chain, {} patterns of {n}x{n} per step\ndevice: {}\n  FFT alone: {:.3} ms\n",
            self.patterns,
            self.device,
            self.fft_ms,
            n = self.n
        );
        for r in &self.results {
            s += &format!(
                "  gridsize {} ({} groups, canvas {}): forward {:.3} ms ({:.0} patterns/s, {:.2}x the FFT); \
                 forward+backward {:.3} ms ({:.0} patterns/s, {:.2}x two FFTs)\n",
                r.gridsize,
                r.groups,
                r.canvas,
                r.forward_ms,
                r.forward_patterns_per_s,
                r.forward_over_fft,
                r.forward_backward_ms,
                r.forward_backward_patterns_per_s,
                r.forward_backward_over_two_ffts
            );
        }
        if let Some(cpu) = &self.cpu {
            s += &cpu.to_text();
            for (g, c) in self.results.iter().zip(&cpu.results) {
                s += &format!(
                    "  gridsize {}: forward+backward GPU time / CPU backend time {:.3}\n",
                    g.gridsize,
                    g.forward_backward_ms / c.forward_backward_ms
                );
            }
        }
        s
    }
}
