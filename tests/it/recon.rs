//! The iterative engines: one epoch of each update rule against an f64 transcription on a tiny scan,
//! the LSQML cost falling monotonically on noiseless data, noiseless reconstructions converging to the
//! truth (up to the global phase), GPU against CPU, and `ptycho reconstruct` end to end.

use std::process::Command;

use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;

use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::gpu::GpuBackend;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::Complex32;
use ptycho_wgpu::physics::image::ComplexImage;
use ptycho_wgpu::physics::probe::default_probe;
use ptycho_wgpu::recon::dm::{DifferenceMap, DmConfig};
use ptycho_wgpu::recon::lsqml::{Lsqml, LsqmlConfig, NoiseModel};
use ptycho_wgpu::recon::pie::{Pie, PieConfig, PieVariant};
use ptycho_wgpu::recon::{run, Engine, Estimate, Scan};
use ptycho_wgpu::study::simulate::{extract_patch, synthetic_object};

const N: usize = 32;
const SIZE: usize = 80;

/// A noiseless raster scan of the built-in object: amplitudes |FFT(P·O_j)| / N (fftshifted),
/// positions, the truth and the probe.
struct Problem {
    amplitudes: Vec<f32>,
    positions: Vec<[f64; 2]>,
    truth: ComplexImage,
    probe: ComplexImage,
}

fn problem(step: f64) -> Problem {
    let truth = synthetic_object(SIZE, 7);
    let probe = ComplexImage::new(N, N, default_probe(N, 3.0));
    let mut positions = Vec::new();
    let (lo, hi) = (N as f64 / 2.0 + 1.0, SIZE as f64 - N as f64 / 2.0 - 1.0);
    let mut y = lo;
    while y <= hi {
        let mut x = lo;
        while x <= hi {
            // A little sub-pixel jitter, so the bilinear paths are exercised.
            positions.push([
                x + 0.3 * ((x * 7.0 + y).sin()),
                y + 0.3 * ((x - 3.0 * y).cos()),
            ]);
            x += step;
        }
        y += step;
    }
    let mut amplitudes = Vec::new();
    let mut planner = FftPlanner::<f64>::new();
    for &[x, y] in &positions {
        let mut patch = vec![Complex32::default(); N * N];
        extract_patch(&truth, x, y, N, &mut patch);
        let psi: Vec<Complex64> = patch
            .iter()
            .zip(&probe.data)
            .map(|(o, p)| to64(*o) * to64(*p))
            .collect();
        let spectrum = fft2_shifted(&mut planner, &psi);
        amplitudes.extend(spectrum.iter().map(|v| (v.norm() / N as f64) as f32));
    }
    Problem {
        amplitudes,
        positions,
        truth,
        probe,
    }
}

fn to64(v: Complex32) -> Complex64 {
    Complex64::new(v.re as f64, v.im as f64)
}

/// Forward 2-D FFT, zero frequency moved to the centre.
fn fft2_shifted(planner: &mut FftPlanner<f64>, x: &[Complex64]) -> Vec<Complex64> {
    let out = fft2(planner, x, false);
    let h = N / 2;
    (0..N * N)
        .map(|i| {
            let (r, c) = (i / N, i % N);
            out[((r + h) % N) * N + (c + h) % N]
        })
        .collect()
}

/// Inverse of `fft2_shifted` (1/N² included).
fn ifft2_shifted(planner: &mut FftPlanner<f64>, x: &[Complex64]) -> Vec<Complex64> {
    let h = N / 2;
    let unshifted: Vec<Complex64> = (0..N * N)
        .map(|i| {
            let (r, c) = (i / N, i % N);
            x[((r + h) % N) * N + (c + h) % N]
        })
        .collect();
    fft2(planner, &unshifted, true)
        .into_iter()
        .map(|v| v / (N * N) as f64)
        .collect()
}

fn fft2(planner: &mut FftPlanner<f64>, x: &[Complex64], inverse: bool) -> Vec<Complex64> {
    let fft = if inverse {
        planner.plan_fft_inverse(N)
    } else {
        planner.plan_fft_forward(N)
    };
    let mut data = x.to_vec();
    for row in data.chunks_mut(N) {
        fft.process(row);
    }
    let mut column = vec![Complex64::default(); N];
    for c in 0..N {
        for r in 0..N {
            column[r] = data[r * N + c];
        }
        fft.process(&mut column);
        for r in 0..N {
            data[r * N + c] = column[r];
        }
    }
    data
}

