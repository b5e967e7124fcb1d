//! Layout kernels (shaders/layout.wgsl): centre crop/pad, channel sums and channel repeats, each with
//! a complex and a real entry point.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::shaders::{params_struct, LAYOUT};
use crate::ops::layout::{ChannelGeometry, RecenterGeometry};
use crate::{Dtype, Result};

pub(super) const ENTRY_POINTS: &[&str] = &[
    "recenter_complex",
    "recenter_real",
    "sum_channels_complex",
    "sum_channels_real",
    "repeat_channels_complex",
    "repeat_channels_real",
];

const SRC_COMPLEX: u32 = 0;
const SRC_REAL: u32 = 1;
const OUT_COMPLEX: u32 = 2;
const OUT_REAL: u32 = 3;
const PARAMS: u32 = 4;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("src_complex", SRC_COMPLEX),
    ("src_real", SRC_REAL),
    ("out_complex", OUT_COMPLEX),
    ("out_real", OUT_REAL),
    ("params", PARAMS),
];

params_struct!(LayoutParams {
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    len: u32,
    channels: u32,
    row_invocations: u32,
    _pad: u32,
});

impl LayoutParams {
    /// [in_h, in_w, out_h, out_w], output elements, channels; the grid is filled in at dispatch.
    fn new(sizes: [usize; 4], len: usize, channels: usize) -> Self {
        let [in_h, in_w, out_h, out_w] = sizes.map(|v| v as u32);
        Self {
            in_h,
            in_w,
            out_h,
            out_w,
            len: len as u32,
            channels: channels as u32,
            ..Self::default()
        }
    }
}

/// One dispatch of the layout kernel `op` (its complex or real entry) from x to out.
fn dispatch(
    gpu: &GpuBackend,
    op: &'static str,
    x: &GpuTensor,
    out: &GpuTensor,
    mut params: LayoutParams,
) -> Result<()> {
    check_u32(op, x.len().max(out.len()))?;
    let complex = x.dtype() == Dtype::C64;
    let entry = format!("{op}_{}", if complex { "complex" } else { "real" });
    let pipeline = gpu.kernel(&LAYOUT, &entry)?;
    let (workgroups, row_invocations) = gpu.grid(out.len() as u64);
    params.row_invocations = row_invocations;
    let (src_index, out_index) = if complex {
        (SRC_COMPLEX, OUT_COMPLEX)
    } else {
        (SRC_REAL, OUT_REAL)
    };
    let bindings = [bind(src_index, x), bind(out_index, out)];
    gpu.dispatch(
        &entry,
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )
}

pub(super) fn recenter(
    gpu: &GpuBackend,
    x: &GpuTensor,
    out_h: usize,
    out_w: usize,
) -> Result<GpuTensor> {
    let g = RecenterGeometry::of(x, out_h, out_w)?;
    let out = gpu.alloc("recenter", &g.out_shape(x.shape()), x.dtype())?;
    let params = LayoutParams::new([g.in_h, g.in_w, g.out_h, g.out_w], out.len(), 1);
    dispatch(gpu, "recenter", x, &out, params)?;
    Ok(out)
}

pub(super) fn sum_channels(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor> {
    let g = ChannelGeometry::of_sum(x)?;
    let mut shape = x.shape().to_vec();
    shape.remove(shape.len() - 3);
    let out = gpu.alloc("sum_channels", &shape, x.dtype())?;
    let params = LayoutParams::new([g.h, g.w, g.h, g.w], out.len(), g.channels);
    dispatch(gpu, "sum_channels", x, &out, params)?;
    Ok(out)
}

pub(super) fn repeat_channels(
    gpu: &GpuBackend,
    x: &GpuTensor,
    channels: usize,
) -> Result<GpuTensor> {
    let g = ChannelGeometry::of_repeat(x, channels)?;
    let mut shape = x.shape().to_vec();
    shape.insert(shape.len() - 2, channels);
    let out = gpu.alloc("repeat_channels", &shape, x.dtype())?;
    let params = LayoutParams::new([g.h, g.w, g.h, g.w], out.len(), channels);
    dispatch(gpu, "repeat_channels", x, &out, params)?;
    Ok(out)
}
