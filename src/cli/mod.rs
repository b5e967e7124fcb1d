//! The `ptycho` command line. Thin: parse, call the library, report.

/// Print a line to stdout through [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Print to stdout through [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

mod compare;
mod data;
mod device;
mod hub;
mod infer;
mod info;
mod interop;
mod model;
mod persist;
mod physics;
mod reconstruct;
mod stitch;
mod study;
mod train;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use std::path::PathBuf;

use crate::bench::fft::{self, FftBenchConfig};
use crate::bench::io::IoBenchConfig;
use crate::data::canonical::parse_size;
use device::{with_backend, DeviceArgs};

#[derive(Parser)]
#[command(
    name = "ptycho",
    version,
    about = "Physics-informed ptychographic reconstruction on any GPU (wgpu) or the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters, the one that would be chosen, its limits and features.
    Info {
        #[command(flatten)]
        device: device::AdapterArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The main job: a miniature dose/overlap study from an embedded config (simulate, train the PINN
    /// and the baseline, reconstruct iteratively, compare, report) in a few minutes on the CPU.
    Demo(hub::DemoArgs),
    /// The dose/overlap study over its whole grid, resumable: `ptycho study run --config study.toml
    /// --hub HUB`.
    Study {
        #[command(subcommand)]
        command: hub::StudyCommand,
    },
    /// The forward model on arrays from an NPZ file: canvas, trimmed object, predicted diffraction.
    Forward(physics::ForwardArgs),
    /// Simulate diffraction datasets at several doses (study phase C).
    Simulate(study::SimulateArgs),
    /// Overlap views of simulated datasets (study phase D).
    Overlap {
        #[command(subcommand)]
        command: study::OverlapCommand,
    },
    /// Train the PINN (or, with --model baseline, the supervised baseline) on a dataset: writes
    /// OUTPUT_DIR/wts.h5.zip (+ .sha256), history.json and train.log.
    Train(train::TrainArgs),
    /// Reconstruct test data with a trained bundle: reconstruction.npz, amplitude.png, phase.png.
    Infer(infer::InferArgs),
    /// Iterative reconstruction of a scan (LSQML, ePIE, rPIE, DM): reconstruction.npz, pictures,
    /// history.json.
    Reconstruct(reconstruct::ReconstructArgs),
    /// Network architectures: `ptycho model summary`.
    Model {
        #[command(subcommand)]
        command: model::ModelCommand,
    },
    /// Stitch patches at their positions into one image (the reference's reassemble_position).
    Stitch(stitch::StitchArgs),
    /// Check a wts.h5.zip bundle: its .sha256 file and every entry digest of its manifest.
    Verify(persist::VerifyArgs),
    /// Convert a PtychoPINN TensorFlow bundle (wts.h5.zip) into ours: OUTPUT_DIR/wts.h5.zip and
    /// import.json.
    ImportBundle(persist::ImportBundleArgs),
    /// A bundle's diffraction_to_obj on raw inputs (no grouping, no stitching), to check it against
    /// the reference's outputs: trimmed_obj and obj.
    Predict(infer::PredictArgs),
    /// Compare reconstructions with ground truth: metrics.json, metrics.csv, report.md, compare.png.
    Compare(compare::CompareArgs),
    /// A reconstruction as another tool's file: `--format ptychodus` writes a Ptychodus product.h5.
    Export(interop::ExportArgs),
    /// NPZ datasets: inspect, shard, convert, import from and export to other tools' files.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Kernel benchmarks.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ConvKernelsArg {
    Auto,
    Tiled,
    Lanes,
}

impl ConvKernelsArg {
    fn choice(self) -> Option<ptycho_kernels::gpu::ConvKernels> {
        match self {
            Self::Auto => None,
            Self::Tiled => Some(ptycho_kernels::gpu::ConvKernels::Tiled),
            Self::Lanes => Some(ptycho_kernels::gpu::ConvKernels::Lanes),
        }
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Batch streaming from NPZ shards against a plain sequential read of the same files.
    Io {
        /// A dataset: NPZ file, folder of shards, or glob.
        #[arg(long)]
        data: PathBuf,
        /// When --data names a folder without NPZ files, first fill it with synthetic shards of this much
        /// diffraction (e.g. 4GiB).
        #[arg(long, value_parser = parse_size)]
        make: Option<u64>,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Host memory the stream may hold in batches.
        #[arg(long, default_value = "512MiB", value_parser = parse_size)]
        host_memory: u64,
        #[arg(long)]
        json: bool,
    },
    /// The PINN's diffraction_to_obj over a synthetic scan in batches (the reference's predict):
    /// patterns/s, and with --profile every backend call timed.
    Infer {
        /// Patch size N: 64, 128 or 256.
        #[arg(long, default_value_t = 64)]
        n: usize,
        #[arg(long, default_value_t = 1)]
        gridsize: usize,
        #[arg(long, default_value_t = 2)]
        n_filters_scale: usize,
        #[arg(long)]
        probe_big: bool,
        /// Groups in the scan (the study's test split has 607 patterns).
        #[arg(long, default_value_t = 607)]
        groups: usize,
        /// Groups per batch (Keras's predict default).
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Also time every backend call of one more pass.
        #[arg(long)]
        profile: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Training steps, every convolution of the network timed alone against the FLOP counts of the
    /// layer table, and the adapter's FP32 FMA peak measured in the same run.
    Train {
        /// Patch size N: 64, 128 or 256.
        #[arg(long, default_value_t = 64)]
        n: usize,
        #[arg(long, default_value_t = 1)]
        gridsize: usize,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// Width multiplier of the network's filters (the reference's n_filters_scale).
        #[arg(long, default_value_t = 2)]
        n_filters_scale: usize,
        /// pinn or baseline.
        #[arg(long, value_enum, default_value = "pinn")]
        model: model::ModelArg,
        /// Time the PINN with the probe-big ring branch in each decoder.
        #[arg(long)]
        probe_big: bool,
        /// Timed training steps, after one warm-up step.
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// One short sample per timing.
        #[arg(long)]
        quick: bool,
        /// Skip the CPU backend's run when the device is a GPU.
        #[arg(long)]
        no_cpu: bool,
        /// Also profile: time every backend call of --steps more steps (convolutions per layer,
        /// forward and both gradients; physics, loss, optimizer, transfers; host time between calls).
        #[arg(long)]
        profile: bool,
        /// The GPU's convolution kernels: chosen by the adapter type, the shared-memory tiles meant
        /// for GPUs, or the lanes meant for CPU-type adapters.
        #[arg(long, value_enum, default_value_t = ConvKernelsArg::Auto)]
        conv_kernels: ConvKernelsArg,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Epochs of an iterative engine on a synthetic scan: patterns/s and effective GB/s, with the CPU
    /// backend beside a GPU and the GPU's copy bandwidth.
    Reconstruct {
        /// Patch size N.
        #[arg(long, default_value_t = 64)]
        n: usize,
        #[arg(long, default_value_t = 607)]
        patterns: usize,
        #[arg(long, value_enum, default_value_t = reconstruct::AlgorithmArg::Lsqml)]
        algorithm: reconstruct::AlgorithmArg,
        #[arg(long, default_value_t = 96)]
        batch_size: usize,
        /// Timed epochs, after one untimed one.
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// Skip the CPU backend's run when the device is a GPU.
        #[arg(long)]
        no_cpu: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// The physics chain (forward, and forward + backward) against the FFT alone, at gridsize 1 and 2.
    Physics {
        /// Patch size N.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Patterns per step (B·C).
        #[arg(long, default_value_t = 1024)]
        patterns: usize,
        /// Finish in seconds: shorter samples.
        #[arg(long)]
        quick: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Batched 2-D FFT against a copy kernel on the same adapter and against the CPU backend.
    Fft {
        /// Transform size N (N x N images): 32, 64, 128, 256 or 512.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Images per batch [default: 4096, or 256 with --quick].
        #[arg(long)]
        batch: Option<usize>,
        /// Finish in seconds: shorter samples and, unless --batch is given, a smaller batch.
        #[arg(long)]
        quick: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: DeviceArgs,
    },
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Write to stdout. A reader that has gone away (`ptycho compare ... | head -1`) has lost interest
/// in the rest, not in the command's files: the output ends quietly and the command goes on (the
/// standard library would panic in println!).
pub(crate) fn write_stdout(args: std::fmt::Arguments) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("warning: standard output: {e}; no more output there");
        }
    }
}

pub fn main() -> ExitCode {
    quiet_headless_wayland_probe();
    // Negative numbers are values, so that `--doses -5` meets the range check that names the
    // problem, not clap's "unexpected argument '-5'".
    let matches = negative_numbers_are_values(Cli::command()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// On a machine without a display, Mesa's Vulkan drivers (lavapipe) probe for a Wayland compositor
/// when wgpu opens them, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" for
/// each probe. It only checks that the variable is an absolute path, so one that leads nowhere keeps
/// the probe quiet without connecting to anything. Set here, before any thread exists.
fn quiet_headless_wayland_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        std::env::set_var("XDG_RUNTIME_DIR", "/nonexistent/ptycho-headless");
    }
}

fn negative_numbers_are_values(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names
        .into_iter()
        .fold(command.allow_negative_numbers(true), |command, name| {
            command.mut_subcommand(name, negative_numbers_are_values)
        })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info { device, json } => info::run(&device, json),
        Command::Compare(args) => compare::run(args),
        Command::Forward(args) => physics::forward(args),
        Command::Verify(args) => persist::verify(args),
        Command::ImportBundle(args) => persist::import_bundle(args),
        Command::Predict(args) => infer::predict(args),
        Command::Stitch(args) => stitch::run(args),
        Command::Model { command } => model::run(command),
        Command::Train(args) => train::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Reconstruct(args) => reconstruct::run(args),
        Command::Simulate(args) => study::simulate(args),
        Command::Overlap { command } => study::overlap(command),
        Command::Data { command } => {
            if data::run(command)? {
                Ok(())
            } else {
                anyhow::bail!("the dataset does not meet the contract")
            }
        }
        Command::Demo(args) => hub::demo(args),
        Command::Study { command } => hub::study(command),
        Command::Export(args) => interop::export(args),
        Command::Bench {
            which:
                BenchCommand::Io {
                    data,
                    make,
                    batch_size,
                    host_memory,
                    json,
                },
        } => {
            let config = IoBenchConfig {
                data,
                make_bytes: make,
                batch_size,
                host_memory: host_memory as usize,
            };
            let report = crate::bench::io::run(&config)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Physics {
                    n,
                    patterns,
                    quick,
                    json,
                    device,
                },
        } => {
            let config = crate::bench::physics::PhysicsBenchConfig {
                n,
                patterns,
                gridsizes: vec![1, 2],
                quick,
            };
            let report = with_backend!(device.open()?, backend => crate::bench::physics::run(&backend, &config))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Infer {
                    n,
                    gridsize,
                    n_filters_scale,
                    probe_big,
                    groups,
                    batch_size,
                    profile,
                    json,
                    device,
                },
        } => {
            let config = crate::bench::infer::InferBenchConfig {
                model: crate::model::ModelConfig {
                    n_filters_scale,
                    probe_big,
                    ..crate::model::ModelConfig::pinn(n, gridsize)
                },
                groups,
                batch_size,
                profile,
            };
            let report = with_backend!(device.open()?, backend => crate::bench::infer::run(&backend, &config))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Train {
                    n,
                    gridsize,
                    batch_size,
                    n_filters_scale,
                    model,
                    probe_big,
                    steps,
                    quick,
                    no_cpu,
                    profile,
                    conv_kernels,
                    json,
                    device,
                },
        } => {
            let backend = device.open()?;
            if let (ptycho_kernels::AnyBackend::Gpu(gpu), Some(kernels)) =
                (&backend, conv_kernels.choice())
            {
                gpu.set_conv_kernels(kernels)?;
            }
            let config = crate::bench::train::TrainBenchConfig {
                model: crate::model::ModelConfig {
                    kind: crate::model::ModelKind::from(model),
                    n,
                    gridsize,
                    n_filters_scale,
                    probe_big,
                    amp_activation: crate::model::AmpActivation::Sigmoid,
                },
                batch_size,
                steps,
                quick,
                compare_cpu: !no_cpu,
                profile,
            };
            let report = with_backend!(backend, backend => crate::bench::train::run(&backend, &config, &mut |line| eprintln!("{line}")))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Reconstruct {
                    n,
                    patterns,
                    algorithm,
                    batch_size,
                    epochs,
                    no_cpu,
                    json,
                    device,
                },
        } => {
            let config = crate::bench::recon::ReconBenchConfig {
                n,
                patterns,
                algorithm: algorithm.algorithm(),
                batch_size,
                epochs,
                no_cpu,
            };
            let report = with_backend!(device.open()?, backend => crate::bench::recon::run(&backend, &config))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Fft {
                    n,
                    batch,
                    quick,
                    json,
                    device,
                },
        } => {
            let batch = batch.unwrap_or(if quick { 256 } else { 4096 });
            bench_fft(&device, FftBenchConfig { n, batch, quick }, json)
        }
    }
}

fn bench_fft(device: &DeviceArgs, config: FftBenchConfig, json: bool) -> anyhow::Result<()> {
    let report = with_backend!(device.open()?, backend => fft::run(&backend, &config))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.to_text());
    }
    Ok(())
}
