//! The convolution kernels' dispatch: the implicit-GEMM tiles of shaders/conv.wgsl for GPUs, and the
//! lane kernels of shaders/conv_lanes.wgsl for CPU-type adapters, which walk a uniform window over
//! the shared operand one dispatch per chunk.

use bytemuck::Zeroable;

use super::params::{ConvParams, LaneConvParams};
use super::recorder::Binding;
use super::shaders::{self, ELEMENTWISE_WORKGROUP_SIZE};
use super::{bind, check_u32, GpuBackend, GpuTensor};
use crate::ops::conv::ConvGeometry;
use crate::{Dtype, Result, Tensor};

/// Floats in the uniform window of shaders/conv_lanes.wgsl (64 KiB, wgpu's default binding limit;
/// adapters below it keep the tiled kernels).
pub(super) const LANES_WINDOW: usize = 16384;
/// Window starts are multiples of this many floats: 256 bytes, the largest uniform offset alignment
/// wgpu allows.
pub(super) const LANES_WINDOW_ALIGN: usize = 64;
/// The last block of 16 columns reads up to 15 floats past its row.
pub(super) const LANES_WINDOW_SLACK: usize = 16;
/// Invocations per workgroup in shaders/conv_lanes.wgsl.
pub(super) const LANES: usize = 64;
/// Output columns per invocation in shaders/conv_lanes.wgsl.
pub(super) const LANE_COLUMNS: usize = 16;

/// Output tile side of the conv GEMM kernels (shaders/conv.wgsl).
pub(super) const CONV_TILE: usize = 64;
/// Pixels per split of the conv parameter gradients.
pub(super) const CONV_SPLIT_PIXELS: usize = 1024;

impl GpuBackend {
    /// The implicit-GEMM convolution of shaders/conv.wgsl: `a_channels` channels gathered from
    /// `inputs[0]`, `n` output channels, mode 0 (forward, `inputs[2]` the bias) or 1 (input gradient);
    /// `inputs[1]` the kernel.
    pub(super) fn conv_gemm(
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
            split_len: 0,
            splits: 0,
            _pad: 0,
        };
        let pipeline = self.pipeline("conv", "forward", shaders::conv_source)?;
        self.dispatch(
            op,
            &pipeline,
            &[
                bind(0, inputs[0]),
                bind(1, inputs[1]),
                bind(2, inputs[2]),
                bind(3, out),
            ],
            4,
            bytemuck::bytes_of(&params),
            params.tiles_m as u64 * params.tiles_n as u64,
        )
    }

    /// Copy of `src` (mode 2) or the input gradient's rearranged kernel (mode 3) with room for a
    /// whole uniform window past any aligned start inside it.
    pub(super) fn lanes_stage(
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
            ..Zeroable::zeroed()
        };
        let pipeline = self.pipeline("conv_lanes", "stage", shaders::conv_lanes_source)?;
        self.dispatch(
            "conv_lanes stage",
            &pipeline,
            &[bind(0, src), bind(3, &staged)],
            4,
            bytemuck::bytes_of(&params),
            (len as u64).div_ceil(LANES as u64),
        )?;
        Ok(staged)
    }

    /// The reduction of a shaders/conv_lanes.wgsl kernel in chunks whose rows of the shared operand
    /// (`n` floats each) fit one uniform window: one dispatch per chunk, each after the first adding
    /// to `out`.
    pub(super) fn lanes_chunks(
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
        let pipeline = self.pipeline("conv_lanes", entry, shaders::conv_lanes_source)?;
        for begin in (0..rows).step_by(per_chunk) {
            let base = begin * n / LANES_WINDOW_ALIGN * LANES_WINDOW_ALIGN;
            params.chunk_begin = begin as u32;
            params.chunk_end = (begin + per_chunk).min(rows) as u32;
            params.window_base = base as u32;
            let mut all = bindings.to_vec();
            all.push(Binding {
                index: 1,
                buffer: staged.storage.buffer(),
                offset: 4 * base as u64,
                size: 4 * LANES_WINDOW as u64,
            });
            self.dispatch(
                entry,
                &pipeline,
                &all,
                4,
                bytemuck::bytes_of(&params),
                workgroups,
            )?;
        }
        Ok(())
    }

    /// The forward (mode 0) or input gradient (mode 1) on shaders/conv_lanes.wgsl.
    pub(super) fn lanes_gemm(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        (a_channels, n, mode): (usize, usize, u32),
        inputs: [&GpuTensor; 3],
        out: &GpuTensor,
    ) -> Result<()> {
        let m = g.pixels();
        let k = 9 * a_channels;
        let staged = self.lanes_stage(op, inputs[1], 2 + mode, (a_channels, n))?;
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
            ..Zeroable::zeroed()
        };
        self.lanes_chunks(
            "gemm_pixels",
            &staged,
            &[bind(0, inputs[0]), bind(2, inputs[2]), bind(3, out)],
            params,
            k,
            (row_blocks * n.div_ceil(LANE_COLUMNS)) as u64,
        )
    }

    /// The kernel gradient on shaders/conv_lanes.wgsl, summed over the pixels in chunks.
    pub(super) fn lanes_weight_grad(
        &self,
        op: &'static str,
        g: &ConvGeometry,
        x: &GpuTensor,
        grad_out: &GpuTensor,
        grad_kernel: &GpuTensor,
    ) -> Result<()> {
        let k = 9 * g.cin;
        let staged = self.lanes_stage(op, grad_out, 2, (g.cin, g.cout))?;
        let row_blocks = k.div_ceil(LANES);
        let params = LaneConvParams {
            h: g.h as u32,
            w: g.w as u32,
            a_channels: g.cin as u32,
            n: g.cout as u32,
            m: g.pixels() as u32,
            k: k as u32,
            row_blocks: row_blocks as u32,
            ..Zeroable::zeroed()
        };
        self.lanes_chunks(
            "weight_grad_rows",
            &staged,
            // The bias binding is unused here; x stands in for it.
            &[bind(0, x), bind(2, x), bind(3, grad_kernel)],
            params,
            g.pixels(),
            (row_blocks * g.cout.div_ceil(LANE_COLUMNS)) as u64,
        )
    }

    /// out[j] = Σ_s partial[s, j] over `params.splits` splits of length `params.k` (the reduction reads
    /// the length from the GEMM's k field).
    pub(super) fn conv_reduce(
        &self,
        partial: &GpuTensor,
        out: &GpuTensor,
        params: ConvParams,
    ) -> Result<()> {
        let pipeline = self.pipeline("conv", "reduce_splits", shaders::conv_source)?;
        self.dispatch(
            "conv reduce_splits",
            &pipeline,
            &[bind(0, partial), bind(3, out)],
            4,
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
