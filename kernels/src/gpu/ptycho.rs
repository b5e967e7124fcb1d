//! The iterative engines' ops (shaders/ptycho.wgsl): patch extraction, its adjoint gathered per
//! object pixel through the bin index, and the Fourier-modulus projection.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::pool::PooledBuffer;
use super::shaders::{params_struct, PTYCHO};
use crate::ops::ptycho::{check_modulus_pair, check_pattern_pair, PatchGeometry, PatchTable};
use crate::ops::ConvParamGrads;
use crate::{Dtype, Result};

pub(super) const ENTRY_POINTS: &[&str] = &["extract", "scatter", "modulus_project", "pattern_dot"];

const SRC: u32 = 0;
const ORIGINS: u32 = 1;
const INDEX: u32 = 2;
const OUT_COMPLEX: u32 = 3;
const OUT_REAL: u32 = 4;
const AMPLITUDE: u32 = 5;
const PARAMS: u32 = 6;
const OTHER: u32 = 7;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("src", SRC),
    ("origins", ORIGINS),
    ("index", INDEX),
    ("out_complex", OUT_COMPLEX),
    ("out_real", OUT_REAL),
    ("amplitude", AMPLITUDE),
    ("params", PARAMS),
    ("other", OTHER),
];

params_struct!(PtychoParams {
    n: u32,
    h: u32,
    w: u32,
    bin: u32,
    bins_x: u32,
    bins: u32,
    shared_patch: u32,
    len: u32,
    row_invocations: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
});

fn dispatch(
    gpu: &GpuBackend,
    entry: &'static str,
    bindings: &[(u32, &GpuTensor)],
    mut params: PtychoParams,
) -> Result<()> {
    let len = params.len as u64;
    let pipeline = gpu.kernel(&PTYCHO, entry)?;
    let (workgroups, row_invocations) = gpu.grid(len);
    params.row_invocations = row_invocations;
    let bindings: Vec<_> = bindings.iter().map(|(i, t)| bind(*i, t)).collect();
    gpu.dispatch(
        entry,
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        workgroups,
    )
}

pub(super) fn extract_patches(
    gpu: &GpuBackend,
    object: &GpuTensor,
    origins: &GpuTensor,
    n: usize,
) -> Result<GpuTensor> {
    let g = PatchGeometry::of_extract(object, origins, n)?;
    check_u32("extract_patches", g.patches * n * n)?;
    check_u32("extract_patches", g.h * g.w)?;
    let out = gpu.alloc("extract_patches", &[g.patches, n, n], Dtype::C64)?;
    let params = PtychoParams {
        n: n as u32,
        h: g.h as u32,
        w: g.w as u32,
        len: out.len() as u32,
        ..PtychoParams::default()
    };
    dispatch(
        gpu,
        "extract",
        &[(SRC, object), (ORIGINS, origins), (OUT_COMPLEX, &out)],
        params,
    )?;
    Ok(out)
}

pub(super) fn scatter_patches(
    gpu: &GpuBackend,
    patches: &GpuTensor,
    origins: &GpuTensor,
    table: &PatchTable<PooledBuffer>,
) -> Result<GpuTensor> {
    let index = &table.index;
    let g = PatchGeometry::of_scatter(patches, origins, index, index.h, index.w)?;
    check_u32("scatter_patches", g.h * g.w)?;
    let out = gpu.alloc("scatter_patches", &[g.h, g.w], Dtype::C64)?;
    let params = PtychoParams {
        n: g.n as u32,
        h: g.h as u32,
        w: g.w as u32,
        bin: index.bin as u32,
        bins_x: index.bins_x as u32,
        bins: (index.bins_x * index.bins_y) as u32,
        shared_patch: u32::from(patches.shape().len() == 2),
        len: out.len() as u32,
        ..PtychoParams::default()
    };
    dispatch(
        gpu,
        "scatter",
        &[
            (SRC, patches),
            (ORIGINS, origins),
            (INDEX, &table.table),
            (OUT_COMPLEX, &out),
        ],
        params,
    )?;
    Ok(out)
}

pub(super) fn modulus_project(
    gpu: &GpuBackend,
    spectrum: &GpuTensor,
    amplitude: &GpuTensor,
) -> Result<ConvParamGrads<PooledBuffer>> {
    check_modulus_pair(spectrum, amplitude)?;
    check_u32("modulus_project", spectrum.len())?;
    let projected = gpu.alloc("modulus_project", spectrum.shape(), Dtype::C64)?;
    let residual = gpu.alloc("modulus_project", spectrum.shape(), Dtype::F32)?;
    let params = PtychoParams {
        len: spectrum.len() as u32,
        ..PtychoParams::default()
    };
    dispatch(
        gpu,
        "modulus_project",
        &[
            (SRC, spectrum),
            (AMPLITUDE, amplitude),
            (OUT_COMPLEX, &projected),
            (OUT_REAL, &residual),
        ],
        params,
    )?;
    Ok((projected, residual))
}

pub(super) fn pattern_dot(gpu: &GpuBackend, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    let (m, per) = check_pattern_pair(a, b)?;
    check_u32("pattern_dot", a.len())?;
    let out = gpu.alloc("pattern_dot", &[m], Dtype::C64)?;
    let params = PtychoParams {
        n: per as u32,
        len: m as u32,
        ..PtychoParams::default()
    };
    let pipeline = gpu.kernel(&PTYCHO, "pattern_dot")?;
    let bindings = [bind(SRC, a), bind(OTHER, b), bind(OUT_COMPLEX, &out)];
    gpu.dispatch(
        "pattern_dot",
        &pipeline,
        &bindings,
        PARAMS,
        bytemuck::bytes_of(&params),
        m as u64,
    )?;
    Ok(out)
}
