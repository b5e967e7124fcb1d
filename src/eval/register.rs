//! Sub-pixel registration by phase cross-correlation with an upsampled DFT around the peak
//! (Guizar-Sicairos et al. 2008, as `skimage.registration.phase_cross_correlation`), and Fourier shifts.

use rustfft::num_complex::Complex64;

use super::image::{fft2, fftfreq, Complex};

/// The shift (dy, dx) that registers `moving` with `reference`, to 1/`upsample` pixel.
pub fn phase_cross_correlation(reference: &Complex, moving: &Complex, upsample: usize) -> [f64; 2] {
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
    let peak = argmax(&cc.data);
    let unwrap = |m: usize, n: usize| {
        if m > n / 2 {
            m as f64 - n as f64
        } else {
            m as f64
        }
    };
    let mut shift = [unwrap(peak / w, h), unwrap(peak % w, w)];
    if upsample <= 1 {
        return shift;
    }
    let u = upsample as f64;
    shift = [(shift[0] * u).round() / u, (shift[1] * u).round() / u];
    let region = (u * 1.5).ceil() as usize;
    let centre = (region / 2) as f64;
    let offset = [centre - shift[0] * u, centre - shift[1] * u];
    let conj = product.map(|v| v.conj());
    let up = upsampled_dft(&conj, region, u, offset).map(|v| v.conj());
    let peak = argmax(&up.data);
    [
        shift[0] + ((peak / region) as f64 - centre) / u,
        shift[1] + ((peak % region) as f64 - centre) / u,
    ]
}

fn argmax(values: &[Complex64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if v.norm_sqr() > values[best].norm_sqr() {
            best = i;
        }
    }
    best
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
}
