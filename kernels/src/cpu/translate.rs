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
            let blend = |c: [T; 4]| {
                c[0] * weights[0] + c[1] * weights[1] + c[2] * weights[2] + c[3] * weights[3]
            };
            // Output (y, x) blends rows ra, rb = ra + step and columns x + ca, x + cb = x + ca +
            // step of the input, in the corner order [(ra, ca), (ra, cb), (rb, ca), (rb, cb)].
            let (step, ca) = match direction {
                TranslateDirection::Forward => (1, kx),
                TranslateDirection::Backward => (-1, -kx),
            };
            let cb = ca + step;
            // Where all four corners lie inside: plain slices there, which vectorise.
            let (lo, hi) = ((-ca.min(cb)).clamp(0, w), (w - ca.max(cb)).clamp(0, w));
            for (y, out_row) in (0..h).zip(out.chunks_exact_mut(g.w)) {
                let ra = match direction {
                    TranslateDirection::Forward => y + ky,
                    TranslateDirection::Backward => y - ky,
                };
                let rb = ra + step;
                let corners = |x: i64| {
                    [
                        at(ra, x + ca),
                        at(ra, x + cb),
                        at(rb, x + ca),
                        at(rb, x + cb),
                    ]
                };
                let (lo, hi) = if (0..h).contains(&ra) && (0..h).contains(&rb) && lo < hi {
                    (lo, hi)
                } else {
                    (w, w)
                };
                for x in (0..lo).chain(hi..w) {
                    out_row[x as usize] = blend(corners(x));
                }
                if lo < hi {
                    let row =
                        |r: i64, c: i64| &img[(r * w + lo + c) as usize..][..(hi - lo) as usize];
                    let (aa, ab, ba, bb) = (row(ra, ca), row(ra, cb), row(rb, ca), row(rb, cb));
                    let inside = &mut out_row[lo as usize..hi as usize];
                    for (i, o) in inside.iter_mut().enumerate() {
                        *o = blend([aa[i], ab[i], ba[i], bb[i]]);
                    }
                }
            }
        });
    out
}