/// The f64 transcription of the shared ops: bilinear patch at origin, and its adjoint.
fn extract64(object: &[Complex64], cols: usize, rows: usize, x0: f64, y0: f64) -> Vec<Complex64> {
    let at = |r: i64, c: i64| {
        if r < 0 || c < 0 || r >= rows as i64 || c >= cols as i64 {
            Complex64::default()
        } else {
            object[r as usize * cols + c as usize]
        }
    };
    let (ky, kx) = (y0.floor(), x0.floor());
    let (fy, fx) = (y0 - ky, x0 - kx);
    let (ky, kx) = (ky as i64, kx as i64);
    let mut out = vec![Complex64::default(); N * N];
    for r in 0..N {
        for c in 0..N {
            let (y, x) = (ky + r as i64, kx + c as i64);
            out[r * N + c] = at(y, x) * ((1.0 - fx) * (1.0 - fy))
                + at(y, x + 1) * (fx * (1.0 - fy))
                + at(y + 1, x) * ((1.0 - fx) * fy)
                + at(y + 1, x + 1) * (fx * fy);
        }
    }
    out
}

fn scatter64(
    out: &mut [Complex64],
    cols: usize,
    rows: usize,
    x0: f64,
    y0: f64,
    patch: &[Complex64],
) {
    let (ky, kx) = (y0.floor(), x0.floor());
    let (fy, fx) = (y0 - ky, x0 - kx);
    for r in 0..N {
        for c in 0..N {
            for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                    let (y, x) = (ky as i64 + (r + dy) as i64, kx as i64 + (c + dx) as i64);
                    if y >= 0 && x >= 0 && y < rows as i64 && x < cols as i64 {
                        out[y as usize * cols + x as usize] += patch[r * N + c] * (wx * wy);
                    }
                }
            }
        }
    }
}

/// F⁻¹(Π(F ψ)) in f64: the far field's modulus replaced by pattern j's measured one.
fn modulus_projection64(
    planner: &mut FftPlanner<f64>,
    p: &Problem,
    j: usize,
    psi: &[Complex64],
) -> Vec<Complex64> {
    let spectrum = fft2_shifted(planner, psi);
    let projected: Vec<Complex64> = spectrum
        .iter()
        .zip(&p.amplitudes[j * N * N..(j + 1) * N * N])
        .map(|(s, &a)| {
            let a = a as f64 * N as f64;
            if s.norm() > 0.0 {
                s * (a / s.norm())
            } else {
                Complex64::new(a, 0.0)
            }
        })
        .collect();
    ifft2_shifted(planner, &projected)
}

/// χ_j = F⁻¹(Π(F ψ_j)) − ψ_j of every pattern, in f64, from the object and probe given.
fn exit_wave_updates(
    p: &Problem,
    object: &[Complex64],
    probe: &[Complex64],
) -> (Vec<Vec<Complex64>>, Vec<Vec<Complex64>>) {
    let mut planner = FftPlanner::<f64>::new();
    let mut chis = Vec::new();
    let mut patches = Vec::new();
    for (j, &[x, y]) in p.positions.iter().enumerate() {
        let h = (N / 2) as f64;
        let o = extract64(object, SIZE, SIZE, x - h, y - h);
        let psi: Vec<Complex64> = o.iter().zip(probe).map(|(a, b)| a * b).collect();
        let back = modulus_projection64(&mut planner, p, j, &psi);
        chis.push(back.iter().zip(&psi).map(|(b, s)| b - s).collect());
        patches.push(o);
    }
    (chis, patches)
}

fn estimate_ones(p: &Problem) -> Estimate {
    Estimate {
        object: ComplexImage::filled(SIZE, SIZE, Complex32::new(1.0, 0.0)),
        probe: p.probe.clone(),
    }
}

fn scan(p: &Problem) -> Scan<'_> {
    Scan {
        n: N,
        amplitudes: &p.amplitudes,
        positions: &p.positions,
    }
}

fn max_error(got: &[Complex32], want: &[Complex64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (to64(*g) - w).norm())
        .fold(0.0, f64::max)
}

fn probe64(p: &Problem) -> Vec<Complex64> {
    p.probe.data.iter().map(|v| to64(*v)).collect()
}

/// Σ_j Sᵀ_j(P*·w_j): waves at the positions, weighted by the probe's conjugate, summed onto the object.
fn back_projection(
    waves: &[Vec<Complex64>],
    probe: &[Complex64],
    positions: &[[f64; 2]],
) -> Vec<Complex64> {
    let mut sum = vec![Complex64::default(); SIZE * SIZE];
    for (w, &[x, y]) in waves.iter().zip(positions) {
        let weighted: Vec<Complex64> = w.iter().zip(probe).map(|(c, q)| c * q.conj()).collect();
        scatter64(&mut sum, SIZE, SIZE, x - 16.0, y - 16.0, &weighted);
    }
    sum
}

