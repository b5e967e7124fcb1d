//! The 2-D FFT: two passes of shaders/fft.wgsl (rows, then columns), each a variant specialised at
//! compile time on the size, the direction and the fftshift folded into its loads and stores.

use super::engine::{bind, GpuBackend, GpuTensor};
use super::recorder::Binding;
use super::shaders::{params_struct, COMPLEX_WGSL};
use crate::ops::fft::{FftDirection, FftGeometry, FftShift, SUPPORTED_FFT_SIZES};
use crate::{Dtype, Result};

const FFT_WGSL: &str = include_str!("../../../shaders/fft.wgsl");

const SRC: u32 = 0;
const DST: u32 = 1;
const TWIDDLES: u32 = 2;
const PARAMS: u32 = 3;
pub(super) const BINDINGS: &[(&str, u32)] = &[
    ("src", SRC),
    ("dst", DST),
    ("twiddles", TWIDDLES),
    ("params", PARAMS),
];

params_struct!(FftParams {
    workgroups: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
});

/// Complex elements per workgroup buffer in the FFT kernel. Two such buffers of vec2<f32> take
/// 16 KiB, the workgroup memory every WebGPU adapter must offer.
pub const FFT_SHARED_ELEMENTS: usize = 1024;

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

/// The source of the first variant, the shader table's representative of the FFT row.
pub(super) fn first_variant_source() -> String {
    FftPass::all()[0].source()
}

pub(super) fn fft2(
    gpu: &GpuBackend,
    x: &GpuTensor,
    direction: FftDirection,
    shift: FftShift,
) -> Result<GpuTensor> {
    let geometry = FftGeometry::of(x)?;
    let n = geometry.n;
    let rows = FftPass {
        n,
        columns: false,
        direction,
        shift_in: shift.input,
        shift_out: shift.output,
    };
    let columns = FftPass {
        columns: true,
        ..rows
    };
    let tmp = gpu.alloc("fft2", x.shape(), Dtype::C64)?;
    let out = gpu.alloc("fft2", x.shape(), Dtype::C64)?;
    let twiddles = gpu.twiddles(n);
    let workgroups = (geometry.batch * n / rows.lines_per_workgroup()) as u64;
    let params = FftParams {
        workgroups: workgroups as u32,
        ..FftParams::default()
    };
    for (pass, src, dst) in [(rows, x, &tmp), (columns, &tmp, &out)] {
        let name = pass.name();
        let pipeline = gpu.pipeline(&name, "main", || pass.source())?;
        let bindings = [
            bind(SRC, src),
            bind(DST, dst),
            Binding {
                index: TWIDDLES,
                buffer: &twiddles,
                offset: 0,
                size: twiddles.size(),
            },
        ];
        gpu.dispatch(
            &name,
            &pipeline,
            &bindings,
            PARAMS,
            bytemuck::bytes_of(&params),
            workgroups,
        )?;
    }
    Ok(out)
}
