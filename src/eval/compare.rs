//! One comparison as the reference does it (study-pipeline.md §7.2): crop the truth to the scanned
//! region, centre-crop both to a common size, optionally register, trim, prepare amplitude and phase,
//! and compute every metric for each.

use std::path::Path;

use super::EvalError;
use crate::data::checked::CheckedNpz;
use crate::io::npz::NpzFile;
use rustfft::num_complex::Complex64;
use serde::Serialize;

use super::image::{Complex, Real};
use super::metrics::{self, align_phase, FrcWindow, MsSsimForm, PhaseAlign};
use super::register::{fourier_shift, register};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Centre-crop to the common size only.
    None,
    /// Crop the truth to the scanned region first (needs positions), then centre-crop.
    Crop,
    /// As Crop, then sub-pixel registration (upsampling 50) and a 2-pixel trim.
    Register,
}

#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub align: Align,
    /// Pixels trimmed from every edge before the metrics (the reference's offset // 2).
    pub trim: usize,
    pub phase_align: PhaseAlign,
    /// σ of the Gaussian applied to amplitudes before MS-SSIM (0: none).
    pub ms_ssim_sigma: f64,
    pub ms_ssim: MsSsimForm,
    /// Centre-crop non-square images to a square for FRC (the reference); else elliptical rings.
    pub frc_crop: bool,
    /// M of the stitching crop: the scanned region is positions ± M/2.
    pub stitch_crop: usize,
    pub frc_window: FrcWindow,
    /// Registration looks for whole-pixel shifts of at most this many pixels per axis.
    pub register_max_shift: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            align: Align::Crop,
            trim: 2,
            phase_align: PhaseAlign::Plane,
            ms_ssim_sigma: 1.0,
            ms_ssim: MsSsimForm::Reference,
            frc_crop: true,
            stitch_crop: 20,
            frc_window: FrcWindow::None,
            register_max_shift: 16.0,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PartMetrics {
    pub mae: f64,
    pub mse: f64,
    /// 10 log10(255² / MSE): the reference's fixed peak.
    pub psnr: f64,
    /// 10 log10(range² / MSE) with the range of the prepared ground truth.
    pub psnr_data_range: f64,
    pub ssim: f64,
    pub ms_ssim: f64,
    /// In ring-index units; the number of rings, as the reference, when the curve never falls below
    /// the threshold (then `frc50_crossed` is false).
    pub frc50: f64,
    pub frc1over7: f64,
    pub frc50_crossed: bool,
    pub frc1over7_crossed: bool,
    /// Null when the curve never crosses.
    pub frc50_cycles_per_pixel: Option<f64>,
    pub frc1over7_cycles_per_pixel: Option<f64>,
}

/// What was cut from the two images before scoring, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Cropping {
    pub recon_shape: [usize; 2],
    pub truth_shape: [usize; 2],
    /// The truth (and a reconstruction in its frame) cut to the scanned region, positions ± M/2:
    /// [first row, first column, rows, columns]. None without positions or alignment.
    pub scanned_region: Option<[usize; 4]>,
    /// Both centre-cropped to this common size.
    pub common_shape: [usize; 2],
    /// Pixels trimmed from every edge (the registration's 2, then --trim).
    pub trimmed_per_edge: usize,
    /// The above in words.
    pub note: String,
}

/// The registration found, and whether it was applied.
#[derive(Clone, Debug, Serialize)]
pub struct RegistrationReport {
    pub found: [f64; 2],
    pub peak_ratio: f64,
    /// False: the peak was too weak to trust, so no shift was applied.
    pub trusted: bool,
    pub max_shift: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub amplitude: PartMetrics,
    pub phase: PartMetrics,
    /// [dy, dx] applied to the reconstruction, when registered (and trusted).
    pub registration_offset: Option<[f64; 2]>,
    pub registration: Option<RegistrationReport>,
    pub cropping: Cropping,
    pub frc_window: FrcWindow,
    pub shape: [usize; 2],
    #[serde(skip)]
    pub frc_curves: [Vec<f64>; 2],
    /// The prepared images (truth amplitude, recon amplitude, truth phase, recon phase), for pictures.
    #[serde(skip)]
    pub prepared: [Real; 4],
}

