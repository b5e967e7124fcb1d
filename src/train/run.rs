//! `ptycho train`: the PINN or the supervised baseline trained on a dataset (physics-and-model.md §8):
//! grouping, normalisation, the last 5% of the samples held out for validation, batches reshuffled
//! every epoch with the seed, ReduceLROnPlateau on the validation loss (factor 0.5, patience 2, min
//! 1e-4, min_delta 1e-4), early stopping on the training loss (patience 3), `history.json`, the bundle,
//! and the loss on a separate test file when one is given.
//!
//! The baseline's samples are single patterns: groups drawn at the gridsize are flattened (as the
//! reference's run_baseline does), its input is X without the intensity scale, and its labels are the
//! amplitude and phase of the ground-truth patch: the file's `Y` when it has one per pattern, else the
//! patch cut from `objectGuess` at the pattern's position as `ptycho simulate` cuts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ptycho_kernels::ops::optim::AdamConfig;
use ptycho_kernels::Backend;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Batch, Targets, Trainer};
use crate::data::dataset::{intensity_scale, Dataset};
use crate::data::grouping::{group, GroupingConfig, Groups};
use crate::data::stream::{Batch as StreamBatch, BatchStream, StreamConfig};
use crate::model::network::glorot_init;
use crate::model::{ModelConfig, ModelKind};
use crate::persist::bundle::{self, Bundle, SavedBundle};
use crate::persist::digest::sha256_file;
use crate::persist::weights::NamedTensor;
use crate::physics::forward::{MAX_POSITION_JITTER, OFFSET};
use crate::physics::overlap::write_json;
use crate::physics::probe::{normalize, DEFAULT_PROBE_SCALE};
use crate::physics::simulate::{extract_patch, Image};
use crate::train::infer::model_config;
use ptycho_kernels::Complex32;

/// The fraction of groups held out, from the end, as Keras' validation_split.
const VALIDATION_FRACTION: f64 = 0.05;
const PLATEAU_FACTOR: f64 = 0.5;
const PLATEAU_PATIENCE: usize = 2;
const PLATEAU_MIN_LR: f64 = 1e-4;
const PLATEAU_MIN_DELTA: f64 = 1e-4;
const EARLY_STOP_PATIENCE: usize = 3;

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub train_data: PathBuf,
    /// Scored once after training (the loss of every test sample).
    pub test_data: Option<PathBuf>,
    pub output_dir: PathBuf,
    pub model: ModelConfig,
    /// Groups (samples) drawn from the data; None: every pattern (at gridsize 2, every pattern as a
    /// seed). The reference draws 512, but the reconstructions improve with every pattern trained on
    /// (bench/results/quality/).
    pub n_groups: Option<usize>,
    pub nepochs: usize,
    pub batch_size: usize,
    pub nphotons: f64,
    pub learning_rate: f64,
    pub seed: u64,
    /// Save the bundle every this many epochs (and always at the end); 0: only at the end.
    pub checkpoint_every: usize,
    /// Continue from the bundle in this folder: weights, optimizer state, schedule and history.
    pub resume: Option<PathBuf>,
}

/// The schedule's state and the history so far, saved in params.json ("training_state") so that a
/// resumed run continues exactly where the saved one stopped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Schedule {
    learning_rate: f64,
    /// Best monitored (validation) loss and epochs since it improved by more than min_delta.
    best_monitored: Option<f64>,
    since_monitored: usize,
    best_train: Option<f64>,
    since_train: usize,
    epochs: Vec<EpochRecord>,
}

