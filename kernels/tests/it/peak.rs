//! The FMA-rate kernel: the CPU twin against the recurrence's closed form in f64, and the GPU against
//! the CPU.

use ptycho_kernels::cpu::CpuBackend;
use ptycho_kernels::ops::peak::{start, CHAINS, INCREMENT, MULTIPLIER};
use ptycho_kernels::testing::shared_gpu;
use ptycho_kernels::Backend;

const LANES: usize = 1000;
const ITERATIONS: u32 = 300;

/// a_k = a* + (a0 − a*)·m^k with a* = c / (1 − m), summed over the lane's chains.
fn closed_form(i: usize) -> f64 {
    let (m, c) = (MULTIPLIER as f64, INCREMENT as f64);
    let fixed = c / (1.0 - m);
    (0..CHAINS)
        .map(|j| fixed + (start(i, j) as f64 - fixed) * m.powi(ITERATIONS as i32))
        .sum()
}

#[test]
fn cpu_chains_follow_the_closed_form() {
    let b = CpuBackend::new();
    let out = b
        .download_f32(&b.fma_chain(LANES, ITERATIONS).unwrap())
        .unwrap();
    for (i, v) in out.iter().enumerate() {
        let expected = closed_form(i);
        assert!(
            (*v as f64 - expected).abs() < 1e-4 * expected,
            "lane {i}: {v} vs {expected}"
        );
    }
}

#[test]
fn gpu_matches_cpu() {
    let Some(gpu) = shared_gpu() else { return };
    let cpu = CpuBackend::new();
    let g = gpu
        .download_f32(&gpu.fma_chain(LANES, ITERATIONS).unwrap())
        .unwrap();
    let c = cpu
        .download_f32(&cpu.fma_chain(LANES, ITERATIONS).unwrap())
        .unwrap();
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        // WGSL lets an implementation evaluate fma unfused (lavapipe measured 2e-6 apart): a rounding
        // difference per step, damped by m, stays below ulp / (1 − m) ≈ 6e-5 relative.
        assert!((a - b).abs() <= 1e-5 * b.abs(), "lane {i}: {a} vs {b}");
    }
}
