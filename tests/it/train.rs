//! The PINN step: gradients of the whole chain (network → amp·e^{iφ} → merge → extraction → probe →
//! far field → Poisson NLL) against finite differences in chosen parameters, with and without the
//! probe-big ring, GPU against CPU, and Adam steps that lower the loss of a fixed batch. The same for
//! the supervised baseline's step (MAE on amplitude and phase labels). Small networks (N = 64,
//! n_filters_scale 1, two groups at gridsize 2) keep this fast on two cores.

use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::gpu::{GpuBackend, GpuSelection};
use ptycho_wgpu::kernels::ops::optim::AdamConfig;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::Backend;
use ptycho_wgpu::model::network::{glorot_init, Network};
use ptycho_wgpu::model::{architecture, ModelConfig, ModelKind, Op};
use ptycho_wgpu::persist::weights::NamedTensor;
use ptycho_wgpu::physics::probe::{default_probe, normalize};
use ptycho_wgpu::train::{Batch, Targets, Trainer};

const N: usize = 64;
const GROUPS: usize = 2;
const C: usize = 4;
const S: f32 = 30.0;

struct HostBatch {
    x: Vec<f32>,
    target: Vec<f32>,
    relative: Vec<f32>,
}

fn config() -> ModelConfig {
    ModelConfig {
        n_filters_scale: 1,
        ..ModelConfig::pinn(N, 2)
    }
}

fn ring_config() -> ModelConfig {
    ModelConfig {
        probe_big: true,
        ..config()
    }
}

fn baseline_config() -> ModelConfig {
    ModelConfig {
        kind: ModelKind::Baseline,
        gridsize: 1,
        ..config()
    }
}

/// Diffraction-like inputs: a smooth positive pattern per channel, normalised so that mean Σ X² =
/// (N/2)²; targets s·X; offsets of a plus-shaped group (summing to zero).
fn batch() -> HostBatch {
    let mut rng = SplitMix64::new(17);
    let mut x: Vec<f32> = (0..GROUPS * C * N * N)
        .map(|i| {
            let (r, c) = ((i / N) % N, i % N);
            let d2 = ((r as f32 - 32.0).powi(2) + (c as f32 - 32.0).powi(2)) / 60.0;
            (-d2).exp() + 0.05 * (1.0 + rng.next_symmetric_f32())
        })
        .collect();
    let energy: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / (GROUPS * C) as f64;
    let alpha = ((N as f64 / 2.0).powi(2) / energy).sqrt() as f32;
    x.iter_mut().for_each(|v| *v *= alpha);
    let target = x.iter().map(|v| S * v).collect();
    let relative = vec![
        0.0, 4.2, 0.0, -4.2, 4.1, 0.0, -4.1, 0.0, //
        3.9, 0.3, -3.9, -0.3, 0.2, 4.0, -0.2, -4.0,
    ];
    HostBatch {
        x,
        target,
        relative,
    }
}

fn probe() -> Vec<ptycho_wgpu::kernels::Complex32> {
    normalize(&default_probe(N, 0.0), N, 4.0).unwrap()
}

/// Targets near the prediction at `weights` (0.8 Â + 0.1): a loss that is well conditioned, whose
/// curvature 2Y/Â² stays bounded (a random target puts counts where Â ≈ 0, and finite differences
/// there measure the curvature rather than the gradient).
fn near_target<B: Backend>(b: &B, cfg: &ModelConfig, weights: &[NamedTensor]) -> Vec<f32> {
    let data = batch();
    let trainer = Trainer::pinn(b, cfg, weights, &probe(), S, AdamConfig::default()).unwrap();
    let x = b.upload_f32(&[GROUPS, C, N, N], &data.x).unwrap();
    let rel = b.upload_f32(&[GROUPS * C, 2], &data.relative).unwrap();
    let a = trainer.predict_amplitude(b, &x, &rel).unwrap();
    a.iter().map(|v| 0.8 * v + 0.1).collect()
}

