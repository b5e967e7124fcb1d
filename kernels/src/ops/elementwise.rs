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

/// A complex tensor with a real one of the same shape (`modulus_grad`, `div_real`).
pub struct ComplexRealPair;

impl ComplexRealPair {
    pub fn of<S>(op: &'static str, a: &Tensor<S>, r: &Tensor<S>) -> Result<Self> {
        require_dtype(op, a, Dtype::C64)?;
        require_dtype(op, r, Dtype::F32)?;
        if a.shape() != r.shape() {
            return Err(KernelError::Shape {
                op,
                expected: format!("a real operand of shape {:?}", a.shape()),
                found: r.shape().to_vec(),
            });
        }
        Ok(Self)
    }
}

pub(crate) fn require_complex<S>(op: &'static str, a: &Tensor<S>) -> Result<()> {
    require_dtype(op, a, Dtype::C64)
}