/// Σ_j Sᵀ_j|P|², the illumination at the positions.
fn illumination64(probe: &[Complex64], positions: &[[f64; 2]]) -> Vec<f64> {
    let power: Vec<Complex64> = probe
        .iter()
        .map(|v| Complex64::new(v.norm_sqr(), 0.0))
        .collect();
    let mut sum = vec![Complex64::default(); SIZE * SIZE];
    for &[x, y] in positions {
        scatter64(&mut sum, SIZE, SIZE, x - 16.0, y - 16.0, &power);
    }
    sum.iter().map(|v| v.re).collect()
}

/// One ePIE epoch with every pattern in one batch: O + α Σ_j Sᵀ_j(P*·χ_j) / max|P|².
#[test]
fn one_epie_epoch_matches_its_f64_transcription() {
    let p = problem(12.0);
    let probe = probe64(&p);
    let ones = vec![Complex64::new(1.0, 0.0); SIZE * SIZE];
    let (chis, _) = exit_wave_updates(&p, &ones, &probe);
    let max_power = probe.iter().map(|v| v.norm_sqr()).fold(0.0, f64::max);
    let alpha = 0.5;
    let mut want = ones.clone();
    let sum = back_projection(&chis, &probe, &p.positions);
    for (w, s) in want.iter_mut().zip(&sum) {
        *w += s * (alpha / max_power);
    }
    let b = CpuBackend::new();
    let config = PieConfig {
        batch_size: p.positions.len(),
        alpha: alpha as f32,
        variant: PieVariant::Epie,
        probe_from_epoch: None,
        probe_step: 1.0,
    };
    let mut engine = Pie::new(&b, &scan(&p), &estimate_ones(&p), config).unwrap();
    engine.epoch(&b).unwrap();
    let got = engine.estimate(&b).unwrap().object;
    let err = max_error(&got.data, &want);
    assert!(err < 1e-4, "max |error| {err}");
}

/// One rPIE epoch with every pattern in one batch:
/// O + α Σ_j Sᵀ_j(P*·χ_j) / ((1 − γ) Σ_j Sᵀ_j|P|² + γ max|P|²).
#[test]
fn one_rpie_epoch_matches_its_f64_transcription() {
    let p = problem(12.0);
    let probe = probe64(&p);
    let ones = vec![Complex64::new(1.0, 0.0); SIZE * SIZE];
    let (chis, _) = exit_wave_updates(&p, &ones, &probe);
    let max_power = probe.iter().map(|v| v.norm_sqr()).fold(0.0, f64::max);
    let (alpha, gamma) = (0.5, 0.2);
    let numerator = back_projection(&chis, &probe, &p.positions);
    let covered = illumination64(&probe, &p.positions);
    let want: Vec<Complex64> = ones
        .iter()
        .zip(numerator.iter().zip(&covered))
        .map(|(o, (n, c))| o + n * alpha / ((1.0 - gamma) * c + gamma * max_power))
        .collect();
    let b = CpuBackend::new();
    let config = PieConfig {
        batch_size: p.positions.len(),
        alpha: alpha as f32,
        variant: PieVariant::Rpie {
            gamma: gamma as f32,
        },
        probe_from_epoch: None,
        probe_step: 1.0,
    };
    let mut engine = Pie::new(&b, &scan(&p), &estimate_ones(&p), config).unwrap();
    engine.epoch(&b).unwrap();
    let got = engine.estimate(&b).unwrap().object;
    let err = max_error(&got.data, &want);
    assert!(err < 1e-4, "max |error| {err}");
}