impl Schedule {
    /// After an epoch: the plateau rule (a new learning rate when it changes) and whether to stop.
    fn update(&mut self, monitored: f64, train_loss: f64) -> (Option<f64>, bool) {
        let mut new_rate = None;
        if self
            .best_monitored
            .is_none_or(|b| monitored < b - PLATEAU_MIN_DELTA)
        {
            self.best_monitored = Some(monitored);
            self.since_monitored = 0;
        } else {
            self.since_monitored += 1;
            if self.since_monitored >= PLATEAU_PATIENCE && self.learning_rate > PLATEAU_MIN_LR {
                self.learning_rate = (self.learning_rate * PLATEAU_FACTOR).max(PLATEAU_MIN_LR);
                self.since_monitored = 0;
                new_rate = Some(self.learning_rate);
            }
        }
        let stop = if self.best_train.is_none_or(|b| train_loss < b) {
            self.best_train = Some(train_loss);
            self.since_train = 0;
            false
        } else {
            self.since_train += 1;
            self.since_train >= EARLY_STOP_PATIENCE
        };
        (new_rate, stop)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct TrainReport {
    pub device: String,
    pub groups: usize,
    pub validation_groups: usize,
    pub epochs: Vec<EpochRecord>,
    /// The mean loss on --test-data after training.
    pub test_loss: Option<f64>,
    pub stopped_early: bool,
    pub bundle: SavedBundle,
    pub samples_per_s: f64,
}

/// A dataset grouped for the model: the training and validation groups (the baseline's flattened to
/// single patterns), streamed from the mapped shards batch by batch; and, for the baseline, what the
/// labels are cut from.
struct Samples {
    dataset: Arc<Dataset>,
    train: Arc<Groups>,
    validation: Arc<Groups>,
    alpha: f32,
    /// The baseline: each shard's object (None when the shard carries Y instead).
    objects: Option<Vec<Option<Image>>>,
}

impl Samples {
    fn stream(
        &self,
        groups: &Arc<Groups>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        epoch: usize,
    ) -> Result<BatchStream, String> {
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
        .map_err(|e| e.to_string())
    }

    /// A streamed batch on the backend: X, and the PINN's offsets and targets s·X or the
    /// baseline's labels.
    fn upload<B: Backend>(
        &self,
        b: &B,
        batch: &StreamBatch,
        s: f32,
    ) -> Result<Batch<B::Storage>, String> {
        let (c, n) = (batch.c, batch.n);
        let upload = |shape: &[usize], v: &[f32]| b.upload_f32(shape, v).map_err(|e| e.to_string());
        let x = upload(&[batch.groups, c, n, n], &batch.diffraction)?;
        let targets = match &self.objects {
            // The target s·X is scaled on the device: one upload per batch, not two.
            None => Targets::Physics {
                relative: upload(&[batch.groups * c, 2], &batch.relative_offsets)?,
                amplitude: b.scale(&x, s).map_err(|e| e.to_string())?,
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

/// Group a dataset as the model needs and, with `hold_out`, split off the last 5% for validation.
fn load(path: &Path, config: &TrainConfig, hold_out: bool) -> Result<Samples, String> {
    let dataset = Dataset::open(path).map_err(|e| e.to_string())?;
    if dataset.n != config.model.n {
        return Err(format!(
            "{}: patterns are {n}x{n}, but the model is built for N = {}",
            path.display(),
            config.model.n,
            n = dataset.n
        ));
    }
    // The reference feeds the model the start coordinates (TF-LOADER-COORDS-001).
    let groups = group(
        &dataset.xcoords_start(),
        &dataset.ycoords_start(),
        &GroupingConfig {
            gridsize: config.model.gridsize,
            n_groups: config.n_groups,
            neighbor_count: 4,
            enable_oversampling: false,
            seed: config.seed,
        },
    )
    .map_err(|e| e.to_string())?;
    let (groups, objects) = match config.model.kind {
        ModelKind::Pinn => (groups, None),
        ModelKind::Baseline => (groups.flattened(), Some(label_sources(&dataset)?)),
    };
    // Keras splits at floor(n·(1 − 0.05)): the rest, from the end, is held out.
    let total = groups.len();
    let train = if hold_out {
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
fn label_sources(dataset: &Dataset) -> Result<Vec<Option<Image>>, String> {
    dataset
        .shards
        .iter()
        .map(|shard| match (&shard.patches, &shard.object) {
            (Some(_), _) => Ok(None),
            (None, Some((rows, cols, data))) => Ok(Some(Image {
                rows: *rows,
                cols: *cols,
                data: data.clone(),
            })),
            (None, None) => Err(format!(
                "{}: the baseline trains on ground-truth patches: the file needs 'Y' (one N x N \
                 complex patch per pattern) or an 'objectGuess' to cut them from",
                shard.path.display()
            )),
        })
        .collect()
}

/// Amplitude and phase of the ground-truth patch of each pattern in `indices`: the shard's Y, or
/// the patch cut from its object at the pattern's position.
fn labels(
    dataset: &Dataset,
    objects: &[Option<Image>],
    indices: &[usize],
) -> Result<(Vec<f32>, Vec<f32>), String> {
    let n = dataset.n;
    let mut patch = vec![Complex32::default(); n * n];
    let (mut amplitude, mut phase) = (Vec::new(), Vec::new());
    for &i in indices {
        let (s, k) = dataset.locate(i);
        let shard = &dataset.shards[s];
        match (&shard.patches, &objects[s]) {
            (Some(y), _) => y
                .read_c64(k * n * n, &mut patch)
                .map_err(|e| e.to_string())?,
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
fn mean_loss_over<B: Backend>(
    b: &B,
    trainer: &Trainer<B::Storage>,
    samples: &Samples,
    groups: &Arc<Groups>,
    batch_size: usize,
    s: f32,
) -> Result<f64, String> {
    let mut sum = 0.0;
    for batch in samples.stream(groups, batch_size, false, 0, 0)? {
        let batch = batch.map_err(|e| e.to_string())?;
        sum += trainer.loss(b, &samples.upload(b, &batch, s)?)? * batch.groups as f64;
    }
    Ok(sum / groups.len().max(1) as f64)
}

/// What a training run reports while it works.
pub enum Progress<'a> {
    /// A step finished: (epoch, step, steps in the epoch, the batch's loss).
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
    },
    /// A line for the log: each finished epoch, early stopping.
    Line(&'a str),
}

/// Train; `progress` receives every step and a line per epoch.
pub fn train<B: Backend>(
    b: &B,
    config: &TrainConfig,
    mut progress: impl FnMut(Progress),
) -> Result<TrainReport, String> {
    config.model.validate()?;
    if config.batch_size == 0 || config.nepochs == 0 || config.n_groups == Some(0) {
        return Err("batch size, epochs and n_groups must be at least 1".into());
    }
    let samples = load(&config.train_data, config, true)?;
    let dataset = &samples.dataset;
    let n = dataset.n;
    let (train_groups, validation) = (samples.train.len(), samples.validation.len());
    if train_groups == 0 {
        return Err(format!(
            "{} groups leave nothing to train on",
            train_groups + validation
        ));
    }
    let s = intensity_scale(config.nphotons, n) as f32;
    let (weights, probe, optimizer, mut schedule) = match &config.resume {
        None => (
            glorot_init(&config.model, config.seed)?,
            normalize(dataset.probe(), n, DEFAULT_PROBE_SCALE).map_err(|e| e.to_string())?,
            None,
            Schedule {
                learning_rate: config.learning_rate,
                ..Schedule::default()
            },
        ),
        Some(dir) => resume_from(dir, config)?,
    };
    let mut adam = AdamConfig {
        learning_rate: schedule.learning_rate,
        ..AdamConfig::default()
    };
    let mut trainer = match config.model.kind {
        ModelKind::Pinn => Trainer::pinn(b, &config.model, &weights, &probe, s, adam)?,
        ModelKind::Baseline => Trainer::baseline(b, &config.model, &weights, adam)?,
    };
    if let Some(state) = &optimizer {
        trainer.restore_optimizer(b, state)?;
    }
    let digests: Vec<serde_json::Value> = dataset
        .shards
        .iter()
        .map(|shard| {
            let (sha, size) = sha256_file(&shard.path).map_err(|e| e.to_string())?;
            Ok(json!({ "path": shard.path.display().to_string(), "sha256": sha, "size_bytes": size }))
        })
        .collect::<Result<_, String>>()?;
    let params = json!({
        "N": n, "gridsize": config.model.gridsize, "model_type": config.model.kind.name(),
        "n_filters_scale": config.model.n_filters_scale, "probe_big": config.model.probe_big,
        "amp_activation": config.model.amp_activation, "nphotons": config.nphotons,
        "intensity_scale": s, "offset": OFFSET, "max_position_jitter": MAX_POSITION_JITTER,
        "probe_scale": DEFAULT_PROBE_SCALE, "object_big": true, "pad_object": true,
        "n_groups": train_groups + validation, "batch_size": config.batch_size, "seed": config.seed,
        "train_data": digests, "backend": "wgpu",
    });
    let params = params.as_object().cloned().expect("an object");
    std::fs::create_dir_all(&config.output_dir)
        .map_err(|e| format!("{}: {e}", config.output_dir.display()))?;

    let save =
        |trainer: &Trainer<B::Storage>, schedule: &Schedule| -> Result<SavedBundle, String> {
            let mut params = params.clone();
            params.insert(
                "training_state".into(),
                serde_json::to_value(schedule).expect("plain data"),
            );
            let bundle = Bundle {
                params,
                weights: trainer.network.download(b).map_err(|e| e.to_string())?,
                probe: probe.clone(),
                optimizer: Some(trainer.optimizer_state(b).map_err(|e| e.to_string())?),
            };
            bundle::save(&config.output_dir, &bundle).map_err(|e| e.to_string())
        };

    let mut stopped_early = false;
    let mut saved = None;
    let started = Instant::now();
    let mut samples_seen = 0usize;
    let first_epoch = schedule.epochs.len() + 1;
    for epoch in first_epoch..=config.nepochs {
        let epoch_start = Instant::now();
        let mut weighted = 0.0;
        let steps = train_groups.div_ceil(config.batch_size);
        // Each step is recorded whole and submitted as the read-back of its loss starts; that loss
        // is taken after the next step has been recorded, so the host never waits for the step it
        // has just submitted.
        let mut in_flight: Option<(usize, usize, B::PendingRead)> = None;
        let mut finish = |(step, size, pending): (usize, usize, B::PendingRead)| {
            let loss = b.finish_read_f32(pending).map_err(|e| e.to_string())?[0] as f64;
            if !loss.is_finite() {
                return Err(format!("epoch {epoch}, step {step}: the loss is {loss}"));
            }
            weighted += loss * size as f64;
            progress(Progress::Step {
                epoch,
                step,
                steps,
                loss,
            });
            Ok(())
        };
        let stream = samples.stream(&samples.train, config.batch_size, true, config.seed, epoch)?;
        for (step, batch) in stream.enumerate() {
            let batch = batch.map_err(|e| e.to_string())?;
            let loss = trainer
                .record_step(b, &samples.upload(b, &batch, s)?)
                .map_err(|e| format!("epoch {epoch}, step {}: {e}", step + 1))?;
            let pending = b.start_read_f32(&loss).map_err(|e| e.to_string())?;
            if let Some(previous) = in_flight.replace((step + 1, batch.groups, pending)) {
                finish(previous)?;
            }
            samples_seen += batch.groups;
        }
        if let Some(last) = in_flight.take() {
            finish(last)?;
        }
        let train_loss = weighted / train_groups as f64;
        let val_loss = if validation > 0 {
            Some(mean_loss_over(
                b,
                &trainer,
                &samples,
                &samples.validation,
                config.batch_size,
                s,
            )?)
        } else {
            None
        };
        let record = EpochRecord {
            epoch,
            train_loss,
            val_loss,
            learning_rate: adam.learning_rate,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        progress(Progress::Line(&format!(
            "epoch {epoch}/{}: loss {train_loss:.6e}{} lr {:.2e} ({:.1} s, {:.1} samples/s)",
            config.nepochs,
            val_loss.map_or(String::new(), |v| format!(" val_loss {v:.6e}")),
            adam.learning_rate,
            record.seconds,
            train_groups as f64 / record.seconds.max(1e-9)
        )));
        schedule.epochs.push(record);
        write_json(
            &config.output_dir.join("history.json"),
            &history(&schedule.epochs, None),
        )
        .map_err(|e| e.to_string())?;
        // ReduceLROnPlateau on the validation loss (the training loss without a validation split),
        // early stopping on the training loss.
        let (new_rate, stop) = schedule.update(val_loss.unwrap_or(train_loss), train_loss);
        if let Some(rate) = new_rate {
            adam.learning_rate = rate;
            trainer.set_adam(adam);
        }
        if config.checkpoint_every > 0 && epoch.is_multiple_of(config.checkpoint_every) {
            saved = Some((epoch, save(&trainer, &schedule)?));
        }
        if stop {
            stopped_early = true;
            progress(Progress::Line(&format!(
                "early stop: the training loss has not improved for {EARLY_STOP_PATIENCE} epochs"
            )));
            break;
        }
    }
    let test_loss = match &config.test_data {
        Some(path) => {
            let test = load(path, config, false)?;
            let loss = mean_loss_over(b, &trainer, &test, &test.train, config.batch_size, s)?;
            progress(Progress::Line(&format!(
                "test loss {loss:.6e} over {} samples of {}",
                test.train.len(),
                path.display()
            )));
            write_json(
                &config.output_dir.join("history.json"),
                &history(&schedule.epochs, Some(loss)),
            )
            .map_err(|e| e.to_string())?;
            Some(loss)
        }
        None => None,
    };
    let last_epoch = schedule.epochs.last().map_or(0, |e| e.epoch);
    let bundle = match saved {
        Some((epoch, bundle)) if epoch == last_epoch => bundle,
        _ => save(&trainer, &schedule)?,
    };
    Ok(TrainReport {
        device: b.describe(),
        groups: train_groups,
        validation_groups: validation,
        samples_per_s: samples_seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
        epochs: schedule.epochs,
        test_loss,
        stopped_early,
        bundle,
    })
}

/// Weights, probe, optimizer state and schedule from a saved bundle whose model matches `config`.
type Resumed = (
    Vec<NamedTensor>,
    Vec<Complex32>,
    Option<Vec<NamedTensor>>,
    Schedule,
);

fn resume_from(dir: &std::path::Path, config: &TrainConfig) -> Result<Resumed, String> {
    let saved = bundle::load(dir, None).map_err(|e| e.to_string())?;
    let model = model_config(&saved.params)?;
    let m = &config.model;
    if model != *m {
        return Err(format!(
            "{}: the bundle's model ({model:?}) differs from the one asked for ({m:?})",
            dir.display(),
        ));
    }
    let schedule: Schedule = saved
        .params
        .get("training_state")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("{}: training_state: {e}", dir.display()))?
        .ok_or_else(|| {
            format!(
                "{}: the bundle has no training state to resume",
                dir.display()
            )
        })?;
    if saved.optimizer.is_none() {
        return Err(format!(
            "{}: the bundle has no optimizer state to resume",
            dir.display()
        ));
    }
    Ok((saved.weights, saved.probe, saved.optimizer, schedule))
}

fn history(epochs: &[EpochRecord], test_loss: Option<f64>) -> serde_json::Value {
    json!({
        "test_loss": test_loss,
        "train_loss": epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
        "loss": epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
        "val_loss": epochs.iter().map(|e| e.val_loss).collect::<Vec<_>>(),
        "learning_rate": epochs.iter().map(|e| e.learning_rate).collect::<Vec<_>>(),
        "seconds": epochs.iter().map(|e| e.seconds).collect::<Vec<_>>(),
        "epochs": epochs,
    })
}
