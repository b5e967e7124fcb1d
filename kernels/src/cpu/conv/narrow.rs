//! The narrow path of the CPU convolutions, for outputs of fewer than NARROW_COLS channels (the
//! heads' 1 or 4): each output value is a dot product along the source channels, kept as
//! NARROW_CHUNK partial sums, and the kernel gradient is summed by AXPYs along the longer of the
//! two channel counts, or, for up to 4 outputs from up to 64 channels on AVX-512, in registers
//! across each image.

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

/// The register block of [`narrow_kernel_grad_image_avx512`]: up to REGISTER_OUTS output channels
/// × REGISTER_CHANNELS source channels.
const REGISTER_OUTS: usize = 4;
const REGISTER_CHANNELS: usize = 64;

/// One image's kernel gradient, laid out (cout, tap, cin), for cout ≤ REGISTER_OUTS and the
/// source's channels padded to REGISTER_CHANNELS (the heads: 60 → 1 or 4): each tap's
/// sums stay in 16 AVX-512 registers while the image's pixels go by, where the AXPY form re-reads
/// and re-writes its sums for every pixel (the heads' kernel gradients ran at 26–46 GFLOP/s).
/// Every sum runs over the pixels in row-major order, as in the AXPY form.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn narrow_kernel_grad_image_avx512(
    g: &ConvGeometry,
    src: &Bordered,
    grad_out: &[f32],
    b: usize,
) -> Vec<f32> {
    use std::arch::x86_64::*;
    const LANES: usize = 16;
    const VECTORS: usize = REGISTER_CHANNELS / LANES;
    let (cin, cout) = (g.cin, g.cout);
    assert!(cout <= REGISTER_OUTS && src.c == REGISTER_CHANNELS);
    let mut acc = vec![0f32; cout * TAPS * cin];
    for tap in 0..TAPS {
        let (ky, kx) = (tap / KERNEL_SIZE, tap % KERNEL_SIZE);
        let mut sums = [[_mm512_setzero_ps(); VECTORS]; REGISTER_OUTS];
        for y in 0..g.h {
            for xx in 0..g.w {
                let go = &grad_out[((b * g.h + y) * g.w + xx) * cout..][..cout];
                let xs = &src.data[src.pixel(b, y + ky, xx + kx)..][..REGISTER_CHANNELS];
                // SAFETY: xs holds VECTORS × LANES floats.
                let xv: [__m512; VECTORS] =
                    std::array::from_fn(|v| unsafe { _mm512_loadu_ps(xs.as_ptr().add(v * LANES)) });
                for (sums_o, &gv) in sums.iter_mut().zip(go) {
                    let gv = _mm512_set1_ps(gv);
                    for (s, x) in sums_o.iter_mut().zip(xv) {
                        *s = _mm512_fmadd_ps(x, gv, *s);
                    }
                }
            }
        }
        for (o, sums_o) in sums.iter().enumerate().take(cout) {
            let mut lanes = [0f32; REGISTER_CHANNELS];
            for (v, s) in sums_o.iter().enumerate() {
                // SAFETY: lanes holds VECTORS × LANES floats.
                unsafe { _mm512_storeu_ps(lanes.as_mut_ptr().add(v * LANES), *s) };
            }
            acc[(o * TAPS + tap) * cin..][..cin].copy_from_slice(&lanes[..cin]);
        }
    }
    acc
}

/// ∂L/∂kernel (3, 3, Cin, Cout) when cin or cout is small: per image, summed in image order.
pub(super) fn narrow_kernel_grad(g: &ConvGeometry, x: &[f32], grad_out: &[f32]) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    #[cfg(target_arch = "x86_64")]
    let in_registers = cin <= REGISTER_CHANNELS
        && cout <= REGISTER_OUTS
        && std::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let in_registers = false;
    // The (cout, tap, cin) layout, then transposed: AXPYs along cin, or the register block.
    let over_cin = cin >= cout || in_registers;
    let channel_multiple = if in_registers { REGISTER_CHANNELS } else { 1 };
    let src = Bordered::new(g, x, cin, channel_multiple);
    let avx2 = has_avx2();
    let partials: Vec<Vec<f32>> = (0..g.batch)
        .into_par_iter()
        .map(|b| {
            #[cfg(target_arch = "x86_64")]
            if in_registers {
                // SAFETY: in_registers includes the check for AVX-512.
                return unsafe { narrow_kernel_grad_image_avx512(g, &src, grad_out, b) };
            }
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
