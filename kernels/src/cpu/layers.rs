//! CPU twin of shaders/layers.wgsl: the same values, computed a channel slice, a row or a plane at a
//! time rather than one output element at a time.

use rayon::prelude::*;

use crate::ops::layers::{Activation, Nhwc};
use crate::Complex32;

pub(super) fn activation(kind: Activation, x: &[f32]) -> Vec<f32> {
    x.par_iter().map(|&v| kind.apply(v)).collect()
}

/// ReLU's gradient at x, as the shader gives it: the gradient itself where x > 0, else 0 (no
/// 0·inf products).
fn relu_gradient(x: f32, g: f32) -> f32 {
    if x > 0.0 {
        g
    } else {
        0.0
    }
}

pub(super) fn activation_backward(kind: Activation, x: &[f32], g: &[f32]) -> Vec<f32> {
    x.par_iter()
        .zip(g.par_iter())
        .map(|(&v, &g)| {
            if kind == Activation::Relu {
                relu_gradient(v, g)
            } else {
                g * kind.derivative(v)
            }
        })
        .collect()
}

/// [`activation_backward`] for ReLU in place: g passed back through the ReLU whose output is
/// `relu_out` (the convolutions' fused form on their paths without a fused store).
pub(super) fn relu_backward_in_place(g: &mut [f32], relu_out: &[f32]) {
    g.par_chunks_mut(1 << 14)
        .zip(relu_out.par_chunks(1 << 14))
        .for_each(|(g, relu_out)| {
            for (g, &r) in g.iter_mut().zip(relu_out) {
                *g = relu_gradient(r, *g);
            }
        });
}

// Pooling and upsampling work on whole pixels: NHWC keeps a pixel's channels contiguous, so each
// step is a loop over one channel slice, which the compiler vectorises, and rows go to threads.

/// Where the four pixels of pooling window `ox` start in a pair of rows of `row` floats.
fn window_offsets(row: usize, ox: usize, c: usize) -> [usize; 4] {
    [
        2 * ox * c,
        (2 * ox + 1) * c,
        row + 2 * ox * c,
        row + (2 * ox + 1) * c,
    ]
}

/// The channel slices of pooling window `ox` in a pair of rows.
fn window(rows: &[f32], row: usize, ox: usize, c: usize) -> [&[f32]; 4] {
    window_offsets(row, ox, c).map(|o| &rows[o..o + c])
}

pub(super) fn max_pool(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    let (oh, ow, c) = (d.h / 2, d.w / 2, d.c);
    let mut out = vec![0f32; d.b * oh * ow * c];
    out.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(row, out_row)| {
            let (b, oy) = (row / oh, row % oh);
            let x_rows = &x[(b * d.h + 2 * oy) * d.w * c..][..2 * d.w * c];
            for (ox, o) in out_row.chunks_exact_mut(c).enumerate() {
                let [v0, v1, v2, v3] = window(x_rows, d.w * c, ox, c);
                // Zipped slices, so the loop has no bounds checks and vectorises.
                for ((o, (a, b)), (c, d)) in
                    o.iter_mut().zip(v0.iter().zip(v1)).zip(v2.iter().zip(v3))
                {
                    *o = f32::NEG_INFINITY.max(*a).max(*b).max(*c).max(*d);
                }
            }
        });
    out
}

/// The gradient goes to the first of the four window pixels (row-major order) holding the largest
/// value, per channel, as the shader picks it; the others get 0. `through_relu`: x is a ReLU's
/// output and the gradient goes on through it, so it is 0 where that largest value is not > 0.
pub(super) fn max_pool_backward(d: &Nhwc, x: &[f32], g: &[f32], through_relu: bool) -> Vec<f32> {
    // A constant in each copy of the loop: as a run-time test it kept the loop from vectorising.
    if through_relu {
        max_pool_backward_as::<true>(d, x, g)
    } else {
        max_pool_backward_as::<false>(d, x, g)
    }
}

