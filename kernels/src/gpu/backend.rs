//! The [`Backend`] implementation of the wgpu backend: each op checks its operands and dispatches
//! its WGSL kernel through the engine in `gpu/mod.rs` (and `gpu/conv.rs` for the convolutions).

use crate::ops::conv::ConvGeometry;
use crate::ops::elementwise::{BinaryOp, ComplexRealPair, RealOp};
use crate::ops::fft::{FftDirection, FftGeometry, FftShift};
use crate::ops::layers::{check_same, check_slice, crop_geometry, require_shape, Activation, Nhwc};
use crate::ops::layout::{ChannelGeometry, RecenterGeometry};
use crate::ops::loss::{check_pair, LossKind};
use crate::ops::optim::{check_adam, AdamConfig};
use crate::ops::translate::{TranslateDirection, TranslateGeometry};
use crate::ops::{check_host_len, require_dtype, Backend, BackendKind, ConvParamGrads};
use crate::{Complex32, Dtype, KernelError, Result};

use super::conv::{CONV_SPLIT_PIXELS, CONV_TILE};
use super::params::{
    AdamParams, ConvParams, CopyParams, FftParams, LayerParams, LayoutParams, PeakParams,
    TranslateParams,
};
use super::pool::PooledBuffer;
use super::recorder::Binding;
use super::shaders::{self, FftPass, ELEMENTWISE_WORKGROUP_SIZE};
use super::{bind, check_u32, context, GpuBackend, GpuTensor, PendingRead};

impl Backend for GpuBackend {
    type Storage = PooledBuffer;
    type PendingRead = PendingRead;

