//! LSQML (Odstrčil, Menzel and Guizar-Sicairos 2018), minibatch by minibatch, with the choices
//! pty-chi makes where the paper leaves room (but the far-field step, below). For a batch:
//!
//! - exit waves ψ_j = P·O_j, far fields Ψ_j, and for the Gaussian model a step of the far field half
//!   way to the measured moduli: χ_j = ½ (F⁻¹(Π(Ψ_j)) − ψ_j), Π the projection onto the measured
//!   moduli (pty-chi's gradient of Eq. 12b carries a factor 2 that its α = ½ of Eq. 16 cancels, so
//!   it moves all the way; the half step scores better on this project's data, see the README);
//! - the object's direction ΔO = Σ_j Sᵀ_j(P*·χ_j) / √(D² + (δ·max D)²), D = Σ_all Sᵀ_j|P|² the whole
//!   scan's illumination (Eq. 24b, 25b), and the probe's ΔP = mean_j O_j*·χ_j (Eq. 24a, averaged);
//! - for each pattern, the steps (α_j, β_j) that minimise ‖χ_j − α y_j − β z_j‖², y_j = P·S_j(ΔO),
//!   z_j = ΔP·O_j, from the 2 x 2 normal equations (Eq. 22) whose diagonal is raised by λ = 0.1 of its
//!   batch mean (so patterns the directions barely touch cannot take huge steps), clipped at 0;
//! - the object moves by the mean of the α_j with 10 % trimmed from each end, and, when the probe is
//!   refined, the probe by the mean β_j; the probe is then scaled back to its starting power (object
//!   and probe are otherwise free to trade a constant factor);
//! - with position correction, each pattern moves by a step towards the shift that best explains its
//!   χ_j through the object's gradient at its patch (capped per epoch).

use ptycho_kernels::{Backend, Tensor};

use super::device::{far_field, near_field, sub, DeviceScan, EpochCost};
use super::{Engine, Estimate, ReconError, Scan};
use ptycho_kernels::Complex32;
use rustfft::num_complex::Complex64;

#[derive(Clone, Debug)]
pub struct LsqmlConfig {
    pub batch_size: usize,
    /// Refine the probe from this epoch on (1-based); None: the probe stays fixed.
    pub probe_from_epoch: Option<usize>,
    /// δ of the object's preconditioner √(D² + (δ·max D)²).
    pub regularization: f32,
    pub noise: NoiseModel,
    /// Gaussian model: the fraction of the way to the projection the far field moves (½; pty-chi 1).
    pub far_field_step: f32,
    /// λ: each pattern's normal equations have their diagonal raised by this fraction of the
    /// batch mean.
    pub step_damping: f64,
    /// Draw new random batches every epoch from this seed (pty-chi's default batching); None: the
    /// same batches, in scan order, every epoch.
    pub shuffle_seed: Option<u64>,
    /// Correct the scan positions from this epoch on (1-based); None: they stay as given.
    pub positions_from_epoch: Option<usize>,
    /// The fraction of each pattern's best shift taken per epoch.
    pub position_step: f64,
    /// The longest shift one epoch may make, in pixels.
    pub position_limit: f64,
    /// Solve the object's step jointly with the probe direction's even while the probe is fixed,
    /// as pty-chi does. The probe term then takes up part of χ that the object step would otherwise
    /// fit, which damps the object's steps: better on noisy data, slower on clean data.
    pub joint_step: bool,
}

impl Default for LsqmlConfig {
    fn default() -> Self {
        Self {
            batch_size: 96,
            probe_from_epoch: None,
            regularization: 0.1,
            noise: NoiseModel::Gaussian,
            far_field_step: 0.5,
            step_damping: 0.1,
            joint_step: true,
            shuffle_seed: None,
            positions_from_epoch: None,
            position_step: 0.5,
            position_limit: 1.0,
        }
    }
}

/// Fraction of the per-pattern steps trimmed from each end before their mean is taken.
const STEP_TRIM: f64 = 0.1;

/// The likelihood of the measured patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseModel {
    /// Gaussian noise on the amplitudes: the far field moves halfway to the measured moduli.
    Gaussian,
    /// Poisson counts: the far field Ψ moves to Ψ·(1 − α_j (1 − y/|Ψ|²)), y the measured intensity,
    /// with each pattern's α_j from the line search PtychoShelves and pty-chi use (two rounds, each
    /// averaged with the batch's previous mean step, clipped to [0, 1]; without pty-chi's random
    /// perturbation, so runs stay deterministic).
    Poisson,
}

