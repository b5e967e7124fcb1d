//! The study's plan: every job of the dose × view × arm grid, in the order they run, with the files
//! each reads and writes under the hub (study-pipeline.md §8):
//!
//! ```text
//! HUB/study.toml                         the settings the hub was made with
//! HUB/data/phase_c/dose_{d}/patched_{train,test}.npz
//! HUB/data/phase_d/dose_{d}/{view}/{view}_{train,test}.npz
//! HUB/data/phase_e/dose_{d}/{view}/gs{g}/wts.h5.zip      view: baseline (gs1), dense, sparse
//! HUB/data/phase_f/dose_{d}/{view}/test/reconstruction.npz
//! HUB/analysis/dose_{d}/{view}/test/...                  inference of each arm, metrics, pictures
//! HUB/analysis/...                                       manifests, summary, report
//! HUB/jobs/{id}.json                                     each job's record (status, digests)
//! HUB/logs/{id}.log                                      each job's log
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::StudyConfig;
use super::simulate::dose_label;
use super::StudyError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// C: simulate every dose.
    Simulate,
    /// D: cut one overlap view of one dose.
    Overlap,
    /// E: train one PINN arm of one dose and view.
    Train,
    /// F: the iterative reconstruction of one view's test split.
    Reconstruct,
    /// G: infer with the trained arms and score every arm against the truth.
    Compare,
    /// Manifests, summary, report and pictures from every job's record.
    Aggregate,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Simulate,
        Phase::Overlap,
        Phase::Train,
        Phase::Reconstruct,
        Phase::Compare,
        Phase::Aggregate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Simulate => "simulate",
            Phase::Overlap => "overlap",
            Phase::Train => "train",
            Phase::Reconstruct => "reconstruct",
            Phase::Compare => "compare",
            Phase::Aggregate => "aggregate",
        }
    }

    /// The reference's letter for the phase.
    pub fn letter(self) -> &'static str {
        match self {
            Phase::Simulate => "C",
            Phase::Overlap => "D",
            Phase::Train => "E",
            Phase::Reconstruct => "F",
            Phase::Compare => "G",
            Phase::Aggregate => "G",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StudyError> {
        Phase::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                StudyError::Input(format!(
                    "unknown phase '{s}'; expected one of: {}",
                    Phase::ALL.map(Phase::name).join(", ")
                ))
            })
    }
}

/// The three ways the study reconstructs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The PINN at the configured gridsize on each overlap view.
    Pinn,
    /// The gridsize-1 PINN on phase C's splits.
    Baseline,
    /// The iterative engine.
    Iterative,
}

impl Arm {
    pub const ALL: [Arm; 3] = [Arm::Pinn, Arm::Baseline, Arm::Iterative];

    pub fn name(self) -> &'static str {
        match self {
            Arm::Pinn => "pinn",
            Arm::Baseline => "baseline",
            Arm::Iterative => "iterative",
        }
    }

    /// The model name in metrics tables (the reference's for the two PINN arms).
    pub fn model(self) -> &'static str {
        match self {
            Arm::Pinn => "PtychoPINN",
            Arm::Baseline => "Baseline",
            Arm::Iterative => "Iterative",
        }
    }
}

/// The trivial reconstruction every score stands beside: ones at the same positions.
pub const CONSTANT_MODEL: &str = "Constant";

/// Restrictions of the plan (`--dose`, `--view`, `--arm`); empty: everything.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub doses: Vec<f64>,
    pub views: Vec<String>,
    pub arms: Vec<Arm>,
}

/// One job of the plan. Paths are relative to the hub.
#[derive(Clone, Debug, Serialize)]
pub struct Job {
    /// 1-based position in the plan.
    pub number: usize,
    /// Unique, stable across runs: names the record and the log.
    pub id: String,
    pub phase: Phase,
    pub dose: Option<f64>,
    /// dense, sparse or (training only) baseline.
    pub view: Option<String>,
    pub arm: Option<Arm>,
    pub gridsize: Option<usize>,
    /// The folder the job writes into.
    pub dir: PathBuf,
    /// Files that must exist before it runs (written by earlier jobs).
    pub inputs: Vec<PathBuf>,
    /// Optional inputs: used when present (a compare job scores the arms that were trained).
    pub optional_inputs: Vec<PathBuf>,
    /// Files whose digests the record keeps; a job is done when they verify.
    pub outputs: Vec<PathBuf>,
}

