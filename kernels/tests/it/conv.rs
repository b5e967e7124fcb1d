//! 3 x 3 'same' convolution (NHWC, Keras kernel layout) on every backend: forward and both backward
//! passes against a naive f64 oracle at sizes that cross the GEMM tiles, finite differences of the
//! backward passes, GPU against CPU with several gradient splits, and shape errors; on the GPU for
//! both kernel families (tiled for GPUs, lanes for CPU-type adapters).

use crate::common;
use ptycho_kernels::backend_tests;

use ptycho_kernels::cpu::CpuBackend;
use ptycho_kernels::gpu::{ConvKernels, GpuBackend, GpuSelection};
use ptycho_kernels::ops::layers::Activation;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::Backend;

struct Case {
    b: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    x: Vec<f32>,
    k: Vec<f32>,
    bias: Vec<f32>,
    g: Vec<f32>,
}

fn case(b: usize, h: usize, w: usize, cin: usize, cout: usize, seed: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    Case {
        b,
        h,
        w,
        cin,
        cout,
        x: rng.real_vec(b * h * w * cin),
        k: rng.real_vec(9 * cin * cout),
        bias: rng.real_vec(cout),
        g: rng.real_vec(b * h * w * cout),
    }
}

fn at(c: &Case, v: &[f32], channels: usize, b: usize, y: isize, x: isize, i: usize) -> f64 {
    if y < 0 || x < 0 || y >= c.h as isize || x >= c.w as isize {
        0.0
    } else {
        v[((b * c.h + y as usize) * c.w + x as usize) * channels + i] as f64
    }
}

fn kernel(c: &Case, ky: usize, kx: usize, i: usize, o: usize) -> f64 {
    c.k[((ky * 3 + kx) * c.cin + i) * c.cout + o] as f64
}

/// The three results by their defining sums, in f64.
fn oracle(c: &Case) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; c.b * c.h * c.w * c.cout];
    let mut gx = vec![0.0; c.b * c.h * c.w * c.cin];
    let mut gk = vec![0.0; 9 * c.cin * c.cout];
    let mut gb = vec![0.0; c.cout];
    for b in 0..c.b {
        for y in 0..c.h {
            for x in 0..c.w {
                let pixel = (b * c.h + y) * c.w + x;
                for o in 0..c.cout {
                    let go = c.g[pixel * c.cout + o] as f64;
                    gb[o] += go;
                    let mut acc = c.bias[o] as f64;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) =
                                (y as isize + ky as isize - 1, x as isize + kx as isize - 1);
                            for i in 0..c.cin {
                                let v = at(c, &c.x, c.cin, b, sy, sx, i);
                                acc += v * kernel(c, ky, kx, i, o);
                                gk[((ky * 3 + kx) * c.cin + i) * c.cout + o] += v * go;
                            }
                        }
                    }
                    out[pixel * c.cout + o] = acc;
                }
                for i in 0..c.cin {
                    let mut acc = 0.0;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) =
                                (y as isize - ky as isize + 1, x as isize - kx as isize + 1);
                            for o in 0..c.cout {
                                acc += at(c, &c.g, c.cout, b, sy, sx, o) * kernel(c, ky, kx, i, o);
                            }
                        }
                    }
                    gx[pixel * c.cin + i] = acc;
                }
            }
        }
    }
    (out, gx, gk, gb)
}

fn run<B: Backend>(bk: &B, c: &Case) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = bk.upload_f32(&[c.b, c.h, c.w, c.cin], &c.x).unwrap();
    let k = bk.upload_f32(&[3, 3, c.cin, c.cout], &c.k).unwrap();
    let bias = bk.upload_f32(&[c.cout], &c.bias).unwrap();
    let g = bk.upload_f32(&[c.b, c.h, c.w, c.cout], &c.g).unwrap();
    let out = bk.conv2d(&x, &k, &bias).unwrap();
    assert_eq!(out.shape(), [c.b, c.h, c.w, c.cout]);
    let gx = bk.conv2d_backward_input(&g, &k).unwrap();
    assert_eq!(gx.shape(), [c.b, c.h, c.w, c.cin]);
    let (gk, gb) = bk.conv2d_backward_params(&x, &g).unwrap();
    assert_eq!(gk.shape(), [3, 3, c.cin, c.cout]);
    assert_eq!(gb.shape(), [c.cout]);
    (
        bk.download_f32(&out).unwrap(),
        bk.download_f32(&gx).unwrap(),
        bk.download_f32(&gk).unwrap(),
        bk.download_f32(&gb).unwrap(),
    )
}

