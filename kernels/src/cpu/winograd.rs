//! Winograd convolutions for the CPU on AVX-512, for small images with many channels (the deep
//! layers).
//!
//! The forward pass (and the input gradient, a forward pass with the kernel flipped) is
//! F(4×4, 3×3): each 4 × 4 block of outputs comes from a 6 × 6 block of the bordered source with 36
//! products per channel pair instead of 144, as 36 matrix products (one per transformed position ξ)
//! of the source's transformed tiles by the transformed kernel:
//!
//!   V = Bᵀ d B (source tile), U = G g Gᵀ (kernel), M_ξ = V_ξ · U_ξ, Y = Aᵀ M A (output tile),
//!
//! with the interpolation points 0, 1, −1, 2, −½ and ∞:
//!
//!   Bᵀ = [1 1.5 −2 −1.5 1 0; 0 −1 −2.5 −0.5 1 0; 0 1 0.5 −2.5 1 0; 0 −0.5 −1 0.5 1 0;
//!         0 2 −1 −2 1 0; 0 1 1.5 −2 −1.5 1],
//!   G = [1 0 0; −⅓ −⅓ −⅓; ⅓ −⅓ ⅓; 1⁄15 2⁄15 4⁄15; −16⁄15 8⁄15 −4⁄15; 0 0 1],
//!   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −½ 0; 0 1 1 4 ¼ 0; 0 1 −1 8 −⅛ 1].
//!
//! The transforms work on CHUNK = 16 channels at a time (one
//! AVX-512 vector); the products use the direct convolution's AVX-512 register tile (8 tiles × 32
//! output channels). A thread takes one image (or several small ones), a strip of tiles at a
//! time, so that the strip's transformed tiles and products stay in L2, in buffers it reuses.
//!
//! Only the order and grouping of the sums differ from the direct convolution, and G's fractions
//! are rounded. The transforms round sums over a whole 6 × 6 tile, so the error grows with the
//! tile's values rather than the output's terms: the worst difference from the direct sums on the
//! test sizes is 7.6 ε · Σ|terms| (ε = 2^−23), against 1.4 ε between direct paths. The points
//! 2 and −½ in place of the usual ±2 (Lavin and Gray 2016) make it three times smaller: 23 ε with
//! ±2, measured the same way.
//!
//! The kernel gradient is F(3×3, 4×4), the transpose of the forward algorithm with the same
//! matrices ([`kernel_gradient`]): 36 products per 4 × 4 block of the output gradient instead of
//! 144, summed over every tile, then one transform Gᵀ M G in f64. Its worst difference from the
//! direct sums on the test sizes is 3.0 ε · Σ|terms|.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

use super::conv::{Epilogue, Packed, LANES_512, TAPS};
use crate::ops::conv::ConvGeometry;

