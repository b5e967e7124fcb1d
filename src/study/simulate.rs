//! Study phase C (study-pipeline.md §2.3, physics-and-model.md §4.5): diffraction of an object scanned
//! by a probe at several doses, with seeded Poisson noise.
//!
//! Patches are cut from the object on the host (bilinear, zero outside, centred on each position); the
//! device computes |FFT2(P·O)|²/N² in batches, once for all doses (the positions and patches do not depend
//! on the dose, as in the reference). Each pattern's noise comes from its own generator, keyed by the
//! seed, the dose and the pattern index, so output bytes do not depend on batching or threads. Unlike the
//! reference (whose noise comes from an unseeded TensorFlow generator), the same seed on the same device
//! gives byte-identical files; another device may round |FFT|² differently in the last bit and so, rarely,
//! draw a different count.

use std::path::{Path, PathBuf};

use ptycho_kernels::ops::fft::{FftDirection, FftShift};
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::{Backend, Complex32};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::data::checked::CheckedNpz;
use crate::data::DataError;
use crate::io::npy::{Kind, NpyDtype};
use crate::io::npz::NpzFile;
use crate::io::npz_writer::NpzWriter;
use crate::persist::digest::sha256_file;
use crate::persist::output_dir::OutputDir;
use crate::physics::image::ComplexImage;
use crate::physics::poisson;
use crate::physics::probe::{
    default_probe, gaussian_filter_reflect, normalize, DEFAULT_PROBE_SCALE,
};
use crate::study::StudyError;

/// Patterns sent to the device at once.
const PATTERNS_PER_BATCH: usize = 1024;

/// The seed when none is given (the reference's simulation seed).
pub const DEFAULT_SEED: u64 = 42;

