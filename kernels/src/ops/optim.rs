//! Adam (physics-and-model.md §8: β1 0.9, β2 0.999, ε 1e-7, the Keras defaults) in the form Keras 3
//! computes it, updating a parameter and its moments in place.

use super::require_dtype;
use crate::{Dtype, KernelError, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }
}

impl AdamConfig {
    /// α = lr · sqrt(1 − β2^t) / (1 − β1^t) for step t ≥ 1.
    pub fn alpha(&self, step: u64) -> f64 {
        let t = step.max(1) as i32;
        self.learning_rate * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t))
    }
}

/// Parameter, gradient and both moments: float32 of one shape.
pub fn check_adam<S>(
    param: &Tensor<S>,
    grad: &Tensor<S>,
    m: &Tensor<S>,
    v: &Tensor<S>,
) -> Result<()> {
    const OP: &str = "adam_update";
    for t in [param, grad, m, v] {
        require_dtype(OP, t, Dtype::F32)?;
        if t.shape() != param.shape() {
            return Err(KernelError::Shape {
                op: OP,
                expected: format!("the parameter's shape {:?}", param.shape()),
                found: t.shape().to_vec(),
            });
        }
    }
    Ok(())
}
