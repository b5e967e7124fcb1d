//! Running the plan: each job a library call on one backend, its record written when it ends; a
//! failed job is recorded and the run goes on; a job whose record shows it done is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ptycho_kernels::Backend;
use serde_json::{json, Value};

use super::compare::compare_job;
use super::config::StudyConfig;
use super::plan::{python_exp, training_files, Job, Phase, Plan};
use super::record::{Digests, JobRecord, Status};
use super::simulate::{self, ObjectSource, Positions, ProbeSource, SimulationConfig};
use super::summary::aggregate;
use super::StudyError;
use crate::data::contract::DIFFRACTION_KEYS;
use crate::data::dataset::resolve;
use crate::io::npz::NpzFile;
use crate::model::{AmpActivation, ModelConfig, ModelKind};
use crate::persist::bundle::{utc_now, BUNDLE_FILE};
use crate::persist::output_dir::OutputDir;
use crate::recon::reconstruct::{reconstruct, ReconstructConfig};
use crate::train::run::{train, Progress, TrainConfig};

/// What the run tells whoever watches it.
pub enum Event<'a> {
    /// A job starts; `reason` says why it must run.
    Start {
        job: &'a Job,
        total: usize,
        reason: &'a str,
    },
    /// A job whose record shows it done with today's inputs.
    UpToDate { job: &'a Job, total: usize },
    /// Progress inside the running job.
    Step {
        done: usize,
        total: usize,
        message: String,
    },
    /// A line of the running job (also in its log).
    Line(&'a str),
    Finish {
        job: &'a Job,
        total: usize,
        record: &'a JobRecord,
    },
}

/// The settings file kept in the hub: the settings its outputs were made with.
pub const HUB_CONFIG: &str = "study.toml";

/// A hub locked for one `ptycho study run`.
pub struct Hub {
    pub root: PathBuf,
    _lock: OutputDir,
}

impl Hub {
    /// Lock `root` and check that it was made with `config` (or is new). With `clobber`, the
    /// outputs of an earlier run move to `archive/{UTC}/` and the study starts over.
    pub fn open(root: &Path, config: &StudyConfig, clobber: bool) -> Result<Self, StudyError> {
        let lock = OutputDir::lock(root).map_err(|e| StudyError::Input(e.to_string()))?;
        let saved = root.join(HUB_CONFIG);
        if !saved.exists() {
            let foreign: Vec<String> = lock
                .entries()
                .map_err(|e| StudyError::Input(e.to_string()))?
                .into_iter()
                .filter(|name| name != "archive")
                .collect();
            if !foreign.is_empty() {
                return Err(StudyError::Input(format!(
                    "{}: not empty ({}) and not a study hub (no {HUB_CONFIG}); give a new or empty \
                     folder",
                    root.display(),
                    foreign.join(", ")
                )));
            }
        }
        if clobber {
            archive(root)?;
        } else if saved.exists() {
            let theirs = StudyConfig::read(&saved)?;
            if theirs != *config {
                return Err(StudyError::Input(format!(
                    "{}: the hub was made with other settings; run with those (--config {}), \
                     or pass --clobber to archive its outputs under {} and start over",
                    root.display(),
                    saved.display(),
                    root.join("archive").display()
                )));
            }
        }
        crate::io::atomic::write_atomic(&saved, config.to_toml().as_bytes())
            .map_err(|e| StudyError::Input(format!("{}: {e}", saved.display())))?;
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }
}

/// The settings of a hub as a Slurm task sees it: made, with its study.toml, by `ptycho study
/// slurm`, and not locked (a phase's tasks run at once, each writing only its own job's folder and
/// record).
pub fn shared_hub(root: &Path) -> Result<StudyConfig, StudyError> {
    let saved = root.join(HUB_CONFIG);
    if !saved.is_file() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "this node".into(), |h| h.trim().to_string());
        return Err(StudyError::Input(format!(
            "{} is not visible from {host}: the hub must be on a filesystem every node of the \
             cluster shares, and `ptycho study slurm` must have made it",
            saved.display()
        )));
    }
    StudyConfig::read(&saved)
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub ran: usize,
    pub up_to_date: usize,
    /// (job id, error) of every failed job, in plan order.
    pub failed: Vec<(String, String)>,
}

/// The folders of a hub that hold a run's outputs.
const OUTPUT_FOLDERS: [&str; 4] = ["data", "analysis", "jobs", "logs"];