/// One LSQML epoch with every pattern in one batch: χ_j = ½(F⁻¹ΠFψ_j − ψ_j);
/// ΔO = Σ_j Sᵀ_j(P*·χ_j) / √(D² + (0.1·max D)²); ΔP = mean_j O_j*·χ_j; per pattern, (α_j, β_j) from
/// the 2 x 2 normal equations with each diagonal raised by 0.1 of its mean, clipped at 0; O + ᾱ ΔO
/// with ᾱ the 10 %-trimmed mean of the α_j.
#[test]
fn one_lsqml_epoch_matches_its_f64_transcription() {
    let p = problem(12.0);
    let probe = probe64(&p);
    let ones = vec![Complex64::new(1.0, 0.0); SIZE * SIZE];
    let (full_chis, patches) = exit_wave_updates(&p, &ones, &probe);
    let chis: Vec<Vec<Complex64>> = full_chis
        .iter()
        .map(|c| c.iter().map(|v| v * 0.5).collect())
        .collect();
    let numerator = back_projection(&chis, &probe, &p.positions);
    let illumination = illumination64(&probe, &p.positions);
    let mut probe_direction = vec![Complex64::default(); N * N];
    for (chi, o) in chis.iter().zip(&patches) {
        for ((d, c), v) in probe_direction.iter_mut().zip(chi).zip(o) {
            *d += c * v.conj() / p.positions.len() as f64;
        }
    }
    let floor = 0.1 * illumination.iter().copied().fold(0.0, f64::max);
    let direction: Vec<Complex64> = numerator
        .iter()
        .zip(&illumination)
        .map(|(n, d)| n / d.hypot(floor))
        .collect();
    let sums: Vec<[f64; 6]> = chis
        .iter()
        .zip(&patches)
        .zip(&p.positions)
        .map(|((chi, o), &[x, y])| {
            let step = extract64(&direction, SIZE, SIZE, x - 16.0, y - 16.0);
            let mut s = [0.0; 6];
            for i in 0..N * N {
                let (yw, zw) = (step[i] * probe[i], probe_direction[i] * o[i]);
                let cross = yw * zw.conj();
                s[0] += yw.norm_sqr();
                s[1] += cross.re;
                s[2] += cross.im;
                s[3] += zw.norm_sqr();
                s[4] += (yw.conj() * chi[i]).re;
                s[5] += (zw.conj() * chi[i]).re;
            }
            s
        })
        .collect();
    let m = sums.len() as f64;
    let damp_y = 0.1 * sums.iter().map(|s| s[0]).sum::<f64>() / m;
    let damp_z = 0.1 * sums.iter().map(|s| s[3]).sum::<f64>() / m;
    let mut alphas: Vec<f64> = sums
        .iter()
        .map(|s| {
            let (a11, a22) = (s[0] + damp_y, s[3] + damp_z);
            let a12 = Complex64::new(s[1], s[2]);
            let det = a11 * a22 - a12.norm_sqr();
            ((a22 * s[4] - (a12 * s[5]).re) / det).max(0.0)
        })
        .collect();
    alphas.sort_by(f64::total_cmp);
    let cut = (alphas.len() as f64 * 0.1) as usize;
    let kept = &alphas[cut..alphas.len() - cut];
    let alpha = kept.iter().sum::<f64>() / kept.len() as f64;
    let want: Vec<Complex64> = ones
        .iter()
        .zip(&direction)
        .map(|(o, d)| o + d * alpha)
        .collect();

    let b = CpuBackend::new();
    let config = LsqmlConfig {
        batch_size: p.positions.len(),
        ..LsqmlConfig::default()
    };
    let mut engine = Lsqml::new(&b, &scan(&p), &estimate_ones(&p), config).unwrap();
    engine.epoch(&b).unwrap();
    let got = engine.estimate(&b).unwrap().object;
    let err = max_error(&got.data, &want);
    assert!(err < 1e-4, "max |error| {err} (α = {alpha})");
}

/// Two DM epochs with every parameter away from its plain value (RAAR's β, a Fourier weight, the probe
/// refined in the second), in batches that split the scan, against the f64 transcription of the
/// module's formulas.
#[test]
fn two_dm_epochs_match_their_f64_transcription() {
    let p = problem(12.0);
    let (beta, w, delta) = (0.9, 0.5, 1e-2);
    let h = (N / 2) as f64;
    let mut planner = FftPlanner::<f64>::new();
    let mut probe = probe64(&p);
    let power: f64 = probe.iter().map(|v| v.norm_sqr()).sum();
    let mut object = vec![Complex64::new(1.0, 0.0); SIZE * SIZE];
    let patches_of = |object: &[Complex64]| -> Vec<Vec<Complex64>> {
        p.positions
            .iter()
            .map(|&[x, y]| extract64(object, SIZE, SIZE, x - h, y - h))
            .collect()
    };
    let mut waves: Vec<Vec<Complex64>> = patches_of(&object)
        .iter()
        .map(|o| o.iter().zip(&probe).map(|(a, q)| a * q).collect())
        .collect();
    for epoch in 1..=2 {
        let illumination = illumination64(&probe, &p.positions);
        let c = delta * illumination.iter().copied().fold(0.0, f64::max);
        let numerator = back_projection(&waves, &probe, &p.positions);
        object = numerator
            .iter()
            .zip(&illumination)
            .zip(&object)
            .map(|((n, d), o)| (n + o * c) / (d + c))
            .collect();
        let patches = patches_of(&object);
        if epoch == 2 {
            let mut numerator = vec![Complex64::default(); N * N];
            let mut weight = vec![0.0; N * N];
            for (o, psi) in patches.iter().zip(&waves) {
                for i in 0..N * N {
                    numerator[i] += o[i].conj() * psi[i];
                    weight[i] += o[i].norm_sqr();
                }
            }
            let c = delta * weight.iter().copied().fold(0.0, f64::max);
            for i in 0..N * N {
                probe[i] = (numerator[i] + probe[i] * c) / (weight[i] + c);
            }
            let now: f64 = probe.iter().map(|v| v.norm_sqr()).sum();
            let scale = (power / now).sqrt();
            probe.iter_mut().for_each(|v| *v *= scale);
        }
        for (j, (o, psi)) in patches.iter().zip(&mut waves).enumerate() {
            let phi: Vec<Complex64> = o.iter().zip(&probe).map(|(a, q)| a * q).collect();
            let reflected: Vec<Complex64> = phi
                .iter()
                .zip(psi.iter())
                .map(|(f, s)| 2.0 * f - s)
                .collect();
            let projected = modulus_projection64(&mut planner, &p, j, &reflected);
            for i in 0..N * N {
                let fourier = w * projected[i] + (1.0 - w) * reflected[i];
                psi[i] = beta * (psi[i] + fourier - phi[i]) + (1.0 - beta) * phi[i];
            }
        }
    }
    let b = CpuBackend::new();
    let config = DmConfig {
        batch_size: 7,
        beta: beta as f32,
        fourier_weight: w as f32,
        regularization: delta as f32,
        probe_from_epoch: Some(2),
    };
    let mut engine = DifferenceMap::new(&b, &scan(&p), &estimate_ones(&p), config).unwrap();
    engine.epoch(&b).unwrap();
    engine.epoch(&b).unwrap();
    let got = engine.estimate(&b).unwrap();
    let err = max_error(&got.object.data, &object);
    assert!(err < 1e-4, "object: max |error| {err}");
    let largest = probe.iter().map(|v| v.norm()).fold(0.0, f64::max);
    let err = max_error(&got.probe.data, &probe) / largest;
    assert!(err < 1e-4, "probe: max |error| / max |P| {err}");
}

