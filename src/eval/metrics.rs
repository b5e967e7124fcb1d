//! The reference's metrics (study-pipeline.md §7.2), computed in f64: MAE, MSE, PSNR, SSIM (scikit-image's
//! `structural_similarity` defaults), MS-SSIM (the reference's simplified form and the standard one),
//! FRC, and the phase preparation (plane or mean removal).

use rustfft::num_complex::Complex64;

use super::image::{fft2, fftshift, Real};

pub const SSIM_WINDOW: usize = 7;
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// scipy.ndimage's 'reflect' boundary: d c b a | a b c d | d c b a.
fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period) as usize;
    if m < n {
        m
    } else {
        2 * n - 1 - m
    }
}

/// Separable correlation with a symmetric 1-D kernel, reflected borders.
fn filter(img: &Real, kernel: &[f64]) -> Real {
    let r = (kernel.len() / 2) as isize;
    let mut rows = vec![0.0; img.data.len()];
    for y in 0..img.h {
        for x in 0..img.w {
            rows[y * img.w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, wk)| wk * img.at(y, reflect(x as isize + k as isize - r, img.w)))
                .sum();
        }
    }
    let mut out = vec![0.0; img.data.len()];
    for y in 0..img.h {
        for x in 0..img.w {
            out[y * img.w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, wk)| wk * rows[reflect(y as isize + k as isize - r, img.h) * img.w + x])
                .sum();
        }
    }
    Real::new(img.h, img.w, out)
}

/// scipy.ndimage.uniform_filter(img, size).
pub fn uniform_filter(img: &Real, size: usize) -> Real {
    filter(img, &vec![1.0 / size as f64; size])
}

/// scipy.ndimage.gaussian_filter(img, sigma) with its default truncate = 4.
pub fn gaussian_filter(img: &Real, sigma: f64) -> Real {
    let radius = (4.0 * sigma + 0.5) as isize;
    let mut kernel: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x as f64 / sigma).powi(2)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    filter(img, &kernel)
}

pub fn mae(a: &Real, b: &Real) -> f64 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .sum::<f64>()
        / a.data.len() as f64
}

pub fn mse(a: &Real, b: &Real) -> f64 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        / a.data.len() as f64
}

/// 10 log10(peak² / MSE).
pub fn psnr(a: &Real, b: &Real, peak: f64) -> f64 {
    10.0 * (peak * peak / mse(a, b)).log10()
}

/// The local SSIM terms of scikit-image (7x7 uniform window, sample covariance): the SSIM map and
/// the contrast-structure map, both cropped by 3 pixels at every edge.
fn ssim_maps(a: &Real, b: &Real, data_range: f64) -> (Real, Real) {
    let n = (SSIM_WINDOW * SSIM_WINDOW) as f64;
    let cov_norm = n / (n - 1.0);
    let ux = uniform_filter(a, SSIM_WINDOW);
    let uy = uniform_filter(b, SSIM_WINDOW);
    let uxx = uniform_filter(
        &Real::new(a.h, a.w, a.data.iter().map(|v| v * v).collect()),
        SSIM_WINDOW,
    );
    let uyy = uniform_filter(
        &Real::new(b.h, b.w, b.data.iter().map(|v| v * v).collect()),
        SSIM_WINDOW,
    );
    let uxy = uniform_filter(
        &Real::new(
            a.h,
            a.w,
            a.data.iter().zip(&b.data).map(|(x, y)| x * y).collect(),
        ),
        SSIM_WINDOW,
    );
    let c1 = (0.01 * data_range).powi(2);
    let c2 = (0.03 * data_range).powi(2);
    let (mut s, mut cs) = (
        Vec::with_capacity(a.data.len()),
        Vec::with_capacity(a.data.len()),
    );
    for i in 0..a.data.len() {
        let (mx, my) = (ux.data[i], uy.data[i]);
        let vx = cov_norm * (uxx.data[i] - mx * mx);
        let vy = cov_norm * (uyy.data[i] - my * my);
        let vxy = cov_norm * (uxy.data[i] - mx * my);
        let (a1, a2) = (2.0 * mx * my + c1, 2.0 * vxy + c2);
        let (b1, b2) = (mx * mx + my * my + c1, vx + vy + c2);
        s.push(a1 * a2 / (b1 * b2));
        cs.push(a2 / b2);
    }
    let pad = (SSIM_WINDOW - 1) / 2;
    (
        Real::new(a.h, a.w, s).trim(pad),
        Real::new(a.h, a.w, cs).trim(pad),
    )
}