impl Job {
    /// `dense/dose=1e+04`, the cell label of the reference's stdout lines.
    pub fn cell(&self) -> String {
        match (&self.view, self.dose) {
            (Some(v), Some(d)) => format!("{v}/dose={}", python_exp(d)),
            (None, Some(d)) => format!("dose={}", python_exp(d)),
            _ => "all".into(),
        }
    }

    pub fn record_path(&self) -> PathBuf {
        Path::new("jobs").join(format!("{}.json", self.id))
    }

    pub fn log_path(&self) -> PathBuf {
        Path::new("logs").join(format!("{}.log", self.id))
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:<11} {}",
            self.phase.letter(),
            self.phase.name(),
            self.cell()
        )?;
        if let Some(g) = self.gridsize {
            write!(f, " gs{g}")?;
        }
        Ok(())
    }
}

/// Python's `{:.0e}` of a dose: 1e+03.
pub fn python_exp(value: f64) -> String {
    let formatted = format!("{value:.0e}");
    match formatted.split_once('e') {
        Some((mantissa, exponent)) => {
            let e: i32 = exponent.parse().unwrap_or(0);
            format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => formatted,
    }
}

pub fn phase_c_dir(dose: f64) -> PathBuf {
    Path::new("data/phase_c").join(dose_label(dose))
}

pub fn phase_c_file(dose: f64, split: &str) -> PathBuf {
    phase_c_dir(dose).join(format!("patched_{split}.npz"))
}

pub fn view_file(dose: f64, view: &str, split: &str) -> PathBuf {
    Path::new("data/phase_d")
        .join(dose_label(dose))
        .join(view)
        .join(format!("{view}_{split}.npz"))
}

pub fn bundle_dir(dose: f64, view: &str, gridsize: usize) -> PathBuf {
    Path::new("data/phase_e")
        .join(dose_label(dose))
        .join(view)
        .join(format!("gs{gridsize}"))
}

pub fn iterative_dir(dose: f64, view: &str) -> PathBuf {
    Path::new("data/phase_f")
        .join(dose_label(dose))
        .join(view)
        .join("test")
}

pub fn analysis_dir(dose: f64, view: &str) -> PathBuf {
    Path::new("analysis")
        .join(dose_label(dose))
        .join(view)
        .join("test")
}

/// The test split a view's arms are scored on.
pub fn test_file(dose: f64, view: &str) -> PathBuf {
    view_file(dose, view, "test")
}

/// The files a training arm reads: (train data, test data). With "scan", the train data is the glob
/// of both splits.
pub fn training_files(config: &StudyConfig, dose: f64, view: &str) -> (PathBuf, PathBuf) {
    use super::config::TrainingData;
    let (train, test) = if view == "baseline" {
        (phase_c_file(dose, "train"), phase_c_file(dose, "test"))
    } else {
        (
            view_file(dose, view, "train"),
            view_file(dose, view, "test"),
        )
    };
    let data = match config.training.data {
        TrainingData::Train => train,
        TrainingData::Scan => {
            let name = train.file_name().expect("a file").to_string_lossy();
            train.with_file_name(name.replace("train", "*"))
        }
    };
    (data, test)
}

/// A job skipped by a filter, for the skip summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Skipped {
    pub phase: Phase,
    pub dose: Option<f64>,
    pub view: Option<String>,
    pub reason: String,
}

pub struct Plan {
    pub jobs: Vec<Job>,
    pub skipped: Vec<Skipped>,
}

