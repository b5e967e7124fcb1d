//! Network layer kernels (shaders/layers.wgsl): activations, pooling, upsampling, channel slices,
//! spatial padding, the complex combination of amplitude and phase, and layout changes. Each entry
//! point binds only the resources it uses.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::shaders::{params_struct, LAYERS};
use crate::ops::layers::{check_same, check_slice, crop_geometry, require_shape, Activation, Nhwc};
use crate::ops::{require_dtype, ConvParamGrads};
use crate::{Dtype, Result};

use super::pool::PooledBuffer;

pub(super) const ENTRY_POINTS: &[&str] = &[
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

/// Real input.
const X: u32 = 0;
/// Second real input (the gradient flowing back, or the addend).
const Y: u32 = 1;
const OUT: u32 = 2;
const OUT2: u32 = 3;
/// Complex input.
const Z: u32 = 4;
const OUT_COMPLEX: u32 = 5;
const PARAMS: u32 = 6;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("x", X),
    ("y", Y),
    ("out", OUT),
    ("out2", OUT2),
    ("z", Z),
    ("out_complex", OUT_COMPLEX),
    ("params", PARAMS),
];

params_struct!(LayerParams {
    len: u32,
    row_invocations: u32,
    h: u32,
    w: u32,
    c: u32,
    c_out: u32,
    start: u32,
    pad: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
});

impl LayerParams {
    fn of(d: &Nhwc) -> Self {
        Self {
            h: d.h as u32,
            w: d.w as u32,
            c: d.c as u32,
            ..Self::default()
        }
    }
}

/// One dispatch of the layer kernel `entry` over `len` output elements, with exactly the bindings
/// the entry point uses.
fn dispatch(
    gpu: &GpuBackend,
    entry: &'static str,
    bindings: &[(u32, &GpuTensor)],
    mut params: LayerParams,
    len: usize,
) -> Result<()> {
    check_u32(entry, len)?;
    let pipeline = gpu.kernel(&LAYERS, entry)?;
    let (workgroups, row_invocations) = gpu.grid(len as u64);
    params.len = len as u32;
    params.row_invocations = row_invocations;
    let bindings: Vec<_> = bindings.iter().map(|(index, t)| bind(*index, t)).collect();
    gpu.dispatch(
        entry,
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )
}

