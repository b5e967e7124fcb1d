//! The difference map (Thibault et al. 2008) with the probe held fixed. The exit waves ψ_j of every
//! pattern are the state; an epoch forms the object that best explains them,
//!   O = Σ_j Sᵀ_j(P*·ψ_j) / (Σ_j Sᵀ_j|P|² + δ·max),
//! its exit waves φ_j = P·S_j(O), and moves every ψ_j by ψ_j += Π_F(2φ_j − ψ_j) − φ_j, where Π_F
//! replaces the far field's modulus by the measured one. With β < 1 the update is RAAR's (Luke 2005),
//! ψ_j ← β(ψ_j + Π_F(2φ_j − ψ_j) − φ_j) + (1 − β)φ_j, which holds up better on noisy data.

use ptycho_kernels::{Backend, Tensor};

use super::device::{far_field, near_field, sub, DeviceScan, EpochCost};
use super::{Engine, Estimate, ReconError, Scan};

#[derive(Clone, Debug)]
pub struct DmConfig {
    pub batch_size: usize,
    /// RAAR's β (Luke 2005): ψ ← β(ψ + Π_F(2φ − ψ) − φ) + (1 − β)φ; 1 is the plain difference map.
    pub beta: f32,
    /// δ of the object's denominator, relative to its maximum.
    pub regularization: f32,
}

/// `illumination + δ·max(illumination)` as a float32 tensor.
fn regularised<B: Backend>(
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

impl DmConfig {
    pub const DEFAULT_REGULARIZATION: f32 = 1e-2;
}

pub struct DifferenceMap<S> {
    scan: DeviceScan<S>,
    beta: f32,
    denominator: Tensor<S>,
    /// ψ_j of each batch.
    waves: Vec<Tensor<S>>,
}

impl<S> DifferenceMap<S> {
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        scan: &Scan<'_>,
        estimate: &Estimate,
        config: DmConfig,
    ) -> Result<Self, ReconError> {
        let device = DeviceScan::new(b, scan, estimate, config.batch_size)?;
        let illumination = device.illumination(b)?;
        let denominator = regularised(b, &illumination, config.regularization)?;
        let waves = device
            .batches
            .iter()
            .map(|batch| device.exit_waves(b, batch))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            scan: device,
            beta: config.beta,
            denominator,
            waves,
        })
    }
}

impl<B: Backend> Engine<B> for DifferenceMap<B::Storage> {
    fn name(&self) -> &'static str {
        "dm"
    }

    fn epoch(&mut self, b: &B) -> Result<f64, ReconError> {
        let mut numerator: Option<Tensor<B::Storage>> = None;
        for (batch, psi) in self.scan.batches.iter().zip(&self.waves) {
            let part = b.scatter_patches(
                &b.mul_conj(psi, &self.scan.probe)?,
                &batch.origins,
                &batch.table,
            )?;
            numerator = Some(match numerator {
                None => part,
                Some(sum) => b.add(&sum, &part)?,
            });
        }
        let numerator = numerator.expect("a scan has at least one batch");
        self.scan.object = b.div_real(&numerator, &self.denominator)?;

        let mut cost = EpochCost::default();
        for (batch, psi) in self.scan.batches.iter().zip(self.waves.iter_mut()) {
            let phi = self.scan.exit_waves(b, batch)?;
            let (_, residual) = b.modulus_project(&far_field(b, &phi)?, &batch.amplitude)?;
            cost.add(b, &residual)?;
            let reflected = sub(b, &b.scale(&phi, 2.0)?, psi)?;
            let (projected, _) = b.modulus_project(&far_field(b, &reflected)?, &batch.amplitude)?;
            let step = sub(b, &near_field(b, &projected)?, &phi)?;
            *psi = if self.beta == 1.0 {
                b.add(psi, &step)?
            } else {
                b.add(
                    &b.scale(&b.add(psi, &step)?, self.beta)?,
                    &b.scale(&phi, 1.0 - self.beta)?,
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