pub struct Lsqml<S> {
    scan: DeviceScan<S>,
    /// Poisson model: each pattern's last far-field step (starts at ½).
    far_field_steps: Vec<f64>,
    config: LsqmlConfig,
    /// √(D² + (δ·max D)²), (H, W) float32.
    denominator: Tensor<S>,
    probe_power: f64,
    epochs_done: usize,
}

/// √(D² + (δ·max D)²) of the illumination D, computed on the host (it changes only with the probe).
fn preconditioner<B: Backend>(
    b: &B,
    illumination: &Tensor<B::Storage>,
    delta: f32,
) -> Result<Tensor<B::Storage>, ReconError> {
    let d = b.download_f32(illumination)?;
    let floor = delta * d.iter().copied().fold(0.0f32, f32::max);
    let values: Vec<f32> = d.iter().map(|v| v.hypot(floor)).collect();
    Ok(b.upload_f32(illumination.shape(), &values)?)
}

/// The Poisson model's far-field update of a batch, Ψ·(1 − α_j ξ) with ξ = 1 − y/(|Ψ|² + ε), and
/// each pattern's α_j, on the host in f64: two rounds of α = Σ ξ(|Ψ|² − y/(1 − ᾱ ξ)) / Σ ξ²|Ψ|²,
/// each averaged with the batch's previous mean ᾱ and clipped to [0, 1]. `steps` holds the batch's
/// previous α_j and receives the new ones.
fn poisson_far_field<B: Backend>(
    b: &B,
    spectrum: &Tensor<B::Storage>,
    amplitude: &Tensor<B::Storage>,
    steps: &mut [f64],
) -> Result<Tensor<B::Storage>, ReconError> {
    let psi = b.download_c64(spectrum)?;
    let a = b.download_f32(amplitude)?;
    let nn = psi.len() / steps.len().max(1);
    let predicted: Vec<f64> = psi.iter().map(|v| v.norm_sqr() as f64).collect();
    let measured: Vec<f64> = a.iter().map(|&v| (v as f64) * (v as f64)).collect();
    // pty-chi's ε = 1e-5 in measured-intensity units (A²); here intensities are N²·A².
    let eps = 1e-5 * nn as f64;
    let xi: Vec<f64> = predicted
        .iter()
        .zip(&measured)
        .map(|(p, y)| 1.0 - y / (p + eps))
        .collect();
    for _ in 0..2 {
        let previous = steps.iter().sum::<f64>() / steps.len().max(1) as f64;
        for (j, step) in steps.iter_mut().enumerate() {
            let range = j * nn..(j + 1) * nn;
            let (mut numerator, mut denominator) = (0.0, 0.0);
            for ((x, p), y) in xi[range.clone()]
                .iter()
                .zip(&predicted[range.clone()])
                .zip(&measured[range])
            {
                // A pixel that counted nothing pulls its prediction to zero whatever the step.
                let pulled = if *y > 0.0 {
                    y / (1.0 - previous * x)
                } else {
                    0.0
                };
                numerator += x * (p - pulled);
                denominator += x * x * p;
            }
            let alpha = if denominator > 0.0 {
                numerator / denominator
            } else {
                0.0
            };
            *step = (0.5 * previous + 0.5 * alpha).clamp(0.0, 1.0);
        }
    }
    let moved: Vec<Complex32> = psi
        .iter()
        .zip(&xi)
        .enumerate()
        .map(|(i, (v, x))| v * (1.0 - steps[i / nn] * x) as f32)
        .collect();
    Ok(b.upload_c64(spectrum.shape(), &moved)?)
}

