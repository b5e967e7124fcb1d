//! LSQML (Odstrčil, Menzel and Guizar-Sicairos 2018) with the Gaussian noise model, minibatch by
//! minibatch. For a batch: exit waves ψ_j = P·O_j, far fields Ψ_j, their projection onto the measured
//! moduli, the exit-wave update χ_j = F⁻¹(Π(Ψ_j)) − ψ_j; the object's update direction
//! ΔO = Σ_j Sᵀ_j(P*·χ_j) / (Σ_all |P|² + δ·max), preconditioned by the whole scan's illumination; and
//! the step α that minimises Σ_j ‖χ_j − α P·S_j(ΔO)‖², solved in closed form. With probe refinement,
//! the probe's direction ΔP = Σ_j O_j*·χ'_j / (Σ_j |O_j|² + δ·max) is stepped the same way on what the
//! object step left of χ, and the probe is then scaled back to its starting power (the object and
//! probe are otherwise free to trade a constant factor).

use ptycho_kernels::{Backend, Tensor};

use super::device::{far_field, inner_and_power, near_field, sub, total, DeviceScan};
use super::{Engine, Estimate, ReconError, Scan};

#[derive(Clone, Debug)]
pub struct LsqmlConfig {
    pub batch_size: usize,
    /// Refine the probe from this epoch on (1-based); None: the probe stays fixed.
    pub probe_from_epoch: Option<usize>,
    /// δ of the preconditioners, relative to their maximum.
    pub regularization: f32,
}

impl Default for LsqmlConfig {
    fn default() -> Self {
        Self {
            batch_size: 96,
            probe_from_epoch: None,
            regularization: 1e-2,
        }
    }
}

pub struct Lsqml<S> {
    scan: DeviceScan<S>,
    config: LsqmlConfig,
    /// Σ_all |P|² + δ·max, (H, W) float32.
    denominator: Tensor<S>,
    probe_power: f64,
    epochs_done: usize,
}

/// `illumination + δ·max(illumination)` as a float32 tensor.
pub(super) fn regularised<B: Backend>(
    b: &B,
    illumination: &Tensor<B::Storage>,
    delta: f32,
) -> Result<Tensor<B::Storage>, ReconError> {
    let max = b
        .download_f32(illumination)?
        .into_iter()
        .fold(0.0f32, f32::max);
    Ok(b.offset(illumination, delta * max)?)
}

impl<S> Lsqml<S> {
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        scan: &Scan<'_>,
        estimate: &Estimate,
        config: LsqmlConfig,
    ) -> Result<Self, ReconError> {
        let device = DeviceScan::new(b, scan, estimate, config.batch_size)?;
        let (illumination, _) = device.illumination(b)?;
        let denominator = regularised(b, &illumination, config.regularization)?;
        let probe_power = estimate
            .probe
            .data
            .iter()
            .map(|v| v.norm_sqr() as f64)
            .sum();
        Ok(Self {
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
        let n = self.scan.n;
        let mut cost = 0.0;
        for batch in &self.scan.batches {
            let patches = b.extract_patches(&self.scan.object, &batch.origins, n)?;
            let psi = b.mul(&patches, &self.scan.probe)?;
            let (projected, residual) =
                b.modulus_project(&far_field(b, &psi)?, &batch.amplitude)?;
            cost += total(b, &residual)?;
            let chi = sub(b, &near_field(b, &projected)?, &psi)?;

            let numerator = b.scatter_patches(
                &b.mul_conj(&chi, &self.scan.probe)?,
                &batch.origins,
                &batch.table,
            )?;
            let direction = b.div_real(&numerator, &self.denominator)?;
            let step_wave = b.mul(
                &b.extract_patches(&direction, &batch.origins, n)?,
                &self.scan.probe,
            )?;
            let (inner, power) = inner_and_power(b, &chi, &step_wave)?;
            let alpha = if power > 0.0 {
                (inner / power).max(0.0)
            } else {
                0.0
            };
            self.scan.object = b.add(&self.scan.object, &b.scale(&direction, alpha as f32)?)?;

            if refine_probe {
                let chi = sub(b, &chi, &b.scale(&step_wave, alpha as f32)?)?;
                let numerator = b.sum_channels(&b.mul_conj(&chi, &patches)?)?;
                let weight = b.sum_channels(&b.abs2(&patches)?)?;
                let direction = b.div_real(
                    &numerator,
                    &regularised(b, &weight, self.config.regularization)?,
                )?;
                let step_wave = b.mul(&patches, &direction)?;
                let (inner, power) = inner_and_power(b, &chi, &step_wave)?;
                if power > 0.0 {
                    let beta = (inner / power).max(0.0) as f32;
                    self.scan.probe = b.add(&self.scan.probe, &b.scale(&direction, beta)?)?;
                }
            }
        }
        if refine_probe {
            let power: f64 = b
                .download_c64(&self.scan.probe)?
                .iter()
                .map(|v| v.norm_sqr() as f64)
                .sum();
            if power > 0.0 {
                let factor = (self.probe_power / power).sqrt() as f32;
                self.scan.probe = b.scale(&self.scan.probe, factor)?;
            }
            let (illumination, _) = self.scan.illumination(b)?;
            self.denominator = regularised(b, &illumination, self.config.regularization)?;
        }
        let nn = (n * n) as f64;
        Ok(cost / nn / (self.scan.patterns as f64 * nn))
    }

    fn estimate(&self, b: &B) -> Result<Estimate, ReconError> {
        self.scan.estimate(b)
    }
}