thread_local! {
    /// Each thread's transform buffers, kept between calls: allocating and zeroing them on every
    /// call cost 2 % of a training step (`perf`), and the transforms write every element the
    /// products read.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on `len` floats of this thread's scratch buffer, which hold whatever its last user left;
/// on a fresh zeroed buffer when the thread's own is in use (a call nested in another).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// Tiles per register block of the products.
const TILE_BLOCK: usize = 8;
/// Channels per step of the transforms.
const CHUNK: usize = 16;

/// Output pixels along each side of a forward tile.
const OUT_SIDE: usize = 4;
/// Source pixels along each side of a forward tile.
const IN_SIDE: usize = 6;
/// Transformed positions ξ of a forward tile.
const POSITIONS: usize = IN_SIDE * IN_SIDE;

/// Whether the Winograd paths serve this convolution (forward, input gradient and kernel gradient):
/// sizes that are multiples of 4, from 8 × 8 to 64 × 64 pixels, and at least 32 channels on both
/// sides (`rows` the source's, `cols` the output's), so that the products, not the transforms,
/// dominate. Small images share strips in the forward pass (8 × 8 ones, 4 tiles each, are 27–35 %
/// faster so than direct, measured on the PtychoPINN layers), and the kernel gradient sums its
/// tiles over groups of images.
pub(super) fn applies(g: &ConvGeometry, rows: usize, cols: usize) -> bool {
    g.h.is_multiple_of(OUT_SIDE)
        && g.w.is_multiple_of(OUT_SIDE)
        && (64..=4096).contains(&(g.h * g.w))
        && rows >= 32
        && cols >= 32
}

/// Magnitudes up to which the transforms and products cannot overflow, M = 2^40. Bᵀ's rows sum to at
/// most 7 in absolute value, so |V| ≤ 49 M. Forward: G's rows sum to at most 28/15, so |U| ≤ 3.5 M;
/// the sums of products over at most 2^14 channels stay below 2^22 M², and Aᵀ (rows up to 11.2)
/// gives at most 2^29 M² = 2^109. Kernel gradient: A's rows sum to at most 15, so |E| ≤ 225 M; sums
/// over at most 2^24 tiles stay below 2^38 M², and G's columns (at most 2.8) give at most
/// 2^41 M² = 2^121. Both are under f32's 2^128.
const SAFE_MAGNITUDE: f32 = (1u64 << 40) as f32;

/// Whether every value is finite and small enough for [`SAFE_MAGNITUDE`]. Beyond it the direct
/// convolution runs instead: the transforms subtract, so where the direct sums overflow to ±inf
/// Winograd can give NaN, which a following ReLU would turn into 0, hiding a diverged model.
pub(super) fn safe(values: &[f32]) -> bool {
    values
        .par_chunks(1 << 14)
        .all(|chunk| chunk.iter().all(|v| v.abs() <= SAFE_MAGNITUDE))
}

/// G of F(4×4, 3×3): the transforms of the kernel and of the kernel gradient use products of two of
/// its entries.
const G: [[f64; 3]; IN_SIDE] = [
    [1.0, 0.0, 0.0],
    [-1.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0],
    [1.0 / 3.0, -1.0 / 3.0, 1.0 / 3.0],
    [1.0 / 15.0, 2.0 / 15.0, 4.0 / 15.0],
    [-16.0 / 15.0, 8.0 / 15.0, -4.0 / 15.0],
    [0.0, 0.0, 1.0],
];

/// out = Σ weight · row over `terms` (rows at least out's length), with the weights rounded to f32
/// and fused multiply-adds, 16 lanes wide (AVX-512; the default target has 4 lanes and no FMA).
#[target_feature(enable = "avx512f")]
fn weighted_sum<'a>(terms: impl Iterator<Item = (f32, &'a [f32])>, out: &mut [f32]) {
    out.fill(0.0);
    for (weight, row) in terms.filter(|&(weight, _)| weight != 0.0) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o = weight.mul_add(v, *o);
        }
    }
}

/// As [`weighted_sum`], summed in f64 (in `sum`, out's length) and rounded once, 8 lanes wide.
#[target_feature(enable = "avx512f")]
fn weighted_sum_f64<'a>(
    terms: impl Iterator<Item = (f64, &'a [f32])>,
    sum: &mut [f64],
    out: &mut [f32],
) {
    sum.fill(0.0);
    for (weight, row) in terms.filter(|&(weight, _)| weight != 0.0) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += weight * f64::from(v);
        }
    }
    for (o, &s) in out.iter_mut().zip(sum.iter()) {
        *o = s as f32;
    }
}

/// Row r of every plane of `data` (planes of `plane_rows` rows of `width` floats, back to back),
/// gathered by r: element r holds row r of each plane, in plane order.
fn rows_across_planes(data: &mut [f32], plane_rows: usize, width: usize) -> Vec<Vec<&mut [f32]>> {
    let mut by_row: Vec<Vec<&mut [f32]>> = (0..plane_rows).map(|_| Vec::new()).collect();
    for plane in data.chunks_exact_mut(plane_rows * width) {
        for (row, gathered) in plane.chunks_exact_mut(width).zip(&mut by_row) {
            gathered.push(row);
        }
    }
    by_row
}

