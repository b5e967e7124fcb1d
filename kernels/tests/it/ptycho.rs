//! The iterative engines' ops on every backend: patch extraction against an f64 transcription of the
//! simulator's formula, the scatter against an f64 scatter-add and as the exact adjoint of the
//! extraction (shared and per-patch), the modulus projection against its definition, and bad shapes.

use ptycho_kernels::backend_tests;
use ptycho_kernels::ops::ptycho::PatchTable;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32, KernelError};

const N: usize = 8;
const H: usize = 37;
const W: usize = 45;

/// Origins inside the object, on its edges and past them (partly and wholly outside).
fn origins(m: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let mut out: Vec<f32> = (0..m)
        .flat_map(|_| {
            let x = rng.next_f64() as f32 * (W - N) as f32;
            let y = rng.next_f64() as f32 * (H - N) as f32;
            [x, y]
        })
        .collect();
    out.extend_from_slice(&[
        -3.25,
        2.5,
        (W - 4) as f32 + 0.75,
        -1.5,
        100.0,
        7.0,
        0.0,
        0.0,
    ]);
    out
}

fn at(object: &[Complex32], r: i64, c: i64) -> (f64, f64) {
    if r < 0 || c < 0 || r >= H as i64 || c >= W as i64 {
        (0.0, 0.0)
    } else {
        let v = object[r as usize * W + c as usize];
        (v.re as f64, v.im as f64)
    }
}

/// The simulator's bilinear patch in f64.
fn extract_f64(object: &[Complex32], origins: &[f32]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for o in origins.chunks(2) {
        let (x0, y0) = (o[0] as f64, o[1] as f64);
        for r in 0..N {
            for c in 0..N {
                let (sy, sx) = (y0 + r as f64, x0 + c as f64);
                let (ky, kx) = (sy.floor(), sx.floor());
                let (fy, fx) = (sy - ky, sx - kx);
                let (ky, kx) = (ky as i64, kx as i64);
                let mut v = (0.0, 0.0);
                for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                    for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                        let p = at(object, ky + dy, kx + dx);
                        v.0 += p.0 * wx * wy;
                        v.1 += p.1 * wx * wy;
                    }
                }
                out.push(v);
            }
        }
    }
    out
}

/// The transpose of `extract_f64`, as a plain scatter-add in f64.
fn scatter_f64(patches: &[Complex32], shared: bool, origins: &[f32]) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0); H * W];
    for (j, o) in origins.chunks(2).enumerate() {
        let (x0, y0) = (o[0] as f64, o[1] as f64);
        let (ky, kx) = (y0.floor(), x0.floor());
        let (fy, fx) = (y0 - ky, x0 - kx);
        for r in 0..N {
            for c in 0..N {
                let p = patches[if shared { 0 } else { j * N * N } + r * N + c];
                for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                    for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                        let (y, x) = (ky as i64 + r as i64 + dy, kx as i64 + c as i64 + dx);
                        if y >= 0 && x >= 0 && y < H as i64 && x < W as i64 {
                            let cell = &mut out[y as usize * W + x as usize];
                            cell.0 += p.re as f64 * wx * wy;
                            cell.1 += p.im as f64 * wx * wy;
                        }
                    }
                }
            }
        }
    }
    out
}

fn max_abs_error(got: &[Complex32], want: &[(f64, f64)]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g.re as f64 - w.0).hypot(g.im as f64 - w.1))
        .fold(0.0, f64::max)
}

fn extraction_matches_the_simulators_formula<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(3);
    let object = rng.complex_vec(H * W);
    let origins = origins(20, &mut rng);
    let m = origins.len() / 2;
    let got = b
        .download_c64(
            &b.extract_patches(
                &b.upload_c64(&[H, W], &object).unwrap(),
                &b.upload_f32(&[m, 2], &origins).unwrap(),
                N,
            )
            .unwrap(),
        )
        .unwrap();
    let err = max_abs_error(&got, &extract_f64(&object, &origins));
    assert!(err < 5e-6, "max |error| {err}");
    // The patch at (100, 7) lies wholly outside the object.
    let outside = &got[(m - 2) * N * N..(m - 1) * N * N];
    assert!(outside.iter().all(|v| *v == Complex32::default()));
}

