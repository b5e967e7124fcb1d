//! The whole forward model (merge → trim → extract → probe → far field) and the Poisson loss on both
//! backends: central finite differences of the chain's gradients with respect to the patches and to the
//! probe (gridsize 2 with sub-pixel offsets, the probe mask, object_big off), GPU against CPU, and the
//! probe helpers against scipy.

use crate::common;

use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::ops::loss::LossKind;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::{Backend, Complex32};
use ptycho_wgpu::physics::forward::{
    default_canvas_size, mean_loss, mean_loss_grad, ForwardConfig, ForwardModel,
};
use ptycho_wgpu::physics::merge::relative_tensor;
use ptycho_wgpu::physics::probe::{default_probe, disk_mask, normalize};

const N: usize = 32;
const GROUPS: usize = 2;

/// Relative offsets of two groups of four: sub-pixel, summing to zero in each group.
const REL: [[f32; 2]; 8] = [
    [2.3, 1.7],
    [-2.1, 1.2],
    [1.6, -2.4],
    [-1.8, -0.5],
    [-3.2, 0.4],
    [2.9, -1.1],
    [0.6, 2.6],
    [-0.3, -1.9],
];

/// Object patches as the network emits them with pad_object: zero outside the central N/2 square, or
/// with the probe-big ring a weaker field there.
fn object_patches(rng: &mut SplitMix64, count: usize, ring: bool) -> Vec<Complex32> {
    (0..count * N * N)
        .map(|i| {
            let (r, c) = ((i / N) % N, i % N);
            let centre = (N / 4..3 * N / 4).contains(&r) && (N / 4..3 * N / 4).contains(&c);
            if centre || ring {
                let amp = if centre { 0.6 } else { 0.05 } + 0.4 * rng.next_f64() as f32;
                let phase = rng.next_symmetric_f32();
                Complex32::from_polar(amp, phase)
            } else {
                Complex32::default()
            }
        })
        .collect()
}

struct Case {
    config: ForwardConfig,
    channels: usize,
    heads: usize,
    patches: Vec<Complex32>,
    probe: Vec<Complex32>,
    counts_amplitude: Vec<f32>,
}

fn case(object_big: bool, probe_mask: bool, ring: bool, seed: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    let channels = 4;
    let heads = if object_big { channels } else { 1 };
    let patches = object_patches(&mut rng, GROUPS * heads, ring);
    let probe = normalize(&default_probe(N, 1.0), N, 4.0).unwrap();
    // Observed amplitudes of the right magnitude: sqrt of integer-like counts near the prediction.
    let counts_amplitude = (0..GROUPS * channels * N * N)
        .map(|_| (3.0 * rng.next_f64() as f32).round().sqrt())
        .collect();
    Case {
        config: ForwardConfig {
            canvas: default_canvas_size(N, 2),
            object_big,
            probe_mask,
            intensity_scale: 4.0,
            separate_ring: ring,
        },
        channels,
        heads,
        patches,
        probe,
        counts_amplitude,
    }
}

/// The mean Poisson loss of the chain for given patches and probe.
fn chain_loss<B: Backend>(b: &B, c: &Case, patches: &[Complex32], probe: &[Complex32]) -> f64 {
    let model = ForwardModel::new(b, probe, N, c.config.clone()).unwrap();
    let rel = relative_tensor(b, &REL).unwrap();
    let x = b.upload_c64(&[GROUPS, c.heads, N, N], patches).unwrap();
    let pass = model.forward(b, &x, &rel, c.channels).unwrap();
    let target = b
        .upload_f32(pass.amplitude().shape(), &c.counts_amplitude)
        .unwrap();
    mean_loss(b, LossKind::Poisson, pass.amplitude(), &target).unwrap()
}

/// The chain's analytic gradients (patches, probe) of the mean Poisson loss, or of Σ g·Â for a given
/// upstream gradient g.
fn chain_gradients<B: Backend>(
    b: &B,
    c: &Case,
    upstream: Option<&[f32]>,
) -> (Vec<Complex32>, Vec<Complex32>) {
    let model = ForwardModel::new(b, &c.probe, N, c.config.clone()).unwrap();
    let rel = relative_tensor(b, &REL).unwrap();
    let x = b.upload_c64(&[GROUPS, c.heads, N, N], &c.patches).unwrap();
    let pass = model.forward(b, &x, &rel, c.channels).unwrap();
    let target = b
        .upload_f32(pass.amplitude().shape(), &c.counts_amplitude)
        .unwrap();
    let g = match upstream {
        Some(g) => b.upload_f32(pass.amplitude().shape(), g).unwrap(),
        None => mean_loss_grad(b, LossKind::Poisson, pass.amplitude(), &target).unwrap(),
    };
    let grads = model.backward(b, &pass, &rel, &g).unwrap();
    (
        b.download_c64(&grads.patches).unwrap(),
        b.download_c64(&grads.probe).unwrap(),
    )
}

fn bumped(values: &[Complex32], j: usize, bump: Complex32) -> Vec<Complex32> {
    let mut v = values.to_vec();
    v[j] += bump;
    v
}