#[derive(Clone, Debug)]
pub enum ObjectSource {
    /// The built-in multi-scale texture of this size (square).
    Synthetic { size: usize },
    /// `objectGuess` of an NPZ file.
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub enum ProbeSource {
    /// The reference's synthetic probe with this much phase curvature (radians at radius N/4).
    Default { curvature: f64 },
    /// `probeGuess` of an NPZ file.
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub enum Positions {
    /// Uniform in [buffer, size − buffer) for x, then for y; buffer = N/2.
    Random { count: usize },
    /// A grid from the buffer with this step, rows of increasing x, rows in increasing y.
    Raster { step: f64 },
    /// `xcoords`, `ycoords` of an NPZ file (object pixels, patch centres), in the given order.
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct SimulationConfig {
    pub n: usize,
    pub object: ObjectSource,
    pub probe: ProbeSource,
    pub positions: Positions,
    pub doses: Vec<f64>,
    pub seed: u64,
    /// Store sqrt(Poisson(λ))/s (true) or the expected amplitude sqrt(λ)/s.
    pub noise: bool,
    /// patched_train.npz and patched_test.npz split at the y midpoint, or one patched.npz.
    pub split: bool,
    /// Also write the diffraction under the legacy key `diff3d`.
    pub legacy_key: bool,
    pub output: PathBuf,
    /// Replace dose folders and the manifest already in `output` (otherwise refused).
    pub overwrite: bool,
}

/// The largest dose simulated: far beyond any measurement, and its folder name stays exact.
pub const MAX_DOSE: f64 = 1e15;

/// One file written, for the manifest.
#[derive(Clone, Debug, Serialize)]
pub struct WrittenFile {
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DoseOutput {
    pub dose: f64,
    pub s_sim: f64,
    pub directory: String,
    /// Relative to the output folder.
    pub files: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SimulationReport {
    pub patterns: usize,
    pub n: usize,
    pub object_shape: [usize; 2],
    pub doses: Vec<DoseOutput>,
    pub manifest: PathBuf,
    /// Patterns per second of the forward (patch extraction, FFT, read-back), on `device`.
    pub forward_patterns_per_s: f64,
    pub device: String,
}

/// Derive an independent generator for one purpose from the user's seed.
fn stream(seed: u64, purpose: u64) -> SplitMix64 {
    let mut mixer = SplitMix64::new(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    SplitMix64::new(mixer.next_u64())
}

const OBJECT_STREAM: u64 = 1;
const POSITION_STREAM: u64 = 2;
const NOISE_STREAM: u64 = 3;

/// The generator of pattern `index`'s noise at `dose`.
fn noise_rng(seed: u64, dose: f64, index: usize) -> SplitMix64 {
    let mut base = stream(seed, NOISE_STREAM);
    let key = base.next_u64()
        ^ dose.to_bits().rotate_left(21)
        ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    SplitMix64::new(key)
}

/// The built-in object: amplitude 1 − 0.5·t in [0.5, 1] and phase 1.3·(2u − 1) plus a 0.2 rad ramp
/// (within ±π/2, no wraps), where t and u are textures of blurred noise at several scales (and, for t,
/// discs) scaled to [0, 1]; then smoothed with σ = 0.5 as the reference's preparation does.
pub fn synthetic_object(size: usize, seed: u64) -> ComplexImage {
    let mut rng = stream(seed, OBJECT_STREAM);
    let texture = |scales: &[(f64, f64)], rng: &mut SplitMix64| -> Vec<f64> {
        let mut sum = vec![0.0; size * size];
        for &(sigma, weight) in scales {
            let noise: Vec<f64> = (0..size * size).map(|_| rng.next_f64() - 0.5).collect();
            let blurred = gaussian_filter_reflect(&noise, size, size, sigma);
            let std = (blurred.iter().map(|v| v * v).sum::<f64>() / blurred.len() as f64).sqrt();
            for (s, v) in sum.iter_mut().zip(&blurred) {
                *s += weight * v / std.max(1e-12);
            }
        }
        sum
    };
    let mut amplitude_texture = texture(&[(1.5, 0.35), (4.0, 0.5), (12.0, 0.6)], &mut rng);
    let discs = 12 + size / 32;
    for _ in 0..discs {
        let (cy, cx) = (rng.next_f64() * size as f64, rng.next_f64() * size as f64);
        let radius = 2.0 + rng.next_f64() * size as f64 / 16.0;
        let height = 1.5 * (rng.next_f64() - 0.3);
        for r in 0..size {
            for c in 0..size {
                if (r as f64 - cy).hypot(c as f64 - cx) < radius {
                    amplitude_texture[r * size + c] += height;
                }
            }
        }
    }
    let phase_texture = texture(&[(3.0, 0.4), (10.0, 0.8)], &mut rng);
    let unit = |v: &[f64]| -> Vec<f64> {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        v.iter().map(|x| (x - lo) / (hi - lo).max(1e-12)).collect()
    };
    let t = unit(&amplitude_texture);
    let u = unit(&phase_texture);
    let amplitude: Vec<f64> = t.iter().map(|t| 1.0 - 0.5 * t).collect();
    let phase: Vec<f64> = u
        .iter()
        .enumerate()
        .map(|(i, u)| 1.3 * (2.0 * u - 1.0) + 0.2 * ((i % size) as f64 / size as f64 - 0.5))
        .collect();
    let amplitude = gaussian_filter_reflect(&amplitude, size, size, 0.5);
    let phase = gaussian_filter_reflect(&phase, size, size, 0.5);
    ComplexImage {
        rows: size,
        cols: size,
        data: amplitude
            .iter()
            .zip(&phase)
            .map(|(&a, &p)| Complex32::from_polar(a as f32, p as f32))
            .collect(),
    }
}

/// The N x N patch centred on (x, y): `patch[r][c] = O(y − N/2 + r, x − N/2 + c)`, bilinear, each corner
/// zero outside the object (the reference pads by N/2, translates by −(x, y) and crops the top-left).
pub fn extract_patch(object: &ComplexImage, x: f64, y: f64, n: usize, out: &mut [Complex32]) {
    let half = (n / 2) as f64;
    let at = |r: i64, c: i64| -> Complex32 {
        if r < 0 || c < 0 || r >= object.rows as i64 || c >= object.cols as i64 {
            Complex32::default()
        } else {
            object.data[r as usize * object.cols + c as usize]
        }
    };
    for r in 0..n {
        let sy = y - half + r as f64;
        let y0 = sy.floor();
        let wy = (sy - y0) as f32;
        for c in 0..n {
            let sx = x - half + c as f64;
            let x0 = sx.floor();
            let wx = (sx - x0) as f32;
            let (y0, x0) = (y0 as i64, x0 as i64);
            out[r * n + c] = at(y0, x0) * ((1.0 - wx) * (1.0 - wy))
                + at(y0, x0 + 1) * (wx * (1.0 - wy))
                + at(y0 + 1, x0) * ((1.0 - wx) * wy)
                + at(y0 + 1, x0 + 1) * (wx * wy);
        }
    }
}

fn read_complex_image(path: &Path, key: &str) -> Result<ComplexImage, StudyError> {
    let npz = NpzFile::open(path)?;
    Ok(CheckedNpz::new(&npz, path).complex_image(key, "a complex 2-D array")?)
}

fn load_object(config: &SimulationConfig) -> Result<ComplexImage, StudyError> {
    match &config.object {
        ObjectSource::Synthetic { size } => {
            if *size < config.n + 2 || *size > 16384 {
                return Err(StudyError::Input(format!(
                    "object size {size} must be larger than N = {} (and at most 16384)",
                    config.n
                )));
            }
            Ok(synthetic_object(*size, config.seed))
        }
        ObjectSource::File(path) => {
            let object = read_complex_image(path, "objectGuess")?;
            if object.rows < 2 || object.cols < 2 {
                return Err(StudyError::Input(format!(
                    "{}: objectGuess {:?} is too small",
                    path.display(),
                    object.shape()
                )));
            }
            Ok(object)
        }
    }
}

/// The size N of `probeGuess` in an NPZ file (for choosing N from a probe file).
pub fn probe_size(path: &Path) -> Result<usize, StudyError> {
    let shape = read_complex_image(path, "probeGuess")?.shape();
    if shape[0] != shape[1] {
        return Err(StudyError::Input(format!(
            "{}: probeGuess must be square, found shape {shape:?}",
            path.display()
        )));
    }
    Ok(shape[0])
}

/// The probe normalised for the model (physics-and-model.md §3.6) and where it came from.
fn load_probe(config: &SimulationConfig) -> Result<Vec<Complex32>, StudyError> {
    let n = config.n;
    let raw = match &config.probe {
        ProbeSource::Default { curvature } => default_probe(n, *curvature),
        ProbeSource::File(path) => {
            let probe = read_complex_image(path, "probeGuess")?;
            let shape = probe.shape();
            if shape != [n, n] {
                return Err(StudyError::Input(format!(
                    "{}: probeGuess has shape {shape:?}, but N = {n} (give --n {})",
                    path.display(),
                    shape[0]
                )));
            }
            probe.data
        }
    };
    Ok(normalize(&raw, n, DEFAULT_PROBE_SCALE)?)
}

fn positions(
    config: &SimulationConfig,
    object: &ComplexImage,
) -> Result<(Vec<f64>, Vec<f64>), StudyError> {
    let limit = object.rows.min(object.cols) as f64 / 2.0 - 1.0;
    let buffer = ((config.n / 2) as f64).min(limit);
    let (w, h) = (object.cols as f64, object.rows as f64);
    let (x, y) = match &config.positions {
        Positions::Random { count } => {
            if *count == 0 {
                return Err(StudyError::Input("--n-images must be at least 1".into()));
            }
            let mut rng = stream(config.seed, POSITION_STREAM);
            let x: Vec<f64> = (0..*count)
                .map(|_| buffer + rng.next_f64() * (w - 2.0 * buffer))
                .collect();
            let y: Vec<f64> = (0..*count)
                .map(|_| buffer + rng.next_f64() * (h - 2.0 * buffer))
                .collect();
            (x, y)
        }
        Positions::Raster { step } => {
            if !(step.is_finite() && *step > 0.0) {
                return Err(StudyError::Input(format!(
                    "--step must be positive, found {step}"
                )));
            }
            let axis = |size: f64| -> Vec<f64> {
                (0..)
                    .map(|k| buffer + k as f64 * step)
                    .take_while(|v| *v <= size - buffer)
                    .collect()
            };
            let (xs, ys) = (axis(w), axis(h));
            let mut x = Vec::with_capacity(xs.len() * ys.len());
            let mut y = Vec::with_capacity(xs.len() * ys.len());
            for &yy in &ys {
                for &xx in &xs {
                    x.push(xx);
                    y.push(yy);
                }
            }
            (x, y)
        }
        Positions::File(path) => {
            let npz = NpzFile::open(path)?;
            let read = |key: &str| -> Result<Vec<f64>, StudyError> {
                if !npz.has(key) {
                    return Err(DataError::Contract {
                        file: path.display().to_string(),
                        key: key.into(),
                        expected: "float positions in object pixels (M,)".into(),
                        found: "nothing: the key is missing".into(),
                        present: npz.keys().join(", "),
                    }
                    .into());
                }
                let view = npz.array(key)?;
                if view.dtype().kind != Kind::Float || view.shape().len() != 1 {
                    return Err(StudyError::Input(format!(
                        "{}: '{key}' must be a float array (M,), found dtype {} shape {:?}",
                        path.display(),
                        view.dtype().descr,
                        view.shape()
                    )));
                }
                Ok(view.to_f64_vec()?)
            };
            let (x, y) = (read("xcoords")?, read("ycoords")?);
            if x.len() != y.len() || x.is_empty() {
                return Err(StudyError::Input(format!(
                    "{}: xcoords ({}) and ycoords ({}) must be non-empty and of one length",
                    path.display(),
                    x.len(),
                    y.len()
                )));
            }
            if let Some(i) = (0..x.len()).find(|&i| {
                !(x[i].is_finite()
                    && y[i].is_finite()
                    && (0.0..w).contains(&x[i])
                    && (0.0..h).contains(&y[i]))
            }) {
                return Err(StudyError::Input(format!(
                    "{}: position {i} ({}, {}) lies outside the {}x{} object",
                    path.display(),
                    x[i],
                    y[i],
                    object.rows,
                    object.cols
                )));
            }
            (x, y)
        }
    };
    if x.is_empty() {
        return Err(StudyError::Input(format!(
            "no scan positions fit in the {}x{} object with a buffer of {buffer} px",
            object.rows, object.cols
        )));
    }
    check_patches_fit(&x, &y, config.n, object.rows, object.cols)?;
    Ok((x, y))
}

/// Every N x N patch centred on a position must lie inside the object (a patch cut partly from
/// outside it is zeros there: garbage diffraction or labels). The error names the first offender.
pub fn check_patches_fit(
    x: &[f64],
    y: &[f64],
    n: usize,
    rows: usize,
    cols: usize,
) -> Result<(), StudyError> {
    let half = (n / 2) as f64;
    let fits = |v: f64, size: usize| v - half >= 0.0 && v + half <= size as f64;
    match (0..x.len()).find(|&i| !(fits(x[i], cols) && fits(y[i], rows))) {
        None => Ok(()),
        Some(i) => Err(StudyError::Input(format!(
            "position {i} (x {:.2}, y {:.2}): its {n}x{n} patch reaches outside the {rows}x{cols} \
             object (centres must lie {half} px inside every edge{})",
            x[i],
            y[i],
            if rows < n || cols < n {
                "; the object is smaller than one patch"
            } else {
                ""
            }
        ))),
    }
}

/// |FFT2(P·O)|²/N² of every pattern (fftshifted), computed on the device in batches: (M·N²) float32.
pub fn expected_intensity<B: Backend>(
    b: &B,
    object: &ComplexImage,
    probe: &[Complex32],
    x: &[f64],
    y: &[f64],
    n: usize,
) -> Result<Vec<f32>, StudyError> {
    let probe_t = b.upload_c64(&[n, n], probe)?;
    let mut out = Vec::with_capacity(x.len() * n * n);
    let mut patches = vec![Complex32::default(); PATTERNS_PER_BATCH * n * n];
    for first in (0..x.len()).step_by(PATTERNS_PER_BATCH) {
        let count = PATTERNS_PER_BATCH.min(x.len() - first);
        patches[..count * n * n]
            .par_chunks_mut(n * n)
            .enumerate()
            .for_each(|(k, patch)| extract_patch(object, x[first + k], y[first + k], n, patch));
        let t = b.upload_c64(&[count, n, n], &patches[..count * n * n])?;
        let spectrum = b.fft2(
            &b.mul(&t, &probe_t)?,
            FftDirection::Forward,
            FftShift::OUTPUT,
        )?;
        let intensity = b.scale(&b.abs2(&spectrum)?, 1.0 / (n * n) as f32)?;
        out.extend(b.download_f32(&intensity)?);
    }
    Ok(out)
}

/// mean over patterns of Σ |O·P|² (the denominator of s_sim), on the host in f64.
fn mean_illuminated_power(
    object: &ComplexImage,
    probe: &[Complex32],
    x: &[f64],
    y: &[f64],
    n: usize,
) -> f64 {
    let total: f64 = (0..x.len())
        .into_par_iter()
        .map(|i| {
            let mut patch = vec![Complex32::default(); n * n];
            extract_patch(object, x[i], y[i], n, &mut patch);
            patch
                .iter()
                .zip(probe)
                .map(|(o, p)| (o * p).norm_sqr() as f64)
                .sum::<f64>()
        })
        .sum();
    total / x.len() as f64
}

pub fn dose_label(dose: f64) -> String {
    format!("dose_{}", dose as u64)
}

struct Split {
    file: &'static str,
    indices: Vec<usize>,
    note: Option<serde_json::Value>,
}

fn splits(config: &SimulationConfig, y: &[f64]) -> Result<Vec<Split>, StudyError> {
    let all: Vec<usize> = (0..y.len()).collect();
    if !config.split {
        return Ok(vec![Split {
            file: "patched.npz",
            indices: all,
            note: None,
        }]);
    }
    let (lo, hi) = y
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let split_point = lo + 0.5 * (hi - lo);
    let (train, test): (Vec<usize>, Vec<usize>) =
        all.into_iter().partition(|&i| y[i] < split_point);
    if train.is_empty() || test.is_empty() {
        return Err(StudyError::Input(format!(
            "splitting at y = {split_point} leaves {} training and {} test positions; use --no-split",
            train.len(),
            test.len()
        )));
    }
    let note = json!({
        "tool": "split (y midpoint)",
        "split_point": split_point,
        "train_count": train.len(),
        "test_count": test.len(),
    });
    Ok(vec![
        Split {
            file: "patched_train.npz",
            indices: train,
            note: Some(note.clone()),
        },
        Split {
            file: "patched_test.npz",
            indices: test,
            note: Some(note),
        },
    ])
}

/// Run the simulation; `progress` receives one line per step.
pub fn run<B: Backend>(
    b: &B,
    config: &SimulationConfig,
    mut progress: impl FnMut(&str),
) -> Result<SimulationReport, StudyError> {
    let n = config.n;
    crate::model::check_n(n).map_err(|e| StudyError::Input(e.to_string()))?;
    if config.doses.is_empty() {
        return Err(StudyError::Input("dose list must not be empty".into()));
    }
    if let Some(d) = config
        .doses
        .iter()
        .find(|d| !(d.is_finite() && (1.0..=MAX_DOSE).contains(*d)))
    {
        return Err(StudyError::Input(format!(
            "doses are photons per pattern, from 1 to {MAX_DOSE:e}; found {d}"
        )));
    }
    let labels: Vec<String> = config.doses.iter().map(|d| dose_label(*d)).collect();
    if let Some(k) = (1..labels.len()).find(|&k| labels[..k].contains(&labels[k])) {
        return Err(StudyError::Input(format!(
            "doses {} and {} both name the folder {}: give each dose once",
            config.doses[labels.iter().position(|l| *l == labels[k]).expect("found")],
            config.doses[k],
            labels[k]
        )));
    }
    let out = OutputDir::lock(&config.output).map_err(|e| StudyError::Input(e.to_string()))?;
    let mut ours: Vec<&str> = labels.iter().map(String::as_str).collect();
    ours.push("run_manifest.json");
    out.refuse_existing(&ours, config.overwrite, "--overwrite")
        .map_err(|e| StudyError::Input(e.to_string()))?;
    let object = load_object(config)?;
    let probe = load_probe(config)?;
    let (x, y) = positions(config, &object)?;
    let m = x.len();
    if m.saturating_mul(n * n) > 1 << 33 {
        return Err(StudyError::Input(format!(
            "{m} patterns of {n}x{n} would need more than 32 GiB; simulate fewer positions"
        )));
    }
    progress(&format!(
        "simulating {m} patterns of {n}x{n} from a {}x{} object on {}",
        object.rows,
        object.cols,
        b.describe()
    ));
    let started = std::time::Instant::now();
    let intensity = expected_intensity(b, &object, &probe, &x, &y, n)?;
    let forward_seconds = started.elapsed().as_secs_f64();
    let power = mean_illuminated_power(&object, &probe, &x, &y, n);
    if power <= 0.0 {
        return Err(StudyError::Input(
            "the illuminated object is zero at every position; nothing to diffract".into(),
        ));
    }
    let splits = splits(config, &y)?;
    std::fs::create_dir_all(&config.output)
        .map_err(|e| DataError::io(config.output.display(), e))?;

    let mut doses = Vec::new();
    let mut written = Vec::new();
    for &dose in &config.doses {
        let s_sim = (dose / power).sqrt();
        let label = dose_label(dose);
        let dir = config.output.join(&label);
        let mut files = Vec::new();
        for split in &splits {
            let path = dir.join(split.file);
            write_split(
                config, &object, &probe, &x, &y, &intensity, dose, s_sim, split, &path,
            )?;
            let relative = format!("{label}/{}", split.file);
            let (sha256, size_bytes) =
                sha256_file(&path).map_err(|e| DataError::io(path.display(), e))?;
            written.push(WrittenFile {
                path: relative.clone(),
                sha256,
                size_bytes,
            });
            files.push(relative);
        }
        progress(&format!(
            "dose {dose}: s_sim = {s_sim:.6}, wrote {}",
            files.join(", ")
        ));
        doses.push(DoseOutput {
            dose,
            s_sim,
            directory: label,
            files,
        });
    }
    let manifest = write_manifest(config, &doses, &written, m)?;
    Ok(SimulationReport {
        patterns: m,
        n,
        object_shape: [object.rows, object.cols],
        doses,
        manifest,
        forward_patterns_per_s: m as f64 / forward_seconds.max(1e-9),
        device: b.describe(),
    })
}

#[allow(clippy::too_many_arguments)]
fn write_split(
    config: &SimulationConfig,
    object: &ComplexImage,
    probe: &[Complex32],
    x: &[f64],
    y: &[f64],
    intensity: &[f32],
    dose: f64,
    s_sim: f64,
    split: &Split,
    path: &Path,
) -> Result<(), StudyError> {
    let n = config.n;
    let idx = &split.indices;
    let m = idx.len();
    let amplitude = |i: usize, out: &mut [f32]| {
        let mut rng = noise_rng(config.seed, dose, i);
        let scale2 = s_sim * s_sim;
        for (o, &a2) in out.iter_mut().zip(&intensity[i * n * n..(i + 1) * n * n]) {
            let expected = scale2 * a2 as f64;
            *o = if config.noise {
                ((poisson::sample(&mut rng, expected) as f64).sqrt() / s_sim) as f32
            } else {
                (expected.sqrt() / s_sim) as f32
            };
        }
    };
    let shown = path.display().to_string();
    let mut w = NpzWriter::create(path, false)?;
    let keys: &[&str] = if config.legacy_key {
        &["diffraction", "diff3d"]
    } else {
        &["diffraction"]
    };
    for key in keys {
        w.add_streamed(key, &NpyDtype::little(Kind::Float, 4), &[m, n, n], |out| {
            let mut chunk = vec![0f32; 256 * n * n];
            for group in idx.chunks(256) {
                chunk[..group.len() * n * n]
                    .par_chunks_mut(n * n)
                    .zip(group.par_iter())
                    .for_each(|(pattern, &i)| amplitude(i, pattern));
                out.write_all(bytemuck::cast_slice(&chunk[..group.len() * n * n]))
                    .map_err(|e| DataError::io(&shown, e))?;
            }
            Ok(())
        })?;
    }
    let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    w.add_c64("objectGuess", &[object.rows, object.cols], &object.data)?;
    w.add_c64("probeGuess", &[n, n], probe)?;
    w.add_f64("xcoords", &[m], &xs)?;
    w.add_f64("ycoords", &[m], &ys)?;
    w.add_f64("xcoords_start", &[m], &xs)?;
    w.add_f64("ycoords_start", &[m], &ys)?;
    w.add_i64("scan_index", &[m], &vec![0; m])?;
    let mut transformations = vec![json!({
        "tool": "transpose_rename_convert",
        "operation": "none needed: ptycho simulate writes canonical keys (diffraction, float32 amplitude)",
    })];
    if let Some(note) = &split.note {
        transformations.push(note.clone());
    }
    let metadata = json!({
        "schema_version": "1.0.0",
        "creation_info": {
            "tool": "ptycho simulate",
            "tool_version": env!("CARGO_PKG_VERSION"),
        },
        "physics_parameters": {
            "nphotons": dose,
            "N": n,
            "gridsize": 1,
            "s_sim": s_sim,
            "noise": if config.noise { "poisson" } else { "none" },
        },
        "additional_parameters": {
            "seed": config.seed,
            "buffer": (n / 2) as f64,
            "simulation_type": "coordinate_based",
            "object": format!("{:?}", config.object),
            "probe": format!("{:?}", config.probe),
            "positions": format!("{:?}", config.positions),
            "probe_normalisation": format!("probe_scale {DEFAULT_PROBE_SCALE}"),
        },
        "data_transformations": transformations,
    });
    w.add_text("_metadata", &metadata.to_string())?;
    w.finish()?;
    Ok(())
}

fn write_manifest(
    config: &SimulationConfig,
    doses: &[DoseOutput],
    files: &[WrittenFile],
    patterns: usize,
) -> Result<PathBuf, StudyError> {
    let mut manifest = serde_json::Map::new();
    for d in doses {
        let file = |name: &str| {
            d.files
                .iter()
                .find(|f| f.ends_with(name))
                .cloned()
                .map_or(serde_json::Value::Null, serde_json::Value::String)
        };
        manifest.insert(
            d.directory.clone(),
            json!({
                "dose": d.dose,
                "s_sim": d.s_sim,
                "train": file("patched_train.npz"),
                "test": file("patched_test.npz"),
                "patched": file("/patched.npz"),
                "intermediate_dir": d.directory,
            }),
        );
    }
    manifest.insert(
        "files".into(),
        serde_json::to_value(files).expect("plain data"),
    );
    manifest.insert(
        "provenance".into(),
        json!({
            "tool": "ptycho simulate",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "seed": config.seed,
            "n": config.n,
            "patterns": patterns,
            "noise": config.noise,
        }),
    );
    let path = config.output.join("run_manifest.json");
    crate::io::atomic::write_json(&path, &serde_json::Value::Object(manifest))
        .map_err(|e| DataError::io(path.display(), e))?;
    Ok(path)
}
