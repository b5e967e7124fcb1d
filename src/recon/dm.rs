//! The difference map (Thibault et al. 2008, 2009). The exit waves ψ_j of every pattern are the
//! state. An epoch:
//!
//! - forms the object that best explains them (the overlap projection), with inertia c = δ·max of the
//!   illumination pulling towards the previous object O′: O = (Σ_j Sᵀ_j(P*·ψ_j) + c·O′) /
//!   (Σ_j Sᵀ_j|P|² + c). The inertia, unlike a plain δ in the denominator, leaves a fixed point
//!   unbiased: where O = O′ it is the least-squares object, however weakly a pixel is lit;
//! - from `probe_from_epoch` on, the probe the same way from the new object's patches O_j,
//!   P = (Σ_j O_j*·ψ_j + c_P·P′) / (Σ_j |O_j|² + c_P) with c_P = δ·max Σ_j |O_j|², then scaled
//!   back to its starting power (object and probe could otherwise trade a factor);
//! - its exit waves φ_j = P·S_j(O), and moves every ψ_j by ψ_j += F_w(2φ_j − ψ_j) − φ_j.
//!
//! F_w = w·Π_F + (1 − w)·identity, Π_F replacing the far field's modulus by the measured one, is the
//! proximal map of the amplitude misfit ½‖|Fψ| − a‖² with weight w / (1 − w). With w = 1 it is the
//! projection, and the epoch is the plain difference map, whose fixed point fits the noise of
//! measured data: on Poisson data it is best after a few epochs and then degrades. With w < 1 the
//! iteration is Douglas–Rachford splitting of the amplitude least-squares problem (the view of
//! Wen, Yang, Liu and Marchesini 2012, and of Chang, Enfedaque and Marchesini 2019), whose fixed
//! point is that problem's solution, as LSQML's is: it settles instead of degrading.
//!
//! With β < 1 the update is RAAR's (Luke 2005), ψ_j ← β(ψ_j + F_w(2φ_j − ψ_j) − φ_j) + (1 − β)φ_j.

use ptycho_kernels::{Backend, Tensor};

use super::device::{far_field, largest, near_field, sub, DeviceScan, EpochCost};
use super::{Engine, Estimate, ReconError, Scan};

#[derive(Clone, Debug)]
pub struct DmConfig {
    pub batch_size: usize,
    /// RAAR's β (Luke 2005): ψ ← β(ψ + F_w(2φ − ψ) − φ) + (1 − β)φ; 1 is the plain difference map.
    pub beta: f32,
    /// w of the Fourier step F_w = w·Π_F + (1 − w)·identity; 1 is the projection of the plain
    /// difference map.
    pub fourier_weight: f32,
    /// δ of the object's (and the probe's) inertia, relative to the maximum of the denominator.
    pub regularization: f32,
    /// Refine the probe from this epoch on (1-based); None: the probe stays fixed.
    pub probe_from_epoch: Option<usize>,
}

impl DmConfig {
    pub const DEFAULT_REGULARIZATION: f32 = 1e-2;
    /// Half way to the projection. On the project's Poisson data at 1e4 photons (100 epochs,
    /// bench/results/recon) the amplitude / phase SSIM is 0.635 / 0.969 with w = 1, 0.725 / 0.992 at
    /// 0.7, 0.786 / 0.993 at 0.5 and 0.821 / 0.991 at 0.3, whose phase converges more slowly (a
    /// constant object at the same positions: 0.204 / 0.758).
    pub const DEFAULT_FOURIER_WEIGHT: f32 = 0.5;
}

impl Default for DmConfig {
    fn default() -> Self {
        Self {
            batch_size: 96,
            beta: 1.0,
            fourier_weight: Self::DEFAULT_FOURIER_WEIGHT,
            regularization: Self::DEFAULT_REGULARIZATION,
            probe_from_epoch: None,
        }
    }
}

pub struct DifferenceMap<S> {
    scan: DeviceScan<S>,
    config: DmConfig,
    /// Σ_j Sᵀ_j|P|², (H, W) float32, for the current probe.
    illumination: Tensor<S>,
    /// c = δ·max of the illumination.
    inertia: f32,
    /// ψ_j of each batch.
    waves: Vec<Tensor<S>>,
    probe_power: f64,
    epochs_done: usize,
}

