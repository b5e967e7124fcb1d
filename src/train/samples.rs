//! What a training run trains on: a dataset grouped for the model, split into training and
//! validation groups, streamed batch by batch from the mapped shards, with the baseline's labels cut
//! from each shard's ground truth.

use std::path::Path;
use std::sync::Arc;

use ptycho_kernels::{Backend, Complex32};

use super::run::{TrainConfig, VALIDATION_FRACTION};
use super::{Batch, Targets, TrainError, Trainer};
use crate::data::dataset::Dataset;
use crate::data::grouping::{group, GroupingConfig, Groups};
use crate::data::stream::{Batch as StreamBatch, BatchStream, StreamConfig};
use crate::model::ModelKind;
use crate::physics::image::ComplexImage;
use crate::study::simulate::{check_patches_fit, extract_patch};

/// A dataset grouped for the model: the training and validation groups (the baseline's flattened to
/// single patterns), streamed from the mapped shards batch by batch; and, for the baseline, what the
/// labels are cut from.
pub(super) struct Samples {
    pub(super) dataset: Arc<Dataset>,
    pub(super) train: Arc<Groups>,
    pub(super) validation: Arc<Groups>,
    pub(super) alpha: f32,
    /// The baseline: each shard's object (None when the shard carries Y instead).
    pub(super) objects: Option<Vec<Option<ComplexImage>>>,
}

impl Samples {
    pub(super) fn stream(
        &self,
        groups: &Arc<Groups>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        epoch: usize,
    ) -> Result<BatchStream, TrainError> {
        BatchStream::epoch(
            self.dataset.clone(),
            groups.clone(),
            &StreamConfig {
                batch_size,
                shuffle,
                seed,
                scale: self.alpha,
                ..StreamConfig::default()
            },
            epoch,
        )
        .map_err(TrainError::from)
    }

    /// A streamed batch on the backend: X, and the PINN's offsets and targets s·X or the
    /// baseline's labels.
    pub(super) fn upload<B: Backend>(
        &self,
        b: &B,
        batch: &StreamBatch,
        s: f32,
    ) -> Result<Batch<B::Storage>, TrainError> {
        let (c, n) = (batch.c, batch.n);
        let upload = |shape: &[usize], v: &[f32]| b.upload_f32(shape, v);
        let x = upload(&[batch.groups, c, n, n], &batch.diffraction)?;
        let targets = match &self.objects {
            // The target s·X is scaled on the device: one upload per batch, not two.
            None => Targets::Physics {
                relative: upload(&[batch.groups * c, 2], &batch.relative_offsets)?,
                amplitude: b.scale(&x, s)?,
            },
            Some(objects) => {
                let (amplitude, phase) = labels(&self.dataset, objects, &batch.indices)?;
                let label_shape = [batch.groups, n, n, 1];
                Targets::Labels {
                    amplitude: upload(&label_shape, &amplitude)?,
                    phase: upload(&label_shape, &phase)?,
                }
            }
        };
        Ok(Batch { x, targets })
    }
}

/// Which data `load` reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// n_groups samples drawn, the last 5% held out for validation.
    Training,
    /// Every pattern once (at gridsize 2, every pattern as a seed), nothing held out: the test score
    /// covers the whole file whatever n_groups the training drew.
    Test,
}

/// Group a dataset as the model needs, for its role.
pub(super) fn load(path: &Path, config: &TrainConfig, role: Role) -> Result<Samples, TrainError> {
    let dataset = Dataset::open(path)?;
    if dataset.n != config.model.n {
        return Err(TrainError::from(format!(
            "{}: patterns are {n}x{n}, but the model is built for N = {}",
            path.display(),
            config.model.n,
            n = dataset.n
        )));
    }
    // The reference feeds the model the start coordinates (TF-LOADER-COORDS-001).
    let groups = group(
        &dataset.xcoords_start(),
        &dataset.ycoords_start(),
        &GroupingConfig {
            gridsize: config.model.gridsize,
            n_groups: match role {
                Role::Training => config.n_groups,
                Role::Test => None,
            },
            neighbor_count: 4,
            enable_oversampling: false,
            seed: config.seed,
        },
    )?;
    let (groups, objects) = match config.model.kind {
        ModelKind::Pinn => (groups, None),
        ModelKind::Baseline => (groups.flattened(), Some(label_sources(&dataset)?)),
    };
    // Keras splits at floor(n·(1 − 0.05)): the rest, from the end, is held out.
    let total = groups.len();
    let train = if role == Role::Training {
        ((total as f64) * (1.0 - VALIDATION_FRACTION)).floor() as usize
    } else {
        total
    };
    Ok(Samples {
        alpha: dataset.normalization() as f32,
        train: Arc::new(groups.rows(0..train)),
        validation: Arc::new(groups.rows(train..total)),
        dataset: Arc::new(dataset),
        objects,
    })
}

/// Each shard's object to cut labels from, when the shard has no Y; an error naming a shard with
/// neither.
fn label_sources(dataset: &Dataset) -> Result<Vec<Option<ComplexImage>>, TrainError> {
    dataset
        .shards
        .iter()
        .map(|shard| match (&shard.patches, &shard.object) {
            (Some(_), _) => Ok(None),
            (None, Some(object)) => {
                check_patches_fit(
                    &shard.xcoords,
                    &shard.ycoords,
                    shard.n,
                    object.rows,
                    object.cols,
                )
                .map_err(|e| {
                    format!(
                        "{}: the baseline's labels are cut from objectGuess, but {e}",
                        shard.path.display()
                    )
                })?;
                Ok(Some(object.clone()))
            }
            (None, None) => Err(TrainError::from(format!(
                "{}: the baseline trains on ground-truth patches: the file needs 'Y' (one N x N \
                 complex patch per pattern) or an 'objectGuess' to cut them from",
                shard.path.display()
            ))),
        })
        .collect()
}

/// Amplitude and phase of the ground-truth patch of each pattern in `indices`: the shard's Y, or
/// the patch cut from its object at the pattern's position.
fn labels(
    dataset: &Dataset,
    objects: &[Option<ComplexImage>],
    indices: &[usize],
) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
    let n = dataset.n;
    let mut patch = vec![Complex32::default(); n * n];
    let (mut amplitude, mut phase) = (Vec::new(), Vec::new());
    for &i in indices {
        let (s, k) = dataset.locate(i);
        let shard = &dataset.shards[s];
        match (&shard.patches, &objects[s]) {
            (Some(y), _) => y.read_c64(k * n * n, &mut patch)?,
            (None, Some(object)) => {
                extract_patch(object, shard.xcoords[k], shard.ycoords[k], n, &mut patch)
            }
            (None, None) => unreachable!("label_sources refused the shard"),
        }
        amplitude.extend(patch.iter().map(|v| v.norm()));
        phase.extend(patch.iter().map(|v| v.arg()));
    }
    Ok((amplitude, phase))
}

/// The mean loss over every group, streamed in order.
pub(super) fn mean_loss_over<B: Backend>(
    b: &B,
    trainer: &Trainer<B::Storage>,
    samples: &Samples,
    groups: &Arc<Groups>,
    batch_size: usize,
    s: f32,
) -> Result<f64, TrainError> {
    let mut sum = 0.0;
    for batch in samples.stream(groups, batch_size, false, 0, 0)? {
        let batch = batch?;
        sum += trainer.loss(b, &samples.upload(b, &batch, s)?)? * batch.groups as f64;
    }
    Ok(sum / groups.len().max(1) as f64)
}
