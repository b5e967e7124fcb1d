//! The far-field amplitude and its gradient on both backends: Parseval, DC placement, central finite
//! differences of the backward pass, and GPU against CPU.

use ptycho_wgpu::kernels::backend_tests;
use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::{Backend, Complex32};
use ptycho_wgpu::physics::farfield;

fn parseval_and_dc_placement<B: Backend>(b: &B) {
    let n = 32;
    let psi = SplitMix64::new(1).complex_vec(2 * n * n);
    let s = 3.0f32;
    let far = farfield::forward(b, &b.upload_c64(&[2, n, n], &psi).unwrap(), s).unwrap();
    let a = b.download_f32(&far.amplitude).unwrap();
    let lhs: f64 = a.iter().map(|v| (*v as f64).powi(2)).sum();
    let rhs: f64 = psi.iter().map(|v| v.norm_sqr() as f64).sum::<f64>() * (s as f64).powi(2);
    assert!(
        (lhs / rhs - 1.0).abs() < 1e-5,
        "Σ Â² = s² Σ |ψ|²: {lhs} vs {rhs}"
    );
    let flat = vec![Complex32::new(1.0, 0.0); n * n];
    let a = b
        .download_f32(
            &farfield::forward(b, &b.upload_c64(&[n, n], &flat).unwrap(), 1.0)
                .unwrap()
                .amplitude,
        )
        .unwrap();
    for (i, v) in a.iter().enumerate() {
        let expected = if i == (n / 2) * n + n / 2 {
            n as f32
        } else {
            0.0
        };
        assert!((v - expected).abs() < 1e-4, "pixel {i}: {v}");
    }
}

/// L(ψ) = Σ g · Â(ψ); its central differences in Re ψ_j and Im ψ_j against the backward pass.
fn backward_matches_finite_differences<B: Backend>(b: &B) {
    let n = 32;
    let mut rng = SplitMix64::new(2);
    let psi = rng.complex_vec(n * n);
    let g = rng.real_vec(n * n);
    let s = 2.0f32;
    let loss = |psi: &[Complex32]| -> f64 {
        let far = farfield::forward(b, &b.upload_c64(&[n, n], psi).unwrap(), s).unwrap();
        b.download_f32(&far.amplitude)
            .unwrap()
            .iter()
            .zip(&g)
            .map(|(a, g)| *a as f64 * *g as f64)
            .sum()
    };
    let far = farfield::forward(b, &b.upload_c64(&[n, n], &psi).unwrap(), s).unwrap();
    let grad = b
        .download_c64(&farfield::backward(b, &far, &b.upload_f32(&[n, n], &g).unwrap()).unwrap())
        .unwrap();
    let eps = 1e-2f32;
    for j in [0, 17, 100, 511, 777, n * n - 1] {
        for imaginary in [false, true] {
            let bump = if imaginary {
                Complex32::new(0.0, eps)
            } else {
                Complex32::new(eps, 0.0)
            };
            let (mut plus, mut minus) = (psi.clone(), psi.clone());
            plus[j] += bump;
            minus[j] -= bump;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * eps as f64);
            let analytic = if imaginary { grad[j].im } else { grad[j].re } as f64;
            assert!(
                (fd - analytic).abs() < 2e-3 * analytic.abs().max(1.0),
                "ψ[{j}] imaginary={imaginary}: {fd} vs {analytic}"
            );
        }
    }
}

backend_tests!(
    parseval_and_dc_placement,
    backward_matches_finite_differences
);

fn forward_and_backward<B: Backend>(
    b: &B,
    psi: &[Complex32],
    g: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<Complex32>) {
    let far = farfield::forward(b, &b.upload_c64(&[4, n, n], psi).unwrap(), 5.0).unwrap();
    let grad = farfield::backward(b, &far, &b.upload_f32(&[4, n, n], g).unwrap()).unwrap();
    (
        b.download_f32(&far.amplitude).unwrap(),
        b.download_c64(&grad).unwrap(),
    )
}

#[test]
fn gpu_matches_cpu_backend() {
    let Some(gpu) = shared_gpu() else { return };
    let cpu = CpuBackend::new();
    let n = 64;
    let mut rng = SplitMix64::new(3);
    let (psi, g) = (rng.complex_vec(4 * n * n), rng.real_vec(4 * n * n));
    let (ga, gg) = forward_and_backward(gpu, &psi, &g, n);
    let (ca, cg) = forward_and_backward(&cpu, &psi, &g, n);
    let rel = |num: f64, den: f64| (num / den).sqrt();
    let amp_err = rel(
        ga.iter()
            .zip(&ca)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum(),
        ca.iter().map(|b| (*b as f64).powi(2)).sum(),
    );
    let grad_err = rel(
        gg.iter()
            .zip(&cg)
            .map(|(a, b)| (a - b).norm_sqr() as f64)
            .sum(),
        cg.iter().map(|b| b.norm_sqr() as f64).sum(),
    );
    assert!(
        amp_err < 1e-6 && grad_err < 1e-6,
        "amplitude {amp_err:.2e}, gradient {grad_err:.2e}"
    );
}
