//! Batched 2-D complex FFT: parameters and the shape rules both backends share.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

/// Transform sizes N (for N x N images) that both backends implement.
pub const SUPPORTED_FFT_SIZES: &[usize] = &[32, 64, 128, 256, 512];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FftDirection {
    /// exp(-2 pi i k n / N), unnormalised (numpy.fft.fft2).
    Forward,
    /// exp(+2 pi i k n / N), scaled by 1/N^2 (numpy.fft.ifft2).
    Inverse,
}

/// Half-size rotations fused into the transform. For even N, fftshift and ifftshift are the same
/// permutation, so `input` is `fft2(ifftshift(x))` and `output` is `fftshift(fft2(x))`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FftShift {
    pub input: bool,
    pub output: bool,
}

impl FftShift {
    pub const NONE: FftShift = FftShift {
        input: false,
        output: false,
    };
    pub const OUTPUT: FftShift = FftShift {
        input: false,
        output: true,
    };
    pub const INPUT: FftShift = FftShift {
        input: true,
        output: false,
    };
}

/// A batch of `batch` complex N x N images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FftGeometry {
    pub batch: usize,
    pub n: usize,
}

impl FftGeometry {
    pub fn of<S>(x: &Tensor<S>) -> Result<Self> {
        const OP: &str = "fft2";
        require_dtype(OP, x, Dtype::C64)?;
        let shape = x.shape();
        if shape.len() < 2 || shape[shape.len() - 1] != shape[shape.len() - 2] {
            return Err(KernelError::Shape {
                op: OP,
                expected: "(..., N, N) with square images".into(),
                found: shape.to_vec(),
            });
        }
        let n = shape[shape.len() - 1];
        if !SUPPORTED_FFT_SIZES.contains(&n) {
            return Err(KernelError::UnsupportedFftSize {
                op: OP,
                n,
                supported: SUPPORTED_FFT_SIZES,
            });
        }
        let batch = shape[..shape.len() - 2].iter().product();
        Ok(Self { batch, n })
    }
}
