//! The PINN losses per element, their gradients (finite differences of the mean), and the sum reduction,
//! on every backend and GPU against CPU.

use crate::common;
use ptycho_kernels::backend_tests;

use ptycho_kernels::ops::loss::LossKind;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Dtype};

fn amplitudes(len: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64::new(seed);
    let pred = (0..len)
        .map(|_| 0.2 + 3.0 * rng.next_f64() as f32)
        .collect();
    let target = (0..len).map(|_| 3.0 * rng.next_f64() as f32).collect();
    (pred, target)
}

fn terms_follow_the_formulas<B: Backend>(b: &B) {
    let (mut pred, mut target) = amplitudes(500, 1);
    pred[3] = 0.0;
    target[4] = 0.0;
    let (p, t) = (
        b.upload_f32(&[500], &pred).unwrap(),
        b.upload_f32(&[500], &target).unwrap(),
    );
    for kind in [LossKind::Poisson, LossKind::Deviance, LossKind::Mae] {
        let got = b
            .download_f32(&b.loss_terms(kind, &p, &t).unwrap())
            .unwrap();
        for i in 0..500 {
            let (a, y) = (pred[i] as f64, (target[i] as f64).powi(2));
            let intensity = (a * a).max(1e-12);
            let expected = match kind {
                LossKind::Poisson => intensity - y * intensity.ln(),
                LossKind::Deviance if y > 0.0 => intensity - y - y * (intensity / y).ln(),
                LossKind::Deviance => intensity,
                LossKind::Mae => (target[i] as f64 - a).abs(),
            };
            assert!(
                (got[i] as f64 - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                "{kind:?}[{i}]: {} vs {expected}",
                got[i]
            );
        }
    }
}

/// The gradient of the mean loss against central differences of the mean, for each kind.
fn gradients_match_finite_differences<B: Backend>(b: &B) {
    let m = 64;
    let (pred, target) = amplitudes(m, 2);
    let t = b.upload_f32(&[m], &target).unwrap();
    for kind in [LossKind::Poisson, LossKind::Deviance, LossKind::Mae] {
        let mean = |pred: &[f32]| -> f64 {
            let terms = b
                .download_f32(
                    &b.loss_terms(kind, &b.upload_f32(&[m], pred).unwrap(), &t)
                        .unwrap(),
                )
                .unwrap();
            terms.iter().map(|v| *v as f64).sum::<f64>() / m as f64
        };
        let grad = b
            .download_f32(
                &b.loss_grad(
                    kind,
                    &b.upload_f32(&[m], &pred).unwrap(),
                    &t,
                    1.0 / m as f32,
                )
                .unwrap(),
            )
            .unwrap();
        let eps = 1e-3f32;
        for i in [0, 7, 31, 63] {
            if kind == LossKind::Mae && (pred[i] - target[i]).abs() < 10.0 * eps {
                continue;
            }
            let (mut plus, mut minus) = (pred.clone(), pred.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let fd = (mean(&plus) - mean(&minus)) / (2.0 * eps as f64);
            assert!(
                (fd - grad[i] as f64).abs() < 1e-3 * (grad[i] as f64).abs().max(0.05),
                "{kind:?}[{i}]: {fd} vs {}",
                grad[i]
            );
        }
    }
}

fn sums_are_exact_enough_at_every_size<B: Backend>(b: &B) {
    for len in [0usize, 1, 1023, 1024, 1025, 300_001] {
        let values = SplitMix64::new(len as u64).real_vec(len);
        let total = b.sum(&b.upload_f32(&[len], &values).unwrap()).unwrap();
        assert_eq!((total.shape(), total.dtype()), (&[][..], Dtype::F32));
        let got = b.download_f32(&total).unwrap()[0] as f64;
        let expected: f64 = values.iter().map(|v| *v as f64).sum();
        let scale: f64 = values.iter().map(|v| v.abs() as f64).sum::<f64>().max(1.0);
        assert!(
            (got - expected).abs() <= 1e-6 * scale,
            "len {len}: {got} vs {expected}"
        );
    }
}

fn mismatched_shapes_are_errors<B: Backend>(b: &B) {
    let p = b.upload_f32(&[4], &[1.0; 4]).unwrap();
    let t = b.upload_f32(&[2, 2], &[1.0; 4]).unwrap();
    let err = b.loss_terms(LossKind::Poisson, &p, &t).unwrap_err();
    assert!(
        err.to_string()
            .contains("a target of the prediction's shape [4]"),
        "{err}"
    );
}

backend_tests!(
    terms_follow_the_formulas,
    gradients_match_finite_differences,
    sums_are_exact_enough_at_every_size,
    mismatched_shapes_are_errors,
);

fn poisson_mean_and_grad<B: Backend>(b: &B, pred: &[f32], target: &[f32]) -> (f32, Vec<f32>) {
    let (p, t) = (
        b.upload_f32(&[4, 64, 64], pred).unwrap(),
        b.upload_f32(&[4, 64, 64], target).unwrap(),
    );
    let total = b
        .download_f32(
            &b.sum(&b.loss_terms(LossKind::Poisson, &p, &t).unwrap())
                .unwrap(),
        )
        .unwrap()[0];
    let grad = b
        .download_f32(
            &b.loss_grad(LossKind::Poisson, &p, &t, 1.0 / pred.len() as f32)
                .unwrap(),
        )
        .unwrap();
    (total / pred.len() as f32, grad)
}

#[test]
fn gpu_matches_cpu_backend() {
    let Some(gpu) = common::gpu() else { return };
    let cpu = ptycho_kernels::cpu::CpuBackend::new();
    let (pred, target) = amplitudes(4 * 64 * 64, 3);
    let (gl, gg) = poisson_mean_and_grad(gpu, &pred, &target);
    let (cl, cg) = poisson_mean_and_grad(&cpu, &pred, &target);
    assert!((gl - cl).abs() <= 1e-5 * cl.abs().max(1.0), "{gl} vs {cl}");
    assert!(gg
        .iter()
        .zip(&cg)
        .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1e-3)));
}
