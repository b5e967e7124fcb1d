//! CPU twin of shaders/conv.wgsl, blocked for the cache and the vector unit: the input is copied once
//! into a zero-bordered buffer so no tap needs a bounds test, and each inner step keeps a tile of
//! PIXELS output pixels × LANES channels in registers. The input gradient is the forward convolution
//! of the output gradient with the kernel flipped in space and transposed in channels. Every sum runs
//! in a fixed order, so results do not depend on the thread count.
//!
//! The portable tiles are fixed-size array loops that LLVM vectorises. On x86-64 the tiles are also
//! written with AVX2 and with AVX-512 intrinsics and chosen at run time: AVX-512 (32 registers of 16
//! floats: 8 pixels × 32 channels, or 8 × 32 channels of the kernel gradient) for outputs of 32
//! channels or more where the CPU has it, else AVX2 (4 × 16). The default target (SSE2, 4 lanes) has
//! too few registers to hold a tile. The kernel gradient of images of 32 x 32 pixels and more is
//! summed image by image, each image's tiles computed while it is in cache. On the AVX-512 path the
//! forward pass, the input gradient and the kernel gradient of images of 8 x 8 to 64 x 64 pixels
//! with 32 or more channels use Winograd F(4×4, 3×3) and its transpose F(3×3, 4×4), 4× fewer
//! multiplications (`winograd.rs`); [`Summation::Direct`] turns Winograd off. Outputs of a few
//! channels (the heads) take the narrow path (`conv/narrow.rs`). A fused ReLU (`conv2d_relu`) is
//! applied as each output is stored.

use rayon::prelude::*;

use crate::ops::conv::{ConvGeometry, KERNEL_SIZE};
use crate::ops::layers::Activation;

use super::layers::relu_backward_in_place;

#[cfg(target_arch = "x86_64")]
use super::winograd;

mod narrow;

use narrow::{narrow_convolve, narrow_kernel_grad, NARROW_COLS};

pub(super) const TAPS: usize = KERNEL_SIZE * KERNEL_SIZE;
/// Output pixels along a row per register tile.
const PIXELS: usize = 4;
/// Output channels per register tile (two AVX2 vectors).
const LANES: usize = 16;
/// The AVX-512 tile: output pixels along a row, and output channels (two 16-float vectors).
const PIXELS_512: usize = 8;
pub(super) const LANES_512: usize = 32;
/// Input channels per register tile of the kernel gradient (AVX2, AVX-512).
const CIN_TILE: usize = 4;
const CIN_TILE_512: usize = 8;
/// From this many pixels per image on, the kernel gradient is summed image by image (measured on
/// the PtychoPINN layers: faster from 32 x 32 up, slower below).
const PER_IMAGE_PIXELS: usize = 1024;

/// What is done to each output sum as it is stored: the bias added, then ReLU when fused; and, for
/// an input gradient passed back through the ReLU that produced the convolution's input, zero where
/// that ReLU's output `through_relu` (the shape of the output) is ≤ 0. [`Epilogue::apply`] leaves
/// that to the caller: Winograd's output transform applies it as it stores, the other paths in a
/// pass after (`layers::relu_backward_in_place`).
#[derive(Clone, Copy)]
pub(super) struct Epilogue<'a> {
    pub(super) bias: Option<&'a [f32]>,
    pub(super) relu: bool,
    pub(super) through_relu: Option<&'a [f32]>,
}

impl Epilogue<'_> {
    #[inline(always)]
    pub(super) fn apply(self, channel: usize, sum: f32) -> f32 {
        let v = sum + self.bias.map_or(0.0, |bias| bias[channel]);
        if self.relu {
            Activation::Relu.apply(v)
        } else {
            v
        }
    }
}

fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// (B, H, W, C) copied into (B, H + 2, Wp + 2, Cp) with zeros around, Wp = W rounded up to PIXELS
/// and Cp = C rounded up to `channel_multiple`: tap (ky, kx) of output pixel (y, x) reads padded
/// pixel (y + ky, x + kx).
struct Bordered {
    data: Vec<f32>,
    h: usize,
    w: usize,
    c: usize,
}

