//! The CPU twin of every kernel: plain Rust over `Vec<f32>` (complex interleaved), rustfft for the FFT,
//! rayon across the batch. It is the oracle of the GPU tests and the backend on machines without a GPU.

mod conv;
mod elementwise;
mod fft;
mod layers;
mod layout;
mod loss;
mod peak;
mod ptycho;
mod translate;
#[cfg(target_arch = "x86_64")]
mod winograd;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};

use crate::ops::conv::ConvGeometry;
use crate::ops::elementwise::{BinaryGeometry, BinaryOp, ComplexRealPair, RealOp};
use crate::ops::fft::{FftDirection, FftGeometry, FftShift};
use crate::ops::layers::{check_same, check_slice, crop_geometry, require_shape, Activation, Nhwc};
use crate::ops::layout::{ChannelGeometry, RecenterGeometry};
use crate::ops::loss::{check_pair, LossKind};
use crate::ops::optim::{check_adam, AdamConfig};
use crate::ops::ptycho::{check_modulus_pair, check_pattern_pair, PatchGeometry, PatchTable};
use crate::ops::translate::{TranslateDirection, TranslateGeometry};
use crate::ops::{check_host_len, require_dtype, Backend, BackendKind, ConvParamGrads};
use crate::{Complex32, Dtype, Result, Tensor};

use conv::Summation;

pub type CpuTensor = Tensor<Vec<f32>>;

type FftPlans = HashMap<(usize, FftDirection), Arc<dyn Fft<f32>>>;

#[derive(Default)]
pub struct CpuBackend {
    plans: Mutex<FftPlans>,
    summation: Summation,
}

impl CpuBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend whose convolutions always take the direct sums, never Winograd: slower, but its
    /// rounding does not jump when a weight moves slightly, as finite-difference checks need.
    pub fn with_direct_sums() -> Self {
        Self {
            summation: Summation::Direct,
            ..Self::default()
        }
    }

    fn plan(&self, n: usize, direction: FftDirection) -> Arc<dyn Fft<f32>> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .entry((n, direction))
            .or_insert_with(|| {
                let mut planner = FftPlanner::new();
                match direction {
                    FftDirection::Forward => planner.plan_fft_forward(n),
                    FftDirection::Inverse => planner.plan_fft_inverse(n),
                }
            })
            .clone()
    }
}

fn complex(t: &CpuTensor) -> &[Complex32] {
    bytemuck::cast_slice(&t.storage)
}

/// Apply the real or the complex form of an op, whichever matches x's dtype.
fn by_dtype(
    x: &CpuTensor,
    shape: Vec<usize>,
    real: impl FnOnce(&[f32]) -> Vec<f32>,
    complex_op: impl FnOnce(&[Complex32]) -> Vec<Complex32>,
) -> CpuTensor {
    match x.dtype() {
        Dtype::F32 => Tensor::new(shape, Dtype::F32, real(&x.storage)),
        Dtype::C64 => complex_tensor(&shape, complex_op(complex(x))),
    }
}

fn complex_tensor(shape: &[usize], data: Vec<Complex32>) -> CpuTensor {
    Tensor::new(shape.to_vec(), Dtype::C64, bytemuck::cast_vec(data))
}

impl Backend for CpuBackend {
    type Storage = Vec<f32>;
    type PendingRead = Vec<f32>;

    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn describe(&self) -> String {
        format!(
            "CPU backend (rustfft, {} threads)",
            rayon::current_num_threads()
        )
    }

    fn upload_c64(&self, shape: &[usize], data: &[Complex32]) -> Result<CpuTensor> {
        check_host_len(shape, data.len())?;
        Ok(complex_tensor(shape, data.to_vec()))
    }

    fn upload_f32(&self, shape: &[usize], data: &[f32]) -> Result<CpuTensor> {
        check_host_len(shape, data.len())?;
        Ok(Tensor::new(shape.to_vec(), Dtype::F32, data.to_vec()))
    }

    fn download_c64(&self, t: &CpuTensor) -> Result<Vec<Complex32>> {
        require_dtype("download_c64", t, Dtype::C64)?;
        Ok(complex(t).to_vec())
    }

    fn download_f32(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        require_dtype("download_f32", t, Dtype::F32)?;
        Ok(t.storage.clone())
    }

