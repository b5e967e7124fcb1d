//! The narrow path of the CPU convolutions, for outputs of fewer than NARROW_COLS channels (the
//! heads' 1 or 4): each output value is a dot product along the source channels, kept as
//! NARROW_CHUNK partial sums, and the kernel gradient is summed by AXPYs along the longer of the
//! two channel counts.

use rayon::prelude::*;

use super::{has_avx2, Bordered, Epilogue, TAPS};
use crate::ops::conv::{ConvGeometry, KERNEL_SIZE};
use crate::ops::layers::Activation;

/// Outputs of fewer channels than this (the heads' 1 or 4) take the narrow path: a register tile of
/// output channels would leave most of its lanes idle.
pub(super) const NARROW_COLS: usize = 8;
/// Source channels are padded to this for the narrow path's dot products.
const NARROW_CHUNK: usize = 16;

/// `acc[k] += Σ_j a[j·NARROW_CHUNK + k]·b[j·NARROW_CHUNK + k]`, over equal lengths that are a
/// multiple of NARROW_CHUNK.
#[inline(always)]
fn accumulate_chunks(acc: &mut [f32; NARROW_CHUNK], a: &[f32], b: &[f32]) {
    for (ca, cb) in a
        .chunks_exact(NARROW_CHUNK)
        .zip(b.chunks_exact(NARROW_CHUNK))
    {
        for k in 0..NARROW_CHUNK {
            acc[k] += ca[k] * cb[k];
        }
    }
}

/// One output row of a narrow convolution: each output value Σ_tap dot(source pixel, kernel row),
/// the kernel laid out (col, tap, source channel) with the source's padded channel count.
#[inline(always)]
fn narrow_row(
    src: &Bordered,
    kt: &[f32],
    epilogue: Epilogue,
    (b, y): (usize, usize),
    out_row: &mut [f32],
    cols: usize,
) {
    for (x, out) in out_row.chunks_exact_mut(cols).enumerate() {
        for (col, o) in out.iter_mut().enumerate() {
            // NARROW_CHUNK partial sums over every tap, added up once (a fixed order, which the
            // compiler vectorises; the final sum is the one scalar part).
            let mut acc = [0f32; NARROW_CHUNK];
            for tap in 0..TAPS {
                let (ky, kx) = (tap / KERNEL_SIZE, tap % KERNEL_SIZE);
                let pixel = &src.data[src.pixel(b, y + ky, x + kx)..][..src.c];
                accumulate_chunks(&mut acc, pixel, &kt[(col * TAPS + tap) * src.c..][..src.c]);
            }
            let sum = epilogue.bias.map_or(0.0, |bias| bias[col]) + acc.iter().sum::<f32>();
            *o = if epilogue.relu {
                Activation::Relu.apply(sum)
            } else {
                sum
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn narrow_row_avx2(
    src: &Bordered,
    kt: &[f32],
    epilogue: Epilogue,
    row: (usize, usize),
    out_row: &mut [f32],
    cols: usize,
) {
    narrow_row(src, kt, epilogue, row, out_row, cols)
}

/// A convolution with few output channels. `flip` as in [`super::packed_kernel`]: the input gradient.
pub(super) fn narrow_convolve(
    g: &ConvGeometry,
    source: &[f32],
    kernel: &[f32],
    epilogue: Epilogue,
    flip: bool,
) -> Vec<f32> {
    let (rows, cols) = if flip {
        (g.cout, g.cin)
    } else {
        (g.cin, g.cout)
    };
    let src = Bordered::new(g, source, rows, NARROW_CHUNK);
    let mut kt = vec![0f32; cols * TAPS * src.c];
    for tap in 0..TAPS {
        for r in 0..rows {
            for col in 0..cols {
                kt[(col * TAPS + tap) * src.c + r] = if flip {
                    kernel[((TAPS - 1 - tap) * g.cin + col) * g.cout + r]
                } else {
                    kernel[(tap * g.cin + r) * g.cout + col]
                };
            }
        }
    }
    let avx2 = has_avx2();
    let mut out = vec![0f32; g.pixels() * cols];
    out.par_chunks_mut(g.w * cols)
        .enumerate()
        .for_each(|(row, out_row)| {
            let row = (row / g.h, row % g.h);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU was checked for AVX2 and FMA.
                return unsafe { narrow_row_avx2(&src, &kt, epilogue, row, out_row, cols) };
            }
            let _ = avx2;
            narrow_row(&src, &kt, epilogue, row, out_row, cols)
        });
    out
}

/// acc += xs · s.
#[inline(always)]
fn axpy(acc: &mut [f32], xs: &[f32], s: f32) {
    acc.iter_mut().zip(xs).for_each(|(a, x)| *a += x * s);
}

/// One image's kernel gradient for the narrow path, vectorised along the longer of cin and cout:
/// laid out (cout, tap, cin) when `over_cin`, else (tap, cin, cout).
#[inline(always)]
fn narrow_kernel_grad_image(
    g: &ConvGeometry,
    src: &Bordered,
    grad_out: &[f32],
    b: usize,
    over_cin: bool,
) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let mut acc = vec![0f32; TAPS * cin * cout];
    for y in 0..g.h {
        for xx in 0..g.w {
            let go = &grad_out[((b * g.h + y) * g.w + xx) * cout..][..cout];
            for tap in 0..TAPS {
                let (ky, kx) = (tap / KERNEL_SIZE, tap % KERNEL_SIZE);
                let xs = &src.data[src.pixel(b, y + ky, xx + kx)..][..cin];
                if over_cin {
                    for (o, &gv) in go.iter().enumerate() {
                        axpy(&mut acc[(o * TAPS + tap) * cin..][..cin], xs, gv);
                    }
                } else {
                    for (i, &xv) in xs.iter().enumerate() {
                        axpy(&mut acc[(tap * cin + i) * cout..][..cout], go, xv);
                    }
                }
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn narrow_kernel_grad_image_avx2(
    g: &ConvGeometry,
    src: &Bordered,
    grad_out: &[f32],
    b: usize,
    over_cin: bool,
) -> Vec<f32> {
    narrow_kernel_grad_image(g, src, grad_out, b, over_cin)
}

/// ∂L/∂kernel (3, 3, Cin, Cout) when cin or cout is small: per image, summed in image order.
pub(super) fn narrow_kernel_grad(g: &ConvGeometry, x: &[f32], grad_out: &[f32]) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let over_cin = cin >= cout;
    let src = Bordered::new(g, x, cin, 1);
    let avx2 = has_avx2();
    let partials: Vec<Vec<f32>> = (0..g.batch)
        .into_par_iter()
        .map(|b| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU was checked for AVX2 and FMA.
                return unsafe { narrow_kernel_grad_image_avx2(g, &src, grad_out, b, over_cin) };
            }
            let _ = avx2;
            narrow_kernel_grad_image(g, &src, grad_out, b, over_cin)
        })
        .collect();
    let mut sum = vec![0f32; TAPS * cin * cout];
    for partial in &partials {
        sum.iter_mut().zip(partial).for_each(|(a, v)| *a += v);
    }
    if !over_cin {
        return sum;
    }
    let mut gk = vec![0f32; TAPS * cin * cout];
    for o in 0..cout {
        for tap in 0..TAPS {
            for i in 0..cin {
                gk[(tap * cin + i) * cout + o] = sum[(o * TAPS + tap) * cin + i];
            }
        }
    }
    gk
}
