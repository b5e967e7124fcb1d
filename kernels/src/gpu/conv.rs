//! The convolution kernels' dispatch: the implicit-GEMM tiles of shaders/conv.wgsl for GPUs, and the
//! lane kernels of shaders/conv_lanes.wgsl for CPU-type adapters, which walk a uniform window over
//! the shared operand one dispatch per chunk.

use super::engine::{bind, check_u32, GpuBackend, GpuTensor};
use super::pool::PooledBuffer;
use super::recorder::Binding;
use super::shaders::{params_struct, CONV, CONV_LANES, ELEMENTWISE_WORKGROUP_SIZE};
use crate::ops::conv::ConvGeometry;
use crate::ops::{require_dtype, ConvParamGrads};
use crate::{Dtype, Result, Tensor};

pub(super) const TILED_ENTRY_POINTS: &[&str] =
    &["forward", "weight_grad", "bias_grad", "reduce_splits"];

/// Bindings of shaders/conv.wgsl. The gathered operand A.
const SRC: u32 = 0;
/// The second GEMM operand: the kernel, or the output gradient for the weight gradient.
const SECOND: u32 = 1;
const BIAS: u32 = 2;
const OUT: u32 = 3;
const PARAMS: u32 = 4;
pub(super) const TILED_BINDINGS: &[(&str, u32)] = &[
    ("src", SRC),
    ("second", SECOND),
    ("bias", BIAS),
    ("out", OUT),
    ("params", PARAMS),
];

pub(super) const LANES_ENTRY_POINTS: &[&str] = &["gemm_pixels", "weight_grad_rows", "stage"];

/// Bindings of shaders/conv_lanes.wgsl: as in conv.wgsl, but the shared operand is a uniform window
/// into a staged copy.
const WINDOW: u32 = 1;
pub(super) const LANES_BINDINGS: &[(&str, u32)] = &[
    ("src", SRC),
    ("window", WINDOW),
    ("bias", BIAS),
    ("out", OUT),
    ("params", PARAMS),
];

/// `mode` of shaders/conv.wgsl and shaders/conv_lanes.wgsl.
const MODE_FORWARD: u32 = 0;
const MODE_INPUT_GRAD: u32 = 1;
/// shaders/conv_lanes.wgsl only: stage a copy of the operand, or stage the kernel transposed in
/// channels for the input gradient.
const MODE_STAGE_COPY: u32 = 2;
const MODE_STAGE_TRANSPOSED: u32 = 3;

params_struct!(ConvParams {
    h: u32,
    w: u32,
    a_channels: u32,
    n: u32,
    m: u32,
    k: u32,
    tiles_m: u32,
    tiles_n: u32,
    mode: u32,
    split_len: u32,
    splits: u32,
    _pad: u32,
});

params_struct!(LaneConvParams {
    h: u32,
    w: u32,
    a_channels: u32,
    n: u32,
    m: u32,
    k: u32,
    row_blocks: u32,
    mode: u32,
    chunk_begin: u32,
    chunk_end: u32,
    window_base: u32,
    len: u32,
});

/// Floats in the uniform window of shaders/conv_lanes.wgsl (64 KiB, wgpu's default binding limit;
/// adapters below it keep the tiled kernels).
const LANES_WINDOW: usize = 16384;
/// Window starts are multiples of this many floats: 256 bytes, the largest uniform offset alignment
/// wgpu allows.
const LANES_WINDOW_ALIGN: usize = 64;
/// The last block of 16 columns reads up to 15 floats past its row.
const LANES_WINDOW_SLACK: usize = 16;
/// Invocations per workgroup in shaders/conv_lanes.wgsl.
const LANES: usize = 64;
/// Output columns per invocation in shaders/conv_lanes.wgsl.
const LANE_COLUMNS: usize = 16;

/// Output tile side of the conv GEMM kernels (shaders/conv.wgsl).
const CONV_TILE: usize = 64;
/// Pixels per split of the conv parameter gradients.
const CONV_SPLIT_PIXELS: usize = 1024;