    fn fft2(&self, x: &CpuTensor, direction: FftDirection, shift: FftShift) -> Result<CpuTensor> {
        let geometry = FftGeometry::of(x)?;
        let plan = self.plan(geometry.n, direction);
        let out = fft::fft2_batch(complex(x), geometry.n, plan.as_ref(), direction, shift);
        Ok(complex_tensor(x.shape(), out))
    }

    fn mul(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        self.binary(BinaryOp::Mul, a, b)
    }

    fn mul_conj(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        self.binary(BinaryOp::MulConj, a, b)
    }

    fn add(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        self.binary(BinaryOp::Add, a, b)
    }

    fn scale(&self, a: &CpuTensor, s: f32) -> Result<CpuTensor> {
        Ok(by_dtype(
            a,
            a.shape().to_vec(),
            |v| v.iter().map(|x| x * s).collect(),
            |v| elementwise::scale(v, s),
        ))
    }

    fn modulus_grad(&self, a: &CpuTensor, g: &CpuTensor, s: f32) -> Result<CpuTensor> {
        ComplexRealPair::of("modulus_grad", a, g)?;
        Ok(complex_tensor(
            a.shape(),
            elementwise::modulus_grad(complex(a), &g.storage, s),
        ))
    }

    fn div_real(&self, a: &CpuTensor, d: &CpuTensor) -> Result<CpuTensor> {
        ComplexRealPair::of("div_real", a, d)?;
        let out = complex(a)
            .iter()
            .zip(&d.storage)
            .map(|(a, d)| a / d)
            .collect();
        Ok(complex_tensor(a.shape(), out))
    }

    fn offset(&self, a: &CpuTensor, s: f32) -> Result<CpuTensor> {
        require_dtype("offset", a, Dtype::F32)?;
        Ok(Tensor::new(
            a.shape().to_vec(),
            Dtype::F32,
            a.storage.iter().map(|v| v + s).collect(),
        ))
    }

    fn abs(&self, a: &CpuTensor) -> Result<CpuTensor> {
        self.real(RealOp::Abs, a)
    }

    fn abs2(&self, a: &CpuTensor) -> Result<CpuTensor> {
        self.real(RealOp::Abs2, a)
    }

    fn extract_patches(
        &self,
        object: &CpuTensor,
        origins: &CpuTensor,
        n: usize,
    ) -> Result<CpuTensor> {
        let g = PatchGeometry::of_extract(object, origins, n)?;
        let out = ptycho::extract(complex(object), &origins.storage, g);
        Ok(complex_tensor(&[g.patches, n, n], out))
    }

    fn scatter_patches(
        &self,
        patches: &CpuTensor,
        origins: &CpuTensor,
        table: &PatchTable<Vec<f32>>,
    ) -> Result<CpuTensor> {
        let index = &table.index;
        let g = PatchGeometry::of_scatter(patches, origins, index, index.h, index.w)?;
        let out = ptycho::scatter(
            complex(patches),
            &origins.storage,
            &table.table.storage,
            index.bin,
            index.bins_x,
            g,
        );
        Ok(complex_tensor(&[g.h, g.w], out))
    }

    fn pattern_dot(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        let (m, per) = check_pattern_pair(a, b)?;
        Ok(complex_tensor(
            &[m],
            ptycho::pattern_dot(complex(a), complex(b), per),
        ))
    }

    fn modulus_project(
        &self,
        spectrum: &CpuTensor,
        amplitude: &CpuTensor,
    ) -> Result<ConvParamGrads<Vec<f32>>> {
        check_modulus_pair(spectrum, amplitude)?;
        let (projected, residual) = ptycho::modulus_project(complex(spectrum), &amplitude.storage);
        Ok((
            complex_tensor(spectrum.shape(), projected),
            real_tensor(spectrum.shape(), residual),
        ))
    }

    fn translate(
        &self,
        x: &CpuTensor,
        shifts: &CpuTensor,
        direction: TranslateDirection,
    ) -> Result<CpuTensor> {
        let geometry = TranslateGeometry::of(x, shifts)?;
        let t = &shifts.storage;
        Ok(by_dtype(
            x,
            x.shape().to_vec(),
            |v| translate::translate(v, t, geometry, direction),
            |v| translate::translate(v, t, geometry, direction),
        ))
    }

    fn recenter(&self, x: &CpuTensor, out_h: usize, out_w: usize) -> Result<CpuTensor> {
        let geometry = RecenterGeometry::of(x, out_h, out_w)?;
        let shape = geometry.out_shape(x.shape());
        Ok(by_dtype(
            x,
            shape,
            |v| layout::recenter(v, geometry),
            |v| layout::recenter(v, geometry),
        ))
    }