fn pinn_batch<B: Backend>(b: &B, data: &HostBatch, target: &[f32]) -> Batch<B::Storage> {
    Batch {
        x: b.upload_f32(&[GROUPS, C, N, N], &data.x).unwrap(),
        targets: Targets::Physics {
            relative: b.upload_f32(&[GROUPS * C, 2], &data.relative).unwrap(),
            amplitude: b.upload_f32(&[GROUPS, C, N, N], target).unwrap(),
        },
    }
}

/// Labels for the baseline (GROUPS·C patterns): random amplitude in [0.6, 1] and phase in [0.3, 0.9],
/// away from the untrained network's outputs near 0 so that no |pred − label| kink lies within a
/// finite-difference step.
fn labels() -> (Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64::new(23);
    let count = GROUPS * C * N * N;
    let amplitude = (0..count)
        .map(|_| 0.8 + 0.2 * rng.next_symmetric_f32())
        .collect();
    let phase = (0..count)
        .map(|_| 0.6 + 0.3 * rng.next_symmetric_f32())
        .collect();
    (amplitude, phase)
}

fn baseline_batch<B: Backend>(b: &B) -> Batch<B::Storage> {
    let data = batch();
    let (amplitude, phase) = labels();
    let patterns = GROUPS * C;
    Batch {
        x: b.upload_f32(&[patterns, 1, N, N], &data.x).unwrap(),
        targets: Targets::Labels {
            amplitude: b.upload_f32(&[patterns, N, N, 1], &amplitude).unwrap(),
            phase: b.upload_f32(&[patterns, N, N, 1], &phase).unwrap(),
        },
    }
}

/// The loss and gradients of the PINN (`target` the observed amplitudes) or of the baseline.
fn loss_and_grads<B: Backend>(
    b: &B,
    cfg: &ModelConfig,
    weights: &[NamedTensor],
    target: &[f32],
) -> (f64, Vec<Vec<f32>>) {
    let data = batch();
    let adam = AdamConfig::default();
    let (trainer, batch) = match cfg.kind {
        ModelKind::Pinn => (
            Trainer::pinn(b, cfg, weights, &probe(), S, adam).unwrap(),
            pinn_batch(b, &data, target),
        ),
        ModelKind::Baseline => (
            Trainer::baseline(b, cfg, weights, adam).unwrap(),
            baseline_batch(b),
        ),
    };
    let (loss, grads) = trainer.loss_and_grads(b, &batch).unwrap();
    (
        loss,
        grads.iter().map(|g| b.download_f32(g).unwrap()).collect(),
    )
}

/// Glorot weights. With the ring, its amplitude bias is raised to 1 so that the ring's amplitude
/// swish(z) ≈ 0.7 rather than ≈ 0 (at ≈ 0 the ring phase has almost no effect, and its gradients are
/// below the loss's rounding), and the ring's ReLU layers get biases of 0.1: their inputs (four
/// decoder channels) are mostly zero, so with zero biases most pre-activations sit exactly on the
/// ReLU kink, where a finite difference is one-sided.
fn initial_weights(cfg: &ModelConfig, seed: u64) -> Vec<NamedTensor> {
    let mut weights = glorot_init(cfg, seed).unwrap();
    for t in weights.iter_mut().filter(|t| t.name.ends_with("/bias")) {
        let value = if t.name == "amplitude/ring_head/bias" {
            1.0
        } else if t.name.contains("/ring_up_") {
            0.1
        } else {
            continue;
        };
        t.data.iter_mut().for_each(|v| *v = value);
    }
    weights
}

