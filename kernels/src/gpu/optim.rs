//! Adam's update (shaders/optim.wgsl), in place on the parameter and its moments.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::shaders::{params_struct, OPTIM};
use crate::ops::optim::{check_adam, AdamConfig};
use crate::Result;

const GRAD: u32 = 0;
const PARAM: u32 = 1;
const M: u32 = 2;
const V: u32 = 3;
const PARAMS: u32 = 4;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("grad", GRAD),
    ("param", PARAM),
    ("m", M),
    ("v", V),
    ("params", PARAMS),
];

params_struct!(AdamParams {
    len: u32,
    row_invocations: u32,
    alpha: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
});

pub(super) fn adam_update(
    gpu: &GpuBackend,
    config: &AdamConfig,
    step: u64,
    param: &mut GpuTensor,
    grad: &GpuTensor,
    m: &mut GpuTensor,
    v: &mut GpuTensor,
) -> Result<()> {
    check_adam(param, grad, m, v)?;
    check_u32("adam_update", param.len())?;
    let pipeline = gpu.kernel(&OPTIM, "adam")?;
    let (workgroups, row_invocations) = gpu.grid(param.len() as u64);
    let params = AdamParams {
        len: param.len() as u32,
        row_invocations,
        alpha: config.alpha(step) as f32,
        beta1: config.beta1 as f32,
        beta2: config.beta2 as f32,
        epsilon: config.epsilon as f32,
        ..AdamParams::default()
    };
    gpu.dispatch(
        "adam",
        &pipeline,
        &[bind(GRAD, grad), bind(PARAM, param), bind(M, m), bind(V, v)],
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )
}
