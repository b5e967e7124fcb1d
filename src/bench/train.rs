//! `ptycho bench train`: training steps of a network on synthetic data, every convolution of its
//! layer table timed alone (forward, input gradient, kernel gradient) with the FLOP counts of
//! physics-and-model.md §12, and the adapter's own FP32 multiply-add rate measured by the FMA-chain
//! kernel in the same run, so that the convolutions are reported as a fraction of that peak. When the
//! device is a GPU the CPU backend runs the same, for the ratio between them.

use std::time::{Duration, Instant};

use super::{BenchError, During};
use serde::Serialize;

use ptycho_kernels::cpu::CpuBackend;
use ptycho_kernels::ops::optim::AdamConfig;
use ptycho_kernels::ops::peak;
use ptycho_kernels::ops::BackendKind;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::Backend;

use super::median_seconds_per_rep;
use super::profile::{ProfileTable, Profiled};
use crate::model::network::glorot_init;
use crate::model::{layers, ModelConfig, ModelKind, Op};
use crate::physics::probe::{default_probe, normalize, DEFAULT_PROBE_SCALE};
use crate::train::{Batch, Targets, Trainer};

#[derive(Clone, Debug)]
pub struct TrainBenchConfig {
    pub model: ModelConfig,
    pub batch_size: usize,
    /// Timed training steps (after one untimed warm-up step).
    pub steps: usize,
    pub quick: bool,
    /// Also run the CPU backend when the device is a GPU.
    pub compare_cpu: bool,
    /// Also time every backend call of `steps` more steps ([`Profiled`]).
    pub profile: bool,
}

/// Throughput of one group of convolutions: all of them, or the encoder's.
#[derive(Clone, Debug, Serialize)]
pub struct ConvThroughput {
    pub forward_gflop: f64,
    pub forward_ms: f64,
    pub forward_gflops_per_s: f64,
    /// Input and kernel gradients (the first layer's input gradient is not needed, as in §12).
    pub backward_gflop: f64,
    pub backward_ms: f64,
    pub backward_gflops_per_s: f64,
    /// (forward + backward) FLOP over their time, as a fraction of the measured FMA peak.
    pub fraction_of_peak: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainBenchReport {
    pub device: String,
    pub model: String,
    pub batch_size: usize,
    pub steps: usize,
    pub step_ms: f64,
    pub samples_per_s: f64,
    /// Convolution FLOP per training sample (forward + backward), from the layer table.
    pub conv_gflop_per_sample: f64,
    /// Training steps' effective rate: conv FLOP per sample × samples/s.
    pub step_conv_gflops_per_s: f64,
    pub fma_peak_gflops_per_s: f64,
    /// The backend's copy of a 64 MiB tensor, bytes read plus written per second: the memory
    /// yardstick beside the FMA peak.
    pub copy_gb_per_s: f64,
    pub encoder: ConvThroughput,
    pub all_convs: ConvThroughput,
    /// Every backend call of a training step, grouped (with `--profile`).
    pub profile: Option<ProfileTable>,
    pub cpu: Option<Box<TrainBenchReport>>,
}

/// One convolution of the layer table at the batch size: (encoder?, H, W, cin, cout, first layer?).
struct ConvShape {
    encoder: bool,
    first: bool,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
}

fn conv_shapes(model: &ModelConfig) -> Result<Vec<ConvShape>, BenchError> {
    let table = layers(model)?;
    Ok(table
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l.op {
            Op::Conv { cin, cout, .. } => Some(ConvShape {
                encoder: l.name.starts_with("encoder/"),
                first: i == 0,
                h: l.output[0],
                w: l.output[1],
                cin,
                cout,
            }),
            _ => None,
        })
        .collect())
}

/// Times of one convolution's three passes (seconds).
struct ConvTimes {
    forward: f64,
    input_grad: f64,
    kernel_grad: f64,
}