    fn sum_channels(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let geometry = ChannelGeometry::of_sum(x)?;
        let mut shape = x.shape().to_vec();
        shape.remove(shape.len() - 3);
        Ok(by_dtype(
            x,
            shape,
            |v| layout::sum_channels(v, geometry),
            |v| layout::sum_channels(v, geometry),
        ))
    }

    fn repeat_channels(&self, x: &CpuTensor, channels: usize) -> Result<CpuTensor> {
        let geometry = ChannelGeometry::of_repeat(x, channels)?;
        let mut shape = x.shape().to_vec();
        shape.insert(shape.len() - 2, channels);
        Ok(by_dtype(
            x,
            shape,
            |v| layout::repeat_channels(v, geometry),
            |v| layout::repeat_channels(v, geometry),
        ))
    }

    fn loss_terms(
        &self,
        kind: LossKind,
        pred: &CpuTensor,
        target: &CpuTensor,
    ) -> Result<CpuTensor> {
        check_pair("loss_terms", pred, target)?;
        Ok(Tensor::new(
            pred.shape().to_vec(),
            Dtype::F32,
            loss::terms(kind, &pred.storage, &target.storage),
        ))
    }

    fn loss_grad(
        &self,
        kind: LossKind,
        pred: &CpuTensor,
        target: &CpuTensor,
        scale: f32,
    ) -> Result<CpuTensor> {
        check_pair("loss_grad", pred, target)?;
        Ok(Tensor::new(
            pred.shape().to_vec(),
            Dtype::F32,
            loss::grad(kind, &pred.storage, &target.storage, scale),
        ))
    }

    fn sum(&self, x: &CpuTensor) -> Result<CpuTensor> {
        require_dtype("sum", x, Dtype::F32)?;
        let total: f64 = x.storage.par_iter().map(|&v| v as f64).sum();
        Ok(Tensor::new(Vec::new(), Dtype::F32, vec![total as f32]))
    }

    fn conv2d(&self, x: &CpuTensor, kernel: &CpuTensor, bias: &CpuTensor) -> Result<CpuTensor> {
        convolution("conv2d", x, kernel, bias, (false, self.summation))
    }

    fn conv2d_relu(
        &self,
        x: &CpuTensor,
        kernel: &CpuTensor,
        bias: &CpuTensor,
    ) -> Result<CpuTensor> {
        convolution("conv2d_relu", x, kernel, bias, (true, self.summation))
    }

    fn conv2d_backward_input(&self, grad_out: &CpuTensor, kernel: &CpuTensor) -> Result<CpuTensor> {
        let g = ConvGeometry::of_backward_input("conv2d_backward_input", grad_out, kernel)?;
        Ok(Tensor::new(
            vec![g.batch, g.h, g.w, g.cin],
            Dtype::F32,
            conv::backward_input(&g, &grad_out.storage, &kernel.storage, self.summation, None),
        ))
    }

    fn conv2d_backward_input_relu(
        &self,
        grad_out: &CpuTensor,
        kernel: &CpuTensor,
        relu_out: &CpuTensor,
    ) -> Result<CpuTensor> {
        const OP: &str = "conv2d_backward_input_relu";
        let g = ConvGeometry::of_backward_input(OP, grad_out, kernel)?;
        let shape = [g.batch, g.h, g.w, g.cin];
        require_dtype(OP, relu_out, Dtype::F32)?;
        require_shape(OP, relu_out, &shape)?;
        let (grad_out, kernel) = (&grad_out.storage, &kernel.storage);
        let through_relu = Some(relu_out.storage.as_slice());
        Ok(real_tensor(
            &shape,
            conv::backward_input(&g, grad_out, kernel, self.summation, through_relu),
        ))
    }

    fn conv2d_backward_params(
        &self,
        x: &CpuTensor,
        grad_out: &CpuTensor,
    ) -> Result<ConvParamGrads<Vec<f32>>> {
        const OP: &str = "conv2d_backward_params";
        require_dtype(OP, grad_out, Dtype::F32)?;
        let cout = *grad_out.shape().last().unwrap_or(&0);
        let g = ConvGeometry::of_params(OP, x, cout)?;
        g.check_grad_out(OP, grad_out)?;
        let (gk, gb) = conv::backward_params(&g, &x.storage, &grad_out.storage, self.summation);
        Ok((
            Tensor::new(vec![3, 3, g.cin, g.cout], Dtype::F32, gk),
            Tensor::new(vec![g.cout], Dtype::F32, gb),
        ))
    }