/// Scan positions (x = column, y = row) in object pixels, when the reconstruction file has them.
pub type Positions = (Vec<f64>, Vec<f64>);

fn scanned_region(
    truth: &Complex,
    positions: &Positions,
    m: usize,
) -> (Complex, Option<[usize; 4]>) {
    let half = m as f64 / 2.0;
    let bounds = |v: &[f64], size: usize| {
        let lo = (v.iter().copied().fold(f64::INFINITY, f64::min) - half)
            .floor()
            .max(0.0) as usize;
        let hi = ((v.iter().copied().fold(f64::NEG_INFINITY, f64::max) + half).ceil() as usize)
            .min(size);
        (lo.min(size), hi.max(lo.min(size)))
    };
    let (c0, c1) = bounds(&positions.0, truth.w);
    let (r0, r1) = bounds(&positions.1, truth.h);
    if r1 - r0 < 8 || c1 - c0 < 8 {
        return (truth.clone(), None);
    }
    (
        truth.crop(r0, c0, r1 - r0, c1 - c0),
        Some([r0, c0, r1 - r0, c1 - c0]),
    )
}

/// A stitched reconstruction (`ptycho infer`, the reference's `reassemble_position`) has its pixel
/// (h/2, w/2) at the mean of its positions. Sample it, bilinearly, at the object pixels of the truth's
/// scanned region `[r0, c0, h, w]`, and cut both to the part the reconstruction covers. The reference
/// instead centre-crops the reconstruction to the region's size, which misaligns the two by the
/// distance between the mean position and the region's centre (1.4 px on the study's test split).
fn place_stitched(
    truth_region: &Complex,
    recon: &Complex,
    region: [usize; 4],
    positions: &Positions,
) -> (Complex, Complex) {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    // Object coordinates of the reconstruction's pixel (0, 0).
    let origin = [
        mean(&positions.1) - (recon.h / 2) as f64,
        mean(&positions.0) - (recon.w / 2) as f64,
    ];
    // Truth-region rows (columns) k whose object pixel the reconstruction holds, with both
    // bilinear neighbours inside it.
    let span = |first: usize, len: usize, origin: f64, size: usize| {
        let at = |k: usize| first as f64 + k as f64 - origin;
        let lo = (0..len).find(|&k| at(k) >= 0.0).unwrap_or(len);
        let hi = (0..len)
            .rev()
            .find(|&k| at(k) <= (size - 1) as f64)
            .map_or(0, |k| k + 1);
        (lo, hi.max(lo))
    };
    let (rows, cols) = (
        span(region[0], region[2], origin[0], recon.h),
        span(region[1], region[3], origin[1], recon.w),
    );
    let (h, w) = (rows.1 - rows.0, cols.1 - cols.0);
    let sample = |y: f64, x: f64| {
        let (y0, x0) = (y.floor(), x.floor());
        let (fy, fx) = (y - y0, x - x0);
        let (y0, x0) = (y0 as usize, x0 as usize);
        let (y1, x1) = ((y0 + 1).min(recon.h - 1), (x0 + 1).min(recon.w - 1));
        recon.at(y0, x0) * ((1.0 - fy) * (1.0 - fx))
            + recon.at(y0, x1) * ((1.0 - fy) * fx)
            + recon.at(y1, x0) * (fy * (1.0 - fx))
            + recon.at(y1, x1) * (fy * fx)
    };
    let mut data = Vec::with_capacity(h * w);
    for k in rows.0..rows.1 {
        for l in cols.0..cols.1 {
            data.push(sample(
                (region[0] + k) as f64 - origin[0],
                (region[1] + l) as f64 - origin[1],
            ));
        }
    }
    (
        truth_region.crop(rows.0, cols.0, h, w),
        Complex::new(h, w, data),
    )
}

