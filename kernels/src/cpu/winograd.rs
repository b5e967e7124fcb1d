//! Winograd F(2×2, 3×3) for the CPU convolutions of small images with many channels (the deep
//! layers): each 2 × 2 block of outputs comes from a 4 × 4 block of the bordered source with 16
//! products per channel pair instead of 36, as 16 matrix products (one per transformed position ξ)
//! of the source's transformed tiles by the transformed kernel:
//!
//!   V = Bᵀ d B (source tile), U = G g Gᵀ (kernel), M_ξ = V_ξ · U_ξ, Y = Aᵀ M A (output tile),
//!
//! with Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//! Aᵀ = [1 1 1 0; 0 1 −1 −1]. The coefficients are exact in binary; only the order of the sums
//! differs from the direct convolution. The transforms work on CHUNK = 16 channels at a time (one
//! AVX-512 vector); the products use the direct convolution's AVX-512 register tile (8 tiles × 32
//! output channels). A thread takes one image, a strip of tiles at a time, so that the strip's
//! transformed tiles and products stay in L2, in buffers it reuses.
//!
//! The kernel gradient uses the same transforms transposed ([`kernel_gradient`]). Its rounding error
//! is a few times the direct sums' (about 1.5e-7 of Σ|terms| against 4e-8, measured against f64 on
//! the test sizes), as the products of transformed values are larger than the terms they replace.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

use super::conv::{Bordered, Epilogue, Packed, LANES_512, TAPS};
use crate::ops::conv::ConvGeometry;

/// Tiles per register block of the products.
const TILE_BLOCK: usize = 8;
/// Channels per step of the transforms.
pub(super) const CHUNK: usize = 16;

/// Whether the Winograd path serves this convolution: even sizes from 16 × 16 to 64 × 64 pixels, and
/// at least 32 source and output channels, so that the products, not the transforms, dominate
/// (measured on the PtychoPINN layers: 8 × 8 images, 16 tiles each, are faster direct).
pub(super) fn applies(g: &ConvGeometry, rows: usize, cols: usize) -> bool {
    shaped_for(g, rows, cols, 256)
}

/// Whether the Winograd kernel gradient serves this convolution: as [`applies`], and also for 8 × 8
/// images, whose tiles it sums over groups of images rather than image by image.
pub(super) fn applies_to_kernel_gradient(g: &ConvGeometry, cin: usize, cout: usize) -> bool {
    shaped_for(g, cin, cout, 64)
}

fn shaped_for(g: &ConvGeometry, rows: usize, cols: usize, fewest_pixels: usize) -> bool {
    let pixels = g.h * g.w;
    g.h.is_multiple_of(2)
        && g.w.is_multiple_of(2)
        && (fewest_pixels..=4096).contains(&pixels)
        && rows >= 32
        && cols >= 32
}

/// Magnitudes up to which the transforms and products cannot overflow: with |source|, |kernel| ≤ 2^50,
/// transformed values stay below 2^52, products below 2^104 and their sums (at most 2^14 terms) below
/// 2^118, under f32's 2^128.
const SAFE_MAGNITUDE: f32 = (1u64 << 50) as f32;

/// Whether every value is finite and small enough for [`SAFE_MAGNITUDE`]. Beyond it the direct
/// convolution runs instead: the transforms subtract, so where the direct sums overflow to ±inf
/// Winograd can give NaN, which a following ReLU would turn into 0, hiding a diverged model.
pub(super) fn safe(values: &[f32]) -> bool {
    values
        .par_chunks(1 << 14)
        .all(|chunk| chunk.iter().all(|v| v.abs() <= SAFE_MAGNITUDE))
}