impl Bordered {
    fn new(g: &ConvGeometry, src: &[f32], c: usize, channel_multiple: usize) -> Self {
        let (h, w, cp) = (
            g.h + 2,
            round_up(g.w, PIXELS_512) + 2,
            round_up(c, channel_multiple),
        );
        let mut data = vec![0f32; g.batch * h * w * cp];
        data.par_chunks_mut(h * w * cp)
            .enumerate()
            .for_each(|(b, image)| {
                for y in 0..g.h {
                    for x in 0..g.w {
                        let from = ((b * g.h + y) * g.w + x) * c;
                        let to = ((y + 1) * w + x + 1) * cp;
                        image[to..to + c].copy_from_slice(&src[from..from + c]);
                    }
                }
            });
        Self { data, h, w, c: cp }
    }

    fn pixel(&self, b: usize, y: usize, x: usize) -> usize {
        ((b * self.h + y) * self.w + x) * self.c
    }
}

/// A kernel laid out (tap, rows, padded): rows source channels, padded = output channels rounded up
/// to LANES, zeros in the extra ones.
pub(super) struct Packed {
    pub(super) data: Vec<f32>,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) padded: usize,
}

/// `flip` gives the input gradient's kernel: tap 8 − t and channels transposed, so it maps the
/// forward's cout channels to its cin.
fn packed_kernel(kernel: &[f32], cin: usize, cout: usize, flip: bool, lanes: usize) -> Packed {
    let (rows, cols) = if flip { (cout, cin) } else { (cin, cout) };
    let padded = round_up(cols, lanes);
    let mut packed = vec![0f32; TAPS * rows * padded];
    packed
        .par_chunks_mut(rows * padded)
        .enumerate()
        .for_each(|(t, block)| {
            let tap = if flip { TAPS - 1 - t } else { t };
            let from = &kernel[tap * cin * cout..][..cin * cout];
            for (i, source) in from.chunks_exact(cout).enumerate() {
                if flip {
                    for (o, &v) in source.iter().enumerate() {
                        block[o * padded + i] = v;
                    }
                } else {
                    block[i * padded..][..cout].copy_from_slice(source);
                }
            }
        });
    Packed {
        data: packed,
        rows,
        cols,
        padded,
    }
}

/// Output channels `channels` (whole register tiles) of one output row (b, y) of a convolution:
/// out (W, cols) = bias + Σ_tap Σ_r src · kernel.
#[inline(always)]
fn conv_row(
    src: &Bordered,
    kernel: &Packed,
    epilogue: Epilogue,
    (b, y): (usize, usize),
    out_row: &mut [f32],
    channels: std::ops::Range<usize>,
) {
    let Packed {
        rows, cols, padded, ..
    } = *kernel;
    let width = out_row.len() / cols;
    for x0 in (0..width).step_by(PIXELS) {
        for c0 in channels.clone().step_by(LANES) {
            let mut acc = [[0f32; LANES]; PIXELS];
            for tap in 0..TAPS {
                let (ky, kx) = (tap / KERNEL_SIZE, tap % KERNEL_SIZE);
                let base = src.pixel(b, y + ky, x0 + kx);
                let pixels: [&[f32]; PIXELS] =
                    std::array::from_fn(|p| &src.data[base + p * src.c..][..rows]);
                let taps = &kernel.data[tap * rows * padded..(tap + 1) * rows * padded];
                for (r, k) in taps.chunks_exact(padded).enumerate() {
                    let k: &[f32; LANES] = k[c0..c0 + LANES].try_into().unwrap();
                    let v: [f32; PIXELS] = std::array::from_fn(|p| pixels[p][r]);
                    for (acc_p, v) in acc.iter_mut().zip(v) {
                        for (a, kv) in acc_p.iter_mut().zip(k) {
                            *a += v * kv;
                        }
                    }
                }
            }
            for (p, acc_p) in acc.iter().enumerate().take(width - x0) {
                let o = &mut out_row[(x0 + p) * cols..(x0 + p + 1) * cols];
                for (c, a) in acc_p.iter().enumerate().take(cols.saturating_sub(c0)) {
                    o[c0 + c] = epilogue.apply(c0 + c, *a);
                }
            }
        }
    }
}

