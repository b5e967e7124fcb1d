//! The aggregation: every job's record merged into the reference's manifests (study-pipeline.md
//! §4–§7.3), the metrics summary and its deltas, the report with its pictures, the blocker log and
//! an inventory of every output with its SHA-256.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::config::StudyConfig;
use super::plan::{python_exp, Job, Phase, Plan};
use super::record::{Digests, JobRecord, Status};
use super::report::write_report;
use super::run::JobOutput;
use super::StudyError;
use crate::eval::report::REFERENCE_METRIC_NAMES;
use crate::io::atomic::{write_atomic, write_json};
use crate::persist::bundle::utc_now;

/// A job of the plan with its record, if it has one.
pub struct Entry<'a> {
    pub job: &'a Job,
    pub record: Option<JobRecord>,
}

impl Entry<'_> {
    pub fn status(&self) -> &'static str {
        match self.record.as_ref().map(|r| r.status) {
            Some(Status::Success) => "success",
            Some(Status::Failed) => "failed",
            None => "not run",
        }
    }

    pub fn succeeded(&self) -> bool {
        self.record
            .as_ref()
            .is_some_and(|r| r.status == Status::Success)
    }

    fn detail(&self, key: &str) -> Value {
        self.record
            .as_ref()
            .and_then(|r| r.detail(key))
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn error(&self) -> Value {
        json!(self.record.as_ref().and_then(|r| r.error.clone()))
    }
}

/// One model's score in one cell: (amplitude, phase) of a metric.
pub fn score(record: &JobRecord, model: &str, metric: &str) -> Option<(f64, f64)> {
    let m = record.detail("metrics")?.get(model)?;
    let part = |p: &str| m.get(p)?.get(metric)?.as_f64();
    Some((part("amplitude")?, part("phase")?))
}

/// The models a comparison scored, in its order.
pub fn models(record: &JobRecord) -> Vec<String> {
    record
        .detail("models")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn write(hub: &Path, relative: &str, value: &Value) -> Result<(), StudyError> {
    let path = hub.join(relative);
    write_json(&path, value).map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))
}

fn write_text(hub: &Path, relative: &str, text: &str) -> Result<(), StudyError> {
    let path = hub.join(relative);
    write_atomic(&path, text.as_bytes())
        .map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))
}

/// Every job of `plan` but the aggregation, with its record.
pub fn load_entries<'a>(hub: &Path, plan: &'a Plan) -> Vec<Entry<'a>> {
    plan.jobs
        .iter()
        .filter(|j| j.phase != Phase::Aggregate)
        .map(|job| Entry {
            job,
            record: JobRecord::read(hub, &job.id).ok().flatten(),
        })
        .collect()
}