    fn kind(&self) -> BackendKind {
        BackendKind::Gpu
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}, {:?}, driver {} {})",
            self.info.name,
            context::backend_name(self.info.backend),
            self.info.device_type,
            self.info.driver,
            self.info.driver_info
        )
    }

    fn upload_c64(&self, shape: &[usize], data: &[Complex32]) -> Result<GpuTensor> {
        check_host_len(shape, data.len())?;
        self.upload_bytes(shape, Dtype::C64, bytemuck::cast_slice(data))
    }

    fn upload_f32(&self, shape: &[usize], data: &[f32]) -> Result<GpuTensor> {
        check_host_len(shape, data.len())?;
        self.upload_bytes(shape, Dtype::F32, bytemuck::cast_slice(data))
    }

    fn download_c64(&self, t: &GpuTensor) -> Result<Vec<Complex32>> {
        require_dtype("download_c64", t, Dtype::C64)?;
        Ok(bytemuck::pod_collect_to_vec(&self.download_bytes(t)?))
    }

    fn download_f32(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        require_dtype("download_f32", t, Dtype::F32)?;
        Ok(bytemuck::pod_collect_to_vec(&self.download_bytes(t)?))
    }

    fn start_read_f32(&self, t: &GpuTensor) -> Result<PendingRead> {
        require_dtype("start_read_f32", t, Dtype::F32)?;
        self.start_read_bytes(t)
    }

    fn finish_read_f32(&self, pending: PendingRead) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(
            &self.finish_read_bytes(pending)?,
        ))
    }

    fn fft2(&self, x: &GpuTensor, direction: FftDirection, shift: FftShift) -> Result<GpuTensor> {
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
        let tmp = self.alloc("fft2", x.shape(), Dtype::C64)?;
        let out = self.alloc("fft2", x.shape(), Dtype::C64)?;
        let twiddles = self.twiddles(n);
        let workgroups = (geometry.batch * n / rows.lines_per_workgroup()) as u64;
        let params = FftParams {
            workgroups: workgroups as u32,
            pad: [0; 3],
        };
        for (pass, src, dst) in [(rows, x, &tmp), (columns, &tmp, &out)] {
            let name = pass.name();
            let pipeline = self.pipeline(&name, "main", || pass.source())?;
            let bindings = [
                bind(0, src),
                bind(1, dst),
                Binding {
                    index: 2,
                    buffer: &twiddles,
                    offset: 0,
                    size: twiddles.size(),
                },
            ];
            self.dispatch(
                &name,
                &pipeline,
                &bindings,
                3,
                bytemuck::bytes_of(&params),
                workgroups,
            )?;
        }
        Ok(out)
    }

    fn mul(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.binary(BinaryOp::Mul, a, b)
    }

    fn mul_conj(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.binary(BinaryOp::MulConj, a, b)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        self.binary(BinaryOp::Add, a, b)
    }

    fn scale(&self, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
        let out = self.alloc("scale", a.shape(), a.dtype())?;
        match a.dtype() {
            Dtype::C64 => self.elementwise("scale", &[(0, a)], 1, s, &out)?,
            Dtype::F32 => self.elementwise("scale_real", &[(5, a)], 1, s, &out)?,
        }
        Ok(out)
    }

    fn modulus_grad(&self, a: &GpuTensor, g: &GpuTensor, s: f32) -> Result<GpuTensor> {
        ComplexRealPair::of("modulus_grad", a, g)?;
        let out = self.alloc("modulus_grad", a.shape(), Dtype::C64)?;
        self.elementwise("modulus_grad", &[(0, a), (5, g)], 1, s, &out)?;
        Ok(out)
    }

    fn div_real(&self, a: &GpuTensor, d: &GpuTensor) -> Result<GpuTensor> {
        ComplexRealPair::of("div_real", a, d)?;
        let out = self.alloc("div_real", a.shape(), Dtype::C64)?;
        self.elementwise("div_real", &[(0, a), (5, d)], 1, 1.0, &out)?;
        Ok(out)
    }

    fn offset(&self, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
        require_dtype("offset", a, Dtype::F32)?;
        let out = self.alloc("offset", a.shape(), Dtype::F32)?;
        self.elementwise("offset_real", &[(5, a)], 1, s, &out)?;
        Ok(out)
    }

    fn abs(&self, a: &GpuTensor) -> Result<GpuTensor> {
        self.real(RealOp::Abs, a)
    }

    fn abs2(&self, a: &GpuTensor) -> Result<GpuTensor> {
        self.real(RealOp::Abs2, a)
    }

    fn translate(
        &self,
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
        let out = self.alloc("translate", x.shape(), x.dtype())?;
        let pipeline = self.pipeline("translate", entry, shaders::translate_source)?;
        let len = x.len() as u64;
        let (workgroups, row_invocations) = self.grid(len);
        let params = TranslateParams {
            h: geometry.h as u32,
            w: geometry.w as u32,
            len: len as u32,
            row_invocations,
        };
        let (src_index, out_index) = if complex { (0, 3) } else { (1, 4) };
        let bindings = [bind(src_index, x), bind(2, shifts), bind(out_index, &out)];
        self.dispatch(
            entry,
            &pipeline,
            &bindings,
            5,
            bytemuck::bytes_of(&params),
            workgroups,
        )?;
        Ok(out)
    }

    fn recenter(&self, x: &GpuTensor, out_h: usize, out_w: usize) -> Result<GpuTensor> {
        let g = RecenterGeometry::of(x, out_h, out_w)?;
        let out = self.alloc("recenter", &g.out_shape(x.shape()), x.dtype())?;
        let params = LayoutParams::new([g.in_h, g.in_w, g.out_h, g.out_w], out.len(), 1);
        self.layout("recenter", x, &out, params)?;
        Ok(out)
    }

    fn sum_channels(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let g = ChannelGeometry::of_sum(x)?;
        let mut shape = x.shape().to_vec();
        shape.remove(shape.len() - 3);
        let out = self.alloc("sum_channels", &shape, x.dtype())?;
        let params = LayoutParams::new([g.h, g.w, g.h, g.w], out.len(), g.channels);
        self.layout("sum_channels", x, &out, params)?;
        Ok(out)
    }

    fn repeat_channels(&self, x: &GpuTensor, channels: usize) -> Result<GpuTensor> {
        let g = ChannelGeometry::of_repeat(x, channels)?;
        let mut shape = x.shape().to_vec();
        shape.insert(shape.len() - 2, channels);
        let out = self.alloc("repeat_channels", &shape, x.dtype())?;
        let params = LayoutParams::new([g.h, g.w, g.h, g.w], out.len(), channels);
        self.layout("repeat_channels", x, &out, params)?;
        Ok(out)
    }

    fn loss_terms(
        &self,
        kind: LossKind,
        pred: &GpuTensor,
        target: &GpuTensor,
    ) -> Result<GpuTensor> {
        check_pair("loss_terms", pred, target)?;
        let out = self.alloc("loss_terms", pred.shape(), Dtype::F32)?;
        self.loss_kernel(kind.terms_entry(), &[pred, target], 1.0, &out, out.len())?;
        Ok(out)
    }

    fn loss_grad(
        &self,
        kind: LossKind,
        pred: &GpuTensor,
        target: &GpuTensor,
        scale: f32,
    ) -> Result<GpuTensor> {
        check_pair("loss_grad", pred, target)?;
        let out = self.alloc("loss_grad", pred.shape(), Dtype::F32)?;
        self.loss_kernel(kind.grad_entry(), &[pred, target], scale, &out, out.len())?;
        Ok(out)
    }

    fn sum(&self, x: &GpuTensor) -> Result<GpuTensor> {
        require_dtype("sum", x, Dtype::F32)?;
        let per_group = (ELEMENTWISE_WORKGROUP_SIZE * 4) as usize;
        let mut len = x.len();
        let mut level = self.alloc("sum", &[len.div_ceil(per_group).max(1)], Dtype::F32)?;
        self.sum_level(x, &level, len)?;
        len = level.len();
        while len > 1 {
            let next = self.alloc("sum", &[len.div_ceil(per_group)], Dtype::F32)?;
            self.sum_level(&level, &next, len)?;
            level = next;
            len = level.len();
        }
        let out = self.alloc("sum", &[], Dtype::F32)?;
        self.recorder().encoder().copy_buffer_to_buffer(
            level.storage.buffer(),
            0,
            out.storage.buffer(),
            0,
            4,
        );
        Ok(out)
    }

    fn conv2d(&self, x: &GpuTensor, kernel: &GpuTensor, bias: &GpuTensor) -> Result<GpuTensor> {
        let g = ConvGeometry::of("conv2d", x, kernel)?;
        g.check_bias("conv2d", bias)?;
        let out = self.alloc("conv2d", &[g.batch, g.h, g.w, g.cout], Dtype::F32)?;
        self.conv_gemm("conv2d", &g, (g.cin, g.cout, 0), [x, kernel, bias], &out)?;
        Ok(out)
    }

    fn conv2d_backward_input(&self, grad_out: &GpuTensor, kernel: &GpuTensor) -> Result<GpuTensor> {
        const OP: &str = "conv2d_backward_input";
        let g = ConvGeometry::of_backward_input(OP, grad_out, kernel)?;
        let out = self.alloc(OP, &[g.batch, g.h, g.w, g.cin], Dtype::F32)?;
        // The bias binding is unused in this mode; the kernel stands in for it.
        self.conv_gemm(OP, &g, (g.cout, g.cin, 1), [grad_out, kernel, kernel], &out)?;
        Ok(out)
    }

    fn conv2d_backward_params(
        &self,
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
            mode: 0,
            split_len: CONV_SPLIT_PIXELS as u32,
            splits: splits as u32,
            _pad: 0,
        };
        let grad_kernel = self.alloc(OP, &[3, 3, g.cin, g.cout], Dtype::F32)?;
        if self.uses_lane_convs(g.cout) {
            self.lanes_weight_grad(OP, &g, x, grad_out, &grad_kernel)?;
        } else {
            let partial_kernel = self.alloc(OP, &[splits, k, g.cout], Dtype::F32)?;
            let pipeline = self.pipeline("conv", "weight_grad", shaders::conv_source)?;
            let tiles = params.tiles_m as u64 * params.tiles_n as u64 * splits as u64;
            self.dispatch(
                "conv weight_grad",
                &pipeline,
                &[bind(0, x), bind(1, grad_out), bind(3, &partial_kernel)],
                4,
                bytemuck::bytes_of(&params),
                tiles,
            )?;
            let reduce_kernel = ConvParams {
                k: (k * g.cout) as u32,
                ..params
            };
            self.conv_reduce(&partial_kernel, &grad_kernel, reduce_kernel)?;
        }

        let partial_bias = self.alloc(OP, &[splits, g.cout], Dtype::F32)?;
        let pipeline = self.pipeline("conv", "bias_grad", shaders::conv_source)?;
        self.dispatch(
            "conv bias_grad",
            &pipeline,
            &[bind(0, grad_out), bind(3, &partial_bias)],
            4,
            bytemuck::bytes_of(&params),
            ((splits * g.cout) as u64).div_ceil(ELEMENTWISE_WORKGROUP_SIZE),
        )?;
        let grad_bias = self.alloc(OP, &[g.cout], Dtype::F32)?;
        params.k = g.cout as u32;
        self.conv_reduce(&partial_bias, &grad_bias, params)?;
        Ok((grad_kernel, grad_bias))
    }

    fn activation(&self, kind: Activation, x: &GpuTensor) -> Result<GpuTensor> {
        require_dtype("activation", x, Dtype::F32)?;
        let out = self.alloc("activation", x.shape(), Dtype::F32)?;
        let params = LayerParams {
            scale: kind.scale(),
            ..LayerParams::default()
        };
        self.layer(
            kind.forward_entry(),
            &[(0, x)],
            &[(2, &out)],
            params,
            out.len(),
        )?;
        Ok(out)
    }

    fn activation_backward(
        &self,
        kind: Activation,
        x: &GpuTensor,
        grad_out: &GpuTensor,
    ) -> Result<GpuTensor> {
        check_same("activation_backward", x, grad_out)?;
        let out = self.alloc("activation_backward", x.shape(), Dtype::F32)?;
        let params = LayerParams {
            scale: kind.scale(),
            ..LayerParams::default()
        };
        self.layer(
            kind.backward_entry(),
            &[(0, x), (1, grad_out)],
            &[(2, &out)],
            params,
            out.len(),
        )?;
        Ok(out)
    }

    fn max_pool2(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of_even("max_pool2", x)?;
        let out = self.alloc("max_pool2", &[d.b, d.h / 2, d.w / 2, d.c], Dtype::F32)?;
        self.layer(
            "max_pool",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn max_pool2_backward(&self, x: &GpuTensor, grad_out: &GpuTensor) -> Result<GpuTensor> {
        const OP: &str = "max_pool2_backward";
        let d = Nhwc::of_even(OP, x)?;
        require_shape(OP, grad_out, &[d.b, d.h / 2, d.w / 2, d.c])?;
        let out = self.alloc(OP, x.shape(), Dtype::F32)?;
        self.layer(
            "max_pool_backward",
            &[(0, x), (1, grad_out)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn upsample2(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of("upsample2", x)?;
        let out = self.alloc("upsample2", &[d.b, 2 * d.h, 2 * d.w, d.c], Dtype::F32)?;
        self.layer(
            "upsample",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn upsample2_backward(&self, grad_out: &GpuTensor) -> Result<GpuTensor> {
        let g = Nhwc::of_even("upsample2_backward", grad_out)?;
        let d = Nhwc {
            h: g.h / 2,
            w: g.w / 2,
            ..g
        };
        let out = self.alloc("upsample2_backward", &d.shape(), Dtype::F32)?;
        self.layer(
            "upsample_backward",
            &[(0, grad_out)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn slice_channels(&self, x: &GpuTensor, start: usize, count: usize) -> Result<GpuTensor> {
        let d = Nhwc::of("slice_channels", x)?;
        check_slice("slice_channels", &d, start, count)?;
        let out = self.alloc("slice_channels", &[d.b, d.h, d.w, count], Dtype::F32)?;
        let params = LayerParams {
            c_out: count as u32,
            start: start as u32,
            ..LayerParams::of(&d)
        };
        self.layer("slice_channels", &[(0, x)], &[(2, &out)], params, out.len())?;
        Ok(out)
    }

    fn slice_channels_backward(
        &self,
        grad_out: &GpuTensor,
        start: usize,
        channels: usize,
    ) -> Result<GpuTensor> {
        let g = Nhwc::of("slice_channels_backward", grad_out)?;
        let d = Nhwc { c: channels, ..g };
        check_slice("slice_channels_backward", &d, start, g.c)?;
        let out = self.alloc("slice_channels_backward", &d.shape(), Dtype::F32)?;
        let params = LayerParams {
            c_out: g.c as u32,
            start: start as u32,
            ..LayerParams::of(&d)
        };
        self.layer(
            "slice_channels_backward",
            &[(0, grad_out)],
            &[(2, &out)],
            params,
            out.len(),
        )?;
        Ok(out)
    }

    fn pad_spatial(&self, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
        let d = Nhwc::of("pad_spatial", x)?;
        let out = self.alloc(
            "pad_spatial",
            &[d.b, d.h + 2 * pad, d.w + 2 * pad, d.c],
            Dtype::F32,
        )?;
        let params = LayerParams {
            pad: pad as u32,
            ..LayerParams::of(&d)
        };
        self.layer("pad_spatial", &[(0, x)], &[(2, &out)], params, out.len())?;
        Ok(out)
    }

    fn crop_spatial(&self, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
        let d = crop_geometry(x, pad)?;
        let out = self.alloc("crop_spatial", &d.shape(), Dtype::F32)?;
        let params = LayerParams {
            pad: pad as u32,
            ..LayerParams::of(&d)
        };
        self.layer("crop_spatial", &[(0, x)], &[(2, &out)], params, out.len())?;
        Ok(out)
    }

    fn combine_complex(&self, amp: &GpuTensor, phase: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of("combine_complex", amp)?;
        check_same("combine_complex", amp, phase)?;
        let out = self.alloc("combine_complex", &d.channels_first_shape(), Dtype::C64)?;
        self.layer(
            "combine_complex",
            &[(0, amp), (1, phase)],
            &[(5, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn combine_complex_backward(
        &self,
        amp: &GpuTensor,
        phase: &GpuTensor,
        grad: &GpuTensor,
    ) -> Result<ConvParamGrads<PooledBuffer>> {
        const OP: &str = "combine_complex_backward";
        let d = Nhwc::of(OP, amp)?;
        check_same(OP, amp, phase)?;
        require_dtype(OP, grad, Dtype::C64)?;
        require_shape(OP, grad, &d.channels_first_shape())?;
        let grad_amp = self.alloc(OP, &d.shape(), Dtype::F32)?;
        let grad_phase = self.alloc(OP, &d.shape(), Dtype::F32)?;
        self.layer(
            "combine_complex_backward",
            &[(0, amp), (1, phase), (4, grad)],
            &[(2, &grad_amp), (3, &grad_phase)],
            LayerParams::of(&d),
            grad_amp.len(),
        )?;
        Ok((grad_amp, grad_phase))
    }

    fn to_channels_last(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of_channels_first("to_channels_last", x)?;
        let out = self.alloc("to_channels_last", &d.shape(), Dtype::F32)?;
        self.layer(
            "to_channels_last",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn to_channels_first(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let d = Nhwc::of("to_channels_first", x)?;
        let out = self.alloc("to_channels_first", &d.channels_first_shape(), Dtype::F32)?;
        self.layer(
            "to_channels_first",
            &[(0, x)],
            &[(2, &out)],
            LayerParams::of(&d),
            out.len(),
        )?;
        Ok(out)
    }

    fn add_real(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        check_same("add_real", a, b)?;
        let out = self.alloc("add_real", a.shape(), Dtype::F32)?;
        self.layer(
            "add_real",
            &[(0, a), (1, b)],
            &[(2, &out)],
            LayerParams::default(),
            out.len(),
        )?;
        Ok(out)
    }

    fn fma_chain(&self, lanes: usize, iterations: u32) -> Result<GpuTensor> {
        check_u32("fma_chain", lanes)?;
        let out = self.alloc("fma_chain", &[lanes], Dtype::F32)?;
        let pipeline = self.pipeline("peak", "fma_chain", shaders::peak_source)?;
        let (workgroups, row_invocations) = self.grid(lanes as u64);
        let params = PeakParams {
            lanes: lanes as u32,
            row_invocations,
            iterations,
            _pad: 0,
        };
        self.dispatch(
            "fma_chain",
            &pipeline,
            &[bind(0, &out)],
            1,
            bytemuck::bytes_of(&params),
            workgroups,
        )?;
        Ok(out)
    }

    fn adam_update(
        &self,
        config: &AdamConfig,
        step: u64,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        m: &mut GpuTensor,
        v: &mut GpuTensor,
    ) -> Result<()> {
        check_adam(param, grad, m, v)?;
        check_u32("adam_update", param.len())?;
        let pipeline = self.pipeline("optim", "adam", shaders::optim_source)?;
        let (workgroups, row_invocations) = self.grid(param.len() as u64);
        let params = AdamParams {
            len: param.len() as u32,
            row_invocations,
            alpha: config.alpha(step) as f32,
            beta1: config.beta1 as f32,
            beta2: config.beta2 as f32,
            epsilon: config.epsilon as f32,
            _pad: [0; 2],
        };
        self.dispatch(
            "adam",
            &pipeline,
            &[bind(0, grad), bind(1, param), bind(2, m), bind(3, v)],
            4,
            bytemuck::bytes_of(&params),
            workgroups,
        )
    }

    fn copy(&self, a: &GpuTensor) -> Result<GpuTensor> {
        let out = self.alloc("copy", a.shape(), a.dtype())?;
        let vec4s = a.size_bytes().div_ceil(16);
        check_u32("copy", vec4s as usize)?;
        let pipeline = self.pipeline("copy", "main", shaders::copy_source)?;
        let (workgroups, row_invocations) = self.elementwise_grid(vec4s);
        let params = CopyParams {
            len: vec4s as u32,
            row_invocations,
            pad: [0; 2],
        };
        let bindings = [bind(0, a), bind(1, &out)];
        self.dispatch(
            "copy",
            &pipeline,
            &bindings,
            2,
            bytemuck::bytes_of(&params),
            workgroups,
        )?;
        Ok(out)
    }

    fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(drop)
            .map_err(|e| KernelError::Readback(e.to_string()))
    }
}
