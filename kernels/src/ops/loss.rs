//! The PINN losses per element and their gradients (physics-and-model.md §7), and the sum reduction:
//! shape rules shared by both backends. See shaders/loss.wgsl for the formulas.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

/// Î is clamped to this before the log, as in shaders/loss.wgsl.
pub const MIN_INTENSITY: f32 = 1e-12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Î − Y·log Î (the reference's loss, without the Stirling term).
    Poisson,
    /// Î − Y − Y·log(Î/Y): the same gradient, better conditioned.
    Deviance,
    /// |T − Â|.
    Mae,
}

impl LossKind {
    pub fn terms_entry(self) -> &'static str {
        match self {
            LossKind::Poisson => "poisson_terms",
            LossKind::Deviance => "deviance_terms",
            LossKind::Mae => "mae_terms",
        }
    }

    pub fn grad_entry(self) -> &'static str {
        match self {
            LossKind::Poisson | LossKind::Deviance => "poisson_grad",
            LossKind::Mae => "mae_grad",
        }
    }
}

/// Predicted and target amplitudes: float32 of one shape.
pub fn check_pair<S>(op: &'static str, pred: &Tensor<S>, target: &Tensor<S>) -> Result<()> {
    require_dtype(op, pred, Dtype::F32)?;
    require_dtype(op, target, Dtype::F32)?;
    if pred.shape() != target.shape() {
        return Err(KernelError::Shape {
            op,
            expected: format!("a target of the prediction's shape {:?}", pred.shape()),
            found: target.shape().to_vec(),
        });
    }
    Ok(())
}
