//! `ptycho infer`: a trained bundle's reconstruction of test data.

use std::path::PathBuf;

use clap::Args;

use super::device::{with_backend, DeviceArgs};
use crate::infer::InferConfig;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct InferArgs {
    /// A folder holding wts.h5.zip (or the bundle itself).
    #[arg(long)]
    model_dir: PathBuf,
    /// The scan to reconstruct: an NPZ file, a folder of shards, or a glob.
    #[arg(long)]
    test_data: PathBuf,
    /// Where reconstruction.npz, amplitude.png and phase.png go.
    #[arg(long)]
    output_dir: PathBuf,
    /// M of the central crop each patch contributes to the stitched image.
    #[arg(long, default_value_t = 20)]
    stitch_crop: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Seed of the group draw at gridsize 2.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stitch the patches as they come out of the network (the reference), without first rotating
    /// each one's global phase to agree with its neighbours.
    #[arg(long)]
    no_phase_sync: bool,
    /// Replace a reconstruction already in --output-dir (otherwise refused).
    #[arg(long)]
    overwrite: bool,
    /// Also write OUTPUT_DIR/product.h5 for another tool (ptychodus): the stitched image with the
    /// data's probe and counts.
    #[arg(long, value_enum)]
    export: Option<super::interop::Format>,
    #[command(flatten)]
    geometry: super::interop::GeometryArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: InferArgs) -> anyhow::Result<()> {
    let config = InferConfig {
        model_dir: args.model_dir,
        test_data: args.test_data.clone(),
        output_dir: args.output_dir,
        stitch_crop: args.stitch_crop,
        batch_size: args.batch_size,
        seed: args.seed,
        phase_sync: !args.no_phase_sync,
        overwrite: args.overwrite,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("groups [{bar:30}] {pos}/{len} {per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let report =
        with_backend!(args.device.open()?, b => crate::infer::infer(&b, &config, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }))
        .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    outln!(
        "{} groups, stitched {} x {}, {:.1} patterns/s on {}: {}",
        report.groups,
        report.stitched_size,
        report.stitched_size,
        report.patterns_per_s,
        report.device,
        report.output.display()
    );
    if let Some(sync) = &report.phase_sync {
        outln!("phase sync: {sync}");
    }
    if let Some(super::interop::Format::Ptychodus) = args.export {
        let product = super::interop::export_beside(
            &report.output,
            &args.test_data,
            args.geometry,
            crate::interop::convert::Frame::Stitched,
            args.overwrite,
        )?;
        outln!("wrote {} for Ptychodus", product.display());
    }
    Ok(())
}

#[derive(Args)]
pub struct PredictArgs {
    /// A folder holding wts.h5.zip (or the bundle itself), ours or imported.
    #[arg(long)]
    model_dir: PathBuf,
    /// An NPZ with 'diffraction' (B, C, N, N) or the reference's scaled 'input' (B, N, N, C), and
    /// 'offsets' (B, C, 2) or the reference's 'input_positions' (B, 1, 2, C).
    #[arg(long)]
    input: PathBuf,
    /// The NPZ to write: trimmed_obj (B, N, N) and obj (B, C, N, N), complex64.
    #[arg(long)]
    output: PathBuf,
    /// Replace --output if it exists (otherwise refused).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let report = with_backend!(args.device.open()?, b => crate::infer::predict::predict(
        &b, &args.model_dir, &args.input, &args.output, args.overwrite))
    .map_err(anyhow::Error::msg)?;
    let form = match report.input_form {
        crate::infer::predict::InputForm::Ours => {
            "'diffraction' (B, C, N, N), as the network reads it"
        }
        crate::infer::predict::InputForm::ReferenceScaled => {
            "the reference's 'input' (B, N, N, C), divided by the intensity scale"
        }
    };
    outln!(
        "{} samples x {} channels from {form} (intensity scale {}) on {}: {}",
        report.samples,
        report.channels,
        report.intensity_scale,
        report.device,
        report.output.display()
    );
    Ok(())
}
