//! `ptycho bench fft`: batched 2-D FFT throughput on the chosen adapter, next to a plain copy kernel on
//! the same adapter and the CPU backend (rustfft) on the same batch.

use std::time::Duration;

use super::{BenchError, During};
use serde::Serialize;

use ptycho_kernels::cpu::CpuBackend;
use ptycho_kernels::ops::BackendKind;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, FftDirection, FftShift, Tensor};

use super::median_seconds_per_rep;

#[derive(Clone, Debug)]
pub struct FftBenchConfig {
    pub n: usize,
    pub batch: usize,
    /// Short run: small sample time and few samples.
    pub quick: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Median wall-clock seconds for the whole batch.
    pub seconds_per_batch: f64,
    pub microseconds_per_transform: f64,
    /// Bytes the op must move (see `FftBenchReport::bytes_moved_*`) divided by the time, in GB/s.
    pub effective_gb_per_s: f64,
    /// Repetitions per timed sample.
    pub reps_per_sample: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct FftBenchReport {
    pub device: String,
    pub n: usize,
    pub batch: usize,
    pub array_bytes: u64,
    /// One read and one write of the array per axis pass: 4 x array bytes.
    pub bytes_moved_fft: u64,
    /// One read and one write: 2 x array bytes.
    pub bytes_moved_copy: u64,
    /// The FFT on the chosen device (the CPU backend when no GPU is in use).
    pub fft: Timing,
    /// The copy kernel on the GPU; absent on the CPU backend.
    pub gpu_copy: Option<Timing>,
    /// The CPU backend on the same batch; absent when the chosen device is the CPU backend (it is `fft`).
    pub cpu_fft: Option<Timing>,
    pub cpu_threads: usize,
    /// FFT effective bandwidth / copy bandwidth on the same adapter.
    pub fft_over_copy_bandwidth: Option<f64>,
    /// GPU FFT time / CPU backend time for the same batch (below 1: the GPU is faster).
    pub gpu_time_over_cpu_time: Option<f64>,
}

fn timing(seconds: f64, reps: usize, batch: usize, bytes: u64) -> Timing {
    Timing {
        seconds_per_batch: seconds,
        microseconds_per_transform: seconds * 1e6 / batch.max(1) as f64,
        effective_gb_per_s: bytes as f64 / seconds / 1e9,
        reps_per_sample: reps,
    }
}

fn time_fft<B: Backend>(
    backend: &B,
    x: &Tensor<B::Storage>,
    target: Duration,
    samples: usize,
) -> Result<(f64, usize), BenchError> {
    median_seconds_per_rep(target, samples, |reps| {
        for _ in 0..reps {
            backend.fft2(x, FftDirection::Forward, FftShift::OUTPUT)?;
        }
        backend.synchronize()?;
        Ok(())
    })
}

/// Run the benchmark on `backend` (and, when it is a GPU, the copy kernel and the CPU backend too).
pub fn run<B: Backend>(backend: &B, config: &FftBenchConfig) -> Result<FftBenchReport, BenchError> {
    let FftBenchConfig { n, batch, quick } = *config;
    let (target, samples) = if quick {
        (Duration::from_millis(150), 3)
    } else {
        (Duration::from_millis(1000), 5)
    };
    let host = SplitMix64::new(2024).complex_vec(batch * n * n);
    let array_bytes = (host.len() * 8) as u64;
    let (bytes_fft, bytes_copy) = (4 * array_bytes, 2 * array_bytes);
    let shape = [batch, n, n];

    let x = backend
        .upload_c64(&shape, &host)
        .during(format!("uploading {batch} x {n} x {n}"))?;
    let (seconds, reps) = time_fft(backend, &x, target, samples).during("timing the FFT")?;
    let fft = timing(seconds, reps, batch, bytes_fft);

    let is_gpu = backend.kind() == BackendKind::Gpu;
    let (gpu_copy, cpu_fft) = if is_gpu {
        let (copy_seconds, copy_reps) = median_seconds_per_rep(target, samples, |reps| {
            for _ in 0..reps {
                backend.copy(&x)?;
            }
            backend.synchronize()?;
            Ok(())
        })
        .during("timing the copy kernel")?;
        drop(x);
        let cpu = CpuBackend::new();
        let cx = cpu.upload_c64(&shape, &host)?;
        let (cpu_seconds, cpu_reps) =
            time_fft(&cpu, &cx, target, samples).during("timing the CPU backend")?;
        (
            Some(timing(copy_seconds, copy_reps, batch, bytes_copy)),
            Some(timing(cpu_seconds, cpu_reps, batch, bytes_fft)),
        )
    } else {
        (None, None)
    };

    Ok(FftBenchReport {
        device: backend.describe(),
        n,
        batch,
        array_bytes,
        bytes_moved_fft: bytes_fft,
        bytes_moved_copy: bytes_copy,
        fft_over_copy_bandwidth: gpu_copy
            .as_ref()
            .map(|c| fft.effective_gb_per_s / c.effective_gb_per_s),
        gpu_time_over_cpu_time: cpu_fft
            .as_ref()
            .map(|c| fft.seconds_per_batch / c.seconds_per_batch),
        fft,
        gpu_copy,
        cpu_fft,
        cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

impl FftBenchReport {
    pub fn to_text(&self) -> String {
        let line = |label: &str, t: &Timing| {
            format!(
                "  {label:<34} {:>10.3} ms/batch {:>9.2} us/transform {:>8.2} GB/s\n",
                t.seconds_per_batch * 1e3,
                t.microseconds_per_transform,
                t.effective_gb_per_s
            )
        };
        let mut s = format!(
            "FFT {n}x{n} complex64, batch {b} ({:.1} MiB per array), forward with fftshift\ndevice: {}\n",
            self.array_bytes as f64 / (1 << 20) as f64,
            self.device,
            n = self.n,
            b = self.batch,
        );
        if self.gpu_copy.is_some() {
            s += &line("GPU FFT (2 passes):", &self.fft);
        } else {
            s += &line("CPU backend FFT:", &self.fft);
        }
        if let Some(copy) = &self.gpu_copy {
            s += &line("GPU copy kernel:", copy);
        }
        if let Some(cpu) = &self.cpu_fft {
            s += &line(
                &format!("CPU backend FFT (rustfft, {} cores):", self.cpu_threads),
                cpu,
            );
        }
        if let Some(r) = self.fft_over_copy_bandwidth {
            s += &format!("  FFT / copy bandwidth:        {r:.3}\n");
        }
        if let Some(r) = self.gpu_time_over_cpu_time {
            s += &format!(
                "  GPU time / CPU backend time: {r:.3} ({:.2}x {})\n",
                if r < 1.0 { 1.0 / r } else { r },
                if r < 1.0 {
                    "faster on the GPU"
                } else {
                    "slower on the GPU"
                }
            );
        }
        s
    }
}
