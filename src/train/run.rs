//! `ptycho train`: the PINN or the supervised baseline trained on a dataset (physics-and-model.md §8):
//! grouping, normalisation, the last 5% of the samples held out for validation, batches reshuffled
//! every epoch with the seed, ReduceLROnPlateau on the validation loss (factor 0.5, patience 2, min
//! 1e-4, min_delta 1e-4), early stopping on the training loss (patience 3), `history.json`, the bundle,
//! and the loss on a separate test file when one is given.
//!
//! Nothing a run has learnt is lost: the output folder is locked for the whole run and an existing
//! bundle is never replaced unless asked; every input (training and test data, flags) is checked
//! before the first step; the bundle is saved as training goes (by default after an epoch when a
//! minute has passed since the last save) and always before the test data are scored; `history.json`
//! is written with each bundle, so the two always describe the same epochs; and weights that are no
//! longer finite stop the run, keeping the last good bundle.
//!
//! The baseline's samples are single patterns: groups drawn at the gridsize are flattened (as the
//! reference's run_baseline does), its input is X without the intensity scale, and its labels are the
//! amplitude and phase of the ground-truth patch: the file's `Y` when it has one per pattern, else the
//! patch cut from `objectGuess` at the pattern's position as `ptycho simulate` cuts it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ptycho_kernels::ops::optim::AdamConfig;
use ptycho_kernels::Backend;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::samples::{load, mean_loss_over, Role};
use super::{TrainError, Trainer};
use crate::data::dataset::{intensity_scale, Dataset};
use crate::io::atomic::write_json;
use crate::model::network::glorot_init;
use crate::model::params::{
    bundle_params, model_config, nphotons as recorded_nphotons, TrainingRecord,
};
use crate::model::{ModelConfig, ModelKind};
use crate::persist::bundle::{self, Bundle, SavedBundle, BUNDLE_FILE};
use crate::persist::digest::sha256_file;
use crate::persist::output_dir::OutputDir;
use crate::persist::weights::NamedTensor;
use crate::physics::probe::{normalize, DEFAULT_PROBE_SCALE};
use ptycho_kernels::Complex32;

/// The fraction of groups held out, from the end, as Keras' validation_split.
pub(super) const VALIDATION_FRACTION: f64 = 0.05;
const PLATEAU_FACTOR: f64 = 0.5;
const PLATEAU_PATIENCE: usize = 2;
const PLATEAU_MIN_LR: f64 = 1e-4;
const PLATEAU_MIN_DELTA: f64 = 1e-4;
const EARLY_STOP_PATIENCE: usize = 3;
/// The reference's default dose, used when neither the flags nor the data say otherwise.
pub const DEFAULT_NPHOTONS: f64 = 1e9;
pub const DEFAULT_LEARNING_RATE: f64 = 1e-3;
/// Without --checkpoint-every, the bundle is saved after an epoch once this long has passed since
/// the last save: at most about a minute of work is lost to a crash, and fast epochs (a GPU) do not
/// spend their time compressing bundles.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

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
    /// Photons per pattern; None: the bundle's when resuming, else the dose the data's `_metadata`
    /// records, else DEFAULT_NPHOTONS.
    pub nphotons: Option<f64>,
    /// None: DEFAULT_LEARNING_RATE, or the saved schedule's when resuming.
    pub learning_rate: Option<f64>,
    pub seed: u64,
    /// Save the bundle every this many epochs (and always at the end); Some(0): only at the end;
    /// None: after an epoch when CHECKPOINT_INTERVAL has passed since the last save.
    pub checkpoint_every: Option<usize>,
    /// Continue from the bundle in this folder: weights, optimizer state, schedule and history.
    pub resume: Option<PathBuf>,
    /// Replace a bundle already in the output folder (otherwise refused, unless resuming it).
    pub overwrite: bool,
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