/// max over the well-covered centre of |O·e^{iθ} − truth|, θ the best global phase.
fn error_to_truth(got: &ComplexImage, truth: &ComplexImage) -> f64 {
    let (lo, hi) = (N / 2 + 4, SIZE - N / 2 - 4);
    let mut cross = Complex64::default();
    let mut pixels = Vec::new();
    for r in lo..hi {
        for c in lo..hi {
            let (g, t) = (to64(got.data[r * SIZE + c]), to64(truth.data[r * SIZE + c]));
            cross += t * g.conj();
            pixels.push((g, t));
        }
    }
    let rotation = cross / cross.norm();
    let rms = (pixels
        .iter()
        .map(|(g, t)| (g * rotation - t).norm_sqr())
        .sum::<f64>()
        / pixels.len() as f64)
        .sqrt();
    rms
}

/// With pty-chi's choices (the default, made for noisy data: half steps in the far field, damped
/// steps solved jointly with the probe direction) the cost falls every epoch; with the plain
/// least-squares step for the object alone LSQML reaches the truth quickly.
#[test]
fn lsqml_on_noiseless_data_lowers_the_cost_every_epoch_and_finds_the_object() {
    let p = problem(6.0);
    let b = CpuBackend::new();
    let config = LsqmlConfig {
        batch_size: 24,
        ..LsqmlConfig::default()
    };
    let mut engine = Lsqml::new(&b, &scan(&p), &estimate_ones(&p), config).unwrap();
    let result = run(&mut engine, &b, 200, |_| {}).unwrap();
    assert!(result.diverged.is_none());
    let costs: Vec<f64> = result.history.iter().map(|r| r.cost).collect();
    assert!(
        costs.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-6)),
        "the cost rose: {costs:?}"
    );
    assert!(
        costs[199] < 1e-2 * costs[0],
        "{} -> {}",
        costs[0],
        costs[199]
    );

    let undamped = LsqmlConfig {
        batch_size: 24,
        far_field_step: 1.0,
        step_damping: 0.0,
        joint_step: false,
        ..LsqmlConfig::default()
    };
    let mut engine = Lsqml::new(&b, &scan(&p), &estimate_ones(&p), undamped).unwrap();
    let result = run(&mut engine, &b, 200, |_| {}).unwrap();
    // The object amplitude is about 0.75: 1% of it.
    let err = error_to_truth(&result.estimate.object, &p.truth);
    assert!(err < 0.01, "rms error to the truth {err}");
}

/// Random batches are drawn from the seed: the same seed gives the same bytes, and they differ from
/// fixed batches.
#[test]
fn shuffled_batches_are_deterministic_in_their_seed() {
    let p = problem(8.0);
    let b = CpuBackend::new();
    let object = |seed: Option<u64>| {
        let config = LsqmlConfig {
            batch_size: 10,
            shuffle_seed: seed,
            ..LsqmlConfig::default()
        };
        let mut engine = Lsqml::new(&b, &scan(&p), &estimate_ones(&p), config).unwrap();
        run(&mut engine, &b, 3, |_| {})
            .unwrap()
            .estimate
            .object
            .data
    };
    let (a, again, fixed) = (object(Some(7)), object(Some(7)), object(None));
    assert_eq!(a, again);
    assert_ne!(a, fixed);
}