/// U = G g Gᵀ for every (source, output) channel pair of a packed kernel: (POSITIONS, rows_padded,
/// padded), zero for the source channels beyond the kernel's rows. Position ξ = (i, j) is
/// Σ_tap G[i][ky] G[j][kx] g[tap], summed a row of output channels at a time in f32 with fused
/// multiply-adds (nine terms at most; in f64, 8 lanes and no FMA, the transform took 6 % of a
/// training step for no gain in accuracy: 7.4 against 7.6 ε · Σ|terms| worst on the test sizes).
/// A task takes a source channel, whose nine kernel rows then serve all 36 positions from L1. The
/// caller has checked that the CPU has AVX-512.
fn transform_kernel(kernel: &Packed, rows_padded: usize) -> Vec<f32> {
    let Packed {
        rows,
        padded,
        ref data,
        ..
    } = *kernel;
    let weights: [[f32; TAPS]; POSITIONS] = std::array::from_fn(|xi| {
        std::array::from_fn(|tap| (G[xi / IN_SIDE][tap / 3] * G[xi % IN_SIDE][tap % 3]) as f32)
    });
    let mut u = vec![0f32; POSITIONS * rows_padded * padded];
    rows_across_planes(&mut u, rows_padded, padded)
        .into_par_iter()
        .take(rows)
        .enumerate()
        .for_each(|(r, outs)| {
            let taps = (0..TAPS).map(|tap| &data[(tap * rows + r) * padded..]);
            for (weights, out) in weights.iter().zip(outs) {
                // SAFETY: the caller checked the CPU for AVX-512.
                unsafe { weighted_sum(weights.iter().copied().zip(taps.clone()), out) };
            }
        });
    u
}

/// The six vectors z0..z5 times Bᵀ of F(4×4, 3×3): with q = z4 − z2 and w = z1 − z3,
/// (z0 − z2 + q + 1.5w, q − 1.5z3 − (w + 1.5z2), q − 1.5z3 + w + 1.5z2, q − 0.5w, q + 2w,
/// z1 + z5 − 2z3 + 1.5(z2 − z4)).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn b_transpose_6(z: [__m512; 6]) -> [__m512; 6] {
    let (half, one_half, two) = (
        _mm512_set1_ps(0.5),
        _mm512_set1_ps(1.5),
        _mm512_set1_ps(2.0),
    );
    let q = _mm512_sub_ps(z[4], z[2]);
    let w = _mm512_sub_ps(z[1], z[3]);
    let even = _mm512_fnmadd_ps(one_half, z[3], q);
    let odd = _mm512_fmadd_ps(one_half, z[2], w);
    [
        _mm512_fmadd_ps(one_half, w, _mm512_add_ps(_mm512_sub_ps(z[0], z[2]), q)),
        _mm512_sub_ps(even, odd),
        _mm512_add_ps(even, odd),
        _mm512_fnmadd_ps(half, w, q),
        _mm512_fmadd_ps(two, w, q),
        _mm512_fmadd_ps(
            one_half,
            _mm512_sub_ps(z[2], z[4]),
            _mm512_fnmadd_ps(two, z[3], _mm512_add_ps(z[1], z[5])),
        ),
    ]
}

/// The six vectors z0..z5 times Aᵀ of F(4×4, 3×3): with a = z1 + z2 and b = z1 − z2,
/// (z0 + a + z3 + z4, b + 2z3 − z4/2, a + 4z3 + z4/4, b + z5 + 8z3 − z4/8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn a_transpose_6(z: [__m512; 6]) -> [__m512; 4] {
    let set = _mm512_set1_ps;
    let a = _mm512_add_ps(z[1], z[2]);
    let b = _mm512_sub_ps(z[1], z[2]);
    [
        _mm512_add_ps(_mm512_add_ps(z[0], a), _mm512_add_ps(z[3], z[4])),
        _mm512_fmadd_ps(set(2.0), z[3], _mm512_fnmadd_ps(set(0.5), z[4], b)),
        _mm512_fmadd_ps(set(4.0), z[3], _mm512_fmadd_ps(set(0.25), z[4], a)),
        _mm512_fmadd_ps(
            set(8.0),
            z[3],
            _mm512_fnmadd_ps(set(0.125), z[4], _mm512_add_ps(b, z[5])),
        ),
    ]
}

