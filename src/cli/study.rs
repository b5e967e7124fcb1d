//! `ptycho simulate` and `ptycho overlap`: the study's phases C and D.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::device::{with_backend, DeviceArgs};
use crate::study::overlap::{self, MetricsConfig};
use crate::study::simulate::{self, ObjectSource, Positions, ProbeSource, SimulationConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PositionsArg {
    Random,
    Raster,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LegacyKey {
    Diff3d,
}

#[derive(Args)]
pub struct SimulateArgs {
    /// Output folder: OUT/dose_{int}/patched_{train,test}.npz and OUT/run_manifest.json.
    #[arg(long)]
    output: PathBuf,
    /// Patch (detector) size N: 64, 128 or 256 [default: the probe file's size, else 64].
    #[arg(long)]
    n: Option<usize>,
    /// Side of the built-in synthetic object [default: 4·N].
    #[arg(long)]
    object_size: Option<usize>,
    /// Take the object (`objectGuess`), and the probe (`probeGuess`) unless --probe-npz, from this NPZ.
    #[arg(long)]
    object_npz: Option<PathBuf>,
    /// Take the probe (`probeGuess`, N x N) from this NPZ.
    #[arg(long)]
    probe_npz: Option<PathBuf>,
    /// Phase curvature of the built-in probe: radians at radius N/4. The default defocuses it; 0 gives
    /// the reference's real, symmetric probe, whose twin image the PINN cannot tell apart.
    #[arg(long, default_value_t = crate::physics::probe::DEFAULT_PROBE_CURVATURE)]
    probe_curvature: f64,
    /// Seed of every random choice (object, positions, noise).
    #[arg(long, default_value_t = crate::study::simulate::DEFAULT_SEED)]
    seed: u64,
    /// How scan positions are chosen (ignored with --positions-from).
    #[arg(long, value_enum, default_value = "random")]
    positions: PositionsArg,
    /// Number of random positions.
    #[arg(long, default_value_t = 1000)]
    n_images: usize,
    /// Raster step in pixels.
    #[arg(long, default_value_t = 8.0)]
    step: f64,
    /// NPZ with xcoords, ycoords (object pixels, patch centres), used in the given order.
    #[arg(long)]
    positions_from: Option<PathBuf>,
    /// Photons per pattern (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1e3,1e4,1e5")]
    doses: Vec<f64>,
    /// Store the expected amplitude instead of a Poisson draw.
    #[arg(long)]
    no_noise: bool,
    /// One OUT/dose_{int}/patched.npz instead of a train/test split at the y midpoint.
    #[arg(long)]
    no_split: bool,
    /// Also write the diffraction under this legacy key.
    #[arg(long, value_enum)]
    legacy_key: Option<LegacyKey>,
    /// Replace dose folders and the manifest already in --output (otherwise refused).
    #[arg(long)]
    overwrite: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let probe = match (&args.probe_npz, &args.object_npz) {
        (Some(path), _) | (None, Some(path)) => ProbeSource::File(path.clone()),
        (None, None) => ProbeSource::Default {
            curvature: args.probe_curvature,
        },
    };
    let n = match (args.n, &probe) {
        (Some(n), _) => n,
        (None, ProbeSource::File(path)) => simulate::probe_size(path)?,
        (None, ProbeSource::Default { .. }) => 64,
    };
    let object = match &args.object_npz {
        Some(path) => ObjectSource::File(path.clone()),
        None => ObjectSource::Synthetic {
            size: args.object_size.unwrap_or(4 * n),
        },
    };
    let positions = match (&args.positions_from, args.positions) {
        (Some(path), _) => Positions::File(path.clone()),
        (None, PositionsArg::Random) => Positions::Random {
            count: args.n_images,
        },
        (None, PositionsArg::Raster) => Positions::Raster { step: args.step },
    };
    let config = SimulationConfig {
        n,
        object,
        probe,
        positions,
        doses: args.doses,
        seed: args.seed,
        noise: !args.no_noise,
        split: !args.no_split,
        legacy_key: args.legacy_key.is_some(),
        output: args.output,
        overwrite: args.overwrite,
    };
    let json = args.json;
    let report = with_backend!(args.device.open()?, b => simulate::run(&b, &config, |line| {
        if !json {
            eprintln!("{line}");
        }
    }))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} patterns at {} dose{}; forward {:.0} patterns/s on {}; manifest {}",
            report.patterns,
            report.doses.len(),
            if report.doses.len() == 1 { "" } else { "s" },
            report.forward_patterns_per_s,
            report.device,
            report.manifest.display()
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum OverlapCommand {
    /// Spacing views (the legacy generation): keep positions at least (1 − f)·N apart, f = 0.7 for
    /// dense and 0.2 for sparse; OUT/dose_{int}/{view}/{view}_{split}.npz and metrics.
    Spacing {
        /// Folder holding the phase C dose_* folders.
        #[arg(long)]
        phase_c_root: PathBuf,
        #[arg(long)]
        output_root: PathBuf,
        /// Doses to process (comma-separated) [default: every dose_* folder].
        #[arg(long, value_delimiter = ',')]
        doses: Option<Vec<f64>>,
        /// Views to write (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "dense,sparse")]
        views: Vec<String>,
        /// N of the spacing rule [default: the data's patch size].
        #[arg(long)]
        patch_size: Option<f64>,
        /// Also copy each view's metrics bundle to ARTIFACTS/metrics/dose_{int}/{view}.json.
        #[arg(long)]
        artifact_root: Option<PathBuf>,
        /// Replace views and the manifest already in --output-root (otherwise refused).
        #[arg(long)]
        overwrite: bool,
    },
    /// Metrics-based subsampling (the current generation): {split}.npz, {split}_metrics.json and
    /// metrics_bundle.json with the three disc-overlap metrics.
    Metrics {
        /// One phase C dose folder (with *train.npz and *test.npz).
        #[arg(long)]
        phase_c_root: PathBuf,
        #[arg(long)]
        output_root: PathBuf,
        /// Also copy the three JSON files here.
        #[arg(long)]
        artifact_root: Option<PathBuf>,
        #[arg(long)]
        gridsize: usize,
        /// Fraction of images kept, in (0, 1].
        #[arg(long)]
        s_img: f64,
        #[arg(long)]
        n_groups: usize,
        #[arg(long, default_value_t = 6)]
        neighbor_count: usize,
        #[arg(long, default_value_t = 38.4)]
        probe_diameter_px: f64,
        #[arg(long, default_value_t = 42)]
        rng_seed_subsample: u64,
        /// Replace the files of an earlier run in --output-root (otherwise refused).
        #[arg(long)]
        overwrite: bool,
    },
}

pub fn overlap(command: OverlapCommand) -> anyhow::Result<()> {
    match command {
        OverlapCommand::Spacing {
            phase_c_root,
            output_root,
            doses,
            views,
            patch_size,
            artifact_root,
            overwrite,
        } => {
            let config = overlap::SpacingViews {
                doses,
                views,
                patch_size,
                artifact_root,
                overwrite,
            };
            let manifest =
                overlap::run_spacing_views(&phase_c_root, &output_root, &config, |line| {
                    outln!("{line}")
                })?;
            outln!("manifest: {}", manifest.display());
        }
        OverlapCommand::Metrics {
            phase_c_root,
            output_root,
            artifact_root,
            gridsize,
            s_img,
            n_groups,
            neighbor_count,
            probe_diameter_px,
            rng_seed_subsample,
            overwrite,
        } => {
            let config = MetricsConfig {
                gridsize,
                s_img,
                n_groups,
                neighbor_count,
                probe_diameter_px,
                rng_seed_subsample,
            };
            let written = overlap::write_metrics_views(
                &phase_c_root,
                &config,
                &output_root,
                overwrite,
                |line| outln!("{line}"),
            )?;
            if let Some(artifacts) = artifact_root {
                std::fs::create_dir_all(&artifacts)?;
                for path in written
                    .iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                {
                    let name = path.file_name().expect("a file");
                    std::fs::copy(path, artifacts.join(name))?;
                }
            }
            outln!("wrote {} files to {}", written.len(), output_root.display());
        }
    }
    Ok(())
}
