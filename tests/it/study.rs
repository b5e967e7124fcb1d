//! `ptycho study run` end to end on tiny configs: every manifest, the report and its pictures, the
//! reference's stdout lines, resuming after a kill, failures recorded while the run goes on, and the
//! refusal to mix settings in one hub.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// One dose, one dense view, networks and epochs as small as they go: seconds per job.
const TINY: &str = r#"
device = "cpu"
[simulation]
doses = [10000.0]
n_images = 160
object_size = 160
[views]
dense = 0.85
[training]
epochs = 1
n_groups = 24
n_filters_scale = 1
[iterative]
epochs = 5
batch_size = 32
"#;

fn ptycho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .unwrap()
}

fn study(dir: &Path, config: &str, extra: &[&str]) -> Output {
    let path = dir.join("study.toml");
    std::fs::write(&path, config).unwrap();
    study_command(&path, &dir.join("hub"))
        .args(extra)
        .output()
        .unwrap()
}

/// `ptycho study run --config CONFIG --hub HUB`.
fn study_command(config: &Path, hub: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ptycho"));
    command
        .args(["study", "run", "--config"])
        .arg(config)
        .arg("--hub")
        .arg(hub);
    command
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_tiny_study_writes_every_manifest_the_report_and_the_pictures_and_a_second_run_redoes_nothing()
{
    let dir = tempfile::tempdir().unwrap();
    let out = study(dir.path(), TINY, &[]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    let hub = dir.path().join("hub");

    // Phase E: the reference's manifest fields and stdout lines, digests of the files on disk.
    let training = json(&hub.join("data/phase_e/training_manifest.json"));
    let jobs = training["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "baseline and dense: {training:#}");
    for job in jobs {
        assert_eq!(job["status"], "success", "{job:#}");
        assert_eq!(job["bundle_path"], "wts.h5.zip");
        let bundle = hub
            .join(job["artifact_dir"].as_str().unwrap())
            .join("wts.h5.zip");
        let sha = sha256(&bundle);
        assert_eq!(job["bundle_sha256"], sha.as_str());
        assert_eq!(
            job["bundle_size_bytes"].as_u64().unwrap(),
            std::fs::metadata(&bundle).unwrap().len()
        );
        let cell = format!("{}/dose=1e+04", job["view"].as_str().unwrap());
        for line in [
            format!("→ Bundle [{cell}]: wts.h5.zip"),
            format!("→ SHA256 [{cell}]: {sha}"),
        ] {
            assert!(stdout.contains(&line), "no '{line}' in:\n{stdout}");
        }
    }
    assert_eq!(
        json(&hub.join("data/phase_e/skip_summary.json"))["skipped_count"],
        0
    );
    let reconstruction = json(&hub.join("data/phase_f/reconstruction_manifest.json"));
    assert_eq!(reconstruction["n_success"], 1, "{reconstruction:#}");
    let comparison = json(&hub.join("analysis/comparison_manifest.json"));
    assert_eq!(
        (
            comparison["n_jobs"].as_u64(),
            comparison["n_failed"].as_u64()
        ),
        (Some(1), Some(0))
    );

    // Phase G: every arm and the constant object scored; the aggregates per model.
    let summary = json(&hub.join("analysis/metrics_summary.json"));
    let aggregate = summary["aggregate_metrics"].as_object().unwrap();
    for model in ["PtychoPINN", "Baseline", "Iterative", "Constant"] {
        let ms_ssim = &aggregate[model]["ms_ssim"];
        assert!(
            ms_ssim["mean_phase"].as_f64().unwrap().is_finite(),
            "{model}: {summary:#}"
        );
        assert!(
            aggregate[model]["mae"].get("best_amplitude").is_none(),
            "MAE has no best"
        );
    }
    let highlights =
        std::fs::read_to_string(hub.join("analysis/metrics_delta_highlights.txt")).unwrap();
    assert_eq!(highlights.lines().count(), 4, "{highlights}");
    assert!(highlights.starts_with("MS-SSIM Δ (PtychoPINN - Baseline)  : amplitude "));
    let preview =
        std::fs::read_to_string(hub.join("analysis/metrics_delta_highlights_preview.txt")).unwrap();
    assert!(
        !preview.contains("amplitude") && preview.lines().count() == 4,
        "{preview}"
    );
    let csv =
        std::fs::read_to_string(hub.join("analysis/dose_10000/dense/test/comparison_metrics.csv"))
            .unwrap();
    assert!(
        csv.starts_with("model,metric,amplitude,phase,value\n"),
        "{csv}"
    );
    assert!(
        csv.contains("\nConstant,ssim,") && csv.contains("\nPtychoPINN,ms_ssim,"),
        "{csv}"
    );
    let report = std::fs::read_to_string(hub.join("analysis/report.md")).unwrap();
    assert!(
        report.contains("| Constant |") && report.contains("metrics_vs_dose.png"),
        "{report}"
    );
    for png in [
        "analysis/metrics_vs_dose.png",
        "analysis/reconstructions_amplitude.png",
        "analysis/reconstructions_phase.png",
        "analysis/dose_10000/dense/test/compare.png",
    ] {
        let bytes = std::fs::read(hub.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    assert!(!hub.join("analysis/blocker.log").exists());

    // The inventory's digests are the files'.
    let inventory = std::fs::read_to_string(hub.join("analysis/artifact_inventory.txt")).unwrap();
    assert!(inventory.lines().count() > 20, "{inventory}");
    for line in inventory.lines() {
        let (sha, path) = line.split_once("  ").unwrap();
        assert_eq!(sha256(&hub.join(path)), sha, "{path}");
    }
    assert!(inventory.contains("  data/phase_e/dose_10000/dense/gs2/wts.h5.zip\n"));

    // Where it stands, from the records.
    let status = ptycho(&["study", "status", "--hub", hub.to_str().unwrap()]);
    let status_text = text(&status);
    assert!(status.status.success(), "{status_text}");
    assert!(
        status_text.contains("6 of 6 jobs done, 0 failed, 0 not run"),
        "{status_text}"
    );
    assert!(
        status_text.contains("E train       dense/dose=1e+04 gs2"),
        "{status_text}"
    );

    // Again: nothing is redone, no record changes.
    let records: Vec<(String, Vec<u8>)> = std::fs::read_dir(hub.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("g_aggregate.json"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    let again = study(dir.path(), TINY, &[]);
    let again_text = text(&again);
    assert!(again.status.success(), "{again_text}");
    assert_eq!(
        again_text.matches("done already").count(),
        records.len(),
        "{again_text}"
    );
    for (path, bytes) in records {
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{path} was rewritten");
    }
}

#[test]
fn a_study_killed_in_training_resumes_without_redoing_or_losing_a_finished_job() {
    let dir = tempfile::tempdir().unwrap();
    // Enough epochs that the dense arm is still training when the kill comes.
    let config = TINY
        .replace("epochs = 1\n", "epochs = 40\n")
        .replace("n_groups = 24", "n_groups = 8");
    let path = dir.path().join("study.toml");
    std::fs::write(&path, &config).unwrap();
    let hub = dir.path().join("hub");
    let mut child = study_command(&path, &hub)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dense_log = hub.join("logs/e_train_dose_10000_dense_gs2.log");
    let started = Instant::now();
    while !std::fs::read_to_string(&dense_log).is_ok_and(|t| t.contains("epoch 1/40")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the dense arm trained"
        );
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no training after 10 min"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let finished = [
        "c_simulate",
        "d_overlap_dose_10000_dense",
        "e_train_dose_10000_baseline_gs1",
    ];
    let before: Vec<Vec<u8>> = finished
        .iter()
        .map(|id| std::fs::read(hub.join(format!("jobs/{id}.json"))).unwrap())
        .collect();
    assert!(!hub.join("jobs/e_train_dose_10000_dense_gs2.json").exists());
    let baseline = hub.join("data/phase_e/dose_10000/baseline/gs1/wts.h5.zip");
    let baseline_sha = sha256(&baseline);

    let out = study_command(&path, &hub).output().unwrap();
    let out_text = text(&out);
    assert!(out.status.success(), "{out_text}");
    for (id, bytes) in finished.iter().zip(before) {
        assert_eq!(
            std::fs::read(hub.join(format!("jobs/{id}.json"))).unwrap(),
            bytes,
            "{id} was redone:\n{out_text}"
        );
    }
    assert_eq!(out_text.matches("done already").count(), 3, "{out_text}");
    assert_eq!(sha256(&baseline), baseline_sha);
    let training = json(&hub.join("data/phase_e/training_manifest.json"));
    assert!(
        training["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "success"),
        "{training:#}"
    );
}

#[test]
fn a_failed_job_is_recorded_and_the_rest_of_the_study_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Positions a whole patch apart leave the sparse view of this small scan 4 patterns, too few to
    // group at gridsize 2; the dense arm trains.
    let config = TINY.replace("dense = 0.85", "dense = 0.85\nsparse = 0.0");
    let out = study(dir.path(), &config, &["--arm", "pinn"]);
    let out_text = text(&out);
    assert!(!out.status.success(), "{out_text}");
    assert!(
        out_text.contains("1 job(s) failed; the first, e_train_dose_10000_sparse_gs2"),
        "{out_text}"
    );
    let hub = dir.path().join("hub");
    let blocker = std::fs::read_to_string(hub.join("analysis/blocker.log")).unwrap();
    assert!(
        blocker.contains("e_train_dose_10000_sparse_gs2") && blocker.contains("scan positions"),
        "{blocker}"
    );
    let training = json(&hub.join("data/phase_e/training_manifest.json"));
    let status = |view: &str| {
        training["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["view"] == view)
            .map(|j| {
                (
                    j["status"].as_str().unwrap().to_string(),
                    j["error"].clone(),
                )
            })
            .unwrap()
    };
    assert_eq!(status("dense").0, "success", "{training:#}");
    assert_eq!(status("sparse").0, "failed");
    assert!(status("sparse")
        .1
        .as_str()
        .unwrap()
        .contains("scan positions"));
    let log = std::fs::read_to_string(hub.join("logs/e_train_dose_10000_sparse_gs2.log")).unwrap();
    assert!(log.contains("failed after"), "{log}");
    // The filter's skips are recorded: the baseline and the iterative arm.
    let skips = json(&hub.join("data/phase_e/skip_summary.json"));
    assert_eq!(skips["skipped_count"], 1, "{skips:#}");
    assert!(skips["skipped_views"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("arm filter"));
    // Both cells were scored with what they have: the dense one with its PINN.
    let summary = json(&hub.join("analysis/metrics_summary.json"));
    assert_eq!(summary["n_success"], 2, "{summary:#}");
    assert!(summary["aggregate_metrics"]["PtychoPINN"].is_object());
}

#[test]
fn dry_run_creates_nothing_and_a_hub_refuses_other_settings_until_clobber() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    let plan = study(dir.path(), TINY, &["--dry-run"]);
    let plan_text = text(&plan);
    assert!(plan.status.success(), "{plan_text}");
    assert!(
        plan_text.contains("1. C simulate") && plan_text.contains("G aggregate"),
        "{plan_text}"
    );
    assert!(!hub.exists(), "a dry run created the hub");

    let filtered = study(dir.path(), TINY, &["--arm", "iterative"]);
    assert!(filtered.status.success(), "{}", text(&filtered));
    let other = TINY.replace("epochs = 5", "epochs = 6");
    let refused = study(dir.path(), &other, &[]);
    let refused_text = text(&refused);
    assert!(!refused.status.success());
    assert!(
        refused_text.contains("the hub was made with other settings"),
        "{refused_text}"
    );

    let clobbered = study(dir.path(), &other, &["--clobber", "--arm", "iterative"]);
    assert!(clobbered.status.success(), "{}", text(&clobbered));
    let archived: Vec<_> = std::fs::read_dir(hub.join("archive")).unwrap().collect();
    assert_eq!(archived.len(), 1);
    let old = archived[0].as_ref().unwrap().path();
    assert!(old.join("study.toml").is_file() && old.join("jobs/c_simulate.json").is_file());
    assert!(std::fs::read_to_string(hub.join("study.toml"))
        .unwrap()
        .contains("epochs = 6"));

    // A folder holding someone's files is not taken for a hub.
    let theirs = tempfile::tempdir().unwrap();
    std::fs::create_dir(theirs.path().join("hub")).unwrap();
    std::fs::write(theirs.path().join("hub/notes.txt"), "mine").unwrap();
    let refused = study(theirs.path(), TINY, &[]);
    let refused_text = text(&refused);
    assert!(!refused.status.success());
    assert!(
        refused_text.contains("not empty (notes.txt) and not a study hub"),
        "{refused_text}"
    );
    let left: Vec<_> = std::fs::read_dir(theirs.path().join("hub"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 2, "the notes and the lock file");
}

#[test]
fn the_default_and_demo_configs_print_and_bad_settings_name_the_field() {
    let default = ptycho(&["study", "config", "--default"]);
    assert!(default.status.success());
    assert!(String::from_utf8_lossy(&default.stdout)
        .contains("[simulation]\ndoses = [1000.0, 10000.0, 100000.0]"));
    let demo = ptycho(&["study", "config", "--demo"]);
    assert!(String::from_utf8_lossy(&demo.stdout).contains("dense = 0.85"));
    let dir = tempfile::tempdir().unwrap();
    let bad = study(dir.path(), "[training]\ngridsize = 3\n", &["--dry-run"]);
    let bad_text = text(&bad);
    assert!(!bad.status.success());
    assert!(
        bad_text.contains("study.toml: training.gridsize must be 1 or 2"),
        "{bad_text}"
    );
}

/// Whether a Slurm cluster answers here. CI starts one (.ci/start-slurm), so there its absence fails
/// the test; elsewhere the test is skipped with the reason printed.
fn slurm_available() -> bool {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must start a Slurm cluster (.ci/start-slurm)"
        );
        eprintln!("skipping: no Slurm cluster answers here (sinfo)");
    }
    ok
}

#[test]
fn a_study_run_as_slurm_job_arrays_matches_the_same_study_run_here() {
    if !slurm_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("study.toml");
    std::fs::write(&config, TINY).unwrap();
    let (cluster, here) = (dir.path().join("cluster"), dir.path().join("here"));
    let submitted = ptycho(&[
        "study",
        "slurm",
        "--config",
        config.to_str().unwrap(),
        "--hub",
        cluster.to_str().unwrap(),
        "--submit",
    ]);
    let submitted_text = text(&submitted);
    assert!(submitted.status.success(), "{submitted_text}");
    let ids: Vec<String> = submitted_text
        .lines()
        .filter_map(|l| l.strip_prefix("submitted ")?.split(" as job ").nth(1))
        .map(String::from)
        .collect();
    assert_eq!(
        ids.len(),
        6,
        "one array per phase C..G and the aggregation:\n{submitted_text}"
    );
    let script = std::fs::read_to_string(cluster.join("slurm/2_train.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=1-2\n"), "{script}");

    // Meanwhile, the same study here.
    let local = study(dir.path(), TINY, &[]);
    let local_text = text(&local);
    assert!(local.status.success(), "{local_text}");
    std::fs::rename(dir.path().join("hub"), &here).unwrap();

    let started = Instant::now();
    loop {
        let queue = Command::new("squeue")
            .args(["-h", "-o", "%i %T %r", "-j", &ids.join(",")])
            .output()
            .unwrap();
        let queue = String::from_utf8_lossy(&queue.stdout).to_string();
        if queue.trim().is_empty() {
            break;
        }
        assert!(
            !queue.contains("DependencyNeverSatisfied"),
            "a phase failed:\n{queue}\n{}",
            std::fs::read_dir(cluster.join("slurm/logs"))
                .unwrap()
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "still queued:\n{queue}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every job ran on the cluster, each writing its own record; the aggregation merged them.
    let records = std::fs::read_dir(cluster.join("jobs")).unwrap().count();
    assert_eq!(records, 7, "a record per job");
    let aggregate_log = std::fs::read_dir(cluster.join("slurm/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("ptycho-aggregate")
        })
        .unwrap();
    let aggregate_text = std::fs::read_to_string(&aggregate_log).unwrap();
    assert!(aggregate_text.contains("Constant"), "{aggregate_text}");
    for manifest in [
        "data/phase_e/training_manifest.json",
        "data/phase_f/reconstruction_manifest.json",
        "analysis/comparison_manifest.json",
        "analysis/metrics_summary.json",
    ] {
        let (a, b) = (json(&cluster.join(manifest)), json(&here.join(manifest)));
        assert_eq!(
            strip_times(a),
            strip_times(b),
            "{manifest} differs between the cluster's run and this one"
        );
    }
}

/// A manifest without what differs between two runs of the same study: times, speeds and the
/// bundles' digests.
fn strip_times(mut v: Value) -> Value {
    match &mut v {
        Value::Object(map) => {
            // A bundle records when it was saved, so its digest and size differ run to run.
            const VARYING: [&str; 5] = [
                "timestamp",
                "generated_at",
                "patterns_per_s",
                "bundle_sha256",
                "bundle_size_bytes",
            ];
            map.retain(|k, _| !VARYING.contains(&k.as_str()));
            for value in map.values_mut() {
                *value = strip_times(value.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = strip_times(item.take());
            }
        }
        _ => {}
    }
    v
}

#[test]
fn a_study_exports_a_ptychodus_product_beside_every_reconstruction() {
    let dir = tempfile::tempdir().unwrap();
    let out = study(dir.path(), TINY, &["--export", "ptychodus"]);
    let out_text = text(&out);
    assert!(out.status.success(), "{out_text}");
    let hub = dir.path().join("hub");
    for product in [
        "data/phase_f/dose_10000/dense/test/product.h5",
        "analysis/dose_10000/dense/test/pinn/product.h5",
        "analysis/dose_10000/dense/test/baseline/product.h5",
    ] {
        let p = ptycho_wgpu::interop::ptychodus::read_product(&hub.join(product))
            .unwrap_or_else(|e| panic!("{product}: {e}"));
        // The views carry the simulation's count scale forward, so the counts are the simulated ones.
        assert!(
            p.count_scale.unwrap() > 1.0,
            "{product}: {:?}",
            p.count_scale
        );
        assert!(out_text.contains(&format!("wrote {}", hub.join(product).display())));
    }
}
