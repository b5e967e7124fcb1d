//! Training (physics-and-model.md §7–8). The PINN step: normalised diffraction → network → amp·e^{iφ}
//! → the physics forward (merge per sample, extraction, probe, far field) → Poisson NLL against the
//! observed amplitudes s·X; then the backward pass through the physics and the network, and Adam.

pub mod infer;
pub mod run;

use ptycho_kernels::ops::loss::LossKind;
use ptycho_kernels::ops::optim::AdamConfig;
use ptycho_kernels::{Backend, Complex32, KernelError, Tensor};

use crate::model::network::{Activations, Network};
use crate::model::{ModelConfig, ModelKind};
use crate::persist::weights::NamedTensor;
use crate::physics::forward::{
    default_canvas_size, mean_loss, mean_loss_grad, ForwardConfig, ForwardModel, ForwardPass,
};

/// One forward pass: the network's input and activations, and the physics pass.
struct Pass<S> {
    input: Tensor<S>,
    acts: Activations<S>,
    physics: ForwardPass<S>,
}

/// A PINN with its physics, its optimizer state, and the step count.
pub struct PinnTrainer<S> {
    pub network: Network<S>,
    physics: ForwardModel<S>,
    channels: usize,
    adam: AdamConfig,
    m: Vec<Tensor<S>>,
    v: Vec<Tensor<S>>,
    /// Adam steps taken.
    pub step: u64,
}

impl<S> PinnTrainer<S> {
    /// `probe` N x N, already normalised; `intensity_scale` s.
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        config: &ModelConfig,
        weights: &[NamedTensor],
        probe: &[Complex32],
        intensity_scale: f32,
        adam: AdamConfig,
    ) -> Result<Self, String> {
        if config.kind != ModelKind::Pinn {
            return Err("the PINN trainer needs a PINN model".into());
        }
        let network = Network::new(b, config, weights)?;
        let physics = ForwardModel::new(
            b,
            probe,
            config.n,
            ForwardConfig {
                canvas: default_canvas_size(config.n, config.gridsize),
                object_big: true,
                probe_mask: false,
                intensity_scale,
            },
        )
        .map_err(|e| e.to_string())?;
        let zeros = |t: &Tensor<S>| b.scale(t, 0.0).map_err(|e| e.to_string());
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

    /// Adam's moments ("m/<tensor>", "v/<tensor>") and the step count ("step"), for resuming.
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

    /// Restore what [`PinnTrainer::optimizer_state`] saved.
    pub fn restore_optimizer<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        state: &[NamedTensor],
    ) -> Result<(), String> {
        let find = |name: &str, shape: &[usize]| -> Result<&NamedTensor, String> {
            let t = state
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| format!("optimizer state lacks '{name}'"))?;
            if t.shape != shape {
                return Err(format!(
                    "optimizer state '{name}' has shape {:?}, expected {shape:?}",
                    t.shape
                ));
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
            self.m[k] = b.upload_f32(&m.shape, &m.data).map_err(|e| e.to_string())?;
            self.v[k] = b.upload_f32(&v.shape, &v.data).map_err(|e| e.to_string())?;
        }
        self.step = find("step", &[1])?.data[0] as u64;
        Ok(())
    }

    /// The network and the physics on a batch, keeping what the backward pass needs.
    fn forward<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
        relative: &Tensor<S>,
    ) -> Result<Pass<S>, KernelError> {
        let input = b.to_channels_last(x)?;
        let acts = self.network.forward(b, &input)?;
        let patches = b.combine_complex(
            self.network.output(&acts, "amplitude"),
            self.network.output(&acts, "phase"),
        )?;
        let physics = self.physics.forward(b, &patches, relative, self.channels)?;
        Ok(Pass {
            input,
            acts,
            physics,
        })
    }

    /// The mean Poisson NLL of a batch, without gradients.
    pub fn loss<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
        relative: &Tensor<S>,
        target: &Tensor<S>,
    ) -> Result<f64, String> {
        let pass = self.forward(b, x, relative).map_err(|e| e.to_string())?;
        mean_loss(b, LossKind::Poisson, pass.physics.amplitude(), target).map_err(|e| e.to_string())
    }

    /// The predicted amplitudes Â (B, C, N, N) of a batch.
    pub fn predict_amplitude<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
        relative: &Tensor<S>,
    ) -> Result<Vec<f32>, String> {
        let pass = self.forward(b, x, relative).map_err(|e| e.to_string())?;
        b.download_f32(pass.physics.amplitude())
            .map_err(|e| e.to_string())
    }

    /// The mean Poisson NLL of a batch and the parameter gradients. `x` (B, C, N, N) the normalised
    /// diffraction X; `relative` (B·C, 2) the offsets; `target` (B, C, N, N) the amplitudes s·X.
    pub fn loss_and_grads<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
        relative: &Tensor<S>,
        target: &Tensor<S>,
    ) -> Result<(f64, Vec<Tensor<S>>), String> {
        let run = || -> Result<(f64, Vec<Tensor<S>>), KernelError> {
            let pass = self.forward(b, x, relative)?;
            let amplitude = pass.physics.amplitude();
            let loss = mean_loss(b, LossKind::Poisson, amplitude, target)?;
            let g = mean_loss_grad(b, LossKind::Poisson, amplitude, target)?;
            let physics_grads = self.physics.backward(b, &pass.physics, relative, &g)?;
            let (grad_amp, grad_phase) = b.combine_complex_backward(
                self.network.output(&pass.acts, "amplitude"),
                self.network.output(&pass.acts, "phase"),
                &physics_grads.patches,
            )?;
            let grads =
                self.network
                    .backward(b, &pass.input, &pass.acts, vec![grad_amp, grad_phase])?;
            Ok((loss, grads))
        };
        run().map_err(|e| e.to_string())
    }

    /// One Adam step on a batch; the batch's loss before the step.
    pub fn train_step<B: Backend<Storage = S>>(
        &mut self,
        b: &B,
        x: &Tensor<S>,
        relative: &Tensor<S>,
        target: &Tensor<S>,
    ) -> Result<f64, String> {
        let (loss, grads) = self.loss_and_grads(b, x, relative, target)?;
        if !loss.is_finite() {
            return Err(format!("the loss is {loss} at step {}", self.step + 1));
        }
        self.step += 1;
        for (((p, g), m), v) in self
            .network
            .params
            .iter_mut()
            .zip(&grads)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            b.adam_update(&self.adam, self.step, p, g, m, v)
                .map_err(|e| e.to_string())?;
        }
        Ok(loss)
    }
}
