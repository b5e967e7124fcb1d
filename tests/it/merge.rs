//! Per-sample merge and extraction on both backends: the reference's values (Σ/(k + 0.001), the ×1000
//! ring at gridsize 1), the ring-separating merge (centre / 1.001, ring × 1), adjoint identities of the
//! backward passes, and GPU against CPU.

use ptycho_wgpu::kernels::backend_tests;
use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::{Backend, Complex32};
use ptycho_wgpu::physics::merge::{
    centre_mask, extract, extract_backward, merge, merge_backward, merge_separating_ring,
    relative_tensor, Merged,
};

const N: usize = 16;
const P: usize = 26;

fn gridsize_one_divides_by_the_count<B: Backend>(b: &B) {
    let values = SplitMix64::new(1).complex_vec(N * N);
    let patches = b.upload_c64(&[1, 1, N, N], &values).unwrap();
    let rel = relative_tensor(b, &[[0.0, 0.0]]).unwrap();
    let canvas = b
        .download_c64(&merge(b, &patches, &rel, P).unwrap().canvas)
        .unwrap();
    let mask = centre_mask(N);
    let m = (P - N) / 2;
    for r in 0..P {
        for c in 0..P {
            let inside = (m..m + N).contains(&r) && (m..m + N).contains(&c);
            let expected = if !inside {
                Complex32::default()
            } else {
                let k = (r - m) * N + (c - m);
                values[k] / (mask[k] + 0.001)
            };
            assert!(
                (canvas[r * P + c] - expected).norm() <= 1e-4 * expected.norm().max(1.0),
                "({r}, {c})"
            );
        }
    }
}

/// Without the × 1000: the centre averaged by the count (1.001), the ring passed as it is.
fn separated_ring_passes_at_unit_scale<B: Backend>(b: &B) {
    let values = SplitMix64::new(1).complex_vec(N * N);
    let patches = b.upload_c64(&[1, 1, N, N], &values).unwrap();
    let rel = relative_tensor(b, &[[0.0, 0.0]]).unwrap();
    let merged = merge_separating_ring(b, &patches, &rel, P).unwrap();
    let canvas = b.download_c64(&merged.canvas).unwrap();
    let mask = centre_mask(N);
    let m = (P - N) / 2;
    for r in m..m + N {
        for c in m..m + N {
            let k = (r - m) * N + (c - m);
            let expected = if mask[k] == 1.0 {
                values[k] / 1.001
            } else {
                values[k]
            };
            assert!(
                (canvas[r * P + c] - expected).norm() <= 1e-5 * expected.norm().max(1.0),
                "({r}, {c}): {} vs {expected}",
                canvas[r * P + c]
            );
        }
    }
}

fn overlapping_centres_average<B: Backend>(b: &B) {
    // Two patches of ones, 4 px apart in x: their centre windows (8 px wide) overlap over 4 columns.
    let patches = b
        .upload_c64(&[1, 2, N, N], &vec![Complex32::new(1.0, 0.0); 2 * N * N])
        .unwrap();
    let rel = relative_tensor(b, &[[2.0, 0.0], [-2.0, 0.0]]).unwrap();
    let canvas = b
        .download_c64(&merge(b, &patches, &rel, P).unwrap().canvas)
        .unwrap();
    let row = P / 2;
    // Patch 0 moves by −rel = −2 (left), patch 1 by +2: the centre windows cover columns 7..15 and
    // 11..19 of the canvas, so columns 11..15 count twice.
    assert!((canvas[row * P + 13].re - 2.0 / 2.001).abs() < 1e-5);
    assert!(
        (canvas[row * P + 8].re - 2.0 / 1.001).abs() < 1e-5,
        "both patches cover it, one centre window"
    );
    assert!((canvas[row * P + 17].re - 2.0 / 1.001).abs() < 1e-5);
}

fn inner(a: &[Complex32], b: &[Complex32]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p * q.conj()).re as f64).sum()
}

type MergeFn<B> = fn(
    &B,
    &ptycho_wgpu::kernels::Tensor<<B as Backend>::Storage>,
    &ptycho_wgpu::kernels::Tensor<<B as Backend>::Storage>,
    usize,
) -> Result<Merged<<B as Backend>::Storage>, ptycho_wgpu::kernels::KernelError>;

/// Re<merge(O), G> = Re<O, mergeᵀ(G)> for both merges, and the same for extraction.
fn backward_passes_are_adjoints<B: Backend>(b: &B) {
    for merge_fn in [merge::<B> as MergeFn<B>, merge_separating_ring::<B>] {
        adjoints(b, merge_fn);
    }
}

