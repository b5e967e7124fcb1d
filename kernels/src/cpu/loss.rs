use rayon::prelude::*;

use crate::ops::loss::{LossKind, MIN_INTENSITY};

pub(super) fn terms(kind: LossKind, pred: &[f32], target: &[f32]) -> Vec<f32> {
    pred.par_iter()
        .zip(target.par_iter())
        .map(|(&a, &t)| {
            let p = (a * a).max(MIN_INTENSITY);
            let y = t * t;
            match kind {
                LossKind::Poisson => p - y * p.ln(),
                LossKind::Deviance if y > 0.0 => p - y - y * (p / y).ln(),
                LossKind::Deviance => p - y,
                LossKind::Mae => (t - a).abs(),
            }
        })
        .collect()
}

pub(super) fn grad(kind: LossKind, pred: &[f32], target: &[f32], scale: f32) -> Vec<f32> {
    pred.par_iter()
        .zip(target.par_iter())
        .map(|(&a, &t)| match kind {
            LossKind::Poisson | LossKind::Deviance => {
                let a = a.abs().max(MIN_INTENSITY.sqrt()) * if a >= 0.0 { 1.0 } else { -1.0 };
                scale * (2.0 * a - 2.0 * t * t / a)
            }
            LossKind::Mae => {
                scale
                    * if a > t {
                        1.0
                    } else if a < t {
                        -1.0
                    } else {
                        0.0
                    }
            }
        })
        .collect()
}
