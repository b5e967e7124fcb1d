use std::ops::{Add, Mul};

use rayon::prelude::*;

use crate::ops::translate::{split_shift, TranslateDirection, TranslateGeometry};

/// Forward bilinear translation of each image, or its transpose, exactly as shaders/translate.wgsl.
pub(super) fn translate<T>(
    x: &[T],
    shifts: &[f32],
    g: TranslateGeometry,
    direction: TranslateDirection,
) -> Vec<T>
where
    T: Copy + Default + Send + Sync + Add<Output = T> + Mul<f32, Output = T>,
{
    let (h, w) = (g.h as i64, g.w as i64);
    let hw = g.h * g.w;
    let mut out = vec![T::default(); x.len()];
    if hw == 0 {
        return out;
    }
    out.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(b, (out, img))| {
            let (kx, fx) = split_shift(shifts[2 * b]);
            let (ky, fy) = split_shift(shifts[2 * b + 1]);
            let weights = [
                (1.0 - fx) * (1.0 - fy),
                fx * (1.0 - fy),
                (1.0 - fx) * fy,
                fx * fy,
            ];
            let at = |r: i64, c: i64| {
                if r < 0 || c < 0 || r >= h || c >= w {
                    T::default()
                } else {
                    img[(r * w + c) as usize]
                }
            };
            for y in 0..h {
                for x in 0..w {
                    let corners = match direction {
                        TranslateDirection::Forward => {
                            let (y0, x0) = (y + ky, x + kx);
                            [
                                at(y0, x0),
                                at(y0, x0 + 1),
                                at(y0 + 1, x0),
                                at(y0 + 1, x0 + 1),
                            ]
                        }
                        TranslateDirection::Backward => {
                            let (r, c) = (y - ky, x - kx);
                            [at(r, c), at(r, c - 1), at(r - 1, c), at(r - 1, c - 1)]
                        }
                    };
                    out[(y * w + x) as usize] = corners[0] * weights[0]
                        + corners[1] * weights[1]
                        + corners[2] * weights[2]
                        + corners[3] * weights[3];
                }
            }
        });
    out
}