/// Central differences of the loss in chosen parameters against the analytic gradients, with the
/// convolutions' direct sums: Winograd's transforms round sums of whole tiles, and that rounding
/// changes between the two evaluations by up to ~7 ε · Σ|terms| per output, which at a step of 1e-3
/// moves a difference by up to 1.4 % of the largest gradient (measured on conv_1a), over the
/// tolerance. The Winograd paths are checked against the direct sums in
/// `portable_and_vector_paths_agree` (kernels).
fn gradients_match_finite_differences(
    cfg: &ModelConfig,
    seed: u64,
    eps: f32,
    picks: &[(&str, usize)],
) {
    let b = CpuBackend::with_direct_sums();
    let weights = initial_weights(cfg, seed);
    let target = match cfg.kind {
        ModelKind::Pinn => near_target(&b, cfg, &weights),
        ModelKind::Baseline => Vec::new(),
    };
    let (_, grads) = loss_and_grads(&b, cfg, &weights, &target);
    let index = |name: &str| weights.iter().position(|t| t.name == name).unwrap();
    for &(name, j) in picks {
        let k = index(name);
        let analytic = grads[k][j] as f64;
        let scale = grads[k].iter().map(|g| g.abs() as f64).fold(0.0, f64::max);
        assert!(scale > 0.0, "{name}: the gradient is zero");
        let mut plus = weights.clone();
        plus[k].data[j] += eps;
        let mut minus = weights.clone();
        minus[k].data[j] -= eps;
        let fd = (loss_and_grads(&b, cfg, &plus, &target).0
            - loss_and_grads(&b, cfg, &minus, &target).0)
            / (2.0 * eps as f64);
        assert!(
            (fd - analytic).abs() < 0.01 * scale.max(analytic.abs()),
            "{name}[{j}]: finite difference {fd:.5e}, analytic {analytic:.5e} (largest {scale:.3e})"
        );
    }
}

#[test]
fn cpu_gradients_match_finite_differences() {
    // Biases get the largest, cleanest gradients; one kernel entry per branch besides.
    gradients_match_finite_differences(
        &config(),
        5,
        1e-3,
        &[
            ("amplitude/head/bias", 0),
            ("phase/head/bias", 1),
            ("phase/head/bias", 2),
            ("encoder/conv_3b/bias", 7),
            ("amplitude/up_2b/bias", 3),
            ("encoder/conv_1a/kernel", 4 * 64 + 5),
        ],
    );
}

/// With the ring, rounding moves the loss by ~2e-6 between evaluations (measured at steps of 1e-7),
/// so a step of 1e-3 gives central differences off by ~1e-3, over the tolerance for the ring
/// layers' smaller gradients; a step of 1e-2 brings that to ~1e-4, and the differences then agree
/// with the analytic gradients to within 1 % at steps from 3e-3 to 1e-2 (truncation stays small).
#[test]
fn cpu_ring_gradients_match_finite_differences() {
    gradients_match_finite_differences(
        &ring_config(),
        8,
        1e-2,
        &[
            ("amplitude/ring_head/bias", 0),
            ("phase/ring_head/bias", 3),
            ("amplitude/ring_up_a/bias", 5),
            ("phase/ring_up_b/bias", 2),
            ("amplitude/head/bias", 1),
        ],
    );
}

#[test]
fn cpu_baseline_gradients_match_finite_differences() {
    gradients_match_finite_differences(
        &baseline_config(),
        9,
        1e-3,
        &[
            ("amplitude/head/bias", 0),
            ("phase/head/bias", 0),
            ("amplitude/up_3b/bias", 4),
            ("encoder/conv_2a/bias", 6),
            ("phase/up_1a/kernel", 17),
        ],
    );
}

