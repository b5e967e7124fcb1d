//! Phase G for one cell (dose, view): reconstruct the view's test split with each trained arm, and
//! score every arm, beside the trivial reconstruction (ones at the same positions), against the
//! truth.

use std::path::Path;

use ptycho_kernels::Backend;
use rustfft::num_complex::Complex64;
use serde_json::{json, Map, Value};

use super::config::StudyConfig;
use super::plan::{
    analysis_dir, bundle_dir, iterative_dir, test_file, Arm, Job, Plan, CONSTANT_MODEL,
};
use super::record::{JobRecord, Status};
use super::run::JobOutput;
use super::StudyError;
use crate::eval::compare::{
    compare, read_image, read_positions, Align, CompareOptions, Comparison, PartMetrics,
    RECON_KEYS, TRUTH_KEYS,
};
use crate::eval::image::Complex;
use crate::eval::report::REFERENCE_METRIC_NAMES;
use crate::eval::{plot, report};
use crate::infer::{infer, InferConfig};
use crate::io::atomic::write_atomic;
use crate::io::npz_writer::NpzWriter;
use crate::persist::bundle::BUNDLE_FILE;
use crate::persist::output_dir::OutputDir;

/// The reference's tidy metrics table (`model,metric,amplitude,phase,value`).
pub const METRICS_CSV: &str = "comparison_metrics.csv";

/// The prepared (aligned, trimmed) images of every model, for the report's grid.
pub const ALIGNED_NPZ: &str = "reconstructions_aligned.npz";

/// Whether the job that writes `output` (relative to the hub) has a success record.
fn produced(hub: &Path, plan: &Plan, output: &Path) -> bool {
    plan.jobs
        .iter()
        .find(|j| j.outputs.iter().any(|o| o == output))
        .and_then(|j| JobRecord::read(hub, &j.id).ok().flatten())
        .is_some_and(|r| r.status == Status::Success)
        && hub.join(output).is_file()
}

pub fn compare_job<B: Backend>(
    b: &B,
    hub: &Path,
    config: &StudyConfig,
    plan: &Plan,
    job: &Job,
    out: &mut JobOutput,
) -> Result<Value, StudyError> {
    let dose = job.dose.expect("a comparison has a dose");
    let view = job.view.as_deref().expect("a comparison has a view");
    let dir = hub.join(analysis_dir(dose, view));
    let _lock = OutputDir::lock(&dir).map_err(|e| StudyError::Input(e.to_string()))?;
    let test = hub.join(test_file(dose, view));
    let eval = |e: crate::eval::EvalError| StudyError::Input(e.to_string());
    let truth = read_image(&test, &TRUTH_KEYS).map_err(eval)?;
    let positions = read_positions(&test)
        .map_err(eval)?
        .ok_or_else(|| StudyError::Input(format!("{}: no xcoords/ycoords", test.display())))?;

    // (model, reconstruction file) of every arm that finished.
    let mut arms: Vec<(Arm, std::path::PathBuf)> = Vec::new();
    let trained = [
        (Arm::Pinn, bundle_dir(dose, view, config.training.gridsize)),
        (Arm::Baseline, bundle_dir(dose, "baseline", 1)),
    ];
    for (arm, bundle) in trained {
        if !produced(hub, plan, &bundle.join(BUNDLE_FILE)) {
            continue;
        }
        let arm_dir = dir.join(arm.name());
        out.line(&format!(
            "{}: inference with {}",
            arm.model(),
            hub.join(&bundle).display()
        ));
        let infer_config = InferConfig {
            model_dir: hub.join(&bundle),
            test_data: test.clone(),
            output_dir: arm_dir.clone(),
            stitch_crop: config.metrics.stitch_crop,
            batch_size: 32,
            seed: config.training.seed,
            phase_sync: true,
            overwrite: true,
        };
        infer(b, &infer_config, |done, total| {
            out.step(done, total, format!("{} inference", arm.model()))
        })
        .map_err(|e| StudyError::Input(e.to_string()))?;
        arms.push((arm, arm_dir.join("reconstruction.npz")));
    }
    let iterative = iterative_dir(dose, view).join("reconstruction.npz");
    if produced(hub, plan, &iterative) {
        arms.push((Arm::Iterative, hub.join(iterative)));
    }

    let options = |align| CompareOptions {
        align,
        ms_ssim_sigma: config.metrics.ms_ssim_sigma,
        stitch_crop: config.metrics.stitch_crop,
        ..CompareOptions::default()
    };
    let mut results: Vec<(String, Comparison)> = Vec::new();
    let mut seconds: Map<String, Value> = Map::new();
    for (arm, path) in &arms {
        let recon = read_image(path, &RECON_KEYS).map_err(eval)?;
        let recon_positions = read_positions(path).map_err(eval)?;
        let align = if *arm == Arm::Iterative && config.metrics.register_iterative {
            Align::Register
        } else {
            Align::Crop
        };
        let comparison = compare(&recon, &truth, recon_positions.as_ref(), &options(align))
            .map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))?;
        if let Some(r) = comparison.registration.as_ref().filter(|r| !r.trusted) {
            out.line(&format!(
                "{}: registration not trusted (peak {:.1}x its RMS), scored without a shift",
                arm.model(),
                r.peak_ratio
            ));
        }
        if let Some(s) = computation_seconds(path) {
            seconds.insert(arm.model().into(), json!(s));
        }
        results.push((arm.model().to_string(), comparison));
    }
    let constant = Complex::new(
        truth.h,
        truth.w,
        vec![Complex64::new(1.0, 0.0); truth.h * truth.w],
    );
    let constant_score = compare(&constant, &truth, Some(&positions), &options(Align::Crop))
        .map_err(|e| StudyError::Input(format!("the constant object: {e}")))?;
    results.push((CONSTANT_MODEL.to_string(), constant_score));

    for (model, c) in &results {
        out.line(&format!(
            "{model:<10} amplitude SSIM {:.3} MS-SSIM {:.3} MAE {:.4} | phase SSIM {:.3} MS-SSIM {:.3} MAE {:.4}",
            c.amplitude.ssim, c.amplitude.ms_ssim, c.amplitude.mae,
            c.phase.ssim, c.phase.ms_ssim, c.phase.mae
        ));
    }
    let io = |e: std::io::Error| StudyError::Input(format!("{}: {e}", dir.display()));
    report::write_all(
        &dir,
        &results,
        &test.display().to_string(),
        &plot::compare_png(&results),
    )
    .map_err(io)?;
    write_atomic(
        &dir.join(METRICS_CSV),
        tidy_csv(&results, &seconds).as_bytes(),
    )
    .map_err(io)?;
    write_aligned(&dir.join(ALIGNED_NPZ), &results)?;
    Ok(json!({
        "test_data": test_file(dose, view).display().to_string(),
        "models": results.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
        "metrics": results
            .iter()
            .map(|(m, c)| (m.clone(), summary_metrics(c)))
            .collect::<Map<String, Value>>(),
        "computation_time_s": seconds,
    }))
}

