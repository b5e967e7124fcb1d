//! Per-sample merge of a group's C patches into one P x P canvas (physics-and-model.md §5.2) and the
//! extraction of C patches from it (§5.3), with their backward passes. Unlike the reference, the merge is
//! per sample for every batch size (its B·C ≥ 64 branch merges the whole batch into one canvas, a
//! defect). The reference's batch-mean centring of the shifts is a no-op (relative offsets sum to zero
//! in each group) and is left out.
//!
//! With the probe-big ring (physics-and-model.md §6.3, §11 P1) the reference divides the whole
//! numerator by the centre-window count + 0.001, so the ring, where the count is 0, comes out × 1000.
//! [`merge_separating_ring`] instead averages only the centre part of each patch by the count and adds
//! the ring part as it is: canvas = Σ T(pad(Mc ⊙ O)) / (count + 0.001) + Σ T(pad((1 − Mc) ⊙ O)). Without
//! the ring the heads are zero outside the centre, so both forms give the same canvas.

use ptycho_kernels::ops::translate::TranslateDirection::{Backward, Forward};
use ptycho_kernels::{Backend, Complex32, KernelError, Tensor};

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
    /// Mc and 1 − Mc as (N, N) complex64, when the ring is merged apart.
    ring_masks: Option<RingMasks<S>>,
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

/// canvas = Σ_c T_{−rel_c}(pad_P(O_c)) / (Σ_c T_{−rel_c}(pad_P(Mc)) + 0.001), per sample, as the reference.
/// `patches` (B, C, N, N) complex64; `relative` (B·C, 2) float32 holding rel = −(position − centroid).
pub fn merge<B: Backend>(
    b: &B,
    patches: &Tensor<B::Storage>,
    relative: &Tensor<B::Storage>,
    p: usize,
) -> Result<Merged<B::Storage>, KernelError> {
    merge_with(b, patches, relative, p, false)
}

/// The merge for the probe-big ring: the centre parts averaged by the count, the ring parts summed
/// (see the module notes).
pub fn merge_separating_ring<B: Backend>(
    b: &B,
    patches: &Tensor<B::Storage>,
    relative: &Tensor<B::Storage>,
    p: usize,
) -> Result<Merged<B::Storage>, KernelError> {
    merge_with(b, patches, relative, p, true)
}

fn merge_with<B: Backend>(
    b: &B,
    patches: &Tensor<B::Storage>,
    relative: &Tensor<B::Storage>,
    p: usize,
    separate_ring: bool,
) -> Result<Merged<B::Storage>, KernelError> {
    let (groups, channels, n) = dims(patches.shape())?;
    let shifts = b.scale(relative, -1.0)?;
    let placed = |t: &Tensor<B::Storage>| {
        b.sum_channels(&b.translate(&b.recenter(t, p, p)?, &shifts, Forward)?)
    };
    let mask: Vec<f32> = centre_mask(n).repeat(groups * channels);
    let count = b.offset(
        &placed(&b.upload_f32(&[groups, channels, n, n], &mask)?)?,
        COUNT_EPSILON,
    )?;
    let (canvas, ring_masks) = if separate_ring {
        let (centre, border) = ring_masks(b, n)?;
        let averaged = b.div_real(&placed(&b.mul(patches, &centre)?)?, &count)?;
        let ring = placed(&b.mul(patches, &border)?)?;
        (b.add(&averaged, &ring)?, Some((centre, border)))
    } else {
        (b.div_real(&placed(patches)?, &count)?, None)
    };
    Ok(Merged {
        canvas,
        count,
        shifts,
        ring_masks,
        channels,
        n,
    })
}

/// Mc and 1 − Mc as (N, N) complex64.
type RingMasks<S> = (Tensor<S>, Tensor<S>);

fn ring_masks<B: Backend>(b: &B, n: usize) -> Result<RingMasks<B::Storage>, KernelError> {
    let mc = centre_mask(n);
    let as_complex = |f: &dyn Fn(f32) -> f32| -> Vec<Complex32> {
        mc.iter().map(|&m| Complex32::new(f(m), 0.0)).collect()
    };
    Ok((
        b.upload_c64(&[n, n], &as_complex(&|m| m))?,
        b.upload_c64(&[n, n], &as_complex(&|m| 1.0 - m))?,
    ))
}

/// ∂L/∂patches (B, C, N, N) from ∂L/∂canvas (B, P, P): the adjoint of the merge (the count is data).
pub fn merge_backward<B: Backend>(
    b: &B,
    merged: &Merged<B::Storage>,
    grad_canvas: &Tensor<B::Storage>,
) -> Result<Tensor<B::Storage>, KernelError> {
    let spread = |g: &Tensor<B::Storage>| {
        let per_patch = b.repeat_channels(g, merged.channels)?;
        b.recenter(
            &b.translate(&per_patch, &merged.shifts, Backward)?,
            merged.n,
            merged.n,
        )
    };
    let averaged = spread(&b.div_real(grad_canvas, &merged.count)?)?;
    match &merged.ring_masks {
        None => Ok(averaged),
        Some((centre, border)) => b.add(
            &b.mul(&averaged, centre)?,
            &b.mul(&spread(grad_canvas)?, border)?,
        ),
    }
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
