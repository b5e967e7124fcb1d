//! ePIE (Maiden and Rodenburg 2009) and rPIE (Maiden, Johnson and Li 2017), batched as pty-chi runs
//! them: for a batch, the exit-wave updates χ_j = F⁻¹(Π(F ψ_j)) − ψ_j of every pattern are summed back
//! onto the object at once,
//!   ePIE: O += α Σ_j Sᵀ_j(P*·χ_j) / max |P|²
//!   rPIE: O += α Σ_j Sᵀ_j(P*·χ_j) / ((1 − γ) Σ_j Sᵀ_j|P|² + γ max |P|²)
//! and, from `probe_from_epoch` on, the probe refined by the mean over the batch of each pattern's
//! update (ePIE: β O_j*·χ_j / max |O_j|²; rPIE: β O_j*·χ_j / ((1 − γ)|O_j|² + γ max |O_j|²)), then
//! scaled back to its starting power.

use ptycho_kernels::{Backend, Tensor};

use super::device::{far_field, largest, near_field, sub, DeviceScan, EpochCost};
use super::{Engine, Estimate, ReconError, Scan};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PieVariant {
    Epie,
    /// γ of the denominator.
    Rpie {
        gamma: f32,
    },
}

#[derive(Clone, Debug)]
pub struct PieConfig {
    pub batch_size: usize,
    /// The object step α.
    pub alpha: f32,
    pub variant: PieVariant,
    /// Refine the probe from this epoch on (1-based), with step β.
    pub probe_from_epoch: Option<usize>,
    pub probe_step: f32,
}

pub struct Pie<S> {
    scan: DeviceScan<S>,
    config: PieConfig,
    max_power: f32,
    /// rPIE: each batch's denominator, (H, W) float32 (for the probe the batches started with).
    denominators: Vec<Tensor<S>>,
    probe_power: f64,
    epochs_done: usize,
}

impl<S> Pie<S> {
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        scan: &Scan<'_>,
        estimate: &Estimate,
        config: PieConfig,
    ) -> Result<Self, ReconError> {
        let device = DeviceScan::new(b, scan, estimate, config.batch_size)?;
        let max_power = max_power(b, &device)?;
        if max_power <= 0.0 {
            return Err(ReconError::Scan("the probe is zero everywhere".into()));
        }
        let denominators = match config.variant {
            PieVariant::Rpie { gamma } => rpie_denominators(b, &device, gamma)?,
            PieVariant::Epie => Vec::new(),
        };
        Ok(Self {
            probe_power: device.probe_power(b)?,
            scan: device,
            config,
            max_power,
            denominators,
            epochs_done: 0,
        })
    }
}

/// max |P|².
fn max_power<B: Backend>(b: &B, scan: &DeviceScan<B::Storage>) -> Result<f32, ReconError> {
    largest(b, &b.abs2(&scan.probe)?)
}

/// rPIE's denominator of each batch, (1 − γ) Σ_j Sᵀ_j|P|² + γ max |P|².
fn rpie_denominators<B: Backend>(
    b: &B,
    scan: &DeviceScan<B::Storage>,
    gamma: f32,
) -> Result<Vec<Tensor<B::Storage>>, ReconError> {
    let max = max_power(b, scan)?;
    scan.batch_illumination(b)?
        .iter()
        .map(|covered| Ok(b.offset(&b.scale(covered, 1.0 - gamma)?, gamma * max)?))
        .collect()
}

impl<B: Backend> Engine<B> for Pie<B::Storage> {
    fn name(&self) -> &'static str {
        match self.config.variant {
            PieVariant::Epie => "epie",
            PieVariant::Rpie { .. } => "rpie",
        }
    }

    fn epoch(&mut self, b: &B) -> Result<f64, ReconError> {
        self.epochs_done += 1;
        let refine_probe = self
            .config
            .probe_from_epoch
            .is_some_and(|first| self.epochs_done >= first);
        let n = self.scan.n;
        let mut cost = EpochCost::default();
        for (k, batch) in self.scan.batches.iter().enumerate() {
            let patches = b.extract_patches(&self.scan.object, &batch.origins, n)?;
            let psi = b.mul(&patches, &self.scan.probe)?;
            let (projected, residual) =
                b.modulus_project(&far_field(b, &psi)?, &batch.amplitude)?;
            cost.add(b, &residual)?;
            let chi = sub(b, &near_field(b, &projected)?, &psi)?;
            let numerator = b.scatter_patches(
                &b.mul_conj(&chi, &self.scan.probe)?,
                &batch.origins,
                &batch.table,
            )?;
            let update = match self.config.variant {
                PieVariant::Epie => b.scale(&numerator, self.config.alpha / self.max_power)?,
                PieVariant::Rpie { .. } => b.scale(
                    &b.div_real(&numerator, &self.denominators[k])?,
                    self.config.alpha,
                )?,
            };
            self.scan.object = b.add(&self.scan.object, &update)?;
            if refine_probe {
                let weight = b.abs2(&patches)?;
                let max = largest(b, &weight)?.max(f32::MIN_POSITIVE);
                let numerator = b.mul_conj(&chi, &patches)?;
                let per_pattern = match self.config.variant {
                    PieVariant::Epie => b.scale(&numerator, 1.0 / max)?,
                    PieVariant::Rpie { gamma } => b.div_real(
                        &numerator,
                        &b.offset(&b.scale(&weight, 1.0 - gamma)?, gamma * max)?,
                    )?,
                };
                let step = self.config.probe_step / batch.len as f32;
                let update = b.scale(&b.sum_channels(&per_pattern)?, step)?;
                self.scan.probe = b.add(&self.scan.probe, &update)?;
            }
        }
        if refine_probe {
            self.scan.keep_probe_power(b, self.probe_power)?;
            if let PieVariant::Rpie { gamma } = self.config.variant {
                self.denominators = rpie_denominators(b, &self.scan, gamma)?;
            }
            self.max_power = max_power(b, &self.scan)?;
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
