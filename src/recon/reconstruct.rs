//! `ptycho reconstruct`: an iterative reconstruction of a scan file (study phase F). Everything is
//! read and checked before the first epoch; the outputs are written once the run ends, from the last
//! epoch whose cost was finite, even when a later one diverged:
//!
//! - `reconstruction.npz`: `object` (complex64, the object's own frame, as `ptycho compare` reads it),
//!   `amplitude`, `phase`, `probe`, `xcoords`, `ycoords` (corrected, with position correction) and
//!   `xcoords_start`, `ycoords_start` (as given), and the reference's keys
//!   (`reconstructed_object`, `reconstructed_probe`, `algorithm`, `timestamp`, `computation_time_s`),
//!   plus `init_object` (`ones`, `truth` (the reference's parity mode, labelled as such) or a file);
//! - `amplitude.png`, `phase.png`, `probe.png`, `cost.png`, and `history.json` (cost and seconds per
//!   epoch, the settings).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ptycho_kernels::{Backend, Complex32};
use serde::{Deserialize, Serialize};

use super::dm::{DifferenceMap, DmConfig};
use super::lsqml::{Lsqml, LsqmlConfig, NoiseModel};
use super::pie::{Pie, PieConfig, PieVariant};
use super::{run, Engine, EpochRecord, Estimate, ReconError, Reconstruction, Scan};
use crate::data::checked::CheckedNpz;
use crate::data::dataset::Dataset;
use crate::eval::image::Real;
use crate::eval::plot;
use crate::io::atomic::{write_atomic, write_json};
use crate::io::npz::NpzFile;
use crate::io::npz_writer::NpzWriter;
use crate::persist::bundle::utc_now;
use crate::persist::output_dir::OutputDir;
use crate::physics::image::{covering_shape, ComplexImage};