fn scatter_matches_a_scatter_add_and_is_the_adjoint<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(4);
    let origins = origins(20, &mut rng);
    let m = origins.len() / 2;
    let object = rng.complex_vec(H * W);
    let o = b.upload_f32(&[m, 2], &origins).unwrap();
    let table = PatchTable::upload(b, &origins, N, H, W).unwrap();
    for shared in [false, true] {
        let count = if shared { 1 } else { m };
        let patches = rng.complex_vec(count * N * N);
        let shape: &[usize] = if shared { &[N, N] } else { &[m, N, N] };
        let scattered = b
            .download_c64(
                &b.scatter_patches(&b.upload_c64(shape, &patches).unwrap(), &o, &table)
                    .unwrap(),
            )
            .unwrap();
        let want = scatter_f64(&patches, shared, &origins);
        let err = max_abs_error(&scattered, &want);
        assert!(err < 2e-5, "shared {shared}: max |error| {err}");

        if !shared {
            // <extract(O), Y> = <O, scatter(Y)>.
            let extracted = b
                .download_c64(
                    &b.extract_patches(&b.upload_c64(&[H, W], &object).unwrap(), &o, N)
                        .unwrap(),
                )
                .unwrap();
            let dot = |a: &[Complex32], c: &[Complex32]| -> f64 {
                a.iter().zip(c).map(|(p, q)| (p * q.conj()).re as f64).sum()
            };
            let (lhs, rhs) = (dot(&extracted, &patches), dot(&object, &scattered));
            assert!(
                (lhs - rhs).abs() < 1e-5 * lhs.abs().max(1.0),
                "<extract O, Y> {lhs} vs <O, scatter Y> {rhs}"
            );
        }
    }
}

fn modulus_projection_keeps_the_phase_and_takes_the_amplitude<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(5);
    let mut spectrum = rng.complex_vec(3 * N * N);
    spectrum[7] = Complex32::default();
    let amplitude: Vec<f32> = (0..3 * N * N).map(|_| rng.next_f64() as f32).collect();
    let (projected, residual) = b
        .modulus_project(
            &b.upload_c64(&[3, N, N], &spectrum).unwrap(),
            &b.upload_f32(&[3, N, N], &amplitude).unwrap(),
        )
        .unwrap();
    let (projected, residual) = (
        b.download_c64(&projected).unwrap(),
        b.download_f32(&residual).unwrap(),
    );
    for i in 0..spectrum.len() {
        let (s, a) = (spectrum[i], amplitude[i]);
        let want = if s.norm() > 0.0 {
            s * (a / s.norm())
        } else {
            Complex32::new(a, 0.0)
        };
        assert!((projected[i] - want).norm() < 1e-6, "{i}");
        assert!((residual[i] - (s.norm() - a).powi(2)).abs() < 1e-6, "{i}");
    }
}

fn pattern_dot_sums_each_pattern<B: Backend>(b: &B) {
    let mut rng = SplitMix64::new(6);
    // 300 patterns: more than fit one row of a small grid, with 64 x 64 elements each.
    let (m, per) = (300, 64 * 64);
    let a = rng.complex_vec(m * per);
    let c = rng.complex_vec(m * per);
    let got = b
        .download_c64(
            &b.pattern_dot(
                &b.upload_c64(&[m, 64, 64], &a).unwrap(),
                &b.upload_c64(&[m, 64, 64], &c).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(got.len(), m);
    for (j, sum) in got.iter().enumerate() {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for i in j * per..(j + 1) * per {
            let (x, y) = (a[i], c[i]);
            re += x.re as f64 * y.re as f64 + x.im as f64 * y.im as f64;
            im += x.re as f64 * y.im as f64 - x.im as f64 * y.re as f64;
        }
        let err = (sum.re as f64 - re).hypot(sum.im as f64 - im);
        assert!(
            err < 1e-5 * per as f64,
            "pattern {j}: {} vs ({re}, {im})",
            sum
        );
    }
    let odd = b.upload_c64(&[m, 64], &a[..m * 64]).unwrap();
    assert!(matches!(
        b.pattern_dot(&odd, &b.upload_c64(&[m, 64, 64], &c).unwrap()),
        Err(KernelError::Shape { .. })
    ));
}

fn shapes_that_do_not_fit_are_errors<B: Backend>(b: &B) {
    let object = b
        .upload_c64(&[H, W], &vec![Complex32::default(); H * W])
        .unwrap();
    let three = b.upload_f32(&[2, 3], &[0.0; 6]).unwrap();
    assert!(matches!(
        b.extract_patches(&object, &three, N),
        Err(KernelError::Shape { .. })
    ));
    let origins = [1.0f32, 2.0, 3.0, 4.0];
    let o = b.upload_f32(&[2, 2], &origins).unwrap();
    let table = PatchTable::upload(b, &origins, N, H, W).unwrap();
    let wrong_count = b
        .upload_c64(&[3, N, N], &vec![Complex32::default(); 3 * N * N])
        .unwrap();
    assert!(matches!(
        b.scatter_patches(&wrong_count, &o, &table),
        Err(KernelError::Shape { .. })
    ));
    let other = b
        .upload_f32(&[2, N, N + 1], &vec![0.0; 2 * N * (N + 1)])
        .unwrap();
    let spectra = b
        .upload_c64(&[2, N, N], &vec![Complex32::default(); 2 * N * N])
        .unwrap();
    assert!(matches!(
        b.modulus_project(&spectra, &other),
        Err(KernelError::Shape { .. })
    ));
}

backend_tests!(
    extraction_matches_the_simulators_formula,
    scatter_matches_a_scatter_add_and_is_the_adjoint,
    modulus_projection_keeps_the_phase_and_takes_the_amplitude,
    pattern_dot_sums_each_pattern,
    shapes_that_do_not_fit_are_errors
);