/// Max-pool windows whose largest entry differs between the two backends' forward passes, per pool
/// layer of the architecture: a near-tie (two entries within rounding of each other) that the two
/// backends' rounding resolves differently routes that window's gradient to another pixel.
fn pool_routing_flips<G: Backend, C: Backend>(
    gpu: &G,
    cpu: &C,
    cfg: &ModelConfig,
    weights: &[NamedTensor],
) -> Vec<(usize, usize)> {
    let data = batch();
    let shape = match cfg.kind {
        ModelKind::Pinn => [GROUPS, C, N, N],
        ModelKind::Baseline => [GROUPS * C, 1, N, N],
    };
    fn layer_outputs<B: Backend>(
        b: &B,
        cfg: &ModelConfig,
        weights: &[NamedTensor],
        shape: &[usize],
        x: &[f32],
    ) -> Vec<Vec<f32>> {
        let network = Network::new(b, cfg, weights).unwrap();
        let x = b
            .to_channels_last(&b.upload_f32(shape, x).unwrap())
            .unwrap();
        let acts = network.forward(b, &x).unwrap();
        (0..network.architecture().layers.len())
            .map(|i| b.download_f32(network.layer_output(&acts, i)).unwrap())
            .collect()
    }
    let g = layer_outputs(gpu, cfg, weights, &shape, &data.x);
    let c = layer_outputs(cpu, cfg, weights, &shape, &data.x);
    let layers = architecture(cfg).unwrap().layers;
    let mut flips = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        if !matches!(layer.op, Op::MaxPool) {
            continue;
        }
        let [h, w, channels] = layers[i - 1].output;
        let argmax = |v: &[f32], p: usize, y: usize, x: usize, k: usize| {
            let at = |dy: usize, dx: usize| v[((p * h + y + dy) * w + x + dx) * channels + k];
            let window = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
            (1..4).fold(0, |best, j| if window[j] > window[best] { j } else { best })
        };
        let mut count = 0;
        for p in 0..shape[0] {
            for y in (0..h).step_by(2) {
                for x in (0..w).step_by(2) {
                    for k in 0..channels {
                        if argmax(&g[i - 1], p, y, x, k) != argmax(&c[i - 1], p, y, x, k) {
                            count += 1;
                        }
                    }
                }
            }
        }
        flips.push((i, count));
    }
    flips
}

/// The CPU backend with its convolutions' direct sums, as the GPU's: this compares the two backends'
/// gradient code. With Winograd on, whose rounding differs by design (bounded against the direct
/// sums in `portable_and_vector_paths_agree`), conv_3a's bias gradient differed by 1.1e-4.
#[test]
fn gpu_gradients_match_cpu() {
    let Some(gpu) = shared_gpu() else { return };
    let cpu = CpuBackend::with_direct_sums();
    for (cfg, seed) in [(config(), 6), (ring_config(), 10), (baseline_config(), 11)] {
        let weights = initial_weights(&cfg, seed);
        let target = match cfg.kind {
            ModelKind::Pinn => near_target(&cpu, &cfg, &weights),
            ModelKind::Baseline => Vec::new(),
        };
        // The layers upstream of a pool that routes a window differently get a different gradient by
        // design (one window's whole gradient moves); they are compared only where no pool
        // upstream of them routes differently. Measured: one window of 131,072 at the baseline's
        // second pool on lavapipe (its convolutions round differently from the CPU's), none
        // elsewhere.
        let flips = pool_routing_flips(gpu, &cpu, &cfg, &weights);
        let total: usize = flips.iter().map(|f| f.1).sum();
        assert!(total <= 2, "{:?}: pool routings differ {flips:?}", cfg.kind);
        let first_flipped = flips.iter().find(|f| f.1 > 0).map_or(0, |f| f.0);
        let layers = architecture(&cfg).unwrap().layers;
        let (gl, gg) = loss_and_grads(gpu, &cfg, &weights, &target);
        let (cl, cg) = loss_and_grads(&cpu, &cfg, &weights, &target);
        assert!((gl - cl).abs() < 1e-5 * cl.abs(), "loss {gl} vs {cl}");
        let mut compared = 0;
        for (k, (a, c)) in gg.iter().zip(&cg).enumerate() {
            let name = &weights[k].name;
            let layer = layers
                .iter()
                .position(|l| name.starts_with(&format!("{}/", l.name)))
                .unwrap();
            if layer < first_flipped {
                continue;
            }
            compared += 1;
            let num: f64 = a.iter().zip(c).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
            let den: f64 = c.iter().map(|q| (*q as f64).powi(2)).sum();
            let e = (num / den.max(1e-30)).sqrt();
            // Measured at most 5e-5 (summation order of the convolutions' reductions).
            assert!(e < 1e-4, "{name}: relative difference {e:.2e}");
        }
        assert!(
            compared >= gg.len() - 8,
            "{compared} of {} compared",
            gg.len()
        );
    }
}