/// The metrics the study's summaries use, per part.
fn summary_metrics(c: &Comparison) -> Value {
    let part = |p: &PartMetrics| {
        REFERENCE_METRIC_NAMES
            .iter()
            .map(|&name| (name.to_string(), json!(report::value(p, name))))
            .collect::<Map<String, Value>>()
    };
    let mut v = json!({ "amplitude": part(&c.amplitude), "phase": part(&c.phase) });
    if let Some([dy, dx]) = c.registration_offset {
        v["registration_offset"] = json!([dy, dx]);
    }
    v
}

/// The reconstruction's computation time, when its file records one.
fn computation_seconds(path: &Path) -> Option<f64> {
    let npz = crate::io::npz::NpzFile::open(path).ok()?;
    ["computation_time_s", "reconstruction_time"]
        .iter()
        .find(|k| npz.has(k))
        .and_then(|k| npz.array(k).ok()?.to_f64_vec().ok()?.first().copied())
}

/// The reference's `comparison_metrics.csv`: one row per (model, metric) with amplitude and phase,
/// and scalar rows (registration offsets, computation time) in `value`.
fn tidy_csv(results: &[(String, Comparison)], seconds: &Map<String, Value>) -> String {
    let mut s = String::from("model,metric,amplitude,phase,value\n");
    for (model, c) in results {
        for metric in REFERENCE_METRIC_NAMES {
            let pick = |p: &PartMetrics| report::value(p, metric).expect("a known metric");
            s += &format!(
                "{model},{metric},{:.6},{:.6},\n",
                pick(&c.amplitude),
                pick(&c.phase)
            );
        }
        if let Some([dy, dx]) = c.registration_offset {
            s += &format!("{model},registration_offset_dy,,,{dy:.6}\n");
            s += &format!("{model},registration_offset_dx,,,{dx:.6}\n");
        }
        if let Some(t) = seconds.get(model).and_then(Value::as_f64) {
            s += &format!("{model},computation_time_s,,,{t:.6}\n");
        }
    }
    s
}

/// `{model}_amplitude`, `{model}_phase` (and the truth's, from the first model) as float32.
fn write_aligned(path: &Path, results: &[(String, Comparison)]) -> Result<(), StudyError> {
    let mut w = NpzWriter::create(path, true)?;
    let add = |w: &mut NpzWriter, key: String, img: &crate::eval::image::Real| {
        let data: Vec<f32> = img.data.iter().map(|&v| v as f32).collect();
        w.add_f32(&key, &[img.h, img.w], &data)
    };
    if let Some((_, first)) = results.first() {
        add(&mut w, "ground_truth_amplitude".into(), &first.prepared[0])?;
        add(&mut w, "ground_truth_phase".into(), &first.prepared[2])?;
    }
    for (model, c) in results {
        let key = model.to_lowercase();
        add(&mut w, format!("{key}_amplitude"), &c.prepared[1])?;
        add(&mut w, format!("{key}_phase"), &c.prepared[3])?;
    }
    Ok(w.finish()?)
}
