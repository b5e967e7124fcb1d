//! Batched 2-D FFT on every backend against a naive f64 DFT (the oracle), and GPU against CPU.

use crate::common;
use ptycho_kernels::backend_tests;

use crate::common::{rel_rms, to_f64};
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{
    Backend, Complex32, FftDirection, FftShift, KernelError, SUPPORTED_FFT_SIZES,
};

/// The accuracy every backend must reach at every size (relative RMS against the f64 oracle).
const TOLERANCE: f64 = 1e-6;

/// Naive separable 2-D DFT of each n x n image in f64, numpy conventions.
fn dft2_oracle(x: &[(f64, f64)], n: usize, inverse: bool) -> Vec<(f64, f64)> {
    let sign = if inverse { 1.0 } else { -1.0 };
    let table: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let a = sign * 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .collect();
    let dft_line = |get: &dyn Fn(usize) -> (f64, f64), out: &mut dyn FnMut(usize, (f64, f64))| {
        for k in 0..n {
            let (mut re, mut im) = (0.0, 0.0);
            for j in 0..n {
                let (vr, vi) = get(j);
                let (wr, wi) = table[(j * k) % n];
                re += vr * wr - vi * wi;
                im += vr * wi + vi * wr;
            }
            out(k, (re, im));
        }
    };
    let scale = if inverse { 1.0 / (n * n) as f64 } else { 1.0 };
    let mut out = vec![(0.0, 0.0); x.len()];
    for (img_in, img_out) in x.chunks(n * n).zip(out.chunks_mut(n * n)) {
        let mut rows = vec![(0.0, 0.0); n * n];
        for r in 0..n {
            dft_line(&|j| img_in[r * n + j], &mut |k, v| rows[r * n + k] = v);
        }
        for c in 0..n {
            dft_line(&|j| rows[j * n + c], &mut |k, v| {
                img_out[k * n + c] = (v.0 * scale, v.1 * scale)
            });
        }
    }
    out
}

fn rotate_half(x: &[(f64, f64)], n: usize) -> Vec<(f64, f64)> {
    let mut out = x.to_vec();
    let h = n / 2;
    for (img_in, img_out) in x.chunks(n * n).zip(out.chunks_mut(n * n)) {
        for r in 0..n {
            for c in 0..n {
                img_out[((r + h) % n) * n + (c + h) % n] = img_in[r * n + c];
            }
        }
    }
    out
}

/// The oracle for any direction and shift.
fn expected(
    x: &[Complex32],
    n: usize,
    direction: FftDirection,
    shift: FftShift,
) -> Vec<(f64, f64)> {
    let mut v = to_f64(x);
    if shift.input {
        v = rotate_half(&v, n);
    }
    v = dft2_oracle(&v, n, direction == FftDirection::Inverse);
    if shift.output {
        v = rotate_half(&v, n);
    }
    v
}

fn batch_for(n: usize) -> usize {
    if n >= 256 {
        1
    } else {
        3
    }
}

fn run<B: Backend>(
    b: &B,
    x: &[Complex32],
    shape: &[usize],
    direction: FftDirection,
    shift: FftShift,
) -> Vec<Complex32> {
    let t = b.upload_c64(shape, x).unwrap();
    let y = b.fft2(&t, direction, shift).unwrap();
    assert_eq!(y.shape(), shape);
    b.download_c64(&y).unwrap()
}

fn forward_and_inverse_match_the_oracle_at_every_size<B: Backend>(b: &B) {
    for &n in SUPPORTED_FFT_SIZES {
        let batch = batch_for(n);
        let x = SplitMix64::new(n as u64).complex_vec(batch * n * n);
        for direction in [FftDirection::Forward, FftDirection::Inverse] {
            let got = run(b, &x, &[batch, n, n], direction, FftShift::NONE);
            let err = rel_rms(&got, &expected(&x, n, direction, FftShift::NONE));
            println!(
                "{} n={n} {direction:?}: relative RMS error {err:.3e}",
                b.describe()
            );
            assert!(
                err <= TOLERANCE,
                "n={n} {direction:?}: relative RMS error {err:.3e} > {TOLERANCE:e}"
            );
        }
    }
}