pub(super) fn activation(gpu: &GpuBackend, kind: Activation, x: &GpuTensor) -> Result<GpuTensor> {
    require_dtype("activation", x, Dtype::F32)?;
    let out = gpu.alloc("activation", x.shape(), Dtype::F32)?;
    let params = LayerParams {
        scale: kind.scale(),
        ..LayerParams::default()
    };
    dispatch(
        gpu,
        kind.forward_entry(),
        &[(X, x), (OUT, &out)],
        params,
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn activation_backward(
    gpu: &GpuBackend,
    kind: Activation,
    x: &GpuTensor,
    grad_out: &GpuTensor,
) -> Result<GpuTensor> {
    check_same("activation_backward", x, grad_out)?;
    let out = gpu.alloc("activation_backward", x.shape(), Dtype::F32)?;
    let params = LayerParams {
        scale: kind.scale(),
        ..LayerParams::default()
    };
    dispatch(
        gpu,
        kind.backward_entry(),
        &[(X, x), (Y, grad_out), (OUT, &out)],
        params,
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn max_pool2(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor> {
    let d = Nhwc::of_even("max_pool2", x)?;
    let out = gpu.alloc("max_pool2", &[d.b, d.h / 2, d.w / 2, d.c], Dtype::F32)?;
    dispatch(
        gpu,
        "max_pool",
        &[(X, x), (OUT, &out)],
        LayerParams::of(&d),
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn max_pool2_backward(
    gpu: &GpuBackend,
    x: &GpuTensor,
    grad_out: &GpuTensor,
) -> Result<GpuTensor> {
    const OP: &str = "max_pool2_backward";
    let d = Nhwc::of_even(OP, x)?;
    require_shape(OP, grad_out, &[d.b, d.h / 2, d.w / 2, d.c])?;
    let out = gpu.alloc(OP, x.shape(), Dtype::F32)?;
    dispatch(
        gpu,
        "max_pool_backward",
        &[(X, x), (Y, grad_out), (OUT, &out)],
        LayerParams::of(&d),
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn upsample2(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor> {
    let d = Nhwc::of("upsample2", x)?;
    let out = gpu.alloc("upsample2", &[d.b, 2 * d.h, 2 * d.w, d.c], Dtype::F32)?;
    dispatch(
        gpu,
        "upsample",
        &[(X, x), (OUT, &out)],
        LayerParams::of(&d),
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn upsample2_backward(gpu: &GpuBackend, grad_out: &GpuTensor) -> Result<GpuTensor> {
    let g = Nhwc::of_even("upsample2_backward", grad_out)?;
    let d = Nhwc {
        h: g.h / 2,
        w: g.w / 2,
        ..g
    };
    let out = gpu.alloc("upsample2_backward", &d.shape(), Dtype::F32)?;
    dispatch(
        gpu,
        "upsample_backward",
        &[(X, grad_out), (OUT, &out)],
        LayerParams::of(&d),
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn slice_channels(
    gpu: &GpuBackend,
    x: &GpuTensor,
    start: usize,
    count: usize,
) -> Result<GpuTensor> {
    let d = Nhwc::of("slice_channels", x)?;
    check_slice("slice_channels", &d, start, count)?;
    let out = gpu.alloc("slice_channels", &[d.b, d.h, d.w, count], Dtype::F32)?;
    let params = LayerParams {
        c_out: count as u32,
        start: start as u32,
        ..LayerParams::of(&d)
    };
    dispatch(
        gpu,
        "slice_channels",
        &[(X, x), (OUT, &out)],
        params,
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn slice_channels_backward(
    gpu: &GpuBackend,
    grad_out: &GpuTensor,
    start: usize,
    channels: usize,
) -> Result<GpuTensor> {
    let g = Nhwc::of("slice_channels_backward", grad_out)?;
    let d = Nhwc { c: channels, ..g };
    check_slice("slice_channels_backward", &d, start, g.c)?;
    let out = gpu.alloc("slice_channels_backward", &d.shape(), Dtype::F32)?;
    let params = LayerParams {
        c_out: g.c as u32,
        start: start as u32,
        ..LayerParams::of(&d)
    };
    dispatch(
        gpu,
        "slice_channels_backward",
        &[(X, grad_out), (OUT, &out)],
        params,
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn pad_spatial(gpu: &GpuBackend, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
    let d = Nhwc::of("pad_spatial", x)?;
    let out = gpu.alloc(
        "pad_spatial",
        &[d.b, d.h + 2 * pad, d.w + 2 * pad, d.c],
        Dtype::F32,
    )?;
    let params = LayerParams {
        pad: pad as u32,
        ..LayerParams::of(&d)
    };
    dispatch(
        gpu,
        "pad_spatial",
        &[(X, x), (OUT, &out)],
        params,
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn crop_spatial(gpu: &GpuBackend, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
    let d = crop_geometry(x, pad)?;
    let out = gpu.alloc("crop_spatial", &d.shape(), Dtype::F32)?;
    let params = LayerParams {
        pad: pad as u32,
        ..LayerParams::of(&d)
    };
    dispatch(
        gpu,
        "crop_spatial",
        &[(X, x), (OUT, &out)],
        params,
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn combine_complex(
    gpu: &GpuBackend,
    amp: &GpuTensor,
    phase: &GpuTensor,
) -> Result<GpuTensor> {
    let d = Nhwc::of("combine_complex", amp)?;
    check_same("combine_complex", amp, phase)?;
    let out = gpu.alloc("combine_complex", &d.channels_first_shape(), Dtype::C64)?;
    dispatch(
        gpu,
        "combine_complex",
        &[(X, amp), (Y, phase), (OUT_COMPLEX, &out)],
        LayerParams::of(&d),
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn combine_complex_backward(
    gpu: &GpuBackend,
    amp: &GpuTensor,
    phase: &GpuTensor,
    grad: &GpuTensor,
) -> Result<ConvParamGrads<PooledBuffer>> {
    const OP: &str = "combine_complex_backward";
    let d = Nhwc::of(OP, amp)?;
    check_same(OP, amp, phase)?;
    require_dtype(OP, grad, Dtype::C64)?;
    require_shape(OP, grad, &d.channels_first_shape())?;
    let grad_amp = gpu.alloc(OP, &d.shape(), Dtype::F32)?;
    let grad_phase = gpu.alloc(OP, &d.shape(), Dtype::F32)?;
    dispatch(
        gpu,
        "combine_complex_backward",
        &[
            (X, amp),
            (Y, phase),
            (Z, grad),
            (OUT, &grad_amp),
            (OUT2, &grad_phase),
        ],
        LayerParams::of(&d),
        grad_amp.len(),
    )?;
    Ok((grad_amp, grad_phase))
}

pub(super) fn to_channels_last(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor> {
    let d = Nhwc::of_channels_first("to_channels_last", x)?;
    let out = gpu.alloc("to_channels_last", &d.shape(), Dtype::F32)?;
    dispatch(
        gpu,
        "to_channels_last",
        &[(X, x), (OUT, &out)],
        LayerParams::of(&d),
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn to_channels_first(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor> {
    let d = Nhwc::of("to_channels_first", x)?;
    let out = gpu.alloc("to_channels_first", &d.channels_first_shape(), Dtype::F32)?;
    dispatch(
        gpu,
        "to_channels_first",
        &[(X, x), (OUT, &out)],
        LayerParams::of(&d),
        out.len(),
    )?;
    Ok(out)
}

pub(super) fn add_real(gpu: &GpuBackend, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    check_same("add_real", a, b)?;
    let out = gpu.alloc("add_real", a.shape(), Dtype::F32)?;
    dispatch(
        gpu,
        "add_real",
        &[(X, a), (Y, b), (OUT, &out)],
        LayerParams::default(),
        out.len(),
    )?;
    Ok(out)
}