impl GpuBackend {
    /// The implicit-GEMM convolution of shaders/conv.wgsl: `a_channels` channels gathered from
    /// `inputs[0]`, `n` output channels, mode 0 (forward, `inputs[2]` the bias) or 1 (input gradient);
    /// `inputs[1]` the kernel.
    fn conv_gemm(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        (a_channels, n, mode): (usize, usize, u32),
        inputs: [&GpuTensor; 3],
        out: &GpuTensor,
    ) -> Result<()> {
        check_u32(op, g.pixels() * a_channels.max(n))?;
        if self.uses_lane_convs(n) {
            return self.lanes_gemm(op, g, (a_channels, n, mode), inputs, out);
        }
        let m = g.pixels();
        let params = ConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: a_channels as u32,
            n: n as u32,
            m: m as u32,
            k: (9 * a_channels) as u32,
            tiles_m: m.div_ceil(CONV_TILE) as u32,
            tiles_n: n.div_ceil(CONV_TILE) as u32,
            mode,
            ..ConvParams::default()
        };
        let pipeline = self.kernel(&CONV, "forward")?;
        self.dispatch(
            op,
            &pipeline,
            &[
                bind(SRC, inputs[0]),
                bind(SECOND, inputs[1]),
                bind(BIAS, inputs[2]),
                bind(OUT, out),
            ],
            PARAMS,
            bytemuck::bytes_of(&params),
            params.tiles_m as u64 * params.tiles_n as u64,
        )
    }

    /// Copy of `src` (MODE_STAGE_COPY) or the input gradient's rearranged kernel
    /// (MODE_STAGE_TRANSPOSED) with room for a
    /// whole uniform window past any aligned start inside it.
    fn lanes_stage(
        &self,
        op: &'static str,
        src: &GpuTensor,
        mode: u32,
        (a_channels, n): (usize, usize),
    ) -> Result<GpuTensor> {
        let len = src.len();
        let floats = len.next_multiple_of(LANES_WINDOW_ALIGN) + LANES_WINDOW;
        check_u32(op, floats)?;
        self.check_size(op, 4 * floats as u64)?;
        let staged = Tensor::new(
            vec![floats],
            Dtype::F32,
            self.pool.take(
                4 * floats as u64,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
                op,
            ),
        );
        let params = LaneConvParams {
            a_channels: a_channels as u32,
            n: n as u32,
            mode,
            len: len as u32,
            ..LaneConvParams::default()
        };
        let pipeline = self.kernel(&CONV_LANES, "stage")?;
        self.dispatch(
            "conv_lanes stage",
            &pipeline,
            &[bind(SRC, src), bind(OUT, &staged)],
            PARAMS,
            bytemuck::bytes_of(&params),
            (len as u64).div_ceil(LANES as u64),
        )?;
        Ok(staged)
    }

    /// The reduction of a shaders/conv_lanes.wgsl kernel in chunks whose rows of the shared operand
    /// (`n` floats each) fit one uniform window: one dispatch per chunk, each after the first adding
    /// to `out`.
    fn lanes_chunks(
        &self,
        entry: &'static str,
        staged: &GpuTensor,
        bindings: &[Binding<'_>],
        mut params: LaneConvParams,
        rows: usize,
        workgroups: u64,
    ) -> Result<()> {
        let n = params.n as usize;
        let per_chunk = lanes_rows_per_window(n);
        let pipeline = self.kernel(&CONV_LANES, entry)?;
        for begin in (0..rows).step_by(per_chunk) {
            let base = begin * n / LANES_WINDOW_ALIGN * LANES_WINDOW_ALIGN;
            params.chunk_begin = begin as u32;
            params.chunk_end = (begin + per_chunk).min(rows) as u32;
            params.window_base = base as u32;
            let mut all = bindings.to_vec();
            all.push(Binding {
                index: WINDOW,
                buffer: staged.storage.buffer(),
                offset: 4 * base as u64,
                size: 4 * LANES_WINDOW as u64,
            });
            self.dispatch(
                entry,
                &pipeline,
                &all,
                PARAMS,
                bytemuck::bytes_of(&params),
                workgroups,
            )?;
        }
        Ok(())
    }

    /// The forward (MODE_FORWARD) or input gradient (MODE_INPUT_GRAD) on shaders/conv_lanes.wgsl.
    fn lanes_gemm(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        (a_channels, n, mode): (usize, usize, u32),
        inputs: [&GpuTensor; 3],
        out: &GpuTensor,
    ) -> Result<()> {
        let m = g.pixels();
        let k = 9 * a_channels;
        let stage_mode = if mode == MODE_FORWARD {
            MODE_STAGE_COPY
        } else {
            MODE_STAGE_TRANSPOSED
        };
        let staged = self.lanes_stage(op, inputs[1], stage_mode, (a_channels, n))?;
        let row_blocks = m.div_ceil(LANES);
        let params = LaneConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: a_channels as u32,
            n: n as u32,
            m: m as u32,
            k: k as u32,
            row_blocks: row_blocks as u32,
            mode,
            ..LaneConvParams::default()
        };
        self.lanes_chunks(
            "gemm_pixels",
            &staged,
            &[bind(SRC, inputs[0]), bind(BIAS, inputs[2]), bind(OUT, out)],
            params,
            k,
            (row_blocks * n.div_ceil(LANE_COLUMNS)) as u64,
        )
    }

    /// The kernel gradient on shaders/conv_lanes.wgsl, summed over the pixels in chunks.
    fn lanes_weight_grad(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        x: &GpuTensor,
        grad_out: &GpuTensor,
        grad_kernel: &GpuTensor,
    ) -> Result<()> {
        let k = 9 * g.cin;
        let staged = self.lanes_stage(op, grad_out, MODE_STAGE_COPY, (g.cin, g.cout))?;
        let row_blocks = k.div_ceil(LANES);
        let params = LaneConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: g.cin as u32,
            n: g.cout as u32,
            m: g.pixels() as u32,
            k: k as u32,
            row_blocks: row_blocks as u32,
            ..LaneConvParams::default()
        };
        self.lanes_chunks(
            "weight_grad_rows",
            &staged,
            // The bias binding is unused here; x stands in for it.
            &[bind(SRC, x), bind(BIAS, x), bind(OUT, grad_kernel)],
            params,
            g.pixels(),
            (row_blocks * g.cout.div_ceil(LANE_COLUMNS)) as u64,
        )
    }

    /// out[j] = Σ_s partial[s, j] over `params.splits` splits of length `params.k` (the reduction reads
    /// the length from the GEMM's k field).
    fn conv_reduce(&self, partial: &GpuTensor, out: &GpuTensor, params: ConvParams) -> Result<()> {
        let pipeline = self.kernel(&CONV, "reduce_splits")?;
        self.dispatch(
            "conv reduce_splits",
            &pipeline,
            &[bind(SRC, partial), bind(OUT, out)],
            PARAMS,
            bytemuck::bytes_of(&params),
            (params.k as u64).div_ceil(ELEMENTWISE_WORKGROUP_SIZE),
        )
    }
}

