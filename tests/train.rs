//! The PINN step: gradients of the whole chain (network → amp·e^{iφ} → merge → extraction → probe →
//! far field → Poisson NLL) against finite differences in chosen parameters, GPU against CPU, and Adam
//! steps that lower the loss of a fixed batch. A small network (N = 64, n_filters_scale 1, two groups
//! at gridsize 2) keeps this fast on two cores.

use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::ops::optim::AdamConfig;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::Backend;
use ptycho_wgpu::model::network::glorot_init;
use ptycho_wgpu::model::ModelConfig;
use ptycho_wgpu::persist::weights::NamedTensor;
use ptycho_wgpu::physics::probe::{default_probe, normalize};
use ptycho_wgpu::train::PinnTrainer;

const N: usize = 64;
const GROUPS: usize = 2;
const C: usize = 4;
const S: f32 = 30.0;

struct Batch {
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

/// Diffraction-like inputs: a smooth positive pattern per channel, normalised so that mean Σ X² =
/// (N/2)²; targets s·X; offsets of a plus-shaped group (summing to zero).
fn batch() -> Batch {
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
    Batch {
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
fn near_target<B: Backend>(b: &B, weights: &[NamedTensor]) -> Vec<f32> {
    let data = batch();
    let trainer =
        PinnTrainer::new(b, &config(), weights, &probe(), S, AdamConfig::default()).unwrap();
    let x = b.upload_f32(&[GROUPS, C, N, N], &data.x).unwrap();
    let rel = b.upload_f32(&[GROUPS * C, 2], &data.relative).unwrap();
    let a = trainer.predict_amplitude(b, &x, &rel).unwrap();
    a.iter().map(|v| 0.8 * v + 0.1).collect()
}

fn loss_and_grads<B: Backend>(
    b: &B,
    weights: &[NamedTensor],
    target: &[f32],
) -> (f64, Vec<Vec<f32>>) {
    let data = batch();
    let trainer =
        PinnTrainer::new(b, &config(), weights, &probe(), S, AdamConfig::default()).unwrap();
    let x = b.upload_f32(&[GROUPS, C, N, N], &data.x).unwrap();
    let t = b.upload_f32(&[GROUPS, C, N, N], target).unwrap();
    let rel = b.upload_f32(&[GROUPS * C, 2], &data.relative).unwrap();
    let (loss, grads) = trainer.loss_and_grads(b, &x, &rel, &t).unwrap();
    (
        loss,
        grads.iter().map(|g| b.download_f32(g).unwrap()).collect(),
    )
}

#[test]
fn cpu_gradients_match_finite_differences() {
    let b = CpuBackend::new();
    let weights = glorot_init(&config(), 5).unwrap();
    let target = near_target(&b, &weights);
    let (_, grads) = loss_and_grads(&b, &weights, &target);
    let index = |name: &str| weights.iter().position(|t| t.name == name).unwrap();
    // Biases get the largest, cleanest gradients; one kernel entry per branch besides.
    let picks = [
        ("amplitude/head/bias", 0),
        ("phase/head/bias", 1),
        ("phase/head/bias", 2),
        ("encoder/conv_3b/bias", 7),
        ("amplitude/up_2b/bias", 3),
        ("encoder/conv_1a/kernel", 4 * 64 + 5),
    ];
    for (name, j) in picks {
        let k = index(name);
        let analytic = grads[k][j] as f64;
        let scale = grads[k].iter().map(|g| g.abs() as f64).fold(0.0, f64::max);
        let eps = 1e-3f32;
        let mut plus = weights.clone();
        plus[k].data[j] += eps;
        let mut minus = weights.clone();
        minus[k].data[j] -= eps;
        let fd = (loss_and_grads(&b, &plus, &target).0 - loss_and_grads(&b, &minus, &target).0)
            / (2.0 * eps as f64);
        assert!(
            (fd - analytic).abs() < 0.01 * scale.max(analytic.abs()),
            "{name}[{j}]: finite difference {fd:.5e}, analytic {analytic:.5e} (largest {scale:.3e})"
        );
    }
}

#[test]
fn gpu_gradients_match_cpu() {
    let Some(gpu) = shared_gpu() else { return };
    let weights = glorot_init(&config(), 6).unwrap();
    let cpu = CpuBackend::new();
    let target = near_target(&cpu, &weights);
    let (gl, gg) = loss_and_grads(gpu, &weights, &target);
    let (cl, cg) = loss_and_grads(&cpu, &weights, &target);
    assert!((gl - cl).abs() < 1e-5 * cl.abs(), "loss {gl} vs {cl}");
    for (k, (a, c)) in gg.iter().zip(&cg).enumerate() {
        let num: f64 = a.iter().zip(c).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
        let den: f64 = c.iter().map(|q| (*q as f64).powi(2)).sum();
        let e = (num / den.max(1e-30)).sqrt();
        // Measured at most 1.1e-5 (summation order of the convolutions' reductions).
        assert!(e < 1e-4, "{}: relative difference {e:.2e}", weights[k].name);
    }
}

#[test]
fn adam_steps_lower_the_loss_of_a_batch() {
    let b = CpuBackend::new();
    let data = batch();
    let weights = glorot_init(&config(), 7).unwrap();
    let mut trainer =
        PinnTrainer::new(&b, &config(), &weights, &probe(), S, AdamConfig::default()).unwrap();
    let x = b.upload_f32(&[GROUPS, C, N, N], &data.x).unwrap();
    let t = b.upload_f32(&[GROUPS, C, N, N], &data.target).unwrap();
    let rel = b.upload_f32(&[GROUPS * C, 2], &data.relative).unwrap();
    let losses: Vec<f64> = (0..8)
        .map(|_| trainer.train_step(&b, &x, &rel, &t).unwrap())
        .collect();
    assert_eq!(trainer.step, 8);
    assert!(
        losses[7] < losses[0] - 0.05 * losses[0].abs(),
        "losses {losses:?}"
    );
}
