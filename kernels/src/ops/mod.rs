//! The op set, one module per op family. Each module holds the op's parameters and the shape rules that
//! both backends share; [`Backend`] is the one trait the GPU kernels and their CPU twins implement.

pub mod conv;
pub mod elementwise;
pub mod fft;
pub mod layers;
pub mod layout;
pub mod loss;
pub mod optim;
pub mod peak;
pub mod ptycho;
pub mod translate;

use crate::{Complex32, Dtype, Result, Tensor};

/// Two gradients of one backward pass (a convolution's kernel and bias; a combination's amplitude and
/// phase).
pub type ConvParamGrads<S> = (Tensor<S>, Tensor<S>);

/// Which implementation a backend is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Gpu,
    Cpu,
}

/// Work on one device. GPU ops are recorded and submitted in batches: an op returns as soon as its work
/// is recorded, and reading a tensor back (or [`Backend::synchronize`]) waits for everything before it.
pub trait Backend: Send + Sync {
    type Storage: Send + Sync + std::fmt::Debug;
    /// A read-back in flight, from [`Backend::start_read_f32`].
    type PendingRead;

    fn kind(&self) -> BackendKind;

    /// One line naming the device, for logs and benchmark reports.
    fn describe(&self) -> String;

    fn upload_c64(&self, shape: &[usize], data: &[Complex32]) -> Result<Tensor<Self::Storage>>;
    fn upload_f32(&self, shape: &[usize], data: &[f32]) -> Result<Tensor<Self::Storage>>;
    fn download_c64(&self, t: &Tensor<Self::Storage>) -> Result<Vec<Complex32>>;
    fn download_f32(&self, t: &Tensor<Self::Storage>) -> Result<Vec<f32>>;
    /// Start reading a float32 tensor back: record the copy and submit the recorded work without
    /// waiting, so the host can record more (the next training step) while the device works.
    fn start_read_f32(&self, t: &Tensor<Self::Storage>) -> Result<Self::PendingRead>;
    /// Finish a read started by [`Backend::start_read_f32`], waiting only for the work recorded before
    /// it.
    fn finish_read_f32(&self, pending: Self::PendingRead) -> Result<Vec<f32>>;

    /// Batched 2-D FFT over the last two axes (N x N, N in [`fft::SUPPORTED_FFT_SIZES`]), numpy
    /// conventions: forward unnormalised with exp(-2 pi i k n / N), inverse scaled by 1/N^2.
    fn fft2(
        &self,
        x: &Tensor<Self::Storage>,
        direction: fft::FftDirection,
        shift: fft::FftShift,
    ) -> Result<Tensor<Self::Storage>>;

