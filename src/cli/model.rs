//! `ptycho model summary`: the layer table of a network and its parameter count.

use clap::{Args, Subcommand, ValueEnum};

use crate::model::{self, AmpActivation, ModelConfig, ModelKind};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelArg {
    Pinn,
    Baseline,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AmpActivationArg {
    Sigmoid,
    Swish,
    Softplus,
    Relu,
}

#[derive(Args)]
pub struct SummaryArgs {
    #[arg(long, default_value_t = 64)]
    n: usize,
    #[arg(long, default_value_t = 1)]
    gridsize: usize,
    #[arg(long, value_enum, default_value = "pinn")]
    model: ModelArg,
    #[arg(long, default_value_t = 2)]
    n_filters_scale: usize,
    /// Add the probe-big ring branch to each PINN decoder.
    #[arg(long)]
    probe_big: bool,
    #[arg(long, value_enum, default_value = "sigmoid")]
    amp_activation: AmpActivationArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// The layer table (name, kernel shape, output shape, parameters) and the total.
    Summary(SummaryArgs),
}

pub fn run(command: ModelCommand) -> anyhow::Result<()> {
    let ModelCommand::Summary(args) = command;
    let config = ModelConfig {
        kind: ModelKind::from(args.model),
        n: args.n,
        gridsize: args.gridsize,
        n_filters_scale: args.n_filters_scale,
        probe_big: args.probe_big,
        amp_activation: AmpActivation::from(args.amp_activation),
    };
    if args.json {
        let layers = model::layers(&config).map_err(anyhow::Error::msg)?;
        let total: usize = layers.iter().map(|l| l.parameters).sum();
        let report =
            serde_json::json!({ "config": config, "layers": layers, "total_parameters": total });
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!(
            "{}",
            model::summary_text(&config).map_err(anyhow::Error::msg)?
        );
    }
    Ok(())
}

impl From<AmpActivationArg> for AmpActivation {
    fn from(a: AmpActivationArg) -> Self {
        match a {
            AmpActivationArg::Sigmoid => AmpActivation::Sigmoid,
            AmpActivationArg::Swish => AmpActivation::Swish,
            AmpActivationArg::Softplus => AmpActivation::Softplus,
            AmpActivationArg::Relu => AmpActivation::Relu,
        }
    }
}

impl From<ModelArg> for ModelKind {
    fn from(arg: ModelArg) -> Self {
        match arg {
            ModelArg::Pinn => ModelKind::Pinn,
            ModelArg::Baseline => ModelKind::Baseline,
        }
    }
}