/// Central differences in Re and Im of chosen entries against the analytic gradient. The scale of the
/// comparison is the largest analytic entry, since the mean loss's gradients are small. The step is
/// small because the Poisson loss is strongly curved where Â is near zero and the count is not (the
/// loss itself is summed in f64, so the difference keeps its digits).
fn check_entries(
    what: &str,
    analytic: &[Complex32],
    entries: &[usize],
    loss: impl Fn(usize, Complex32) -> (f64, f64),
) {
    let eps = 1e-3f32;
    let scale = analytic.iter().map(|g| g.norm() as f64).fold(0.0, f64::max);
    assert!(scale > 0.0, "{what}: the gradient is zero");
    for &j in entries {
        for imaginary in [false, true] {
            let bump = if imaginary {
                Complex32::new(0.0, eps)
            } else {
                Complex32::new(eps, 0.0)
            };
            let (plus, minus) = loss(j, bump);
            let fd = (plus - minus) / (2.0 * eps as f64);
            let a = if imaginary {
                analytic[j].im
            } else {
                analytic[j].re
            } as f64;
            assert!(
                (fd - a).abs() < 2e-2 * scale,
                "{what}[{j}] imaginary={imaginary}: finite difference {fd:.6e}, analytic {a:.6e} (scale {scale:.3e})"
            );
        }
    }
}

fn chain_matches_finite_differences<B: Backend>(
    b: &B,
    object_big: bool,
    probe_mask: bool,
    ring: bool,
) {
    let c = case(object_big, probe_mask, ring, 11);
    let (grad_patches, grad_probe) = chain_gradients(b, &c, None);
    // Entries inside the centre squares, where the object lives, and the largest gradient entries.
    let mut entries: Vec<usize> = vec![
        (N / 2) * N + N / 2,
        (N / 4 + 1) * N + N / 4 + 3,
        N * N + (N / 2 + 3) * N + N / 2 - 4,
    ];
    if c.heads > 1 {
        entries.push(3 * N * N + (3 * N / 4 - 2) * N + N / 2);
    }
    if ring {
        entries.extend([(N / 8) * N + N / 2, 2 * N * N + (N / 2) * N + N - 6]);
    }
    let largest = (0..grad_patches.len())
        .max_by(|&i, &j| grad_patches[i].norm().total_cmp(&grad_patches[j].norm()))
        .unwrap();
    entries.push(largest);
    check_entries("∂L/∂patches", &grad_patches, &entries, |j, bump| {
        (
            chain_loss(b, &c, &bumped(&c.patches, j, bump), &c.probe),
            chain_loss(b, &c, &bumped(&c.patches, j, -bump), &c.probe),
        )
    });
    let largest = (0..grad_probe.len())
        .max_by(|&i, &j| grad_probe[i].norm().total_cmp(&grad_probe[j].norm()))
        .unwrap();
    let probe_entries = [(N / 2) * N + N / 2, (N / 2 - 5) * N + N / 2 + 4, largest];
    check_entries("∂L/∂probe", &grad_probe, &probe_entries, |j, bump| {
        (
            chain_loss(b, &c, &c.patches, &bumped(&c.probe, j, bump)),
            chain_loss(b, &c, &c.patches, &bumped(&c.probe, j, -bump)),
        )
    });
    if probe_mask {
        let mask = disk_mask(N);
        for (g, m) in grad_probe.iter().zip(&mask) {
            assert!(
                *m == 1.0 || g.norm() == 0.0,
                "no probe gradient outside the mask"
            );
        }
    }
}

#[test]
fn cpu_chain_gridsize2_matches_finite_differences() {
    chain_matches_finite_differences(&CpuBackend::new(), true, false, false);
}

#[test]
fn cpu_chain_with_probe_big_ring_matches_finite_differences() {
    chain_matches_finite_differences(&CpuBackend::new(), true, false, true);
}

#[test]
fn cpu_chain_with_probe_mask_matches_finite_differences() {
    chain_matches_finite_differences(&CpuBackend::new(), true, true, false);
}

#[test]
fn cpu_chain_without_object_big_matches_finite_differences() {
    chain_matches_finite_differences(&CpuBackend::new(), false, false, false);
}

#[test]
fn gpu_chain_gridsize2_matches_finite_differences() {
    if let Some(gpu) = shared_gpu() {
        chain_matches_finite_differences(gpu, true, false, false);
    }
}

fn rel_err(a: &[Complex32], b: &[Complex32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm_sqr() as f64)
        .sum();
    let den: f64 = b.iter().map(|y| y.norm_sqr() as f64).sum();
    (num / den).sqrt()
}

