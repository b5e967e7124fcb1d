//! Bilinear translation and its transpose on every backend: the reference's semantics, the adjoint
//! identity, a finite-difference check of the backward pass, and GPU against CPU.

use crate::common;
use ptycho_kernels::backend_tests;

use ptycho_kernels::ops::translate::TranslateDirection::{Backward, Forward};
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32, KernelError};

fn delta(h: usize, w: usize, r: usize, c: usize) -> Vec<f32> {
    let mut v = vec![0.0; h * w];
    v[r * w + c] = 1.0;
    v
}

fn a_delta_moves_right_and_down<B: Backend>(b: &B) {
    let x = b.upload_f32(&[1, 32, 40], &delta(32, 40, 10, 20)).unwrap();
    let t = b.upload_f32(&[1, 2], &[3.0, 5.0]).unwrap();
    let out = b
        .download_f32(&b.translate(&x, &t, Forward).unwrap())
        .unwrap();
    assert_eq!(
        out,
        delta(32, 40, 15, 23),
        "a delta at (10, 20) shifted by [3, 5] lands at (15, 23)"
    );
    let back = b
        .download_f32(
            &b.translate(&b.upload_f32(&[1, 32, 40], &out).unwrap(), &t, Backward)
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        back,
        delta(32, 40, 10, 20),
        "the transpose of an integer shift moves it back"
    );
}

fn zero_shift_is_identity_and_edges_fill_with_zero<B: Backend>(b: &B) {
    let values = SplitMix64::new(1).complex_vec(2 * 16 * 16);
    let x = b.upload_c64(&[2, 16, 16], &values).unwrap();
    let zero = b.upload_f32(&[2, 2], &[0.0; 4]).unwrap();
    assert_eq!(
        b.download_c64(&b.translate(&x, &zero, Forward).unwrap())
            .unwrap(),
        values
    );
    let shift = b.upload_f32(&[2, 2], &[-2.0, 0.0, 0.0, 40.0]).unwrap();
    let out = b
        .download_c64(&b.translate(&x, &shift, Forward).unwrap())
        .unwrap();
    for r in 0..16 {
        for c in 0..16 {
            let expected = if c + 2 < 16 {
                values[r * 16 + c + 2]
            } else {
                Complex32::default()
            };
            assert_eq!(out[r * 16 + c], expected, "image 0 ({r}, {c})");
            assert_eq!(
                out[256 + r * 16 + c],
                Complex32::default(),
                "image 1 moved out entirely"
            );
        }
    }
}

fn half_pixel_shifts_average_neighbours<B: Backend>(b: &B) {
    let values: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let x = b.upload_f32(&[8, 8], &values).unwrap();
    let t = b.upload_f32(&[1, 2], &[0.5, 0.0]).unwrap();
    let out = b
        .download_f32(&b.translate(&x, &t, Forward).unwrap())
        .unwrap();
    for r in 0..8 {
        assert_eq!(
            out[r * 8],
            0.5 * values[r * 8],
            "left edge: half of the pixel, half zero"
        );
        for c in 1..8 {
            assert!(
                (out[r * 8 + c] - 0.5 * (values[r * 8 + c - 1] + values[r * 8 + c])).abs() < 1e-5
            );
        }
    }
}

/// <T x, g> = <x, Tᵀ g> for random images and sub-pixel shifts, some past the image edge.
fn backward_is_the_adjoint<B: Backend>(b: &B) {
    let (n, h, w) = (5, 17, 23);
    let mut rng = SplitMix64::new(9);
    let x = rng.complex_vec(n * h * w);
    let g = rng.complex_vec(n * h * w);
    let shifts: Vec<f32> = (0..2 * n)
        .map(|i| rng.next_symmetric_f32() * if i < 4 { 30.0 } else { 6.0 })
        .collect();
    let t = b.upload_f32(&[n, 2], &shifts).unwrap();
    let tx = b
        .download_c64(
            &b.translate(&b.upload_c64(&[n, h, w], &x).unwrap(), &t, Forward)
                .unwrap(),
        )
        .unwrap();
    let tg = b
        .download_c64(
            &b.translate(&b.upload_c64(&[n, h, w], &g).unwrap(), &t, Backward)
                .unwrap(),
        )
        .unwrap();
    let dot = |a: &[Complex32], b: &[Complex32]| -> (f64, f64) {
        a.iter().zip(b).fold((0.0, 0.0), |(re, im), (p, q)| {
            let v = p * q.conj();
            (re + v.re as f64, im + v.im as f64)
        })
    };
    let (lhs, rhs) = (dot(&tx, &g), dot(&x, &tg));
    assert!(
        (lhs.0 - rhs.0).abs() < 1e-4 * lhs.0.abs().max(1.0)
            && (lhs.1 - rhs.1).abs() < 1e-4 * lhs.1.abs().max(1.0),
        "{lhs:?} vs {rhs:?}"
    );
}

