//! The network's other layers (physics-and-model.md §6): activations, 2 x 2 max pooling, nearest 2x
//! upsampling, channel slicing, spatial zero padding, the complex combination amp·e^{iφ}, and the
//! channels-first/channels-last transposes between the physics (B, C, H, W) and the network (NHWC).
//! Shape rules shared by both backends; every op has a backward pass.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Sigmoid,
    /// s·tanh(x): the phase head uses s = π.
    ScaledTanh(f32),
    /// x·sigmoid(x).
    Swish,
    /// ln(1 + e^x).
    Softplus,
}

impl Activation {
    pub fn forward_entry(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid_forward",
            Activation::ScaledTanh(_) => "scaled_tanh",
            Activation::Swish => "swish",
            Activation::Softplus => "softplus_forward",
        }
    }

    pub fn backward_entry(self) -> &'static str {
        match self {
            Activation::Relu => "relu_backward",
            Activation::Sigmoid => "sigmoid_backward",
            Activation::ScaledTanh(_) => "scaled_tanh_backward",
            Activation::Swish => "swish_backward",
            Activation::Softplus => "softplus_backward",
        }
    }

    pub fn scale(self) -> f32 {
        match self {
            Activation::ScaledTanh(s) => s,
            _ => 1.0,
        }
    }

    /// The activation of one value (the CPU twin and the WGSL compute the same formulas).
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => sigmoid(x),
            Activation::ScaledTanh(s) => s * x.tanh(),
            Activation::Swish => x * sigmoid(x),
            Activation::Softplus => softplus(x),
        }
    }

    /// d activation / dx at x.
    pub fn derivative(self, x: f32) -> f32 {
        match self {
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            Activation::ScaledTanh(s) => {
                let t = x.tanh();
                s * (1.0 - t * t)
            }
            Activation::Swish => {
                let s = sigmoid(x);
                s + x * s * (1.0 - s)
            }
            Activation::Softplus => sigmoid(x),
        }
    }
}

/// 1/(1 + e^−x), without overflow for large |x|.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// ln(1 + e^x) = max(x, 0) + ln(1 + e^−|x|).
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// A float32 NHWC tensor's dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nhwc {
    pub b: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Nhwc {
    pub fn of<S>(op: &'static str, x: &Tensor<S>) -> Result<Self> {
        require_dtype(op, x, Dtype::F32)?;
        match *x.shape() {
            [b, h, w, c] if b * h * w * c > 0 => Ok(Self { b, h, w, c }),
            _ => Err(KernelError::Shape {
                op,
                expected: "(B, H, W, C) float32".into(),
                found: x.shape().to_vec(),
            }),
        }
    }

    /// For pooling: H and W even.
    pub fn of_even<S>(op: &'static str, x: &Tensor<S>) -> Result<Self> {
        let d = Self::of(op, x)?;
        if d.h % 2 != 0 || d.w % 2 != 0 {
            return Err(KernelError::Shape {
                op,
                expected: "(B, H, W, C) with H and W even".into(),
                found: x.shape().to_vec(),
            });
        }
        Ok(d)
    }

    /// The NHWC dimensions of a (B, C, H, W) float32 tensor.
    pub fn of_channels_first<S>(op: &'static str, x: &Tensor<S>) -> Result<Self> {
        require_dtype(op, x, Dtype::F32)?;
        match *x.shape() {
            [b, c, h, w] if b * h * w * c > 0 => Ok(Self { b, h, w, c }),
            _ => Err(KernelError::Shape {
                op,
                expected: "(B, C, H, W) float32".into(),
                found: x.shape().to_vec(),
            }),
        }
    }

    pub fn channels_first_shape(&self) -> Vec<usize> {
        vec![self.b, self.c, self.h, self.w]
    }

    pub fn shape(&self) -> Vec<usize> {
        vec![self.b, self.h, self.w, self.c]
    }
}

/// Two float32 tensors of one shape (an op's input and the gradient of its output, or amp and phase).
pub fn check_same<S>(op: &'static str, a: &Tensor<S>, b: &Tensor<S>) -> Result<()> {
    require_dtype(op, a, Dtype::F32)?;
    require_dtype(op, b, Dtype::F32)?;
    if a.shape() != b.shape() {
        return Err(KernelError::Shape {
            op,
            expected: format!("the shape {:?}", a.shape()),
            found: b.shape().to_vec(),
        });
    }
    Ok(())
}

/// `count` channels from `start` must lie within `c`.
pub fn check_slice(op: &'static str, d: &Nhwc, start: usize, count: usize) -> Result<()> {
    if count == 0 || start + count > d.c {
        return Err(KernelError::Shape {
            op,
            expected: format!("channels {start}..{} within {}", start + count, d.c),
            found: d.shape(),
        });
    }
    Ok(())
}

/// `t` must have exactly `shape`.
pub fn require_shape<S>(op: &'static str, t: &Tensor<S>, shape: &[usize]) -> Result<()> {
    if t.shape() != shape {
        return Err(KernelError::Shape {
            op,
            expected: format!("{shape:?}"),
            found: t.shape().to_vec(),
        });
    }
    Ok(())
}

/// The output geometry of a crop by `pad` of x (B, H + 2 pad, W + 2 pad, C).
pub fn crop_geometry<S>(x: &Tensor<S>, pad: usize) -> Result<Nhwc> {
    let d = Nhwc::of("crop_spatial", x)?;
    if d.h <= 2 * pad || d.w <= 2 * pad {
        return Err(KernelError::Shape {
            op: "crop_spatial",
            expected: format!("H and W above 2 x {pad}"),
            found: x.shape().to_vec(),
        });
    }
    Ok(Nhwc {
        h: d.h - 2 * pad,
        w: d.w - 2 * pad,
        ..d
    })
}