/// U = G g Gᵀ for every (source, output) channel pair of a packed kernel: (16, rows_padded, padded),
/// zero for the source channels beyond the kernel's rows.
fn transform_kernel(kernel: &Packed, rows_padded: usize) -> Vec<f32> {
    let Packed {
        rows,
        padded,
        ref data,
        ..
    } = *kernel;
    let mut u = vec![0f32; 16 * rows_padded * padded];
    for r in 0..rows {
        for c in 0..padded {
            let k = |tap: usize| data[(tap * rows + r) * padded + c];
            // t = G g (4 × 3), then U = t Gᵀ (4 × 4).
            let t: [[f32; 3]; 4] = [
                [k(0), k(1), k(2)],
                std::array::from_fn(|j| 0.5 * (k(j) + k(3 + j) + k(6 + j))),
                std::array::from_fn(|j| 0.5 * (k(j) - k(3 + j) + k(6 + j))),
                [k(6), k(7), k(8)],
            ];
            for (i, ti) in t.iter().enumerate() {
                let row = [
                    ti[0],
                    0.5 * (ti[0] + ti[1] + ti[2]),
                    0.5 * (ti[0] - ti[1] + ti[2]),
                    ti[2],
                ];
                for (j, v) in row.into_iter().enumerate() {
                    u[((4 * i + j) * rows_padded + r) * padded + c] = v;
                }
            }
        }
    }
    u
}

/// The four vectors z0..z3 times Bᵀ: (z0 − z2, z1 + z2, z2 − z1, z1 − z3).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn b_transpose(z: [__m512; 4]) -> [__m512; 4] {
    [
        _mm512_sub_ps(z[0], z[2]),
        _mm512_add_ps(z[1], z[2]),
        _mm512_sub_ps(z[2], z[1]),
        _mm512_sub_ps(z[1], z[3]),
    ]
}

/// The four vectors z0..z3 times Aᵀ: (z0 + z1 + z2, z1 − z2 − z3).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn a_transpose(z: [__m512; 4]) -> [__m512; 2] {
    [
        _mm512_add_ps(_mm512_add_ps(z[0], z[1]), z[2]),
        _mm512_sub_ps(_mm512_sub_ps(z[1], z[2]), z[3]),
    ]
}

/// V = Bᵀ d B of the 4 × 4 source tiles `strip` of image `b` into `v`: (16, tiles, src.c), tile
/// `strip.start` first, CHUNK channels (one vector) at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_source(
    g: &ConvGeometry,
    src: &Bordered,
    b: usize,
    strip: Range<usize>,
    tiles: usize,
    v: &mut [f32],
) {
    let rows = src.c;
    let tw = g.w / 2;
    for (s, t) in strip.enumerate() {
        let (ty, tx) = (t / tw, t % tw);
        for r0 in (0..rows).step_by(CHUNK) {
            let d = |i: usize, j: usize| -> __m512 {
                let at = src.pixel(b, 2 * ty + i, 2 * tx + j) + r0;
                let chunk = &src.data[at..at + CHUNK];
                // SAFETY: chunk holds CHUNK = 16 floats.
                unsafe { _mm512_loadu_ps(chunk.as_ptr()) }
            };
            // Columns first: u_j = Bᵀ d_{·j}; then each row of u times B.
            let u: [[__m512; 4]; 4] =
                std::array::from_fn(|j| b_transpose([d(0, j), d(1, j), d(2, j), d(3, j)]));
            for i in 0..4 {
                let row = b_transpose(u.map(|column| column[i]));
                for (j, value) in row.into_iter().enumerate() {
                    let at = ((4 * i + j) * tiles + s) * rows + r0;
                    let out = &mut v[at..at + CHUNK];
                    // SAFETY: out holds CHUNK = 16 floats.
                    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), value) };
                }
            }
        }
    }
}

/// The register block of both products: TILE_BLOCK rows of 32 accumulators (2 vectors).
#[cfg(target_arch = "x86_64")]
type Block = [[__m512; 2]; TILE_BLOCK];

