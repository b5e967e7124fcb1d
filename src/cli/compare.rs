//! `ptycho compare`: reconstructions against ground truth with the reference's metrics.

use std::path::PathBuf;

use crate::eval::compare::{
    compare, read_image, read_positions, Align, CompareOptions, RECON_KEYS, TRUTH_KEYS,
};
use crate::eval::metrics::{FrcWindow, MsSsimForm, PhaseAlign};
use crate::eval::{plot, report};
use crate::persist::output_dir::OutputDir;
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlignArg {
    None,
    Crop,
    Register,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PhaseAlignArg {
    Plane,
    Mean,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MsSsimArg {
    Reference,
    Standard,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Reconstruction NPZ holding `object` (or `reconstructed_object`, or `objectGuess`); repeatable.
    #[arg(long, required = true)]
    recon: Vec<PathBuf>,
    /// Label of each --recon, in order [default: the file stem].
    #[arg(long)]
    recon_label: Vec<String>,
    /// Ground-truth NPZ holding `objectGuess` (or `object`).
    #[arg(long)]
    truth: PathBuf,
    /// Where metrics.json, metrics.csv, report.md and compare.png go.
    #[arg(long)]
    output_dir: PathBuf,
    /// Replace the outputs of an earlier comparison in --output-dir (otherwise refused).
    #[arg(long)]
    overwrite: bool,
    /// crop: truth cut to the scanned region (when the reconstruction has xcoords/ycoords) and both
    /// centre-cropped to a common size (the reference's choice for network results); register: then
    /// sub-pixel registration (its choice for iterative results); none: centre-crop only.
    #[arg(long, value_enum, default_value = "crop")]
    align: AlignArg,
    /// Pixels trimmed from every edge before the metrics (the reference's offset // 2).
    #[arg(long, default_value_t = 2)]
    trim: usize,
    #[arg(long, value_enum, default_value = "plane")]
    phase_align: PhaseAlignArg,
    /// reference: Π of per-level mean SSIM (the reference's simplification); standard: Wang et al.
    #[arg(long, value_enum, default_value = "reference")]
    ms_ssim: MsSsimArg,
    /// σ of the Gaussian smoothing of amplitudes before MS-SSIM (0: none).
    #[arg(long, default_value_t = 1.0)]
    ms_ssim_sigma: f64,
    /// FRC on the whole non-square image with elliptical rings instead of a centred square crop.
    #[arg(long)]
    frc_no_crop: bool,
    /// M of the stitching crop: the scanned region is positions ± M/2.
    #[arg(long, default_value_t = 20)]
    stitch_crop: usize,
    /// Apodise both images with a window before the FRC: none (the reference; the cut edges leak
    /// into the high rings and hold the curve up) or hann.
    #[arg(long, value_enum, default_value = "none")]
    frc_window: FrcWindowArg,
    /// With --align register: the largest whole-pixel shift searched, per axis.
    #[arg(long, default_value_t = 16.0)]
    register_max_shift: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FrcWindowArg {
    None,
    Hann,
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    if !args.recon_label.is_empty() && args.recon_label.len() != args.recon.len() {
        bail!(
            "{} --recon-label for {} --recon: give one label per reconstruction, or none",
            args.recon_label.len(),
            args.recon.len()
        );
    }
    let options = CompareOptions {
        align: match args.align {
            AlignArg::None => Align::None,
            AlignArg::Crop => Align::Crop,
            AlignArg::Register => Align::Register,
        },
        trim: args.trim,
        phase_align: match args.phase_align {
            PhaseAlignArg::Plane => PhaseAlign::Plane,
            PhaseAlignArg::Mean => PhaseAlign::Mean,
            PhaseAlignArg::None => PhaseAlign::None,
        },
        ms_ssim_sigma: args.ms_ssim_sigma,
        ms_ssim: match args.ms_ssim {
            MsSsimArg::Reference => MsSsimForm::Reference,
            MsSsimArg::Standard => MsSsimForm::Standard,
        },
        frc_crop: !args.frc_no_crop,
        stitch_crop: args.stitch_crop,
        frc_window: match args.frc_window {
            FrcWindowArg::None => FrcWindow::None,
            FrcWindowArg::Hann => FrcWindow::Hann,
        },
        register_max_shift: args.register_max_shift,
    };
    let out = OutputDir::lock(&args.output_dir)?;
    out.refuse_existing(&report::OUTPUTS, args.overwrite, "--overwrite")?;
    let truth = read_image(&args.truth, &TRUTH_KEYS)?;
    let mut results = Vec::new();
    for (k, path) in args.recon.iter().enumerate() {
        let label = args.recon_label.get(k).cloned().unwrap_or_else(|| {
            path.file_stem()
                .map_or(format!("recon{k}"), |s| s.to_string_lossy().to_string())
        });
        let recon = read_image(path, &RECON_KEYS)?;
        let positions = read_positions(path)?;
        let comparison = compare(&recon, &truth, positions.as_ref(), &options)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        outln!("{label}: {}", comparison.cropping.note);
        if let Some(r) = comparison.registration.as_ref().filter(|r| !r.trusted) {
            eprintln!(
                "warning: {label}: registration not trusted (correlation peak {:.1}x its RMS, \
                 below {}; the best shift within {} px was {:?}): scored without a shift",
                r.peak_ratio,
                crate::eval::register::MIN_PEAK_RATIO,
                r.max_shift,
                r.found
            );
        }
        outln!(
            "{label}: amplitude SSIM {:.4} MS-SSIM {:.4} MAE {:.6} | phase SSIM {:.4} MS-SSIM {:.4} MAE {:.6}",
            comparison.amplitude.ssim, comparison.amplitude.ms_ssim, comparison.amplitude.mae,
            comparison.phase.ssim, comparison.phase.ms_ssim, comparison.phase.mae
        );
        results.push((label, comparison));
    }
    for line in report::delta_lines(&results) {
        outln!("{line}");
    }
    let png = plot::compare_png(&results);
    report::write_all(
        &args.output_dir,
        &results,
        &args.truth.display().to_string(),
        &png,
    )
    .with_context(|| format!("writing to {}", args.output_dir.display()))?;
    outln!(
        "wrote metrics.json, metrics.csv, report.md and compare.png to {}",
        args.output_dir.display()
    );
    Ok(())
}
