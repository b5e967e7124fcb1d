//! `ptycho forward`: the forward model on arrays from an NPZ file.

use std::path::PathBuf;

use clap::Args;

use super::device::{with_backend, DeviceArgs};
use crate::physics::forward_npz;

#[derive(Args)]
pub struct ForwardArgs {
    /// NPZ with `patches` (or `amp` and `phase`), `offsets`, `probe`, `intensity_scale` and optionally
    /// `counts`, `canvas_size`, `object_big`, `probe_mask` (see README.md).
    #[arg(long)]
    input: PathBuf,
    /// Output NPZ: `canvas`, `trimmed_obj`, `pred_amplitude`, `pred_intensity` (and `poisson_nll`, `mae`
    /// when counts are given).
    #[arg(long)]
    output: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn forward(args: ForwardArgs) -> anyhow::Result<()> {
    let summary =
        with_backend!(args.device.open()?, b => forward_npz::run(&b, &args.input, &args.output))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    outln!(
        "{} groups of {} patterns, N = {}, canvas {} ({}): wrote {}",
        summary.groups,
        summary.channels,
        summary.n,
        summary.canvas_size,
        if summary.object_big {
            "merged"
        } else {
            "padded"
        },
        args.output.display()
    );
    if let (Some(nll), Some(mae)) = (summary.poisson_nll, summary.mae) {
        outln!("poisson_nll {nll:.6e}  mae {mae:.6e}");
    }
    Ok(())
}
