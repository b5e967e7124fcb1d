//! Loss kernels (shaders/loss.wgsl): per-element terms and gradients, and the tree sum.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::shaders::{params_struct, ELEMENTWISE_WORKGROUP_SIZE, LOSS};
use crate::ops::loss::{check_pair, LossKind};
use crate::ops::require_dtype;
use crate::{Dtype, Result};

pub(super) const ENTRY_POINTS: &[&str] = &[
    "poisson_terms",
    "deviance_terms",
    "mae_terms",
    "poisson_grad",
    "mae_grad",
    "sum_level",
];

const PRED: u32 = 0;
const OBSERVED: u32 = 1;
const OUT: u32 = 2;
const PARAMS: u32 = 3;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("pred", PRED),
    ("observed", OBSERVED),
    ("out", OUT),
    ("params", PARAMS),
];

params_struct!(LossParams {
    len: u32,
    row_invocations: u32,
    scale: f32,
    _pad: u32,
});

/// One dispatch of the per-element kernel `entry` over pred's elements.
fn dispatch(
    gpu: &GpuBackend,
    entry: &'static str,
    pred: &GpuTensor,
    target: &GpuTensor,
    scale: f32,
    out: &GpuTensor,
) -> Result<()> {
    let len = out.len();
    check_u32(entry, len)?;
    let pipeline = gpu.kernel(&LOSS, entry)?;
    let (workgroups, row_invocations) = gpu.grid(len as u64);
    let params = LossParams {
        len: len as u32,
        row_invocations,
        scale,
        ..LossParams::default()
    };
    let bindings = [bind(PRED, pred), bind(OBSERVED, target), bind(OUT, out)];
    gpu.dispatch(
        entry,
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )
}

pub(super) fn loss_terms(
    gpu: &GpuBackend,
    kind: LossKind,
    pred: &GpuTensor,
    target: &GpuTensor,
) -> Result<GpuTensor> {
    check_pair("loss_terms", pred, target)?;
    let out = gpu.alloc("loss_terms", pred.shape(), Dtype::F32)?;
    dispatch(gpu, kind.terms_entry(), pred, target, 1.0, &out)?;
    Ok(out)
}

pub(super) fn loss_grad(
    gpu: &GpuBackend,
    kind: LossKind,
    pred: &GpuTensor,
    target: &GpuTensor,
    scale: f32,
) -> Result<GpuTensor> {
    check_pair("loss_grad", pred, target)?;
    let out = gpu.alloc("loss_grad", pred.shape(), Dtype::F32)?;
    dispatch(gpu, kind.grad_entry(), pred, target, scale, &out)?;
    Ok(out)
}

/// The sum of x's elements, by levels of partial sums until one value is left.
pub(super) fn sum(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor> {
    require_dtype("sum", x, Dtype::F32)?;
    let per_group = (ELEMENTWISE_WORKGROUP_SIZE * 4) as usize;
    let mut len = x.len();
    let mut level = gpu.alloc("sum", &[len.div_ceil(per_group).max(1)], Dtype::F32)?;
    sum_level(gpu, x, &level, len)?;
    len = level.len();
    while len > 1 {
        let next = gpu.alloc("sum", &[len.div_ceil(per_group)], Dtype::F32)?;
        sum_level(gpu, &level, &next, len)?;
        level = next;
        len = level.len();
    }
    let out = gpu.alloc("sum", &[], Dtype::F32)?;
    gpu.recorder().encoder().copy_buffer_to_buffer(
        level.storage.buffer(),
        0,
        out.storage.buffer(),
        0,
        4,
    );
    Ok(out)
}

/// One level of the tree sum: `len` values of x into ceil(len / (4 WORKGROUP_SIZE)) partial sums.
fn sum_level(gpu: &GpuBackend, x: &GpuTensor, out: &GpuTensor, len: usize) -> Result<()> {
    check_u32("sum", len)?;
    let pipeline = gpu.kernel(&LOSS, "sum_level")?;
    let workgroups = out.len() as u64;
    let max_x = gpu.limits.max_compute_workgroups_per_dimension as u64;
    let params = LossParams {
        len: len as u32,
        row_invocations: (workgroups.min(max_x) * ELEMENTWISE_WORKGROUP_SIZE) as u32,
        scale: 1.0,
        ..LossParams::default()
    };
    let bindings = [bind(PRED, x), bind(OUT, out)];
    gpu.dispatch(
        "sum_level",
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )
}
