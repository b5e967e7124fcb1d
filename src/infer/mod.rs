//! `ptycho infer`: a trained bundle's `diffraction_to_obj` on test data (physics-and-model.md §9): the
//! data grouped as the model's gridsize requires, the network and the merge in batches on the device,
//! the trimmed objects stitched at the group centroids (`reassemble_position`), and the reconstruction
//! written as NPZ and pictures. Before stitching, each patch's global phase (which the data do not
//! fix) is rotated to agree with its neighbours' ([`synchronise_phases`]) unless that is turned off.
//! The supervised baseline predicts each pattern's patch directly (no merge), stitched at the pattern
//! positions.

pub mod phase_sync;
pub mod predict;
pub mod stitch;

use thiserror::Error;

use crate::data::DataError;
use crate::model::ModelError;
use crate::persist::PersistError;
use crate::physics::PhysicsError;
use ptycho_kernels::KernelError;

#[derive(Debug, Error)]
pub enum InferError {
    #[error(transparent)]
    Kernel(#[from] KernelError),

    #[error(transparent)]
    Data(#[from] DataError),

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error(transparent)]
    Persist(#[from] PersistError),

    #[error(transparent)]
    Physics(#[from] PhysicsError),

    /// A PNG written beside the reconstruction.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },

    /// Inputs that cannot be reconstructed, and outputs that must not be written; the message says why.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for InferError {
    fn from(message: String) -> Self {
        InferError::Invalid(message)
    }
}

use std::path::{Path, PathBuf};
use std::time::Instant;

use ptycho_kernels::Backend;
use serde::Serialize;

use crate::data::dataset::Dataset;
use crate::data::grouping::{group, GroupingConfig};
use crate::eval::image::Real;
use crate::io::npz_writer::NpzWriter;
use phase_sync::{synchronise_phases, PhaseSync};

use crate::eval::plot;
use crate::io::atomic::write_atomic;
use crate::model::network::Network;
use crate::model::params::model_config;
use crate::model::{ModelConfig, ModelKind};
use crate::persist::bundle;
use crate::persist::output_dir::OutputDir;
use crate::physics::forward::default_canvas_size;
use crate::physics::merge::{merge, merge_separating_ring, relative_tensor};

#[derive(Clone, Debug)]
pub struct InferConfig {
    pub model_dir: PathBuf,
    pub test_data: PathBuf,
    pub output_dir: PathBuf,
    /// M of the stitching crop.
    pub stitch_crop: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Rotate each patch's global phase to agree with its neighbours before stitching
    /// ([`synchronise_phases`]); off: the reference's plain stitch.
    pub phase_sync: bool,
    /// Replace outputs already in the folder (otherwise refused).
    pub overwrite: bool,
}

/// What `infer` writes into its output folder.
pub const OUTPUTS: [&str; 3] = ["reconstruction.npz", "amplitude.png", "phase.png"];

#[derive(Debug, Serialize)]
pub struct InferReport {
    pub device: String,
    pub groups: usize,
    pub stitched_size: usize,
    pub patterns_per_s: f64,
    pub output: PathBuf,
    pub phase_sync: Option<PhaseSync>,
}

pub fn infer<B: Backend>(
    b: &B,
    config: &InferConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<InferReport, InferError> {
    let out = OutputDir::lock(&config.output_dir)?;
    out.refuse_existing(&OUTPUTS, config.overwrite, "--overwrite")?;
    // Loading verifies the digests; Network::new checks the tensors against the architecture.
    let loaded = bundle::load(&config.model_dir, None)?;
    let model = model_config(&loaded.params)?;
    let network = Network::new(b, &model, &loaded.weights)
        .map_err(|e| InferError::from(format!("{}: {e}", config.model_dir.display())))?;
    let dataset = Dataset::open(&config.test_data)?;
    if dataset.n != model.n {
        return Err(InferError::from(format!(
            "{}: patterns are {n}x{n}, the model was trained for N = {}",
            config.test_data.display(),
            model.n,
            n = dataset.n
        )));
    }
    stitch::check_crop(model.n, config.stitch_crop)
        .map_err(|e| InferError::from(format!("--stitch-crop: {e}")))?;
    // The baseline reconstructs single patterns whatever gridsize it was trained at.
    let gridsize = match model.kind {
        ModelKind::Pinn => model.gridsize,
        ModelKind::Baseline => 1,
    };
    let groups = group(
        &dataset.xcoords(),
        &dataset.ycoords(),
        &GroupingConfig {
            gridsize,
            n_groups: Some(dataset.m),
            neighbor_count: 4,
            enable_oversampling: false,
            seed: config.seed,
        },
    )?;
    let (n, c) = (model.n, groups.c);
    let alpha = dataset.normalization() as f32;
    let started = Instant::now();
    let mut objects = Vec::with_capacity(groups.len() * n * n);
    let mut pattern = vec![0f32; n * n];
    for first in (0..groups.len()).step_by(config.batch_size.max(1)) {
        let count = config.batch_size.max(1).min(groups.len() - first);
        let mut x = Vec::with_capacity(count * c * n * n);
        for k in first * c..(first + count) * c {
            dataset.read_pattern(groups.indices[k], &mut pattern)?;
            x.extend(pattern.iter().map(|v| v * alpha));
        }
        let run = || -> Result<Vec<ptycho_kernels::Complex32>, ptycho_kernels::KernelError> {
            let patches = network_patches(b, &network, &x, count)?;
            if model.kind == ModelKind::Baseline {
                return b.download_c64(&patches);
            }
            let rel: Vec<[f32; 2]> = groups.relative[first * c..(first + count) * c]
                .iter()
                .map(|r| [r[0] as f32, r[1] as f32])
                .collect();
            // The probe-big ring is merged apart from the centre (see physics::merge).
            let merge = if model.probe_big {
                Merge::SeparatingRing
            } else {
                Merge::Reference
            };
            merged_objects(b, &patches, &rel, &model, merge)
        };
        objects.extend(run()?);
        progress(first + count, groups.len());
    }
    let bad = objects
        .iter()
        .filter(|v| !v.re.is_finite() || !v.im.is_finite())
        .count();
    if bad > 0 {
        return Err(InferError::from(format!(
            "{}: the network's output holds {bad} non-finite values of {} (a diverged model?); \
             nothing written",
            config.model_dir.display(),
            objects.len()
        )));
    }
    let rate = (groups.len() * c) as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let phase_sync = config
        .phase_sync
        .then(|| synchronise_phases(&mut objects, n, &groups.centroids, config.stitch_crop));
    let stitched = stitch::reassemble(b, &objects, n, &groups.centroids, config.stitch_crop)?;
    write_outputs(out.path(), &stitched, &groups.centroids)?;
    Ok(InferReport {
        device: b.describe(),
        groups: groups.len(),
        stitched_size: stitched.size,
        patterns_per_s: rate,
        output: config.output_dir.join("reconstruction.npz"),
        phase_sync,
    })
}

/// How a group's patches are merged into its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The reference's merge (physics-and-model.md §5.2), the probe-big ring included in the average.
    Reference,
    /// The centre averaged, the ring added apart ([`merge_separating_ring`]).
    SeparatingRing,
}

/// The network's complex patches (B, C, N, N) for `x` (B, C, N, N), the amplitudes it reads; C is
/// the network's input channels.
pub fn network_patches<B: Backend>(
    b: &B,
    network: &Network<B::Storage>,
    x: &[f32],
    samples: usize,
) -> Result<ptycho_kernels::Tensor<B::Storage>, ptycho_kernels::KernelError> {
    let [n, _, c] = network.architecture().input;
    let x = b.to_channels_last(&b.upload_f32(&[samples, c, n, n], x)?)?;
    let acts = network.forward(b, &x)?;
    b.combine_complex(
        network.output(&acts, "amplitude"),
        network.output(&acts, "phase"),
    )
}

/// The centre N x N of each group's merged canvas (the reference's `trimmed_obj`), (B, N, N), from
/// the patches (B, C, N, N) and each patch's offset from its group centroid (B·C) as (x, y).
pub fn merged_objects<B: Backend>(
    b: &B,
    patches: &ptycho_kernels::Tensor<B::Storage>,
    offsets: &[[f32; 2]],
    model: &ModelConfig,
    how: Merge,
) -> Result<Vec<ptycho_kernels::Complex32>, ptycho_kernels::KernelError> {
    let n = model.n;
    let (rel, canvas) = (
        relative_tensor(b, offsets)?,
        default_canvas_size(n, model.gridsize),
    );
    let merged = match how {
        Merge::Reference => merge(b, patches, &rel, canvas)?,
        Merge::SeparatingRing => merge_separating_ring(b, patches, &rel, canvas)?,
    };
    b.download_c64(&b.recenter(&merged.canvas, n, n)?)
}

fn write_outputs(
    dir: &Path,
    stitched: &stitch::Stitched,
    centroids: &[[f64; 2]],
) -> Result<(), InferError> {
    let s = stitched.size;
    let amplitude: Vec<f32> = stitched.image.iter().map(|v| v.norm()).collect();
    let phase: Vec<f32> = stitched.image.iter().map(|v| v.arg()).collect();
    let mut out = NpzWriter::create(&dir.join("reconstruction.npz"), false)?;
    out.add_c64("object", &[s, s], &stitched.image)?;
    out.add_f32("amplitude", &[s, s], &amplitude)?;
    out.add_f32("phase", &[s, s], &phase)?;
    let x: Vec<f64> = centroids.iter().map(|p| p[0]).collect();
    let y: Vec<f64> = centroids.iter().map(|p| p[1]).collect();
    out.add_f64("xcoords", &[x.len()], &x)?;
    out.add_f64("ycoords", &[y.len()], &y)?;
    out.finish()?;
    let real = |v: &[f32]| Real::new(s, s, v.iter().map(|x| *x as f64).collect());
    for (name, values, cyclic) in [("amplitude", &amplitude, false), ("phase", &phase, true)] {
        let path = dir.join(format!("{name}.png"));
        write_atomic(&path, &plot::image_png(name, &real(values), cyclic)).map_err(|error| {
            InferError::Io {
                file: path.display().to_string(),
                error,
            }
        })?;
    }
    Ok(())
}
