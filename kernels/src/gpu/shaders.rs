//! WGSL sources and the variants the host composes from them. Sizes and flags are compile-time constants
//! prepended to the kernel text, so every variant is a fully specialised pipeline.

use crate::ops::fft::{FftDirection, SUPPORTED_FFT_SIZES};

pub const COMPLEX_WGSL: &str = include_str!("../../../shaders/common/complex.wgsl");
pub const FFT_WGSL: &str = include_str!("../../../shaders/fft.wgsl");
pub const ELEMENTWISE_WGSL: &str = include_str!("../../../shaders/elementwise.wgsl");
pub const COPY_WGSL: &str = include_str!("../../../shaders/copy.wgsl");
pub const TRANSLATE_WGSL: &str = include_str!("../../../shaders/translate.wgsl");
pub const LAYOUT_WGSL: &str = include_str!("../../../shaders/layout.wgsl");
pub const LOSS_WGSL: &str = include_str!("../../../shaders/loss.wgsl");
pub const CONV_WGSL: &str = include_str!("../../../shaders/conv.wgsl");
pub const LAYERS_WGSL: &str = include_str!("../../../shaders/layers.wgsl");
pub const OPTIM_WGSL: &str = include_str!("../../../shaders/optim.wgsl");
pub const PEAK_WGSL: &str = include_str!("../../../shaders/peak.wgsl");

/// Every file under shaders/, relative to it: the naga test checks that each one is covered here.
pub const SHADER_FILES: &[&str] = &[
    "common/complex.wgsl",
    "fft.wgsl",
    "elementwise.wgsl",
    "copy.wgsl",
    "translate.wgsl",
    "layout.wgsl",
    "loss.wgsl",
    "conv.wgsl",
    "conv_lanes.wgsl",
    "layers.wgsl",
    "optim.wgsl",
    "peak.wgsl",
];

/// Complex elements per workgroup buffer in the FFT kernel. Two such buffers of vec2<f32> take
/// 16 KiB, the workgroup memory every WebGPU adapter must offer.
pub const FFT_SHARED_ELEMENTS: usize = 1024;

pub const ELEMENTWISE_ENTRY_POINTS: &[&str] = &[
    "mul",
    "mul_conj",
    "add",
    "scale",
    "abs",
    "abs2",
    "scale_real",
    "modulus_grad",
];

/// One pass of the 2-D FFT: along rows or columns of every image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FftPass {
    pub n: usize,
    pub columns: bool,
    pub direction: FftDirection,
    pub shift_in: bool,
    pub shift_out: bool,
}

impl FftPass {
    /// Lines (rows or columns) one workgroup transforms.
    pub fn lines_per_workgroup(&self) -> usize {
        FFT_SHARED_ELEMENTS / self.n
    }

    pub fn name(&self) -> String {
        format!(
            "fft_n{}_{}_{}{}{}",
            self.n,
            if self.columns { "cols" } else { "rows" },
            match self.direction {
                FftDirection::Forward => "fwd",
                FftDirection::Inverse => "inv",
            },
            if self.shift_in { "_shiftin" } else { "" },
            if self.shift_out { "_shiftout" } else { "" },
        )
    }

    pub fn source(&self) -> String {
        let (sign, scale) = match self.direction {
            FftDirection::Forward => (-1.0, 1.0),
            FftDirection::Inverse => (1.0, 1.0 / self.n as f64),
        };
        let log2 = self.n.trailing_zeros();
        format!(
            "const N: u32 = {n}u;\nconst LINES: u32 = {lines}u;\nconst SHARED: u32 = {shared}u;\n\
             const COLUMNS: bool = {columns};\nconst SIGN: f32 = {sign:.1};\nconst SCALE: f32 = {scale:e};\n\
             const SHIFT_IN: bool = {shift_in};\nconst SHIFT_OUT: bool = {shift_out};\n\
             const RADIX2_FIRST: bool = {radix2};\nconst R4_STAGES: u32 = {r4}u;\nconst R4_NS0: u32 = {ns0}u;\n\
             {COMPLEX_WGSL}\n{FFT_WGSL}",
            n = self.n,
            lines = self.lines_per_workgroup(),
            shared = FFT_SHARED_ELEMENTS,
            columns = self.columns,
            shift_in = self.shift_in,
            shift_out = self.shift_out,
            radix2 = log2 % 2 == 1,
            r4 = log2 / 2,
            ns0 = if log2 % 2 == 1 { 2 } else { 1 },
        )
    }