fn time_conv<B: Backend>(
    b: &B,
    shape: &ConvShape,
    batch: usize,
    target: Duration,
    samples: usize,
) -> Result<ConvTimes, BenchError> {
    let mut rng = SplitMix64::new(5);
    let (h, w, cin, cout) = (shape.h, shape.w, shape.cin, shape.cout);
    let x = b.upload_f32(&[batch, h, w, cin], &rng.real_vec(batch * h * w * cin))?;
    let k = b.upload_f32(&[3, 3, cin, cout], &rng.real_vec(9 * cin * cout))?;
    let bias = b.upload_f32(&[cout], &rng.real_vec(cout))?;
    let g = b.upload_f32(&[batch, h, w, cout], &rng.real_vec(batch * h * w * cout))?;
    let time = |pass: &dyn Fn() -> Result<(), BenchError>| {
        median_seconds_per_rep(target, samples, |reps| {
            for _ in 0..reps {
                pass()?;
            }
            b.synchronize()?;
            Ok(())
        })
        .map(|(seconds, _)| seconds)
    };
    Ok(ConvTimes {
        forward: time(&|| b.conv2d(&x, &k, &bias).map(drop).map_err(Into::into))?,
        input_grad: time(&|| {
            b.conv2d_backward_input(&g, &k)
                .map(drop)
                .map_err(Into::into)
        })?,
        kernel_grad: time(&|| {
            b.conv2d_backward_params(&x, &g)
                .map(drop)
                .map_err(Into::into)
        })?,
    })
}

fn throughput(
    shapes: &[&ConvShape],
    times: &[&ConvTimes],
    batch: usize,
    peak: f64,
) -> ConvThroughput {
    let flop = |s: &ConvShape| 2.0 * 9.0 * (batch * s.h * s.w * s.cin * s.cout) as f64 / 1e9;
    let forward_gflop: f64 = shapes.iter().map(|s| flop(s)).sum();
    let backward_gflop: f64 = shapes
        .iter()
        .map(|s| if s.first { flop(s) } else { 2.0 * flop(s) })
        .sum();
    let forward_s: f64 = times.iter().map(|t| t.forward).sum();
    let backward_s: f64 = shapes
        .iter()
        .zip(times)
        .map(|(s, t)| t.kernel_grad + if s.first { 0.0 } else { t.input_grad })
        .sum();
    ConvThroughput {
        forward_gflop,
        forward_ms: 1e3 * forward_s,
        forward_gflops_per_s: forward_gflop / forward_s,
        backward_gflop,
        backward_ms: 1e3 * backward_s,
        backward_gflops_per_s: backward_gflop / backward_s,
        fraction_of_peak: (forward_gflop + backward_gflop) / (forward_s + backward_s) / peak,
    }
}

/// A synthetic batch: diffraction-like patterns normalised as §3.4, plus-shaped groups at gridsize 2,
/// targets s·X (the PINN) or smooth labels (the baseline).
/// Synthetic diffraction for `groups` samples of `model`: a centred Gaussian and noise, normalised so
/// that mean Σ X² = (N/2)² as the reference's data (B, C, N, N), and each channel's offset from its
/// group centroid, (0, ±4) and (±4, 0) at gridsize 2 (B·C). `bench/peers/keras_speed.py` feeds its
/// peer the same.
pub fn synthetic_diffraction(model: &ModelConfig, groups: usize) -> (Vec<f32>, Vec<[f32; 2]>) {
    let n = model.n;
    let c = match model.kind {
        ModelKind::Pinn => model.channels(),
        ModelKind::Baseline => 1,
    };
    let mut rng = SplitMix64::new(11);
    let half = n as f32 / 2.0;
    let mut x: Vec<f32> = (0..groups * c * n * n)
        .map(|i| {
            let (r, col) = ((i / n) % n, i % n);
            let d2 = ((r as f32 - half).powi(2) + (col as f32 - half).powi(2)) / (n as f32);
            (-d2).exp() + 0.05 * (1.0 + rng.next_symmetric_f32())
        })
        .collect();
    let energy: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / (groups * c) as f64;
    let alpha = ((half as f64).powi(2) / energy).sqrt() as f32;
    x.iter_mut().for_each(|v| *v *= alpha);
    let ring: [[f32; 2]; 4] = [[0.0, 4.0], [0.0, -4.0], [4.0, 0.0], [-4.0, 0.0]];
    let offsets = (0..groups * c)
        .map(|k| if c == 1 { [0.0, 0.0] } else { ring[k % 4] })
        .collect();
    (x, offsets)
}

