//! The probe (physics-and-model.md §3.6, §4.4): the disk mask, the normalisation the model applies, the
//! built-in synthetic probe, and the illumination ψ = P ⊙ O with its gradients with respect to the object
//! and to the probe.

use ptycho_kernels::{Backend, Complex32, KernelError, Tensor};

use super::PhysicsError;

/// The modern default divisor of the probe normalisation (`probe_scale`).
pub const DEFAULT_PROBE_SCALE: f64 = 4.0;

/// The reference's width parameter of the synthetic probe (`default_probe_scale`).
const DEFAULT_PROBE_WIDTH: f64 = 0.7;

/// The disk M: 1 where sqrt(x² + y²) < N/4 for centred indices i − N/2 + 0.5, else 0 (row-major N x N).
pub fn disk_mask(n: usize) -> Vec<f32> {
    let centred = |i: usize| i as f64 - (n / 2) as f64 + 0.5;
    let radius = (n / 4) as f64;
    (0..n * n)
        .map(|i| {
            let (y, x) = (centred(i / n), centred(i % n));
            if (x * x + y * y).sqrt() < radius {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// P / (probe_scale · mean_{N×N} |M ⊙ P|), so that mean |M ⊙ P| = 1/probe_scale. The mask is always
/// used here, whether or not the forward applies it (as the reference).
pub fn normalize(
    probe: &[Complex32],
    n: usize,
    probe_scale: f64,
) -> Result<Vec<Complex32>, PhysicsError> {
    if probe.len() != n * n {
        return Err(PhysicsError::Input(format!(
            "the probe has {} values, expected N x N = {n} x {n}",
            probe.len()
        )));
    }
    if probe.iter().any(|p| !p.re.is_finite() || !p.im.is_finite()) {
        return Err(PhysicsError::Input(
            "the probe holds NaN or infinite values".into(),
        ));
    }
    let mask = disk_mask(n);
    let masked_mean = probe
        .iter()
        .zip(&mask)
        .map(|(p, m)| p.norm() as f64 * *m as f64)
        .sum::<f64>()
        / (n * n) as f64;
    if masked_mean <= 0.0 {
        return Err(PhysicsError::Input(format!(
            "the probe is zero inside the disk of radius N/4 = {}, so it cannot be normalised",
            n / 4
        )));
    }
    let factor = (1.0 / (probe_scale * masked_mean)) as f32;
    Ok(probe.iter().map(|p| p * factor).collect())
}

/// The phase curvature `ptycho simulate` gives its built-in probe unless told otherwise: a defocused
/// probe. With the reference's real, centrosymmetric probe (curvature 0), every object O has an exact
/// twin conj(O(−r)) that gives the same diffraction, and the PINN learns a blend of the two; measured
/// probes are never symmetric, and study-pipeline.md §2.5 specifies a defocused one for the synthetic
/// stand-in (bench/results/quality/README.md: phase SSIM 0.86 → 0.93 at dose 1e4).
pub const DEFAULT_PROBE_CURVATURE: f64 = 3.0;

/// The reference's synthetic probe, not yet normalised: the outer product of a Gaussian window of std
/// N/(0.7·π²) (max 1), thresholded at 0.5 (a disk of radius ≈ 0.17 N), smoothed by a Gaussian of σ = 1
/// with reflecting borders, plus 1e-9. `curvature` adds a quadratic phase of that many radians at the
/// distance N/4 from the centre (0 gives the reference's real probe).
pub fn default_probe(n: usize, curvature: f64) -> Vec<Complex32> {
    let std = n as f64 / (DEFAULT_PROBE_WIDTH * std::f64::consts::PI.powi(2));
    let window: Vec<f64> = (0..n)
        .map(|i| {
            let d = i as f64 - (n as f64 - 1.0) / 2.0;
            (-d * d / (2.0 * std * std)).exp()
        })
        .collect();
    let peak = window.iter().cloned().fold(0.0, f64::max);
    let disk: Vec<f64> = (0..n * n)
        .map(|i| {
            if window[i / n] * window[i % n] / (peak * peak) > 0.5 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let smooth = gaussian_filter_reflect(&disk, n, n, 1.0);
    let quarter = (n / 4) as f64;
    (0..n * n)
        .map(|i| {
            let y = (i / n) as f64 - (n / 2) as f64;
            let x = (i % n) as f64 - (n / 2) as f64;
            let phase = curvature * (x * x + y * y) / (quarter * quarter);
            let amplitude = smooth[i] + 1e-9;
            Complex32::new(
                (amplitude * phase.cos()) as f32,
                (amplitude * phase.sin()) as f32,
            )
        })
        .collect()
}

/// scipy.ndimage.gaussian_filter in mode 'reflect' (d c b a | a b c d | d c b a), truncated at 4σ.
pub fn gaussian_filter_reflect(image: &[f64], rows: usize, cols: usize, sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as isize;
    let mut weights: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    let reflect = |i: isize, len: usize| -> usize {
        let len = len as isize;
        let period = 2 * len;
        let m = i.rem_euclid(period);
        (if m < len { m } else { period - 1 - m }) as usize
    };
    let mut along_rows = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            along_rows[r * cols + c] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * image[r * cols + reflect(c as isize + k as isize - radius, cols)])
                .sum();
        }
    }
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    w * along_rows[reflect(r as isize + k as isize - radius, rows) * cols + c]
                })
                .sum();
        }
    }
    out
}

/// ψ = P ⊙ O for patches O (..., N, N) and one probe P (N, N), both complex64.
pub fn illuminate<B: Backend>(
    b: &B,
    patches: &Tensor<B::Storage>,
    probe: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, KernelError> {
    b.mul(patches, probe)
}

/// ∂L/∂O = ∂L/∂ψ ⊙ conj(P) (gradients as ∂/∂Re + i ∂/∂Im).
pub fn illuminate_backward_object<B: Backend>(
    b: &B,
    grad_psi: &Tensor<B::Storage>,
    probe: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, KernelError> {
    b.mul_conj(grad_psi, probe)
}

/// ∂L/∂P = Σ over all patches of ∂L/∂ψ ⊙ conj(O): (N, N).
pub fn illuminate_backward_probe<B: Backend>(
    b: &B,
    grad_psi: &Tensor<B::Storage>,
    patches: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, KernelError> {
    let shape = patches.shape();
    let (rows, cols) = match *shape {
        [.., r, c] => (r, c),
        _ => {
            return Err(KernelError::Shape {
                op: "illuminate_backward_probe",
                expected: "patches (..., N, N)".into(),
                found: shape.to_vec(),
            })
        }
    };
    let images = patches.len() / (rows * cols);
    let per_patch = b
        .mul_conj(grad_psi, patches)?
        .reshape(&[1, images, rows, cols])?;
    b.sum_channels(&per_patch)?.reshape(&[rows, cols])
}
