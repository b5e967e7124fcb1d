//! Centred pad/crop and the channel sum/repeat on every backend, their transposes, and GPU against CPU.

use crate::common;
use ptycho_kernels::backend_tests;

use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32, Dtype};

fn pad_then_crop_is_identity_and_pad_is_centred<B: Backend>(b: &B) {
    let (n, p) = (8, 14);
    let values = SplitMix64::new(1).complex_vec(3 * n * n);
    let x = b.upload_c64(&[3, n, n], &values).unwrap();
    let padded = b.recenter(&x, p, p).unwrap();
    assert_eq!(padded.shape(), &[3, p, p]);
    let host = b.download_c64(&padded).unwrap();
    let m = (p - n) / 2;
    for r in 0..p {
        for c in 0..p {
            let inside = (m..m + n).contains(&r) && (m..m + n).contains(&c);
            let expected = if inside {
                values[n * n + (r - m) * n + (c - m)]
            } else {
                Complex32::default()
            };
            assert_eq!(host[p * p + r * p + c], expected, "({r}, {c})");
        }
    }
    // The patch centre (N/2, N/2) lands on the canvas centre (P/2, P/2).
    assert_eq!(
        host[p * p + (p / 2) * p + p / 2],
        values[n * n + (n / 2) * n + n / 2]
    );
    assert_eq!(
        b.download_c64(&b.recenter(&padded, n, n).unwrap()).unwrap(),
        values
    );
}

/// <crop(x), y> = <x, pad(y)>: pad is the transpose of crop.
fn crop_and_pad_are_transposes<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(2);
    let (x, y) = (rng.real_vec(2 * 12 * 10), rng.real_vec(2 * 6 * 4));
    let cx = b
        .download_f32(
            &b.recenter(&b.upload_f32(&[2, 12, 10], &x).unwrap(), 6, 4)
                .unwrap(),
        )
        .unwrap();
    let py = b
        .download_f32(
            &b.recenter(&b.upload_f32(&[2, 6, 4], &y).unwrap(), 12, 10)
                .unwrap(),
        )
        .unwrap();
    let lhs: f64 = cx
        .iter()
        .zip(&y)
        .map(|(a, b)| (*a as f64) * (*b as f64))
        .sum();
    let rhs: f64 = x
        .iter()
        .zip(&py)
        .map(|(a, b)| (*a as f64) * (*b as f64))
        .sum();
    assert!((lhs - rhs).abs() < 1e-5);
}

fn odd_size_differences_are_refused<B: Backend>(b: &B) {
    let x = b.upload_f32(&[4, 4], &[0.0; 16]).unwrap();
    let err = b.recenter(&x, 7, 4).unwrap_err();
    assert!(err.to_string().contains("even number of pixels"), "{err}");
}

fn channel_sum_and_repeat<B: Backend>(b: &B) {
    let (g, c, h, w) = (2, 4, 3, 5);
    let values = SplitMix64::new(3).complex_vec(g * c * h * w);
    let x = b.upload_c64(&[g, c, h, w], &values).unwrap();
    let summed = b.sum_channels(&x).unwrap();
    assert_eq!(summed.shape(), &[g, h, w]);
    let host = b.download_c64(&summed).unwrap();
    for gi in 0..g {
        for p in 0..h * w {
            let expected: Complex32 = (0..c).map(|ci| values[(gi * c + ci) * h * w + p]).sum();
            assert!((host[gi * h * w + p] - expected).norm() < 1e-6);
        }
    }
    let repeated = b.repeat_channels(&summed, 3).unwrap();
    assert_eq!(repeated.shape(), &[g, 3, h, w]);
    let rep = b.download_c64(&repeated).unwrap();
    for gi in 0..g {
        for ci in 0..3 {
            assert_eq!(
                rep[(gi * 3 + ci) * h * w..(gi * 3 + ci + 1) * h * w],
                host[gi * h * w..(gi + 1) * h * w]
            );
        }
    }
    let real = b
        .upload_f32(
            &[2, 3, 2, 2],
            &(0..24).map(|v| v as f32).collect::<Vec<_>>(),
        )
        .unwrap();
    let s = b.sum_channels(&real).unwrap();
    assert_eq!(s.dtype(), Dtype::F32);
    assert_eq!(
        b.download_f32(&s).unwrap(),
        vec![12.0, 15.0, 18.0, 21.0, 48.0, 51.0, 54.0, 57.0]
    );
    let err = b
        .sum_channels(&b.upload_f32(&[2, 2], &[0.0; 4]).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("(..., C, H, W)"));
}

backend_tests!(
    pad_then_crop_is_identity_and_pad_is_centred,
    crop_and_pad_are_transposes,
    odd_size_differences_are_refused,
    channel_sum_and_repeat,
);

fn sum_pad_repeat<B: Backend>(b: &B, values: &[f32]) -> Vec<f32> {
    let x = b.upload_f32(&[3, 4, 64, 64], values).unwrap();
    let padded = b.recenter(&b.sum_channels(&x).unwrap(), 78, 78).unwrap();
    b.download_f32(&b.repeat_channels(&padded, 4).unwrap())
        .unwrap()
}

#[test]
fn gpu_matches_cpu_backend() {
    let Some(gpu) = common::gpu() else { return };
    let cpu = ptycho_kernels::cpu::CpuBackend::new();
    let values = SplitMix64::new(4).real_vec(3 * 4 * 64 * 64);
    let (on_gpu, on_cpu) = (sum_pad_repeat(gpu, &values), sum_pad_repeat(&cpu, &values));
    assert!(on_gpu
        .iter()
        .zip(&on_cpu)
        .all(|(a, b)| (a - b).abs() <= 1e-5));
}