fn archive(root: &Path) -> Result<(), StudyError> {
    let present: Vec<&str> = OUTPUT_FOLDERS
        .iter()
        .copied()
        .chain([HUB_CONFIG])
        .filter(|name| root.join(name).exists())
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let target = root.join("archive").join(utc_now().replace(':', "-"));
    std::fs::create_dir_all(&target)
        .map_err(|e| StudyError::Input(format!("{}: {e}", target.display())))?;
    for name in present {
        std::fs::rename(root.join(name), target.join(name)).map_err(|e| {
            StudyError::Input(format!("archiving {name} to {}: {e}", target.display()))
        })?;
    }
    Ok(())
}

/// Run every job of `plan` that is not done, then aggregate.
pub fn run<B: Backend>(
    b: &B,
    hub: &Hub,
    config: &StudyConfig,
    plan: &Plan,
    events: &mut dyn FnMut(Event),
) -> Result<RunSummary, StudyError> {
    let mut digests = Digests::default();
    let mut summary = RunSummary::default();
    for job in &plan.jobs {
        let record = run_job(b, &hub.root, config, plan, job, &mut digests, events)?;
        match record {
            None => summary.up_to_date += 1,
            Some(r) => {
                summary.ran += 1;
                if r.status == Status::Failed {
                    summary
                        .failed
                        .push((r.id.clone(), r.error.clone().unwrap_or_default()));
                }
            }
        }
    }
    Ok(summary)
}

/// Run `job` unless its record shows it done (then None). The record is written either way it
/// ends; only a failure to write the record itself is an error here.
pub fn run_job<B: Backend>(
    b: &B,
    hub: &Path,
    config: &StudyConfig,
    plan: &Plan,
    job: &Job,
    digests: &mut Digests,
    events: &mut dyn FnMut(Event),
) -> Result<Option<JobRecord>, StudyError> {
    let total = plan.jobs.len();
    let previous = match JobRecord::read(hub, &job.id) {
        Ok(r) => r,
        Err(e) => {
            events(Event::Line(&format!("note: {e}; running the job again")));
            None
        }
    };
    let reason = if job.phase == Phase::Aggregate {
        Some("it sums up every other job".to_string())
    } else {
        digests.stale(hub, job, previous.as_ref())?
    };
    let Some(reason) = reason else {
        events(Event::UpToDate { job, total });
        return Ok(None);
    };
    events(Event::Start {
        job,
        total,
        reason: &reason,
    });
    let started = Instant::now();
    let mut record = JobRecord::new(job, utc_now());
    let mut out = JobOutput {
        log: JobLog::open(hub, job)?,
        events,
    };
    out.log.line(&format!(
        "=== {} {job} (#{}/{total}): {reason}",
        record.started, job.number
    ));
    let result = match missing_input(hub, plan, job) {
        Some(blocked) => Err(blocked),
        None => {
            record.inputs = digests.inputs_of(hub, job)?;
            execute(b, hub, config, plan, job, &mut out).map_err(|e| e.to_string())
        }
    };
    record.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(details) => match digests.existing(hub, &job.outputs) {
            Ok(outputs) if outputs.len() == job.outputs.len() => {
                record.status = Status::Success;
                record.outputs = outputs;
                record.details = details;
            }
            Ok(outputs) => {
                let missing: Vec<String> = job
                    .outputs
                    .iter()
                    .map(|p| p.display().to_string())
                    .filter(|p| !outputs.iter().any(|o| o.path == *p))
                    .collect();
                record.error = Some(format!("it did not write {}", missing.join(", ")));
            }
            Err(e) => record.error = Some(e.to_string()),
        },
        Err(e) => record.error = Some(e),
    }
    match &record.error {
        None => out.log.line(&format!("success in {:.1} s", record.seconds)),
        Some(e) => out
            .log
            .line(&format!("failed after {:.1} s: {e}", record.seconds)),
    }
    record.write(hub)?;
    let events = out.events;
    events(Event::Finish {
        job,
        total,
        record: &record,
    });
    Ok(Some(record))
}

/// Why `job` cannot start: a required input missing, and the job that should have written it.
fn missing_input(hub: &Path, plan: &Plan, job: &Job) -> Option<String> {
    let missing = job.inputs.iter().find(|p| !hub.join(p).is_file())?;
    let writer = plan
        .jobs
        .iter()
        .find(|j| j.outputs.contains(missing))
        .map_or(String::new(), |j| {
            format!(" (written by job {} {j})", j.number)
        });
    Some(format!(
        "blocked: {} is missing{writer}",
        hub.join(missing).display()
    ))
}

