//! The one table of WGSL shaders: for each, its files under shaders/, how its source is composed, its
//! entry points, its named bindings and its `Params` uniform block. Pipelines are created from these
//! rows only; `tests/naga_validation.rs` checks each row against the WGSL it names (every file under
//! shaders/ registered, every entry point present, each binding's index and each `Params` member's
//! offset and type equal on both sides of the Rust↔WGSL boundary).
//!
//! Adding an op family: its WGSL file, its Rust module in `gpu/` (Params, binding constants, dispatch
//! code), and one row here.

use super::{conv, elementwise, fft, layers, layout, loss, optim, peak, ptycho, translate};

pub const COMPLEX_WGSL: &str = include_str!("../../../shaders/common/complex.wgsl");

/// Invocations per workgroup of the elementwise-style kernels.
pub const ELEMENTWISE_WORKGROUP_SIZE: u64 = 256;
/// Elements each invocation of the elementwise and copy kernels handles.
pub const ELEMENTS_PER_INVOCATION: u64 = 4;

/// One WGSL shader module the GPU backend can create pipelines from.
pub struct Shader {
    /// Pipeline-cache name. FFT passes are variants of one row; each variant has its own name.
    pub name: &'static str,
    /// Files under shaders/ whose text makes up the source, helpers first.
    pub files: &'static [&'static str],
    pub entry_points: &'static [&'static str],
    /// Every resource binding of the module: (WGSL variable name, index).
    pub bindings: &'static [(&'static str, u32)],
    /// The Rust mirror of the module's `Params` uniform block.
    pub params: fn() -> ParamsLayout,
    /// The full WGSL text: compile-time constants, then the files (for the FFT, its first variant;
    /// `fft::FftPass::all` lists every one).
    pub source: fn() -> String,
}

pub const FFT: Shader = Shader {
    name: "fft",
    files: &["common/complex.wgsl", "fft.wgsl"],
    entry_points: &["main"],
    bindings: fft::BINDINGS,
    params: fft::FftParams::layout,
    source: fft::first_variant_source,
};

pub const ELEMENTWISE: Shader = Shader {
    name: "elementwise",
    files: &["common/complex.wgsl", "elementwise.wgsl"],
    entry_points: elementwise::ENTRY_POINTS,
    bindings: elementwise::BINDINGS,
    params: elementwise::ElementwiseParams::layout,
    source: || {
        elementwise_constants()
            + COMPLEX_WGSL
            + "\n"
            + include_str!("../../../shaders/elementwise.wgsl")
    },
};

pub const COPY: Shader = Shader {
    name: "copy",
    files: &["copy.wgsl"],
    entry_points: &["main"],
    bindings: elementwise::COPY_BINDINGS,
    params: elementwise::CopyParams::layout,
    source: || elementwise_constants() + include_str!("../../../shaders/copy.wgsl"),
};

pub const TRANSLATE: Shader = Shader {
    name: "translate",
    files: &["common/complex.wgsl", "translate.wgsl"],
    entry_points: translate::ENTRY_POINTS,
    bindings: translate::BINDINGS,
    params: translate::TranslateParams::layout,
    source: || {
        elementwise_constants()
            + COMPLEX_WGSL
            + "\n"
            + include_str!("../../../shaders/translate.wgsl")
    },
};

pub const LAYOUT: Shader = Shader {
    name: "layout",
    files: &["common/complex.wgsl", "layout.wgsl"],
    entry_points: layout::ENTRY_POINTS,
    bindings: layout::BINDINGS,
    params: layout::LayoutParams::layout,
    source: || {
        elementwise_constants() + COMPLEX_WGSL + "\n" + include_str!("../../../shaders/layout.wgsl")
    },
};

pub const LOSS: Shader = Shader {
    name: "loss",
    files: &["loss.wgsl"],
    entry_points: loss::ENTRY_POINTS,
    bindings: loss::BINDINGS,
    params: loss::LossParams::layout,
    source: || elementwise_constants() + include_str!("../../../shaders/loss.wgsl"),
};

pub const CONV: Shader = Shader {
    name: "conv",
    files: &["conv.wgsl"],
    entry_points: conv::TILED_ENTRY_POINTS,
    bindings: conv::TILED_BINDINGS,
    params: conv::ConvParams::layout,
    source: || include_str!("../../../shaders/conv.wgsl").to_string(),
};