pub fn aggregate(
    hub: &Path,
    config: &StudyConfig,
    plan: &Plan,
    out: &mut JobOutput,
) -> Result<Value, StudyError> {
    let entries = load_entries(hub, plan);
    let of = |phase: Phase| entries.iter().filter(move |e| e.job.phase == phase);
    let timestamp = utc_now();

    write_training_manifest(hub, config, plan, of(Phase::Train).collect(), &timestamp)?;
    write_reconstruction_manifest(
        hub,
        config,
        plan,
        of(Phase::Reconstruct).collect(),
        &timestamp,
    )?;
    let comparisons: Vec<&Entry> = of(Phase::Compare).collect();
    let counts = |list: &[&Entry]| {
        let success = list.iter().filter(|e| e.succeeded()).count();
        (list.len(), success, list.len() - success)
    };
    let (n_jobs, n_success, n_failed) = counts(&comparisons);
    write(
        hub,
        "analysis/comparison_manifest.json",
        &json!({
            "timestamp": timestamp,
            "n_jobs": n_jobs,
            "n_executed": comparisons.iter().filter(|e| e.record.is_some()).count(),
            "n_success": n_success,
            "n_failed": n_failed,
            "execution_results": comparisons.iter().map(|e| json!({
                "dose": e.job.dose, "view": e.job.view, "split": "test",
                "status": e.status(),
                "returncode": i32::from(!e.succeeded()),
                "log_path": e.job.log_path(),
                "output_dir": e.job.dir,
                "models": e.detail("models"),
                "error": e.error(),
            })).collect::<Vec<_>>(),
        }),
    )?;

    let summary = metrics_summary(&comparisons);
    write(hub, "analysis/metrics_summary.json", &summary)?;
    write_text(
        hub,
        "analysis/metrics_summary.md",
        &metrics_summary_md(&summary),
    )?;
    let (highlights, preview, deltas) = delta_highlights(&summary);
    write_text(hub, "analysis/metrics_delta_highlights.txt", &highlights)?;
    write_text(
        hub,
        "analysis/metrics_delta_highlights_preview.txt",
        &preview,
    )?;
    write(
        hub,
        "analysis/metrics_delta_summary.json",
        &json!({
            "generated_at": timestamp,
            "source_metrics": "analysis/metrics_summary.json",
            "deltas": deltas,
        }),
    )?;
    for line in highlights.lines() {
        out.line(line);
    }

    let failures: Vec<&Entry> = entries.iter().filter(|e| !e.succeeded()).collect();
    write_report(hub, config, &entries, &summary, &highlights)?;
    let blocker = hub.join("analysis/blocker.log");
    match failures.first() {
        Some(first) => {
            let text = format!(
                "Blocked at: job {} {} ({})\nStatus: {}\nError: {}\nLog: {}\nFailed or not run: {} of {} jobs\n",
                first.job.number,
                first.job,
                first.job.id,
                first.status(),
                first
                    .record
                    .as_ref()
                    .and_then(|r| r.error.as_deref())
                    .unwrap_or("no record: the job has not run"),
                first.job.log_path().display(),
                failures.len(),
                entries.len()
            );
            write_text(hub, "analysis/blocker.log", &text)?;
            out.line(&format!(
                "{} of {} jobs failed or did not run; the first: {}",
                failures.len(),
                entries.len(),
                blocker.display()
            ));
        }
        None => {
            if blocker.exists() {
                std::fs::remove_file(&blocker)
                    .map_err(|e| StudyError::Input(format!("{}: {e}", blocker.display())))?;
            }
        }
    }
    // The aggregation's own log and record are written after the inventory.
    let own: Vec<std::path::PathBuf> = plan
        .phase(Phase::Aggregate)
        .iter()
        .flat_map(|j| [j.log_path(), j.record_path()])
        .collect();
    let files = write_inventory(hub, &own)?;
    out.line(&format!(
        "wrote the manifests, analysis/metrics_summary.md, analysis/report.md and an inventory of {files} files"
    ));
    Ok(json!({ "failed": failures.len(), "inventory_files": files }))
}

fn write_training_manifest(
    hub: &Path,
    config: &StudyConfig,
    plan: &Plan,
    entries: Vec<&Entry>,
    timestamp: &str,
) -> Result<(), StudyError> {
    let jobs: Vec<Value> = entries
        .iter()
        .map(|e| {
            let (train, test) = super::plan::training_files(
                config,
                e.job.dose.unwrap_or_default(),
                e.job.view.as_deref().unwrap_or_default(),
            );
            json!({
                "dose": e.job.dose,
                "view": e.job.view,
                "gridsize": e.job.gridsize,
                "train_data_path": train,
                "test_data_path": test,
                "artifact_dir": e.job.dir,
                "log_path": e.job.log_path(),
                "train_log_path": e.job.dir.join("train.log"),
                "status": e.status(),
                "error": e.error(),
                "final_loss": e.detail("final_loss"),
                "epochs_completed": e.detail("epochs_completed"),
                "bundle_path": e.detail("bundle_path"),
                "bundle_sha256": e.detail("bundle_sha256"),
                "bundle_size_bytes": e.detail("bundle_size_bytes"),
            })
        })
        .collect();
    let skipped: Vec<Value> = plan
        .skipped
        .iter()
        .filter(|s| s.phase == Phase::Train)
        .map(|s| json!({ "dose": s.dose, "view": s.view, "reason": s.reason }))
        .collect();
    let skip_summary = json!({
        "timestamp": timestamp,
        "skipped_count": skipped.len(),
        "skipped_views": skipped,
    });
    write(hub, "data/phase_e/skip_summary.json", &skip_summary)?;
    write(
        hub,
        "data/phase_e/training_manifest.json",
        &json!({
            "timestamp": timestamp,
            "phase_c_root": "data/phase_c",
            "phase_d_root": "data/phase_d",
            "artifact_root": "data/phase_e",
            "jobs": jobs,
            "n_jobs": entries.len(),
            "n_success": entries.iter().filter(|e| e.succeeded()).count(),
            "n_failed": entries.iter().filter(|e| !e.succeeded()).count(),
            "skipped_views": skip_summary["skipped_views"],
            "skipped_count": skip_summary["skipped_count"],
            "skip_summary_path": "skip_summary.json",
        }),
    )
}

