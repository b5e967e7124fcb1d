//! The networks of physics-and-model.md §6 and §8.1 as layer tables: the PtychoPINN network (a shared
//! encoder, separate amplitude and phase decoders, heads with pad_object and optionally the probe-big
//! ring) and the supervised baseline. Each convolution is named by its layer path ("encoder/conv_1a"),
//! which names its tensors in bundles ("encoder/conv_1a/kernel", ".../bias"); kernels are Keras-shaped
//! (3, 3, cin, cout), so reference weights map one to one. Parameter counts equal the reference's.

pub mod network;
pub mod params;

use serde::Serialize;
use thiserror::Error;

use ptycho_kernels::ops::layers::Activation;

/// The patch sizes N the networks are defined for (the reference's encoder and decoder ladders), and
/// so the sizes every command of the pipeline (simulate, train, infer, model) accepts. The FFT
/// kernels also run 32 and 512, for `ptycho bench fft` and `ptycho forward`.
pub const SUPPORTED_N: [usize; 3] = [64, 128, 256];

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Kernel(#[from] ptycho_kernels::KernelError),

    #[error("N = {0} is not supported: the networks are defined for N = 64, 128 or 256")]
    UnsupportedN(usize),

    /// A model configuration the networks do not define.
    #[error("{0}")]
    Config(String),

    /// A bundle's params.json that does not describe a model.
    #[error("{0}")]
    Params(String),
}

impl From<String> for ModelError {
    fn from(message: String) -> Self {
        ModelError::Config(message)
    }
}

/// An error naming the supported sizes when `n` is not one.
pub fn check_n(n: usize) -> Result<(), ModelError> {
    if SUPPORTED_N.contains(&n) {
        Ok(())
    } else {
        Err(ModelError::UnsupportedN(n))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Pinn,
    Baseline,
}

impl ModelKind {
    /// As params.json's "model_type".
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Pinn => "pinn",
            ModelKind::Baseline => "baseline",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AmpActivation {
    Sigmoid,
    Swish,
    Softplus,
    Relu,
}

impl AmpActivation {
    pub fn activation(self) -> Activation {
        match self {
            AmpActivation::Sigmoid => Activation::Sigmoid,
            AmpActivation::Swish => Activation::Swish,
            AmpActivation::Softplus => Activation::Softplus,
            AmpActivation::Relu => Activation::Relu,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Patch size: 64, 128 or 256 (the baseline: 64).
    pub n: usize,
    pub gridsize: usize,
    pub n_filters_scale: usize,
    pub probe_big: bool,
    pub amp_activation: AmpActivation,
}

impl ModelConfig {
    pub fn pinn(n: usize, gridsize: usize) -> Self {
        Self {
            kind: ModelKind::Pinn,
            n,
            gridsize,
            n_filters_scale: 2,
            probe_big: false,
            amp_activation: AmpActivation::Sigmoid,
        }
    }

    /// C = gridsize², the diffraction channels of one sample.
    pub fn channels(&self) -> usize {
        self.gridsize * self.gridsize
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        check_n(self.n)?;
        let invalid = |message: String| Err(ModelError::Config(message));
        if self.kind == ModelKind::Baseline && self.n != 64 {
            return invalid(format!(
                "the supervised baseline is defined for N = 64 only (the reference's), not {}",
                self.n
            ));
        }
        if !(1..=2).contains(&self.gridsize) {
            return invalid(format!("gridsize must be 1 or 2, got {}", self.gridsize));
        }
        if self.n_filters_scale == 0 || self.n_filters_scale > 16 {
            return invalid(format!(
                "n_filters_scale must be between 1 and 16, got {}",
                self.n_filters_scale
            ));
        }
        Ok(())
    }
}

/// What a layer does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// 3 x 3 'same' convolution with bias, then the activation (None: linear).
    Conv {
        cin: usize,
        cout: usize,
        #[serde(skip)]
        activation: Option<Activation>,
        activation_name: &'static str,
    },
    MaxPool,
    Upsample,
    /// Channels [start, start + count).
    Slice {
        start: usize,
        count: usize,
    },
    /// Zero padding on every side.
    Pad {
        pad: usize,
    },
    /// Multiplication by 1 − centre mask (the probe-big ring).
    BorderMask,
    /// The sum with the output of layer `other` (the probe-big head: centre + ring).
    Add {
        other: usize,
    },
}

/// One row of the layer table.
#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    pub name: String,
    #[serde(flatten)]
    pub op: Op,
    /// (H, W, C) of one sample's output.
    pub output: [usize; 3],
    pub parameters: usize,
    /// Forward FLOPs per sample (2 per multiply-add of the convolutions).
    pub flops: u64,
    /// The layer whose output this one reads (None: the one before it; the network input for the
    /// first layer).
    #[serde(skip)]
    pub input: Option<usize>,
}

impl Layer {
    /// The kernel shape of a convolution.
    pub fn kernel_shape(&self) -> Option<[usize; 4]> {
        match self.op {
            Op::Conv { cin, cout, .. } => Some([3, 3, cin, cout]),
            _ => None,
        }
    }
}

fn activation_name(a: Option<Activation>) -> &'static str {
    match a {
        None => "linear",
        Some(Activation::Relu) => "relu",
        Some(Activation::Sigmoid) => "sigmoid",
        Some(Activation::ScaledTanh(_)) => "pi_tanh",
        Some(Activation::Swish) => "swish",
        Some(Activation::Softplus) => "softplus",
    }
}

/// Builds the layer list, tracking the current (H, W, C) and where a new branch starts.
struct Builder {
    layers: Vec<Layer>,
    shape: [usize; 3],
    branch_from: Option<usize>,
}

impl Builder {
    fn new(shape: [usize; 3]) -> Self {
        Self {
            layers: Vec::new(),
            shape,
            branch_from: None,
        }
    }

    /// The next layer reads the output of layer `from`.
    fn branch(&mut self, from: usize) {
        self.shape = self.layers[from].output;
        self.branch_from = Some(from);
    }

    fn last(&self) -> usize {
        self.layers.len() - 1
    }

    fn push(&mut self, name: String, op: Op, output: [usize; 3], parameters: usize, flops: u64) {
        self.layers.push(Layer {
            name,
            op,
            output,
            parameters,
            flops,
            input: self.branch_from.take(),
        });
        self.shape = output;
    }

    fn conv(&mut self, name: String, cout: usize, activation: Option<Activation>) {
        let [h, w, cin] = self.shape;
        let op = Op::Conv {
            cin,
            cout,
            activation,
            activation_name: activation_name(activation),
        };
        let flops = 2 * 9 * (cin * cout * h * w) as u64;
        self.push(name, op, [h, w, cout], 9 * cin * cout + cout, flops);
    }

    fn pool(&mut self, name: String) {
        let [h, w, c] = self.shape;
        self.push(name, Op::MaxPool, [h / 2, w / 2, c], 0, 0);
    }

    fn up(&mut self, name: String) {
        let [h, w, c] = self.shape;
        self.push(name, Op::Upsample, [2 * h, 2 * w, c], 0, 0);
    }

    fn slice(&mut self, name: String, start: usize, count: usize) {
        let [h, w, _] = self.shape;
        self.push(name, Op::Slice { start, count }, [h, w, count], 0, 0);
    }

    fn pad(&mut self, name: String, pad: usize) {
        let [h, w, c] = self.shape;
        self.push(name, Op::Pad { pad }, [h + 2 * pad, w + 2 * pad, c], 0, 0);
    }
}

/// The encoder's Conv_Pool filter ladder (§6.2) before scaling.
pub(crate) fn encoder_filters(n: usize) -> &'static [usize] {
    match n {
        64 => &[32, 64, 128],
        128 => &[16, 32, 64, 128],
        _ => &[8, 16, 32, 64, 128],
    }
}

