//! `ptycho reconstruct`: an iterative reconstruction (LSQML, ePIE, rPIE, DM) of a scan file.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::device::{with_backend, DeviceArgs};
use crate::interop::convert::{batch_geometry, export_product, import_ptychodus, Frame};
use crate::recon::dm::DmConfig;
use crate::recon::lsqml::NoiseModel;
use crate::recon::reconstruct::{Algorithm, InitObject, ReconstructConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlgorithmArg {
    Lsqml,
    Epie,
    Rpie,
    Dm,
}

impl AlgorithmArg {
    pub fn algorithm(self) -> Algorithm {
        match self {
            AlgorithmArg::Lsqml => Algorithm::Lsqml,
            AlgorithmArg::Epie => Algorithm::Epie,
            AlgorithmArg::Rpie => Algorithm::Rpie,
            AlgorithmArg::Dm => Algorithm::Dm,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NoiseArg {
    Gaussian,
    Poisson,
}

#[derive(Args)]
pub struct ReconstructArgs {
    /// The scan: an NPZ file (diffraction amplitudes, xcoords, ycoords, probeGuess), a folder of
    /// shards, or a glob.
    #[arg(
        long,
        required_unless_present = "ptychodus",
        conflicts_with = "ptychodus"
    )]
    input: Option<PathBuf>,
    /// Ptychodus's batch layout instead of --input: DIR/diffraction.h5 and DIR/product.h5 (the
    /// initial guess, whose object starts the reconstruction); writes OUTPUT_DIR/product.h5 too, so
    /// a Ptychodus workflow can call this in place of its reconstructor.
    #[arg(long, conflicts_with = "init_object")]
    ptychodus: Option<PathBuf>,
    /// Also write OUTPUT_DIR/product.h5 for another tool (ptychodus).
    #[arg(long, value_enum)]
    export: Option<super::interop::Format>,
    #[command(flatten)]
    geometry: super::interop::GeometryArgs,
    /// Where reconstruction.npz, amplitude.png, phase.png, probe.png, cost.png and history.json go.
    #[arg(long)]
    output_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Lsqml)]
    algorithm: AlgorithmArg,
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Patterns per update.
    #[arg(long, default_value_t = 96)]
    batch_size: usize,
    /// LSQML's likelihood: Gaussian noise on the amplitudes, or Poisson counts.
    #[arg(long, value_enum, default_value_t = NoiseArg::Gaussian)]
    noise: NoiseArg,
    /// LSQML, Gaussian model: how far towards the measured moduli the far field moves each update
    /// [default: 0.5; pty-chi moves all the way, 1].
    #[arg(long)]
    far_field_step: Option<f32>,
    /// LSQML: draw new random batches every epoch from this seed (pty-chi's default batching);
    /// without it, the same batches in scan order every epoch.
    #[arg(long)]
    shuffle_seed: Option<u64>,
    /// The starting object: `ones`; `truth`, the file's objectGuess (the reference's parity mode,
    /// which starts from the answer; every output says so); or an NPZ holding `object` or
    /// `objectGuess`.
    #[arg(long, default_value = "ones")]
    init_object: String,
    /// Take the positions (`xcoords`, `ycoords`, one per pattern, in order) from this NPZ.
    #[arg(long)]
    positions_from: Option<PathBuf>,
    /// Refine the probe as well (from --probe-start-epoch on), keeping its power.
    #[arg(long)]
    update_probe: bool,
    #[arg(long, default_value_t = 1)]
    probe_start_epoch: usize,
    /// LSQML: correct the scan positions as well (from --position-start-epoch on); the outputs' xcoords
    /// and ycoords are then the corrected ones, xcoords_start and ycoords_start the given ones.
    #[arg(long)]
    correct_positions: bool,
    /// Positions are corrected once the object has taken shape (its gradients guide them).
    #[arg(long, default_value_t = 30)]
    position_start_epoch: usize,
    /// ePIE and rPIE: the probe step β.
    #[arg(long, default_value_t = 1.0)]
    probe_step: f32,
    /// ePIE and rPIE: the object step α.
    #[arg(long, default_value_t = 0.1)]
    alpha: f32,
    /// rPIE: γ of the denominator.
    #[arg(long, default_value_t = 0.1)]
    gamma: f32,
    /// DM: RAAR's relaxation β; 1 is the plain difference map.
    #[arg(long, default_value_t = 1.0)]
    beta: f32,
    /// DM: w of the Fourier step w·Π_F + (1 − w)·identity, the proximal map of the amplitude misfit;
    /// 1 is the projection of the plain difference map, which fits the noise of measured data.
    #[arg(long, default_value_t = DmConfig::DEFAULT_FOURIER_WEIGHT)]
    fourier_weight: f32,
    /// LSQML and DM: δ of the illumination preconditioner, relative to its maximum [default: 0.1
    /// for lsqml (pty-chi's), 0.01 for dm].
    #[arg(long)]
    regularization: Option<f32>,
    /// Replace outputs already in --output-dir (otherwise refused).
    #[arg(long)]
    overwrite: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The Ptychodus batch input imported into OUTPUT_DIR, and the product file to write.
struct Batch {
    dir: PathBuf,
    imported: PathBuf,
    product: PathBuf,
}

pub fn run(args: ReconstructArgs) -> anyhow::Result<()> {
    let batch = match &args.ptychodus {
        Some(dir) => {
            let batch = Batch {
                dir: dir.clone(),
                imported: args.output_dir.join("ptychodus_input.npz"),
                product: args.output_dir.join("product.h5"),
            };
            for path in [&batch.imported, &batch.product] {
                if path.exists() && !args.overwrite {
                    anyhow::bail!("{} exists; pass --overwrite to replace it", path.display());
                }
            }
            std::fs::create_dir_all(&args.output_dir)
                .with_context(|| format!("creating {}", args.output_dir.display()))?;
            import_ptychodus(dir, &batch.imported)?;
            Some(batch)
        }
        None => None,
    };
    let init_object = match (&batch, args.init_object.as_str()) {
        (Some(batch), _) => InitObject::File(batch.imported.clone()),
        (None, "ones") => InitObject::Ones,
        (None, "truth") => InitObject::Truth,
        (None, path) => InitObject::File(PathBuf::from(path)),
    };
    let input = match &batch {
        Some(batch) => batch.imported.clone(),
        None => args
            .input
            .clone()
            .expect("clap requires --input without --ptychodus"),
    };
    let input_path = input.clone();
    let config = ReconstructConfig {
        input,
        output_dir: args.output_dir,
        algorithm: args.algorithm.algorithm(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        far_field_step: args.far_field_step,
        shuffle_seed: args.shuffle_seed,
        noise: match args.noise {
            NoiseArg::Gaussian => NoiseModel::Gaussian,
            NoiseArg::Poisson => NoiseModel::Poisson,
        },
        init_object,
        positions_from: args.positions_from,
        probe_from_epoch: args.update_probe.then_some(args.probe_start_epoch),
        probe_step: args.probe_step,
        positions_from_epoch: args.correct_positions.then_some(args.position_start_epoch),
        alpha: args.alpha,
        gamma: args.gamma,
        beta: args.beta,
        fourier_weight: args.fourier_weight,
        regularization: args.regularization,
        overwrite: args.overwrite,
    };
    let bar = ProgressBar::new(config.epochs as u64).with_style(
        ProgressStyle::with_template("epoch [{bar:30}] {pos}/{len} {msg} ({eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let report = with_backend!(args.device.open()?, b => crate::recon::reconstruct::reconstruct(&b, &config, |record| {
        bar.set_position(record.epoch as u64);
        bar.set_message(format!("cost {:.4e}", record.cost));
    }))?;
    bar.finish_and_clear();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} ({}), {} epochs over {} patterns, cost {}, {:.0} patterns/s on {}: {}",
            report.algorithm.name(),
            report.init_object,
            report.epochs,
            report.patterns,
            report.final_cost.map_or("-".into(), |c| format!("{c:.4e}")),
            report.patterns_per_s,
            report.device,
            report.output.display()
        );
    }
    if let Some(batch) = &batch {
        export_product(
            &report.output,
            &batch.imported,
            &batch.product,
            batch_geometry(&batch.dir)?,
            None,
            Frame::Object,
        )?;
        outln!("wrote {} for Ptychodus", batch.product.display());
    } else if let Some(super::interop::Format::Ptychodus) = args.export {
        let product = super::interop::export_beside(
            &report.output,
            &input_path,
            args.geometry,
            Frame::Object,
            args.overwrite,
        )?;
        outln!("wrote {} for Ptychodus", product.display());
    }
    if let Some(diverged) = report.diverged {
        anyhow::bail!("{diverged}; the outputs hold that epoch's estimate");
    }
    Ok(())
}
