//! Layout ops of the physics (physics-and-model.md §4.2, §5.2–5.3): centred pad/crop ("recenter") and the
//! channel sum with its transpose, the channel repeat. Shape rules shared by both backends.

use crate::{KernelError, Result, Tensor};

/// A batch of `images` images from in_h x in_w to out_h x out_w, centred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecenterGeometry {
    pub images: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl RecenterGeometry {
    /// Sizes must differ by an even number of pixels, so the result is centred exactly (the reference's
    /// crop returns N+1 pixels for an odd difference; we refuse it).
    pub fn of<S>(x: &Tensor<S>, out_h: usize, out_w: usize) -> Result<Self> {
        const OP: &str = "recenter";
        let shape = x.shape();
        if shape.len() < 2 {
            return Err(KernelError::Shape {
                op: OP,
                expected: "(..., H, W) images".into(),
                found: shape.to_vec(),
            });
        }
        let (in_h, in_w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        if in_h.abs_diff(out_h) % 2 != 0 || in_w.abs_diff(out_w) % 2 != 0 {
            return Err(KernelError::Shape {
                op: OP,
                expected: format!(
                    "sizes that differ from ({out_h}, {out_w}) by an even number of pixels"
                ),
                found: shape.to_vec(),
            });
        }
        let images = shape[..shape.len() - 2].iter().product();
        Ok(Self {
            images,
            in_h,
            in_w,
            out_h,
            out_w,
        })
    }

    pub fn out_shape(&self, in_shape: &[usize]) -> Vec<usize> {
        let mut s = in_shape[..in_shape.len() - 2].to_vec();
        s.extend([self.out_h, self.out_w]);
        s
    }
}

/// (groups, channels, H, W) for the channel sum: the channel axis is the one before H and W.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelGeometry {
    pub groups: usize,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
}

impl ChannelGeometry {
    pub fn of_sum<S>(x: &Tensor<S>) -> Result<Self> {
        let shape = x.shape();
        if shape.len() < 3 {
            return Err(KernelError::Shape {
                op: "sum_channels",
                expected: "(..., C, H, W)".into(),
                found: shape.to_vec(),
            });
        }
        let r = shape.len();
        Ok(Self {
            groups: shape[..r - 3].iter().product(),
            channels: shape[r - 3],
            h: shape[r - 2],
            w: shape[r - 1],
        })
    }

    pub fn of_repeat<S>(x: &Tensor<S>, channels: usize) -> Result<Self> {
        let shape = x.shape();
        if shape.len() < 2 {
            return Err(KernelError::Shape {
                op: "repeat_channels",
                expected: "(..., H, W)".into(),
                found: shape.to_vec(),
            });
        }
        let r = shape.len();
        Ok(Self {
            groups: shape[..r - 2].iter().product(),
            channels,
            h: shape[r - 2],
            w: shape[r - 1],
        })
    }
}