/// Each pattern's position step: the shift (dx, dy) that best explains χ_j by moving the patch,
/// Re⟨χ_j, g_j⟩ / ‖g_j‖² along each axis with g_j = P·∂O_j (a central difference of the extraction
/// over ±½ px), times the configured step, its length capped at the configured limit.
fn position_shifts<B: Backend>(
    b: &B,
    scan: &DeviceScan<B::Storage>,
    k: usize,
    chi: &Tensor<B::Storage>,
    config: &LsqmlConfig,
) -> Result<Vec<[f64; 2]>, ReconError> {
    let batch = &scan.batches[k];
    let origins: Vec<f32> = batch
        .indices
        .iter()
        .flat_map(|&i| [scan.origins[2 * i], scan.origins[2 * i + 1]])
        .collect();
    let nn = scan.n * scan.n;
    let gradient = |axis: usize| -> Result<Vec<Complex32>, ReconError> {
        let moved = |delta: f32| -> Result<Tensor<B::Storage>, ReconError> {
            let o: Vec<f32> = origins
                .iter()
                .enumerate()
                .map(|(i, v)| if i % 2 == axis { v + delta } else { *v })
                .collect();
            let o = b.upload_f32(&[batch.len, 2], &o)?;
            Ok(b.extract_patches(&scan.object, &o, scan.n)?)
        };
        let difference = sub(b, &moved(0.5)?, &moved(-0.5)?)?;
        Ok(b.download_c64(&b.mul(&difference, &scan.probe)?)?)
    };
    let (gx, gy) = (gradient(0)?, gradient(1)?);
    let chi = b.download_c64(chi)?;
    let step = |c: &[Complex32], g: &[Complex32]| {
        let (inner, power) = c.iter().zip(g).fold((0.0, 0.0), |(i, p), (c, g)| {
            (
                i + c.re as f64 * g.re as f64 + c.im as f64 * g.im as f64,
                p + g.norm_sqr() as f64,
            )
        });
        if power > 0.0 {
            inner / power
        } else {
            0.0
        }
    };
    Ok((0..batch.len)
        .map(|j| {
            let range = j * nn..(j + 1) * nn;
            let shift = [
                config.position_step * step(&chi[range.clone()], &gx[range.clone()]),
                config.position_step * step(&chi[range.clone()], &gy[range]),
            ];
            let length = shift[0].hypot(shift[1]);
            if length > config.position_limit {
                let scale = config.position_limit / length;
                [shift[0] * scale, shift[1] * scale]
            } else {
                shift
            }
        })
        .collect())
}

/// The mean of `steps` with `STEP_TRIM` of them cut from each end.
fn trimmed_mean(mut steps: Vec<f64>) -> f64 {
    steps.sort_by(f64::total_cmp);
    let cut = (steps.len() as f64 * STEP_TRIM) as usize;
    let kept = &steps[cut..steps.len() - cut];
    kept.iter().sum::<f64>() / kept.len().max(1) as f64
}

/// Each pattern's (α_j, β_j) minimising ‖χ_j − α y_j − β z_j‖² with the damped normal equations: the
/// sums per pattern on the device, the 2 x 2 solves on the host in f64.
fn joint_steps<B: Backend>(
    b: &B,
    chi: &Tensor<B::Storage>,
    y: &Tensor<B::Storage>,
    z: Option<&Tensor<B::Storage>>,
    damping: f64,
) -> Result<Vec<(f64, f64)>, ReconError> {
    // Per-pattern sums on the device: only 5 numbers per pattern come back.
    let dot =
        |u: &Tensor<B::Storage>, v: &Tensor<B::Storage>| -> Result<Vec<Complex64>, ReconError> {
            Ok(b.download_c64(&b.pattern_dot(u, v)?)?
                .into_iter()
                .map(|c| Complex64::new(c.re as f64, c.im as f64))
                .collect())
        };
    let (yy, ychi) = (dot(y, y)?, dot(y, chi)?);
    // Without a probe direction its sums are zero, and the object's step is solved alone.
    let (yz, zz, zchi) = match z {
        Some(z) => (dot(y, z)?, dot(z, z)?, dot(z, chi)?),
        None => {
            let zero = vec![Complex64::default(); yy.len()];
            (zero.clone(), zero.clone(), zero)
        }
    };
    // (a11, a12, a22, b1, b2) per pattern.
    let sums: Vec<(f64, Complex64, f64, f64, f64)> = (0..yy.len())
        .map(|j| (yy[j].re, yz[j].conj(), zz[j].re, ychi[j].re, zchi[j].re))
        .collect();
    let count = sums.len().max(1) as f64;
    let damp_y = damping * sums.iter().map(|s| s.0).sum::<f64>() / count;
    let damp_z = damping * sums.iter().map(|s| s.2).sum::<f64>() / count;
    Ok(sums
        .iter()
        .map(|&(a11, a12, a22, b1, b2)| {
            let (a11, a22) = (a11 + damp_y, a22 + damp_z);
            if a22 <= 0.0 {
                // No probe direction: the object's step alone.
                return (if a11 > 0.0 { (b1 / a11).max(0.0) } else { 0.0 }, 0.0);
            }
            let det = a11 * a22 - a12.norm_sqr();
            if det <= 0.0 {
                return (0.0, 0.0);
            }
            let alpha = (a22 * b1 - (a12 * b2).re) / det;
            let beta = (a11 * b2 - (a12.conj() * b1).re) / det;
            (alpha.max(0.0), beta.max(0.0))
        })
        .collect())
}

impl<S> Lsqml<S> {
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        scan: &Scan<'_>,
        estimate: &Estimate,
        config: LsqmlConfig,
    ) -> Result<Self, ReconError> {
        let device = DeviceScan::new(b, scan, estimate, config.batch_size)?;
        let illumination = device.illumination(b)?;
        let denominator = preconditioner(b, &illumination, config.regularization)?;
        let probe_power = device.probe_power(b)?;
        Ok(Self {
            far_field_steps: vec![0.5; device.patterns],
            scan: device,
            config,
            denominator,
            probe_power,
            epochs_done: 0,
        })
    }
}