/// An image with nothing to score: no signal at all.
fn check_signal(img: &Complex, what: &str) -> Result<(), EvalError> {
    if img.data.iter().all(|v| v.norm() == 0.0) {
        return Err(EvalError::from(format!(
            "the {what} is zero everywhere ({}x{}): there is nothing to score",
            img.h, img.w
        )));
    }
    Ok(())
}

fn part(
    truth: &Real,
    recon: &Real,
    ssim_truth: &Real,
    ssim_recon: &Real,
    ssim_range: f64,
    ms: (&Real, &Real),
    options: &CompareOptions,
) -> (PartMetrics, Vec<f64>) {
    let (ft, fr) = if options.frc_crop && truth.h != truth.w {
        let side = truth.h.min(truth.w);
        (truth.center_crop(side, side), recon.center_crop(side, side))
    } else {
        (truth.clone(), recon.clone())
    };
    let frc = metrics::frc(&ft, &fr, !options.frc_crop, options.frc_window);
    let per_pixel = |v: f64, crossed: bool| crossed.then_some(v * frc.cycles_per_ring);
    let metrics = PartMetrics {
        mae: metrics::mae(recon, truth),
        mse: metrics::mse(recon, truth),
        psnr: metrics::psnr(recon, truth, 255.0),
        psnr_data_range: metrics::psnr(recon, truth, truth.range()),
        ssim: metrics::ssim(ssim_truth, ssim_recon, ssim_range),
        ms_ssim: metrics::ms_ssim(ms.0, ms.1, options.ms_ssim),
        frc50: frc.frc50,
        frc1over7: frc.frc1over7,
        frc50_crossed: frc.crossed[0],
        frc1over7_crossed: frc.crossed[1],
        frc50_cycles_per_pixel: per_pixel(frc.frc50, frc.crossed[0]),
        frc1over7_cycles_per_pixel: per_pixel(frc.frc1over7, frc.crossed[1]),
    };
    (metrics, frc.curve)
}