fn adjoints<B: Backend>(b: &B, merge_fn: MergeFn<B>) {
    let (groups, channels) = (3, 4);
    let mut rng = SplitMix64::new(5);
    let o = rng.complex_vec(groups * channels * N * N);
    let g = rng.complex_vec(groups * P * P);
    let rel: Vec<[f32; 2]> = (0..groups * channels)
        .map(|_| {
            [
                rng.next_symmetric_f32() * 4.0,
                rng.next_symmetric_f32() * 4.0,
            ]
        })
        .collect();
    let rel_t = relative_tensor(b, &rel).unwrap();
    let merged = merge_fn(
        b,
        &b.upload_c64(&[groups, channels, N, N], &o).unwrap(),
        &rel_t,
        P,
    )
    .unwrap();
    let forward = b.download_c64(&merged.canvas).unwrap();
    let back = b
        .download_c64(
            &merge_backward(b, &merged, &b.upload_c64(&[groups, P, P], &g).unwrap()).unwrap(),
        )
        .unwrap();
    let (lhs, rhs) = (inner(&forward, &g), inner(&o, &back));
    assert!(
        (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
        "merge: {lhs} vs {rhs}"
    );

    let canvas = rng.complex_vec(groups * P * P);
    let gp = rng.complex_vec(groups * channels * N * N);
    let ex = b
        .download_c64(
            &extract(
                b,
                &b.upload_c64(&[groups, P, P], &canvas).unwrap(),
                &rel_t,
                channels,
                N,
            )
            .unwrap(),
        )
        .unwrap();
    let exb = b
        .download_c64(
            &extract_backward(
                b,
                &b.upload_c64(&[groups, channels, N, N], &gp).unwrap(),
                &rel_t,
                P,
            )
            .unwrap(),
        )
        .unwrap();
    let (lhs, rhs) = (inner(&ex, &gp), inner(&canvas, &exb));
    assert!(
        (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
        "extract: {lhs} vs {rhs}"
    );
}

/// patch = crop_N(T_{+rel}(canvas)): with rel = (2, -1), patch[r][c] = canvas[m + r + 1][m + c - 2].
fn extraction_shifts_by_plus_rel_and_crops<B: Backend>(b: &B) {
    let canvas = SplitMix64::new(6).complex_vec(P * P);
    let rel_t = relative_tensor(b, &[[2.0, -1.0]]).unwrap();
    let patch = b
        .download_c64(
            &extract(b, &b.upload_c64(&[1, P, P], &canvas).unwrap(), &rel_t, 1, N).unwrap(),
        )
        .unwrap();
    let m = (P - N) / 2;
    for r in 0..N {
        for c in 0..N {
            assert_eq!(
                patch[r * N + c],
                canvas[(m + r + 1) * P + m + c - 2],
                "({r}, {c})"
            );
        }
    }
}

backend_tests!(
    gridsize_one_divides_by_the_count,
    separated_ring_passes_at_unit_scale,
    overlapping_centres_average,
    backward_passes_are_adjoints,
    extraction_shifts_by_plus_rel_and_crops
);

fn merge_then_extract<B: Backend>(b: &B, o: &[Complex32], rel: &[[f32; 2]]) -> Vec<Complex32> {
    let rel_t = relative_tensor(b, rel).unwrap();
    let merged = merge(b, &b.upload_c64(&[2, 4, 64, 64], o).unwrap(), &rel_t, 78).unwrap();
    b.download_c64(&extract(b, &merged.canvas, &rel_t, 4, 64).unwrap())
        .unwrap()
}

#[test]
fn gpu_matches_cpu_backend() {
    let Some(gpu) = shared_gpu() else { return };
    let mut rng = SplitMix64::new(7);
    let o = rng.complex_vec(2 * 4 * 64 * 64);
    let rel: Vec<[f32; 2]> = (0..8)
        .map(|_| {
            [
                rng.next_symmetric_f32() * 6.0,
                rng.next_symmetric_f32() * 6.0,
            ]
        })
        .collect();
    let (g, c) = (
        merge_then_extract(gpu, &o, &rel),
        merge_then_extract(&CpuBackend::new(), &o, &rel),
    );
    assert!(g
        .iter()
        .zip(&c)
        .all(|(a, b)| (a - b).norm() <= 1e-5 * b.norm().max(1.0)));
}
