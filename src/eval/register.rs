//! Sub-pixel registration by phase cross-correlation with an upsampled DFT around the peak
//! (Guizar-Sicairos et al. 2008, as `skimage.registration.phase_cross_correlation`), and Fourier shifts.

use rustfft::num_complex::Complex64;

use super::image::{fft2, fftfreq, Complex};

/// The shift (dy, dx) that registers `moving` with `reference`, to 1/`upsample` pixel.
pub fn phase_cross_correlation(reference: &Complex, moving: &Complex, upsample: usize) -> [f64; 2] {
    register(reference, moving, upsample, None).shift
}

/// A registration and how far to trust it.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Registration {
    /// (dy, dx) to apply to the moving image.
    pub shift: [f64; 2],
    /// The correlation peak over the RMS of the whole correlation surface. An image and a shifted
    /// copy give a peak far above the rest; for unrelated images the largest of many noise values
    /// is only a few times their RMS.
    pub peak_ratio: f64,
}

/// Below this peak ratio a registration is not trusted: the largest of ~10⁴ unrelated correlation
/// values is about 4–5 times their RMS, so a real match must stand well above that.
pub const MIN_PEAK_RATIO: f64 = 8.0;

impl Registration {
    pub fn trusted(&self) -> bool {
        self.peak_ratio >= MIN_PEAK_RATIO
    }
}

/// As `phase_cross_correlation`, with the whole-pixel search limited to shifts of at most
/// `max_shift` pixels along each axis (a wrong peak far away cannot win), and the peak ratio.
pub fn register(
    reference: &Complex,
    moving: &Complex,
    upsample: usize,
    max_shift: Option<f64>,
) -> Registration {
    let (h, w) = (reference.h, reference.w);
    let fr = fft2(reference, false);
    let fm = fft2(moving, false);
    let product: Vec<Complex64> = fr
        .data
        .iter()
        .zip(&fm.data)
        .map(|(a, b)| {
            let p = a * b.conj();
            p / p.norm().max(f64::MIN_POSITIVE)
        })
        .collect();
    let product = Complex::new(h, w, product);
    let cc = fft2(&product, true);
    let unwrap = |m: usize, n: usize| {
        if m > n / 2 {
            m as f64 - n as f64
        } else {
            m as f64
        }
    };
    let allowed = |i: usize| {
        max_shift
            .is_none_or(|limit| unwrap(i / w, h).abs() <= limit && unwrap(i % w, w).abs() <= limit)
    };
    let peak = argmax(&cc.data, allowed);
    let rms = (cc.data.iter().map(|v| v.norm_sqr()).sum::<f64>() / cc.data.len() as f64).sqrt();
    let peak_ratio = cc.data[peak].norm() / rms.max(f64::MIN_POSITIVE);
    let mut shift = [unwrap(peak / w, h), unwrap(peak % w, w)];
    if upsample <= 1 {
        return Registration { shift, peak_ratio };
    }
    let u = upsample as f64;
    shift = [(shift[0] * u).round() / u, (shift[1] * u).round() / u];
    let region = (u * 1.5).ceil() as usize;
    let centre = (region / 2) as f64;
    let offset = [centre - shift[0] * u, centre - shift[1] * u];
    let conj = product.map(|v| v.conj());
    let up = upsampled_dft(&conj, region, u, offset).map(|v| v.conj());
    let peak = argmax(&up.data, |_| true);
    Registration {
        shift: [
            shift[0] + ((peak / region) as f64 - centre) / u,
            shift[1] + ((peak % region) as f64 - centre) / u,
        ],
        peak_ratio,
    }
}

/// The index of the largest magnitude among the allowed indices (0 if none is).
fn argmax(values: &[Complex64], allowed: impl Fn(usize) -> bool) -> usize {
    let mut best: Option<usize> = None;
    for (i, v) in values.iter().enumerate() {
        if allowed(i) && best.is_none_or(|b| v.norm_sqr() > values[b].norm_sqr()) {
            best = Some(i);
        }
    }
    best.unwrap_or(0)
}

