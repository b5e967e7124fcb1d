//! Study phase D (study-pipeline.md §3): overlap views cut from phase C splits, in both generations the
//! reference has.
//!
//! * Spacing views (§3.2, the legacy generation that phase E/F layouts still name): keep positions whose
//!   nearest neighbour is at least S = (1 − f)·N away, with a greedy fallback and a geometry bound.
//! * Metrics-based subsampling (§3.1): keep a seeded fraction s_img of the positions, group them, and
//!   report three disc-overlap metrics and the geometry bound.
//!
//! This file holds the disc geometry both generations share and the files they write; `spacing.rs`
//! and `metrics.rs` the selections.

mod metrics;
mod spacing;

pub use metrics::*;
pub use spacing::*;

use std::path::{Path, PathBuf};

use ptycho_kernels::rng::SplitMix64;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::data::contract::ScanFile;
use crate::data::subset::write_rows;
use crate::data::DataError;
use crate::io::npz::NpzFile;
use crate::persist::output_dir::OutputDir;
use crate::study::StudyError;

/// Below this the geometry quantities are clamped (the reference's GEOMETRY_ACCEPTANCE_EPS).
pub const GEOMETRY_EPS: f64 = 1e-6;
/// The geometry bound never exceeds this.
pub const GEOMETRY_CAP: f64 = 0.10;
/// The spacing views' floor on the minimum acceptance.
const SPACING_MIN_ACCEPTANCE: f64 = 0.0005;
pub const METRICS_VERSION: &str = "1.0";
/// The seed of the group draw, fixed as in the reference.
const GROUPING_SEED: u64 = 42;

/// Overlap area of two discs of diameter `diameter` whose centres are `d` apart.
pub fn disc_overlap_area(d: f64, diameter: f64) -> f64 {
    let r = diameter / 2.0;
    if d < 1e-10 {
        std::f64::consts::PI * r * r
    } else if d >= diameter {
        0.0
    } else {
        2.0 * r * r * (d / (2.0 * r)).acos() - (d / 2.0) * (4.0 * r * r - d * d).sqrt()
    }
}

/// The overlap area as a fraction of one disc's area: 1 at d = 0, 0 from d = diameter on.
pub fn disc_overlap_fraction(d: f64, diameter: f64) -> f64 {
    let r = diameter / 2.0;
    disc_overlap_area(d, diameter) / (std::f64::consts::PI * r * r)
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

fn span_area(points: &[(f64, f64)]) -> f64 {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    (x1 - x0) * (y1 - y0)
}

// Files.

/// Write JSON atomically, an error naming the file.
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StudyError> {
    crate::io::atomic::write_json(path, value).map_err(|e| DataError::io(path.display(), e).into())
}

fn points_of(scan: &ScanFile) -> Vec<(f64, f64)> {
    scan.xcoords
        .iter()
        .zip(&scan.ycoords)
        .map(|(&x, &y)| (x, y))
        .collect()
}

/// The train and test files of one phase C dose folder (`*train.npz`, `*test.npz`).
pub fn find_splits(dose_dir: &Path) -> Result<[(&'static str, PathBuf); 2], StudyError> {
    let entries = std::fs::read_dir(dose_dir).map_err(|e| DataError::io(dose_dir.display(), e))?;
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let find = |suffix: &str| {
        names
            .iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
            })
            .cloned()
            .ok_or_else(|| {
                StudyError::Input(format!(
                    "{}: no *{suffix} file (phase C writes patched_train.npz and patched_test.npz)",
                    dose_dir.display()
                ))
            })
    };
    Ok([("train", find("train.npz")?), ("test", find("test.npz")?)])
}

/// A view's `_metadata` (the reference's keys) with the source's `physics_parameters` carried
/// forward, so that the dose and the count scale travel with the data.
fn with_physics(mut metadata: serde_json::Value, scan: &ScanFile) -> serde_json::Value {
    if let Some(physics) = scan
        .metadata
        .as_ref()
        .and_then(|m| m.get("physics_parameters"))
    {
        metadata["physics_parameters"] = physics.clone();
    }
    metadata
}

/// The reference's overlap fraction of a view: 0.7 (dense) or 0.2 (sparse).
pub fn view_fraction(view: &str) -> Result<f64, StudyError> {
    match view {
        "dense" => Ok(0.7),
        "sparse" => Ok(0.2),
        other => Err(StudyError::Input(format!(
            "Unknown view '{other}'. Expected one of: dense, sparse"
        ))),
    }
}

/// The spacing threshold of a view: (1 − f)·N.
pub fn spacing_threshold(view: &str, patch_size: f64) -> Result<f64, StudyError> {
    Ok((1.0 - view_fraction(view)?) * patch_size)
}