const OUTPUTS: [&str; 6] = [
    "reconstruction.npz",
    "amplitude.png",
    "phase.png",
    "probe.png",
    "cost.png",
    "history.json",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Lsqml,
    Epie,
    Rpie,
    Dm,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Lsqml => "lsqml",
            Algorithm::Epie => "epie",
            Algorithm::Rpie => "rpie",
            Algorithm::Dm => "dm",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum InitObject {
    /// 1 + 0i everywhere, on the frame of the file's objectGuess (or one that covers every patch).
    Ones,
    /// The file's objectGuess: the reference's parity mode, which seeds the engine with the answer.
    Truth,
    /// `object` (or `objectGuess`) of another NPZ.
    File(PathBuf),
}

impl InitObject {
    pub fn label(&self) -> String {
        match self {
            InitObject::Ones => "ones".into(),
            InitObject::Truth => "truth (parity mode: seeded with the ground truth)".into(),
            InitObject::File(path) => format!("file {}", path.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ReconstructConfig {
    pub input: PathBuf,
    pub output_dir: PathBuf,
    pub algorithm: Algorithm,
    pub epochs: usize,
    pub batch_size: usize,
    /// LSQML's likelihood.
    pub noise: NoiseModel,
    /// LSQML, Gaussian model: the fraction of the way to the measured moduli the far field moves.
    pub far_field_step: Option<f32>,
    /// LSQML: new random batches every epoch from this seed; None: fixed batches in scan order.
    pub shuffle_seed: Option<u64>,
    pub init_object: InitObject,
    /// Take the scan positions (`xcoords`, `ycoords`, one per pattern, in order) from this NPZ
    /// instead of the input's.
    pub positions_from: Option<PathBuf>,
    /// LSQML, ePIE, rPIE: refine the probe from this epoch on (1-based).
    pub probe_from_epoch: Option<usize>,
    /// ePIE and rPIE: the probe step β.
    pub probe_step: f32,
    /// LSQML: correct the positions from this epoch on (1-based).
    pub positions_from_epoch: Option<usize>,
    /// ePIE/rPIE: the object step.
    pub alpha: f32,
    /// rPIE: γ.
    pub gamma: f32,
    /// DM: RAAR's β (1: the plain difference map).
    pub beta: f32,
    /// DM: w of the Fourier step w·Π_F + (1 − w)·identity (1: the projection, the plain difference
    /// map).
    pub fourier_weight: f32,
    /// LSQML and DM: δ of the preconditioner, relative to its maximum; None: the engine's default.
    pub regularization: Option<f32>,
    pub overwrite: bool,
}

impl Default for ReconstructConfig {
    fn default() -> Self {
        Self {
            input: PathBuf::new(),
            output_dir: PathBuf::new(),
            algorithm: Algorithm::Lsqml,
            epochs: 100,
            batch_size: 96,
            noise: NoiseModel::Gaussian,
            far_field_step: None,
            shuffle_seed: None,
            init_object: InitObject::Ones,
            positions_from: None,
            probe_from_epoch: None,
            probe_step: 1.0,
            positions_from_epoch: None,
            alpha: 0.1,
            gamma: 0.1,
            beta: 1.0,
            fourier_weight: DmConfig::DEFAULT_FOURIER_WEIGHT,
            regularization: None,
            overwrite: false,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReconstructReport {
    pub device: String,
    pub algorithm: Algorithm,
    pub init_object: String,
    pub patterns: usize,
    pub epochs: usize,
    pub final_cost: Option<f64>,
    pub seconds: f64,
    /// Patterns processed per second of epoch time (one pattern = one pass through it).
    pub patterns_per_s: f64,
    pub output: PathBuf,
    /// The divergence that ended the run early, if one did (the outputs hold the last good epoch).
    pub diverged: Option<String>,
}

/// The scan of `config.input` and the starting estimate.
struct Inputs {
    amplitudes: Vec<f32>,
    positions: Vec<[f64; 2]>,
    xcoords: Vec<f64>,
    ycoords: Vec<f64>,
    n: usize,
    estimate: Estimate,
}

fn read_inputs(config: &ReconstructConfig) -> Result<Inputs, ReconError> {
    let dataset = Dataset::open(&config.input)?;
    let n = dataset.n;
    let amplitudes = dataset
        .patterns_array(0..dataset.m)?
        .into_raw_vec_and_offset()
        .0;
    let (xcoords, ycoords) = match &config.positions_from {
        None => (dataset.xcoords(), dataset.ycoords()),
        Some(path) => {
            let npz = NpzFile::open(path)?;
            let checked = CheckedNpz::new(&npz, path);
            let expected = format!(
                "({},) float positions, one per pattern of the input",
                dataset.m
            );
            let (xs, x) = checked.real_f64("xcoords", &expected)?;
            let (ys, y) = checked.real_f64("ycoords", &expected)?;
            for (key, shape) in [("xcoords", &xs), ("ycoords", &ys)] {
                if shape[..] != [dataset.m] {
                    return Err(checked
                        .err(key, expected.clone(), format!("shape {shape:?}"))
                        .into());
                }
            }
            (x, y)
        }
    };
    let positions: Vec<[f64; 2]> = xcoords
        .iter()
        .zip(&ycoords)
        .map(|(&x, &y)| [x, y])
        .collect();
    let truth = dataset.shards[0].object.clone();
    let covering = || covering_shape(&xcoords, &ycoords, n);
    let object = match &config.init_object {
        InitObject::Ones => {
            let (rows, cols) = truth
                .as_ref()
                .map(|t| (t.rows, t.cols))
                .unwrap_or_else(covering);
            ComplexImage::filled(rows, cols, Complex32::new(1.0, 0.0))
        }
        InitObject::Truth => truth.ok_or_else(|| {
            ReconError::Scan(format!(
                "{}: --init-object truth needs an objectGuess in the file",
                config.input.display()
            ))
        })?,
        InitObject::File(path) => {
            let npz = NpzFile::open(path)?;
            let checked = CheckedNpz::new(&npz, path);
            let key = if checked.has("object") {
                "object"
            } else {
                "objectGuess"
            };
            checked.complex_image(key, "a complex 2-D object")?
        }
    };
    let probe = ComplexImage::new(n, n, dataset.probe().to_vec());
    Ok(Inputs {
        amplitudes,
        positions,
        xcoords,
        ycoords,
        n,
        estimate: Estimate { object, probe },
    })
}

/// Run the configured engine on `b`; `on_epoch` sees every epoch's record.
pub fn reconstruct<B: Backend>(
    b: &B,
    config: &ReconstructConfig,
    on_epoch: impl FnMut(&EpochRecord),
) -> Result<ReconstructReport, ReconError> {
    let out = OutputDir::lock(&config.output_dir)?;
    out.refuse_existing(&OUTPUTS, config.overwrite, "--overwrite")?;
    if config.epochs == 0 {
        return Err(ReconError::Scan("--epochs must be at least 1".into()));
    }
    if config.noise != NoiseModel::Gaussian && config.algorithm != Algorithm::Lsqml {
        return Err(ReconError::Scan(format!(
            "the Poisson noise model is implemented for lsqml; {} fits amplitudes",
            config.algorithm.name()
        )));
    }
    if config.positions_from_epoch.is_some() && config.algorithm != Algorithm::Lsqml {
        return Err(ReconError::Scan(format!(
            "position correction is implemented for lsqml; {} keeps the positions",
            config.algorithm.name()
        )));
    }
    let inputs = read_inputs(config)?;
    let scan = Scan {
        n: inputs.n,
        amplitudes: &inputs.amplitudes,
        positions: &inputs.positions,
    };
    let started = Instant::now();
    let mut engine = engine(b, &scan, &inputs.estimate, config)?;
    let result = run(&mut *engine, b, config.epochs, on_epoch)?;
    let seconds = started.elapsed().as_secs_f64();
    write_outputs(out.path(), config, &inputs, &result, seconds)?;
    let epoch_seconds: f64 = result.history.iter().map(|r| r.seconds).sum();
    Ok(ReconstructReport {
        device: b.describe(),
        algorithm: config.algorithm,
        init_object: config.init_object.label(),
        patterns: inputs.positions.len(),
        epochs: result.history.len(),
        final_cost: result.history.last().map(|r| r.cost),
        seconds,
        patterns_per_s: (result.history.len() * inputs.positions.len()) as f64
            / epoch_seconds.max(1e-9),
        output: config.output_dir.join("reconstruction.npz"),
        diverged: result.diverged.map(|e| e.to_string()),
    })
}

/// The engine `config` names, set up on `b` with the scan and the starting estimate.
pub fn engine<'a, B: Backend + 'a>(
    b: &B,
    scan: &Scan<'_>,
    estimate: &Estimate,
    config: &ReconstructConfig,
) -> Result<Box<dyn Engine<B> + 'a>, ReconError> {
    Ok(match config.algorithm {
        Algorithm::Lsqml => {
            let defaults = LsqmlConfig::default();
            let lsqml = LsqmlConfig {
                batch_size: config.batch_size,
                probe_from_epoch: config.probe_from_epoch,
                noise: config.noise,
                far_field_step: config.far_field_step.unwrap_or(defaults.far_field_step),
                shuffle_seed: config.shuffle_seed,
                positions_from_epoch: config.positions_from_epoch,
                regularization: config.regularization.unwrap_or(defaults.regularization),
                ..defaults
            };
            Box::new(Lsqml::new(b, scan, estimate, lsqml)?)
        }
        Algorithm::Epie | Algorithm::Rpie => {
            let variant = if config.algorithm == Algorithm::Epie {
                PieVariant::Epie
            } else {
                PieVariant::Rpie {
                    gamma: config.gamma,
                }
            };
            let pie = PieConfig {
                batch_size: config.batch_size,
                alpha: config.alpha,
                variant,
                probe_from_epoch: config.probe_from_epoch,
                probe_step: config.probe_step,
            };
            Box::new(Pie::new(b, scan, estimate, pie)?)
        }
        Algorithm::Dm => {
            let dm = DmConfig {
                batch_size: config.batch_size,
                regularization: config
                    .regularization
                    .unwrap_or(DmConfig::DEFAULT_REGULARIZATION),
                beta: config.beta,
                fourier_weight: config.fourier_weight,
                probe_from_epoch: config.probe_from_epoch,
            };
            Box::new(DifferenceMap::new(b, scan, estimate, dm)?)
        }
    })
}

fn write_outputs(
    dir: &Path,
    config: &ReconstructConfig,
    inputs: &Inputs,
    result: &Reconstruction,
    seconds: f64,
) -> Result<(), ReconError> {
    let (object, probe) = (&result.estimate.object, &result.estimate.probe);
    let amplitude: Vec<f32> = object.data.iter().map(|v| v.norm()).collect();
    let phase: Vec<f32> = object.data.iter().map(|v| v.arg()).collect();
    let mut npz = NpzWriter::create(&dir.join("reconstruction.npz"), false)?;
    npz.add_c64("object", &object.shape(), &object.data)?;
    npz.add_f32("amplitude", &object.shape(), &amplitude)?;
    npz.add_f32("phase", &object.shape(), &phase)?;
    npz.add_c64("probe", &probe.shape(), &probe.data)?;
    let m = inputs.xcoords.len();
    // Without position correction the positions are the given ones, exactly: the engine holds them
    // as float32 patch origins.
    let (x, y): (Vec<f64>, Vec<f64>) = if config.positions_from_epoch.is_none() {
        (inputs.xcoords.clone(), inputs.ycoords.clone())
    } else {
        result.positions.iter().map(|p| (p[0], p[1])).unzip()
    };
    npz.add_f64("xcoords", &[m], &x)?;
    npz.add_f64("ycoords", &[m], &y)?;
    npz.add_f64("xcoords_start", &[m], &inputs.xcoords)?;
    npz.add_f64("ycoords_start", &[m], &inputs.ycoords)?;
    npz.add_c64("reconstructed_object", &object.shape(), &object.data)?;
    npz.add_c64("reconstructed_probe", &probe.shape(), &probe.data)?;
    npz.add_text("algorithm", config.algorithm.name())?;
    npz.add_text("init_object", &config.init_object.label())?;
    npz.add_text("timestamp", &utc_now())?;
    npz.add_f64("computation_time_s", &[], &[seconds])?;
    npz.finish()?;

    let io = |path: PathBuf, error: std::io::Error| ReconError::Io {
        file: path.display().to_string(),
        error,
    };
    let real = |rows: usize, cols: usize, v: &[f32]| {
        Real::new(rows, cols, v.iter().map(|x| *x as f64).collect())
    };
    let probe_amplitude: Vec<f32> = probe.data.iter().map(|v| v.norm()).collect();
    let label = config.init_object.label();
    let pictures = [
        (
            "amplitude.png",
            plot::image_png(
                "amplitude",
                &real(object.rows, object.cols, &amplitude),
                false,
            ),
        ),
        (
            "phase.png",
            plot::image_png("phase", &real(object.rows, object.cols, &phase), true),
        ),
        (
            "probe.png",
            plot::image_png(
                "probe amplitude",
                &real(probe.rows, probe.cols, &probe_amplitude),
                false,
            ),
        ),
        (
            "cost.png",
            plot::curve_png(
                &format!("{} cost", config.algorithm.name()),
                &result.history.iter().map(|r| r.cost).collect::<Vec<_>>(),
            ),
        ),
    ];
    for (name, bytes) in pictures {
        let path = dir.join(name);
        write_atomic(&path, &bytes).map_err(|e| io(path.clone(), e))?;
    }
    let history = serde_json::json!({
        "algorithm": config.algorithm,
        "init_object": label,
        "epochs": result.history,
        "cost": result.history.iter().map(|r| r.cost).collect::<Vec<_>>(),
        "seconds": result.history.iter().map(|r| r.seconds).collect::<Vec<_>>(),
        "batch_size": config.batch_size,
        "noise": config.noise,
        "far_field_step": config.far_field_step,
        "shuffle_seed": config.shuffle_seed,
        "probe_from_epoch": config.probe_from_epoch,
        "probe_step": config.probe_step,
        "positions_from_epoch": config.positions_from_epoch,
        "alpha": config.alpha,
        "gamma": config.gamma,
        "beta": config.beta,
        "fourier_weight": config.fourier_weight,
        "regularization": config.regularization,
        "input": config.input.display().to_string(),
        "computation_time_s": seconds,
        "diverged": result.diverged.as_ref().map(|e| e.to_string()),
    });
    let path = dir.join("history.json");
    write_json(&path, &history).map_err(|e| io(path.clone(), e))?;
    Ok(())
}