/// The register tiles with vector intrinsics, written once and instantiated for AVX2 (two 8-float
/// registers per tile row) and AVX-512 (two 16-float registers): LLVM does not keep the portable
/// tiles in registers. `$row` is conv_row's, `$grad` kernel_grad_tile's, with `$pixels` output
/// pixels and `$cin` input channels per tile and `$width` floats per register.
macro_rules! vector_tiles {
    ($feature:literal, $row:ident, $grad:ident, $tile:ident, $pixels:expr, $cin:expr, $width:expr,
     $zero:ident, $load:ident, $splat:ident, $fma:ident, $store:ident, $add:ident,
     $max:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        fn $row(
            src: &Bordered,
            kernel: &Packed,
            epilogue: Epilogue,
            (b, y): (usize, usize),
            out_row: &mut [f32],
            channels: std::ops::Range<usize>,
        ) {
            use std::arch::x86_64::*;
            const LANES: usize = 2 * $width;
            let Packed {
                rows, cols, padded, ..
            } = *kernel;
            let width = out_row.len() / cols;
            for x0 in (0..width).step_by($pixels) {
                for c0 in channels.clone().step_by(LANES) {
                    let mut acc = [[$zero(); 2]; $pixels];
                    for tap in 0..TAPS {
                        let (ky, kx) = (tap / KERNEL_SIZE, tap % KERNEL_SIZE);
                        let base = src.pixel(b, y + ky, x0 + kx);
                        let pixels = &src.data[base..base + ($pixels - 1) * src.c + rows];
                        let taps = &kernel.data[tap * rows * padded..(tap + 1) * rows * padded];
                        for r in 0..rows {
                            let k = &taps[r * padded + c0..r * padded + c0 + LANES];
                            // SAFETY: k holds LANES floats and pixels p·c + r < pixels.len() for
                            // p < $pixels (the bordered rows are padded to a multiple of it).
                            unsafe {
                                let k0 = $load(k.as_ptr());
                                let k1 = $load(k.as_ptr().add($width));
                                for (p, acc_p) in acc.iter_mut().enumerate() {
                                    let v = $splat(*pixels.get_unchecked(p * src.c + r));
                                    acc_p[0] = $fma(v, k0, acc_p[0]);
                                    acc_p[1] = $fma(v, k1, acc_p[1]);
                                }
                            }
                        }
                    }
                    let pixels = acc.iter().enumerate().take(width.saturating_sub(x0));
                    if c0 + LANES <= cols {
                        // Whole registers: the epilogue in vectors (with few source channels,
                        // conv_1a's one, a scalar epilogue took most of the time).
                        let bias = epilogue.bias.map(|bias| &bias[c0..c0 + LANES]);
                        // SAFETY: bias holds LANES = 2 × $width floats.
                        let bias = bias.map_or([$zero(); 2], |bias| unsafe {
                            [$load(bias.as_ptr()), $load(bias.as_ptr().add($width))]
                        });
                        for (p, acc_p) in pixels {
                            let o = &mut out_row[(x0 + p) * cols + c0..][..LANES];
                            let mut v = [$add(acc_p[0], bias[0]), $add(acc_p[1], bias[1])];
                            if epilogue.relu {
                                // As f32::max(v, 0): NaN becomes 0.
                                v = v.map(|v| $max(v, $zero()));
                            }
                            // SAFETY: o holds 2 × $width floats.
                            unsafe {
                                $store(o.as_mut_ptr(), v[0]);
                                $store(o.as_mut_ptr().add($width), v[1]);
                            }
                        }
                        continue;
                    }
                    for (p, acc_p) in pixels {
                        let mut lanes = [0f32; LANES];
                        // SAFETY: lanes holds 2 × $width floats.
                        unsafe {
                            $store(lanes.as_mut_ptr(), acc_p[0]);
                            $store(lanes.as_mut_ptr().add($width), acc_p[1]);
                        }
                        let o = &mut out_row[(x0 + p) * cols..(x0 + p + 1) * cols];
                        for (c, a) in lanes.iter().enumerate().take(cols.saturating_sub(c0)) {
                            o[c0 + c] = epilogue.apply(c0 + c, *a);
                        }
                    }
                }
            }
        }

        #[cfg(target_arch = "x86_64")]
        type $tile = [[[f32; 2 * $width]; $cin]; TAPS];

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        fn $grad(
            g: &ConvGeometry,
            x: &Bordered,
            grad_out: &[f32],
            cout_padded: usize,
            (ci0, co0): (usize, usize),
            images: std::ops::Range<usize>,
        ) -> $tile {
            use std::arch::x86_64::*;
            const LANES: usize = 2 * $width;
            let mut total = [[[0f32; LANES]; $cin]; TAPS];
            for row in images.start * g.h..images.end * g.h {
                let (b, y) = (row / g.h, row % g.h);
                let go_row = &grad_out[row * g.w * cout_padded..(row + 1) * g.w * cout_padded];
                for (tap, total_tap) in total.iter_mut().enumerate() {
                    let (ky, kx) = (tap / KERNEL_SIZE, tap % KERNEL_SIZE);
                    let base = x.pixel(b, y + ky, kx) + ci0;
                    let x_row = &x.data[base..base + (g.w - 1) * x.c + $cin];
                    let mut acc = [[$zero(); 2]; $cin];
                    for xx in 0..g.w {
                        let go = &go_row[xx * cout_padded + co0..xx * cout_padded + co0 + LANES];
                        // SAFETY: go holds LANES floats; xx·c + i < x_row.len() for i < $cin.
                        unsafe {
                            let g0 = $load(go.as_ptr());
                            let g1 = $load(go.as_ptr().add($width));
                            for (i, acc_i) in acc.iter_mut().enumerate() {
                                let v = $splat(*x_row.get_unchecked(xx * x.c + i));
                                acc_i[0] = $fma(v, g0, acc_i[0]);
                                acc_i[1] = $fma(v, g1, acc_i[1]);
                            }
                        }
                    }
                    for (t, a) in total_tap.iter_mut().zip(&acc) {
                        let mut lanes = [0f32; LANES];
                        // SAFETY: lanes holds 2 × $width floats.
                        unsafe {
                            $store(lanes.as_mut_ptr(), a[0]);
                            $store(lanes.as_mut_ptr().add($width), a[1]);
                        }
                        t.iter_mut().zip(&lanes).for_each(|(tv, av)| *tv += av);
                    }
                }
            }
            total
        }
    };
}