/// An NHWC tensor (B, H, W, channels) read CHUNK channels at a time, as if bordered: zeros around
/// the image and beyond its channels, so that no bordered copy is made (the copy and the zeroing
/// of its buffer cost several ms of a training step).
#[derive(Clone, Copy)]
struct Source<'a> {
    data: &'a [f32],
    h: usize,
    w: usize,
    channels: usize,
}

impl<'a> Source<'a> {
    fn new(g: &ConvGeometry, data: &'a [f32], channels: usize) -> Self {
        Self {
            data,
            h: g.h,
            w: g.w,
            channels,
        }
    }

    /// The channels c0..c0 + CHUNK of pixel (y, x) of image b, in bordered coordinates (row and
    /// column 0 and H + 1, W + 1 are the zero border).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn chunk(&self, b: usize, (y, x): (usize, usize), c0: usize) -> __m512 {
        if y == 0 || y > self.h || x == 0 || x > self.w || c0 >= self.channels {
            return _mm512_setzero_ps();
        }
        let lanes = (self.channels - c0).min(CHUNK);
        let mask: __mmask16 = if lanes == CHUNK { !0 } else { (1 << lanes) - 1 };
        let at = ((b * self.h + y - 1) * self.w + x - 1) * self.channels + c0;
        let chunk = &self.data[at..at + lanes];
        // SAFETY: the masked lanes are the `lanes` floats of chunk.
        unsafe { _mm512_maskz_loadu_ps(mask, chunk.as_ptr()) }
    }

    /// Asks for the line of [`Source::chunk`]'s first float to be brought into L1 ahead of use.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn prefetch(&self, b: usize, (y, x): (usize, usize), c0: usize) {
        if y == 0 || y > self.h || x == 0 || x > self.w || c0 >= self.channels {
            return;
        }
        let at = ((b * self.h + y - 1) * self.w + x - 1) * self.channels + c0;
        _mm_prefetch::<_MM_HINT_T0>(self.data[at..].as_ptr().cast());
    }
}

