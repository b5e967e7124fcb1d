//! Position stitching with the reference's `reassemble_position` semantics (physics-and-model.md §9.2):
//! the central M x M crop of each patch, offsets relative to their mean, each crop zero-padded to the
//! canvas and moved by bilinear translation, summed, and divided by the summed coverage + 1e-9. Canvas
//! pixel (S/2, S/2) is the mean scan position; pixels no patch covers are 0.

use ptycho_kernels::ops::translate::TranslateDirection;
use ptycho_kernels::{Backend, Complex32};

use crate::physics::PhysicsError;

/// Patches sent to the device at once.
const PATCHES_PER_CHUNK: usize = 256;
/// Added to the coverage before dividing, as the reference.
pub const COVERAGE_EPSILON: f64 = 1e-9;

/// A stitched image.
pub struct Stitched {
    /// S x S.
    pub size: usize,
    pub image: Vec<Complex32>,
    /// Σ of the translated crop windows: how much of each pixel the patches cover.
    pub coverage: Vec<f32>,
}

/// A stitching crop M must be between 1 and N and differ from N by an even number.
pub fn check_crop(n: usize, crop: usize) -> Result<(), PhysicsError> {
    if crop == 0 || crop > n || !(n - crop).is_multiple_of(2) {
        return Err(PhysicsError::Input(format!(
            "crop {crop} must be between 1 and N = {n} and differ from N by an even number"
        )));
    }
    Ok(())
}

/// pad = ceil(max |d|) over both axes, made even; S = M + 2·pad.
pub fn canvas_size(relative: &[[f64; 2]], crop: usize) -> (usize, usize) {
    let reach = relative
        .iter()
        .flat_map(|d| [d[0].abs(), d[1].abs()])
        .fold(0.0f64, f64::max);
    let mut pad = reach.ceil() as usize;
    if pad % 2 == 1 {
        pad += 1;
    }
    (pad, crop + 2 * pad)
}

/// Stitch `patches` (B, N, N) placed at `offsets` (B pairs (x, y), in object pixels).
pub fn reassemble<B: Backend>(
    b: &B,
    patches: &[Complex32],
    n: usize,
    offsets: &[[f64; 2]],
    crop: usize,
) -> Result<Stitched, PhysicsError> {
    let count = offsets.len();
    if count == 0 || patches.len() != count * n * n {
        return Err(PhysicsError::Input(format!(
            "{} patch values for {count} offsets of {n} x {n} patches",
            patches.len()
        )));
    }
    check_crop(n, crop)?;
    if let Some(i) = offsets
        .iter()
        .position(|o| !(o[0].is_finite() && o[1].is_finite()))
    {
        return Err(PhysicsError::Input(format!(
            "offset {i} is not finite: {:?}",
            offsets[i]
        )));
    }
    let mean = offsets
        .iter()
        .fold([0.0, 0.0], |acc, o| [acc[0] + o[0], acc[1] + o[1]]);
    let mean = [mean[0] / count as f64, mean[1] / count as f64];
    let relative: Vec<[f64; 2]> = offsets
        .iter()
        .map(|o| [o[0] - mean[0], o[1] - mean[1]])
        .collect();
    let (_, s) = canvas_size(&relative, crop);
    if s > 32_768 {
        return Err(PhysicsError::Input(format!(
            "the offsets span {s} pixels; a canvas that large is not plausible (offsets in pixels?)"
        )));
    }
    let mut numerator = vec![Complex32::default(); s * s];
    let mut coverage = vec![0f32; s * s];
    for first in (0..count).step_by(PATCHES_PER_CHUNK) {
        let k = PATCHES_PER_CHUNK.min(count - first);
        let chunk = b.upload_c64(&[1, k, n, n], &patches[first * n * n..(first + k) * n * n])?;
        let shifts: Vec<f32> = relative[first..first + k]
            .iter()
            .flat_map(|d| [d[0] as f32, d[1] as f32])
            .collect();
        let shifts = b.upload_f32(&[k, 2], &shifts)?;
        let crops = b.recenter(&chunk, crop, crop)?;
        let placed = b.translate(
            &b.recenter(&crops, s, s)?,
            &shifts,
            TranslateDirection::Forward,
        )?;
        let sum = b.download_c64(&b.sum_channels(&placed)?)?;
        let ones = b.upload_f32(&[1, k, crop, crop], &vec![1.0; k * crop * crop])?;
        let windows = b.translate(
            &b.recenter(&ones, s, s)?,
            &shifts,
            TranslateDirection::Forward,
        )?;
        let cover = b.download_f32(&b.sum_channels(&windows)?)?;
        for (acc, v) in numerator.iter_mut().zip(&sum) {
            *acc += v;
        }
        for (acc, v) in coverage.iter_mut().zip(&cover) {
            *acc += v;
        }
    }
    let image = numerator
        .iter()
        .zip(&coverage)
        .map(|(v, &c)| v / (COVERAGE_EPSILON + c as f64) as f32)
        .collect();
    Ok(Stitched {
        size: s,
        image,
        coverage,
    })
}
