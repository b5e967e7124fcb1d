//! The [`Backend`] implementation of the wgpu backend: each op is one call into its family's module,
//! which checks the operands and dispatches the WGSL kernel through the engine.

use crate::ops::elementwise::{BinaryOp, RealOp};
use crate::ops::fft::{FftDirection, FftShift};
use crate::ops::layers::Activation;
use crate::ops::loss::LossKind;
use crate::ops::optim::AdamConfig;
use crate::ops::ptycho::PatchTable;
use crate::ops::translate::TranslateDirection;
use crate::ops::{check_host_len, require_dtype, Backend, BackendKind, ConvParamGrads};
use crate::{Complex32, Dtype, KernelError, Result};

use super::engine::{GpuBackend, GpuTensor, PendingRead};
use super::pool::PooledBuffer;
use super::{
    context, conv, elementwise, fft, layers, layout, loss, optim, peak, ptycho, translate,
};

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
        fft::fft2(self, x, direction, shift)
    }

    fn mul(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        elementwise::binary(self, BinaryOp::Mul, a, b)
    }

    fn mul_conj(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        elementwise::binary(self, BinaryOp::MulConj, a, b)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        elementwise::binary(self, BinaryOp::Add, a, b)
    }

    fn scale(&self, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
        elementwise::scale(self, a, s)
    }

    fn modulus_grad(&self, a: &GpuTensor, g: &GpuTensor, s: f32) -> Result<GpuTensor> {
        elementwise::modulus_grad(self, a, g, s)
    }

    fn div_real(&self, a: &GpuTensor, d: &GpuTensor) -> Result<GpuTensor> {
        elementwise::div_real(self, a, d)
    }

    fn offset(&self, a: &GpuTensor, s: f32) -> Result<GpuTensor> {
        elementwise::offset(self, a, s)
    }

    fn abs(&self, a: &GpuTensor) -> Result<GpuTensor> {
        elementwise::real(self, RealOp::Abs, a)
    }

    fn abs2(&self, a: &GpuTensor) -> Result<GpuTensor> {
        elementwise::real(self, RealOp::Abs2, a)
    }

    fn translate(
        &self,
        x: &GpuTensor,
        shifts: &GpuTensor,
        direction: TranslateDirection,
    ) -> Result<GpuTensor> {
        translate::translate(self, x, shifts, direction)
    }

    fn extract_patches(
        &self,
        object: &GpuTensor,
        origins: &GpuTensor,
        n: usize,
    ) -> Result<GpuTensor> {
        ptycho::extract_patches(self, object, origins, n)
    }

    fn scatter_patches(
        &self,
        patches: &GpuTensor,
        origins: &GpuTensor,
        table: &PatchTable<PooledBuffer>,
    ) -> Result<GpuTensor> {
        ptycho::scatter_patches(self, patches, origins, table)
    }

    fn pattern_dot(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        ptycho::pattern_dot(self, a, b)
    }

    fn modulus_project(
        &self,
        spectrum: &GpuTensor,
        amplitude: &GpuTensor,
    ) -> Result<ConvParamGrads<PooledBuffer>> {
        ptycho::modulus_project(self, spectrum, amplitude)
    }

    fn recenter(&self, x: &GpuTensor, out_h: usize, out_w: usize) -> Result<GpuTensor> {
        layout::recenter(self, x, out_h, out_w)
    }

    fn sum_channels(&self, x: &GpuTensor) -> Result<GpuTensor> {
        layout::sum_channels(self, x)
    }

    fn repeat_channels(&self, x: &GpuTensor, channels: usize) -> Result<GpuTensor> {
        layout::repeat_channels(self, x, channels)
    }

    fn loss_terms(
        &self,
        kind: LossKind,
        pred: &GpuTensor,
        target: &GpuTensor,
    ) -> Result<GpuTensor> {
        loss::loss_terms(self, kind, pred, target)
    }

    fn loss_grad(
        &self,
        kind: LossKind,
        pred: &GpuTensor,
        target: &GpuTensor,
        scale: f32,
    ) -> Result<GpuTensor> {
        loss::loss_grad(self, kind, pred, target, scale)
    }

    fn sum(&self, x: &GpuTensor) -> Result<GpuTensor> {
        loss::sum(self, x)
    }

    fn conv2d(&self, x: &GpuTensor, kernel: &GpuTensor, bias: &GpuTensor) -> Result<GpuTensor> {
        conv::conv2d(self, x, kernel, bias)
    }

    fn conv2d_backward_input(&self, grad_out: &GpuTensor, kernel: &GpuTensor) -> Result<GpuTensor> {
        conv::conv2d_backward_input(self, grad_out, kernel)
    }

    fn conv2d_backward_params(
        &self,
        x: &GpuTensor,
        grad_out: &GpuTensor,
    ) -> Result<ConvParamGrads<PooledBuffer>> {
        conv::conv2d_backward_params(self, x, grad_out)
    }

    fn activation(&self, kind: Activation, x: &GpuTensor) -> Result<GpuTensor> {
        layers::activation(self, kind, x)
    }

    fn activation_backward(
        &self,
        kind: Activation,
        x: &GpuTensor,
        grad_out: &GpuTensor,
    ) -> Result<GpuTensor> {
        layers::activation_backward(self, kind, x, grad_out)
    }

    fn max_pool2(&self, x: &GpuTensor) -> Result<GpuTensor> {
        layers::max_pool2(self, x)
    }

    fn max_pool2_backward(&self, x: &GpuTensor, grad_out: &GpuTensor) -> Result<GpuTensor> {
        layers::max_pool2_backward(self, x, grad_out)
    }

    fn upsample2(&self, x: &GpuTensor) -> Result<GpuTensor> {
        layers::upsample2(self, x)
    }

    fn upsample2_backward(&self, grad_out: &GpuTensor) -> Result<GpuTensor> {
        layers::upsample2_backward(self, grad_out)
    }

    fn slice_channels(&self, x: &GpuTensor, start: usize, count: usize) -> Result<GpuTensor> {
        layers::slice_channels(self, x, start, count)
    }

    fn slice_channels_backward(
        &self,
        grad_out: &GpuTensor,
        start: usize,
        channels: usize,
    ) -> Result<GpuTensor> {
        layers::slice_channels_backward(self, grad_out, start, channels)
    }

    fn pad_spatial(&self, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
        layers::pad_spatial(self, x, pad)
    }

    fn crop_spatial(&self, x: &GpuTensor, pad: usize) -> Result<GpuTensor> {
        layers::crop_spatial(self, x, pad)
    }

    fn combine_complex(&self, amp: &GpuTensor, phase: &GpuTensor) -> Result<GpuTensor> {
        layers::combine_complex(self, amp, phase)
    }

    fn combine_complex_backward(
        &self,
        amp: &GpuTensor,
        phase: &GpuTensor,
        grad: &GpuTensor,
    ) -> Result<ConvParamGrads<PooledBuffer>> {
        layers::combine_complex_backward(self, amp, phase, grad)
    }

    fn to_channels_last(&self, x: &GpuTensor) -> Result<GpuTensor> {
        layers::to_channels_last(self, x)
    }

    fn to_channels_first(&self, x: &GpuTensor) -> Result<GpuTensor> {
        layers::to_channels_first(self, x)
    }

    fn add_real(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        layers::add_real(self, a, b)
    }

    fn fma_chain(&self, lanes: usize, iterations: u32) -> Result<GpuTensor> {
        peak::fma_chain(self, lanes, iterations)
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
        optim::adam_update(self, config, step, param, grad, m, v)
    }

    fn copy(&self, a: &GpuTensor) -> Result<GpuTensor> {
        elementwise::copy(self, a)
    }

    fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(drop)
            .map_err(|e| KernelError::Readback(e.to_string()))
    }
}