fn same_dose(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

impl Plan {
    pub fn new(config: &StudyConfig, filters: &Filters) -> Result<Self, StudyError> {
        let doses = &config.simulation.doses;
        let views: Vec<&str> = config.views().into_iter().map(|(v, _)| v).collect();
        for d in &filters.doses {
            if !doses.iter().any(|x| same_dose(*x, *d)) {
                return Err(StudyError::Input(format!(
                    "--dose {d}: not a dose of the study ({doses:?})"
                )));
            }
        }
        for v in &filters.views {
            let baseline = v == "baseline" && config.training.baseline;
            if !(views.contains(&v.as_str()) || baseline) {
                return Err(StudyError::Input(format!(
                    "--view {v}: not a view of the study ({})",
                    views.join(", ")
                )));
            }
        }
        let mut plan = Plan {
            jobs: Vec::new(),
            skipped: Vec::new(),
        };
        let dose_kept =
            |d: f64| filters.doses.is_empty() || filters.doses.iter().any(|x| same_dose(*x, d));
        let view_kept = |v: &str| filters.views.is_empty() || filters.views.iter().any(|x| x == v);
        let arm_kept = |a: Arm| filters.arms.is_empty() || filters.arms.contains(&a);
        let skip = |plan: &mut Plan, phase, dose: f64, view: &str, arm: Option<Arm>| {
            let reason = if !dose_kept(dose) {
                format!("dose filter (requested: {:?})", filters.doses)
            } else if !view_kept(view) {
                format!("view filter (requested: {})", filters.views.join(", "))
            } else if let Some(arm) = arm.filter(|a| !arm_kept(*a)) {
                format!(
                    "arm filter (requested: {}; this is {})",
                    filters
                        .arms
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    arm.name()
                )
            } else {
                return false;
            };
            plan.skipped.push(Skipped {
                phase,
                dose: Some(dose),
                view: Some(view.into()),
                reason,
            });
            true
        };

        let mut simulated = Vec::new();
        for &d in doses {
            simulated.extend([phase_c_file(d, "train"), phase_c_file(d, "test")]);
        }
        simulated.push("data/phase_c/run_manifest.json".into());
        plan.push(Job {
            id: "c_simulate".into(),
            phase: Phase::Simulate,
            dir: "data/phase_c".into(),
            outputs: simulated,
            ..Job::blank()
        });

        for &d in doses {
            for &v in &views {
                // A view must be cut when anything of its cell runs, and its test split scores
                // every arm.
                if skip(&mut plan, Phase::Overlap, d, v, None) {
                    continue;
                }
                plan.push(Job {
                    id: format!("d_overlap_{}_{v}", dose_label(d)),
                    phase: Phase::Overlap,
                    dose: Some(d),
                    view: Some(v.into()),
                    dir: view_file(d, v, "train").parent().expect("a folder").into(),
                    inputs: vec![phase_c_file(d, "train"), phase_c_file(d, "test")],
                    outputs: vec![view_file(d, v, "train"), view_file(d, v, "test")],
                    ..Job::blank()
                });
            }
        }

        for &d in doses {
            let mut arms: Vec<(&str, usize, Arm)> = Vec::new();
            if config.training.baseline {
                arms.push(("baseline", 1, Arm::Baseline));
            }
            arms.extend(
                views
                    .iter()
                    .map(|&v| (v, config.training.gridsize, Arm::Pinn)),
            );
            for (v, g, arm) in arms {
                if skip(&mut plan, Phase::Train, d, v, Some(arm)) {
                    continue;
                }
                let dir = bundle_dir(d, v, g);
                let inputs = if v == "baseline" {
                    vec![phase_c_file(d, "train"), phase_c_file(d, "test")]
                } else {
                    vec![view_file(d, v, "train"), view_file(d, v, "test")]
                };
                plan.push(Job {
                    id: format!("e_train_{}_{v}_gs{g}", dose_label(d)),
                    phase: Phase::Train,
                    dose: Some(d),
                    view: Some(v.into()),
                    arm: Some(arm),
                    gridsize: Some(g),
                    outputs: vec![
                        dir.join(crate::persist::bundle::BUNDLE_FILE),
                        dir.join("history.json"),
                    ],
                    dir,
                    inputs,
                    ..Job::blank()
                });
            }
        }

        for &d in doses {
            for &v in &views {
                if skip(&mut plan, Phase::Reconstruct, d, v, Some(Arm::Iterative)) {
                    continue;
                }
                let dir = iterative_dir(d, v);
                plan.push(Job {
                    id: format!("f_reconstruct_{}_{v}", dose_label(d)),
                    phase: Phase::Reconstruct,
                    dose: Some(d),
                    view: Some(v.into()),
                    arm: Some(Arm::Iterative),
                    outputs: vec![dir.join("reconstruction.npz"), dir.join("history.json")],
                    dir,
                    inputs: vec![test_file(d, v)],
                    ..Job::blank()
                });
            }
        }

        for &d in doses {
            for &v in &views {
                if !dose_kept(d) || !view_kept(v) {
                    continue;
                }
                let dir = analysis_dir(d, v);
                let mut optional_inputs = vec![
                    bundle_dir(d, v, config.training.gridsize)
                        .join(crate::persist::bundle::BUNDLE_FILE),
                    iterative_dir(d, v).join("reconstruction.npz"),
                ];
                if config.training.baseline {
                    optional_inputs.push(
                        bundle_dir(d, "baseline", 1).join(crate::persist::bundle::BUNDLE_FILE),
                    );
                }
                plan.push(Job {
                    id: format!("g_compare_{}_{v}", dose_label(d)),
                    phase: Phase::Compare,
                    dose: Some(d),
                    view: Some(v.into()),
                    outputs: vec![dir.join("comparison_metrics.csv"), dir.join("metrics.json")],
                    dir,
                    inputs: vec![test_file(d, v)],
                    optional_inputs,
                    ..Job::blank()
                });
            }
        }

        plan.push(Job {
            id: "g_aggregate".into(),
            phase: Phase::Aggregate,
            dir: "analysis".into(),
            ..Job::blank()
        });
        Ok(plan)
    }

    fn push(&mut self, mut job: Job) {
        job.number = self.jobs.len() + 1;
        self.jobs.push(job);
    }

    /// The jobs of one phase, in plan order (a Slurm array's tasks).
    pub fn phase(&self, phase: Phase) -> Vec<&Job> {
        self.jobs.iter().filter(|j| j.phase == phase).collect()
    }

    /// The numbered plan, one line per job.
    pub fn describe(&self) -> String {
        let width = self.jobs.len().to_string().len();
        let mut s = String::new();
        for job in &self.jobs {
            s += &format!("{:>width$}. {job}  -> {}\n", job.number, job.dir.display());
        }
        for skipped in &self.skipped {
            s += &format!(
                "   skip {} {}/{}: {}\n",
                skipped.phase.name(),
                skipped.view.as_deref().unwrap_or("-"),
                skipped.dose.map(python_exp).unwrap_or_default(),
                skipped.reason
            );
        }
        s
    }
}

impl Job {
    fn blank() -> Self {
        Job {
            number: 0,
            id: String::new(),
            phase: Phase::Aggregate,
            dose: None,
            view: None,
            arm: None,
            gridsize: None,
            dir: PathBuf::new(),
            inputs: Vec::new(),
            optional_inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_is_the_reference_grid() {
        let plan = Plan::new(&StudyConfig::default(), &Filters::default()).unwrap();
        let count = |p| plan.phase(p).len();
        // 1 simulation, 3 doses x 2 views cut, 3 x (baseline + 2 views) trained, 3 x 2 iterative,
        // 3 x 2 comparisons, 1 aggregation.
        assert_eq!(
            Phase::ALL.map(count),
            [1, 6, 9, 6, 6, 1],
            "{}",
            plan.describe()
        );
        let ids: std::collections::HashSet<_> = plan.jobs.iter().map(|j| &j.id).collect();
        assert_eq!(ids.len(), plan.jobs.len(), "ids are unique");
        let train = plan.phase(Phase::Train);
        assert_eq!(train[0].id, "e_train_dose_1000_baseline_gs1");
        assert_eq!(train[1].dir, Path::new("data/phase_e/dose_1000/dense/gs2"));
        assert_eq!(train[1].cell(), "dense/dose=1e+03");
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn filters_keep_their_cells_and_record_the_rest() {
        let filters = Filters {
            doses: vec![1e4],
            views: vec!["dense".into()],
            arms: vec![Arm::Iterative],
        };
        let plan = Plan::new(&StudyConfig::default(), &filters).unwrap();
        let phases: Vec<_> = plan.jobs.iter().map(|j| j.phase).collect();
        assert_eq!(
            phases,
            [
                Phase::Simulate,
                Phase::Overlap,
                Phase::Reconstruct,
                Phase::Compare,
                Phase::Aggregate
            ]
        );
        assert!(plan.jobs[1].id.ends_with("dose_10000_dense"));
        assert!(plan
            .skipped
            .iter()
            .any(|s| s.reason.starts_with("dose filter")));
        assert!(plan.skipped.iter().any(|s| s.phase == Phase::Train
            && s.reason.starts_with("view filter")
            || s.reason.starts_with("arm filter")));
        let e = Plan::new(
            &StudyConfig::default(),
            &Filters {
                doses: vec![5.0],
                ..Filters::default()
            },
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("--dose 5: not a dose of the study"));
    }

    #[test]
    fn doses_print_as_python_does() {
        assert_eq!(python_exp(1000.0), "1e+03");
        assert_eq!(python_exp(1e5), "1e+05");
        assert_eq!(python_exp(5e-3), "5e-03");
    }
}