/// The last bundle saved by this run: its epoch and where it is.
struct LastSaved {
    epoch: usize,
    bundle: SavedBundle,
}

impl LastSaved {
    /// What a failed run leaves behind, for its error message.
    fn describe(last: &Option<LastSaved>, out: &Path) -> String {
        match last {
            Some(l) => format!(
                "the last good bundle is {} (after epoch {}, sha256 {})",
                l.bundle.path.display(),
                l.epoch,
                l.bundle.sha256
            ),
            None if out.join(BUNDLE_FILE).exists() => format!(
                "{} is as it was before this run",
                out.join(BUNDLE_FILE).display()
            ),
            None => format!("this run saved no bundle in {}", out.display()),
        }
    }
}

/// Train; `progress` receives every step and a line per epoch (the lines also go to `train.log` in
/// the output folder).
pub fn train<B: Backend>(
    b: &B,
    config: &TrainConfig,
    progress: impl FnMut(Progress),
) -> Result<TrainReport, TrainError> {
    config.model.validate()?;
    if config.batch_size == 0 || config.nepochs == 0 || config.n_groups == Some(0) {
        return Err("batch size, epochs and n_groups must be at least 1".into());
    }
    if let Some(v) = config.nphotons.filter(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(TrainError::from(format!(
            "nphotons must be a positive number, got {v}"
        )));
    }
    if let Some(v) = config
        .learning_rate
        .filter(|v| !(v.is_finite() && *v > 0.0))
    {
        return Err(TrainError::from(format!(
            "the learning rate must be a positive number, got {v}"
        )));
    }
    let out = OutputDir::lock(&config.output_dir)?;
    let resuming_here = config
        .resume
        .as_deref()
        .is_some_and(|dir| same_folder(dir, out.path()));
    if !resuming_here {
        out.refuse_existing_or(
            &[BUNDLE_FILE],
            config.overwrite,
            &format!(
                "pass --overwrite to replace it, --resume {} to continue its training",
                out.path().display()
            ),
        )?;
    }
    let mut log = TrainLog::open(&out, resuming_here)?;
    let result = train_into(b, config, &out, &mut log, progress);
    if let Err(e) = &result {
        log.line(&format!("error: {e}"));
    }
    result
}