/// The Poisson model's far-field steps on noiseless data: the cost falls a hundredfold and every
/// step stays in [0, 1] (a NaN would end the run as diverged).
#[test]
fn lsqml_with_the_poisson_model_converges_on_noiseless_data() {
    let p = problem(6.0);
    let b = CpuBackend::new();
    let config = LsqmlConfig {
        batch_size: 24,
        noise: NoiseModel::Poisson,
        ..LsqmlConfig::default()
    };
    let mut engine = Lsqml::new(&b, &scan(&p), &estimate_ones(&p), config).unwrap();
    let result = run(&mut engine, &b, 100, |_| {}).unwrap();
    assert!(result.diverged.is_none());
    let costs: Vec<f64> = result.history.iter().map(|r| r.cost).collect();
    assert!(costs[99] < 1e-2 * costs[0], "{} -> {}", costs[0], costs[99]);
}

/// Started from a wrong probe (another defocus), probe refinement fits the data better than keeping
/// it, for LSQML, ePIE and DM, and keeps the probe's power.
#[test]
fn probe_refinement_recovers_from_a_wrong_probe() {
    let p = problem(6.0);
    let b = CpuBackend::new();
    let wrong = ComplexImage::new(N, N, default_probe(N, 1.5));
    let start = Estimate {
        object: ComplexImage::filled(SIZE, SIZE, Complex32::new(1.0, 0.0)),
        probe: wrong.clone(),
    };
    let power = |image: &ComplexImage| image.data.iter().map(|v| v.norm_sqr() as f64).sum::<f64>();
    let engines = |refine: Option<usize>| -> Vec<Box<dyn Engine<CpuBackend>>> {
        let lsqml = LsqmlConfig {
            batch_size: 24,
            probe_from_epoch: refine,
            ..LsqmlConfig::default()
        };
        let pie = PieConfig {
            batch_size: 24,
            alpha: 0.5,
            variant: PieVariant::Epie,
            probe_from_epoch: refine,
            probe_step: 1.0,
        };
        let dm = DmConfig {
            batch_size: 24,
            probe_from_epoch: refine,
            ..DmConfig::default()
        };
        vec![
            Box::new(Lsqml::new(&b, &scan(&p), &start, lsqml).unwrap()),
            Box::new(Pie::new(&b, &scan(&p), &start, pie).unwrap()),
            Box::new(DifferenceMap::new(&b, &scan(&p), &start, dm).unwrap()),
        ]
    };
    let final_costs = |refine: Option<usize>| -> Vec<f64> {
        engines(refine)
            .into_iter()
            .map(|mut engine| {
                let r = run(&mut *engine, &b, 60, |_| {}).unwrap();
                let kept = power(&r.estimate.probe) / power(&wrong);
                assert!(
                    (kept - 1.0).abs() < 1e-3,
                    "{}: probe power x{kept}",
                    engine.name()
                );
                r.history.last().unwrap().cost
            })
            .collect()
    };
    let (fixed, refined) = (final_costs(None), final_costs(Some(3)));
    // Refined fits at least 20x better.
    for (name, (f, r)) in ["lsqml", "epie", "dm"]
        .iter()
        .zip(fixed.iter().zip(&refined))
    {
        assert!(
            *r < 0.05 * f,
            "{name}: cost {f} with the probe fixed, {r} refined"
        );
    }
}

/// Given positions off by up to 1.5 px (zero mean: a common offset only moves the object), LSQML's
/// position correction brings them back part of the way.
#[test]
fn position_correction_moves_wrong_positions_towards_the_truth() {
    let p = problem(6.0);
    let b = CpuBackend::new();
    let mut given = p.positions.clone();
    for (j, pos) in given.iter_mut().enumerate() {
        let t = j as f64;
        pos[0] += 1.5 * (t * 1.7).sin();
        pos[1] += 1.5 * (t * 2.3).cos();
    }
    let mean =
        |v: &[[f64; 2]], axis: usize| v.iter().map(|q| q[axis]).sum::<f64>() / v.len() as f64;
    let offsets = [
        mean(&given, 0) - mean(&p.positions, 0),
        mean(&given, 1) - mean(&p.positions, 1),
    ];
    let (lo, hi) = (N as f64 / 2.0, (SIZE - N / 2) as f64);
    for q in &mut given {
        q[0] = (q[0] - offsets[0]).clamp(lo, hi);
        q[1] = (q[1] - offsets[1]).clamp(lo, hi);
    }
    let error = |v: &[[f64; 2]]| {
        let (dx, dy) = (
            mean(v, 0) - mean(&p.positions, 0),
            mean(v, 1) - mean(&p.positions, 1),
        );
        (v.iter()
            .zip(&p.positions)
            .map(|(a, t)| (a[0] - dx - t[0]).powi(2) + (a[1] - dy - t[1]).powi(2))
            .sum::<f64>()
            / v.len() as f64)
            .sqrt()
    };
    let scan = Scan {
        n: N,
        amplitudes: &p.amplitudes,
        positions: &given,
    };
    let config = LsqmlConfig {
        batch_size: 24,
        // Once the object has taken shape: its gradients point the way.
        positions_from_epoch: Some(30),
        ..LsqmlConfig::default()
    };
    let mut engine = Lsqml::new(&b, &scan, &estimate_ones(&p), config).unwrap();
    let result = run(&mut engine, &b, 200, |_| {}).unwrap();
    let (before, after) = (error(&given), error(&result.positions));
    // 1.48 -> 0.81 px when measured; the object takes up part of the error.
    assert!(
        after < 0.7 * before,
        "rms position error {before:.3} -> {after:.3} px"
    );
}

