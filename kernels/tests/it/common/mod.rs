//! Helpers shared by the kernel tests: the shared GPU backend (or a printed reason to skip) and error
//! measures. The backend-generic test macro is `ptycho_kernels::backend_tests!`.
#![allow(dead_code)]

use ptycho_kernels::Complex32;

/// The shared GPU backend, or None with the reason printed (a panic under PTYCHO_REQUIRE_GPU=1).
pub fn gpu() -> Option<&'static ptycho_kernels::gpu::GpuBackend> {
    ptycho_kernels::testing::shared_gpu()
}

/// sqrt(sum |x - y|^2 / sum |y|^2), accumulated in f64.
pub fn rel_rms(x: &[Complex32], y: &[(f64, f64)]) -> f64 {
    assert_eq!(x.len(), y.len());
    let (mut num, mut den) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dr, di) = (a.re as f64 - b.0, a.im as f64 - b.1);
        num += dr * dr + di * di;
        den += b.0 * b.0 + b.1 * b.1;
    }
    (num / den).sqrt()
}

pub fn to_f64(x: &[Complex32]) -> Vec<(f64, f64)> {
    x.iter().map(|c| (c.re as f64, c.im as f64)).collect()
}