/// Score `recon` against `truth`. An error when either has no signal or too little is left after
/// cropping.
pub fn compare(
    recon: &Complex,
    truth: &Complex,
    positions: Option<&Positions>,
    options: &CompareOptions,
) -> Result<Comparison, EvalError> {
    check_signal(recon, "reconstruction")?;
    check_signal(truth, "ground truth")?;
    let (recon_shape, truth_shape) = ([recon.h, recon.w], [truth.h, truth.w]);
    // A stitched reconstruction covers only the scanned region, so only the truth is cut to it; one in
    // the object's own frame (same shape as the truth) is cut the same way.
    let mut placed = false;
    let (truth, recon, scanned) = match (options.align, positions) {
        (Align::Crop | Align::Register, Some(p)) => {
            let same_frame = recon.h == truth.h && recon.w == truth.w;
            let (cut_truth, region) = scanned_region(truth, p, options.stitch_crop);
            match region {
                Some(region) if !same_frame => {
                    placed = true;
                    let (t, r) = place_stitched(&cut_truth, recon, region, p);
                    (t, r, Some(region))
                }
                _ => {
                    let cut_recon = if same_frame {
                        scanned_region(recon, p, options.stitch_crop).0
                    } else {
                        recon.clone()
                    };
                    (cut_truth, cut_recon, region)
                }
            }
        }
        _ => (truth.clone(), recon.clone(), None),
    };
    let (h, w) = (truth.h.min(recon.h), truth.w.min(recon.w));
    let (mut truth, mut recon) = (truth.center_crop(h, w), recon.center_crop(h, w));
    let mut registration_offset = None;
    let mut registration = None;
    let mut trimmed = options.trim;
    if options.align == Align::Register {
        let found = register(&truth, &recon, 50, Some(options.register_max_shift));
        let trusted = found.trusted();
        if trusted {
            recon = fourier_shift(&recon, found.shift);
            registration_offset = Some(found.shift);
        }
        recon = recon.trim(2);
        truth = truth.trim(2);
        trimmed += 2;
        registration = Some(RegistrationReport {
            found: found.shift,
            peak_ratio: found.peak_ratio,
            trusted,
            max_shift: options.register_max_shift,
        });
    }
    let (truth, recon) = (truth.trim(options.trim), recon.trim(options.trim));
    if truth.h < 7 || truth.w < 7 {
        return Err(EvalError::from(format!(
            "only {}x{} pixels remain after cropping and trimming; SSIM needs at least 7x7",
            truth.h, truth.w
        )));
    }
    let note = cropping_note(recon_shape, truth_shape, scanned, placed, [h, w], trimmed);
    let cropping = Cropping {
        recon_shape,
        truth_shape,
        scanned_region: scanned,
        common_shape: [h, w],
        trimmed_per_edge: trimmed,
        note,
    };

    let truth_amp = truth.map(|v: Complex64| v.norm());
    let recon_amp = recon.map(|v: Complex64| v.norm());
    let scale = truth_amp.mean() / recon_amp.mean();
    let recon_amp = recon_amp.map(|v| v * scale);
    // The data cannot fix an object's global phase. The reconstruction is first turned by the one
    // that best matches the truth, arg Σ truth·conj(recon), so that a reconstruction whose phase sits
    // near ±π is not cut apart by the wrap; the plane removal below then absorbs any offset left,
    // so a reconstruction near phase 0 scores as before.
    let overlap: Complex64 = truth
        .data
        .iter()
        .zip(&recon.data)
        .map(|(t, r)| t * r.conj())
        .sum();
    let turn = if overlap.norm() > 0.0 {
        overlap / overlap.norm()
    } else {
        Complex64::new(1.0, 0.0)
    };
    let truth_phase = align_phase(&truth.map(|v: Complex64| v.arg()), options.phase_align);
    let recon_phase = align_phase(
        &recon.map(|v: Complex64| (v * turn).arg()),
        options.phase_align,
    );

    let smooth = |img: &Real| {
        if options.ms_ssim_sigma > 0.0 {
            metrics::gaussian_filter(img, options.ms_ssim_sigma)
        } else {
            img.clone()
        }
    };
    let (ms_t, ms_r) = (smooth(&truth_amp), smooth(&recon_amp));
    let (amplitude, amp_curve) = part(
        &truth_amp,
        &recon_amp,
        &truth_amp,
        &recon_amp,
        truth_amp.range(),
        (&ms_t, &ms_r),
        options,
    );
    let to_unit =
        |img: &Real| img.map(|v| (v + std::f64::consts::PI) / (2.0 * std::f64::consts::PI));
    let (unit_t, unit_r) = (to_unit(&truth_phase), to_unit(&recon_phase));
    let (phase, phase_curve) = part(
        &truth_phase,
        &recon_phase,
        &unit_t,
        &unit_r,
        1.0,
        (&unit_t, &unit_r),
        options,
    );
    Ok(Comparison {
        amplitude,
        phase,
        registration_offset,
        registration,
        cropping,
        frc_window: options.frc_window,
        shape: [truth.h, truth.w],
        frc_curves: [amp_curve, phase_curve],
        prepared: [truth_amp, recon_amp, truth_phase, recon_phase],
    })
}

fn cropping_note(
    recon: [usize; 2],
    truth: [usize; 2],
    scanned: Option<[usize; 4]>,
    placed: bool,
    common: [usize; 2],
    trimmed: usize,
) -> String {
    let mut parts = vec![format!(
        "reconstruction {}x{}, truth {}x{}",
        recon[0], recon[1], truth[0], truth[1]
    )];
    if let Some([r, c, h, w]) = scanned {
        parts.push(format!(
            "truth cut to the scanned region (positions ± M/2: rows {r}..{}, columns {c}..{})",
            r + h,
            c + w
        ));
    }
    if placed {
        parts.push(format!(
            "the stitched reconstruction placed by its positions (its centre is their mean) and \
             both cut to the {}x{} they share",
            common[0], common[1]
        ));
    } else {
        parts.push(format!(
            "both centre-cropped to the common {}x{}",
            common[0], common[1]
        ));
    }
    parts.push(format!("{trimmed} px trimmed from every edge"));
    parts.join("; ")
}