#[test]
fn epie_and_dm_on_noiseless_data_find_the_object() {
    let p = problem(6.0);
    let b = CpuBackend::new();
    let pie = PieConfig {
        batch_size: 24,
        alpha: 0.5,
        variant: PieVariant::Epie,
        probe_from_epoch: None,
        probe_step: 1.0,
    };
    let mut epie = Pie::new(&b, &scan(&p), &estimate_ones(&p), pie).unwrap();
    let result = run(&mut epie, &b, 200, |_| {}).unwrap();
    let err = error_to_truth(&result.estimate.object, &p.truth);
    assert!(err < 0.05, "ePIE: rms error to the truth {err}");

    for (name, beta, fourier_weight) in [
        (
            "DM (the default Fourier weight)",
            1.0,
            DmConfig::DEFAULT_FOURIER_WEIGHT,
        ),
        ("plain DM", 1.0, 1.0),
        ("RAAR", 0.9, DmConfig::DEFAULT_FOURIER_WEIGHT),
    ] {
        let dm = DmConfig {
            batch_size: 24,
            beta,
            fourier_weight,
            ..DmConfig::default()
        };
        let mut engine = DifferenceMap::new(&b, &scan(&p), &estimate_ones(&p), dm).unwrap();
        let result = run(&mut engine, &b, 200, |_| {}).unwrap();
        let err = error_to_truth(&result.estimate.object, &p.truth);
        assert!(err < 0.05, "{name}: rms error to the truth {err}");
    }
}

#[test]
fn the_gpu_engines_agree_with_the_cpu_engines() {
    let Some(gpu) = shared_gpu() else { return };
    let p = problem(8.0);
    let cpu = CpuBackend::new();
    let config = LsqmlConfig {
        batch_size: 16,
        ..LsqmlConfig::default()
    };
    let mut on_cpu = Lsqml::new(&cpu, &scan(&p), &estimate_ones(&p), config.clone()).unwrap();
    let mut on_gpu = Lsqml::new(gpu, &scan(&p), &estimate_ones(&p), config).unwrap();
    for epoch in 1..=3 {
        let (a, g) = (on_cpu.epoch(&cpu).unwrap(), on_gpu.epoch(gpu).unwrap());
        assert!((a - g).abs() < 1e-4 * a, "epoch {epoch}: cost {a} vs {g}");
    }
    let (a, g) = (
        on_cpu.estimate(&cpu).unwrap().object,
        on_gpu.estimate(gpu).unwrap().object,
    );
    let err = a
        .data
        .iter()
        .zip(&g.data)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0f32, f32::max);
    assert!(err < 1e-3, "max |CPU − GPU| {err}");

    let pie = PieConfig {
        batch_size: 16,
        alpha: 0.5,
        variant: PieVariant::Rpie { gamma: 0.1 },
        probe_from_epoch: Some(2),
        probe_step: 1.0,
    };
    let dm = DmConfig {
        batch_size: 16,
        beta: 0.9,
        probe_from_epoch: Some(2),
        ..DmConfig::default()
    };
    let start = estimate_ones(&p);
    type Twins<'a> = (
        Box<dyn Engine<CpuBackend>>,
        Box<dyn Engine<GpuBackend> + 'a>,
    );
    let mut engines: Vec<Twins> = vec![
        (
            Box::new(Pie::new(&cpu, &scan(&p), &start, pie.clone()).unwrap()),
            Box::new(Pie::new(gpu, &scan(&p), &start, pie).unwrap()),
        ),
        (
            Box::new(DifferenceMap::new(&cpu, &scan(&p), &start, dm.clone()).unwrap()),
            Box::new(DifferenceMap::new(gpu, &scan(&p), &start, dm).unwrap()),
        ),
    ];
    for (on_cpu, on_gpu) in &mut engines {
        for _ in 0..3 {
            let (a, g) = (on_cpu.epoch(&cpu).unwrap(), on_gpu.epoch(gpu).unwrap());
            assert!(
                (a - g).abs() < 1e-3 * a,
                "{}: cost {a} vs {g}",
                on_cpu.name()
            );
        }
        let (a, g) = (
            on_cpu.estimate(&cpu).unwrap(),
            on_gpu.estimate(gpu).unwrap(),
        );
        for (x, y) in [(&a.object, &g.object), (&a.probe, &g.probe)] {
            let err = x
                .data
                .iter()
                .zip(&y.data)
                .map(|(u, v)| (u - v).norm())
                .fold(0.0f32, f32::max);
            assert!(err < 1e-3, "{}: max |CPU − GPU| {err}", on_cpu.name());
        }
    }
}