fn write_reconstruction_manifest(
    hub: &Path,
    config: &StudyConfig,
    plan: &Plan,
    entries: Vec<&Entry>,
    timestamp: &str,
) -> Result<(), StudyError> {
    let skipped: Vec<Value> = plan
        .skipped
        .iter()
        .filter(|s| s.phase == Phase::Reconstruct)
        .map(|s| json!({ "dose": s.dose, "view": s.view, "split": "test", "reason": s.reason }))
        .collect();
    write(
        hub,
        "data/phase_f/reconstruction_manifest.json",
        &json!({
            "timestamp": timestamp,
            "phase_c_root": "data/phase_c",
            "phase_d_root": "data/phase_d",
            "artifact_root": "data/phase_f",
            "total_jobs": entries.len() + skipped.len(),
            "filtered_jobs": entries.len(),
            "jobs": entries.iter().map(|e| json!({
                "dose": e.job.dose, "view": e.job.view, "split": "test",
                "input_npz": e.job.inputs.first(),
                "output_dir": e.job.dir,
                "algorithm": config.iterative.algorithm,
                "num_epochs": config.iterative.epochs,
            })).collect::<Vec<_>>(),
            "execution_results": entries.iter().map(|e| json!({
                "dose": e.job.dose, "view": e.job.view, "split": "test",
                "status": e.status(),
                "returncode": i32::from(!e.succeeded()),
                "log_path": e.job.log_path(),
                "error": e.error(),
                "final_cost": e.detail("final_cost"),
                "patterns_per_s": e.detail("patterns_per_s"),
            })).collect::<Vec<_>>(),
            "n_jobs": entries.len(),
            "n_success": entries.iter().filter(|e| e.succeeded()).count(),
            "n_failed": entries.iter().filter(|e| !e.succeeded()).count(),
            "skipped_jobs": skipped,
        }),
    )
}

/// The metrics the summary aggregates: (key, has a "best").
const AGGREGATED: [(&str, bool); 4] = [
    ("ms_ssim", true),
    ("ssim", true),
    ("mae", false),
    ("frc50", true),
];

/// `metrics_summary.json`: the reference's per-job rows and per-model aggregates (mean, and best
/// where higher is better), plus SSIM and FRC50.
fn metrics_summary(comparisons: &[&Entry]) -> Value {
    let mut jobs = Vec::new();
    // model -> metric -> (amplitude, phase) of every cell.
    type Scores<'a> = BTreeMap<&'a str, Vec<(f64, f64)>>;
    let mut by_model: BTreeMap<String, Scores> = BTreeMap::new();
    for e in comparisons {
        let Some(record) = e.record.as_ref().filter(|r| r.status == Status::Success) else {
            continue;
        };
        let mut rows = Vec::new();
        for model in models(record) {
            for metric in REFERENCE_METRIC_NAMES {
                if let Some((a, p)) = score(record, &model, metric) {
                    rows.push(
                        json!({ "model": model, "metric": metric, "amplitude": a, "phase": p }),
                    );
                    if AGGREGATED.iter().any(|(k, _)| *k == metric) {
                        by_model
                            .entry(model.clone())
                            .or_default()
                            .entry(metric)
                            .or_default()
                            .push((a, p));
                    }
                }
            }
        }
        jobs.push(json!({
            "dose": e.job.dose, "view": e.job.view, "split": "test", "metrics": rows,
        }));
    }
    let mut aggregate = Map::new();
    for (model, metrics) in by_model {
        let mut out = Map::new();
        for (metric, best) in AGGREGATED {
            let Some(values) = metrics.get(metric) else {
                continue;
            };
            let n = values.len() as f64;
            let mean = |f: fn(&(f64, f64)) -> f64| values.iter().map(f).sum::<f64>() / n;
            let max =
                |f: fn(&(f64, f64)) -> f64| values.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            let mut m = json!({ "mean_amplitude": mean(|v| v.0), "mean_phase": mean(|v| v.1) });
            if best {
                m["best_amplitude"] = json!(max(|v| v.0));
                m["best_phase"] = json!(max(|v| v.1));
            }
            out.insert(metric.into(), m);
        }
        aggregate.insert(model, Value::Object(out));
    }
    let success = comparisons.iter().filter(|e| e.succeeded()).count();
    json!({
        "n_jobs": comparisons.len(),
        "n_success": success,
        "n_failed": comparisons.len() - success,
        "jobs": jobs,
        "aggregate_metrics": aggregate,
    })
}