/// The complex image under the first of `keys` that `path` holds.
pub fn read_image(path: &Path, keys: &[&str]) -> Result<Complex, EvalError> {
    let npz = NpzFile::open(path)?;
    let key = keys.iter().find(|k| npz.has(k)).ok_or_else(|| {
        EvalError::Unscorable(format!(
            "{}: none of the keys {keys:?} (keys present: {})",
            path.display(),
            npz.keys().join(", ")
        ))
    })?;
    let image = CheckedNpz::new(&npz, path).complex_image(key, "a complex 2-D image")?;
    Ok(Complex::new(
        image.rows,
        image.cols,
        image
            .data
            .iter()
            .map(|v| Complex64::new(v.re as f64, v.im as f64))
            .collect(),
    ))
}

/// The keys a reconstruction may hold its object under, in order of preference.
pub const RECON_KEYS: [&str; 3] = ["object", "reconstructed_object", "objectGuess"];

/// The keys a ground-truth file may hold its object under.
pub const TRUTH_KEYS: [&str; 2] = ["objectGuess", "object"];

/// `xcoords`, `ycoords` of `path`, when it has both.
pub fn read_positions(path: &Path) -> Result<Option<Positions>, EvalError> {
    let npz = NpzFile::open(path)?;
    if npz.has("xcoords") && npz.has("ycoords") {
        let checked = CheckedNpz::new(&npz, path);
        let expected = "(M,) float positions";
        return Ok(Some((
            checked.real_f64("xcoords", expected)?.1,
            checked.real_f64("ycoords", expected)?.1,
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth complex texture.
    fn object(h: usize, w: usize) -> Complex {
        let data = (0..h * w)
            .map(|i| {
                let (r, c) = ((i / w) as f64, (i % w) as f64);
                Complex64::from_polar(
                    0.75 + 0.2 * (c / 4.0).sin() * (r / 6.0).cos(),
                    0.6 * (r / 5.0).sin() * (c / 7.0).cos(),
                )
            })
            .collect();
        Complex::new(h, w, data)
    }

    #[test]
    fn a_stitched_reconstruction_is_placed_by_its_positions() {
        let truth = object(120, 120);
        // Three positions at one side and one far away: the mean (50, 55) is 10 and 5 px from the
        // centre of the scanned region, rows 40..80 and columns 30..90 with the 20 px crop.
        let positions: Positions = (vec![40.0, 40.0, 40.0, 80.0], vec![50.0, 50.0, 50.0, 70.0]);
        // The stitched image: 80 x 80, its pixel (40, 40) at the mean position.
        let recon = truth.crop(55 - 40, 50 - 40, 80, 80);
        let c = compare(&recon, &truth, Some(&positions), &CompareOptions::default()).unwrap();
        assert!(c.amplitude.ssim > 0.999, "{}", c.amplitude.ssim);
        assert!(c.phase.ssim > 0.999, "{}", c.phase.ssim);
        assert!(c.cropping.note.contains("placed by its positions"));
        // Sub-pixel: the mean moves by a fraction, the image is sampled between pixels.
        let positions: Positions = (vec![40.0, 40.0, 40.0, 81.0], vec![50.0, 50.0, 50.0, 71.0]);
        let shifted = super::super::register::fourier_shift(&recon, [-0.25, -0.25]);
        let c = compare(
            &shifted,
            &truth,
            Some(&positions),
            &CompareOptions::default(),
        )
        .unwrap();
        assert!(c.amplitude.ssim > 0.99, "{}", c.amplitude.ssim);
    }

    /// The data cannot fix the global phase: the truth turned by ~π (its phase then wraps) scores as
    /// the truth itself.
    #[test]
    fn a_global_phase_near_pi_does_not_cost_the_phase_score() {
        let truth = object(64, 64);
        let turned = truth.map(|v: Complex64| v * Complex64::from_polar(1.0, 3.0));
        let options = CompareOptions::default();
        let c = compare(&turned, &truth, None, &options).unwrap();
        assert!(c.phase.ssim > 0.999, "{}", c.phase.ssim);
        assert!(c.phase.mae < 1e-9, "{}", c.phase.mae);
    }
}