/// A training batch of [`synthetic_diffraction`], with its targets at intensity scale `s`.
pub fn batch<B: Backend>(
    b: &B,
    model: &ModelConfig,
    size: usize,
    s: f32,
) -> Result<Batch<B::Storage>, BenchError> {
    let n = model.n;
    let (x, offsets) = synthetic_diffraction(model, size);
    let c = x.len() / (size * n * n);
    let shape = [size, c, n, n];
    let targets = match model.kind {
        ModelKind::Pinn => {
            let relative: Vec<f32> = offsets.iter().flatten().copied().collect();
            let amplitude: Vec<f32> = x.iter().map(|v| s * v).collect();
            Targets::Physics {
                relative: b.upload_f32(&[size * c, 2], &relative)?,
                amplitude: b.upload_f32(&shape, &amplitude)?,
            }
        }
        ModelKind::Baseline => {
            let labels: Vec<f32> = (0..size * n * n)
                .map(|i| 0.8 + 0.1 * ((i % n) as f32 / 5.0).sin())
                .collect();
            Targets::Labels {
                amplitude: b.upload_f32(&[size, n, n, 1], &labels)?,
                phase: b.upload_f32(&[size, n, n, 1], &labels)?,
            }
        }
    };
    Ok(Batch {
        x: b.upload_f32(&shape, &x)?,
        targets,
    })
}

/// Run the benchmark; `progress` hears of each stage as it starts (a full run takes minutes).
pub fn run<B: Backend>(
    b: &B,
    config: &TrainBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<TrainBenchReport, BenchError> {
    config.model.validate()?;
    if config.batch_size == 0 || config.steps == 0 {
        return Err(BenchError::Invalid(
            "batch size and steps must be at least 1".into(),
        ));
    }
    let (target, samples) = if config.quick {
        (Duration::from_millis(100), 1)
    } else {
        (Duration::from_millis(500), 3)
    };
    let model = &config.model;

    // The FMA peak: enough lanes to fill a large GPU, enough iterations to hide the dispatch.
    progress(&format!("{}: measuring the FP32 FMA peak", b.describe()));
    let (lanes, iterations) = (1 << 18, 512);
    let (peak_s, _) = median_seconds_per_rep(target, samples.max(3), |reps| {
        for _ in 0..reps {
            b.fma_chain(lanes, iterations)?;
        }
        b.synchronize()?;
        Ok(())
    })
    .during("timing the FMA chains")?;
    let peak = peak::flops(lanes, iterations) / peak_s / 1e9;

    progress(&format!("{}: measuring the copy bandwidth", b.describe()));
    const COPY_FLOATS: usize = 16 << 20;
    let source = b
        .upload_f32(&[COPY_FLOATS], &vec![1.0; COPY_FLOATS])
        .during("uploading the copy source")?;
    let (copy_s, _) = median_seconds_per_rep(target, samples.max(3), |reps| {
        for _ in 0..reps {
            b.copy(&source)?;
        }
        b.synchronize()?;
        Ok(())
    })
    .during("timing the copies")?;
    let copy_gb_per_s = (2 * 4 * COPY_FLOATS) as f64 / copy_s / 1e9;

    let shapes = conv_shapes(model)?;
    let times = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            progress(&format!(
                "timing convolution {}/{}: {} -> {} channels at {}x{}",
                k + 1,
                shapes.len(),
                s.cin,
                s.cout,
                s.h,
                s.w
            ));
            time_conv(b, s, config.batch_size, target, samples)
        })
        .collect::<Result<Vec<_>, BenchError>>()
        .during("timing the convolutions")?;
    let pick = |encoder_only: bool| {
        let (s, t): (Vec<&ConvShape>, Vec<&ConvTimes>) = shapes
            .iter()
            .zip(&times)
            .filter(|(s, _)| s.encoder || !encoder_only)
            .unzip();
        throughput(&s, &t, config.batch_size, peak)
    };
    let (encoder, all_convs) = (pick(true), pick(false));

    let weights = glorot_init(model, 1)?;
    let s = 100.0;
    let adam = AdamConfig::default();
    let mut trainer = match model.kind {
        ModelKind::Pinn => {
            let probe = normalize(&default_probe(model.n, 0.0), model.n, DEFAULT_PROBE_SCALE)?;
            Trainer::pinn(b, model, &weights, &probe, s, adam)
        }
        ModelKind::Baseline => Trainer::baseline(b, model, &weights, adam),
    }?;
    let data = batch(b, model, config.batch_size, s)?;
    progress(&format!(
        "timing {} training step(s) after one warm-up",
        config.steps
    ));
    trainer.train_step(b, &data)?;
    let start = Instant::now();
    for _ in 0..config.steps {
        trainer.train_step(b, &data)?;
    }
    let step_s = start.elapsed().as_secs_f64() / config.steps as f64;
    let profile = if config.profile {
        progress(&format!(
            "profiling {} training step(s), every backend call timed",
            config.steps
        ));
        let profiled = Profiled::new(b);
        let start = Instant::now();
        for _ in 0..config.steps {
            trainer.train_step(&profiled, &data)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        Some(
            profiled
                .take()
                .table(config.steps, seconds, &layers(model)?),
        )
    } else {
        None
    };
    let samples_per_s = config.batch_size as f64 / step_s;
    let conv_gflop_per_sample =
        (all_convs.forward_gflop + all_convs.backward_gflop) / config.batch_size as f64;

    let cpu = if config.compare_cpu && b.kind() != BackendKind::Cpu {
        let cpu_config = TrainBenchConfig {
            compare_cpu: false,
            ..config.clone()
        };
        Some(Box::new(run(&CpuBackend::new(), &cpu_config, progress)?))
    } else {
        None
    };
    Ok(TrainBenchReport {
        device: b.describe(),
        model: format!(
            "{} N={} gridsize {} n_filters_scale {}{}",
            model.kind.name(),
            model.n,
            model.gridsize,
            model.n_filters_scale,
            if model.probe_big { " probe_big" } else { "" }
        ),
        batch_size: config.batch_size,
        steps: config.steps,
        step_ms: 1e3 * step_s,
        samples_per_s,
        conv_gflop_per_sample,
        step_conv_gflops_per_s: conv_gflop_per_sample * samples_per_s,
        fma_peak_gflops_per_s: peak,
        copy_gb_per_s,
        encoder,
        all_convs,
        profile,
        cpu,
    })
}

