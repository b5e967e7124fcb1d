//! 3 x 3 convolution, stride 1, 'same' zero padding, with bias (physics-and-model.md §6.1): the shape
//! rules both backends share. Layout NHWC, kernel (kh, kw, cin, cout) as Keras stores it, so reference
//! weights map one to one. Cross-correlation:
//!   `out[b, y, x, o] = bias[o] + Σ_{ky, kx, i} in[b, y + ky − 1, x + kx − 1, i] · k[ky, kx, i, o]`
//! Backward: the input gradient is a convolution of the output gradient with the kernel flipped in
//! space and transposed in channels; the kernel gradient is Σ over pixels of in ⊗ grad_out; the bias
//! gradient is Σ over pixels of grad_out.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

/// Kernel side (3 x 3).
pub const KERNEL_SIZE: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
}

impl ConvGeometry {
    /// Pixels of the batch: the rows of the implicit GEMM.
    pub fn pixels(&self) -> usize {
        self.batch * self.h * self.w
    }

    /// x (B, H, W, Cin) and kernel (3, 3, Cin, Cout), float32.
    pub fn of<S>(op: &'static str, x: &Tensor<S>, kernel: &Tensor<S>) -> Result<Self> {
        require_dtype(op, x, Dtype::F32)?;
        require_dtype(op, kernel, Dtype::F32)?;
        let (batch, h, w, cin) = match *x.shape() {
            [b, h, w, c] if b * h * w * c > 0 => (b, h, w, c),
            _ => {
                return Err(KernelError::Shape {
                    op,
                    expected: "input (B, H, W, Cin)".into(),
                    found: x.shape().to_vec(),
                })
            }
        };
        let cout = match *kernel.shape() {
            [KERNEL_SIZE, KERNEL_SIZE, i, o] if i == cin && o > 0 => o,
            _ => {
                return Err(KernelError::Shape {
                    op,
                    expected: format!("kernel (3, 3, {cin}, Cout)"),
                    found: kernel.shape().to_vec(),
                })
            }
        };
        Ok(Self {
            batch,
            h,
            w,
            cin,
            cout,
        })
    }

    /// The geometry of the parameter gradients from the forward's input x (B, H, W, Cin) and Cout.
    pub fn of_params<S>(op: &'static str, x: &Tensor<S>, cout: usize) -> Result<Self> {
        require_dtype(op, x, Dtype::F32)?;
        match *x.shape() {
            [batch, h, w, cin] if batch * h * w * cin * cout > 0 => Ok(Self {
                batch,
                h,
                w,
                cin,
                cout,
            }),
            _ => Err(KernelError::Shape {
                op,
                expected: "input (B, H, W, Cin) and a non-empty output gradient".into(),
                found: x.shape().to_vec(),
            }),
        }
    }

    /// The forward's bias must be (Cout,).
    pub fn check_bias<S>(&self, op: &'static str, bias: &Tensor<S>) -> Result<()> {
        require_dtype(op, bias, Dtype::F32)?;
        if bias.shape() != [self.cout] {
            return Err(KernelError::Shape {
                op,
                expected: format!("bias ({},)", self.cout),
                found: bias.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// A gradient of the output must be (B, H, W, Cout).
    pub fn check_grad_out<S>(&self, op: &'static str, g: &Tensor<S>) -> Result<()> {
        require_dtype(op, g, Dtype::F32)?;
        if g.shape() != [self.batch, self.h, self.w, self.cout] {
            return Err(KernelError::Shape {
                op,
                expected: format!(
                    "output gradient ({}, {}, {}, {})",
                    self.batch, self.h, self.w, self.cout
                ),
                found: g.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// The geometry of the input-gradient convolution from grad_out (B, H, W, Cout) and the kernel.
    pub fn of_backward_input<S>(
        op: &'static str,
        grad_out: &Tensor<S>,
        kernel: &Tensor<S>,
    ) -> Result<Self> {
        require_dtype(op, grad_out, Dtype::F32)?;
        require_dtype(op, kernel, Dtype::F32)?;
        match (grad_out.shape(), kernel.shape()) {
            (&[b, h, w, o], &[KERNEL_SIZE, KERNEL_SIZE, i, ko]) if ko == o && b * h * w * o * i > 0 => {
                Ok(Self {
                    batch: b,
                    h,
                    w,
                    cin: i,
                    cout: o,
                })
            }
            _ => Err(KernelError::Shape {
                op,
                expected: format!(
                    "output gradient (B, H, W, Cout) and kernel (3, 3, Cin, Cout), kernel found {:?}",
                    kernel.shape()
                ),
                found: grad_out.shape().to_vec(),
            }),
        }
    }
}