#[test]
fn baseline_adam_steps_lower_the_loss_of_a_batch() {
    let b = CpuBackend::new();
    let cfg = baseline_config();
    let weights = glorot_init(&cfg, 12).unwrap();
    // Keras' rate 1e-3 moves every one of the ~1.2 M weights by about that much on the first steps,
    // which overshoots a linear head on a single batch; 1e-4 descends steadily.
    let adam = AdamConfig {
        learning_rate: 1e-4,
        ..AdamConfig::default()
    };
    let mut trainer = Trainer::baseline(&b, &cfg, &weights, adam).unwrap();
    let batch = baseline_batch(&b);
    let losses: Vec<f64> = (0..8)
        .map(|_| trainer.train_step(&b, &batch).unwrap())
        .collect();
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]) && losses[7] < 0.95 * losses[0],
        "losses {losses:?}"
    );
}

#[test]
fn a_batch_of_the_wrong_kind_is_an_error() {
    let b = CpuBackend::new();
    let weights = glorot_init(&baseline_config(), 1).unwrap();
    let trainer =
        Trainer::baseline(&b, &baseline_config(), &weights, AdamConfig::default()).unwrap();
    let data = batch();
    let err = trainer
        .loss(&b, &pinn_batch(&b, &data, &data.target))
        .unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
}

#[test]
fn adam_steps_lower_the_loss_of_a_batch() {
    let b = CpuBackend::new();
    let data = batch();
    let weights = glorot_init(&config(), 7).unwrap();
    let mut trainer =
        Trainer::pinn(&b, &config(), &weights, &probe(), S, AdamConfig::default()).unwrap();
    let batch = pinn_batch(&b, &data, &data.target);
    let losses: Vec<f64> = (0..8)
        .map(|_| trainer.train_step(&b, &batch).unwrap())
        .collect();
    assert_eq!(trainer.step, 8);
    assert!(
        losses[7] < losses[0] - 0.05 * losses[0].abs(),
        "losses {losses:?}"
    );
}

/// A whole step (forward, loss, backward, Adam) goes to the device as one submission, started by
/// the read-back of its loss; nothing in the step waits for the device.
#[test]
fn a_gpu_training_step_is_one_submission() {
    if shared_gpu().is_none() {
        return;
    }
    // A backend of its own: other tests submit on the shared one concurrently.
    let gpu = GpuBackend::new(&GpuSelection::from_env()).unwrap();
    let weights = glorot_init(&config(), 13).unwrap();
    let mut trainer = Trainer::pinn(
        &gpu,
        &config(),
        &weights,
        &probe(),
        S,
        AdamConfig::default(),
    )
    .unwrap();
    let data = batch();
    let batch = pinn_batch(&gpu, &data, &data.target);
    let first = trainer.record_step(&gpu, &batch).unwrap();
    let first = gpu
        .finish_read_f32(gpu.start_read_f32(&first).unwrap())
        .unwrap()[0];
    let before = gpu.stats().submissions;
    let loss = trainer.record_step(&gpu, &batch).unwrap();
    assert_eq!(
        gpu.stats().submissions,
        before,
        "the step recorded, not submitted"
    );
    let pending = gpu.start_read_f32(&loss).unwrap();
    assert_eq!(gpu.stats().submissions, before + 1);
    let second = gpu.finish_read_f32(pending).unwrap()[0];
    assert!(
        second.is_finite() && second < first,
        "{first} then {second}"
    );
}