/// V = Bᵀ d B of the 6 × 6 source tiles `strip` of the images from `first` on (tile t is tile
/// t mod T of image first + t / T, T tiles per image, at 4 × its tile coordinates) into `v`:
/// (POSITIONS, tiles, rows), rows = the source's channels rounded up to CHUNK, tile `strip.start`
/// first, CHUNK channels (one vector) at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_tiles(
    g: &ConvGeometry,
    src: Source,
    first: usize,
    strip: Range<usize>,
    tiles: usize,
    v: &mut [f32],
) {
    let rows = src.channels.next_multiple_of(CHUNK);
    let tw = g.w / OUT_SIDE;
    let image_tiles = (g.h / OUT_SIDE) * tw;
    let tile_at = |t: usize| {
        let (b, t) = (first + t / image_tiles, t % image_tiles);
        (b, t / tw, t % tw)
    };
    let end = strip.end;
    for (s, t) in strip.enumerate() {
        let (b, ty, tx) = tile_at(t);
        let next = (t + 1 < end).then(|| tile_at(t + 1));
        for r0 in (0..rows).step_by(CHUNK) {
            if let Some((nb, ny, nx)) = next {
                // The next tile along the same row shares this one's last two columns, which
                // are being loaded now.
                let shared = if (nb, ny) == (b, ty) {
                    IN_SIDE - OUT_SIDE
                } else {
                    0
                };
                for i in 0..IN_SIDE {
                    for j in shared..IN_SIDE {
                        src.prefetch(nb, (OUT_SIDE * ny + i, OUT_SIDE * nx + j), r0);
                    }
                }
            }
            // Columns first: u_j = Bᵀ d_{·j}; then each row of u times B. Plain loops rather than
            // closures, which would not be inlined here and would pass vectors through memory; u
            // is not zeroed first (a 2 KiB memset each time), every element is written before it
            // is read.
            let mut u = [[MaybeUninit::<__m512>::uninit(); IN_SIDE]; IN_SIDE];
            for (j, column) in u.iter_mut().enumerate() {
                let mut d = [_mm512_setzero_ps(); IN_SIDE];
                for (i, value) in d.iter_mut().enumerate() {
                    *value = src.chunk(b, (OUT_SIDE * ty + i, OUT_SIDE * tx + j), r0);
                }
                for (place, value) in column.iter_mut().zip(b_transpose_6(d)) {
                    place.write(value);
                }
            }
            for i in 0..IN_SIDE {
                let mut row = [_mm512_setzero_ps(); IN_SIDE];
                for (value, column) in row.iter_mut().zip(&u) {
                    // SAFETY: the column pass wrote every element of u.
                    *value = unsafe { column[i].assume_init() };
                }
                for (j, value) in b_transpose_6(row).into_iter().enumerate() {
                    let at = ((IN_SIDE * i + j) * tiles + s) * rows + r0;
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

/// M_ξ = V_ξ · U_ξ for every position ξ into `m`: (POSITIONS, tiles, padded).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn products(v: &[f32], u: &[f32], m: &mut [f32], tiles: usize, rows: usize, padded: usize) {
    for xi in 0..POSITIONS {
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

/// Y = Aᵀ M A of the tiles `strip` of the images of `images` (numbered as in transform_tiles, from
/// the first of them), written through the epilogue (the bias added, then ReLU as `f32::max(v, 0)`:
/// NaN becomes 0 in both; zero where `through_relu` is not > 0), CHUNK channels (one vector) at a
/// time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_output(
    g: &ConvGeometry,
    m: &[f32],
    (strip, tiles): (Range<usize>, usize),
    (cols, padded): (usize, usize),
    epilogue: Epilogue,
    images: &mut [f32],
) {
    let tw = g.w / OUT_SIDE;
    let image_tiles = (g.h / OUT_SIDE) * tw;
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
            let (b, t) = (t / image_tiles, t % image_tiles);
            let (ty, tx) = (t / tw, t % tw);
            // w = Aᵀ M column by column, then each row of w times A (plain loops and an array
            // not zeroed first, as in transform_tiles).
            let mut w = [[MaybeUninit::<__m512>::uninit(); OUT_SIDE]; IN_SIDE];
            for (j, column) in w.iter_mut().enumerate() {
                let mut e = [_mm512_setzero_ps(); IN_SIDE];
                for (i, value) in e.iter_mut().enumerate() {
                    let at = ((IN_SIDE * i + j) * tiles + s) * padded + c0;
                    let chunk = &m[at..at + CHUNK];
                    // SAFETY: chunk holds CHUNK = 16 floats.
                    *value = unsafe { _mm512_loadu_ps(chunk.as_ptr()) };
                }
                for (place, value) in column.iter_mut().zip(a_transpose_6(e)) {
                    place.write(value);
                }
            }
            for i in 0..OUT_SIDE {
                let mut row = [_mm512_setzero_ps(); IN_SIDE];
                for (value, column) in row.iter_mut().zip(&w) {
                    // SAFETY: the column pass wrote every element of w.
                    *value = unsafe { column[i].assume_init() };
                }
                let y = a_transpose_6(row);
                for (j, value) in y.into_iter().enumerate() {
                    let value = _mm512_add_ps(value, bias);
                    let value = if epilogue.relu {
                        _mm512_max_ps(value, zero)
                    } else {
                        value
                    };
                    let pixel = (b * g.h + OUT_SIDE * ty + i) * g.w + OUT_SIDE * tx + j;
                    let value = match epilogue.through_relu {
                        Some(relu_out) => {
                            let relu_out = &relu_out[pixel * cols + c0..][..lanes];
                            // SAFETY: the masked lanes are the `lanes` floats of relu_out.
                            let r = unsafe { _mm512_maskz_loadu_ps(mask, relu_out.as_ptr()) };
                            // Kept where relu_out > 0, as activation_backward.
                            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(r, zero);
                            _mm512_maskz_mov_ps(positive, value)
                        }
                        None => value,
                    };
                    let out = &mut images[pixel * cols + c0..][..lanes];
                    // SAFETY: the masked lanes are the `lanes` floats of out.
                    unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, value) };
                }
            }
        }
    }
}

/// out (B, H, W, cols) of a convolution of `source` (B, H, W, channels) whose kernel is packed for
/// the AVX-512 tile; the caller has checked [`applies`] and that the CPU has AVX-512.
#[cfg(target_arch = "x86_64")]
pub(super) fn convolve(
    g: &ConvGeometry,
    (source, channels): (&[f32], usize),
    kernel: &Packed,
    epilogue: Epilogue,
) -> Vec<f32> {
    let Packed { cols, padded, .. } = *kernel;
    let src = Source::new(g, source, channels);
    let rows = channels.next_multiple_of(CHUNK);
    let u = transform_kernel(kernel, rows);
    let image_tiles = (g.h / OUT_SIDE) * (g.w / OUT_SIDE);
    let strip = strip_tiles(rows, padded);
    // Images per task: enough to fill a strip, but at most a thread's share of the batch.
    let images = strip
        .div_ceil(image_tiles)
        .min(g.batch.div_ceil(rayon::current_num_threads()))
        .max(1);
    let strip = strip.min((images * image_tiles).next_multiple_of(TILE_BLOCK));
    let mut out = vec![0f32; g.pixels() * cols];
    out.par_chunks_mut(images * g.h * g.w * cols)
        .enumerate()
        .for_each(|(task, task_out)| {
            with_scratch(POSITIONS * strip * (rows + padded), |scratch| {
                let (v, m) = scratch.split_at_mut(POSITIONS * strip * rows);
                let task_tiles = task_out.len() / (g.h * g.w * cols) * image_tiles;
                let first = task * images;
                // The ReLU output, if any, from the task's first image on, as `task_out`.
                let epilogue = Epilogue {
                    through_relu: epilogue
                        .through_relu
                        .map(|relu_out| &relu_out[first * g.h * g.w * cols..]),
                    ..epilogue
                };
                for start in (0..task_tiles).step_by(strip) {
                    let tiles = start..(start + strip).min(task_tiles);
                    // Tiles padded to the register block; the padding's products are not read.
                    let stride = tiles.len().div_ceil(TILE_BLOCK) * TILE_BLOCK;
                    let out = &mut *task_out;
                    // SAFETY: the caller checked the CPU for AVX-512.
                    unsafe {
                        transform_tiles(g, src, first, tiles.clone(), stride, v);
                        products(v, &u, m, stride, rows, padded);
                        transform_output(g, m, (tiles, stride), (cols, padded), epilogue, out);
                    }
                }
            })
        });
    out
}

/// Tiles per strip, a multiple of the register block: as many as fit the strip's transformed
/// source and products (POSITIONS floats per tile and channel each) in half of a 1 MiB L2 cache,
/// and at least two blocks: with many channels, the transformed kernel, which the products read
/// once per strip, outweighs them (measured: conv_3b's 16 × 16 images with 256 channels run 10–15 %
/// faster in strips of 16 tiles than of 8; strips of 128 tiles, 8 images, were slower again).
fn strip_tiles(rows: usize, padded: usize) -> usize {
    const BUDGET: usize = 512 * 1024;
    let per_tile = POSITIONS * (rows + padded) * std::mem::size_of::<f32>();
    (BUDGET / per_tile / TILE_BLOCK).max(2) * TILE_BLOCK
}

/// The four vectors z0..z3 times A, the transpose of Aᵀ: (z0, z0 + z1 + z2 + z3,
/// z0 − z1 + z2 − z3, z0 + 2(z1 + 2(z2 + 2z3)), z0 − (z1 − (z2 − z3/2)/2)/2, z3).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn a_times_6(z: [__m512; 4]) -> [__m512; 6] {
    let (half, two) = (_mm512_set1_ps(0.5), _mm512_set1_ps(2.0));
    let even = _mm512_add_ps(z[0], z[2]);
    let odd = _mm512_add_ps(z[1], z[3]);
    let doubling = _mm512_fmadd_ps(two, _mm512_fmadd_ps(two, z[3], z[2]), z[1]);
    let halving = _mm512_fnmadd_ps(half, _mm512_fnmadd_ps(half, z[3], z[2]), z[1]);
    [
        z[0],
        _mm512_add_ps(even, odd),
        _mm512_sub_ps(even, odd),
        _mm512_fmadd_ps(two, doubling, z[0]),
        _mm512_fnmadd_ps(half, halving, z[0]),
        z[3],
    ]
}

