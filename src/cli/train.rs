//! `ptycho train`: flags follow PtychoPINN's `ptycho_train` where they exist.

use std::path::PathBuf;

use clap::Args;

use super::device::{with_backend, DeviceArgs};
use super::model::AmpActivationArg;
use crate::model::{AmpActivation, ModelConfig, ModelKind};
use crate::train::run::{train, TrainConfig};

#[derive(Args)]
pub struct TrainArgs {
    /// Training data: an NPZ file, a folder of shards, or a glob.
    #[arg(long)]
    train_data: PathBuf,
    /// Where the bundle (wts.h5.zip), history.json and the log go.
    #[arg(long)]
    output_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    gridsize: usize,
    /// Groups (samples) drawn from the data.
    #[arg(long, default_value_t = 512)]
    n_groups: usize,
    #[arg(long, default_value_t = 50)]
    nepochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Photons per pattern: sets the intensity scale sqrt(nphotons)/(N/2).
    #[arg(long, default_value_t = 1e9)]
    nphotons: f64,
    #[arg(long, default_value_t = 2)]
    n_filters_scale: usize,
    #[arg(long, value_enum, default_value = "sigmoid")]
    amp_activation: AmpActivationArg,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Save the bundle every K epochs as well as at the end.
    #[arg(long, default_value_t = 0)]
    checkpoint_every: usize,
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
        output_dir: args.output_dir,
        model: ModelConfig {
            kind: ModelKind::Pinn,
            n,
            gridsize: args.gridsize,
            n_filters_scale: args.n_filters_scale,
            probe_big: false,
            amp_activation: AmpActivation::from(args.amp_activation),
        },
        n_groups: args.n_groups,
        nepochs: args.nepochs,
        batch_size: args.batch_size,
        nphotons: args.nphotons,
        learning_rate: args.learning_rate,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
    };
    let report =
        with_backend!(args.device.open()?, b => train(&b, &config, |line| eprintln!("{line}")))
            .map_err(anyhow::Error::msg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let last = report.epochs.last().expect("at least one epoch");
        println!(
            "trained {} epochs on {} groups ({} held out) on {}: loss {:.6e}, {:.1} samples/s",
            report.epochs.len(),
            report.groups,
            report.validation_groups,
            report.device,
            last.train_loss,
            report.samples_per_s
        );
        println!(
            "bundle {} (sha256 {}, {} bytes)",
            report.bundle.path.display(),
            report.bundle.sha256,
            report.bundle.size_bytes
        );
    }
    Ok(())
}
