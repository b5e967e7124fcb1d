//! Per-sample merge of a group's C patches into one P x P canvas (physics-and-model.md §5.2) and the
//! extraction of C patches from it (§5.3), with their backward passes. Unlike the reference, the merge is
//! per sample for every batch size (its B·C ≥ 64 branch merges the whole batch into one canvas, a
//! defect). The reference's batch-mean centring of the shifts is a no-op (relative offsets sum to zero
//! in each group) and is left out.

use ptycho_kernels::ops::translate::TranslateDirection::{Backward, Forward};
use ptycho_kernels::{Backend, KernelError, Tensor};

/// Added to the overlap count before dividing, as the reference.
pub const COUNT_EPSILON: f32 = 0.001;

/// The centre mask Mc of an N x N patch: 1 on [N/4, 3N/4)², else 0.
pub fn centre_mask(n: usize) -> Vec<f32> {
    let inside = |i: usize| (n / 4..3 * n / 4).contains(&i);
    (0..n * n)
        .map(|i| {
            if inside(i / n) && inside(i % n) {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// A merged canvas and what its backward pass needs.
pub struct Merged<S> {
    /// (B, P, P) complex64.
    pub canvas: Tensor<S>,
    /// Σ_c T(pad(Mc)) + 0.001, (B, P, P) float32.
    count: Tensor<S>,
    /// −rel per patch, (B·C, 2).
    shifts: Tensor<S>,
    channels: usize,
    n: usize,
}

fn dims(patches_shape: &[usize]) -> Result<(usize, usize, usize), KernelError> {
    match *patches_shape {
        [b, c, n, m] if n == m => Ok((b, c, n)),
        _ => Err(KernelError::Shape {
            op: "merge",
            expected: "patches (B, C, N, N)".into(),
            found: patches_shape.to_vec(),
        }),
    }
}

/// canvas = Σ_c T_{−rel_c}(pad_P(O_c)) / (Σ_c T_{−rel_c}(pad_P(Mc)) + 0.001), per sample.
/// `patches` (B, C, N, N) complex64; `relative` (B·C, 2) float32 holding rel = −(position − centroid).
pub fn merge<B: Backend>(
    b: &B,
    patches: &Tensor<B::Storage>,
    relative: &Tensor<B::Storage>,
    p: usize,
) -> Result<Merged<B::Storage>, KernelError> {
    let (groups, channels, n) = dims(patches.shape())?;
    let shifts = b.scale(relative, -1.0)?;
    let num = b.sum_channels(&b.translate(&b.recenter(patches, p, p)?, &shifts, Forward)?)?;
    let mask: Vec<f32> = centre_mask(n).repeat(groups * channels);
    let mask = b.upload_f32(&[groups, channels, n, n], &mask)?;
    let count = b.offset(
        &b.sum_channels(&b.translate(&b.recenter(&mask, p, p)?, &shifts, Forward)?)?,
        COUNT_EPSILON,
    )?;
    let canvas = b.div_real(&num, &count)?;
    Ok(Merged {
        canvas,
        count,
        shifts,
        channels,
        n,
    })
}

/// ∂L/∂patches (B, C, N, N) from ∂L/∂canvas (B, P, P): the adjoint of the merge (the count is data).
pub fn merge_backward<B: Backend>(
    b: &B,
    merged: &Merged<B::Storage>,
    grad_canvas: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, KernelError> {
    let per_patch = b.repeat_channels(&b.div_real(grad_canvas, &merged.count)?, merged.channels)?;
    b.recenter(
        &b.translate(&per_patch, &merged.shifts, Backward)?,
        merged.n,
        merged.n,
    )
}

/// patch_c = crop_N(T_{+rel_c}(canvas)) for each of the C offsets of each sample: (B, C, N, N).
pub fn extract<B: Backend>(
    b: &B,
    canvas: &Tensor<B::Storage>,
    relative: &Tensor<B::Storage>,
    channels: usize,
    n: usize,
) -> Result<Tensor<B::Storage>, KernelError> {
    let moved = b.translate(&b.repeat_channels(canvas, channels)?, relative, Forward)?;
    b.recenter(&moved, n, n)
}

/// ∂L/∂canvas (B, P, P) from ∂L/∂patches (B, C, N, N): the adjoint of the extraction.
pub fn extract_backward<B: Backend>(
    b: &B,
    grad_patches: &Tensor<B::Storage>,
    relative: &Tensor<B::Storage>,
    p: usize,
) -> Result<Tensor<B::Storage>, KernelError> {
    b.sum_channels(&b.translate(&b.recenter(grad_patches, p, p)?, relative, Backward)?)
}

/// Host helper: (B·C, 2) relative offsets from (x, y) pairs.
pub fn relative_tensor<B: Backend>(
    b: &B,
    rel: &[[f32; 2]],
) -> Result<Tensor<B::Storage>, KernelError> {
    let flat: Vec<f32> = rel.iter().flatten().copied().collect();
    b.upload_f32(&[rel.len(), 2], &flat)
}