/// acc_p += x_p · k for p < TILE_BLOCK, x_p = xs[p · stride] and k the 32 floats of `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn fma_block(acc: &mut Block, xs: &[f32], stride: usize, k: &[f32]) {
    assert!(xs.len() > (TILE_BLOCK - 1) * stride && k.len() >= LANES_512);
    // SAFETY: k holds LANES_512 floats and xs every p · stride, p < TILE_BLOCK (asserted).
    unsafe {
        let k0 = _mm512_loadu_ps(k.as_ptr());
        let k1 = _mm512_loadu_ps(k.as_ptr().add(16));
        for (p, acc_p) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*xs.get_unchecked(p * stride));
            acc_p[0] = _mm512_fmadd_ps(x, k0, acc_p[0]);
            acc_p[1] = _mm512_fmadd_ps(x, k1, acc_p[1]);
        }
    }
}

/// The block whose row p is the 32 floats at p · stride of `m`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn load_block(m: &[f32], stride: usize) -> Block {
    std::array::from_fn(|p| {
        let row = &m[p * stride..p * stride + LANES_512];
        // SAFETY: row holds 2 × 16 floats.
        unsafe {
            [
                _mm512_loadu_ps(row.as_ptr()),
                _mm512_loadu_ps(row.as_ptr().add(16)),
            ]
        }
    })
}

/// Row p of the block into the 32 floats at p · stride of `m`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn store_block(acc: &Block, m: &mut [f32], stride: usize) {
    for (p, acc_p) in acc.iter().enumerate() {
        let row = &mut m[p * stride..p * stride + LANES_512];
        // SAFETY: row holds 2 × 16 floats.
        unsafe {
            _mm512_storeu_ps(row.as_mut_ptr(), acc_p[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc_p[1]);
        }
    }
}

/// M_ξ = V_ξ · U_ξ for every position ξ into `m`: (16, tiles, padded).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn products(v: &[f32], u: &[f32], m: &mut [f32], tiles: usize, rows: usize, padded: usize) {
    for xi in 0..16 {
        let vx = &v[xi * tiles * rows..(xi + 1) * tiles * rows];
        let ux = &u[xi * rows * padded..(xi + 1) * rows * padded];
        for c0 in (0..padded).step_by(LANES_512) {
            for t0 in (0..tiles).step_by(TILE_BLOCK) {
                // Tiles t0.. are rows of V_ξ, rows apart.
                let mut acc = [[_mm512_setzero_ps(); 2]; TILE_BLOCK];
                for r in 0..rows {
                    fma_block(&mut acc, &vx[t0 * rows + r..], rows, &ux[r * padded + c0..]);
                }
                store_block(&acc, &mut m[(xi * tiles + t0) * padded + c0..], padded);
            }
        }
    }
}

/// Y = Aᵀ M A of the tiles `strip` of one image, written through the epilogue (the bias added, then
/// ReLU as `f32::max(v, 0)`: NaN becomes 0 in both), CHUNK channels (one vector) at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_output(
    g: &ConvGeometry,
    m: &[f32],
    (strip, tiles): (Range<usize>, usize),
    (cols, padded): (usize, usize),
    epilogue: Epilogue,
    image: &mut [f32],
) {
    let tw = g.w / 2;
    let zero = _mm512_setzero_ps();
    for c0 in (0..padded.min(cols.next_multiple_of(CHUNK))).step_by(CHUNK) {
        // Lanes of real output channels.
        let lanes = (cols - c0).min(CHUNK);
        let mask: __mmask16 = if lanes == CHUNK { !0 } else { (1 << lanes) - 1 };
        let bias = match epilogue.bias {
            // SAFETY: the masked lanes are the channels c0..c0 + lanes < cols of the bias.
            Some(bias) => unsafe { _mm512_maskz_loadu_ps(mask, bias[c0..].as_ptr()) },
            None => zero,
        };
        for (s, t) in strip.clone().enumerate() {
            let (ty, tx) = (t / tw, t % tw);
            let e = |i: usize, j: usize| -> __m512 {
                let at = ((4 * i + j) * tiles + s) * padded + c0;
                let chunk = &m[at..at + CHUNK];
                // SAFETY: chunk holds CHUNK = 16 floats.
                unsafe { _mm512_loadu_ps(chunk.as_ptr()) }
            };
            // w = Aᵀ M column by column, then each row of w times A.
            let w: [[__m512; 2]; 4] =
                std::array::from_fn(|j| a_transpose([e(0, j), e(1, j), e(2, j), e(3, j)]));
            for i in 0..2 {
                let y = a_transpose(w.map(|column| column[i]));
                for (j, value) in y.into_iter().enumerate() {
                    let value = _mm512_add_ps(value, bias);
                    let value = if epilogue.relu {
                        _mm512_max_ps(value, zero)
                    } else {
                        value
                    };
                    let pixel = ((2 * ty + i) * g.w + 2 * tx + j) * cols + c0;
                    let out = &mut image[pixel..pixel + lanes];
                    // SAFETY: the masked lanes are the `lanes` floats of out.
                    unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, value) };
                }
            }
        }
    }
}