/// `train` once the output folder is locked and the log open.
fn train_into<B: Backend>(
    b: &B,
    config: &TrainConfig,
    out: &OutputDir,
    log: &mut TrainLog,
    mut progress: impl FnMut(Progress),
) -> Result<TrainReport, TrainError> {
    let mut say = |progress: &mut dyn FnMut(Progress), line: &str| {
        log.line(line);
        progress(Progress::Line(line));
    };

    // Every input is read and checked before the first step: a typo must not cost a night's run.
    let samples = load(&config.train_data, config, Role::Training)?;
    let dataset = &samples.dataset;
    let n = dataset.n;
    say(
        &mut progress,
        &format!("training data: {}", files_used(dataset)),
    );
    let test = match &config.test_data {
        Some(path) => {
            let test = load(path, config, Role::Test)
                .map_err(|e| TrainError::from(format!("--test-data: {e}")))?;
            say(
                &mut progress,
                &format!("test data: {}", files_used(&test.dataset)),
            );
            Some((path, test))
        }
        None => None,
    };
    let (train_groups, validation) = (samples.train.len(), samples.validation.len());
    if train_groups == 0 {
        return Err(TrainError::from(format!(
            "{} groups leave nothing to train on",
            train_groups + validation
        )));
    }
    let resumed = config
        .resume
        .as_deref()
        .map(|dir| resume_from(dir, config))
        .transpose()?;
    let nphotons = choose_nphotons(config, dataset, resumed.as_ref(), &mut |line| {
        say(&mut progress, line)
    })?;
    let s = intensity_scale(nphotons, n) as f32;
    let (weights, probe, optimizer, mut schedule) = match resumed {
        None => (
            glorot_init(&config.model, config.seed)?,
            normalize(dataset.probe(), n, DEFAULT_PROBE_SCALE)?,
            None,
            Schedule {
                learning_rate: config.learning_rate.unwrap_or(DEFAULT_LEARNING_RATE),
                ..Schedule::default()
            },
        ),
        Some(resumed) => {
            let mut schedule = resumed.schedule;
            if let Some(rate) = config.learning_rate {
                if rate != schedule.learning_rate {
                    say(
                        &mut progress,
                        &format!(
                            "learning rate {rate:.2e} from --learning-rate (the saved schedule \
                             was at {:.2e})",
                            schedule.learning_rate
                        ),
                    );
                    schedule.learning_rate = rate;
                }
            }
            (
                resumed.weights,
                resumed.probe,
                Some(resumed.optimizer),
                schedule,
            )
        }
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
            let (sha, size) =
                sha256_file(&shard.path).map_err(|e| TrainError::io(&shard.path, e))?;
            Ok(json!({ "path": shard.path.display().to_string(), "sha256": sha, "size_bytes": size }))
        })
        .collect::<Result<_, TrainError>>()?;
    let params = bundle_params(
        &config.model,
        &TrainingRecord {
            nphotons,
            intensity_scale: s,
            n_groups: train_groups + validation,
            batch_size: config.batch_size,
            seed: config.seed,
            train_data: digests,
        },
    );

    // The bundle and the history that describes it, written together; weights that are no longer
    // finite are refused by bundle::save, so a diverged run never replaces a good bundle.
    // `weights` are the trainer's, already downloaded (each epoch downloads them to check them).
    let checkpoint = |trainer: &Trainer<B::Storage>,
                      weights: Vec<NamedTensor>,
                      schedule: &Schedule|
     -> Result<SavedBundle, TrainError> {
        let mut params = params.clone();
        params.insert(
            "training_state".into(),
            serde_json::to_value(schedule).expect("plain data"),
        );
        let bundle = Bundle {
            params,
            weights,
            probe: probe.clone(),
            optimizer: Some(trainer.optimizer_state(b)?),
        };
        let saved = bundle::save(out.path(), &bundle)?;
        let path = out.join("history.json");
        write_json(&path, &history(&schedule.epochs, None))
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(saved)
    };

    let mut stopped_early = false;
    let mut last_saved: Option<LastSaved> = None;
    let mut last_save_time = Instant::now();
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
            let loss = b.finish_read_f32(pending)?[0] as f64;
            if !loss.is_finite() {
                return Err(TrainError::from(format!(
                    "epoch {epoch}, step {step}: the loss is {loss}"
                )));
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
        let run_epoch = || -> Result<(), TrainError> {
            for (step, batch) in stream.enumerate() {
                let batch = batch?;
                let loss = trainer
                    .record_step(b, &samples.upload(b, &batch, s)?)
                    .map_err(|e| {
                        TrainError::from(format!("epoch {epoch}, step {}: {e}", step + 1))
                    })?;
                let pending = b.start_read_f32(&loss)?;
                if let Some(previous) = in_flight.replace((step + 1, batch.groups, pending)) {
                    finish(previous)?;
                }
                samples_seen += batch.groups;
            }
            if let Some(last) = in_flight.take() {
                finish(last)?;
            }
            Ok(())
        };
        run_epoch().map_err(|e| {
            format!(
                "{e}: training diverged; {}",
                LastSaved::describe(&last_saved, out.path())
            )
        })?;
        // A diverged step can leave the loss finite (a saturated sigmoid) while the weights are not:
        // look at them after every epoch, not only when saving.
        let weights = trainer.network.download(b)?;
        let bad = bundle::non_finite_tensors(&weights);
        if !bad.is_empty() {
            return Err(TrainError::from(format!(
                "epoch {epoch}: training diverged, {} of {} weight tensors hold non-finite values \
                 ({}{}); try a lower --learning-rate; {}",
                bad.len(),
                weights.len(),
                bad[..bad.len().min(3)].join(", "),
                if bad.len() > 3 { ", ..." } else { "" },
                LastSaved::describe(&last_saved, out.path())
            )));
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
        say(
            &mut progress,
            &format!(
                "epoch {epoch}/{}: loss {train_loss:.6e}{} lr {:.2e} ({:.1} s, {:.1} samples/s)",
                config.nepochs,
                val_loss.map_or(String::new(), |v| format!(" val_loss {v:.6e}")),
                adam.learning_rate,
                record.seconds,
                train_groups as f64 / record.seconds.max(1e-9)
            ),
        );
        schedule.epochs.push(record);
        // ReduceLROnPlateau on the validation loss (the training loss without a validation split),
        // early stopping on the training loss.
        let (new_rate, stop) = schedule.update(val_loss.unwrap_or(train_loss), train_loss);
        if let Some(rate) = new_rate {
            adam.learning_rate = rate;
            trainer.set_adam(adam);
        }
        stopped_early = stop;
        let due = match config.checkpoint_every {
            None => last_save_time.elapsed() >= CHECKPOINT_INTERVAL,
            Some(0) => false,
            Some(k) => epoch.is_multiple_of(k),
        };
        if due || stop || epoch == config.nepochs {
            let bundle = checkpoint(&trainer, weights, &schedule).map_err(|e| {
                format!(
                    "saving the bundle after epoch {epoch}: {e}; {}",
                    LastSaved::describe(&last_saved, out.path())
                )
            })?;
            last_save_time = Instant::now();
            last_saved = Some(LastSaved { epoch, bundle });
        }
        if stop {
            say(
                &mut progress,
                &format!(
                    "early stop: the training loss has not improved for {EARLY_STOP_PATIENCE} epochs"
                ),
            );
            break;
        }
    }
    // A resumed run that had already reached --nepochs trains nothing and saves its bundle again.
    let bundle = match last_saved {
        Some(saved) => saved.bundle,
        None => checkpoint(&trainer, trainer.network.download(b)?, &schedule)?,
    };
    say(&mut progress, &format!("saved {}", bundle.path.display()));
    let test_loss = match test {
        Some((path, test)) => {
            let loss = mean_loss_over(b, &trainer, &test, &test.train, config.batch_size, s)?;
            say(
                &mut progress,
                &format!(
                    "test loss {loss:.6e} over {} samples of {}",
                    test.train.len(),
                    path.display()
                ),
            );
            let path = out.join("history.json");
            write_json(&path, &history(&schedule.epochs, Some(loss)))
                .map_err(|e| TrainError::io(&path, e))?;
            Some(loss)
        }
        None => None,
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

/// `train.log` in the output folder: every line the run reports, appended when resuming the
/// folder's own bundle, else started afresh.
struct TrainLog(Option<std::fs::File>);

impl TrainLog {
    fn open(out: &OutputDir, append: bool) -> Result<Self, TrainError> {
        let path = out.join("train.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self(Some(file)))
    }

    /// A log that cannot be written must not stop training: the first failure is reported on
    /// stderr and the log is closed.
    fn line(&mut self, line: &str) {
        if let Some(file) = &mut self.0 {
            if let Err(e) = writeln!(file, "{line}") {
                eprintln!("warning: train.log: {e}; the log stops here, training goes on");
                self.0 = None;
            }
        }
    }
}

/// "2 files (a.npz, b.npz), 1200 patterns" for the log.
fn files_used(dataset: &Dataset) -> String {
    let names: Vec<String> = dataset
        .shards
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    format!(
        "{} file{} ({}), {} patterns",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        dataset.m
    )
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The dose the run trains at, and a line saying where it came from: --nphotons, else the resumed
/// bundle's, else the data's `_metadata`, else the reference's default. A resumed bundle's dose is
/// part of its trained state, so another one is refused.
fn choose_nphotons(
    config: &TrainConfig,
    dataset: &Dataset,
    resumed: Option<&Resumed>,
    say: &mut dyn FnMut(&str),
) -> Result<f64, TrainError> {
    let recorded = dataset.recorded_nphotons()?;
    let (value, source) = match (config.nphotons, resumed.map(|r| r.nphotons)) {
        (Some(given), Some(saved)) if given != saved => {
            return Err(TrainError::from(format!(
                "--nphotons {given:e} contradicts the bundle being resumed, trained at {saved:e} \
                 (its intensity scale depends on it); drop --nphotons to continue at {saved:e}"
            )))
        }
        (Some(given), _) => (given, "--nphotons".to_string()),
        (None, Some(saved)) => (saved, "the resumed bundle".to_string()),
        (None, None) => match recorded {
            Some(r) => (r, "the dose recorded in the data's _metadata".to_string()),
            None => (
                DEFAULT_NPHOTONS,
                "the reference's default; the data record no dose, pass --nphotons".to_string(),
            ),
        },
    };
    say(&format!("nphotons {value:e} ({source})"));
    if let Some(r) = recorded.filter(|r| *r != value) {
        say(&format!(
            "warning: nphotons {value:e} differs from the dose the data's _metadata records ({r:e})"
        ));
    }
    Ok(value)
}

/// What a saved bundle gives a resumed run.
struct Resumed {
    weights: Vec<NamedTensor>,
    probe: Vec<Complex32>,
    optimizer: Vec<NamedTensor>,
    schedule: Schedule,
    nphotons: f64,
}

/// The fields in which two model configurations differ, as "gridsize 1 (bundle) / 2 (asked)".
fn model_differences(saved: &ModelConfig, asked: &ModelConfig) -> Vec<String> {
    type Field = (&'static str, fn(&ModelConfig) -> String);
    let fields: [Field; 6] = [
        ("model", |m| m.kind.name().to_string()),
        ("N", |m| m.n.to_string()),
        ("gridsize", |m| m.gridsize.to_string()),
        ("n_filters_scale", |m| m.n_filters_scale.to_string()),
        ("probe_big", |m| m.probe_big.to_string()),
        ("amp_activation", |m| {
            format!("{:?}", m.amp_activation).to_lowercase()
        }),
    ];
    fields
        .iter()
        .filter(|(_, value)| value(saved) != value(asked))
        .map(|(name, value)| {
            format!(
                "{name} {} in the bundle, {} asked for",
                value(saved),
                value(asked)
            )
        })
        .collect()
}

fn resume_from(dir: &std::path::Path, config: &TrainConfig) -> Result<Resumed, TrainError> {
    let saved = bundle::load(dir, None)?;
    let model = model_config(&saved.params)?;
    let differences = model_differences(&model, &config.model);
    if !differences.is_empty() {
        return Err(TrainError::from(format!(
            "{}: cannot resume: {}",
            dir.display(),
            differences.join("; ")
        )));
    }
    let schedule: Schedule = saved
        .params
        .get("training_state")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| TrainError::from(format!("{}: training_state: {e}", dir.display())))?
        .ok_or_else(|| {
            TrainError::from(format!(
                "{}: the bundle has no training state to resume",
                dir.display()
            ))
        })?;
    let nphotons = recorded_nphotons(&saved.params).ok_or_else(|| {
        TrainError::from(format!("{}: the bundle records no nphotons", dir.display()))
    })?;
    let optimizer = saved.optimizer.ok_or_else(|| {
        TrainError::from(format!(
            "{}: the bundle has no optimizer state to resume",
            dir.display()
        ))
    })?;
    Ok(Resumed {
        weights: saved.weights,
        probe: saved.probe,
        optimizer,
        schedule,
        nphotons,
    })
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
