//! `ptycho train`: the PINN trained on a dataset (physics-and-model.md §8): grouping, normalisation,
//! the last 5% of the groups held out for validation, batches reshuffled every epoch with the seed,
//! ReduceLROnPlateau on the validation loss (factor 0.5, patience 2, min 1e-4, min_delta 1e-4), early
//! stopping on the training loss (patience 3), `history.json`, and the bundle.

use std::path::PathBuf;
use std::time::Instant;

use ptycho_kernels::ops::optim::AdamConfig;
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::Backend;
use serde::Serialize;
use serde_json::json;

use super::PinnTrainer;
use crate::data::dataset::{intensity_scale, Dataset};
use crate::data::grouping::{group, GroupingConfig};
use crate::model::network::glorot_init;
use crate::model::ModelConfig;
use crate::persist::bundle::{self, Bundle, SavedBundle};
use crate::persist::digest::sha256_file;
use crate::physics::forward::{MAX_POSITION_JITTER, OFFSET};
use crate::physics::overlap::write_json;
use crate::physics::probe::{normalize, DEFAULT_PROBE_SCALE};

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
    pub output_dir: PathBuf,
    pub model: ModelConfig,
    pub n_groups: usize,
    pub nepochs: usize,
    pub batch_size: usize,
    pub nphotons: f64,
    pub learning_rate: f64,
    pub seed: u64,
    /// Save the bundle every this many epochs (and always at the end); 0: only at the end.
    pub checkpoint_every: usize,
}

#[derive(Clone, Debug, Serialize)]
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
    pub stopped_early: bool,
    pub bundle: SavedBundle,
    pub samples_per_s: f64,
}

/// Host copies of the grouped, normalised data.
struct Samples {
    /// (groups, C, N, N) α·diffraction.
    x: Vec<f32>,
    /// (groups, C, 2) relative offsets.
    relative: Vec<f32>,
    c: usize,
    n: usize,
}

impl Samples {
    fn batch(&self, groups: &[usize], s: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let per = self.c * self.n * self.n;
        let mut x = Vec::with_capacity(groups.len() * per);
        let mut rel = Vec::with_capacity(groups.len() * self.c * 2);
        for &g in groups {
            x.extend_from_slice(&self.x[g * per..(g + 1) * per]);
            rel.extend_from_slice(&self.relative[g * self.c * 2..(g + 1) * self.c * 2]);
        }
        let target = x.iter().map(|v| s * v).collect();
        (x, target, rel)
    }
}