fn max_pool_backward_as<const THROUGH_RELU: bool>(d: &Nhwc, x: &[f32], g: &[f32]) -> Vec<f32> {
    let (oh, ow, c) = (d.h / 2, d.w / 2, d.c);
    let row = d.w * c;
    let mut out = vec![0f32; d.b * d.h * row];
    // One chunk per pair of input rows, the rows of one pooled output row.
    out.par_chunks_mut(2 * row)
        .enumerate()
        .for_each(|(pair, out_rows)| {
            let (b, oy) = (pair / oh, pair % oh);
            let x_rows = &x[(b * d.h + 2 * oy) * row..][..2 * row];
            let g_row = &g[(b * oh + oy) * ow * c..][..ow * c];
            let (top, bottom) = out_rows.split_at_mut(row);
            for (ox, grad) in g_row.chunks_exact(c).enumerate() {
                let [v0, v1, v2, v3] = window(x_rows, row, ox, c);
                let (o0, o1) = top[2 * ox * c..(2 * ox + 2) * c].split_at_mut(c);
                let (o2, o3) = bottom[2 * ox * c..(2 * ox + 2) * c].split_at_mut(c);
                // Selects, not branches, and plain indices over equal lengths, so the loop
                // vectorises (the branchy version ran scalar: 7 ms for a 16 MB gradient).
                let c = grad.len();
                let (v0, v1, v2, v3) = (&v0[..c], &v1[..c], &v2[..c], &v3[..c]);
                let (o0, o1, o2, o3) = (&mut o0[..c], &mut o1[..c], &mut o2[..c], &mut o3[..c]);
                for k in 0..c {
                    let to_1 = v1[k] > v0[k];
                    let best = if to_1 { v1[k] } else { v0[k] };
                    let to_2 = v2[k] > best;
                    let best = if to_2 { v2[k] } else { best };
                    let to_3 = v3[k] > best;
                    // Through the ReLU: the pixel that takes the gradient keeps it where its
                    // value is > 0 (each pixel tested, as one select each vectorises).
                    let keep = |v: f32| !THROUGH_RELU | (v > 0.0);
                    let gv = grad[k];
                    o3[k] = if to_3 & keep(v3[k]) { gv } else { 0.0 };
                    o2[k] = if to_2 & !to_3 & keep(v2[k]) { gv } else { 0.0 };
                    o1[k] = if to_1 & !to_2 & !to_3 & keep(v1[k]) {
                        gv
                    } else {
                        0.0
                    };
                    o0[k] = if !(to_1 | to_2 | to_3) & keep(v0[k]) {
                        gv
                    } else {
                        0.0
                    };
                }
            }
        });
    out
}

pub(super) fn upsample(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    let c = d.c;
    let out_row = 2 * d.w * c;
    let mut out = vec![0f32; d.b * 2 * d.h * out_row];
    out.par_chunks_mut(out_row)
        .enumerate()
        .for_each(|(row, o)| {
            let (b, yy) = (row / (2 * d.h), row % (2 * d.h));
            let src = &x[(b * d.h + yy / 2) * d.w * c..][..d.w * c];
            for (xx, pixel) in o.chunks_exact_mut(c).enumerate() {
                pixel.copy_from_slice(&src[(xx / 2) * c..][..c]);
            }
        });
    out
}

/// d: the upsampling input's size; g is (B, 2H, 2W, C).
pub(super) fn upsample_backward(d: &Nhwc, g: &[f32]) -> Vec<f32> {
    let c = d.c;
    let g_row = 2 * d.w * c;
    let mut out = vec![0f32; d.b * d.h * d.w * c];
    out.par_chunks_mut(d.w * c)
        .enumerate()
        .for_each(|(row, o)| {
            let (b, y) = (row / d.h, row % d.h);
            let top = &g[(b * 2 * d.h + 2 * y) * g_row..][..g_row];
            let bottom = &g[(b * 2 * d.h + 2 * y + 1) * g_row..][..g_row];
            for (xx, pixel) in o.chunks_exact_mut(c).enumerate() {
                let (l, r) = (2 * xx * c, (2 * xx + 1) * c);
                let (tl, tr) = (&top[l..l + c], &top[r..r + c]);
                let (bl, br) = (&bottom[l..l + c], &bottom[r..r + c]);
                // Zipped slices, so the loop has no bounds checks and vectorises.
                for ((p, (a, b)), (c, d)) in pixel
                    .iter_mut()
                    .zip(tl.iter().zip(tr))
                    .zip(bl.iter().zip(br))
                {
                    *p = a + b + c + d;
                }
            }
        });
    out
}

pub(super) fn slice_channels(d: &Nhwc, x: &[f32], start: usize, count: usize) -> Vec<f32> {
    let mut out = vec![0f32; d.b * d.h * d.w * count];
    out.par_chunks_mut(d.w * count)
        .zip(x.par_chunks(d.w * d.c))
        .for_each(|(o, row)| {
            for (to, from) in o.chunks_exact_mut(count).zip(row.chunks_exact(d.c)) {
                to.copy_from_slice(&from[start..start + count]);
            }
        });
    out
}

/// d: the sliced tensor (C channels); g has `count` channels.
pub(super) fn slice_channels_backward(d: &Nhwc, g: &[f32], start: usize, count: usize) -> Vec<f32> {
    let mut out = vec![0f32; d.b * d.h * d.w * d.c];
    out.par_chunks_mut(d.w * d.c)
        .zip(g.par_chunks(d.w * count))
        .for_each(|(o, row)| {
            for (to, from) in o.chunks_exact_mut(d.c).zip(row.chunks_exact(count)) {
                to[start..start + count].copy_from_slice(from);
            }
        });
    out
}