vector_tiles!(
    "avx2,fma",
    conv_row_avx2,
    kernel_grad_tile_avx2,
    KernelGradTileAvx2,
    PIXELS,
    CIN_TILE,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps,
    _mm256_add_ps,
    _mm256_max_ps
);
vector_tiles!(
    "avx512f",
    conv_row_avx512,
    kernel_grad_tile_avx512,
    KernelGradTile512,
    PIXELS_512,
    CIN_TILE_512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    _mm512_add_ps,
    _mm512_max_ps
);

/// The vector path a convolution takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Fewer than NARROW_COLS output channels: [`narrow_convolve`].
    Narrow,
    Portable,
    Avx2,
    Avx512,
}

/// The narrow path for fewer than NARROW_COLS output channels; AVX-512 where the CPU has it and the
/// output has at least 32 channels (fewer would leave most lanes idle); else AVX2 where the CPU has
/// it.
fn path_for(cols: usize) -> Path {
    if cols < NARROW_COLS {
        return Path::Narrow;
    }
    #[cfg(target_arch = "x86_64")]
    if cols >= LANES_512 && std::is_x86_feature_detected!("avx512f") {
        return Path::Avx512;
    }
    if has_avx2() {
        Path::Avx2
    } else {
        Path::Portable
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// out (B, H, W, cols) from the bordered source and a kernel packed for `path`.
fn convolve(
    g: &ConvGeometry,
    src: &Bordered,
    kernel: &Packed,
    epilogue: Epilogue,
    path: Path,
) -> Vec<f32> {
    let cols = kernel.cols;
    let mut out = vec![0f32; g.pixels() * cols];
    // Where the kernel outweighs an image (the deep layers), a task is a whole image, so that each
    // slice of the kernel (one register tile's channels) is read once per image rather than once per
    // row; elsewhere a task is a row, whose source rows stay in cache across the slices.
    let image_floats = src.h * src.w * src.c;
    let rows_per_task = if kernel.data.len() > image_floats && g.batch >= 4 {
        g.h
    } else {
        1
    };
    let lanes = lanes_of(path);
    out.par_chunks_mut(rows_per_task * g.w * cols)
        .enumerate()
        .for_each(|(task, out_rows)| {
            for c0 in (0..kernel.padded).step_by(lanes) {
                for (k, out_row) in out_rows.chunks_mut(g.w * cols).enumerate() {
                    let row = task * rows_per_task + k;
                    let row = (row / g.h, row % g.h);
                    let channels = c0..c0 + lanes;
                    match path {
                        // SAFETY: path_for checked the CPU for these features.
                        #[cfg(target_arch = "x86_64")]
                        Path::Avx512 => unsafe {
                            conv_row_avx512(src, kernel, epilogue, row, out_row, channels)
                        },
                        #[cfg(target_arch = "x86_64")]
                        Path::Avx2 => unsafe {
                            conv_row_avx2(src, kernel, epilogue, row, out_row, channels)
                        },
                        _ => conv_row(src, kernel, epilogue, row, out_row, channels),
                    }
                }
            }
        });
    out
}

/// How the convolutions sum: by Winograd where it applies (the default, fastest), or always by the
/// direct sums, whose rounding does not change from one evaluation to the next when a weight
/// moves slightly (for finite-difference checks; Winograd's transforms round sums of whole tiles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Summation {
    #[default]
    Fastest,
    Direct,
}

/// Winograd where it applies on the AVX-512 path ([`winograd::applies`]), the summation allows it
/// and the values cannot overflow in it ([`winograd::safe`]), else the direct tiles; `source` has
/// `channels` channels.
fn convolve_by_path(
    g: &ConvGeometry,
    source: &[f32],
    channels: usize,
    kernel: &Packed,
    epilogue: Epilogue,
    (path, summation): (Path, Summation),
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if path == Path::Avx512
        && summation == Summation::Fastest
        && winograd::applies(g, kernel.rows, kernel.cols)
        && winograd::safe(&kernel.data)
        && winograd::safe(source)
    {
        return winograd::convolve(g, (source, channels), kernel, epilogue);
    }
    let src = Bordered::new(g, source, channels, 1);
    let mut out = convolve(g, &src, kernel, epilogue, path);
    if let Some(relu_out) = epilogue.through_relu {
        relu_backward_in_place(&mut out, relu_out);
    }
    out
}

fn lanes_of(path: Path) -> usize {
    if path == Path::Avx512 {
        LANES_512
    } else {
        LANES
    }
}

/// out (B, H, W, Cout) = bias + Σ in ⋆ kernel, then ReLU when `relu` (fused into the store).
pub(super) fn forward(
    g: &ConvGeometry,
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    relu: bool,
    summation: Summation,
) -> Vec<f32> {
    forward_with(g, x, kernel, bias, relu, (path_for(g.cout), summation))
}

fn forward_with(
    g: &ConvGeometry,
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    relu: bool,
    (path, summation): (Path, Summation),
) -> Vec<f32> {
    let epilogue = Epilogue {
        bias: Some(bias),
        relu,
        through_relu: None,
    };
    if path == Path::Narrow {
        return narrow_convolve(g, x, kernel, epilogue, false);
    }
    let packed = packed_kernel(kernel, g.cin, g.cout, false, lanes_of(path));
    convolve_by_path(g, x, g.cin, &packed, epilogue, (path, summation))
}

/// ∂L/∂in (B, H, W, Cin) from ∂L/∂out (B, H, W, Cout); with `through_relu`, the output of the ReLU
/// that produced the input, passed back through it (zero where that output is ≤ 0).
pub(super) fn backward_input(
    g: &ConvGeometry,
    grad_out: &[f32],
    kernel: &[f32],
    summation: Summation,
    through_relu: Option<&[f32]>,
) -> Vec<f32> {
    backward_input_with(
        g,
        grad_out,
        kernel,
        (path_for(g.cin), summation),
        through_relu,
    )
}

fn backward_input_with(
    g: &ConvGeometry,
    grad_out: &[f32],
    kernel: &[f32],
    (path, summation): (Path, Summation),
    through_relu: Option<&[f32]>,
) -> Vec<f32> {
    let epilogue = Epilogue {
        bias: None,
        relu: false,
        through_relu,
    };
    if path == Path::Narrow {
        let mut out = narrow_convolve(g, grad_out, kernel, epilogue, true);
        if let Some(relu_out) = through_relu {
            relu_backward_in_place(&mut out, relu_out);
        }
        return out;
    }
    let packed = packed_kernel(kernel, g.cin, g.cout, true, lanes_of(path));
    convolve_by_path(g, grad_out, g.cout, &packed, epilogue, (path, summation))
}

type KernelGradTile = [[[f32; LANES]; CIN_TILE]; TAPS];

/// The kernel gradient of one tile of CIN_TILE input × LANES output channels, all taps, over the
/// rows of `images`: summed over the pixels of each row and then over the rows in order.
fn kernel_grad_tile(
    g: &ConvGeometry,
    x: &Bordered,
    grad_out: &[f32],
    cout_padded: usize,
    (ci0, co0): (usize, usize),
    images: std::ops::Range<usize>,
) -> KernelGradTile {
    let mut total = [[[0f32; LANES]; CIN_TILE]; TAPS];
    for row in images.start * g.h..images.end * g.h {
        let (b, y) = (row / g.h, row % g.h);
        for (tap, total_tap) in total.iter_mut().enumerate() {
            let (ky, kx) = (tap / KERNEL_SIZE, tap % KERNEL_SIZE);
            let mut acc = [[0f32; LANES]; CIN_TILE];
            for xx in 0..g.w {
                let v = &x.data[x.pixel(b, y + ky, xx + kx) + ci0..][..CIN_TILE];
                let go = &grad_out[(row * g.w + xx) * cout_padded + co0..][..LANES];
                for (acc_i, vi) in acc.iter_mut().zip(v) {
                    for (a, gv) in acc_i.iter_mut().zip(go) {
                        *a += vi * gv;
                    }
                }
            }
            for (t, a) in total_tap.iter_mut().zip(&acc) {
                t.iter_mut().zip(a).for_each(|(tv, av)| *tv += av);
            }
        }
    }
    total
}

/// ∂L/∂bias: the output gradient summed over every pixel, in blocks of BIAS_BLOCK pixels, each
/// summed in order and then the blocks in order, so that the threads share the work (a single
/// thread took 1 % of a training step) and the sum does not depend on their number.
fn bias_grad(grad_out: &[f32], cout: usize) -> Vec<f32> {
    const BIAS_BLOCK: usize = 1024;
    let add = |mut sum: Vec<f32>, pixel: &[f32]| {
        sum.iter_mut().zip(pixel).for_each(|(a, v)| *a += v);
        sum
    };
    let blocks: Vec<Vec<f32>> = grad_out
        .par_chunks(BIAS_BLOCK * cout)
        .map(|block| block.chunks(cout).fold(vec![0f32; cout], add))
        .collect();
    blocks.iter().map(Vec::as_slice).fold(vec![0f32; cout], add)
}

/// (∂L/∂kernel (3, 3, Cin, Cout), ∂L/∂bias (Cout)).
pub(super) fn backward_params(
    g: &ConvGeometry,
    x: &[f32],
    grad_out: &[f32],
    summation: Summation,
) -> (Vec<f32>, Vec<f32>) {
    backward_params_with(g, x, grad_out, (true, summation))
}

/// As [`backward_params`]; without `vector`, the portable tiles.
fn backward_params_with(
    g: &ConvGeometry,
    x: &[f32],
    grad_out: &[f32],
    (vector, summation): (bool, Summation),
) -> (Vec<f32>, Vec<f32>) {
    let (cin, cout) = (g.cin, g.cout);
    if vector && (cin < CIN_TILE || cout < NARROW_COLS) {
        return (
            narrow_kernel_grad(g, x, grad_out),
            bias_grad(grad_out, cout),
        );
    }
    // The tile: input × output channels (the AVX-512 one where the CPU has it and cout is wide).
    let wide = vector && path_for(cout) == Path::Avx512;
    #[cfg(target_arch = "x86_64")]
    if wide
        && summation == Summation::Fastest
        && winograd::applies(g, cin, cout)
        && winograd::safe(x)
        && winograd::safe(grad_out)
    {
        return (
            winograd::kernel_gradient(g, x, grad_out, (cin, cout)),
            bias_grad(grad_out, cout),
        );
    }
    let (cin_tile, lanes) = if wide {
        (CIN_TILE_512, LANES_512)
    } else {
        (CIN_TILE, LANES)
    };
    let src = Bordered::new(g, x, cin, cin_tile);
    let cout_padded = round_up(cout, lanes);
    let mut go = vec![0f32; g.pixels() * cout_padded];
    go.par_chunks_mut(cout_padded)
        .zip(grad_out.par_chunks(cout))
        .for_each(|(to, from)| to[..cout].copy_from_slice(from));

    let tiles: Vec<(usize, usize)> = (0..src.c)
        .step_by(cin_tile)
        .flat_map(|ci0| (0..cout_padded).step_by(lanes).map(move |co0| (ci0, co0)))
        .collect();
    // A tile's gradient, flat as (tap, input channel of the tile, output lane).
    let tile_of = |tile: (usize, usize), images: std::ops::Range<usize>| -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: path_for checked the CPU for AVX-512.
            let t = unsafe { kernel_grad_tile_avx512(g, &src, &go, cout_padded, tile, images) };
            return t.as_flattened().as_flattened().to_vec();
        } else if vector && has_avx2() {
            // SAFETY: the CPU was checked for AVX2 and FMA.
            let t = unsafe { kernel_grad_tile_avx2(g, &src, &go, cout_padded, tile, images) };
            return t.as_flattened().as_flattened().to_vec();
        }
        let t = kernel_grad_tile(g, &src, &go, cout_padded, tile, images);
        t.as_flattened().as_flattened().to_vec()
    };
    let scatter = |gk: &mut [f32], (ci0, co0): (usize, usize), tile: &[f32]| {
        for (tap, tile_tap) in tile.chunks_exact(cin_tile * lanes).enumerate() {
            for (i, row) in tile_tap
                .chunks_exact(lanes)
                .enumerate()
                .take(cin.saturating_sub(ci0))
            {
                let at = (tap * cin + ci0 + i) * cout + co0;
                let n = cout.saturating_sub(co0).min(lanes);
                gk[at..at + n].copy_from_slice(&row[..n]);
            }
        }
    };
    let mut gk = vec![0f32; TAPS * cin * cout];
    if g.h * g.w >= PER_IMAGE_PIXELS {
        // Large images: one partial gradient per image, its tiles computed while the image is in
        // cache, the partials summed in image order (so the result does not depend on the thread
        // count).
        let partials: Vec<Vec<f32>> = (0..g.batch)
            .into_par_iter()
            .map(|image| {
                let mut partial = vec![0f32; TAPS * cin * cout];
                for &tile in &tiles {
                    scatter(&mut partial, tile, &tile_of(tile, image..image + 1));
                }
                partial
            })
            .collect();
        for partial in &partials {
            gk.iter_mut().zip(partial).for_each(|(a, v)| *a += v);
        }
    } else {
        // Small images: each tile over the whole batch, tiles on the threads.
        let grads: Vec<Vec<f32>> = tiles
            .par_iter()
            .map(|&tile| tile_of(tile, 0..g.batch))
            .collect();
        for (&tile, grad) in tiles.iter().zip(&grads) {
            scatter(&mut gk, tile, grad);
        }
    }
    (gk, bias_grad(grad_out, cout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The portable tiles, the narrow path and the AVX2 and AVX-512 tiles (those this CPU has) give
    /// the same sums up to rounding (in other orders, and the vector paths fuse multiply and add).
    /// Rounding error grows with the magnitudes summed, not with the result, so each difference is
    /// bounded by a multiple of ε · Σ|terms|, the same convolution of the absolute values: 4 for
    /// the direct sums, 16 for the Winograd F(4×4, 3×3) forward and input gradient, whose
    /// transforms round sums of a whole 6 × 6 tile (most of all at image corners, where few of the
    /// tile's pixels are terms of an output). Measured on these sizes: at most 1.4 direct and
    /// 7.6 Winograd. A wrong index, tap or transform coefficient gives differences of the order
    /// of the terms themselves. Sizes cross the pixel and lane tiles of every path; the kernel
    /// gradient is taken image by image, over the whole batch and by the narrow path; one case
    /// runs whole images per task, and three take the Winograd paths on AVX-512 (forward, input and
    /// kernel gradients): one in several strips with a partial last one, one of 8 × 12 images in
    /// strips of two images (and a last task of one).
    #[test]
    fn portable_and_vector_paths_agree() {
        let mut paths = vec![Path::Narrow];
        if has_avx2() {
            paths.push(Path::Avx2);
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            paths.push(Path::Avx512);
        }
        let close_within = |a: &[f32], b: &[f32], magnitude: &[f32], epsilons: f32| {
            assert_eq!(a.len(), b.len());
            for ((u, v), m) in a.iter().zip(b).zip(magnitude) {
                assert!(
                    (u - v).abs() <= epsilons * f32::EPSILON * m,
                    "{u} vs {v} (Σ|terms| {m})"
                );
            }
        };
        let close = |a: &[f32], b: &[f32], magnitude: &[f32]| close_within(a, b, magnitude, 4.0);
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
        for (batch, h, w, cin, cout) in [
            (2, 5, 7, 6, 19),
            (2, 3, 11, 5, 37),
            (2, 32, 33, 3, 5),
            (4, 3, 5, 40, 37),
            (2, 4, 6, 21, 1),
            (2, 7, 9, 60, 4),
            (2, 28, 36, 40, 37),
            (1, 20, 20, 40, 37),
            (3, 8, 12, 40, 37),
        ] {
            let g = ConvGeometry {
                batch,
                h,
                w,
                cin,
                cout,
            };
            let mut rng = SplitMix64::new(3);
            let x = rng.real_vec(g.pixels() * g.cin);
            let k = rng.real_vec(TAPS * g.cin * g.cout);
            let bias = rng.real_vec(g.cout);
            let go = rng.real_vec(g.pixels() * g.cout);
            let forward = forward_with(
                &g,
                &x,
                &k,
                &bias,
                false,
                (Path::Portable, Summation::Fastest),
            );
            let fused = forward_with(
                &g,
                &x,
                &k,
                &bias,
                true,
                (Path::Portable, Summation::Fastest),
            );
            let relu: Vec<f32> = forward.iter().map(|&v| Activation::Relu.apply(v)).collect();
            assert_eq!(fused, relu, "the fused ReLU is the ReLU of the output");
            let input =
                backward_input_with(&g, &go, &k, (Path::Portable, Summation::Fastest), None);
            let (k0, b0) = backward_params_with(&g, &x, &go, (false, Summation::Fastest));
            let forward_magnitude = forward_with(
                &g,
                &abs(&x),
                &abs(&k),
                &abs(&bias),
                false,
                (Path::Portable, Summation::Fastest),
            );
            let input_magnitude = backward_input_with(
                &g,
                &abs(&go),
                &abs(&k),
                (Path::Portable, Summation::Fastest),
                None,
            );
            let (kernel_magnitude, bias_magnitude) =
                backward_params_with(&g, &abs(&x), &abs(&go), (false, Summation::Fastest));
            for &path in &paths {
                #[cfg(target_arch = "x86_64")]
                let winograd =
                    |rows, cols| path == Path::Avx512 && winograd::applies(&g, rows, cols);
                #[cfg(not(target_arch = "x86_64"))]
                let winograd = |_, _| false;
                let epsilons = |rows, cols| if winograd(rows, cols) { 16.0 } else { 4.0 };
                let forward_path =
                    forward_with(&g, &x, &k, &bias, false, (path, Summation::Fastest));
                let forward_epsilons = epsilons(g.cin, g.cout);
                close_within(
                    &forward,
                    &forward_path,
                    &forward_magnitude,
                    forward_epsilons,
                );
                let relu_path = forward_with(&g, &x, &k, &bias, true, (path, Summation::Fastest));
                close_within(&relu, &relu_path, &forward_magnitude, forward_epsilons);
                let input_path = backward_input_with(&g, &go, &k, (path, Summation::Fastest), None);
                let input_epsilons = epsilons(g.cout, g.cin);
                close_within(&input, &input_path, &input_magnitude, input_epsilons);
            }
            let (k1, b1) = backward_params_with(&g, &x, &go, (true, Summation::Fastest));
            close(&k0, &k1, &kernel_magnitude);
            close(&b0, &b1, &bias_magnitude);
        }
    }

    /// Values the Winograd transforms could overflow on take the direct path, so an overflow gives
    /// the direct sums' ±inf (which the non-finite checks downstream catch) rather than NaN (which a
    /// ReLU would turn into 0).
    #[test]
    fn overflowing_values_take_the_direct_path() {
        let g = ConvGeometry {
            batch: 1,
            h: 16,
            w: 16,
            cin: 32,
            cout: 32,
        };
        let x = vec![1e38f32; g.pixels() * g.cin];
        let k = vec![1.0f32; TAPS * g.cin * g.cout];
        let out = forward(&g, &x, &k, &vec![0.0; g.cout], false, Summation::Fastest);
        assert!(out.iter().all(|v| *v == f32::INFINITY));
    }
}