    /// Every pass variant the FFT can ask for.
    pub fn all() -> Vec<FftPass> {
        let mut out = Vec::new();
        for &n in SUPPORTED_FFT_SIZES {
            for columns in [false, true] {
                for direction in [FftDirection::Forward, FftDirection::Inverse] {
                    for shift_in in [false, true] {
                        for shift_out in [false, true] {
                            out.push(FftPass {
                                n,
                                columns,
                                direction,
                                shift_in,
                                shift_out,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// Invocations per workgroup of the elementwise and copy kernels.
pub const ELEMENTWISE_WORKGROUP_SIZE: u64 = 256;
/// Elements each invocation of the elementwise and copy kernels handles.
pub const ELEMENTS_PER_INVOCATION: u64 = 4;

fn elementwise_constants() -> String {
    format!(
        "const WORKGROUP_SIZE: u32 = {ELEMENTWISE_WORKGROUP_SIZE}u;\n\
         const ELEMENTS_PER_INVOCATION: u32 = {ELEMENTS_PER_INVOCATION}u;\n"
    )
}

pub fn elementwise_source() -> String {
    format!(
        "{}{COMPLEX_WGSL}\n{ELEMENTWISE_WGSL}",
        elementwise_constants()
    )
}

pub const TRANSLATE_ENTRY_POINTS: &[&str] = &[
    "forward_complex",
    "forward_real",
    "backward_complex",
    "backward_real",
];

pub fn translate_source() -> String {
    format!(
        "{}{COMPLEX_WGSL}\n{TRANSLATE_WGSL}",
        elementwise_constants()
    )
}

pub const LAYOUT_ENTRY_POINTS: &[&str] = &[
    "recenter_complex",
    "recenter_real",
    "sum_channels_complex",
    "sum_channels_real",
    "repeat_channels_complex",
    "repeat_channels_real",
];

pub fn layout_source() -> String {
    format!("{}{COMPLEX_WGSL}\n{LAYOUT_WGSL}", elementwise_constants())
}

pub const LOSS_ENTRY_POINTS: &[&str] = &[
    "poisson_terms",
    "deviance_terms",
    "mae_terms",
    "poisson_grad",
    "mae_grad",
    "sum_level",
];

pub fn loss_source() -> String {
    format!("{}{LOSS_WGSL}", elementwise_constants())
}

pub fn copy_source() -> String {
    format!("{}{COPY_WGSL}", elementwise_constants())
}

/// (name, WGSL source, entry points) of every pipeline the GPU backend can create.
pub const CONV_ENTRY_POINTS: &[&str] = &["forward", "weight_grad", "bias_grad", "reduce_splits"];

pub const CONV_LANES_WGSL: &str = include_str!("../../../shaders/conv_lanes.wgsl");

pub const CONV_LANES_ENTRY_POINTS: &[&str] = &["gemm_pixels", "weight_grad_rows", "stage"];

pub fn conv_lanes_source() -> String {
    CONV_LANES_WGSL.to_string()
}

pub fn conv_source() -> String {
    CONV_WGSL.to_string()
}

pub const LAYERS_ENTRY_POINTS: &[&str] = &[
    "relu",
    "sigmoid_forward",
    "scaled_tanh",
    "swish",
    "softplus_forward",
    "relu_backward",
    "sigmoid_backward",
    "scaled_tanh_backward",
    "swish_backward",
    "softplus_backward",
    "max_pool",
    "max_pool_backward",
    "upsample",
    "upsample_backward",
    "slice_channels",
    "slice_channels_backward",
    "pad_spatial",
    "crop_spatial",
    "combine_complex",
    "combine_complex_backward",
    "to_channels_last",
    "to_channels_first",
    "add_real",
];

pub fn layers_source() -> String {
    format!("{}{LAYERS_WGSL}", elementwise_constants())
}

pub fn optim_source() -> String {
    format!("{}{OPTIM_WGSL}", elementwise_constants())
}

pub fn peak_source() -> String {
    format!("{}{PEAK_WGSL}", elementwise_constants())
}

pub fn all_sources() -> Vec<(String, String, Vec<&'static str>)> {
    let mut out: Vec<_> = FftPass::all()
        .into_iter()
        .map(|p| (p.name(), p.source(), vec!["main"]))
        .collect();
    out.push((
        "elementwise".into(),
        elementwise_source(),
        ELEMENTWISE_ENTRY_POINTS.to_vec(),
    ));
    out.push(("copy".into(), copy_source(), vec!["main"]));
    out.push(("conv".into(), conv_source(), CONV_ENTRY_POINTS.to_vec()));
    out.push((
        "conv_lanes".into(),
        conv_lanes_source(),
        CONV_LANES_ENTRY_POINTS.to_vec(),
    ));
    out.push((
        "layers".into(),
        layers_source(),
        LAYERS_ENTRY_POINTS.to_vec(),
    ));
    out.push((
        "translate".into(),
        translate_source(),
        TRANSLATE_ENTRY_POINTS.to_vec(),
    ));
    out.push((
        "layout".into(),
        layout_source(),
        LAYOUT_ENTRY_POINTS.to_vec(),
    ));
    out.push(("loss".into(), loss_source(), LOSS_ENTRY_POINTS.to_vec()));
    out.push(("optim".into(), optim_source(), vec!["adam"]));
    out.push(("peak".into(), peak_source(), vec!["fma_chain"]));
    out
}