/// One spacing view of one dose folder, positions kept at least (1 − `fraction`)·N apart under
/// `rule`: `{view}_{split}.npz`, `{split}_metrics.json` and `metrics_bundle.json` in `output_dir`.
/// `patch_size` None: the data's N.
pub fn write_spacing_view(
    dose_dir: &Path,
    view: &str,
    fraction: f64,
    rule: SpacingRule,
    patch_size: Option<f64>,
    output_dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<serde_json::Value, StudyError> {
    let mut bundle = serde_json::Map::new();
    let mut files = serde_json::Map::new();
    for (split, path) in find_splits(dose_dir)? {
        let scan = ScanFile::open(&path)?;
        let threshold = (1.0 - fraction) * patch_size.unwrap_or(scan.n as f64);
        let points = points_of(&scan);
        let what = format!("{view} view in {split} split ({})", path.display());
        let selection = select_by_spacing(&points, threshold, rule, &what)?;
        let m = &selection.metrics;
        progress(&format!(
            "{view}/{split}: threshold {threshold:.2} px, kept {}/{} ({:.1}%, {:?})",
            m.n_accepted,
            m.n_positions,
            100.0 * m.acceptance_rate,
            selection.strategy
        ));
        let rows: Vec<usize> = (0..points.len())
            .filter(|&i| selection.accepted[i])
            .collect();
        let metadata = json!({
            "overlap_view": view,
            "spacing_threshold": threshold,
            "source_file": path.display().to_string(),
            "n_accepted": m.n_accepted,
            "n_rejected": m.n_rejected,
            "acceptance_rate": m.acceptance_rate,
            "selection_strategy": selection.strategy,
            "geometry_acceptance_bound": m.geometry_acceptance_bound,
            "effective_min_acceptance": m.effective_min_acceptance,
        });
        let out = output_dir.join(format!("{view}_{split}.npz"));
        let npz = NpzFile::open(&path)?;
        let metadata = with_physics(metadata, &scan);
        write_rows(&npz, scan.m, &rows, false, &metadata.to_string(), &out)?;
        write_json(&output_dir.join(format!("{split}_metrics.json")), m)?;
        bundle.insert(split.into(), serde_json::to_value(m).expect("plain data"));
        files.insert(split.into(), json!(out.display().to_string()));
    }
    let bundle_path = output_dir.join("metrics_bundle.json");
    write_json(&bundle_path, &bundle)?;
    Ok(json!({
        "train": files["train"],
        "test": files["test"],
        "train_metrics": output_dir.join("train_metrics.json").display().to_string(),
        "test_metrics": output_dir.join("test_metrics.json").display().to_string(),
        "metrics_bundle": bundle_path.display().to_string(),
    }))
}

/// Metrics-based views of one dose folder: `{split}.npz`, `{split}_metrics.json`, `metrics_bundle.json`.
pub fn write_metrics_views(
    dose_dir: &Path,
    config: &MetricsConfig,
    output_dir: &Path,
    overwrite: bool,
    mut progress: impl FnMut(&str),
) -> Result<Vec<PathBuf>, StudyError> {
    config.validate()?;
    let splits = find_splits(dose_dir)?;
    let out = OutputDir::lock(output_dir).map_err(|e| StudyError::Input(e.to_string()))?;
    let mut ours: Vec<String> = splits
        .iter()
        .flat_map(|(split, _)| [format!("{split}.npz"), format!("{split}_metrics.json")])
        .collect();
    ours.push("metrics_bundle.json".into());
    out.refuse_existing(
        &ours.iter().map(String::as_str).collect::<Vec<_>>(),
        overwrite,
        "--overwrite",
    )
    .map_err(|e| StudyError::Input(e.to_string()))?;
    let mut bundle = serde_json::Map::new();
    let mut written = Vec::new();
    for (split, path) in splits {
        let scan = ScanFile::open(&path)?;
        let selection = select_by_metrics(&points_of(&scan), config)?;
        let m = &selection.metrics;
        progress(&format!(
            "{split}: kept {}/{} images, {} groups; metric 2 {:.4}, metric 3 {:.4}",
            m.n_images_subsampled,
            m.n_images_total,
            m.n_groups_actual,
            m.metric_2_image_based_avg,
            m.metric_3_group_to_group_avg
        ));
        let metadata = json!({
            "gridsize": config.gridsize,
            "s_img": config.s_img,
            "n_groups": config.n_groups,
            "neighbor_count": config.neighbor_count,
            "probe_diameter_px": config.probe_diameter_px,
            "rng_seed_subsample": config.rng_seed_subsample,
            "metrics_version": METRICS_VERSION,
            "geometry_acceptance_bound": m.geometry_acceptance_bound,
            "effective_min_acceptance": m.effective_min_acceptance,
            "source_file": path.display().to_string(),
        });
        let out = output_dir.join(format!("{split}.npz"));
        let npz = NpzFile::open(&path)?;
        let metadata = with_physics(metadata, &scan);
        write_rows(
            &npz,
            scan.m,
            &selection.kept,
            true,
            &metadata.to_string(),
            &out,
        )?;
        let metrics_path = output_dir.join(format!("{split}_metrics.json"));
        write_json(&metrics_path, m)?;
        bundle.insert(split.into(), serde_json::to_value(m).expect("plain data"));
        written.extend([out, metrics_path]);
    }
    let bundle_path = output_dir.join("metrics_bundle.json");
    write_json(&bundle_path, &bundle)?;
    written.push(bundle_path);
    Ok(written)
}

/// The dose folders `dose_{int}` under a phase C root, in increasing dose, or those of `doses`.
fn dose_dirs(root: &Path, doses: Option<&[f64]>) -> Result<Vec<(String, PathBuf)>, StudyError> {
    if !root.is_dir() {
        return Err(StudyError::Input(format!(
            "phase C root not found: {}",
            root.display()
        )));
    }
    let mut found: Vec<(u64, String, PathBuf)> = match doses {
        Some(doses) => doses
            .iter()
            .map(|d| {
                let label = format!("dose_{}", *d as u64);
                (*d as u64, label.clone(), root.join(label))
            })
            .collect(),
        None => std::fs::read_dir(root)
            .map_err(|e| DataError::io(root.display(), e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let value = name.strip_prefix("dose_")?.parse::<u64>().ok()?;
                e.path().is_dir().then(|| (value, name, e.path()))
            })
            .collect(),
    };
    found.sort();
    if found.is_empty() {
        return Err(StudyError::Input(format!(
            "no dose_* folders under {}",
            root.display()
        )));
    }
    Ok(found.into_iter().map(|(_, l, p)| (l, p)).collect())
}

/// What `run_spacing_views` writes.
#[derive(Clone, Debug, Default)]
pub struct SpacingViews {
    /// The doses to process; None: every dose_* folder.
    pub doses: Option<Vec<f64>>,
    pub views: Vec<String>,
    /// N of the spacing rule; None: the data's patch size.
    pub patch_size: Option<f64>,
    /// Also copy each view's metrics bundle under this folder.
    pub artifact_root: Option<PathBuf>,
    /// Replace views and the manifest already there (otherwise refused).
    pub overwrite: bool,
}

/// The spacing views' manifest in their output root.
const MANIFEST: &str = "overlap_manifest.json";

/// Spacing views for every dose and view: `OUT/dose_{int}/{view}/...` and `OUT/overlap_manifest.json`;
/// with `artifact_root`, each view's bundle is also copied to `ARTIFACTS/metrics/dose_{int}/{view}.json`.
pub fn run_spacing_views(
    phase_c_root: &Path,
    output_root: &Path,
    config: &SpacingViews,
    mut progress: impl FnMut(&str),
) -> Result<PathBuf, StudyError> {
    let SpacingViews {
        doses,
        views,
        patch_size,
        artifact_root,
        overwrite,
    } = config;
    let (patch_size, overwrite) = (*patch_size, *overwrite);
    for view in views {
        spacing_threshold(view, 1.0)?;
    }
    let dirs = dose_dirs(phase_c_root, doses.as_deref())?;
    let out = OutputDir::lock(output_root).map_err(|e| StudyError::Input(e.to_string()))?;
    let mut ours: Vec<String> = dirs
        .iter()
        .flat_map(|(label, _)| views.iter().map(move |v| format!("{label}/{v}")))
        .collect();
    ours.push(MANIFEST.into());
    out.refuse_existing(
        &ours.iter().map(String::as_str).collect::<Vec<_>>(),
        overwrite,
        "--overwrite",
    )
    .map_err(|e| StudyError::Input(e.to_string()))?;
    let mut manifest = serde_json::Map::new();
    for (label, dir) in dirs {
        if !dir.is_dir() {
            return Err(StudyError::Input(format!(
                "dose folder not found: {}",
                dir.display()
            )));
        }
        let mut entry = serde_json::Map::new();
        for view in views {
            let out = output_root.join(&label).join(view);
            let files = write_spacing_view(
                &dir,
                view,
                view_fraction(view)?,
                SpacingRule::Gated,
                patch_size,
                &out,
                &mut progress,
            )?;
            if let Some(artifacts) = artifact_root {
                let target = artifacts
                    .join("metrics")
                    .join(&label)
                    .join(format!("{view}.json"));
                let bundle: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(out.join("metrics_bundle.json"))
                        .map_err(|e| DataError::io(out.display(), e))?,
                )
                .expect("written above");
                write_json(&target, &bundle)?;
            }
            entry.insert(view.clone(), files);
        }
        manifest.insert(label.clone(), json!({ "dose": label.trim_start_matches("dose_").parse::<f64>().unwrap_or(f64::NAN), "views": entry }));
    }
    let path = output_root.join(MANIFEST);
    write_json(&path, &manifest)?;
    Ok(path)
}