    fn activation(&self, kind: Activation, x: &CpuTensor) -> Result<CpuTensor> {
        require_dtype("activation", x, Dtype::F32)?;
        Ok(real_tensor(x.shape(), layers::activation(kind, &x.storage)))
    }

    fn activation_backward(
        &self,
        kind: Activation,
        x: &CpuTensor,
        grad_out: &CpuTensor,
    ) -> Result<CpuTensor> {
        check_same("activation_backward", x, grad_out)?;
        Ok(real_tensor(
            x.shape(),
            layers::activation_backward(kind, &x.storage, &grad_out.storage),
        ))
    }

    fn max_pool2(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let d = Nhwc::of_even("max_pool2", x)?;
        Ok(real_tensor(
            &[d.b, d.h / 2, d.w / 2, d.c],
            layers::max_pool(&d, &x.storage),
        ))
    }

    fn max_pool2_backward(&self, x: &CpuTensor, grad_out: &CpuTensor) -> Result<CpuTensor> {
        max_pool_gradient("max_pool2_backward", x, grad_out, false)
    }

    fn max_pool2_backward_relu(&self, x: &CpuTensor, grad_out: &CpuTensor) -> Result<CpuTensor> {
        max_pool_gradient("max_pool2_backward_relu", x, grad_out, true)
    }

    fn upsample2(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let d = Nhwc::of("upsample2", x)?;
        Ok(real_tensor(
            &[d.b, 2 * d.h, 2 * d.w, d.c],
            layers::upsample(&d, &x.storage),
        ))
    }

    fn upsample2_backward(&self, grad_out: &CpuTensor) -> Result<CpuTensor> {
        let g = Nhwc::of_even("upsample2_backward", grad_out)?;
        let d = Nhwc {
            h: g.h / 2,
            w: g.w / 2,
            ..g
        };
        Ok(real_tensor(
            &d.shape(),
            layers::upsample_backward(&d, &grad_out.storage),
        ))
    }

    fn slice_channels(&self, x: &CpuTensor, start: usize, count: usize) -> Result<CpuTensor> {
        let d = Nhwc::of("slice_channels", x)?;
        check_slice("slice_channels", &d, start, count)?;
        Ok(real_tensor(
            &[d.b, d.h, d.w, count],
            layers::slice_channels(&d, &x.storage, start, count),
        ))
    }

    fn slice_channels_backward(
        &self,
        grad_out: &CpuTensor,
        start: usize,
        channels: usize,
    ) -> Result<CpuTensor> {
        let g = Nhwc::of("slice_channels_backward", grad_out)?;
        let d = Nhwc { c: channels, ..g };
        check_slice("slice_channels_backward", &d, start, g.c)?;
        Ok(real_tensor(
            &d.shape(),
            layers::slice_channels_backward(&d, &grad_out.storage, start, g.c),
        ))
    }

    fn pad_spatial(&self, x: &CpuTensor, pad: usize) -> Result<CpuTensor> {
        let d = Nhwc::of("pad_spatial", x)?;
        Ok(real_tensor(
            &[d.b, d.h + 2 * pad, d.w + 2 * pad, d.c],
            layers::pad_spatial(&d, &x.storage, pad),
        ))
    }

    fn crop_spatial(&self, x: &CpuTensor, pad: usize) -> Result<CpuTensor> {
        let d = crop_geometry(x, pad)?;
        Ok(real_tensor(
            &d.shape(),
            layers::crop_spatial(&d, &x.storage, pad),
        ))
    }

    fn combine_complex(&self, amp: &CpuTensor, phase: &CpuTensor) -> Result<CpuTensor> {
        let d = Nhwc::of("combine_complex", amp)?;
        check_same("combine_complex", amp, phase)?;
        Ok(complex_tensor(
            &d.channels_first_shape(),
            layers::combine_complex(&d, &amp.storage, &phase.storage),
        ))
    }

    fn combine_complex_backward(
        &self,
        amp: &CpuTensor,
        phase: &CpuTensor,
        grad: &CpuTensor,
    ) -> Result<ConvParamGrads<Vec<f32>>> {
        const OP: &str = "combine_complex_backward";
        let d = Nhwc::of(OP, amp)?;
        check_same(OP, amp, phase)?;
        require_dtype(OP, grad, Dtype::C64)?;
        require_shape(OP, grad, &d.channels_first_shape())?;
        let (ga, gp) =
            layers::combine_complex_backward(&d, &amp.storage, &phase.storage, complex(grad));
        Ok((real_tensor(&d.shape(), ga), real_tensor(&d.shape(), gp)))
    }

