//! CPU twin of shaders/layers.wgsl: the same index arithmetic, one output element at a time.

use rayon::prelude::*;

use crate::ops::layers::{Activation, Nhwc};
use crate::Complex32;

fn generate(len: usize, f: impl Fn(usize) -> f32 + Sync + Send) -> Vec<f32> {
    (0..len).into_par_iter().map(f).collect()
}

/// (x, y, b, channel) of flat element i of an NHWC tensor of w x h images with `c` channels.
fn nhwc(i: usize, w: usize, h: usize, c: usize) -> (usize, usize, usize, usize) {
    let p = i / c;
    (p % w, (p / w) % h, p / (w * h), i % c)
}

pub(super) fn activation(kind: Activation, x: &[f32]) -> Vec<f32> {
    x.par_iter().map(|&v| kind.apply(v)).collect()
}

pub(super) fn activation_backward(kind: Activation, x: &[f32], g: &[f32]) -> Vec<f32> {
    x.par_iter()
        .zip(g.par_iter())
        .map(|(&v, &g)| {
            if kind == Activation::Relu {
                // As the shader: the gradient itself where x > 0 (no 0·inf products).
                if v > 0.0 {
                    g
                } else {
                    0.0
                }
            } else {
                g * kind.derivative(v)
            }
        })
        .collect()
}

/// The four window values of pooled output (b, oy, ox, ch) of input d.
fn window(d: &Nhwc, x: &[f32], b: usize, oy: usize, ox: usize, ch: usize) -> [f32; 4] {
    let base = ((b * d.h + 2 * oy) * d.w + 2 * ox) * d.c + ch;
    let row = d.w * d.c;
    [x[base], x[base + d.c], x[base + row], x[base + row + d.c]]
}

pub(super) fn max_pool(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    let (oh, ow) = (d.h / 2, d.w / 2);
    generate(d.b * oh * ow * d.c, |i| {
        let (ox, oy, b, ch) = nhwc(i, ow, oh, d.c);
        window(d, x, b, oy, ox, ch)
            .into_iter()
            .fold(f32::NEG_INFINITY, f32::max)
    })
}

pub(super) fn max_pool_backward(d: &Nhwc, x: &[f32], g: &[f32]) -> Vec<f32> {
    let (oh, ow) = (d.h / 2, d.w / 2);
    generate(d.b * d.h * d.w * d.c, |i| {
        let (xx, yy, b, ch) = nhwc(i, d.w, d.h, d.c);
        let v = window(d, x, b, yy / 2, xx / 2, ch);
        let best = (1..4).fold(0, |best, k| if v[k] > v[best] { k } else { best });
        if best == (yy % 2) * 2 + xx % 2 {
            g[((b * oh + yy / 2) * ow + xx / 2) * d.c + ch]
        } else {
            0.0
        }
    })
}

pub(super) fn upsample(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    generate(d.b * 4 * d.h * d.w * d.c, |i| {
        let (xx, yy, b, ch) = nhwc(i, 2 * d.w, 2 * d.h, d.c);
        x[((b * d.h + yy / 2) * d.w + xx / 2) * d.c + ch]
    })
}

/// d: the upsampling input's size; g is (B, 2H, 2W, C).
pub(super) fn upsample_backward(d: &Nhwc, g: &[f32]) -> Vec<f32> {
    generate(d.b * d.h * d.w * d.c, |i| {
        let (xx, yy, b, ch) = nhwc(i, d.w, d.h, d.c);
        let w2 = 2 * d.w;
        let base = ((b * 2 * d.h + 2 * yy) * w2 + 2 * xx) * d.c + ch;
        let row = w2 * d.c;
        g[base] + g[base + d.c] + g[base + row] + g[base + row + d.c]
    })
}

pub(super) fn slice_channels(d: &Nhwc, x: &[f32], start: usize, count: usize) -> Vec<f32> {
    generate(d.b * d.h * d.w * count, |i| {
        x[(i / count) * d.c + start + i % count]
    })
}