/// d/dx_i of L(x) = Σ g · T(x) by central differences equals (Tᵀ g)_i.
fn backward_matches_finite_differences<B: Backend>(b: &B) {
    let (h, w) = (12, 14);
    let mut rng = SplitMix64::new(4);
    let x = rng.real_vec(h * w);
    let g = rng.real_vec(h * w);
    let t = b.upload_f32(&[1, 2], &[1.37, -0.61]).unwrap();
    let loss = |x: &[f32]| -> f64 {
        let out = b
            .download_f32(
                &b.translate(&b.upload_f32(&[h, w], x).unwrap(), &t, Forward)
                    .unwrap(),
            )
            .unwrap();
        out.iter().zip(&g).map(|(a, b)| *a as f64 * *b as f64).sum()
    };
    let grad = b
        .download_f32(
            &b.translate(&b.upload_f32(&[h, w], &g).unwrap(), &t, Backward)
                .unwrap(),
        )
        .unwrap();
    let eps = 1e-2;
    for i in [0, 5, 13, 14, 77, 100, h * w - 1] {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[i] += eps;
        minus[i] -= eps;
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * eps as f64);
        assert!(
            (fd - grad[i] as f64).abs() < 1e-3,
            "pixel {i}: finite difference {fd} vs backward {}",
            grad[i]
        );
    }
}

fn bad_shifts_are_clear_errors<B: Backend>(b: &B) {
    let x = b.upload_f32(&[3, 8, 8], &[0.0; 192]).unwrap();
    let err = b
        .translate(&x, &b.upload_f32(&[1, 2], &[0.0; 2]).unwrap(), Forward)
        .unwrap_err();
    assert!(err.to_string().contains("shifts of shape [3, 2]"), "{err}");
    let complex = b.upload_c64(&[3, 2], &[Complex32::default(); 6]).unwrap();
    assert!(matches!(
        b.translate(&x, &complex, Forward).unwrap_err(),
        KernelError::Dtype {
            op: "translate",
            ..
        }
    ));
}

backend_tests!(
    a_delta_moves_right_and_down,
    zero_shift_is_identity_and_edges_fill_with_zero,
    half_pixel_shifts_average_neighbours,
    backward_is_the_adjoint,
    backward_matches_finite_differences,
    bad_shifts_are_clear_errors,
);

#[test]
fn gpu_matches_cpu_backend() {
    let Some(gpu) = common::gpu() else { return };
    let cpu = ptycho_kernels::cpu::CpuBackend::new();
    let (n, h, w) = (6, 64, 64);
    let mut rng = SplitMix64::new(12);
    let values = rng.complex_vec(n * h * w);
    let shifts: Vec<f32> = (0..2 * n).map(|_| rng.next_symmetric_f32() * 9.0).collect();
    for direction in [Forward, Backward] {
        let g = gpu
            .download_c64(
                &gpu.translate(
                    &gpu.upload_c64(&[n, h, w], &values).unwrap(),
                    &gpu.upload_f32(&[n, 2], &shifts).unwrap(),
                    direction,
                )
                .unwrap(),
            )
            .unwrap();
        let c = cpu
            .download_c64(
                &cpu.translate(
                    &cpu.upload_c64(&[n, h, w], &values).unwrap(),
                    &cpu.upload_f32(&[n, 2], &shifts).unwrap(),
                    direction,
                )
                .unwrap(),
            )
            .unwrap();
        assert!(
            g.iter().zip(&c).all(|(p, q)| (p - q).norm() <= 1e-6),
            "{direction:?}"
        );
    }
}