/// Where a running job's lines and progress go: its log and the run's watcher.
pub struct JobOutput<'a> {
    log: JobLog,
    events: &'a mut dyn FnMut(Event),
}

impl JobOutput<'_> {
    /// A line for the log and the watcher.
    pub fn line(&mut self, line: &str) {
        self.log.line(line);
        (self.events)(Event::Line(line));
    }

    /// Progress, for the watcher only.
    pub fn step(&mut self, done: usize, total: usize, message: String) {
        (self.events)(Event::Step {
            done,
            total,
            message,
        });
    }
}

/// A job's log, `HUB/logs/{id}.log`, appended to by every run of the job.
struct JobLog {
    file: Option<std::fs::File>,
}

impl JobLog {
    fn open(hub: &Path, job: &Job) -> Result<Self, StudyError> {
        let path = hub.join(job.log_path());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StudyError::Input(format!("{}: {e}", dir.display())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))?;
        Ok(Self { file: Some(file) })
    }

    /// A log that cannot be written loses its lines, not the job.
    fn line(&mut self, line: &str) {
        if let Some(f) = &mut self.file {
            if writeln!(f, "{line}").is_err() {
                self.file = None;
            }
        }
    }
}

fn execute<B: Backend>(
    b: &B,
    hub: &Path,
    config: &StudyConfig,
    plan: &Plan,
    job: &Job,
    out: &mut JobOutput,
) -> Result<Value, StudyError> {
    let dose = job.dose.unwrap_or_default();
    let view = job.view.as_deref().unwrap_or_default();
    match job.phase {
        Phase::Simulate => simulate_job(b, hub, config, out),
        Phase::Overlap => {
            let fraction = config
                .views()
                .into_iter()
                .find(|(v, _)| *v == view)
                .map(|(_, f)| f)
                .expect("the plan's views are the config's");
            let dir = hub.join(&job.dir);
            let _lock = OutputDir::lock(&dir).map_err(|e| StudyError::Input(e.to_string()))?;
            let bundle = super::overlap::write_spacing_view(
                &hub.join(super::plan::phase_c_dir(dose)),
                view,
                fraction,
                super::overlap::SpacingRule::Greedy,
                None,
                &dir,
                |line| out.line(line),
            )?;
            Ok(bundle)
        }
        Phase::Train => train_job(b, hub, config, job, out),
        Phase::Reconstruct => {
            let reconstruct_config = ReconstructConfig {
                input: hub.join(super::plan::test_file(dose, view)),
                output_dir: hub.join(&job.dir),
                algorithm: config.iterative.algorithm,
                epochs: config.iterative.epochs,
                batch_size: config.iterative.batch_size,
                overwrite: true,
                ..ReconstructConfig::default()
            };
            let epochs = config.iterative.epochs;
            let report = reconstruct(b, &reconstruct_config, |r| {
                out.step(r.epoch, epochs, format!("cost {:.4e}", r.cost))
            })
            .map_err(|e| StudyError::Input(e.to_string()))?;
            out.line(&format!(
                "{} epochs of {} on {} patterns: final cost {:.4e}, {:.0} patterns/s",
                report.epochs,
                report.algorithm.name(),
                report.patterns,
                report.final_cost.unwrap_or(f64::NAN),
                report.patterns_per_s
            ));
            if let Some(d) = &report.diverged {
                out.line(&format!(
                    "diverged: {d}; the outputs hold the last good epoch"
                ));
            }
            Ok(serde_json::to_value(&report).expect("plain data"))
        }
        Phase::Compare => compare_job(b, hub, config, plan, job, out),
        Phase::Aggregate => aggregate(hub, config, plan, out),
    }
}