/// out (B, H, W, cols) of a convolution whose kernel is packed for the AVX-512 tile and whose source
/// is bordered with channels padded to CHUNK; the caller has checked [`applies`] and that the CPU has
/// AVX-512.
#[cfg(target_arch = "x86_64")]
pub(super) fn convolve(
    g: &ConvGeometry,
    src: &Bordered,
    kernel: &Packed,
    epilogue: Epilogue,
) -> Vec<f32> {
    let Packed { cols, padded, .. } = *kernel;
    let rows = src.c;
    let u = transform_kernel(kernel, rows);
    let image_tiles = (g.h / 2) * (g.w / 2);
    let strip = strip_tiles(rows, padded).min(image_tiles.div_ceil(TILE_BLOCK) * TILE_BLOCK);
    let mut out = vec![0f32; g.pixels() * cols];
    out.par_chunks_mut(g.h * g.w * cols)
        .enumerate()
        .for_each_init(
            || {
                (
                    vec![0f32; 16 * strip * rows],
                    vec![0f32; 16 * strip * padded],
                )
            },
            |(v, m), (b, image)| {
                for first in (0..image_tiles).step_by(strip) {
                    let tiles = first..(first + strip).min(image_tiles);
                    // Tiles padded to the register block; the padding's products are not read.
                    let stride = tiles.len().div_ceil(TILE_BLOCK) * TILE_BLOCK;
                    // SAFETY: the caller checked the CPU for AVX-512.
                    unsafe {
                        transform_source(g, src, b, tiles.clone(), stride, v);
                        products(v, &u, m, stride, rows, padded);
                        transform_output(g, m, (tiles, stride), (cols, padded), epilogue, image);
                    }
                }
            },
        );
    out
}

/// Tiles per strip of an image: a multiple of the register block whose transformed source and
/// products (16 floats per tile and channel each) fit in half of a 1 MiB L2 cache, so the products
/// read them from L2 rather than memory.
fn strip_tiles(rows: usize, padded: usize) -> usize {
    const BUDGET: usize = 512 * 1024;
    let per_tile = 16 * (rows + padded) * std::mem::size_of::<f32>();
    (BUDGET / per_tile / TILE_BLOCK).max(1) * TILE_BLOCK
}

/// The four vectors z0, z1 times A (the transpose of Aᵀ): (z0, z0 + z1, z0 − z1, −z1).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn a_times(z: [__m512; 2]) -> [__m512; 4] {
    [
        z[0],
        _mm512_add_ps(z[0], z[1]),
        _mm512_sub_ps(z[0], z[1]),
        _mm512_sub_ps(_mm512_setzero_ps(), z[1]),
    ]
}

/// The four vectors z0..z3 times G: (z0 + ½(z1 + z2), ½(z1 − z2), ½(z1 + z2) + z3).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn g_transpose(z: [__m512; 4]) -> [__m512; 3] {
    let half = _mm512_set1_ps(0.5);
    let sum = _mm512_mul_ps(half, _mm512_add_ps(z[1], z[2]));
    [
        _mm512_add_ps(z[0], sum),
        _mm512_mul_ps(half, _mm512_sub_ps(z[1], z[2])),
        _mm512_add_ps(sum, z[3]),
    ]
}

