//! The FMA-chain kernel (shaders/peak.wgsl) the benchmarks measure the adapter's arithmetic peak with.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::shaders::{params_struct, PEAK};
use crate::{Dtype, Result};

const OUT: u32 = 0;
const PARAMS: u32 = 1;
pub(super) const BINDINGS: &[(&str, u32)] = &[("out", OUT), ("params", PARAMS)];

params_struct!(PeakParams {
    lanes: u32,
    row_invocations: u32,
    iterations: u32,
    _pad: u32,
});

pub(super) fn fma_chain(gpu: &GpuBackend, lanes: usize, iterations: u32) -> Result<GpuTensor> {
    check_u32("fma_chain", lanes)?;
    let out = gpu.alloc("fma_chain", &[lanes], Dtype::F32)?;
    let pipeline = gpu.kernel(&PEAK, "fma_chain")?;
    let (workgroups, row_invocations) = gpu.grid(lanes as u64);
    let params = PeakParams {
        lanes: lanes as u32,
        row_invocations,
        iterations,
        ..PeakParams::default()
    };
    gpu.dispatch(
        "fma_chain",
        &pipeline,
        &[bind(OUT, &out)],
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )?;
    Ok(out)
}
