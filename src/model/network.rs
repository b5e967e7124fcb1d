//! Running a network on a backend: Glorot-uniform initialisation, the forward pass over the layer
//! graph (keeping what the backward pass needs), and the backward pass, which replays each layer's
//! backward kernels in reverse order, accumulating gradients where one output feeds two layers (the
//! encoder's into both decoders). Every layer's input index is below its own, so reverse list order is
//! a reverse topological order.

use ptycho_kernels::ops::layers::Activation;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, KernelError, Tensor};

use super::{architecture, parameters, Architecture, ModelConfig, ModelError, Op};
use crate::persist::weights::NamedTensor;

/// Kernels Glorot-uniform (limit sqrt(6 / (9·cin + 9·cout))) from the seed, biases zero.
pub fn glorot_init(config: &ModelConfig, seed: u64) -> Result<Vec<NamedTensor>, ModelError> {
    let mut rng = SplitMix64::new(seed);
    Ok(parameters(config)?
        .into_iter()
        .map(|(name, shape)| {
            let len = shape.iter().product();
            let data = if shape.len() == 4 {
                let limit = (6.0 / (9 * shape[2] + 9 * shape[3]) as f64).sqrt() as f32;
                (0..len).map(|_| limit * rng.next_symmetric_f32()).collect()
            } else {
                vec![0.0; len]
            };
            NamedTensor::new(name, &shape, data)
        })
        .collect())
}

/// x ⊙ (1 − Mc) for x (B, N, N, C): x minus its centre N/2 square. The map is its own adjoint.
fn border<B: Backend>(b: &B, x: &Tensor<B::Storage>) -> Result<Tensor<B::Storage>, KernelError> {
    let quarter = x.shape()[1] / 4;
    let centre = b.pad_spatial(&b.crop_spatial(x, quarter)?, quarter)?;
    b.add_real(x, &b.scale(&centre, -1.0)?)
}

/// A network with its parameters resident on a backend.
pub struct Network<S> {
    arch: Architecture,
    /// Kernel and bias of each convolution, in layer order.
    pub params: Vec<Tensor<S>>,
    names: Vec<String>,
    /// For each layer, the index of its kernel in `params` (convolutions only).
    param_index: Vec<Option<usize>>,
}

/// What the forward pass keeps: every layer's output and each convolution's pre-activation (except
/// under ReLU, whose backward pass reads the output).
pub struct Activations<S> {
    outputs: Vec<Tensor<S>>,
    pre_activation: Vec<Option<Tensor<S>>>,
}

impl<S> Network<S> {
    /// Upload `weights`, which must be exactly the architecture's tensors (names and shapes).
    pub fn new<B: Backend<Storage = S>>(
        b: &B,
        config: &ModelConfig,
        weights: &[NamedTensor],
    ) -> Result<Self, ModelError> {
        let arch = architecture(config)?;
        let expected = parameters(config)?;
        let mut params = Vec::with_capacity(expected.len());
        for (name, shape) in &expected {
            let t = weights.iter().find(|t| &t.name == name).ok_or_else(|| {
                ModelError::from(format!("weights lack tensor '{name}' {shape:?}"))
            })?;
            if &t.shape != shape {
                return Err(ModelError::from(format!(
                    "tensor '{name}' has shape {:?}, the architecture needs {shape:?}",
                    t.shape
                )));
            }
            params.push(b.upload_f32(shape, &t.data)?);
        }
        if weights.len() != expected.len() {
            let extra: Vec<&str> = weights
                .iter()
                .filter(|t| !expected.iter().any(|(n, _)| n == &t.name))
                .map(|t| t.name.as_str())
                .collect();
            return Err(ModelError::from(format!(
                "weights hold tensors the architecture lacks: {extra:?}"
            )));
        }
        let mut next = 0;
        let param_index = arch
            .layers
            .iter()
            .map(|l| {
                matches!(l.op, Op::Conv { .. }).then(|| {
                    next += 2;
                    next - 2
                })
            })
            .collect();
        Ok(Self {
            arch,
            params,
            names: expected.into_iter().map(|(n, _)| n).collect(),
            param_index,
        })
    }

    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The parameters' names, in `params` order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parameters back on the host, named.
    pub fn download<B: Backend<Storage = S>>(
        &self,
        b: &B,
    ) -> Result<Vec<NamedTensor>, KernelError> {
        self.params
            .iter()
            .zip(&self.names)
            .map(|(t, name)| {
                Ok(NamedTensor::new(
                    name.clone(),
                    t.shape(),
                    b.download_f32(t)?,
                ))
            })
            .collect()
    }