/// `ptycho reconstruct` on a simulated file: every output, labelled; a second run into the same
/// folder is refused; `--init-object truth` says it is the parity mode.
#[test]
fn reconstruct_writes_every_output_and_labels_the_parity_mode() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_ptycho");
    let ok = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&[
        "simulate",
        "--output",
        "sim",
        "--n",
        "64",
        "--n-images",
        "60",
        "--doses",
        "1e4",
        "--no-split",
        "--device",
        "cpu",
    ]);
    let said = ok(&[
        "reconstruct",
        "--input",
        "sim/dose_10000/patched.npz",
        "--output-dir",
        "rec",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--device",
        "cpu",
    ]);
    assert!(
        said.contains("lsqml (ones), 3 epochs over 60 patterns"),
        "{said}"
    );
    for name in [
        "reconstruction.npz",
        "amplitude.png",
        "phase.png",
        "probe.png",
        "cost.png",
        "history.json",
    ] {
        assert!(dir.path().join("rec").join(name).is_file(), "{name}");
    }
    let npz =
        ptycho_wgpu::io::npz::NpzFile::open(&dir.path().join("rec/reconstruction.npz")).unwrap();
    for key in [
        "object",
        "amplitude",
        "phase",
        "probe",
        "xcoords",
        "ycoords",
        "reconstructed_object",
        "reconstructed_probe",
        "algorithm",
        "timestamp",
        "computation_time_s",
        "init_object",
    ] {
        assert!(npz.has(key), "{key}");
    }
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("rec/history.json")).unwrap())
            .unwrap();
    assert_eq!(history["cost"].as_array().unwrap().len(), 3);

    // No randomness: the same run gives the same bytes; a file's object starts another run.
    ok(&[
        "reconstruct",
        "--input",
        "sim/dose_10000/patched.npz",
        "--output-dir",
        "rec2",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--device",
        "cpu",
    ]);
    let object = |name: &str| {
        let path = dir.path().join(name).join("reconstruction.npz");
        let npz = ptycho_wgpu::io::npz::NpzFile::open(&path).unwrap();
        npz.array("object").unwrap().to_c64_vec().unwrap()
    };
    assert_eq!(object("rec"), object("rec2"));
    let said = ok(&[
        "reconstruct",
        "--input",
        "sim/dose_10000/patched.npz",
        "--output-dir",
        "continued",
        "--epochs",
        "1",
        "--init-object",
        "rec/reconstruction.npz",
        "--device",
        "cpu",
    ]);
    assert!(said.contains("file rec/reconstruction.npz"), "{said}");

    let again = Command::new(bin)
        .args([
            "reconstruct",
            "--input",
            "sim/dose_10000/patched.npz",
            "--output-dir",
            "rec",
            "--epochs",
            "1",
            "--device",
            "cpu",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));

    let said = ok(&[
        "reconstruct",
        "--input",
        "sim/dose_10000/patched.npz",
        "--output-dir",
        "parity",
        "--epochs",
        "1",
        "--init-object",
        "truth",
        "--algorithm",
        "epie",
        "--device",
        "cpu",
    ]);
    assert!(said.contains("parity mode"), "{said}");
    let history = std::fs::read_to_string(dir.path().join("parity/history.json")).unwrap();
    assert!(history.contains("parity mode"), "{history}");

    // Positions from another file: one per pattern, or a clear error.
    let xy: Vec<f64> = (0..59).map(|i| 100.0 + i as f64).collect();
    let mut w =
        ptycho_wgpu::io::npz_writer::NpzWriter::create(&dir.path().join("short.npz"), false)
            .unwrap();
    w.add_f64("xcoords", &[59], &xy).unwrap();
    w.add_f64("ycoords", &[59], &xy).unwrap();
    w.finish().unwrap();
    let short = Command::new(bin)
        .args([
            "reconstruct",
            "--input",
            "sim/dose_10000/patched.npz",
            "--output-dir",
            "moved",
            "--epochs",
            "1",
            "--positions-from",
            "short.npz",
            "--device",
            "cpu",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!short.status.success());
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(
        err.contains("short.npz: key 'xcoords'") && err.contains("(60,)"),
        "{err}"
    );
}
