//! Elementwise kernels (shaders/elementwise.wgsl) and the buffer copy (shaders/copy.wgsl): each
//! invocation handles ELEMENTS_PER_INVOCATION elements in a grid-strided loop.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::recorder::Binding;
use super::shaders::{params_struct, COPY, ELEMENTWISE};
use crate::ops::elementwise::{require_complex, BinaryGeometry, BinaryOp, ComplexRealPair, RealOp};
use crate::ops::require_dtype;
use crate::{Dtype, Result};

pub(super) const ENTRY_POINTS: &[&str] = &[
    "mul",
    "mul_conj",
    "add",
    "scale",
    "abs",
    "abs2",
    "scale_real",
    "modulus_grad",
    "div_real",
    "offset_real",
];

/// Complex operand a.
const A: u32 = 0;
/// Complex operand b, indexed modulo b_len.
const B: u32 = 1;
const OUT_COMPLEX: u32 = 2;
const OUT_REAL: u32 = 3;
const PARAMS: u32 = 4;
/// Real operand a.
const A_REAL: u32 = 5;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("a", A),
    ("b", B),
    ("out_complex", OUT_COMPLEX),
    ("out_real", OUT_REAL),
    ("params", PARAMS),
    ("a_real", A_REAL),
];

params_struct!(ElementwiseParams {
    len: u32,
    b_len: u32,
    row_invocations: u32,
    scale: f32,
});

const COPY_SRC: u32 = 0;
const COPY_DST: u32 = 1;
const COPY_PARAMS: u32 = 2;
pub(super) const COPY_BINDINGS: &[(&str, u32)] = &[
    ("src", COPY_SRC),
    ("dst", COPY_DST),
    ("params", COPY_PARAMS),
];

params_struct!(CopyParams {
    len: u32,
    row_invocations: u32,
    _pad0: u32,
    _pad1: u32,
});

/// One dispatch of the elementwise kernel `entry` over out's elements; `inputs` are (binding, tensor).
fn dispatch(
    gpu: &GpuBackend,
    entry: &'static str,
    inputs: &[(u32, &GpuTensor)],
    b_len: usize,
    scale: f32,
    out: &GpuTensor,
) -> Result<()> {
    check_u32(entry, out.len())?;
    let pipeline = gpu.kernel(&ELEMENTWISE, entry)?;
    let len = out.len() as u64;
    let (workgroups, row_invocations) = gpu.elementwise_grid(len);
    let params = ElementwiseParams {
        len: len as u32,
        b_len: b_len as u32,
        row_invocations,
        scale,
    };
    let mut bindings: Vec<Binding<'_>> = inputs.iter().map(|(index, t)| bind(*index, t)).collect();
    let out_index = if out.dtype() == Dtype::C64 {
        OUT_COMPLEX
    } else {
        OUT_REAL
    };
    bindings.push(bind(out_index, out));
    gpu.dispatch(
        entry,
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )
}

pub(super) fn binary(
    gpu: &GpuBackend,
    op: BinaryOp,
    a: &GpuTensor,
    b: &GpuTensor,
) -> Result<GpuTensor> {
    let geometry = BinaryGeometry::of(op, a, b)?;
    let out = gpu.alloc(op.name(), a.shape(), Dtype::C64)?;
    check_u32(op.name(), geometry.len)?;
    dispatch(gpu, op.name(), &[(A, a), (B, b)], geometry.b_len, 1.0, &out)?;
    Ok(out)
}

pub(super) fn real(gpu: &GpuBackend, op: RealOp, a: &GpuTensor) -> Result<GpuTensor> {
    require_complex(op.name(), a)?;
    check_u32(op.name(), a.len())?;
    let out = gpu.alloc(op.name(), a.shape(), Dtype::F32)?;
    dispatch(gpu, op.name(), &[(A, a)], 1, 1.0, &out)?;
    Ok(out)
}

pub(super) fn scale(gpu: &GpuBackend, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
    let out = gpu.alloc("scale", a.shape(), a.dtype())?;
    match a.dtype() {
        Dtype::C64 => dispatch(gpu, "scale", &[(A, a)], 1, s, &out)?,
        Dtype::F32 => dispatch(gpu, "scale_real", &[(A_REAL, a)], 1, s, &out)?,
    }
    Ok(out)
}

pub(super) fn modulus_grad(
    gpu: &GpuBackend,
    a: &GpuTensor,
    g: &GpuTensor,
    s: f32,
) -> Result<GpuTensor> {
    ComplexRealPair::of("modulus_grad", a, g)?;
    let out = gpu.alloc("modulus_grad", a.shape(), Dtype::C64)?;
    dispatch(gpu, "modulus_grad", &[(A, a), (A_REAL, g)], 1, s, &out)?;
    Ok(out)
}

pub(super) fn div_real(gpu: &GpuBackend, a: &GpuTensor, d: &GpuTensor) -> Result<GpuTensor> {
    ComplexRealPair::of("div_real", a, d)?;
    let out = gpu.alloc("div_real", a.shape(), Dtype::C64)?;
    dispatch(gpu, "div_real", &[(A, a), (A_REAL, d)], 1, 1.0, &out)?;
    Ok(out)
}

pub(super) fn offset(gpu: &GpuBackend, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
    require_dtype("offset", a, Dtype::F32)?;
    let out = gpu.alloc("offset", a.shape(), Dtype::F32)?;
    dispatch(gpu, "offset_real", &[(A_REAL, a)], 1, s, &out)?;
    Ok(out)
}

pub(super) fn copy(gpu: &GpuBackend, a: &GpuTensor) -> Result<GpuTensor> {
    let out = gpu.alloc("copy", a.shape(), a.dtype())?;
    let vec4s = a.size_bytes().div_ceil(16);
    check_u32("copy", vec4s as usize)?;
    let pipeline = gpu.kernel(&COPY, "main")?;
    let (workgroups, row_invocations) = gpu.elementwise_grid(vec4s);
    let params = CopyParams {
        len: vec4s as u32,
        row_invocations,
        ..CopyParams::default()
    };
    let bindings = [bind(COPY_SRC, a), bind(COPY_DST, &out)];
    gpu.dispatch(
        "copy",
        &pipeline,
        &bindings,
        COPY_PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )?;
    Ok(out)
}
