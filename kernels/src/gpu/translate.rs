//! Sub-pixel translation by bilinear interpolation (shaders/translate.wgsl) and its adjoint.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::shaders::{params_struct, TRANSLATE};
use crate::ops::translate::{TranslateDirection, TranslateGeometry};
use crate::{Dtype, Result};

pub(super) const ENTRY_POINTS: &[&str] = &[
    "forward_complex",
    "forward_real",
    "backward_complex",
    "backward_real",
];

const SRC_COMPLEX: u32 = 0;
const SRC_REAL: u32 = 1;
const SHIFTS: u32 = 2;
const OUT_COMPLEX: u32 = 3;
const OUT_REAL: u32 = 4;
const PARAMS: u32 = 5;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("src_complex", SRC_COMPLEX),
    ("src_real", SRC_REAL),
    ("shifts", SHIFTS),
    ("out_complex", OUT_COMPLEX),
    ("out_real", OUT_REAL),
    ("params", PARAMS),
];

params_struct!(TranslateParams {
    h: u32,
    w: u32,
    len: u32,
    row_invocations: u32,
});

pub(super) fn translate(
    gpu: &GpuBackend,
    x: &GpuTensor,
    shifts: &GpuTensor,
    direction: TranslateDirection,
) -> Result<GpuTensor> {
    let geometry = TranslateGeometry::of(x, shifts)?;
    check_u32("translate", x.len())?;
    let complex = x.dtype() == Dtype::C64;
    let entry = match (direction, complex) {
        (TranslateDirection::Forward, true) => "forward_complex",
        (TranslateDirection::Forward, false) => "forward_real",
        (TranslateDirection::Backward, true) => "backward_complex",
        (TranslateDirection::Backward, false) => "backward_real",
    };
    let out = gpu.alloc("translate", x.shape(), x.dtype())?;
    let pipeline = gpu.kernel(&TRANSLATE, entry)?;
    let len = x.len() as u64;
    let (workgroups, row_invocations) = gpu.grid(len);
    let params = TranslateParams {
        h: geometry.h as u32,
        w: geometry.w as u32,
        len: len as u32,
        row_invocations,
    };
    let (src_index, out_index) = if complex {
        (SRC_COMPLEX, OUT_COMPLEX)
    } else {
        (SRC_REAL, OUT_REAL)
    };
    let bindings = [
        bind(src_index, x),
        bind(SHIFTS, shifts),
        bind(out_index, &out),
    ];
    gpu.dispatch(
        entry,
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )?;
    Ok(out)
}
