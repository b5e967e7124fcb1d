use rayon::prelude::*;

use crate::ops::ptycho::{split_origin, PatchGeometry};
use crate::Complex32;

/// Bilinear N x N patches of `object` at `origins`, each corner zero outside, as shaders/ptycho.wgsl.
pub(super) fn extract(object: &[Complex32], origins: &[f32], g: PatchGeometry) -> Vec<Complex32> {
    let (n, h, w) = (g.n, g.h as i64, g.w as i64);
    let mut out = vec![Complex32::default(); g.patches * n * n];
    if n == 0 {
        return out;
    }
    let at = |r: i64, c: i64| {
        if r < 0 || c < 0 || r >= h || c >= w {
            Complex32::default()
        } else {
            object[(r * w + c) as usize]
        }
    };
    out.par_chunks_mut(n * n)
        .enumerate()
        .for_each(|(j, patch)| {
            let (kx, fx) = split_origin(origins[2 * j]);
            let (ky, fy) = split_origin(origins[2 * j + 1]);
            for r in 0..n {
                let y = ky + r as i64;
                for c in 0..n {
                    let x = kx + c as i64;
                    patch[r * n + c] = at(y, x) * ((1.0 - fx) * (1.0 - fy))
                        + at(y, x + 1) * (fx * (1.0 - fy))
                        + at(y + 1, x) * ((1.0 - fx) * fy)
                        + at(y + 1, x + 1) * (fx * fy);
                }
            }
        });
    out
}

/// The adjoint of [`extract`] in gather form: each object pixel sums, over the patches its bin lists
/// (`index`: starts then entries) in order, the bilinear weights of the patch pixels that read it.
/// `patches` holds M patches, or one shared by every origin.
pub(super) fn scatter(
    patches: &[Complex32],
    origins: &[f32],
    index: &[f32],
    bin: usize,
    bins_x: usize,
    g: PatchGeometry,
) -> Vec<Complex32> {
    let (n, w) = (g.n as i64, g.w);
    let nn = g.n * g.n;
    let shared = patches.len() == nn;
    let bins = bins_x * g.h.div_ceil(bin).max(1);
    let entries = &index[bins + 1..];
    // Integer parts and fractions of every origin, once.
    let split: Vec<(i64, f32, i64, f32)> = origins
        .chunks(2)
        .map(|o| {
            let (kx, fx) = split_origin(o[0]);
            let (ky, fy) = split_origin(o[1]);
            (kx, fx, ky, fy)
        })
        .collect();
    let mut out = vec![Complex32::default(); g.h * g.w];
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(py, row)| {
            for (px, value) in row.iter_mut().enumerate() {
                let b = (py / bin) * bins_x + px / bin;
                let (first, last) = (index[b] as usize, index[b + 1] as usize);
                let mut sum = Complex32::default();
                for &entry in &entries[first..last] {
                    let j = entry as usize;
                    let (kx, fx, ky, fy) = split[j];
                    let (r0, c0) = (py as i64 - ky, px as i64 - kx);
                    // Rows r0 - 1 and r0 (columns likewise) of the patch read this pixel.
                    if r0 < 0 || r0 > n || c0 < 0 || c0 > n {
                        continue;
                    }
                    let patch = if shared {
                        patches
                    } else {
                        &patches[j * nn..(j + 1) * nn]
                    };
                    for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                        let r = r0 - dy;
                        if r < 0 || r >= n {
                            continue;
                        }
                        for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                            let c = c0 - dx;
                            if c < 0 || c >= n {
                                continue;
                            }
                            sum += patch[(r * n + c) as usize] * (wx * wy);
                        }
                    }
                }
                *value = sum;
            }
        });
    out
}

/// a·Ψ/|Ψ| (a where Ψ = 0) and the residual (|Ψ| − a)², element by element.
pub(super) fn modulus_project(
    spectrum: &[Complex32],
    amplitude: &[f32],
) -> (Vec<Complex32>, Vec<f32>) {
    spectrum
        .par_iter()
        .zip(amplitude.par_iter())
        .map(|(&s, &a)| {
            let m = s.norm();
            let projected = if m > 0.0 {
                s * (a / m)
            } else {
                Complex32::new(a, 0.0)
            };
            (projected, (m - a) * (m - a))
        })
        .unzip()
}

/// Σ conj(a)·b over each run of `per` elements, accumulated in f64.
pub(super) fn pattern_dot(a: &[Complex32], b: &[Complex32], per: usize) -> Vec<Complex32> {
    a.par_chunks(per.max(1))
        .zip(b.par_chunks(per.max(1)))
        .map(|(a, b)| {
            let (re, im) = a.iter().zip(b).fold((0.0f64, 0.0f64), |(re, im), (x, y)| {
                let (xr, xi, yr, yi) = (x.re as f64, x.im as f64, y.re as f64, y.im as f64);
                (re + xr * yr + xi * yi, im + xr * yi - xi * yr)
            });
            Complex32::new(re as f32, im as f32)
        })
        .collect()
}
