//! `ptycho train` (flags follow PtychoPINN's `ptycho_train` where they exist).

use std::path::PathBuf;

use clap::Args;

use super::device::{with_backend, DeviceArgs};
use super::model::{AmpActivationArg, ModelArg};
use crate::model::{AmpActivation, ModelConfig, ModelKind};
use crate::train::run::{train, Progress, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct TrainArgs {
    /// Training data: an NPZ file, a folder of shards, or a glob.
    #[arg(long)]
    train_data: PathBuf,
    /// Test data, scored once after training (its mean loss goes into history.json).
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// pinn: the physics-informed network (no labels); baseline: the supervised network, trained on
    /// ground-truth patches ('Y', or cut from 'objectGuess').
    #[arg(long, value_enum, default_value = "pinn")]
    model: ModelArg,
    /// Where the bundle (wts.h5.zip), history.json and train.log go.
    #[arg(long)]
    output_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    gridsize: usize,
    /// Groups (samples) drawn from the data [default: every pattern; the reference draws 512, but
    /// reconstructions improve with every pattern trained on].
    #[arg(long)]
    n_groups: Option<usize>,
    #[arg(long, default_value_t = 50)]
    nepochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Photons per pattern: sets the intensity scale sqrt(nphotons)/(N/2) [default: the resumed
    /// bundle's, else the dose recorded in the data's _metadata, else 1e9 as the reference].
    #[arg(long)]
    nphotons: Option<f64>,
    #[arg(long, default_value_t = 2)]
    n_filters_scale: usize,
    /// Add the probe-big ring branch to each PINN decoder (merged at unit scale, not the
    /// reference's × 1000; see the README).
    #[arg(long)]
    probe_big: bool,
    #[arg(long, value_enum, default_value = "sigmoid")]
    amp_activation: AmpActivationArg,
    /// Adam's learning rate [default: 1e-3, or where the resumed schedule stopped].
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Save the bundle (and history.json) every K epochs as well as at the end; 0: only at the end
    /// [default: after an epoch once a minute has passed since the last save].
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Continue from the bundle in this folder (weights, Adam state, schedule, history) up to
    /// --nepochs epochs in all.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Replace a bundle already in --output-dir (otherwise refused).
    #[arg(long)]
    overwrite: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let n = crate::data::dataset::Dataset::open(&args.train_data)?.n;
    let config = TrainConfig {
        train_data: args.train_data,
        test_data: args.test_data,
        output_dir: args.output_dir,
        model: ModelConfig {
            kind: ModelKind::from(args.model),
            n,
            gridsize: args.gridsize,
            n_filters_scale: args.n_filters_scale,
            probe_big: args.probe_big,
            amp_activation: AmpActivation::from(args.amp_activation),
        },
        n_groups: args.n_groups,
        nepochs: args.nepochs,
        batch_size: args.batch_size,
        nphotons: args.nphotons,
        learning_rate: args.learning_rate,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        resume: args.resume,
        overwrite: args.overwrite,
    };
    // A bar on a terminal (indicatif draws nothing elsewhere), and a plain line per epoch always.
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let report = with_backend!(args.device.open()?, b => train(&b, &config, |event| match event {
        Progress::Step { epoch, step, steps, loss } => {
            bar.set_length(steps as u64);
            bar.set_prefix(format!("epoch {epoch}"));
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4e}"));
        }
        Progress::Line(line) => bar.suspend(|| eprintln!("{line}")),
    }))
    .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let last = report.epochs.last().expect("at least one epoch");
        outln!(
            "trained {} epochs on {} groups ({} held out) on {}: loss {:.6e}, {:.1} samples/s",
            report.epochs.len(),
            report.groups,
            report.validation_groups,
            report.device,
            last.train_loss,
            report.samples_per_s
        );
        if let Some(loss) = report.test_loss {
            outln!("test loss {loss:.6e}");
        }
        outln!(
            "bundle {} (sha256 {}, {} bytes)",
            report.bundle.path.display(),
            report.bundle.sha256,
            report.bundle.size_bytes
        );
    }
    Ok(())
}
