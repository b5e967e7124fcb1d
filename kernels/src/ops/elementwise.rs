//! Complex elementwise ops: the shape rules both backends share.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Mul,
    MulConj,
    Add,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Mul => "mul",
            BinaryOp::MulConj => "mul_conj",
            BinaryOp::Add => "add",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RealOp {
    Abs,
    Abs2,
}

impl RealOp {
    pub fn name(self) -> &'static str {
        match self {
            RealOp::Abs => "abs",
            RealOp::Abs2 => "abs2",
        }
    }
}

/// Lengths of a broadcasting binary op: `b` repeats every `b_len` elements of `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinaryGeometry {
    pub len: usize,
    pub b_len: usize,
}

impl BinaryGeometry {
    /// `b` must have a's shape or a trailing part of it (a probe (N, N) against patches (B, C, N, N)).
    pub fn of<S>(op: BinaryOp, a: &Tensor<S>, b: &Tensor<S>) -> Result<Self> {
        require_dtype(op.name(), a, Dtype::C64)?;
        require_dtype(op.name(), b, Dtype::C64)?;
        let (sa, sb) = (a.shape(), b.shape());
        if sb.len() > sa.len() || sa[sa.len() - sb.len()..] != *sb || b.is_empty() {
            return Err(KernelError::Shape {
                op: op.name(),
                expected: format!("b with shape {sa:?} or a trailing part of it"),
                found: sb.to_vec(),
            });
        }
        Ok(Self {
            len: a.len(),
            b_len: b.len(),
        })
    }
}

/// `modulus_grad(a, g)`: complex a and real g of the same shape.
pub struct ModulusGradGeometry;

impl ModulusGradGeometry {
    pub fn of<S>(a: &Tensor<S>, g: &Tensor<S>) -> Result<Self> {
        require_dtype("modulus_grad", a, Dtype::C64)?;
        require_dtype("modulus_grad", g, Dtype::F32)?;
        if a.shape() != g.shape() {
            return Err(KernelError::Shape {
                op: "modulus_grad",
                expected: format!("a gradient of shape {:?}", a.shape()),
                found: g.shape().to_vec(),
            });
        }
        Ok(Self)
    }
}

pub(crate) fn require_complex<S>(op: &'static str, a: &Tensor<S>) -> Result<()> {
    require_dtype(op, a, Dtype::C64)
}