/// d: the sliced tensor (C channels); g has `count` channels.
pub(super) fn slice_channels_backward(d: &Nhwc, g: &[f32], start: usize, count: usize) -> Vec<f32> {
    generate(d.b * d.h * d.w * d.c, |i| {
        let j = i % d.c;
        if (start..start + count).contains(&j) {
            g[(i / d.c) * count + j - start]
        } else {
            0.0
        }
    })
}

pub(super) fn pad_spatial(d: &Nhwc, x: &[f32], pad: usize) -> Vec<f32> {
    let (oh, ow) = (d.h + 2 * pad, d.w + 2 * pad);
    generate(d.b * oh * ow * d.c, |i| {
        let (xx, yy, b, ch) = nhwc(i, ow, oh, d.c);
        let (xx, yy) = (xx as isize - pad as isize, yy as isize - pad as isize);
        if xx < 0 || yy < 0 || xx >= d.w as isize || yy >= d.h as isize {
            0.0
        } else {
            x[((b * d.h + yy as usize) * d.w + xx as usize) * d.c + ch]
        }
    })
}

/// d: the output size; x is (B, H + 2 pad, W + 2 pad, C).
pub(super) fn crop_spatial(d: &Nhwc, x: &[f32], pad: usize) -> Vec<f32> {
    let (ih, iw) = (d.h + 2 * pad, d.w + 2 * pad);
    generate(d.b * d.h * d.w * d.c, |i| {
        let (xx, yy, b, ch) = nhwc(i, d.w, d.h, d.c);
        x[((b * ih + yy + pad) * iw + xx + pad) * d.c + ch]
    })
}

/// amp, phase (B, H, W, C) -> (B, C, H, W) complex.
pub(super) fn combine_complex(d: &Nhwc, amp: &[f32], phase: &[f32]) -> Vec<Complex32> {
    (0..d.b * d.c * d.h * d.w)
        .into_par_iter()
        .map(|i| {
            let (xx, yy) = (i % d.w, (i / d.w) % d.h);
            let (ch, b) = ((i / (d.w * d.h)) % d.c, i / (d.w * d.h * d.c));
            let j = ((b * d.h + yy) * d.w + xx) * d.c + ch;
            Complex32::new(amp[j] * phase[j].cos(), amp[j] * phase[j].sin())
        })
        .collect()
}

/// (∂L/∂amp, ∂L/∂φ), both (B, H, W, C), from the complex gradient (B, C, H, W).
pub(super) fn combine_complex_backward(
    d: &Nhwc,
    amp: &[f32],
    phase: &[f32],
    g: &[Complex32],
) -> (Vec<f32>, Vec<f32>) {
    let gather = |i: usize| {
        let (xx, yy, b, ch) = nhwc(i, d.w, d.h, d.c);
        g[((b * d.c + ch) * d.h + yy) * d.w + xx]
    };
    let len = d.b * d.h * d.w * d.c;
    let grad_amp = generate(len, |i| {
        let g = gather(i);
        g.re * phase[i].cos() + g.im * phase[i].sin()
    });
    let grad_phase = generate(len, |i| {
        let g = gather(i);
        amp[i] * (g.im * phase[i].cos() - g.re * phase[i].sin())
    });
    (grad_amp, grad_phase)
}

/// d: the NHWC side; x is (B, C, H, W).
pub(super) fn to_channels_last(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    generate(d.b * d.h * d.w * d.c, |i| {
        let (xx, yy, b, ch) = nhwc(i, d.w, d.h, d.c);
        x[((b * d.c + ch) * d.h + yy) * d.w + xx]
    })
}

/// d: the NHWC side x; out is (B, C, H, W).
pub(super) fn to_channels_first(d: &Nhwc, x: &[f32]) -> Vec<f32> {
    generate(d.b * d.h * d.w * d.c, |i| {
        let (xx, yy) = (i % d.w, (i / d.w) % d.h);
        let (ch, b) = ((i / (d.w * d.h)) % d.c, i / (d.w * d.h * d.c));
        x[((b * d.h + yy) * d.w + xx) * d.c + ch]
    })
}
