//! CPU twin of shaders/conv.wgsl: the same sums, pixel by pixel (rayon across rows), the kernel
//! gradient summed per image and then over images in order, so results do not depend on threads.

use rayon::prelude::*;

use crate::ops::conv::{ConvGeometry, KERNEL_SIZE};

/// Call `f(source pixel, tap)` for each of the 3 x 3 taps of pixel (b, y, x) whose source pixel
/// (y + sign·(ky − 1), x + sign·(kx − 1)) lies inside the image: sign 1 gathers the forward's input,
/// −1 the input gradient's output gradient. tap = ky·3 + kx; pixels are flat (b, y, x) indices.
fn for_each_tap(
    g: &ConvGeometry,
    b: usize,
    y: usize,
    x: usize,
    sign: isize,
    mut f: impl FnMut(usize, usize),
) {
    for ky in 0..KERNEL_SIZE {
        let sy = y as isize + sign * (ky as isize - 1);
        if sy < 0 || sy >= g.h as isize {
            continue;
        }
        for kx in 0..KERNEL_SIZE {
            let sx = x as isize + sign * (kx as isize - 1);
            if sx < 0 || sx >= g.w as isize {
                continue;
            }
            f(
                (b * g.h + sy as usize) * g.w + sx as usize,
                ky * KERNEL_SIZE + kx,
            );
        }
    }
}

/// out (B, H, W, Cout) = bias + Σ in ⋆ kernel.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<f32> {
    let (h, w, cin, cout) = (g.h, g.w, g.cin, g.cout);
    let mut out = vec![0f32; g.pixels() * cout];
    out.par_chunks_mut(w * cout)
        .enumerate()
        .for_each(|(row, out_row)| {
            let (b, y) = (row / h, row % h);
            for xx in 0..w {
                let o = &mut out_row[xx * cout..(xx + 1) * cout];
                o.copy_from_slice(bias);
                for_each_tap(g, b, y, xx, 1, |pixel, tap| {
                    for i in 0..cin {
                        let v = x[pixel * cin + i];
                        let k = &kernel[(tap * cin + i) * cout..][..cout];
                        for (acc, kv) in o.iter_mut().zip(k) {
                            *acc += v * kv;
                        }
                    }
                });
            }
        });
    out
}

/// ∂L/∂in (B, H, W, Cin) from ∂L/∂out (B, H, W, Cout).
pub(super) fn backward_input(g: &ConvGeometry, grad_out: &[f32], kernel: &[f32]) -> Vec<f32> {
    let (h, w, cin, cout) = (g.h, g.w, g.cin, g.cout);
    let mut out = vec![0f32; g.pixels() * cin];
    out.par_chunks_mut(w * cin)
        .enumerate()
        .for_each(|(row, out_row)| {
            let (b, y) = (row / h, row % h);
            for xx in 0..w {
                let o = &mut out_row[xx * cin..(xx + 1) * cin];
                for_each_tap(g, b, y, xx, -1, |pixel, tap| {
                    let src = &grad_out[pixel * cout..][..cout];
                    for (i, acc) in o.iter_mut().enumerate() {
                        let k = &kernel[(tap * cin + i) * cout..][..cout];
                        *acc += src.iter().zip(k).map(|(a, b)| a * b).sum::<f32>();
                    }
                });
            }
        });
    out
}

/// (∂L/∂kernel (3, 3, Cin, Cout), ∂L/∂bias (Cout)).
pub(super) fn backward_params(
    g: &ConvGeometry,
    x: &[f32],
    grad_out: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (h, w, cin, cout) = (g.h, g.w, g.cin, g.cout);
    let taps = KERNEL_SIZE * KERNEL_SIZE * cin * cout;
    let per_image: Vec<(Vec<f32>, Vec<f32>)> = (0..g.batch)
        .into_par_iter()
        .map(|b| {
            let mut gk = vec![0f32; taps];
            let mut gb = vec![0f32; cout];
            for y in 0..h {
                for xx in 0..w {
                    let go = &grad_out[((b * h + y) * w + xx) * cout..][..cout];
                    for (acc, v) in gb.iter_mut().zip(go) {
                        *acc += v;
                    }
                    for_each_tap(g, b, y, xx, 1, |pixel, tap| {
                        for i in 0..cin {
                            let v = x[pixel * cin + i];
                            let row = &mut gk[(tap * cin + i) * cout..][..cout];
                            for (acc, gv) in row.iter_mut().zip(go) {
                                *acc += v * gv;
                            }
                        }
                    });
                }
            }
            (gk, gb)
        })
        .collect();
    let mut gk = vec![0f32; taps];
    let mut gb = vec![0f32; cout];
    for (k, b) in per_image {
        gk.iter_mut().zip(&k).for_each(|(a, v)| *a += v);
        gb.iter_mut().zip(&b).for_each(|(a, v)| *a += v);
    }
    (gk, gb)
}