fn shifts_are_fused_like_numpy<B: Backend>(b: &B) {
    for n in [32, 128] {
        let x = SplitMix64::new(7).complex_vec(2 * n * n);
        for direction in [FftDirection::Forward, FftDirection::Inverse] {
            for shift in [
                FftShift::INPUT,
                FftShift::OUTPUT,
                FftShift {
                    input: true,
                    output: true,
                },
            ] {
                let got = run(b, &x, &[2, n, n], direction, shift);
                let err = rel_rms(&got, &expected(&x, n, direction, shift));
                assert!(
                    err <= TOLERANCE,
                    "n={n} {direction:?} {shift:?}: error {err:.3e}"
                );
            }
        }
    }
}

fn inverse_undoes_forward<B: Backend>(b: &B) {
    for &n in &[32, 64, 512] {
        let x = SplitMix64::new(11).complex_vec(n * n);
        let t = b.upload_c64(&[1, n, n], &x).unwrap();
        let f = b.fft2(&t, FftDirection::Forward, FftShift::OUTPUT).unwrap();
        let back = b.fft2(&f, FftDirection::Inverse, FftShift::INPUT).unwrap();
        let err = rel_rms(&b.download_c64(&back).unwrap(), &to_f64(&x));
        assert!(err <= TOLERANCE, "n={n}: round trip error {err:.3e}");
    }
}

fn leading_axes_are_all_batch<B: Backend>(b: &B) {
    let n = 64;
    let x = SplitMix64::new(3).complex_vec(2 * 4 * n * n);
    let got = run(
        b,
        &x,
        &[2, 4, n, n],
        FftDirection::Forward,
        FftShift::OUTPUT,
    );
    let err = rel_rms(
        &got,
        &expected(&x, n, FftDirection::Forward, FftShift::OUTPUT),
    );
    assert!(err <= TOLERANCE);
    let single = run(
        b,
        &x[..n * n],
        &[n, n],
        FftDirection::Forward,
        FftShift::OUTPUT,
    );
    assert!(rel_rms(&single, &to_f64(&got[..n * n])) <= TOLERANCE);
}

fn delta_transforms_to_a_constant<B: Backend>(b: &B) {
    let n = 32;
    let mut x = vec![Complex32::default(); n * n];
    x[0] = Complex32::new(1.0, 0.0);
    let got = run(b, &x, &[n, n], FftDirection::Forward, FftShift::NONE);
    assert!(got
        .iter()
        .all(|v| (v.re - 1.0).abs() < 1e-6 && v.im.abs() < 1e-6));
}

fn unsupported_shapes_are_clear_errors<B: Backend>(b: &B) {
    for (shape, needle) in [
        (vec![1, 48, 48], "FFT size 48 is not supported"),
        (vec![1, 1024, 1024], "FFT size 1024 is not supported"),
        (vec![1, 32, 64], "square"),
        (vec![32], "square"),
    ] {
        let len: usize = shape.iter().product();
        let t = b
            .upload_c64(&shape, &vec![Complex32::default(); len])
            .unwrap();
        let err = b
            .fft2(&t, FftDirection::Forward, FftShift::NONE)
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{shape:?}: {err}");
    }
    let real = b.upload_f32(&[32, 32], &[0.0; 32 * 32]).unwrap();
    let err = b
        .fft2(&real, FftDirection::Forward, FftShift::NONE)
        .unwrap_err();
    assert!(matches!(err, KernelError::Dtype { .. }), "{err}");
}

backend_tests!(
    forward_and_inverse_match_the_oracle_at_every_size,
    shifts_are_fused_like_numpy,
    inverse_undoes_forward,
    leading_axes_are_all_batch,
    delta_transforms_to_a_constant,
    unsupported_shapes_are_clear_errors,
);

#[test]
fn gpu_matches_cpu_backend_for_every_variant() {
    let Some(gpu) = common::gpu() else { return };
    let cpu = ptycho_kernels::cpu::CpuBackend::new();
    for &n in SUPPORTED_FFT_SIZES {
        let x = SplitMix64::new(99 + n as u64).complex_vec(n * n);
        for direction in [FftDirection::Forward, FftDirection::Inverse] {
            for shift in [
                FftShift::NONE,
                FftShift::OUTPUT,
                FftShift::INPUT,
                FftShift {
                    input: true,
                    output: true,
                },
            ] {
                let g = run(gpu, &x, &[1, n, n], direction, shift);
                let c = run(&cpu, &x, &[1, n, n], direction, shift);
                let err = rel_rms(&g, &to_f64(&c));
                assert!(
                    err <= TOLERANCE,
                    "n={n} {direction:?} {shift:?}: GPU vs CPU {err:.3e}"
                );
            }
        }
    }
}
