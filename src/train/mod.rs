//! Training (physics-and-model.md §7–8). The PINN step: normalised diffraction → network → amp·e^{iφ}
//! → the physics forward (merge per sample, extraction, probe, far field) → Poisson NLL against the
//! observed amplitudes s·X; then the backward pass through the physics and the network, and Adam.
//! The supervised baseline's step (§8.1): the same input → network → MAE against amplitude and phase
//! labels of the ground-truth patches.

pub mod run;
mod samples;

use thiserror::Error;

use crate::data::DataError;
use crate::model::ModelError;
use crate::persist::PersistError;
use crate::physics::PhysicsError;

use ptycho_kernels::ops::loss::LossKind;
use ptycho_kernels::ops::optim::AdamConfig;
use ptycho_kernels::{Backend, Complex32, KernelError, Tensor};

use crate::model::network::{Activations, Network};
use crate::model::{ModelConfig, ModelKind};
use crate::persist::weights::NamedTensor;
use crate::physics::forward::{
    default_canvas_size, mean_loss_grad, ForwardConfig, ForwardModel, ForwardPass,
};

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Kernel(#[from] KernelError),

    #[error(transparent)]
    Data(#[from] DataError),

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error(transparent)]
    Persist(#[from] PersistError),

    #[error(transparent)]
    Physics(#[from] PhysicsError),

    /// A file written beside the bundle (train.log).
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },

    /// Inputs or flags that cannot train, and runs that cannot go on; the message says which.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for TrainError {
    fn from(message: String) -> Self {
        TrainError::Invalid(message)
    }
}

impl From<&str> for TrainError {
    fn from(message: &str) -> Self {
        TrainError::Invalid(message.to_string())
    }
}

impl TrainError {
    fn io(file: &std::path::Path, error: std::io::Error) -> Self {
        TrainError::Io {
            file: file.display().to_string(),
            error,
        }
    }
}

/// What a batch is trained against.
pub enum Targets<S> {
    /// The PINN: relative offsets (B·C, 2) and the observed amplitudes s·X (B, C, N, N).
    Physics {
        relative: Tensor<S>,
        amplitude: Tensor<S>,
    },
    /// The supervised baseline: amplitude and phase labels (B, N, N, 1).
    Labels {
        amplitude: Tensor<S>,
        phase: Tensor<S>,
    },
}

/// A batch: the normalised diffraction X (B, C, N, N) and its targets.
pub struct Batch<S> {
    pub x: Tensor<S>,
    pub targets: Targets<S>,
}

/// A batch's loss as elementwise terms (one tensor per loss; the loss is the sum of their means) and
/// the gradients that go with it.
type TermsAndGrads<S> = (Vec<Tensor<S>>, Vec<Tensor<S>>);

/// One forward pass: the network's input and activations, and the physics pass (PINN only).
struct Pass<S> {
    input: Tensor<S>,
    acts: Activations<S>,
    physics: Option<ForwardPass<S>>,
}

/// A network with its objective, its optimizer state, and the step count. The PINN's objective is
/// the physics forward and the Poisson NLL; the baseline's is MAE on amplitude and phase labels.
pub struct Trainer<S> {
    pub network: Network<S>,
    physics: Option<ForwardModel<S>>,
    channels: usize,
    adam: AdamConfig,
    m: Vec<Tensor<S>>,
    v: Vec<Tensor<S>>,
    /// Adam steps taken.
    pub step: u64,
}

impl<S> Trainer<S> {
    /// A PINN; `probe` N x N, already normalised; `intensity_scale` s.
    pub fn pinn<B: Backend<Storage = S>>(
        b: &B,
        config: &ModelConfig,
        weights: &[NamedTensor],
        probe: &[Complex32],
        intensity_scale: f32,
        adam: AdamConfig,
    ) -> Result<Self, TrainError> {
        if config.kind != ModelKind::Pinn {
            return Err("the PINN trainer needs a PINN model".into());
        }
        let physics = ForwardModel::new(
            b,
            probe,
            config.n,
            ForwardConfig {
                canvas: default_canvas_size(config.n, config.gridsize),
                object_big: true,
                probe_mask: false,
                intensity_scale,
                separate_ring: config.probe_big,
            },
        )?;
        Self::with_objective(b, config, weights, Some(physics), adam)
    }

    /// The supervised baseline (physics-and-model.md §8.1).
    pub fn baseline<B: Backend<Storage = S>>(
        b: &B,
        config: &ModelConfig,
        weights: &[NamedTensor],
        adam: AdamConfig,
    ) -> Result<Self, TrainError> {
        if config.kind != ModelKind::Baseline {
            return Err("the baseline trainer needs a baseline model".into());
        }
        Self::with_objective(b, config, weights, None, adam)
    }

    fn with_objective<B: Backend<Storage = S>>(
        b: &B,
        config: &ModelConfig,
        weights: &[NamedTensor],
        physics: Option<ForwardModel<S>>,
        adam: AdamConfig,
    ) -> Result<Self, TrainError> {
        let network = Network::new(b, config, weights)?;
        let zeros = |t: &Tensor<S>| b.scale(t, 0.0);
        let m = network.params.iter().map(zeros).collect::<Result<_, _>>()?;
        let v = network.params.iter().map(zeros).collect::<Result<_, _>>()?;
        Ok(Self {
            network,
            physics,
            channels: config.channels(),
            adam,
            m,
            v,
            step: 0,
        })
    }

    /// Change the optimizer's settings (the learning rate, by the plateau schedule).
    pub fn set_adam(&mut self, adam: AdamConfig) {
        self.adam = adam;
    }

    /// Adam's moments (`m/<tensor>`, `v/<tensor>`) and the step count ("step"), for resuming.
    pub fn optimizer_state<B: Backend<Storage = S>>(
        &self,
        b: &B,
    ) -> Result<Vec<NamedTensor>, KernelError> {
        let names = self.network.names();
        let mut out = Vec::with_capacity(2 * names.len() + 1);
        for (kind, moments) in [("m", &self.m), ("v", &self.v)] {
            for (t, name) in moments.iter().zip(names) {
                out.push(NamedTensor::new(
                    format!("{kind}/{name}"),
                    t.shape(),
                    b.download_f32(t)?,
                ));
            }
        }
        out.push(NamedTensor::new("step", &[1], vec![self.step as f32]));
        Ok(out)
    }

    /// Restore what [`Trainer::optimizer_state`] saved.
    pub fn restore_optimizer<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        state: &[NamedTensor],
    ) -> Result<(), TrainError> {
        let find = |name: &str, shape: &[usize]| -> Result<&NamedTensor, TrainError> {
            let t = state
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| TrainError::from(format!("optimizer state lacks '{name}'")))?;
            if t.shape != shape {
                return Err(TrainError::from(format!(
                    "optimizer state '{name}' has shape {:?}, expected {shape:?}",
                    t.shape
                )));
            }
            Ok(t)
        };
        for (k, (name, param)) in self
            .network
            .names()
            .iter()
            .zip(&self.network.params)
            .enumerate()
        {
            let m = find(&format!("m/{name}"), param.shape())?;
            let v = find(&format!("v/{name}"), param.shape())?;
            self.m[k] = b.upload_f32(&m.shape, &m.data)?;
            self.v[k] = b.upload_f32(&v.shape, &v.data)?;
        }
        self.step = find("step", &[1])?.data[0] as u64;
        Ok(())
    }

    /// The network (and for the PINN the physics) on a batch, keeping what the backward pass needs.
    fn forward<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
        relative: Option<&Tensor<S>>,
    ) -> Result<Pass<S>, KernelError> {
        let input = b.to_channels_last(x)?;
        let acts = self.network.forward(b, &input)?;
        let physics = match (&self.physics, relative) {
            (Some(model), Some(relative)) => {
                let patches = b.combine_complex(
                    self.network.output(&acts, "amplitude"),
                    self.network.output(&acts, "phase"),
                )?;
                Some(model.forward(b, &patches, relative, self.channels)?)
            }
            (None, None) => None,
            _ => unreachable!("Trainer::check matched the batch to the trainer"),
        };
        Ok(Pass {
            input,
            acts,
            physics,
        })
    }

    /// A PINN trains on physics targets, the baseline on labels.
    fn check(&self, batch: &Batch<S>) -> Result<(), TrainError> {
        match (&self.physics, &batch.targets) {
            (Some(_), Targets::Physics { .. }) | (None, Targets::Labels { .. }) => Ok(()),
            (Some(_), Targets::Labels { .. }) => {
                Err("a PINN trains on diffraction, not labels".into())
            }
            (None, Targets::Physics { .. }) => Err("the baseline trains on labels".into()),
        }
    }

    fn relative(batch: &Batch<S>) -> Option<&Tensor<S>> {
        match &batch.targets {
            Targets::Physics { relative, .. } => Some(relative),
            Targets::Labels { .. } => None,
        }
    }

    /// The batch's loss as elementwise terms (one tensor per loss; the loss is the sum of their
    /// means) and ∂loss/∂(network outputs), in the architecture's output order.
    fn objective<B: Backend<Storage = S>>(
        &self,
        b: &B,
        pass: &Pass<S>,
        targets: &Targets<S>,
        with_grads: bool,
    ) -> Result<TermsAndGrads<S>, KernelError> {
        match (targets, &pass.physics) {
            (
                Targets::Physics {
                    amplitude,
                    relative,
                },
                Some(physics),
            ) => {
                let predicted = physics.amplitude();
                let loss = vec![b.loss_terms(LossKind::Poisson, predicted, amplitude)?];
                if !with_grads {
                    return Ok((loss, Vec::new()));
                }
                let model = self.physics.as_ref().expect("a PINN pass has physics");
                let g = mean_loss_grad(b, LossKind::Poisson, predicted, amplitude)?;
                let physics_grads = model.backward(b, physics, relative, &g)?;
                let (grad_amp, grad_phase) = b.combine_complex_backward(
                    self.network.output(&pass.acts, "amplitude"),
                    self.network.output(&pass.acts, "phase"),
                    &physics_grads.patches,
                )?;
                Ok((loss, vec![grad_amp, grad_phase]))
            }
            (Targets::Labels { amplitude, phase }, None) => {
                let mut grads = Vec::new();
                let mut losses = Vec::new();
                for (name, label) in [("amplitude", amplitude), ("phase", phase)] {
                    let predicted = self.network.output(&pass.acts, name);
                    losses.push(b.loss_terms(LossKind::Mae, predicted, label)?);
                    if with_grads {
                        grads.push(mean_loss_grad(b, LossKind::Mae, predicted, label)?);
                    }
                }
                Ok((losses, grads))
            }
            _ => unreachable!("forward checked that the targets match the trainer"),
        }
    }

    /// The batch's mean loss (Poisson NLL for the PINN, the sum of the two MAEs for the baseline),
    /// without gradients.
    pub fn loss<B: Backend<Storage = S>>(
        &self,
        b: &B,
        batch: &Batch<S>,
    ) -> Result<f64, TrainError> {
        self.check(batch)?;
        let run = || {
            let pass = self.forward(b, &batch.x, Self::relative(batch))?;
            let (terms, _) = self.objective(b, &pass, &batch.targets, false)?;
            host_mean(b, &terms)
        };
        Ok(run()?)
    }

    /// The PINN's predicted amplitudes Â (B, C, N, N) of a batch.
    pub fn predict_amplitude<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
        relative: &Tensor<S>,
    ) -> Result<Vec<f32>, TrainError> {
        if self.physics.is_none() {
            return Err("only a PINN predicts amplitudes".into());
        }
        let pass = self.forward(b, x, Some(relative))?;
        let physics = pass.physics.expect("a PINN pass has physics");
        Ok(b.download_f32(physics.amplitude())?)
    }

    /// The batch's mean loss and the parameter gradients.
    pub fn loss_and_grads<B: Backend<Storage = S>>(
        &self,
        b: &B,
        batch: &Batch<S>,
    ) -> Result<(f64, Vec<Tensor<S>>), TrainError> {
        let (terms, grads) = self.terms_and_grads(b, batch)?;
        Ok((host_mean(b, &terms)?, grads))
    }

    fn terms_and_grads<B: Backend<Storage = S>>(
        &self,
        b: &B,
        batch: &Batch<S>,
    ) -> Result<TermsAndGrads<S>, TrainError> {
        self.check(batch)?;
        let run = || -> Result<TermsAndGrads<S>, KernelError> {
            let pass = self.forward(b, &batch.x, Self::relative(batch))?;
            let (loss, grad_outputs) = self.objective(b, &pass, &batch.targets, true)?;
            let grads = self
                .network
                .backward(b, &pass.input, &pass.acts, grad_outputs)?;
            Ok((loss, grads))
        };
        Ok(run()?)
    }

    /// Record one whole step (forward, loss, backward, Adam) without reading anything back; the
    /// batch's mean loss before the step stays on the device. On a GPU the step is then one
    /// submission, and the caller reads the loss while the next step is recorded.
    pub fn record_step<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        batch: &Batch<S>,
    ) -> Result<Tensor<S>, TrainError> {
        let (terms, grads) = self.terms_and_grads(b, batch)?;
        let loss = device_mean(b, &terms)?;
        self.step += 1;
        for (((p, g), m), v) in self
            .network
            .params
            .iter_mut()
            .zip(&grads)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            b.adam_update(&self.adam, self.step, p, g, m, v)?;
        }
        Ok(loss)
    }

    /// One Adam step on a batch, waiting for it; the batch's loss before the step (an error when it
    /// is not finite).
    pub fn train_step<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        batch: &Batch<S>,
    ) -> Result<f64, TrainError> {
        let loss = self.record_step(b, batch)?;
        let loss = b.download_f32(&loss)?[0] as f64;
        if !loss.is_finite() {
            return Err(TrainError::from(format!(
                "the loss is {loss} at step {}",
                self.step
            )));
        }
        Ok(loss)
    }
}

/// The sum of the terms' means, summed on the host in f64 (finite differences need its digits).
fn host_mean<B: Backend>(b: &B, terms: &[Tensor<B::Storage>]) -> Result<f64, KernelError> {
    terms.iter().try_fold(0.0, |total, t| {
        let values = b.download_f32(t)?;
        Ok(total + values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64)
    })
}

/// The sum of the terms' means as a 0-d tensor left on the device (summed there in float32).
fn device_mean<B: Backend>(
    b: &B,
    terms: &[Tensor<B::Storage>],
) -> Result<Tensor<B::Storage>, KernelError> {
    let mut total: Option<Tensor<B::Storage>> = None;
    for t in terms {
        let mean = b.scale(&b.sum(t)?, 1.0 / t.len().max(1) as f32)?;
        total = Some(match total {
            None => mean,
            Some(sum) => b.add_real(&sum, &mean)?,
        });
    }
    Ok(total.expect("at least one loss"))
}
