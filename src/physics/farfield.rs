//! Far-field amplitude (physics-and-model.md §4.3, steps 7 and 9): Â = s · fftshift(|FFT2(ψ)|) / N, the
//! forward DFT without padding, and its gradient with respect to ψ.

use ptycho_kernels::{Backend, FftDirection, FftShift, KernelError, Tensor};

/// The forward result and what the backward pass needs.
pub struct FarField<S> {
    /// Â, float32 (..., N, N), DC at (N/2, N/2).
    pub amplitude: Tensor<S>,
    /// fftshift(FFT2(ψ)), kept for the backward pass.
    spectrum: Tensor<S>,
    /// s / N.
    factor: f32,
    n: usize,
}

/// Â = s · fftshift(|FFT2(ψ)|) / N for ψ complex64 (..., N, N) and intensity scale s.
pub fn forward<B: Backend>(
    b: &B,
    psi: &Tensor<B::Storage>,
    intensity_scale: f32,
) -> Result<FarField<B::Storage>, KernelError> {
    let n = *psi.shape().last().unwrap_or(&0);
    let factor = intensity_scale / n as f32;
    let spectrum = b.fft2(psi, FftDirection::Forward, FftShift::OUTPUT)?;
    let amplitude = b.scale(&b.abs(&spectrum)?, factor)?;
    Ok(FarField {
        amplitude,
        spectrum,
        factor,
        n,
    })
}

/// ∂L/∂ψ (as ∂L/∂Re ψ + i ∂L/∂Im ψ) from ∂L/∂Â: N² · ifft2(ifftshift(factor · g · G/|G|)), the adjoint
/// of the forward's linear part applied to the gradient of the modulus.
pub fn backward<B: Backend>(
    b: &B,
    far: &FarField<B::Storage>,
    grad_amplitude: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, KernelError> {
    let grad_spectrum = b.modulus_grad(&far.spectrum, grad_amplitude, far.factor)?;
    let back = b.fft2(&grad_spectrum, FftDirection::Inverse, FftShift::INPUT)?;
    b.scale(&back, (far.n * far.n) as f32)
}