/// Rows of `n` floats of the shared operand that one uniform window holds from any aligned start.
pub(super) fn lanes_rows_per_window(n: usize) -> usize {
    (LANES_WINDOW - LANES_WINDOW_ALIGN - LANES_WINDOW_SLACK) / n
}

/// Whether the adapter's limits allow the uniform windows of shaders/conv_lanes.wgsl.
pub(super) fn lane_convs_fit(limits: &wgpu::Limits) -> bool {
    limits.max_uniform_buffer_binding_size as usize >= 4 * LANES_WINDOW
        && limits.min_uniform_buffer_offset_alignment as usize <= 4 * LANES_WINDOW_ALIGN
}

pub(super) fn conv2d(
    gpu: &GpuBackend,
    x: &GpuTensor,
    kernel: &GpuTensor,
    bias: &GpuTensor,
) -> Result<GpuTensor> {
    let g = ConvGeometry::of("conv2d", x, kernel)?;
    g.check_bias("conv2d", bias)?;
    let out = gpu.alloc("conv2d", &[g.batch, g.h, g.w, g.cout], Dtype::F32)?;
    gpu.conv_gemm(
        "conv2d",
        &g,
        (g.cin, g.cout, MODE_FORWARD),
        [x, kernel, bias],
        &out,
    )?;
    Ok(out)
}