pub const CONV_LANES: Shader = Shader {
    name: "conv_lanes",
    files: &["conv_lanes.wgsl"],
    entry_points: conv::LANES_ENTRY_POINTS,
    bindings: conv::LANES_BINDINGS,
    params: conv::LaneConvParams::layout,
    source: || include_str!("../../../shaders/conv_lanes.wgsl").to_string(),
};

pub const LAYERS: Shader = Shader {
    name: "layers",
    files: &["layers.wgsl"],
    entry_points: layers::ENTRY_POINTS,
    bindings: layers::BINDINGS,
    params: layers::LayerParams::layout,
    source: || elementwise_constants() + include_str!("../../../shaders/layers.wgsl"),
};

pub const OPTIM: Shader = Shader {
    name: "optim",
    files: &["optim.wgsl"],
    entry_points: &["adam"],
    bindings: optim::BINDINGS,
    params: optim::AdamParams::layout,
    source: || elementwise_constants() + include_str!("../../../shaders/optim.wgsl"),
};

pub const PEAK: Shader = Shader {
    name: "peak",
    files: &["peak.wgsl"],
    entry_points: &["fma_chain"],
    bindings: peak::BINDINGS,
    params: peak::PeakParams::layout,
    source: || elementwise_constants() + include_str!("../../../shaders/peak.wgsl"),
};

pub const PTYCHO: Shader = Shader {
    name: "ptycho",
    files: &["common/complex.wgsl", "ptycho.wgsl"],
    entry_points: ptycho::ENTRY_POINTS,
    bindings: ptycho::BINDINGS,
    params: ptycho::PtychoParams::layout,
    source: || {
        elementwise_constants() + COMPLEX_WGSL + "\n" + include_str!("../../../shaders/ptycho.wgsl")
    },
};

/// Every shader of the GPU backend.
pub const SHADERS: &[&Shader] = &[
    &FFT,
    &ELEMENTWISE,
    &COPY,
    &TRANSLATE,
    &LAYOUT,
    &LOSS,
    &CONV,
    &CONV_LANES,
    &LAYERS,
    &OPTIM,
    &PEAK,
    &PTYCHO,
];

/// The grid constants the elementwise-style kernels are specialised with.
fn elementwise_constants() -> String {
    format!(
        "const WORKGROUP_SIZE: u32 = {ELEMENTWISE_WORKGROUP_SIZE}u;\n\
         const ELEMENTS_PER_INVOCATION: u32 = {ELEMENTS_PER_INVOCATION}u;\n"
    )
}

/// The byte layout of a `#[repr(C)]` Params struct, for the check against its WGSL twin.
#[derive(Debug)]
pub struct ParamsLayout {
    pub rust_name: &'static str,
    pub size: usize,
    /// (member name, byte offset, WGSL scalar type) of every member; names starting with `_` are padding.
    pub members: Vec<(&'static str, usize, &'static str)>,
}

/// The WGSL type a Params member is declared with.
pub trait WgslMember {
    const WGSL: &'static str;
}

impl WgslMember for u32 {
    const WGSL: &'static str = "u32";
}

impl WgslMember for f32 {
    const WGSL: &'static str = "f32";
}

/// The WGSL type of the member `field` reaches (a helper of `params_struct!`).
pub fn member_type<S, T: WgslMember>(_field: fn(&S) -> &T) -> &'static str {
    T::WGSL
}

/// A `#[repr(C)]` uniform block mirrored from WGSL, with its `layout()` for the boundary test. Every
/// member is a u32 or f32, as in the WGSL structs; padding members start with `_`.
macro_rules! params_struct {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        impl $name {
            pub fn layout() -> $crate::gpu::shaders::ParamsLayout {
                $crate::gpu::shaders::ParamsLayout {
                    rust_name: stringify!($name),
                    size: std::mem::size_of::<$name>(),
                    members: vec![$((
                        stringify!($field),
                        std::mem::offset_of!($name, $field),
                        $crate::gpu::shaders::member_type(|p: &$name| &p.$field),
                    )),*],
                }
            }
        }
    };
}

pub(crate) use params_struct;
