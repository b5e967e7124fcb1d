//! One comparison as the reference does it (study-pipeline.md §7.2): crop the truth to the scanned
//! region, centre-crop both to a common size, optionally register, trim, prepare amplitude and phase,
//! and compute every metric for each.

use rustfft::num_complex::Complex64;
use serde::Serialize;

use super::image::{Complex, Real};
use super::metrics::{self, align_phase, MsSsimForm, PhaseAlign};
use super::register::{fourier_shift, phase_cross_correlation};

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
    /// In ring-index units; null when the curve never falls below the threshold.
    pub frc50: Option<f64>,
    pub frc1over7: Option<f64>,
    pub frc50_cycles_per_pixel: Option<f64>,
    pub frc1over7_cycles_per_pixel: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub amplitude: PartMetrics,
    pub phase: PartMetrics,
    /// [dy, dx] applied to the reconstruction, when registered.
    pub registration_offset: Option<[f64; 2]>,
    pub shape: [usize; 2],
    #[serde(skip)]
    pub frc_curves: [Vec<f64>; 2],
    /// The prepared images (truth amplitude, recon amplitude, truth phase, recon phase), for pictures.
    #[serde(skip)]
    pub prepared: [Real; 4],
}

/// Scan positions (x = column, y = row) in object pixels, when the reconstruction file has them.
pub type Positions = (Vec<f64>, Vec<f64>);

fn scanned_region(truth: &Complex, positions: &Positions, m: usize) -> Complex {
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
        return truth.clone();
    }
    truth.crop(r0, c0, r1 - r0, c1 - c0)
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
    let frc = metrics::frc(&ft, &fr, !options.frc_crop);
    let per_pixel = |v: Option<f64>| v.map(|r| r * frc.cycles_per_ring);
    let metrics = PartMetrics {
        mae: metrics::mae(recon, truth),
        mse: metrics::mse(recon, truth),
        psnr: metrics::psnr(recon, truth, 255.0),
        psnr_data_range: metrics::psnr(recon, truth, truth.range()),
        ssim: metrics::ssim(ssim_truth, ssim_recon, ssim_range),
        ms_ssim: metrics::ms_ssim(ms.0, ms.1, options.ms_ssim),
        frc50: frc.frc50,
        frc1over7: frc.frc1over7,
        frc50_cycles_per_pixel: per_pixel(frc.frc50),
        frc1over7_cycles_per_pixel: per_pixel(frc.frc1over7),
    };
    (metrics, frc.curve)
}

pub fn compare(
    recon: &Complex,
    truth: &Complex,
    positions: Option<&Positions>,
    options: &CompareOptions,
) -> Comparison {
    // A stitched reconstruction covers only the scanned region, so only the truth is cut to it; one in
    // the object's own frame (same shape as the truth) is cut the same way.
    let (truth, recon) = match (options.align, positions) {
        (Align::Crop | Align::Register, Some(p)) => {
            let same_frame = recon.h == truth.h && recon.w == truth.w;
            let cut_recon = if same_frame {
                scanned_region(recon, p, options.stitch_crop)
            } else {
                recon.clone()
            };
            (scanned_region(truth, p, options.stitch_crop), cut_recon)
        }
        _ => (truth.clone(), recon.clone()),
    };
    let (h, w) = (truth.h.min(recon.h), truth.w.min(recon.w));
    let (mut truth, mut recon) = (truth.center_crop(h, w), recon.center_crop(h, w));
    let mut registration_offset = None;
    if options.align == Align::Register {
        let shift = phase_cross_correlation(&truth, &recon, 50);
        recon = fourier_shift(&recon, shift).trim(2);
        truth = truth.trim(2);
        registration_offset = Some(shift);
    }
    let (truth, recon) = (truth.trim(options.trim), recon.trim(options.trim));

    let truth_amp = truth.map(|v: Complex64| v.norm());
    let recon_amp = recon.map(|v: Complex64| v.norm());
    let scale = truth_amp.mean() / recon_amp.mean();
    let recon_amp = recon_amp.map(|v| v * scale);
    let truth_phase = align_phase(&truth.map(|v: Complex64| v.arg()), options.phase_align);
    let recon_phase = align_phase(&recon.map(|v: Complex64| v.arg()), options.phase_align);

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
    Comparison {
        amplitude,
        phase,
        registration_offset,
        shape: [truth.h, truth.w],
        frc_curves: [amp_curve, phase_curve],
        prepared: [truth_amp, recon_amp, truth_phase, recon_phase],
    }
}