/// E = A e Aᵀ of every 2 × 2 block e of image `b`'s output gradient `grad` (B, H, W, padded) into
/// `out`: (16, tiles, padded).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_gradient(
    g: &ConvGeometry,
    grad: &[f32],
    padded: usize,
    b: usize,
    tiles: usize,
    out: &mut [f32],
) {
    let tw = g.w / 2;
    for t in 0..(g.h / 2) * tw {
        let (ty, tx) = (t / tw, t % tw);
        for c0 in (0..padded).step_by(CHUNK) {
            let e = |i: usize, j: usize| -> __m512 {
                let at = ((b * g.h + 2 * ty + i) * g.w + 2 * tx + j) * padded + c0;
                let chunk = &grad[at..at + CHUNK];
                // SAFETY: chunk holds CHUNK = 16 floats.
                unsafe { _mm512_loadu_ps(chunk.as_ptr()) }
            };
            let columns: [[__m512; 4]; 2] = std::array::from_fn(|j| a_times([e(0, j), e(1, j)]));
            for i in 0..4 {
                let row = a_times(columns.map(|column| column[i]));
                for (j, value) in row.into_iter().enumerate() {
                    let at = ((4 * i + j) * tiles + t) * padded + c0;
                    let to = &mut out[at..at + CHUNK];
                    // SAFETY: to holds CHUNK = 16 floats.
                    unsafe { _mm512_storeu_ps(to.as_mut_ptr(), value) };
                }
            }
        }
    }
}

/// M += Σ_t V_tᵀ E_t over the tiles of each image of a group, for one position ξ: `v` holds each
/// image's (tiles, rows) block of V_ξ and `e` its (tiles, padded) block of E_ξ, `m` is (rows,
/// padded). Each sum runs over the images in order, then the tiles in order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gradient_products(
    v: &[&[f32]],
    e: &[&[f32]],
    m: &mut [f32],
    tiles: usize,
    (rows, padded): (usize, usize),
) {
    for c0 in (0..padded).step_by(LANES_512) {
        for r0 in (0..rows).step_by(TILE_BLOCK) {
            // Source channels r0.. are adjacent in a row of V_ξ.
            let mut acc = load_block(&m[r0 * padded + c0..], padded);
            for (v, e) in v.iter().zip(e) {
                for t in 0..tiles {
                    fma_block(&mut acc, &v[t * rows + r0..], 1, &e[t * padded + c0..]);
                }
            }
            store_block(&acc, &mut m[r0 * padded + c0..], padded);
        }
    }
}

/// ∂L/∂kernel = Gᵀ M G for every (source, output) channel pair, from M (16, rows, padded), written
/// as (TAPS, cin, cout).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_kernel_gradient(
    m: &[f32],
    (rows, padded): (usize, usize),
    (cin, cout): (usize, usize),
) -> Vec<f32> {
    let mut out = vec![0f32; TAPS * cin * cout];
    for r in 0..cin {
        for c0 in (0..cout).step_by(CHUNK) {
            let lanes = (cout - c0).min(CHUNK);
            let mask: __mmask16 = if lanes == CHUNK { !0 } else { (1 << lanes) - 1 };
            let at = |xi: usize| -> __m512 {
                let at = (xi * rows + r) * padded + c0;
                let chunk = &m[at..at + CHUNK];
                // SAFETY: chunk holds CHUNK = 16 floats.
                unsafe { _mm512_loadu_ps(chunk.as_ptr()) }
            };
            // Columns first: t_j = Gᵀ M_{·j}; then each row of t times G.
            let columns: [[__m512; 3]; 4] =
                std::array::from_fn(|j| g_transpose([at(j), at(4 + j), at(8 + j), at(12 + j)]));
            for ky in 0..3 {
                let taps = g_transpose(columns.map(|column| column[ky]));
                for (kx, value) in taps.into_iter().enumerate() {
                    let at = ((ky * 3 + kx) * cin + r) * cout + c0;
                    let to = &mut out[at..at + lanes];
                    // SAFETY: the masked lanes are the `lanes` floats of to.
                    unsafe { _mm512_mask_storeu_ps(to.as_mut_ptr(), mask, value) };
                }
            }
        }
    }
    out
}