impl<S> DifferenceMap<S> {
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        scan: &Scan<'_>,
        estimate: &Estimate,
        config: DmConfig,
    ) -> Result<Self, ReconError> {
        if !(config.fourier_weight > 0.0 && config.fourier_weight <= 1.0) {
            return Err(ReconError::Scan(format!(
                "the Fourier weight (--fourier-weight) must be in (0, 1], got {}",
                config.fourier_weight
            )));
        }
        let device = DeviceScan::new(b, scan, estimate, config.batch_size)?;
        let illumination = device.illumination(b)?;
        let inertia = config.regularization * largest(b, &illumination)?;
        if inertia <= 0.0 {
            return Err(ReconError::Scan("the probe is zero everywhere".into()));
        }
        let waves = device
            .batches
            .iter()
            .map(|batch| device.exit_waves(b, batch))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            probe_power: device.probe_power(b)?,
            scan: device,
            config,
            illumination,
            inertia,
            waves,
            epochs_done: 0,
        })
    }

    /// O = (Σ_j Sᵀ_j(P*·ψ_j) + c·O′) / (Σ_j Sᵀ_j|P|² + c).
    fn update_object<B: Backend<Storage = S>>(&mut self, b: &B) -> Result<(), ReconError> {
        let mut numerator = b.scale(&self.scan.object, self.inertia)?;
        for (batch, psi) in self.scan.batches.iter().zip(&self.waves) {
            let part = b.scatter_patches(
                &b.mul_conj(psi, &self.scan.probe)?,
                &batch.origins,
                &batch.table,
            )?;
            numerator = b.add(&numerator, &part)?;
        }
        let denominator = b.offset(&self.illumination, self.inertia)?;
        self.scan.object = b.div_real(&numerator, &denominator)?;
        Ok(())
    }

    /// P = (Σ_j O_j*·ψ_j + c_P·P′) / (Σ_j |O_j|² + c_P), at the starting power; then the
    /// illumination and the object's inertia for the new probe.
    fn update_probe<B: Backend<Storage = S>>(&mut self, b: &B) -> Result<(), ReconError> {
        let n = self.scan.n;
        let mut sums: Option<(Tensor<S>, Tensor<S>)> = None;
        for (batch, psi) in self.scan.batches.iter().zip(&self.waves) {
            let patches = b.extract_patches(&self.scan.object, &batch.origins, n)?;
            let numerator = b.sum_channels(&b.mul_conj(psi, &patches)?)?;
            // O·O* = |O|² + 0i, summed as complex like the numerator.
            let weight = b.sum_channels(&b.mul_conj(&patches, &patches)?)?;
            sums = Some(match sums {
                None => (numerator, weight),
                Some((num, den)) => (b.add(&num, &numerator)?, b.add(&den, &weight)?),
            });
        }
        let (numerator, weight) = sums.expect("a scan has at least one batch");
        let weight = b.abs(&weight)?;
        let inertia = self.config.regularization * largest(b, &weight)?;
        let numerator = b.add(&numerator, &b.scale(&self.scan.probe, inertia)?)?;
        self.scan.probe = b.div_real(&numerator, &b.offset(&weight, inertia)?)?;
        self.scan.keep_probe_power(b, self.probe_power)?;
        self.illumination = self.scan.illumination(b)?;
        self.inertia = self.config.regularization * largest(b, &self.illumination)?;
        Ok(())
    }
}

impl<B: Backend> Engine<B> for DifferenceMap<B::Storage> {
    fn name(&self) -> &'static str {
        "dm"
    }

    fn epoch(&mut self, b: &B) -> Result<f64, ReconError> {
        self.epochs_done += 1;
        self.update_object(b)?;
        if self
            .config
            .probe_from_epoch
            .is_some_and(|first| self.epochs_done >= first)
        {
            self.update_probe(b)?;
        }

        let (w, beta) = (self.config.fourier_weight, self.config.beta);
        let mut cost = EpochCost::default();
        for (batch, psi) in self.scan.batches.iter().zip(self.waves.iter_mut()) {
            let phi = self.scan.exit_waves(b, batch)?;
            let (_, residual) = b.modulus_project(&far_field(b, &phi)?, &batch.amplitude)?;
            cost.add(b, &residual)?;
            let reflected = sub(b, &b.scale(&phi, 2.0)?, psi)?;
            let (projected, _) = b.modulus_project(&far_field(b, &reflected)?, &batch.amplitude)?;
            let projected = near_field(b, &projected)?;
            let fourier_step = if w == 1.0 {
                projected
            } else {
                b.add(&b.scale(&projected, w)?, &b.scale(&reflected, 1.0 - w)?)?
            };
            let step = sub(b, &fourier_step, &phi)?;
            *psi = if beta == 1.0 {
                b.add(psi, &step)?
            } else {
                b.add(
                    &b.scale(&b.add(psi, &step)?, beta)?,
                    &b.scale(&phi, 1.0 - beta)?,
                )?
            };
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