fn simulate_job<B: Backend>(
    b: &B,
    hub: &Path,
    config: &StudyConfig,
    out: &mut JobOutput,
) -> Result<Value, StudyError> {
    let s = &config.simulation;
    let simulation = SimulationConfig {
        n: s.n,
        object: ObjectSource::Synthetic {
            size: if s.object_size == 0 {
                4 * s.n
            } else {
                s.object_size
            },
        },
        probe: ProbeSource::Default {
            curvature: s.probe_curvature,
        },
        positions: Positions::Random { count: s.n_images },
        doses: s.doses.clone(),
        seed: s.seed,
        noise: true,
        split: true,
        legacy_key: false,
        output: hub.join("data/phase_c"),
        // The job owns the folder: a run killed half-way left files without a record.
        overwrite: true,
    };
    let report = simulate::run(b, &simulation, |line| out.line(line))?;
    Ok(json!({
        "patterns": report.patterns,
        "n": report.n,
        "object_shape": report.object_shape,
        "doses": report.doses,
    }))
}

/// The patterns of the files `path` names, from their headers alone: training reads and checks the
/// data itself, so a full pass here would be a second one.
fn pattern_count(path: &Path) -> Result<usize, StudyError> {
    let mut count = 0;
    for file in resolve(path)? {
        let npz = NpzFile::open(&file)?;
        let key = DIFFRACTION_KEYS
            .iter()
            .find(|k| npz.has(k))
            .ok_or_else(|| StudyError::Input(format!("{}: no diffraction", file.display())))?;
        count += npz.header(key)?.shape.first().copied().unwrap_or(0);
    }
    Ok(count)
}

fn train_job<B: Backend>(
    b: &B,
    hub: &Path,
    config: &StudyConfig,
    job: &Job,
    out: &mut JobOutput,
) -> Result<Value, StudyError> {
    let t = &config.training;
    let dose = job.dose.expect("a training job has a dose");
    let view = job.view.as_deref().expect("a training job has a view");
    let gridsize = job.gridsize.expect("a training job has a gridsize");
    let (train_data, test_data) = training_files(config, dose, view);
    let (train_data, test_data) = (hub.join(train_data), hub.join(test_data));
    let patterns = pattern_count(&train_data)?;
    let n_groups = t.n_groups.min(patterns);
    if n_groups < t.n_groups {
        out.line(&format!(
            "n_groups {} capped at the {patterns} patterns of {}",
            t.n_groups,
            train_data.display()
        ));
    }
    let dir = hub.join(&job.dir);
    // A run killed during training left its last checkpoint: continue from it.
    let resume = dir.join(BUNDLE_FILE).is_file().then(|| dir.clone());
    if resume.is_some() {
        out.line(&format!(
            "continuing from the checkpoint in {}",
            dir.display()
        ));
    }
    let train_config = TrainConfig {
        train_data,
        test_data: Some(test_data),
        output_dir: dir.clone(),
        model: ModelConfig {
            kind: ModelKind::Pinn,
            n: config.simulation.n,
            gridsize,
            n_filters_scale: t.n_filters_scale,
            probe_big: t.probe_big,
            amp_activation: AmpActivation::Sigmoid,
        },
        n_groups: Some(n_groups),
        nepochs: t.epochs,
        batch_size: t.batch_size,
        nphotons: Some(dose),
        learning_rate: None,
        seed: t.seed,
        checkpoint_every: None,
        resume,
        overwrite: false,
    };
    let epochs = t.epochs;
    let report = train(b, &train_config, |p| match p {
        Progress::Step {
            epoch,
            step,
            steps,
            loss,
        } => out.step(
            (epoch - 1) * steps + step,
            epochs * steps,
            format!("epoch {epoch}/{epochs} loss {loss:.4}"),
        ),
        Progress::Line(line) => out.line(line),
    })
    .map_err(|e| StudyError::Input(e.to_string()))?;
    let cell = job.cell();
    let bundle_path = report
        .bundle
        .path
        .strip_prefix(&dir)
        .unwrap_or(&report.bundle.path)
        .display()
        .to_string();
    out.line(&format!("→ Bundle [{cell}]: {bundle_path}"));
    out.line(&format!("→ SHA256 [{cell}]: {}", report.bundle.sha256));
    out.line(&format!(
        "→ Size [{cell}]: {} bytes",
        report.bundle.size_bytes
    ));
    Ok(json!({
        "final_loss": report.epochs.last().map(|e| e.train_loss),
        "epochs_completed": report.epochs.len(),
        "test_loss": report.test_loss,
        "stopped_early": report.stopped_early,
        "groups": report.groups,
        "samples_per_s": report.samples_per_s,
        "bundle_path": bundle_path,
        "bundle_sha256": report.bundle.sha256,
        "bundle_size_bytes": report.bundle.size_bytes,
        "dose_label": python_exp(dose),
    }))
}