/// Images per group of the kernel gradient: as many as keep the group's transformed source and
/// gradient (16 floats per tile and channel each) within 16 MiB, half the L3 cache, and at least 2
/// so that both threads transform.
fn group_images(g: &ConvGeometry, rows: usize, padded: usize) -> usize {
    const BUDGET: usize = 16 << 20;
    let per_image = 16 * (g.h / 2) * (g.w / 2) * (rows + padded) * std::mem::size_of::<f32>();
    (BUDGET / per_image).clamp(2, g.batch.max(2))
}

/// ∂L/∂kernel (TAPS, cin, cout) by Winograd F(3×3, 2×2), the transpose of the forward algorithm:
/// for a 2 × 2 block e of the output gradient and its 4 × 4 source tile d, the kernel's gradient
/// gains Gᵀ[(A e Aᵀ) ⊙ (Bᵀ d B)]G, 16 products per channel pair instead of 36. The 16 products of a
/// tile are summed over every tile of every image first, as 16 matrix products M_ξ = Σ V_ξᵀ E_ξ,
/// and transformed once at the end. Images go in groups: the group's transforms one image per
/// thread, then its products one position ξ per thread, each M_ξ summed in image and tile order
/// (so the result does not depend on the thread count). The caller has checked
/// [`applies_to_kernel_gradient`] and that the CPU has AVX-512; `src` is bordered with channels
/// padded to CHUNK.
#[cfg(target_arch = "x86_64")]
pub(super) fn kernel_gradient(
    g: &ConvGeometry,
    src: &Bordered,
    grad_out: &[f32],
    (cin, cout): (usize, usize),
) -> Vec<f32> {
    let rows = src.c;
    let padded = cout.next_multiple_of(LANES_512);
    let mut grad = vec![0f32; g.pixels() * padded];
    grad.par_chunks_mut(padded)
        .zip(grad_out.par_chunks(cout))
        .for_each(|(to, from)| to[..cout].copy_from_slice(from));
    let tiles = (g.h / 2) * (g.w / 2);
    let group = group_images(g, rows, padded);
    let mut v = vec![0f32; group * 16 * tiles * rows];
    let mut e = vec![0f32; group * 16 * tiles * padded];
    let mut m = vec![0f32; 16 * rows * padded];
    for first in (0..g.batch).step_by(group) {
        let images = group.min(g.batch - first);
        v.par_chunks_mut(16 * tiles * rows)
            .zip(e.par_chunks_mut(16 * tiles * padded))
            .take(images)
            .enumerate()
            .for_each(|(i, (v, e))| {
                // SAFETY: the caller checked the CPU for AVX-512.
                unsafe {
                    transform_source(g, src, first + i, 0..tiles, tiles, v);
                    transform_gradient(g, &grad, padded, first + i, tiles, e);
                }
            });
        let (v, e) = (&v, &e);
        m.par_chunks_mut(rows * padded)
            .enumerate()
            .for_each(|(xi, m)| {
                let at = |i: usize, width: usize| (i * 16 + xi) * tiles * width;
                let vs: Vec<&[f32]> = (0..images)
                    .map(|i| &v[at(i, rows)..at(i, rows) + tiles * rows])
                    .collect();
                let es: Vec<&[f32]> = (0..images)
                    .map(|i| &e[at(i, padded)..at(i, padded) + tiles * padded])
                    .collect();
                // SAFETY: the caller checked the CPU for AVX-512.
                unsafe { gradient_products(&vs, &es, m, tiles, (rows, padded)) };
            });
    }
    // SAFETY: the caller checked the CPU for AVX-512.
    unsafe { transform_kernel_gradient(&m, (rows, padded), (cin, cout)) }
}

/// The kernel is 3 × 3, as the transform assumes.
const _: () = assert!(TAPS == 9);