fn rel(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn matches_the_oracle<B: Backend>(bk: &B) {
    // Tile edges: M and N not multiples of 64, K not a multiple of 16, N above one tile.
    for (b, h, w, cin, cout) in [(2, 5, 7, 3, 70), (1, 9, 6, 20, 5), (3, 4, 4, 1, 64)] {
        let c = case(b, h, w, cin, cout, (b * 100 + cin) as u64);
        let (out, gx, gk, gb) = run(bk, &c);
        let (eo, ex, ek, eb) = oracle(&c);
        for (name, got, want) in [
            ("out", &out, &eo),
            ("grad x", &gx, &ex),
            ("grad kernel", &gk, &ek),
            ("grad bias", &gb, &eb),
        ] {
            let e = rel(got, want);
            assert!(
                e < 1e-6,
                "{name} {b}x{h}x{w}x{cin}->{cout}: relative error {e:.2e}"
            );
        }
    }
}

/// L = Σ g ⊙ conv(x, k, bias): central differences in x, k and bias against the backward passes.
fn backward_matches_finite_differences<B: Backend>(bk: &B) {
    let c = case(2, 6, 5, 4, 3, 8);
    let loss = |x: &[f32], k: &[f32], bias: &[f32]| -> f64 {
        let out = bk
            .conv2d(
                &bk.upload_f32(&[c.b, c.h, c.w, c.cin], x).unwrap(),
                &bk.upload_f32(&[3, 3, c.cin, c.cout], k).unwrap(),
                &bk.upload_f32(&[c.cout], bias).unwrap(),
            )
            .unwrap();
        bk.download_f32(&out)
            .unwrap()
            .iter()
            .zip(&c.g)
            .map(|(a, g)| *a as f64 * *g as f64)
            .sum()
    };
    let (_, gx, gk, gb) = run(bk, &c);
    let eps = 1e-2f32;
    let fd = |which: usize, j: usize| -> f64 {
        let (mut xp, mut kp, mut bp) = (c.x.clone(), c.k.clone(), c.bias.clone());
        let (mut xm, mut km, mut bm) = (c.x.clone(), c.k.clone(), c.bias.clone());
        match which {
            0 => {
                xp[j] += eps;
                xm[j] -= eps;
            }
            1 => {
                kp[j] += eps;
                km[j] -= eps;
            }
            _ => {
                bp[j] += eps;
                bm[j] -= eps;
            }
        }
        (loss(&xp, &kp, &bp) - loss(&xm, &km, &bm)) / (2.0 * eps as f64)
    };
    for (which, analytic, name) in [(0, &gx, "x"), (1, &gk, "kernel"), (2, &gb, "bias")] {
        for j in [
            0,
            analytic.len() / 3,
            analytic.len() / 2 + 1,
            analytic.len() - 1,
        ] {
            let (f, a) = (fd(which, j), analytic[j] as f64);
            assert!(
                (f - a).abs() < 2e-3 * a.abs().max(1.0),
                "∂L/∂{name}[{j}]: {f} vs {a}"
            );
        }
    }
}

fn shape_errors_name_the_operand<B: Backend>(bk: &B) {
    let x = bk.upload_f32(&[1, 4, 4, 3], &[0.0; 48]).unwrap();
    let k = bk.upload_f32(&[3, 3, 2, 5], &[0.0; 90]).unwrap();
    let bias = bk.upload_f32(&[5], &[0.0; 5]).unwrap();
    let err = bk.conv2d(&x, &k, &bias).err().unwrap().to_string();
    assert!(err.contains("kernel (3, 3, 3, Cout)"), "{err}");
    let k = bk.upload_f32(&[3, 3, 3, 5], &[0.0; 135]).unwrap();
    let bias = bk.upload_f32(&[4], &[0.0; 4]).unwrap();
    let err = bk.conv2d(&x, &k, &bias).err().unwrap().to_string();
    assert!(err.contains("bias (5,)"), "{err}");
    let g = bk.upload_f32(&[1, 4, 3, 5], &[0.0; 60]).unwrap();
    let err = bk.conv2d_backward_params(&x, &g).err().unwrap().to_string();
    assert!(err.contains("output gradient (1, 4, 4, 5)"), "{err}");
}

/// A ReLU output's stand-in: negatives (which no ReLU gives, but the op must treat as ≤ 0), exact
/// zeros and positives.
fn relu_like(rng: &mut SplitMix64, len: usize) -> Vec<f32> {
    let v = rng.real_vec(len);
    v.into_iter()
        .map(|v| if v.abs() < 0.3 { 0.0 } else { v })
        .collect()
}

/// The fused input gradient through a ReLU equals the input gradient followed by the ReLU's
/// gradient, exactly, on each path: Winograd (8 × 8, 32 channels on the AVX-512 CPU), the direct
/// tiles and the narrow path (2 input channels); and a wrongly shaped ReLU output is an error.
fn input_gradient_through_relu_equals_the_two_passes<B: Backend>(bk: &B) {
    for (b, h, w, cin, cout) in [(2, 8, 8, 32, 32), (2, 6, 10, 19, 40), (1, 8, 12, 2, 24)] {
        let c = case(b, h, w, cin, cout, 31);
        let relu_out = relu_like(&mut SplitMix64::new(32), b * h * w * cin);
        let g = bk.upload_f32(&[b, h, w, cout], &c.g).unwrap();
        let k = bk.upload_f32(&[3, 3, cin, cout], &c.k).unwrap();
        let r = bk.upload_f32(&[b, h, w, cin], &relu_out).unwrap();
        let fused = bk.conv2d_backward_input_relu(&g, &k, &r).unwrap();
        let plain = bk.conv2d_backward_input(&g, &k).unwrap();
        let separate = bk
            .activation_backward(Activation::Relu, &r, &plain)
            .unwrap();
        let fused = bk.download_f32(&fused).unwrap();
        let separate = bk.download_f32(&separate).unwrap();
        let differ = fused.iter().zip(&separate).position(|(f, s)| f != s);
        assert_eq!(differ, None, "{b}x{h}x{w} {cin}->{cout}");
        assert!(fused.contains(&0.0) && fused.iter().any(|&v| v != 0.0));
    }
    let g = bk.upload_f32(&[1, 4, 4, 5], &[0.0; 80]).unwrap();
    let k = bk.upload_f32(&[3, 3, 3, 5], &[0.0; 135]).unwrap();
    let r = bk.upload_f32(&[1, 4, 4, 5], &[0.0; 80]).unwrap();
    let err = bk.conv2d_backward_input_relu(&g, &k, &r).err().unwrap();
    assert!(err.to_string().contains("4, 4, 3"), "{err}");
}

backend_tests!(
    matches_the_oracle,
    backward_matches_finite_differences,
    shape_errors_name_the_operand,
    input_gradient_through_relu_equals_the_two_passes
);

/// A GPU backend of its own running the given kernel family (the shared one runs whichever family its
/// adapter type chooses), or None where the GPU tests skip.
fn gpu_with(kernels: ConvKernels) -> Option<GpuBackend> {
    common::gpu()?;
    let gpu = GpuBackend::new(&GpuSelection::from_env()).unwrap();
    gpu.set_conv_kernels(kernels).unwrap();
    Some(gpu)
}

fn matches_cpu_with_several_chunks_and_splits(kernels: ConvKernels) {
    let Some(gpu) = gpu_with(kernels) else { return };
    // 3 x 24 x 24 = 1728 pixels: two splits of the tiled parameter gradients and eleven pixel chunks of
    // the lane kernels; 64 -> 96 channels: two N tiles, six column blocks, four kernel-row chunks.
    let c = case(3, 24, 24, 64, 96, 21);
    let g = run(&gpu, &c);
    let cpu = run(&CpuBackend::new(), &c);
    for (name, a, b) in [
        ("out", &g.0, &cpu.0),
        ("grad x", &g.1, &cpu.1),
        ("grad kernel", &g.2, &cpu.2),
        ("grad bias", &g.3, &cpu.3),
    ] {
        let b64: Vec<f64> = b.iter().map(|v| *v as f64).collect();
        let e = rel(a, &b64);
        assert!(e < 1e-5, "{kernels:?} {name}: relative difference {e:.2e}");
    }
}

/// Both kernel families on the test adapter, whichever it would choose itself.
mod families {
    use super::*;

    #[test]
    fn tiled_matches_the_oracle() {
        if let Some(gpu) = gpu_with(ConvKernels::Tiled) {
            matches_the_oracle(&gpu);
        }
    }

    #[test]
    fn lanes_match_the_oracle() {
        if let Some(gpu) = gpu_with(ConvKernels::Lanes) {
            matches_the_oracle(&gpu);
        }
    }

    #[test]
    fn tiled_backward_matches_finite_differences() {
        if let Some(gpu) = gpu_with(ConvKernels::Tiled) {
            backward_matches_finite_differences(&gpu);
        }
    }

    #[test]
    fn lanes_backward_matches_finite_differences() {
        if let Some(gpu) = gpu_with(ConvKernels::Lanes) {
            backward_matches_finite_differences(&gpu);
        }
    }

    #[test]
    fn tiled_matches_cpu_with_several_gradient_splits() {
        matches_cpu_with_several_chunks_and_splits(ConvKernels::Tiled);
    }

    #[test]
    fn lanes_match_cpu_with_several_chunks() {
        matches_cpu_with_several_chunks_and_splits(ConvKernels::Lanes);
    }

    /// Rows wider than a uniform window (over 16,304 channels) fall back to the tiled kernels.
    #[test]
    fn lanes_fall_back_for_rows_wider_than_a_window() {
        let Some(gpu) = gpu_with(ConvKernels::Lanes) else {
            return;
        };
        let c = case(1, 2, 3, 2, 16_400, 4);
        let g = run(&gpu, &c);
        let cpu = run(&CpuBackend::new(), &c);
        for (name, a, b) in [
            ("out", &g.0, &cpu.0),
            ("grad x", &g.1, &cpu.1),
            ("grad kernel", &g.2, &cpu.2),
            ("grad bias", &g.3, &cpu.3),
        ] {
            let b64: Vec<f64> = b.iter().map(|v| *v as f64).collect();
            let e = rel(a, &b64);
            assert!(e < 1e-5, "{name}: relative difference {e:.2e}");
        }
    }
}