impl<B: Backend> Engine<B> for Lsqml<B::Storage> {
    fn name(&self) -> &'static str {
        "lsqml"
    }

    fn epoch(&mut self, b: &B) -> Result<f64, ReconError> {
        self.epochs_done += 1;
        let refine_probe = self
            .config
            .probe_from_epoch
            .is_some_and(|first| self.epochs_done >= first);
        let correct_positions = self
            .config
            .positions_from_epoch
            .is_some_and(|first| self.epochs_done >= first);
        if let Some(seed) = self.config.shuffle_seed {
            self.scan.reshuffle(b, seed, self.epochs_done)?;
        }
        let n = self.scan.n;
        let mut cost = EpochCost::default();
        for k in 0..self.scan.batches.len() {
            let batch = &self.scan.batches[k];
            let patches = b.extract_patches(&self.scan.object, &batch.origins, n)?;
            let psi = b.mul(&patches, &self.scan.probe)?;
            let spectrum = far_field(b, &psi)?;
            let (projected, residual) = b.modulus_project(&spectrum, &batch.amplitude)?;
            cost.add(b, &residual)?;
            let chi = match self.config.noise {
                NoiseModel::Gaussian => b.scale(
                    &sub(b, &near_field(b, &projected)?, &psi)?,
                    self.config.far_field_step,
                )?,
                NoiseModel::Poisson => {
                    let mut steps: Vec<f64> = batch
                        .indices
                        .iter()
                        .map(|&i| self.far_field_steps[i])
                        .collect();
                    let moved = poisson_far_field(b, &spectrum, &batch.amplitude, &mut steps)?;
                    for (&i, step) in batch.indices.iter().zip(steps) {
                        self.far_field_steps[i] = step;
                    }
                    sub(b, &near_field(b, &moved)?, &psi)?
                }
            };

            let numerator = b.scatter_patches(
                &b.mul_conj(&chi, &self.scan.probe)?,
                &batch.origins,
                &batch.table,
            )?;
            let object_direction = b.div_real(&numerator, &self.denominator)?;
            let object_wave = b.mul(
                &b.extract_patches(&object_direction, &batch.origins, n)?,
                &self.scan.probe,
            )?;
            // The probe's direction, needed for its own update and for the joint solve.
            let probe_direction = if refine_probe || self.config.joint_step {
                Some(b.scale(
                    &b.sum_channels(&b.mul_conj(&chi, &patches)?)?,
                    1.0 / batch.len as f32,
                )?)
            } else {
                None
            };
            let probe_wave = probe_direction
                .as_ref()
                .map(|direction| b.mul(&patches, direction))
                .transpose()?;
            let steps = joint_steps(
                b,
                &chi,
                &object_wave,
                probe_wave.as_ref(),
                self.config.step_damping,
            )?;
            let shifts = if correct_positions {
                // The whole exit-wave update: the Gaussian model's χ is a fraction of it.
                let scaled;
                let full = match self.config.noise {
                    NoiseModel::Gaussian => {
                        scaled = b.scale(&chi, 1.0 / self.config.far_field_step)?;
                        &scaled
                    }
                    NoiseModel::Poisson => &chi,
                };
                Some(position_shifts(b, &self.scan, k, full, &self.config)?)
            } else {
                None
            };

            let alpha = trimmed_mean(steps.iter().map(|s| s.0).collect());
            self.scan.object = b.add(
                &self.scan.object,
                &b.scale(&object_direction, alpha as f32)?,
            )?;
            if let Some(shifts) = shifts {
                self.scan.move_batch(b, k, &shifts)?;
            }
            if let (true, Some(direction)) = (refine_probe, &probe_direction) {
                let beta = steps.iter().map(|s| s.1).sum::<f64>() / steps.len() as f64;
                self.scan.probe = b.add(&self.scan.probe, &b.scale(direction, beta as f32)?)?;
            }
        }
        if refine_probe {
            self.scan.keep_probe_power(b, self.probe_power)?;
            let illumination = self.scan.illumination(b)?;
            self.denominator = preconditioner(b, &illumination, self.config.regularization)?;
        }
        cost.finish(b, &self.scan)
    }

    fn estimate(&self, b: &B) -> Result<Estimate, ReconError> {
        self.scan.estimate(b)
    }

    fn positions(&self) -> Vec<[f64; 2]> {
        self.scan.positions()
    }
}