/// Mean SSIM as `skimage.metrics.structural_similarity(a, b, data_range=data_range)`.
pub fn ssim(a: &Real, b: &Real, data_range: f64) -> f64 {
    ssim_maps(a, b, data_range).0.mean()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsSsimForm {
    /// The reference's simplification: Π over levels of (mean SSIM at that level)^weight, decimating by
    /// [::2, ::2]; negative levels clamped to 1e-4.
    Reference,
    /// Wang et al.: contrast-structure at the finer levels, full SSIM at the coarsest, 2x2 averaging.
    Standard,
}

fn average_2x2(img: &Real) -> Real {
    let (h, w) = (img.h / 2, img.w / 2);
    let mut data = Vec::with_capacity(h * w);
    for r in 0..h {
        for c in 0..w {
            data.push(
                (img.at(2 * r, 2 * c)
                    + img.at(2 * r + 1, 2 * c)
                    + img.at(2 * r, 2 * c + 1)
                    + img.at(2 * r + 1, 2 * c + 1))
                    / 4.0,
            );
        }
    }
    Real::new(h, w, data)
}

/// MS-SSIM over 5 scales with `MS_SSIM_WEIGHTS`; data range = the larger of the two images' ranges at the
/// first level; levels stop when the smaller side falls below 7. NaN gives 0.
pub fn ms_ssim(a: &Real, b: &Real, form: MsSsimForm) -> f64 {
    let data_range = a.range().max(b.range());
    let (mut a, mut b) = (a.clone(), b.clone());
    let mut levels: Vec<(f64, f64)> = Vec::new();
    for _ in 0..MS_SSIM_WEIGHTS.len() {
        if a.h.min(a.w) < SSIM_WINDOW {
            break;
        }
        let (s, cs) = ssim_maps(&a, &b, data_range);
        levels.push((s.mean(), cs.mean()));
        (a, b) = match form {
            MsSsimForm::Reference => (a.decimate(), b.decimate()),
            MsSsimForm::Standard => (average_2x2(&a), average_2x2(&b)),
        };
    }
    let clamp = |v: f64| if v < 0.0 { 1e-4 } else { v };
    let last = levels.len().saturating_sub(1);
    let value: f64 = levels
        .iter()
        .enumerate()
        .map(|(i, &(s, cs))| {
            let v = match form {
                MsSsimForm::Reference => s,
                MsSsimForm::Standard if i == last => s,
                MsSsimForm::Standard => cs,
            };
            clamp(v).powf(MS_SSIM_WEIGHTS[i])
        })
        .product();
    if levels.is_empty() || value.is_nan() {
        0.0
    } else {
        value
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseAlign {
    Plane,
    Mean,
    None,
}

/// Remove a least-squares plane a·col + b·row + c (or the mean) from a phase image.
pub fn align_phase(phase: &Real, how: PhaseAlign) -> Real {
    match how {
        PhaseAlign::None => phase.clone(),
        PhaseAlign::Mean => {
            let m = phase.mean();
            phase.map(|v| v - m)
        }
        PhaseAlign::Plane => {
            // Normal equations of [col, row, 1] in f64.
            let mut ata = [[0.0f64; 3]; 3];
            let mut atb = [0.0f64; 3];
            for r in 0..phase.h {
                for c in 0..phase.w {
                    let x = [c as f64, r as f64, 1.0];
                    for i in 0..3 {
                        for j in 0..3 {
                            ata[i][j] += x[i] * x[j];
                        }
                        atb[i] += x[i] * phase.at(r, c);
                    }
                }
            }
            let [a, b, c] = solve3(ata, atb);
            let mut out = phase.clone();
            for r in 0..phase.h {
                for col in 0..phase.w {
                    out.data[r * phase.w + col] -= a * col as f64 + b * r as f64 + c;
                }
            }
            out
        }
    }
}

/// Solve a 3x3 system by Gaussian elimination with partial pivoting (a zero pivot gives 0 for that unknown).
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> [f64; 3] {
    for col in 0..3 {
        let pivot = (col..3)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .expect("rows");
        m.swap(col, pivot);
        v.swap(col, pivot);
        if m[col][col].abs() < 1e-300 {
            continue;
        }
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (target, p) in m[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *target -= f * p;
            }
            v[row] -= f * v[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        if m[row][row].abs() < 1e-300 {
            continue;
        }
        let s: f64 = (row + 1..3).map(|k| m[row][k] * x[k]).sum();
        x[row] = (v[row] - s) / m[row][row];
    }
    x
}

/// A Fourier ring correlation curve and its thresholds.
#[derive(Clone, Debug)]
pub struct Frc {
    /// FRC per ring index (0 = DC), out to the corners.
    pub curve: Vec<f64>,
    /// First crossing below 0.5, linearly interpolated, in ring-index units; the reference's
    /// len(curve) when the curve never falls below it (see `crossed`).
    pub frc50: f64,
    pub frc1over7: f64,
    /// Whether the curve falls below 0.5 and 1/7.
    pub crossed: [bool; 2],
    /// Ring index to cycles per pixel.
    pub cycles_per_ring: f64,
}

/// An apodising window applied to both images before their FFTs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrcWindow {
    /// None, as the reference: the cut edges of the images leak into the high rings.
    None,
    /// A separable Hann window, which tapers the edges to zero.
    Hann,
}

fn hann(n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![1.0; n];
    }
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos())
        .collect()
}

/// The reference's Fourier shell correlation (hoidn/FRC): with F = fftshift(fft2(image)) and sums over
/// rings round(r) about (floor(h/2), floor(w/2)), corner rings included,
/// FRC = |Σ F1·F2*| / sqrt(Σ|F1|² · Σ|F2|²). The magnitude makes the single-pixel DC ring 1 however
/// the means' signs fall (the real part would make it ±1, and a plane-removed phase's FRC50 0).
/// With `elliptical`, non-square images use rings of equal frequency (r scaled per axis).
pub fn frc(a: &Real, b: &Real, elliptical: bool, window: FrcWindow) -> Frc {
    let apodise = |img: &Real| -> Real {
        match window {
            FrcWindow::None => img.clone(),
            FrcWindow::Hann => {
                let (wy, wx) = (hann(img.h), hann(img.w));
                let mut out = img.clone();
                for (row, y) in out.data.chunks_mut(img.w).zip(&wy) {
                    for (v, x) in row.iter_mut().zip(&wx) {
                        *v *= y * x;
                    }
                }
                out
            }
        }
    };
    let spectrum =
        |img: &Real| fftshift(&fft2(&apodise(img).map(|v| Complex64::new(v, 0.0)), false));
    let (fa, fb) = (spectrum(a), spectrum(b));
    let side = a.h.min(a.w);
    let (cy, cx) = ((a.h / 2) as f64, (a.w / 2) as f64);
    let radius = |r: usize, c: usize| {
        let (dy, dx) = (r as f64 - cy, c as f64 - cx);
        if elliptical {
            ((dy / a.h as f64).powi(2) + (dx / a.w as f64).powi(2)).sqrt() * side as f64
        } else {
            (dy * dy + dx * dx).sqrt()
        }
    };
    let rings = (0..a.h)
        .flat_map(|r| (0..a.w).map(move |c| (r, c)))
        .map(|(r, c)| radius(r, c).round() as usize)
        .max()
        .map_or(0, |m| m + 1);
    let (mut num, mut da, mut db) = (
        vec![Complex64::default(); rings],
        vec![0.0; rings],
        vec![0.0; rings],
    );
    for r in 0..a.h {
        for c in 0..a.w {
            let ring = radius(r, c).round() as usize;
            let (p, q) = (fa.at(r, c), fb.at(r, c));
            num[ring] += p * q.conj();
            da[ring] += p.norm_sqr();
            db[ring] += q.norm_sqr();
        }
    }
    let curve: Vec<f64> = (0..rings)
        .map(|i| num[i].norm() / (da[i] * db[i]).sqrt())
        .collect();
    let crossing = |t: f64| -> Option<f64> {
        let i = curve.iter().position(|&v| v < t)?;
        if i == 0 {
            return Some(0.0);
        }
        let (prev, cur) = (curve[i - 1], curve[i]);
        Some((i - 1) as f64 + (prev - t) / (prev - cur))
    };
    let (half, seventh) = (crossing(0.5), crossing(1.0 / 7.0));
    let never = curve.len() as f64;
    Frc {
        frc50: half.unwrap_or(never),
        frc1over7: seventh.unwrap_or(never),
        crossed: [half.is_some(), seventh.is_some()],
        curve,
        cycles_per_ring: 1.0 / side as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptycho_kernels::rng::SplitMix64;

    fn noise(h: usize, w: usize, seed: u64) -> Real {
        let mut rng = SplitMix64::new(seed);
        Real::new(h, w, (0..h * w).map(|_| rng.next_f64()).collect())
    }

    #[test]
    fn ssim_of_an_image_with_itself_is_one() {
        let a = noise(40, 50, 1);
        assert!((ssim(&a, &a, a.range()) - 1.0).abs() < 1e-12);
        assert!((ms_ssim(&a, &a, MsSsimForm::Reference) - 1.0).abs() < 1e-12);
        assert!((ms_ssim(&a, &a, MsSsimForm::Standard) - 1.0).abs() < 1e-12);
        let b = noise(40, 50, 2);
        assert!(ssim(&a, &b, 1.0) < 0.2);
    }

    #[test]
    fn ms_ssim_weights_and_small_images_stop_early() {
        // Wang et al.'s published weights; they sum to 1.0001, not 1.
        assert!((MS_SSIM_WEIGHTS.iter().sum::<f64>() - 1.0001).abs() < 1e-12);
        let (a, b) = (noise(20, 20, 3), noise(20, 20, 4));
        // 20 -> 10 -> 5: two levels.
        let expected = ssim(&a, &b, a.range().max(b.range()))
            .max(1e-4)
            .powf(MS_SSIM_WEIGHTS[0])
            * ssim(&a.decimate(), &b.decimate(), a.range().max(b.range()))
                .max(1e-4)
                .powf(MS_SSIM_WEIGHTS[1]);
        assert!((ms_ssim(&a, &b, MsSsimForm::Reference) - expected).abs() < 1e-12);
        assert_eq!(
            ms_ssim(&noise(6, 6, 1), &noise(6, 6, 2), MsSsimForm::Reference),
            0.0
        );
    }

    #[test]
    fn removing_a_plane_from_a_plane_leaves_zeros() {
        let plane = Real::new(
            12,
            17,
            (0..12 * 17)
                .map(|i| 0.3 * (i % 17) as f64 - 0.7 * (i / 17) as f64 + 2.0)
                .collect(),
        );
        assert!(align_phase(&plane, PhaseAlign::Plane)
            .data
            .iter()
            .all(|v| v.abs() < 1e-10));
        let m = align_phase(&plane, PhaseAlign::Mean);
        assert!(m.mean().abs() < 1e-12);
    }

    #[test]
    fn frc_of_identical_images_is_one_and_never_crosses() {
        let a = noise(32, 32, 5);
        let f = frc(&a, &a, false, FrcWindow::None);
        // Rings out to the corner: round(16·√2) = 23.
        assert_eq!(f.curve.len(), 24);
        assert!(f.curve.iter().all(|v| (v - 1.0).abs() < 1e-12));
        assert_eq!((f.frc50, f.crossed), (24.0, [false, false]));
        let non_square = noise(24, 40, 6);
        let e = frc(&non_square, &non_square, true, FrcWindow::Hann);
        assert!(e.curve.iter().all(|v| (v - 1.0).abs() < 1e-12));
        let g = frc(&a, &noise(32, 32, 7), false, FrcWindow::None);
        assert!(g.crossed[0] && (0.0..16.0).contains(&g.frc50));
    }

    #[test]
    fn the_dc_ring_of_images_with_means_of_opposite_sign_is_one() {
        // Plane-removed phases have means near zero of either sign: the DC ring must not read -1.
        let n = noise(16, 16, 1);
        let mean = n.mean();
        let a = n.map(|v| v - mean + 0.01);
        let b = a.map(|v| v - 0.02);
        let f = frc(&a, &b, false, FrcWindow::None);
        assert!((f.curve[0] - 1.0).abs() < 1e-12, "{}", f.curve[0]);
    }

    #[test]
    fn psnr_follows_its_formula() {
        let a = Real::new(1, 4, vec![0.0, 1.0, 2.0, 3.0]);
        let b = Real::new(1, 4, vec![1.0, 1.0, 2.0, 3.0]);
        assert!((psnr(&a, &b, 255.0) - 10.0 * (255.0f64.powi(2) / 0.25).log10()).abs() < 1e-12);
        assert_eq!(mae(&a, &b), 0.25);
        assert_eq!(mse(&a, &b), 0.25);
    }

    #[test]
    fn reflect_matches_scipy() {
        let idx: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }
}
