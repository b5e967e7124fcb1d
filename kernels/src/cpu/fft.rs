use rayon::prelude::*;
use rustfft::Fft;

use crate::ops::fft::{FftDirection, FftShift};
use crate::Complex32;

/// 2-D FFT of every N x N image in `x`: rows, transpose, rows, transpose, with the shifts and the 1/N^2
/// of the inverse applied on the way.
pub(super) fn fft2_batch(
    x: &[Complex32],
    n: usize,
    plan: &dyn Fft<f32>,
    direction: FftDirection,
    shift: FftShift,
) -> Vec<Complex32> {
    let mut out = x.to_vec();
    let scale = match direction {
        FftDirection::Forward => 1.0,
        FftDirection::Inverse => 1.0 / (n * n) as f32,
    };
    out.par_chunks_mut(n * n).for_each_init(
        || {
            (
                vec![Complex32::default(); n * n],
                vec![Complex32::default(); plan.get_inplace_scratch_len()],
            )
        },
        |(work, scratch), image| {
            if shift.input {
                rotate_half(image, work, n);
            }
            plan.process_with_scratch(image, scratch);
            transpose(image, work, n);
            plan.process_with_scratch(work, scratch);
            transpose(work, image, n);
            if shift.output {
                rotate_half(image, work, n);
            }
            if scale != 1.0 {
                image.iter_mut().for_each(|v| *v *= scale);
            }
        },
    );
    out
}

fn transpose(src: &[Complex32], dst: &mut [Complex32], n: usize) {
    for r in 0..n {
        for c in 0..n {
            dst[c * n + r] = src[r * n + c];
        }
    }
}

/// fftshift of an N x N image in place (N even: the same as ifftshift).
fn rotate_half(image: &mut [Complex32], work: &mut [Complex32], n: usize) {
    let h = n / 2;
    for r in 0..n {
        for c in 0..n {
            work[((r + h) % n) * n + (c + h) % n] = image[r * n + c];
        }
    }
    image.copy_from_slice(work);
}