/// E = A e Aᵀ of every 4 × 4 block e of image `b`'s output gradient `grad` into `out`:
/// (POSITIONS, tiles, padded), zero beyond grad's channels, CHUNK channels (one vector) at a time
/// (plain loops and an array not zeroed first, as in transform_tiles).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_gradient(
    g: &ConvGeometry,
    grad: Source,
    padded: usize,
    b: usize,
    tiles: usize,
    out: &mut [f32],
) {
    let tw = g.w / OUT_SIDE;
    let tiles_in_image = (g.h / OUT_SIDE) * tw;
    for t in 0..tiles_in_image {
        let (ty, tx) = (t / tw, t % tw);
        for c0 in (0..padded).step_by(CHUNK) {
            if t + 1 < tiles_in_image {
                let (ny, nx) = ((t + 1) / tw, (t + 1) % tw);
                for i in 0..OUT_SIDE {
                    for j in 0..OUT_SIDE {
                        grad.prefetch(b, (OUT_SIDE * ny + i + 1, OUT_SIDE * nx + j + 1), c0);
                    }
                }
            }
            // Columns first: w_j = A e_{·j}; then each row of w times Aᵀ.
            let mut w = [[MaybeUninit::<__m512>::uninit(); IN_SIDE]; OUT_SIDE];
            for (j, column) in w.iter_mut().enumerate() {
                let mut e = [_mm512_setzero_ps(); OUT_SIDE];
                for (i, value) in e.iter_mut().enumerate() {
                    // Bordered coordinates: the block has no border.
                    let pixel = (OUT_SIDE * ty + i + 1, OUT_SIDE * tx + j + 1);
                    *value = grad.chunk(b, pixel, c0);
                }
                for (place, value) in column.iter_mut().zip(a_times_6(e)) {
                    place.write(value);
                }
            }
            for i in 0..IN_SIDE {
                let mut row = [_mm512_setzero_ps(); OUT_SIDE];
                for (value, column) in row.iter_mut().zip(&w) {
                    // SAFETY: the column pass wrote every element of w.
                    *value = unsafe { column[i].assume_init() };
                }
                for (j, value) in a_times_6(row).into_iter().enumerate() {
                    let at = ((IN_SIDE * i + j) * tiles + t) * padded + c0;
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

/// ∂L/∂kernel = Gᵀ M G for every (source, output) channel pair, from M (POSITIONS, rows, padded),
/// written as (TAPS, cin, cout): tap (ky, kx) is Σ_ξ G[i][ky] G[j][kx] M_ξ for ξ = (i, j), summed
/// in f64 (36 terms: in f32 the worst error on the test sizes grows from 3.0 to 4.1 ε · Σ|terms|)
/// a row of output channels at a time. A task takes a source channel, whose
/// 36 rows of M then serve all nine taps from L1 and L2. The caller has checked that the CPU has
/// AVX-512.
fn transform_kernel_gradient(
    m: &[f32],
    (rows, padded): (usize, usize),
    (cin, cout): (usize, usize),
) -> Vec<f32> {
    let weights: [[f64; POSITIONS]; TAPS] = std::array::from_fn(|tap| {
        std::array::from_fn(|xi| G[xi / IN_SIDE][tap / 3] * G[xi % IN_SIDE][tap % 3])
    });
    let mut out = vec![0f32; TAPS * cin * cout];
    rows_across_planes(&mut out, cin, cout)
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || vec![0f64; cout],
            |sum, (r, outs)| {
                let positions = (0..POSITIONS).map(|xi| &m[(xi * rows + r) * padded..]);
                for (weights, out) in weights.iter().zip(outs) {
                    let terms = weights.iter().copied().zip(positions.clone());
                    // SAFETY: the caller checked the CPU for AVX-512.
                    unsafe { weighted_sum_f64(terms, sum, out) };
                }
            },
        );
    out
}

/// Images per group of the kernel gradient: as many as keep the group's transformed source and
/// gradient (POSITIONS floats per tile and channel each) within 16 MiB, half the L3 cache, in a
/// multiple of the thread count, so that every thread transforms as many images (64 × 64 images
/// with 64 channels came in groups of 3 on 2 threads).
fn group_images(g: &ConvGeometry, rows: usize, padded: usize) -> usize {
    const BUDGET: usize = 16 << 20;
    let threads = rayon::current_num_threads();
    let tiles = (g.h / OUT_SIDE) * (g.w / OUT_SIDE);
    let per_image = POSITIONS * tiles * (rows + padded) * std::mem::size_of::<f32>();
    (BUDGET / per_image / threads * threads).clamp(threads, g.batch.next_multiple_of(threads))
}

/// ∂L/∂kernel (TAPS, cin, cout) by Winograd F(3×3, 4×4), the transpose of the forward algorithm:
/// for a 4 × 4 block e of the output gradient and its 6 × 6 source tile d, the kernel's gradient
/// gains Gᵀ[(A e Aᵀ) ⊙ (Bᵀ d B)]G, 36 products per channel pair instead of 144. The 36 products of
/// a tile are summed over every tile of every image first, as 36 matrix products M_ξ = Σ V_ξᵀ E_ξ,
/// and transformed once at the end. Images go in groups: the group's transforms one image per
/// thread, then its products one position ξ per thread, each M_ξ summed in image and tile order
/// (so the result does not depend on the thread count). The caller has checked
/// [`applies`] and that the CPU has AVX-512.
#[cfg(target_arch = "x86_64")]
pub(super) fn kernel_gradient(
    g: &ConvGeometry,
    x: &[f32],
    grad_out: &[f32],
    (cin, cout): (usize, usize),
) -> Vec<f32> {
    let (src, grad) = (Source::new(g, x, cin), Source::new(g, grad_out, cout));
    let rows = cin.next_multiple_of(CHUNK);
    let padded = cout.next_multiple_of(LANES_512);
    let tiles = (g.h / OUT_SIDE) * (g.w / OUT_SIDE);
    let group = group_images(g, rows, padded);
    let mut m = vec![0f32; POSITIONS * rows * padded];
    with_scratch(group * POSITIONS * tiles * (rows + padded), |scratch| {
        let (v, e) = scratch.split_at_mut(group * POSITIONS * tiles * rows);
        for first in (0..g.batch).step_by(group) {
            let images = group.min(g.batch - first);
            v.par_chunks_mut(POSITIONS * tiles * rows)
                .zip(e.par_chunks_mut(POSITIONS * tiles * padded))
                .take(images)
                .enumerate()
                .for_each(|(i, (v, e))| {
                    // SAFETY: the caller checked the CPU for AVX-512.
                    unsafe {
                        transform_tiles(g, src, first + i, 0..tiles, tiles, v);
                        transform_gradient(g, grad, padded, first + i, tiles, e);
                    }
                });
            let (v, e) = (&*v, &*e);
            m.par_chunks_mut(rows * padded)
                .enumerate()
                .for_each(|(xi, m)| {
                    let at = |i: usize, width: usize| (i * POSITIONS + xi) * tiles * width;
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
    });
    transform_kernel_gradient(&m, (rows, padded), (cin, cout))
}

/// The kernel is 3 × 3, as the transform assumes.
const _: () = assert!(TAPS == 9);