fn metrics_summary_md(summary: &Value) -> String {
    let mut s = String::from("# Phase G Metrics Summary\n\n");
    s += &format!(
        "- Total jobs: {}\n- Successful: {}\n- Failed: {}\n\n## Aggregate Metrics\n\n",
        summary["n_jobs"], summary["n_success"], summary["n_failed"]
    );
    let f3 = |v: &Value| v.as_f64().map_or("N/A".into(), |v| format!("{v:.3}"));
    if let Some(aggregate) = summary["aggregate_metrics"].as_object() {
        for (metric, title) in [
            ("ms_ssim", "MS-SSIM"),
            ("ssim", "SSIM"),
            ("frc50", "FRC50 (rings)"),
        ] {
            s += &format!("### {title}\n\n| Model | Mean amplitude | Best amplitude | Mean phase | Best phase |\n|---|---|---|---|---|\n");
            for (model, m) in aggregate {
                let m = &m[metric];
                s += &format!(
                    "| {model} | {} | {} | {} | {} |\n",
                    f3(&m["mean_amplitude"]),
                    f3(&m["best_amplitude"]),
                    f3(&m["mean_phase"]),
                    f3(&m["best_phase"])
                );
            }
            s += "\n";
        }
        s += "### MAE\n\n| Model | Mean amplitude | Mean phase |\n|---|---|---|\n";
        for (model, m) in aggregate {
            s += &format!(
                "| {model} | {} | {} |\n",
                f3(&m["mae"]["mean_amplitude"]),
                f3(&m["mae"]["mean_phase"])
            );
        }
        s += "\n";
    }
    s += "## Per job\n";
    for job in summary["jobs"].as_array().into_iter().flatten() {
        s += &format!(
            "\n### dose {} / {} / {}\n\n| Model | Metric | Amplitude | Phase |\n|---|---|---|---|\n",
            job["dose"].as_f64().map(python_exp).unwrap_or_default(),
            job["view"].as_str().unwrap_or_default(),
            job["split"].as_str().unwrap_or_default()
        );
        for row in job["metrics"].as_array().into_iter().flatten() {
            let f4 = |v: &Value| v.as_f64().map_or("N/A".into(), |v| format!("{v:.4}"));
            s += &format!(
                "| {} | {} | {} | {} |\n",
                row["model"].as_str().unwrap_or_default(),
                row["metric"].as_str().unwrap_or_default(),
                f4(&row["amplitude"]),
                f4(&row["phase"])
            );
        }
    }
    s
}

/// The reference's four highlight lines (PtychoPINN minus Baseline and minus the iterative arm, of
/// the mean MS-SSIM and MAE), the phase-only preview, and the deltas as JSON.
fn delta_highlights(summary: &Value) -> (String, String, Value) {
    let aggregate = &summary["aggregate_metrics"];
    let mean = |model: &str, metric: &str, part: &str| {
        aggregate[model][metric][format!("mean_{part}")].as_f64()
    };
    let (mut lines, mut preview, mut deltas) = (String::new(), String::new(), Map::new());
    for (metric, title, digits) in [("ms_ssim", "MS-SSIM", 3), ("mae", "MAE", 6)] {
        for other in ["Baseline", "Iterative"] {
            let d =
                |part: &str| Some(mean("PtychoPINN", metric, part)? - mean(other, metric, part)?);
            let (a, p) = (d("amplitude"), d("phase"));
            let show = |v: Option<f64>| v.map_or("N/A".into(), |v| format!("{v:+.digits$}"));
            let label = format!("{title} Δ (PtychoPINN - {other})");
            lines += &format!("{label:<35}: amplitude {}  phase {}\n", show(a), show(p));
            preview += &format!("{label}: {}\n", show(p));
            deltas
                .entry(format!("vs_{other}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("an object")
                .insert(metric.into(), json!({ "amplitude": a, "phase": p }));
        }
    }
    (lines, preview, Value::Object(deltas))
}

/// `analysis/artifact_inventory.txt`: `sha256  path` of every file in the hub (`sha256sum -c`
/// checks it from the hub), the archive, lock files and `leave_out` left out. Returns the count.
fn write_inventory(hub: &Path, leave_out: &[std::path::PathBuf]) -> Result<usize, StudyError> {
    const INVENTORY: &str = "analysis/artifact_inventory.txt";
    let mut files = Vec::new();
    let mut stack = vec![hub.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| StudyError::Input(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(hub).expect("under the hub").to_path_buf();
            let name = entry.file_name().to_string_lossy().to_string();
            if relative == Path::new("archive")
                || name == crate::persist::output_dir::LOCK_FILE
                || relative == Path::new(INVENTORY)
                || leave_out.contains(&relative)
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(relative);
            }
        }
    }
    files.sort();
    let mut digests = Digests::default();
    let mut text = String::new();
    for f in &files {
        if let Some(d) = digests.of(hub, f)? {
            text += &format!("{}  {}\n", d.sha256, d.path);
        }
    }
    write_text(hub, INVENTORY, &text)?;
    Ok(files.len())
}