fn load(config: &TrainConfig) -> Result<(Dataset, Samples), String> {
    let dataset = Dataset::open(&config.train_data).map_err(|e| e.to_string())?;
    if dataset.n != config.model.n {
        return Err(format!(
            "{}: patterns are {n}x{n}, but the model is built for N = {}",
            config.train_data.display(),
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
            n_groups: Some(config.n_groups),
            neighbor_count: 4,
            enable_oversampling: false,
            seed: config.seed,
        },
    )
    .map_err(|e| e.to_string())?;
    let (c, n) = (groups.c, dataset.n);
    let alpha = dataset.normalization() as f32;
    let mut x = vec![0f32; groups.len() * c * n * n];
    for (k, chunk) in x.chunks_mut(n * n).enumerate() {
        dataset
            .read_pattern(groups.indices[k], chunk)
            .map_err(|e| e.to_string())?;
        chunk.iter_mut().for_each(|v| *v *= alpha);
    }
    let relative = groups
        .relative
        .iter()
        .flat_map(|r| [r[0] as f32, r[1] as f32])
        .collect();
    Ok((dataset, Samples { x, relative, c, n }))
}

/// Train; `progress` receives one line per epoch.
pub fn train<B: Backend>(
    b: &B,
    config: &TrainConfig,
    mut progress: impl FnMut(&str),
) -> Result<TrainReport, String> {
    config.model.validate()?;
    if config.batch_size == 0 || config.nepochs == 0 || config.n_groups == 0 {
        return Err("batch size, epochs and n_groups must be at least 1".into());
    }
    let (dataset, samples) = load(config)?;
    let n = samples.n;
    let total = samples.x.len() / (samples.c * n * n);
    let validation = ((total as f64) * VALIDATION_FRACTION) as usize;
    let train_groups = total - validation;
    if train_groups == 0 {
        return Err(format!("{total} groups leave nothing to train on"));
    }
    let s = intensity_scale(config.nphotons, n) as f32;
    let probe = normalize(dataset.probe(), n, DEFAULT_PROBE_SCALE).map_err(|e| e.to_string())?;
    let weights = glorot_init(&config.model, config.seed)?;
    let mut adam = AdamConfig {
        learning_rate: config.learning_rate,
        ..AdamConfig::default()
    };
    let mut trainer = PinnTrainer::new(b, &config.model, &weights, &probe, s, adam)?;
    let digests: Vec<serde_json::Value> = dataset
        .shards
        .iter()
        .map(|shard| {
            let (sha, size) = sha256_file(&shard.path).map_err(|e| e.to_string())?;
            Ok(json!({ "path": shard.path.display().to_string(), "sha256": sha, "size_bytes": size }))
        })
        .collect::<Result<_, String>>()?;
    let params = json!({
        "N": n, "gridsize": config.model.gridsize, "model_type": "pinn",
        "n_filters_scale": config.model.n_filters_scale, "probe_big": config.model.probe_big,
        "amp_activation": config.model.amp_activation, "nphotons": config.nphotons,
        "intensity_scale": s, "offset": OFFSET, "max_position_jitter": MAX_POSITION_JITTER,
        "probe_scale": DEFAULT_PROBE_SCALE, "object_big": true, "pad_object": true,
        "n_groups": config.n_groups, "batch_size": config.batch_size, "seed": config.seed,
        "train_data": digests, "backend": "wgpu",
    });
    let params = params.as_object().cloned().expect("an object");
    std::fs::create_dir_all(&config.output_dir)
        .map_err(|e| format!("{}: {e}", config.output_dir.display()))?;

    let save = |trainer: &PinnTrainer<B::Storage>| -> Result<SavedBundle, String> {
        let bundle = Bundle {
            params: params.clone(),
            weights: trainer.network.download(b).map_err(|e| e.to_string())?,
            probe: probe.clone(),
            optimizer: Some(trainer.optimizer_state(b).map_err(|e| e.to_string())?),
        };
        bundle::save(&config.output_dir, &bundle).map_err(|e| e.to_string())
    };

    let mut epochs: Vec<EpochRecord> = Vec::new();
    let (mut best_val, mut since_val) = (f64::INFINITY, 0usize);
    let (mut best_train, mut since_train) = (f64::INFINITY, 0usize);
    let mut stopped_early = false;
    let mut saved = None;
    let started = Instant::now();
    let mut samples_seen = 0usize;
    for epoch in 1..=config.nepochs {
        let epoch_start = Instant::now();
        let mut order: Vec<usize> = (0..train_groups).collect();
        let mut rng =
            SplitMix64::new(config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut weighted = 0.0;
        for (step, batch) in order.chunks(config.batch_size).enumerate() {
            let (x, t, rel) = samples.batch(batch, s);
            let shape = [batch.len(), samples.c, n, n];
            let upload =
                |v: &[f32], shape: &[usize]| b.upload_f32(shape, v).map_err(|e| e.to_string());
            let loss = trainer
                .train_step(
                    b,
                    &upload(&x, &shape)?,
                    &upload(&rel, &[batch.len() * samples.c, 2])?,
                    &upload(&t, &shape)?,
                )
                .map_err(|e| format!("epoch {epoch}, step {}: {e}", step + 1))?;
            weighted += loss * batch.len() as f64;
            samples_seen += batch.len();
        }
        let train_loss = weighted / train_groups as f64;
        let val_loss = if validation > 0 {
            let groups: Vec<usize> = (train_groups..total).collect();
            let mut sum = 0.0;
            for batch in groups.chunks(config.batch_size) {
                let (x, t, rel) = samples.batch(batch, s);
                let shape = [batch.len(), samples.c, n, n];
                let upload =
                    |v: &[f32], shape: &[usize]| b.upload_f32(shape, v).map_err(|e| e.to_string());
                let loss = trainer.loss(
                    b,
                    &upload(&x, &shape)?,
                    &upload(&rel, &[batch.len() * samples.c, 2])?,
                    &upload(&t, &shape)?,
                )?;
                sum += loss * batch.len() as f64;
            }
            Some(sum / validation as f64)
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
        progress(&format!(
            "epoch {epoch}/{}: loss {train_loss:.6e}{} lr {:.2e} ({:.1} s, {:.1} samples/s)",
            config.nepochs,
            val_loss.map_or(String::new(), |v| format!(" val_loss {v:.6e}")),
            adam.learning_rate,
            record.seconds,
            train_groups as f64 / record.seconds.max(1e-9)
        ));
        epochs.push(record);
        write_json(&config.output_dir.join("history.json"), &history(&epochs))
            .map_err(|e| e.to_string())?;
        if config.checkpoint_every > 0 && epoch.is_multiple_of(config.checkpoint_every) {
            saved = Some(save(&trainer)?);
        }
        // ReduceLROnPlateau on the validation loss (the training loss without a validation split).
        let monitored = val_loss.unwrap_or(train_loss);
        if monitored < best_val - PLATEAU_MIN_DELTA {
            best_val = monitored;
            since_val = 0;
        } else {
            since_val += 1;
            if since_val >= PLATEAU_PATIENCE && adam.learning_rate > PLATEAU_MIN_LR {
                adam.learning_rate = (adam.learning_rate * PLATEAU_FACTOR).max(PLATEAU_MIN_LR);
                trainer.set_adam(adam);
                since_val = 0;
            }
        }
        if train_loss < best_train {
            best_train = train_loss;
            since_train = 0;
        } else {
            since_train += 1;
            if since_train >= EARLY_STOP_PATIENCE {
                stopped_early = true;
                progress(&format!("early stop: the training loss has not improved for {EARLY_STOP_PATIENCE} epochs"));
                break;
            }
        }
    }
    let last_epoch = epochs.last().map_or(0, |e| e.epoch);
    let bundle = match saved {
        Some(s)
            if config.checkpoint_every > 0
                && last_epoch.is_multiple_of(config.checkpoint_every) =>
        {
            s
        }
        _ => save(&trainer)?,
    };
    Ok(TrainReport {
        device: b.describe(),
        groups: train_groups,
        validation_groups: validation,
        samples_per_s: samples_seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
        epochs,
        stopped_early,
        bundle,
    })
}

fn history(epochs: &[EpochRecord]) -> serde_json::Value {
    json!({
        "train_loss": epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
        "loss": epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
        "val_loss": epochs.iter().map(|e| e.val_loss).collect::<Vec<_>>(),
        "learning_rate": epochs.iter().map(|e| e.learning_rate).collect::<Vec<_>>(),
        "seconds": epochs.iter().map(|e| e.seconds).collect::<Vec<_>>(),
        "epochs": epochs,
    })
}
