//! `ptycho bench reconstruct`: epochs of an iterative engine on a synthetic noiseless scan, as patterns
//! per second, with the CPU backend on the same scan when the device is a GPU, and the GPU's copy
//! bandwidth beside the epoch's effective bandwidth.
//!
//! The effective bandwidth counts the bytes an epoch cannot avoid moving: each pattern's measured
//! amplitudes once (4 N² bytes) and its two 2-D FFTs (a forward and an inverse, each a read and a
//! write of the complex N x N wave per axis: 4 · 8 N² bytes each). Everything else (extraction,
//! products, the scatter) comes on top, so the ratio to the copy bandwidth is a lower bound of how
//! close the engine runs to the memory system.

use std::time::{Duration, Instant};

use serde::Serialize;

use ptycho_kernels::cpu::CpuBackend;
use ptycho_kernels::ops::BackendKind;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32};

use super::{median_seconds_per_rep, BenchError, During};
use crate::physics::image::ComplexImage;
use crate::physics::probe::default_probe;
use crate::recon::reconstruct::{engine, Algorithm, ReconstructConfig};
use crate::recon::{Estimate, Scan};
use crate::study::simulate::{expected_intensity, synthetic_object};

#[derive(Clone, Debug)]
pub struct ReconBenchConfig {
    pub n: usize,
    pub patterns: usize,
    pub algorithm: Algorithm,
    pub batch_size: usize,
    /// Timed epochs, after one untimed one.
    pub epochs: usize,
    /// Skip the CPU backend's run when the device is a GPU.
    pub no_cpu: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct EpochTiming {
    pub device: String,
    pub seconds_per_epoch: f64,
    pub patterns_per_s: f64,
    pub effective_gb_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReconBenchReport {
    pub algorithm: Algorithm,
    pub n: usize,
    pub patterns: usize,
    pub object_size: usize,
    pub batch_size: usize,
    pub bytes_per_epoch: u64,
    pub device: EpochTiming,
    /// The CPU backend on the same scan, when the device is a GPU.
    pub cpu: Option<EpochTiming>,
    /// The GPU's copy kernel, GB/s (a read and a write).
    pub gpu_copy_gb_per_s: Option<f64>,
    pub device_over_copy_bandwidth: Option<f64>,
    pub cpu_time_over_device_time: Option<f64>,
    pub cpu_threads: usize,
}

/// Measured amplitudes, positions, and the starting estimate.
type SyntheticScan = (Vec<f32>, Vec<[f64; 2]>, Estimate);

/// A noiseless scan of the built-in object at random positions: amplitudes |FFT(P·O_j)| / N.
fn synthetic_scan(n: usize, patterns: usize) -> Result<SyntheticScan, BenchError> {
    let size = 4 * n;
    let object = synthetic_object(size, 11);
    let probe = ComplexImage::new(n, n, default_probe(n, 3.0));
    let mut rng = SplitMix64::new(5);
    let half = (n / 2) as f64;
    let span = size as f64 - n as f64 - 2.0;
    let positions: Vec<[f64; 2]> = (0..patterns)
        .map(|_| {
            [
                half + 1.0 + rng.next_f64() * span,
                half + 1.0 + rng.next_f64() * span,
            ]
        })
        .collect();
    let (x, y): (Vec<f64>, Vec<f64>) = positions.iter().map(|p| (p[0], p[1])).unzip();
    let amplitudes = expected_intensity(&CpuBackend::new(), &object, &probe.data, &x, &y, n)?
        .into_iter()
        .map(f32::sqrt)
        .collect();
    let estimate = Estimate {
        object: ComplexImage::filled(size, size, Complex32::new(1.0, 0.0)),
        probe,
    };
    Ok((amplitudes, positions, estimate))
}

fn time_epochs<B: Backend>(
    b: &B,
    scan: &Scan<'_>,
    estimate: &Estimate,
    config: &ReconBenchConfig,
    bytes: u64,
) -> Result<EpochTiming, BenchError> {
    let settings = ReconstructConfig {
        algorithm: config.algorithm,
        batch_size: config.batch_size,
        ..ReconstructConfig::default()
    };
    let mut engine = engine(b, scan, estimate, &settings)?;
    engine.epoch(b)?;
    b.synchronize()?;
    let start = Instant::now();
    for _ in 0..config.epochs.max(1) {
        engine.epoch(b)?;
    }
    b.synchronize()?;
    let seconds = start.elapsed().as_secs_f64() / config.epochs.max(1) as f64;
    Ok(EpochTiming {
        device: b.describe(),
        seconds_per_epoch: seconds,
        patterns_per_s: scan.patterns() as f64 / seconds,
        effective_gb_per_s: bytes as f64 / seconds / 1e9,
    })
}

pub fn run<B: Backend>(b: &B, config: &ReconBenchConfig) -> Result<ReconBenchReport, BenchError> {
    let (amplitudes, positions, estimate) =
        synthetic_scan(config.n, config.patterns).during("simulating the scan")?;
    let scan = Scan {
        n: config.n,
        amplitudes: &amplitudes,
        positions: &positions,
    };
    let nn = (config.n * config.n) as u64;
    let bytes = config.patterns as u64 * (4 * nn + 2 * 4 * 8 * nn);
    let device = time_epochs(b, &scan, &estimate, config, bytes).during("timing the device")?;
    let is_gpu = b.kind() == BackendKind::Gpu;
    let gpu_copy_gb_per_s = if is_gpu {
        let x = b.upload_c64(
            &[config.patterns, config.n, config.n],
            &vec![Complex32::default(); config.patterns * config.n * config.n],
        )?;
        let (seconds, _) = median_seconds_per_rep(Duration::from_millis(300), 3, |reps| {
            for _ in 0..reps {
                b.copy(&x)?;
            }
            b.synchronize()?;
            Ok(())
        })
        .during("timing the copy kernel")?;
        Some(2.0 * x.size_bytes() as f64 / seconds / 1e9)
    } else {
        None
    };
    let cpu = if is_gpu && !config.no_cpu {
        Some(
            time_epochs(&CpuBackend::new(), &scan, &estimate, config, bytes)
                .during("timing the CPU backend")?,
        )
    } else {
        None
    };
    Ok(ReconBenchReport {
        algorithm: config.algorithm,
        n: config.n,
        patterns: config.patterns,
        object_size: estimate.object.rows,
        batch_size: config.batch_size,
        bytes_per_epoch: bytes,
        device_over_copy_bandwidth: gpu_copy_gb_per_s.map(|c| device.effective_gb_per_s / c),
        cpu_time_over_device_time: cpu
            .as_ref()
            .map(|c| c.seconds_per_epoch / device.seconds_per_epoch),
        device,
        cpu,
        gpu_copy_gb_per_s,
        cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

impl ReconBenchReport {
    pub fn to_text(&self) -> String {
        let line = |t: &EpochTiming| {
            format!(
                "  {:<60} {:>8.1} ms/epoch {:>8.0} patterns/s {:>7.2} GB/s\n",
                t.device,
                t.seconds_per_epoch * 1e3,
                t.patterns_per_s,
                t.effective_gb_per_s
            )
        };
        let mut s = format!(
            "{} epochs: {} patterns of {n}x{n} on a {o}x{o} object, batch {}\n",
            self.algorithm.name(),
            self.patterns,
            self.batch_size,
            n = self.n,
            o = self.object_size,
        );
        s += &line(&self.device);
        if let Some(cpu) = &self.cpu {
            s += &line(cpu);
        }
        if let (Some(copy), Some(ratio)) = (self.gpu_copy_gb_per_s, self.device_over_copy_bandwidth)
        {
            s += &format!("  GPU copy kernel {copy:.2} GB/s; epoch / copy bandwidth {ratio:.3}\n");
        }
        if let Some(r) = self.cpu_time_over_device_time {
            s += &format!("  CPU backend time / GPU time: {r:.2}\n");
        }
        s
    }
}