/// The PINN decoders' Conv_Up ladder before scaling.
pub(crate) fn decoder_filters(n: usize) -> &'static [usize] {
    match n {
        64 => &[64, 32],
        128 => &[128, 64, 32],
        _ => &[256, 128, 64, 32],
    }
}

/// Channels of the decoder output that feed the ring branch (the reference's c_outer).
const RING_CHANNELS: usize = 4;

fn encoder(config: &ModelConfig, input_channels: usize) -> Builder {
    let relu = Some(Activation::Relu);
    let mut b = Builder::new([config.n, config.n, input_channels]);
    for (k, f) in encoder_filters(config.n).iter().enumerate() {
        let f = f * config.n_filters_scale;
        b.conv(format!("encoder/conv_{}a", k + 1), f, relu);
        b.conv(format!("encoder/conv_{}b", k + 1), f, relu);
        b.pool(format!("encoder/pool_{}", k + 1));
    }
    b
}

/// A network: its layers in execution order and the layers whose outputs are its outputs.
pub struct Architecture {
    pub layers: Vec<Layer>,
    /// (name, layer index): "amplitude" and "phase", (B, N, N, F) each.
    pub outputs: Vec<(&'static str, usize)>,
    /// (B, N, N, C) of the input.
    pub input: [usize; 3],
}

/// The layers of the network, in execution order: encoder, then each decoder.
pub fn layers(config: &ModelConfig) -> Result<Vec<Layer>, ModelError> {
    Ok(architecture(config)?.layers)
}

/// The network as an executable layer graph.
pub fn architecture(config: &ModelConfig) -> Result<Architecture, ModelError> {
    config.validate()?;
    let nfs = config.n_filters_scale;
    let relu = Some(Activation::Relu);
    let c = match config.kind {
        ModelKind::Pinn => config.channels(),
        ModelKind::Baseline => 1,
    };
    let mut b = encoder(config, c);
    let bottleneck = b.last();
    let mut outputs = Vec::new();
    match config.kind {
        ModelKind::Pinn => {
            for (head, act) in [
                ("amplitude", config.amp_activation.activation()),
                ("phase", Activation::ScaledTanh(std::f32::consts::PI)),
            ] {
                b.branch(bottleneck);
                for (k, f) in decoder_filters(config.n).iter().enumerate() {
                    b.conv(format!("{head}/up_{}a", k + 1), f * nfs, relu);
                    b.conv(format!("{head}/up_{}b", k + 1), f * nfs, relu);
                    b.up(format!("{head}/upsample_{}", k + 1));
                }
                let decoded = b.last();
                let width = b.shape[2];
                b.slice(format!("{head}/centre_channels"), 0, width - RING_CHANNELS);
                b.conv(format!("{head}/head"), c, Some(act));
                b.pad(format!("{head}/pad_object"), config.n / 4);
                if config.probe_big {
                    let centre = b.last();
                    b.branch(decoded);
                    b.slice(
                        format!("{head}/ring_channels"),
                        width - RING_CHANNELS,
                        RING_CHANNELS,
                    );
                    let ring = nfs * 2048 / config.n;
                    b.conv(format!("{head}/ring_up_a"), ring, relu);
                    b.conv(format!("{head}/ring_up_b"), ring, relu);
                    b.up(format!("{head}/ring_upsample"));
                    b.conv(format!("{head}/ring_head"), c, Some(Activation::Swish));
                    let shape = b.shape;
                    b.push(format!("{head}/ring_border"), Op::BorderMask, shape, 0, 0);
                    b.push(
                        format!("{head}/sum"),
                        Op::Add { other: centre },
                        shape,
                        0,
                        0,
                    );
                }
                outputs.push((head, b.last()));
            }
        }
        ModelKind::Baseline => {
            for arm in ["amplitude", "phase"] {
                b.branch(bottleneck);
                for (k, f) in [128, 64, 32].iter().enumerate() {
                    b.conv(format!("{arm}/up_{}a", k + 1), f * nfs, relu);
                    b.conv(format!("{arm}/up_{}b", k + 1), f * nfs, relu);
                    b.up(format!("{arm}/upsample_{}", k + 1));
                }
                b.conv(format!("{arm}/head"), 1, None);
                outputs.push((arm, b.last()));
            }
        }
    }
    Ok(Architecture {
        layers: b.layers,
        outputs,
        input: [config.n, config.n, c],
    })
}

/// Every trainable tensor: name and shape, in layer order (kernel then bias).
pub fn parameters(config: &ModelConfig) -> Result<Vec<(String, Vec<usize>)>, ModelError> {
    Ok(layers(config)?
        .iter()
        .filter_map(|l| {
            l.kernel_shape().map(|k| {
                [
                    (format!("{}/kernel", l.name), k.to_vec()),
                    (format!("{}/bias", l.name), vec![k[3]]),
                ]
            })
        })
        .flatten()
        .collect())
}

/// The total parameter count.
pub fn parameter_count(config: &ModelConfig) -> Result<usize, ModelError> {
    Ok(layers(config)?.iter().map(|l| l.parameters).sum())
}

/// The layer table as text: name, op, kernel shape, output shape, parameters; then the totals.
pub fn summary_text(config: &ModelConfig) -> Result<String, ModelError> {
    let layers = layers(config)?;
    let mut s = format!(
        "{:?} network, N = {}, gridsize {}, n_filters_scale {}, probe_big {}\n",
        config.kind, config.n, config.gridsize, config.n_filters_scale, config.probe_big
    );
    s += &format!(
        "{:<28} {:<16} {:<18} {:<16} {:>10} {:>10}\n",
        "layer", "op", "kernel", "output", "params", "MFLOP"
    );
    for l in &layers {
        let op = match &l.op {
            Op::Conv {
                activation_name, ..
            } => format!("conv {activation_name}"),
            Op::MaxPool => "max pool 2x2".into(),
            Op::Upsample => "upsample 2x".into(),
            Op::Slice { start, count } => format!("channels {start}..{}", start + count),
            Op::Pad { pad } => format!("zero pad {pad}"),
            Op::BorderMask => "x (1 - centre)".into(),
            Op::Add { other } => format!("+ {}", layers[*other].name),
        };
        let kernel = l
            .kernel_shape()
            .map(|k| format!("{k:?}"))
            .unwrap_or_default();
        s += &format!(
            "{:<28} {:<16} {:<18} {:<16} {:>10} {:>10.2}\n",
            l.name,
            op,
            kernel,
            format!("{:?}", l.output),
            l.parameters,
            l.flops as f64 / 1e6
        );
    }
    let total: usize = layers.iter().map(|l| l.parameters).sum();
    let flops: u64 = layers.iter().map(|l| l.flops).sum();
    s += &format!(
        "total parameters: {total}\nforward: {:.3} GFLOP per sample (convolutions)\n",
        flops as f64 / 1e9
    );
    Ok(s)
}