    /// a * b; `b` may be smaller than `a` and is then broadcast over a's leading axes.
    fn mul(
        &self,
        a: &Tensor<Self::Storage>,
        b: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;
    /// a * conj(b), broadcasting like [`Backend::mul`].
    fn mul_conj(
        &self,
        a: &Tensor<Self::Storage>,
        b: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;
    /// a + b, broadcasting like [`Backend::mul`].
    fn add(
        &self,
        a: &Tensor<Self::Storage>,
        b: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;
    /// s * a for a real scalar s (float32 or complex64 a).
    fn scale(&self, a: &Tensor<Self::Storage>, s: f32) -> Result<Tensor<Self::Storage>>;
    /// The gradient of s·|a| for an upstream real gradient g: s · g · a/|a| (0 where a = 0).
    fn modulus_grad(
        &self,
        a: &Tensor<Self::Storage>,
        g: &Tensor<Self::Storage>,
        s: f32,
    ) -> Result<Tensor<Self::Storage>>;

    /// a / d for complex a and real d of the same shape.
    fn div_real(
        &self,
        a: &Tensor<Self::Storage>,
        d: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;

    /// a + s for real a.
    fn offset(&self, a: &Tensor<Self::Storage>, s: f32) -> Result<Tensor<Self::Storage>>;

    /// |a| as float32.
    fn abs(&self, a: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;
    /// |a|^2 as float32.
    fn abs2(&self, a: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;
    /// Bilinear translation of each H x W image of `x` (float32 or complex64) by its shift (tx, ty) from
    /// `shifts` (images, 2), zero outside; `Backward` applies the transpose (the input gradient).
    fn translate(
        &self,
        x: &Tensor<Self::Storage>,
        shifts: &Tensor<Self::Storage>,
        direction: translate::TranslateDirection,
    ) -> Result<Tensor<Self::Storage>>;

    /// N x N patches of a complex (H, W) object at sub-pixel origins (M, 2) float32 (x0, y0), the
    /// object coordinates of each patch's pixel (0, 0): bilinear, each corner zero outside.
    fn extract_patches(
        &self,
        object: &Tensor<Self::Storage>,
        origins: &Tensor<Self::Storage>,
        n: usize,
    ) -> Result<Tensor<Self::Storage>>;

    /// The adjoint of [`Backend::extract_patches`]: complex (M, N, N) patches (or one (N, N) patch
    /// shared by every origin) summed onto an (H, W) object at the origins `table` was built for.
    fn scatter_patches(
        &self,
        patches: &Tensor<Self::Storage>,
        origins: &Tensor<Self::Storage>,
        table: &ptycho::PatchTable<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;

    /// Σ conj(a)·b over each pattern of two complex stacks (M, ...) of one shape: (M) complex64.
    fn pattern_dot(
        &self,
        a: &Tensor<Self::Storage>,
        b: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;

    /// The Fourier-modulus projection a·Ψ/|Ψ| (a where Ψ = 0) of complex spectra onto float32
    /// amplitudes of the same shape, and the residual (|Ψ| − a)² of each element.
    fn modulus_project(
        &self,
        spectrum: &Tensor<Self::Storage>,
        amplitude: &Tensor<Self::Storage>,
    ) -> Result<ConvParamGrads<Self::Storage>>;

    /// Each H x W image of `x` centred in an out_h x out_w one: a zero pad when larger, a centre crop when
    /// smaller (sizes must differ by even numbers). Its transpose is the recenter back.
    fn recenter(
        &self,
        x: &Tensor<Self::Storage>,
        out_h: usize,
        out_w: usize,
    ) -> Result<Tensor<Self::Storage>>;

    /// (..., C, H, W) -> (..., H, W): the sum over the channel axis.
    fn sum_channels(&self, x: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;

    /// (..., H, W) -> (..., C, H, W): each image repeated `channels` times (the sum's transpose).
    fn repeat_channels(
        &self,
        x: &Tensor<Self::Storage>,
        channels: usize,
    ) -> Result<Tensor<Self::Storage>>;

    /// The per-element terms of a loss between predicted and target amplitudes (float32, one shape).
    fn loss_terms(
        &self,
        kind: loss::LossKind,
        pred: &Tensor<Self::Storage>,
        target: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;

    /// `scale` times the per-element gradient of the loss with respect to the prediction (scale = 1/M
    /// for the gradient of the mean).
    fn loss_grad(
        &self,
        kind: loss::LossKind,
        pred: &Tensor<Self::Storage>,
        target: &Tensor<Self::Storage>,
        scale: f32,
    ) -> Result<Tensor<Self::Storage>>;

    /// The sum of a float32 tensor, as a 0-d tensor (no read-back: it stays on the device).
    fn sum(&self, x: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;

    /// 3 x 3 'same' convolution (ops/conv.rs): x (B, H, W, Cin) float32, kernel (3, 3, Cin, Cout),
    /// bias (Cout) -> (B, H, W, Cout).
    fn conv2d(
        &self,
        x: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
        bias: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;

    /// relu(conv2d(x, kernel, bias)): the same values, fused into one pass where the backend can.
    fn conv2d_relu(
        &self,
        x: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
        bias: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>> {
        self.activation(layers::Activation::Relu, &self.conv2d(x, kernel, bias)?)
    }

    /// ∂L/∂x (B, H, W, Cin) of [`Backend::conv2d`] from ∂L/∂out (B, H, W, Cout).
    fn conv2d_backward_input(
        &self,
        grad_out: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;

    /// [`Backend::conv2d_backward_input`] passed back through the ReLU whose output `relu_out`
    /// (B, H, W, Cin) was the convolution's input: zero where relu_out ≤ 0, as
    /// [`Backend::activation_backward`] gives it, fused into the store where the backend can.
    fn conv2d_backward_input_relu(
        &self,
        grad_out: &Tensor<Self::Storage>,
        kernel: &Tensor<Self::Storage>,
        relu_out: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>> {
        let g = self.conv2d_backward_input(grad_out, kernel)?;
        self.activation_backward(layers::Activation::Relu, relu_out, &g)
    }

    /// (∂L/∂kernel (3, 3, Cin, Cout), ∂L/∂bias (Cout)) of [`Backend::conv2d`] from its input and
    /// ∂L/∂out.
    fn conv2d_backward_params(
        &self,
        x: &Tensor<Self::Storage>,
        grad_out: &Tensor<Self::Storage>,
    ) -> Result<ConvParamGrads<Self::Storage>>;

    /// An activation of float32 x, elementwise.
    fn activation(
        &self,
        kind: layers::Activation,
        x: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;
    /// ∂L/∂x of [`Backend::activation`] from its input x and ∂L/∂out.
    fn activation_backward(
        &self,
        kind: layers::Activation,
        x: &Tensor<Self::Storage>,
        grad_out: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;
    /// 2 x 2 max pooling, stride 2, of x (B, H, W, C), H and W even.
    fn max_pool2(&self, x: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;
    /// ∂L/∂x of [`Backend::max_pool2`]: each window's gradient to its first maximum.
    fn max_pool2_backward(
        &self,
        x: &Tensor<Self::Storage>,
        grad_out: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;
    /// [`Backend::max_pool2_backward`] of x, the output of a ReLU, passed back through that ReLU:
    /// zero where x ≤ 0, fused where the backend can.
    fn max_pool2_backward_relu(
        &self,
        x: &Tensor<Self::Storage>,
        grad_out: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>> {
        let g = self.max_pool2_backward(x, grad_out)?;
        self.activation_backward(layers::Activation::Relu, x, &g)
    }
    /// Nearest 2x upsampling of x (B, H, W, C): out[2y + a, 2x + b] = x[y, x].
    fn upsample2(&self, x: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;
    /// ∂L/∂x of [`Backend::upsample2`]: the sum of each 2 x 2 block.
    fn upsample2_backward(&self, grad_out: &Tensor<Self::Storage>)
        -> Result<Tensor<Self::Storage>>;
    /// Channels [start, start + count) of x (B, H, W, C).
    fn slice_channels(
        &self,
        x: &Tensor<Self::Storage>,
        start: usize,
        count: usize,
    ) -> Result<Tensor<Self::Storage>>;
    /// ∂L/∂x (B, H, W, channels) of [`Backend::slice_channels`]: zero outside the slice.
    fn slice_channels_backward(
        &self,
        grad_out: &Tensor<Self::Storage>,
        start: usize,
        channels: usize,
    ) -> Result<Tensor<Self::Storage>>;
    /// Zero padding of x (B, H, W, C) by `pad` pixels on every side.
    fn pad_spatial(&self, x: &Tensor<Self::Storage>, pad: usize) -> Result<Tensor<Self::Storage>>;
    /// The centre of x (B, H + 2 pad, W + 2 pad, C): the transpose of [`Backend::pad_spatial`].
    fn crop_spatial(&self, x: &Tensor<Self::Storage>, pad: usize) -> Result<Tensor<Self::Storage>>;
    /// amp·e^{iφ} from amp and phase (B, H, W, C) as complex64 (B, C, H, W), the physics' layout.
    fn combine_complex(
        &self,
        amp: &Tensor<Self::Storage>,
        phase: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;
    /// (∂L/∂amp, ∂L/∂φ), (B, H, W, C), of [`Backend::combine_complex`] from its complex gradient.
    fn combine_complex_backward(
        &self,
        amp: &Tensor<Self::Storage>,
        phase: &Tensor<Self::Storage>,
        grad: &Tensor<Self::Storage>,
    ) -> Result<ConvParamGrads<Self::Storage>>;
    /// (B, C, H, W) -> (B, H, W, C), float32; the transpose of [`Backend::to_channels_first`].
    fn to_channels_last(&self, x: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;
    /// (B, H, W, C) -> (B, C, H, W), float32.
    fn to_channels_first(&self, x: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;
    /// a + b for float32 tensors of one shape.
    fn add_real(
        &self,
        a: &Tensor<Self::Storage>,
        b: &Tensor<Self::Storage>,
    ) -> Result<Tensor<Self::Storage>>;

    /// out (lanes) float32: lane i's sum of [`peak::CHAINS`] chains a ← fma(a, m, c) run `iterations`
    /// times (ops/peak.rs), a kernel that measures the FP32 multiply-add rate.
    fn fma_chain(&self, lanes: usize, iterations: u32) -> Result<Tensor<Self::Storage>>;

    /// One Adam step of step number `step` (from 1), in place: `param`, `m` and `v` are updated from
    /// `grad`.
    fn adam_update(
        &self,
        config: &optim::AdamConfig,
        step: u64,
        param: &mut Tensor<Self::Storage>,
        grad: &Tensor<Self::Storage>,
        m: &mut Tensor<Self::Storage>,
        v: &mut Tensor<Self::Storage>,
    ) -> Result<()>;

    /// A copy of `a` on the same device (on the GPU through a copy kernel: the bandwidth yardstick).
    fn copy(&self, a: &Tensor<Self::Storage>) -> Result<Tensor<Self::Storage>>;

    /// Submit recorded work and wait until the device has finished it.
    fn synchronize(&self) -> Result<()>;
}

pub(crate) fn require_dtype<S>(op: &'static str, t: &Tensor<S>, dtype: Dtype) -> Result<()> {
    if t.dtype() == dtype {
        Ok(())
    } else {
        Err(crate::KernelError::Dtype {
            op,
            expected: dtype.name(),
            found: t.dtype().name(),
        })
    }
}

pub(crate) fn check_host_len(shape: &[usize], found: usize) -> Result<()> {
    let expected: usize = shape.iter().product();
    if expected == found {
        Ok(())
    } else {
        Err(crate::KernelError::HostLength {
            shape: shape.to_vec(),
            expected,
            found,
        })
    }
}