#[test]
fn gpu_chain_matches_cpu_backend() {
    let Some(gpu) = shared_gpu() else { return };
    let cpu = CpuBackend::new();
    for (object_big, probe_mask, ring) in [
        (true, false, false),
        (true, true, false),
        (false, false, false),
        (true, false, true),
    ] {
        let c = case(object_big, probe_mask, ring, 5);
        let (gc, gt, ga) = forward_outputs(gpu, &c);
        let (cc, ct, ca) = forward_outputs(&cpu, &c);
        assert!(rel_err(&gc, &cc) < 1e-6, "canvas");
        assert!(rel_err(&gt, &ct) < 1e-6, "trimmed");
        let amp_num: f64 = ga
            .iter()
            .zip(&ca)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let amp_den: f64 = ca.iter().map(|b| (*b as f64).powi(2)).sum();
        assert!((amp_num / amp_den).sqrt() < 1e-6, "amplitude");
        // One upstream gradient for both: the loss gradient's own parity is a kernel test, and its
        // 1/Â factor would amplify the forward's rounding differences here.
        let upstream = SplitMix64::new(9).real_vec(ga.len());
        let (gp, gq) = chain_gradients(gpu, &c, Some(&upstream));
        let (cp, cq) = chain_gradients(&cpu, &c, Some(&upstream));
        assert!(
            rel_err(&gp, &cp) < 1e-5,
            "patch gradient {:.2e}",
            rel_err(&gp, &cp)
        );
        assert!(
            rel_err(&gq, &cq) < 1e-5,
            "probe gradient {:.2e}",
            rel_err(&gq, &cq)
        );
    }
}

fn forward_outputs<B: Backend>(b: &B, c: &Case) -> (Vec<Complex32>, Vec<Complex32>, Vec<f32>) {
    let model = ForwardModel::new(b, &c.probe, N, c.config.clone()).unwrap();
    let rel = relative_tensor(b, &REL).unwrap();
    let x = b.upload_c64(&[GROUPS, c.heads, N, N], &c.patches).unwrap();
    let pass = model.forward(b, &x, &rel, c.channels).unwrap();
    assert_eq!(
        pass.canvas().shape(),
        [GROUPS, c.config.canvas, c.config.canvas]
    );
    assert_eq!(pass.trimmed().shape(), [GROUPS, N, N]);
    assert_eq!(pass.amplitude().shape(), [GROUPS, c.channels, N, N]);
    (
        b.download_c64(pass.canvas()).unwrap(),
        b.download_c64(pass.trimmed()).unwrap(),
        b.download_f32(pass.amplitude()).unwrap(),
    )
}

#[test]
fn bad_shapes_are_errors_naming_the_expected_shape() {
    let b = CpuBackend::new();
    let c = case(true, false, false, 1);
    let model = ForwardModel::new(&b, &c.probe, N, c.config.clone()).unwrap();
    let rel = relative_tensor(&b, &REL).unwrap();
    let x = b.upload_c64(
        &[GROUPS, 3, N, N],
        &vec![Complex32::default(); GROUPS * 3 * N * N],
    );
    let err = model
        .forward(&b, &x.unwrap(), &rel, 4)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("(B, 4, 32, 32)"), "{err}");
    let short = relative_tensor(&b, &REL[..5]).unwrap();
    let x = b.upload_c64(&[GROUPS, 4, N, N], &c.patches).unwrap();
    let err = model.forward(&b, &x, &short, 4).err().unwrap().to_string();
    assert!(err.contains("(8, 2)"), "{err}");
    let bad = ForwardConfig {
        canvas: N + 3,
        ..c.config.clone()
    };
    assert!(ForwardModel::new(&b, &c.probe, N, bad).is_err());
}

#[test]
fn probe_mask_and_normalisation_follow_the_reference() {
    let mask = disk_mask(64);
    assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), 812);
    let probe = default_probe(64, 0.0);
    let above: usize = probe.iter().filter(|p| p.re > 0.5).count();
    assert!((350..400).contains(&above), "{above} pixels above half");
    let p = normalize(&probe, 64, 4.0).unwrap();
    let masked_mean: f64 = p
        .iter()
        .zip(&mask)
        .map(|(p, m)| (p.norm() * m) as f64)
        .sum::<f64>()
        / 4096.0;
    assert!((masked_mean - 0.25).abs() < 1e-6, "{masked_mean}");
    let zero = vec![Complex32::default(); 64 * 64];
    assert!(normalize(&zero, 64, 4.0).is_err());
    assert!(normalize(&zero[1..], 64, 4.0).is_err());
}

#[test]
fn default_probe_matches_scipy() {
    if !common::python_has("numpy, scipy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_python(
        dir.path(),
        "import numpy as np\n\
         from scipy.ndimage import gaussian_filter\n\
         N = 64; s = N / (0.7 * np.pi ** 2)\n\
         n = np.arange(N) - (N - 1) / 2; w = np.exp(-n ** 2 / (2 * s ** 2)); w /= w.max()\n\
         p = gaussian_filter((np.outer(w, w) > 0.5).astype(float), 1) + 1e-9\n\
         print(' '.join(repr(float(v)) for v in p.ravel()))",
    );
    let reference: Vec<f64> = String::from_utf8(out)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let ours = default_probe(64, 0.0);
    assert_eq!(reference.len(), ours.len());
    for (i, (r, o)) in reference.iter().zip(&ours).enumerate() {
        assert!(
            (o.re as f64 - r).abs() < 1e-6 && o.im == 0.0,
            "pixel {i}: {o} vs {r}"
        );
    }
}