/// The DFT of `data` sampled on a `region` x `region` grid, `u` times finer than the pixel grid, starting
/// at `offset` (in upsampled pixels) — a matrix-multiply DFT, cheap for small regions.
fn upsampled_dft(data: &Complex, region: usize, u: f64, offset: [f64; 2]) -> Complex {
    let two_pi = 2.0 * std::f64::consts::PI;
    let kernel = |n: usize, off: f64| -> Vec<Complex64> {
        let mut k = Vec::with_capacity(region * n);
        for i in 0..region {
            for j in 0..n {
                let phase = -two_pi * (i as f64 - off) * fftfreq(j, n) / u;
                k.push(Complex64::from_polar(1.0, phase));
            }
        }
        k
    };
    let (kx, ky) = (kernel(data.w, offset[1]), kernel(data.h, offset[0]));
    // Columns first: tmp[ux][r] = Σ_c kx[ux][c] data[r][c].
    let mut tmp = vec![Complex64::default(); region * data.h];
    for ux in 0..region {
        for r in 0..data.h {
            tmp[ux * data.h + r] = (0..data.w)
                .map(|c| kx[ux * data.w + c] * data.at(r, c))
                .sum();
        }
    }
    let mut out = vec![Complex64::default(); region * region];
    for uy in 0..region {
        for ux in 0..region {
            out[uy * region + ux] = (0..data.h)
                .map(|r| ky[uy * data.h + r] * tmp[ux * data.h + r])
                .sum();
        }
    }
    Complex::new(region, region, out)
}

/// `scipy.ndimage.fourier_shift` then the inverse FFT: `img` moved by (dy, dx) pixels, periodically.
pub fn fourier_shift(img: &Complex, shift: [f64; 2]) -> Complex {
    let mut f = fft2(img, false);
    let two_pi = 2.0 * std::f64::consts::PI;
    for r in 0..img.h {
        for c in 0..img.w {
            let phase = -two_pi * (shift[0] * fftfreq(r, img.h) + shift[1] * fftfreq(c, img.w));
            f.data[r * img.w + c] *= Complex64::from_polar(1.0, phase);
        }
    }
    fft2(&f, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptycho_kernels::rng::SplitMix64;

    /// A smooth random image: low frequencies only, so sub-pixel shifts are well defined.
    fn smooth(h: usize, w: usize, seed: u64) -> Complex {
        let mut rng = SplitMix64::new(seed);
        let mut f = Complex::new(h, w, vec![Complex64::default(); h * w]);
        for r in 0..h {
            for c in 0..w {
                let (fy, fx) = (fftfreq(r, h), fftfreq(c, w));
                if fy.abs() < 0.12 && fx.abs() < 0.12 {
                    f.data[r * w + c] = Complex64::new(rng.next_f64() - 0.5, rng.next_f64() - 0.5);
                }
            }
        }
        fft2(&f, true)
    }

    #[test]
    fn recovers_a_known_subpixel_shift() {
        let reference = smooth(64, 80, 1);
        for applied in [[1.3, -2.7], [-0.42, 0.18], [3.0, 0.0]] {
            let moving = fourier_shift(&reference, applied);
            let found = phase_cross_correlation(&reference, &moving, 50);
            assert!(
                (found[0] + applied[0]).abs() < 0.05 && (found[1] + applied[1]).abs() < 0.05,
                "{applied:?} -> {found:?}"
            );
            let r = register(&reference, &moving, 50, Some(4.0));
            assert!(r.trusted(), "{applied:?}: peak ratio {}", r.peak_ratio);
            assert_eq!(r.shift, found);
            let back = fourier_shift(&moving, found);
            let err: f64 = back
                .data
                .iter()
                .zip(&reference.data)
                .map(|(a, b)| (a - b).norm_sqr())
                .sum::<f64>()
                / reference.data.iter().map(|v| v.norm_sqr()).sum::<f64>();
            assert!(err < 1e-3, "registered image differs: {err}");
        }
    }

    #[test]
    fn unrelated_images_are_not_trusted_and_the_search_is_bounded() {
        let (a, b) = (smooth(64, 80, 1), smooth(64, 80, 2));
        let r = register(&a, &b, 50, Some(3.0));
        assert!(!r.trusted(), "peak ratio {}", r.peak_ratio);
        assert!(
            r.shift.iter().all(|v| v.abs() <= 3.0 + 1.0 / 50.0),
            "{:?}",
            r.shift
        );
        // A true shift beyond the bound is not found.
        let far = fourier_shift(&a, [20.0, 0.0]);
        assert_eq!(register(&a, &far, 1, None).shift, [-20.0, 0.0]);
        assert!(register(&a, &far, 1, Some(8.0)).shift[0].abs() <= 8.0);
    }
}