impl TrainBenchReport {
    pub fn to_text(&self) -> String {
        let conv = |name: &str, t: &ConvThroughput| {
            format!(
                "  {name:<10} forward {:>8.2} GFLOP in {:>9.2} ms = {:>8.1} GFLOP/s; backward {:>8.2} GFLOP in {:>9.2} ms = {:>8.1} GFLOP/s; {:.1}% of peak\n",
                t.forward_gflop,
                t.forward_ms,
                t.forward_gflops_per_s,
                t.backward_gflop,
                t.backward_ms,
                t.backward_gflops_per_s,
                100.0 * t.fraction_of_peak
            )
        };
        let mut out = format!(
            "{}: {}, batch {}\n  FMA peak {:.1} GFLOP/s, copy bandwidth {:.1} GB/s\n{}{}  training step {:.1} ms: {:.2} samples/s ({:.2} conv GFLOP per sample, {:.1} GFLOP/s, {:.1}% of peak)\n",
            self.device,
            self.model,
            self.batch_size,
            self.fma_peak_gflops_per_s,
            self.copy_gb_per_s,
            conv("encoder", &self.encoder),
            conv("all convs", &self.all_convs),
            self.step_ms,
            self.samples_per_s,
            self.conv_gflop_per_sample,
            self.step_conv_gflops_per_s,
            100.0 * self.step_conv_gflops_per_s / self.fma_peak_gflops_per_s
        );
        if let Some(profile) = &self.profile {
            out.push_str("  per-op profile of a training step:\n");
            out.push_str(&profile.to_text());
        }
        if let Some(cpu) = &self.cpu {
            out.push_str(&cpu.to_text());
            out.push_str(&format!(
                "  {} / CPU backend: training {:.2}x, encoder convs {:.2}x, FMA peak {:.2}x\n",
                self.device,
                self.samples_per_s / cpu.samples_per_s,
                (self.encoder.forward_gflops_per_s / cpu.encoder.forward_gflops_per_s),
                self.fma_peak_gflops_per_s / cpu.fma_peak_gflops_per_s
            ));
        }
        out
    }
}
