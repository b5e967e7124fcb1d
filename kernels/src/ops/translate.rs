//! Bilinear translation with per-corner zero fill (physics-and-model.md §4.1) and its transpose: the
//! shape rules both backends share. Each image of the batch has its own shift (tx, ty); unlike the
//! reference, fewer shifts than images is an error rather than a silent cyclic reuse.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslateDirection {
    /// out = T_t(x)
    Forward,
    /// out = T_tᵀ(x): the gradient of the forward with respect to its input.
    Backward,
}

/// `images` H x W images, one shift each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranslateGeometry {
    pub images: usize,
    pub h: usize,
    pub w: usize,
}

impl TranslateGeometry {
    /// `x` is (..., H, W) of float32 or complex64; `shifts` is (images, 2) float32 holding (tx, ty).
    pub fn of<S>(x: &Tensor<S>, shifts: &Tensor<S>) -> Result<Self> {
        const OP: &str = "translate";
        require_dtype(OP, shifts, Dtype::F32)?;
        let shape = x.shape();
        if shape.len() < 2 {
            return Err(KernelError::Shape {
                op: OP,
                expected: "(..., H, W) images".into(),
                found: shape.to_vec(),
            });
        }
        let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let images: usize = shape[..shape.len() - 2].iter().product();
        if shifts.shape() != [images, 2] {
            return Err(KernelError::Shape {
                op: OP,
                expected: format!("shifts of shape [{images}, 2] (one (tx, ty) per image)"),
                found: shifts.shape().to_vec(),
            });
        }
        Ok(Self { images, h, w })
    }
}

/// Integer part k = floor(-t) and fraction f = -t - k of a shift, in f32 as both backends compute it.
pub fn split_shift(t: f32) -> (i64, f32) {
    let s = -t;
    let k = s.floor();
    (k as i64, s - k)
}