pub(super) fn conv2d_backward_input(
    gpu: &GpuBackend,
    grad_out: &GpuTensor,
    kernel: &GpuTensor,
) -> Result<GpuTensor> {
    const OP: &str = "conv2d_backward_input";
    let g = ConvGeometry::of_backward_input(OP, grad_out, kernel)?;
    let out = gpu.alloc(OP, &[g.batch, g.h, g.w, g.cin], Dtype::F32)?;
    // The bias binding is unused in this mode; the kernel stands in for it.
    gpu.conv_gemm(
        OP,
        &g,
        (g.cout, g.cin, MODE_INPUT_GRAD),
        [grad_out, kernel, kernel],
        &out,
    )?;
    Ok(out)
}

pub(super) fn conv2d_backward_params(
    gpu: &GpuBackend,
    x: &GpuTensor,
    grad_out: &GpuTensor,
) -> Result<ConvParamGrads<PooledBuffer>> {
    const OP: &str = "conv2d_backward_params";
    require_dtype(OP, grad_out, Dtype::F32)?;
    let cout = *grad_out.shape().last().unwrap_or(&0);
    let g = ConvGeometry::of_params(OP, x, cout)?;
    g.check_grad_out(OP, grad_out)?;
    let m = g.pixels();
    let k = 9 * g.cin;
    let splits = m.div_ceil(CONV_SPLIT_PIXELS);
    check_u32(OP, splits * k * g.cout)?;
    let mut params = ConvParams {
        h: g.h as u32,
        w: g.w as u32,
        a_channels: g.cin as u32,
        n: g.cout as u32,
        m: m as u32,
        k: k as u32,
        tiles_m: k.div_ceil(CONV_TILE) as u32,
        tiles_n: g.cout.div_ceil(CONV_TILE) as u32,
        mode: MODE_FORWARD,
        split_len: CONV_SPLIT_PIXELS as u32,
        splits: splits as u32,
        ..ConvParams::default()
    };
    let grad_kernel = gpu.alloc(OP, &[3, 3, g.cin, g.cout], Dtype::F32)?;
    if gpu.uses_lane_convs(g.cout) {
        gpu.lanes_weight_grad(OP, &g, x, grad_out, &grad_kernel)?;
    } else {
        let partial_kernel = gpu.alloc(OP, &[splits, k, g.cout], Dtype::F32)?;
        let pipeline = gpu.kernel(&CONV, "weight_grad")?;
        let tiles = params.tiles_m as u64 * params.tiles_n as u64 * splits as u64;
        gpu.dispatch(
            "conv weight_grad",
            &pipeline,
            &[
                bind(SRC, x),
                bind(SECOND, grad_out),
                bind(OUT, &partial_kernel),
            ],
            PARAMS,
            bytemuck::bytes_of(&params),
            tiles,
        )?;
        let reduce_kernel = ConvParams {
            k: (k * g.cout) as u32,
            ..params
        };
        gpu.conv_reduce(&partial_kernel, &grad_kernel, reduce_kernel)?;
    }

    let partial_bias = gpu.alloc(OP, &[splits, g.cout], Dtype::F32)?;
    let pipeline = gpu.kernel(&CONV, "bias_grad")?;
    gpu.dispatch(
        "conv bias_grad",
        &pipeline,
        &[bind(SRC, grad_out), bind(OUT, &partial_bias)],
        PARAMS,
        bytemuck::bytes_of(&params),
        ((splits * g.cout) as u64).div_ceil(ELEMENTWISE_WORKGROUP_SIZE),
    )?;
    let grad_bias = gpu.alloc(OP, &[g.cout], Dtype::F32)?;
    params.k = g.cout as u32;
    gpu.conv_reduce(&partial_bias, &grad_bias, params)?;
    Ok((grad_kernel, grad_bias))
}