    fn input_of<'a>(&self, i: usize, x: &'a Tensor<S>, outputs: &'a [Tensor<S>]) -> &'a Tensor<S> {
        match self.arch.layers[i].input {
            Some(j) => &outputs[j],
            None if i == 0 => x,
            None => &outputs[i - 1],
        }
    }

    /// The forward pass on x (B, N, N, C) float32 (NHWC).
    pub fn forward<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
    ) -> Result<Activations<S>, KernelError> {
        let mut outputs: Vec<Tensor<S>> = Vec::with_capacity(self.arch.layers.len());
        let mut pre_activation = Vec::with_capacity(self.arch.layers.len());
        for (i, layer) in self.arch.layers.iter().enumerate() {
            let src = self.input_of(i, x, &outputs);
            let (out, pre) = match &layer.op {
                Op::Conv { activation, .. } => {
                    let p = self.param_index[i].expect("a convolution has parameters");
                    let (kernel, bias) = (&self.params[p], &self.params[p + 1]);
                    match activation {
                        // ReLU's gradient needs only the sign, which its output keeps.
                        Some(Activation::Relu) => (b.conv2d_relu(src, kernel, bias)?, None),
                        Some(a) => {
                            let z = b.conv2d(src, kernel, bias)?;
                            (b.activation(*a, &z)?, Some(z))
                        }
                        None => (b.conv2d(src, kernel, bias)?, None),
                    }
                }
                Op::MaxPool => (b.max_pool2(src)?, None),
                Op::Upsample => (b.upsample2(src)?, None),
                Op::Slice { start, count } => (b.slice_channels(src, *start, *count)?, None),
                Op::Pad { pad } => (b.pad_spatial(src, *pad)?, None),
                Op::Add { other } => (b.add_real(src, &outputs[*other])?, None),
                Op::BorderMask => (border(b, src)?, None),
            };
            outputs.push(out);
            pre_activation.push(pre);
        }
        Ok(Activations {
            outputs,
            pre_activation,
        })
    }

    /// The output named `name` ("amplitude" or "phase").
    /// The output of layer `index` of the architecture.
    pub fn layer_output<'a>(&self, acts: &'a Activations<S>, index: usize) -> &'a Tensor<S> {
        &acts.outputs[index]
    }

    pub fn output<'a>(&self, acts: &'a Activations<S>, name: &str) -> &'a Tensor<S> {
        let (_, i) = self
            .arch
            .outputs
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a network output name");
        &acts.outputs[*i]
    }

    /// Gradients of the parameters (in `params` order) from the gradients of the outputs (in the
    /// architecture's output order).
    pub fn backward<B: Backend<Storage = S>>(
        &self,
        b: &B,
        x: &Tensor<S>,
        acts: &Activations<S>,
        grad_outputs: Vec<Tensor<S>>,
    ) -> Result<Vec<Tensor<S>>, KernelError> {
        let layers = &self.arch.layers;
        let mut grads: Vec<Option<Tensor<S>>> = (0..layers.len()).map(|_| None).collect();
        let accumulate = |grads: &mut Vec<Option<Tensor<S>>>, j: usize, t: Tensor<S>| {
            grads[j] = Some(match grads[j].take() {
                None => t,
                Some(existing) => b.add_real(&existing, &t)?,
            });
            Ok::<(), KernelError>(())
        };
        for ((_, i), g) in self.arch.outputs.iter().zip(grad_outputs) {
            accumulate(&mut grads, *i, g)?;
        }
        let mut param_grads: Vec<Option<Tensor<S>>> =
            (0..self.params.len()).map(|_| None).collect();
        let source_of = |i: usize| match layers[i].input {
            Some(j) => Some(j),
            None if i == 0 => None,
            None => Some(i - 1),
        };
        // How many gradients flow into each layer's output: from the layers that read it and as a
        // network output.
        let mut consumers = vec![0usize; layers.len()];
        for (i, layer) in layers.iter().enumerate() {
            if let Some(j) = source_of(i) {
                consumers[j] += 1;
            }
            if let Op::Add { other } = layer.op {
                consumers[other] += 1;
            }
        }
        for (_, i) in &self.arch.outputs {
            consumers[*i] += 1;
        }
        // A fused-ReLU convolution whose output has one consumer, a convolution or a max pool: that
        // consumer passes its input gradient back through the ReLU in the same pass
        // (conv2d_backward_input_relu, max_pool2_backward_relu), which saves a pass over the
        // tensor; `through_relu` marks the layers whose gradient has had it.
        let fusable = |j: usize| {
            consumers[j] == 1
                && acts.pre_activation[j].is_none()
                && matches!(
                    layers[j].op,
                    Op::Conv {
                        activation: Some(Activation::Relu),
                        ..
                    }
                )
        };
        let mut through_relu = vec![false; layers.len()];
        for i in (0..layers.len()).rev() {
            let Some(g) = grads[i].take() else { continue };
            let source = source_of(i);
            let src = self.input_of(i, x, &acts.outputs);
            let grad_in = match &layers[i].op {
                Op::Conv { activation, .. } => {
                    let p = self.param_index[i].expect("a convolution has parameters");
                    let g = match (activation, &acts.pre_activation[i]) {
                        _ if through_relu[i] => g,
                        (Some(a), Some(z)) => b.activation_backward(*a, z, &g)?,
                        // relu(z) > 0 exactly where z > 0.
                        (Some(Activation::Relu), None) => {
                            b.activation_backward(Activation::Relu, &acts.outputs[i], &g)?
                        }
                        _ => g,
                    };
                    let (gk, gb) = b.conv2d_backward_params(src, &g)?;
                    param_grads[p] = Some(gk);
                    param_grads[p + 1] = Some(gb);
                    let kernel = &self.params[p];
                    match source {
                        Some(j) if fusable(j) => {
                            through_relu[j] = true;
                            Some(b.conv2d_backward_input_relu(&g, kernel, &acts.outputs[j])?)
                        }
                        Some(_) => Some(b.conv2d_backward_input(&g, kernel)?),
                        None => None,
                    }
                }
                Op::MaxPool => match source {
                    Some(j) if fusable(j) => {
                        through_relu[j] = true;
                        Some(b.max_pool2_backward_relu(src, &g)?)
                    }
                    _ => Some(b.max_pool2_backward(src, &g)?),
                },
                Op::Upsample => Some(b.upsample2_backward(&g)?),
                Op::Slice { start, .. } => {
                    let channels = *src.shape().last().expect("NHWC");
                    Some(b.slice_channels_backward(&g, *start, channels)?)
                }
                Op::Pad { pad } => Some(b.crop_spatial(&g, *pad)?),
                Op::Add { other } => {
                    accumulate(&mut grads, *other, b.copy(&g)?)?;
                    Some(g)
                }
                Op::BorderMask => Some(border(b, &g)?),
            };
            if let (Some(j), Some(t)) = (source, grad_in) {
                accumulate(&mut grads, j, t)?;
            }
        }
        param_grads
            .into_iter()
            .zip(&self.params)
            .map(|(g, p)| match g {
                Some(g) => Ok(g),
                None => b.scale(p, 0.0),
            })
            .collect()
    }
}