    fn to_channels_last(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let d = Nhwc::of_channels_first("to_channels_last", x)?;
        Ok(real_tensor(
            &d.shape(),
            layers::to_channels_last(&d, &x.storage),
        ))
    }

    fn to_channels_first(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let d = Nhwc::of("to_channels_first", x)?;
        Ok(real_tensor(
            &d.channels_first_shape(),
            layers::to_channels_first(&d, &x.storage),
        ))
    }

    fn add_real(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        check_same("add_real", a, b)?;
        Ok(real_tensor(
            a.shape(),
            a.storage
                .iter()
                .zip(&b.storage)
                .map(|(x, y)| x + y)
                .collect(),
        ))
    }

    fn start_read_f32(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        self.download_f32(t)
    }

    fn finish_read_f32(&self, pending: Vec<f32>) -> Result<Vec<f32>> {
        Ok(pending)
    }

    fn fma_chain(&self, lanes: usize, iterations: u32) -> Result<CpuTensor> {
        Ok(real_tensor(&[lanes], peak::fma_chain(lanes, iterations)))
    }

    fn adam_update(
        &self,
        config: &AdamConfig,
        step: u64,
        param: &mut CpuTensor,
        grad: &CpuTensor,
        m: &mut CpuTensor,
        v: &mut CpuTensor,
    ) -> Result<()> {
        check_adam(param, grad, m, v)?;
        let alpha = config.alpha(step) as f32;
        let (b1, b2, eps) = (
            config.beta1 as f32,
            config.beta2 as f32,
            config.epsilon as f32,
        );
        param
            .storage
            .par_iter_mut()
            .zip(m.storage.par_iter_mut())
            .zip(v.storage.par_iter_mut())
            .zip(grad.storage.par_iter())
            .for_each(|(((p, m), v), &g)| {
                *m += (g - *m) * (1.0 - b1);
                *v += (g * g - *v) * (1.0 - b2);
                *p -= alpha * *m / (v.sqrt() + eps);
            });
        Ok(())
    }

    fn copy(&self, a: &CpuTensor) -> Result<CpuTensor> {
        Ok(Tensor::new(
            a.shape().to_vec(),
            a.dtype(),
            a.storage.clone(),
        ))
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

impl CpuBackend {
    fn binary(&self, op: BinaryOp, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        BinaryGeometry::of(op, a, b)?;
        Ok(complex_tensor(
            a.shape(),
            elementwise::binary(op, complex(a), complex(b)),
        ))
    }

    fn real(&self, op: RealOp, a: &CpuTensor) -> Result<CpuTensor> {
        crate::ops::elementwise::require_complex(op.name(), a)?;
        Ok(Tensor::new(
            a.shape().to_vec(),
            Dtype::F32,
            elementwise::real(op, complex(a)),
        ))
    }
}

/// conv2d of `op`, with the ReLU fused into the store when `relu`.
fn convolution(
    op: &'static str,
    x: &CpuTensor,
    kernel: &CpuTensor,
    bias: &CpuTensor,
    (relu, summation): (bool, Summation),
) -> Result<CpuTensor> {
    let g = ConvGeometry::of(op, x, kernel)?;
    g.check_bias(op, bias)?;
    Ok(Tensor::new(
        vec![g.batch, g.h, g.w, g.cout],
        Dtype::F32,
        conv::forward(
            &g,
            &x.storage,
            &kernel.storage,
            &bias.storage,
            relu,
            summation,
        ),
    ))
}

/// The max pool's gradient, and with `through_relu` on through the ReLU whose output x is.
fn max_pool_gradient(
    op: &'static str,
    x: &CpuTensor,
    grad_out: &CpuTensor,
    through_relu: bool,
) -> Result<CpuTensor> {
    let d = Nhwc::of_even(op, x)?;
    require_shape(op, grad_out, &[d.b, d.h / 2, d.w / 2, d.c])?;
    Ok(real_tensor(
        x.shape(),
        layers::max_pool_backward(&d, &x.storage, &grad_out.storage, through_relu),
    ))
}

fn real_tensor(shape: &[usize], data: Vec<f32>) -> CpuTensor {
    Tensor::new(shape.to_vec(), Dtype::F32, data)
}