pub(super) fn pad_spatial(d: &Nhwc, x: &[f32], pad: usize) -> Vec<f32> {
    let (oh, ow) = (d.h + 2 * pad, d.w + 2 * pad);
    let row = d.w * d.c;
    let mut out = vec![0f32; d.b * oh * ow * d.c];
    out.par_chunks_mut(ow * d.c).enumerate().for_each(|(r, o)| {
        let (b, yy) = (r / oh, r % oh);
        if (pad..pad + d.h).contains(&yy) {
            let from = &x[(b * d.h + yy - pad) * row..][..row];
            o[pad * d.c..pad * d.c + row].copy_from_slice(from);
        }
    });
    out
}

/// d: the output size; x is (B, H + 2 pad, W + 2 pad, C).
pub(super) fn crop_spatial(d: &Nhwc, x: &[f32], pad: usize) -> Vec<f32> {
    let (ih, iw) = (d.h + 2 * pad, d.w + 2 * pad);
    let row = d.w * d.c;
    let mut out = vec![0f32; d.b * d.h * row];
    out.par_chunks_mut(row).enumerate().for_each(|(r, o)| {
        let (b, y) = (r / d.h, r % d.h);
        o.copy_from_slice(&x[((b * ih + y + pad) * iw + pad) * d.c..][..row]);
    });
    out
}

// The layout changes below go a plane (B, C fixed) or a row (B, y fixed) at a time, so that the
// index arithmetic is additions: per-element divisions by the runtime sizes had cost 3 ms of a
// gridsize 2 training step.

/// amp, phase (B, H, W, C) -> (B, C, H, W) complex.
pub(super) fn combine_complex(d: &Nhwc, amp: &[f32], phase: &[f32]) -> Vec<Complex32> {
    let hw = d.h * d.w;
    let mut out = vec![Complex32::default(); d.b * d.c * hw];
    out.par_chunks_mut(hw).enumerate().for_each(|(plane, o)| {
        let (b, ch) = (plane / d.c, plane % d.c);
        let from = b * hw * d.c + ch;
        for (p, o) in o.iter_mut().enumerate() {
            let j = from + p * d.c;
            let (sin, cos) = phase[j].sin_cos();
            *o = Complex32::new(amp[j] * cos, amp[j] * sin);
        }
    });
    out
}

/// (∂L/∂amp, ∂L/∂φ), both (B, H, W, C), from the complex gradient (B, C, H, W).
pub(super) fn combine_complex_backward(
    d: &Nhwc,
    amp: &[f32],
    phase: &[f32],
    g: &[Complex32],
) -> (Vec<f32>, Vec<f32>) {
    let len = d.b * d.h * d.w * d.c;
    let (mut grad_amp, mut grad_phase) = (vec![0f32; len], vec![0f32; len]);
    let row = d.w * d.c;
    grad_amp
        .par_chunks_mut(row)
        .zip(grad_phase.par_chunks_mut(row))
        .enumerate()
        .for_each(|(r, (ga, gp))| {
            let (b, y) = (r / d.h, r % d.h);
            for ch in 0..d.c {
                let g_row = &g[((b * d.c + ch) * d.h + y) * d.w..][..d.w];
                for (xx, g) in g_row.iter().enumerate() {
                    let (k, i) = (xx * d.c + ch, r * row + xx * d.c + ch);
                    let (sin, cos) = phase[i].sin_cos();
                    ga[k] = g.re * cos + g.im * sin;
                    gp[k] = amp[i] * (g.im * cos - g.re * sin);
                }
            }
        });
    (grad_amp, grad_phase)
}

/// d: the NHWC side; x is (B, C, H, W).
pub(super) fn to_channels_last(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    let row = d.w * d.c;
    let mut out = vec![0f32; d.b * d.h * row];
    out.par_chunks_mut(row).enumerate().for_each(|(r, o)| {
        let (b, y) = (r / d.h, r % d.h);
        for ch in 0..d.c {
            let from = &x[((b * d.c + ch) * d.h + y) * d.w..][..d.w];
            for (xx, &v) in from.iter().enumerate() {
                o[xx * d.c + ch] = v;
            }
        }
    });
    out
}

/// d: the NHWC side x; out is (B, C, H, W).
pub(super) fn to_channels_first(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    let hw = d.h * d.w;
    let mut out = vec![0f32; d.b * d.c * hw];
    out.par_chunks_mut(hw).enumerate().for_each(|(plane, o)| {
        let (b, ch) = (plane / d.c, plane % d.c);
        let from = b * hw * d.c + ch;
        for (p, o) in o.iter_mut().enumerate() {
            *o = x[from + p * d.c];
        }
    });
    out
}
