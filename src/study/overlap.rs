//! Study phase D (study-pipeline.md §3): overlap views cut from phase C splits, in both generations the
//! reference has.
//!
//! * Spacing views (§3.2, the legacy generation that phase E/F layouts still name): keep positions whose
//!   nearest neighbour is at least S = (1 − f)·N away, with a greedy fallback and a geometry bound.
//! * Metrics-based subsampling (§3.1): keep a seeded fraction s_img of the positions, group them, and
//!   report three disc-overlap metrics and the geometry bound.

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

// ---------------------------------------------------------------------------------------------------
// Generation 1: spacing views.

/// Spacing statistics of one split (the reference's SpacingMetrics).
#[derive(Clone, Debug, Serialize)]
pub struct SpacingMetrics {
    pub min_spacing: f64,
    pub max_spacing: f64,
    pub mean_spacing: f64,
    pub median_spacing: f64,
    pub threshold: f64,
    pub n_positions: usize,
    pub n_accepted: usize,
    pub n_rejected: usize,
    pub acceptance_rate: f64,
    pub geometry_acceptance_bound: f64,
    pub effective_min_acceptance: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectionStrategy {
    Direct,
    Greedy,
}

#[derive(Clone, Debug)]
pub struct SpacingSelection {
    pub accepted: Vec<bool>,
    pub strategy: SelectionStrategy,
    pub metrics: SpacingMetrics,
}

/// min(0.10, span_x·span_y / (π(S/2)²) / n): 0.10 for one position, 0 for none.
pub fn spacing_geometry_bound(points: &[(f64, f64)], threshold: f64) -> f64 {
    match points.len() {
        0 => 0.0,
        1 => GEOMETRY_CAP,
        n => {
            let slots = span_area(points) / (std::f64::consts::PI * (threshold / 2.0).powi(2));
            (slots / n as f64).clamp(0.0, GEOMETRY_CAP)
        }
    }
}

/// Each position's distance to its nearest other position (infinite when alone).
fn nearest_distances(points: &[(f64, f64)]) -> Vec<f64> {
    (0..points.len())
        .into_par_iter()
        .map(|i| {
            points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, &q)| distance(points[i], q))
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// Greedy selection in (y, then x) order: a position is kept when it is at least `threshold` from
/// every position kept before it. Returns the mask in the original order.
pub fn greedy_spacing(points: &[(f64, f64)], threshold: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[a]
            .1
            .total_cmp(&points[b].1)
            .then(points[a].0.total_cmp(&points[b].0))
    });
    let mut kept: Vec<(f64, f64)> = Vec::new();
    let mut mask = vec![false; points.len()];
    for i in order {
        if kept.iter().all(|&q| distance(points[i], q) >= threshold) {
            mask[i] = true;
            kept.push(points[i]);
        }
    }
    mask
}

/// min, max, mean and median of all pairwise distances.
fn pairwise_statistics(points: &[(f64, f64)]) -> (f64, f64, f64, f64) {
    if points.len() < 2 {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let mut all: Vec<f64> = (0..points.len())
        .into_par_iter()
        .flat_map_iter(|i| (i + 1..points.len()).map(move |j| (i, j)))
        .map(|(i, j)| distance(points[i], points[j]))
        .collect();
    let count = all.len();
    let (min, max, sum) = all
        .iter()
        .fold((f64::MAX, f64::MIN, 0.0), |(lo, hi, s), &d| {
            (lo.min(d), hi.max(d), s + d)
        });
    let median = if count % 2 == 1 {
        *all.select_nth_unstable_by(count / 2, f64::total_cmp).1
    } else {
        let upper = *all.select_nth_unstable_by(count / 2, f64::total_cmp).1;
        let lower = all[..count / 2].iter().cloned().fold(f64::MIN, f64::max);
        (lower + upper) / 2.0
    };
    (min, max, sum / count as f64, median)
}

/// The spacing filter of one split: direct nearest-neighbour acceptance, else greedy, else an error.
pub fn select_by_spacing(
    points: &[(f64, f64)],
    threshold: f64,
    what: &str,
) -> Result<SpacingSelection, StudyError> {
    let n = points.len();
    let bound = spacing_geometry_bound(points, threshold);
    let min_acceptance = SPACING_MIN_ACCEPTANCE.max(0.8 * bound);
    let (min_spacing, max_spacing, mean_spacing, median_spacing) = pairwise_statistics(points);
    let metrics_for = |mask: &[bool]| {
        let accepted = mask.iter().filter(|&&m| m).count();
        SpacingMetrics {
            min_spacing,
            max_spacing,
            mean_spacing,
            median_spacing,
            threshold,
            n_positions: n,
            n_accepted: accepted,
            n_rejected: n - accepted,
            acceptance_rate: if n > 0 {
                accepted as f64 / n as f64
            } else {
                0.0
            },
            geometry_acceptance_bound: bound,
            effective_min_acceptance: min_acceptance,
        }
    };
    let direct: Vec<bool> = nearest_distances(points)
        .iter()
        .map(|&d| d >= threshold)
        .collect();
    let direct_metrics = metrics_for(&direct);
    if direct_metrics.acceptance_rate >= min_acceptance {
        return Ok(SpacingSelection {
            accepted: direct,
            strategy: SelectionStrategy::Direct,
            metrics: direct_metrics,
        });
    }
    let greedy = greedy_spacing(points, threshold);
    let greedy_metrics = metrics_for(&greedy);
    if greedy_metrics.acceptance_rate >= min_acceptance {
        return Ok(SpacingSelection {
            accepted: greedy,
            strategy: SelectionStrategy::Greedy,
            metrics: greedy_metrics,
        });
    }
    Err(StudyError::Input(format!(
        "Insufficient positions meet spacing threshold for {what} even after greedy downsampling. \
         Direct acceptance: {:.1}%, greedy acceptance: {:.1}%, both < minimum {:.2}% (geometry \
         acceptance bound: {:.2}%). Min spacing: {min_spacing:.2} px < threshold: {threshold:.2} px. \
         Simulate with wider scan spacing or use a smaller overlap fraction.",
        100.0 * direct_metrics.acceptance_rate,
        100.0 * greedy_metrics.acceptance_rate,
        100.0 * min_acceptance,
        100.0 * bound
    )))
}

// ---------------------------------------------------------------------------------------------------
// Generation 2: metrics-based subsampling.

#[derive(Clone, Debug)]
pub struct MetricsConfig {
    pub gridsize: usize,
    pub s_img: f64,
    pub n_groups: usize,
    pub neighbor_count: usize,
    pub probe_diameter_px: f64,
    pub rng_seed_subsample: u64,
}

impl MetricsConfig {
    pub fn validate(&self) -> Result<(), StudyError> {
        if self.gridsize != 1 && self.gridsize != 2 {
            return Err(StudyError::Input(format!(
                "gridsize must be 1 or 2, got {}",
                self.gridsize
            )));
        }
        if !(self.s_img > 0.0 && self.s_img <= 1.0) {
            return Err(StudyError::Input(format!(
                "s_img must be in (0, 1], got {}",
                self.s_img
            )));
        }
        if self.n_groups < 1 {
            return Err(StudyError::Input("n_groups must be >= 1".into()));
        }
        if !(self.probe_diameter_px.is_finite() && self.probe_diameter_px > 0.0) {
            return Err(StudyError::Input(format!(
                "probe diameter must be positive, got {}",
                self.probe_diameter_px
            )));
        }
        Ok(())
    }
}

/// The reference's OverlapMetrics; metric 1 is left out of the JSON at gridsize 1.
#[derive(Clone, Debug, Serialize)]
pub struct OverlapMetrics {
    pub metrics_version: &'static str,
    pub gridsize: usize,
    pub s_img: f64,
    pub n_groups: usize,
    pub neighbor_count: usize,
    pub probe_diameter_px: f64,
    pub rng_seed_subsample: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_1_group_based_avg: Option<f64>,
    pub metric_2_image_based_avg: f64,
    pub metric_3_group_to_group_avg: f64,
    pub n_images_total: usize,
    pub n_images_subsampled: usize,
    pub n_unique_images: usize,
    pub n_groups_actual: usize,
    pub geometry_acceptance_bound: f64,
    pub effective_min_acceptance: f64,
}

/// n_keep = max(1, round(s_img·n)) positions drawn without replacement with the seed, in index order.
pub fn subsample(n: usize, s_img: f64, seed: u64) -> Vec<usize> {
    let keep = ((s_img * n as f64).round() as usize)
        .clamp(1, n.max(1))
        .min(n);
    let mut rng = SplitMix64::new(seed);
    let mut indices: Vec<usize> = (0..n).collect();
    for i in 0..keep {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        indices.swap(i, j);
    }
    let mut kept = indices[..keep].to_vec();
    kept.sort_unstable();
    kept
}

/// Groups of positions: at gridsize 1 every position is its own group; at gridsize 2, `n_groups` seeds
/// (with replacement only when more groups than positions are asked for) each with its 4 nearest
/// positions, the seed included. Returns the member indices of each group.
pub fn form_groups(
    points: &[(f64, f64)],
    gridsize: usize,
    n_groups: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, StudyError> {
    let n = points.len();
    if gridsize == 1 {
        return Ok((0..n).map(|i| vec![i]).collect());
    }
    let c = gridsize * gridsize;
    if n < c {
        return Err(StudyError::Input(format!(
            "Need at least {c} images for gridsize={gridsize}, found {n}"
        )));
    }
    let mut rng = SplitMix64::new(seed);
    let seeds: Vec<usize> = if n_groups > n {
        (0..n_groups)
            .map(|_| (rng.next_u64() % n as u64) as usize)
            .collect()
    } else {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..n_groups {
            let j = i + (rng.next_u64() % (n - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(n_groups);
        all
    };
    Ok(seeds
        .par_iter()
        .map(|&s| {
            let mut by_distance: Vec<(f64, usize)> = points
                .iter()
                .enumerate()
                .map(|(j, &q)| (distance(points[s], q), j))
                .collect();
            // The seed first among equals, then by index: a stable choice.
            by_distance.select_nth_unstable_by(c - 1, |a, b| {
                a.0.total_cmp(&b.0)
                    .then((a.1 != s).cmp(&(b.1 != s)))
                    .then(a.1.cmp(&b.1))
            });
            let mut members: Vec<(f64, usize)> = by_distance[..c].to_vec();
            members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            members.into_iter().map(|(_, j)| j).collect()
        })
        .collect())
}

/// Metric 1: for each member of each group, the mean overlap with its ≤ K nearest other members;
/// averaged over all members. None at gridsize 1.
fn metric_group_based(
    points: &[(f64, f64)],
    groups: &[Vec<usize>],
    k: usize,
    diameter: f64,
) -> Option<f64> {
    let mut total = 0.0;
    let mut count = 0usize;
    for group in groups.iter().filter(|g| g.len() > 1) {
        for &i in group {
            let mut d: Vec<f64> = group
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| distance(points[i], points[j]))
                .collect();
            d.sort_by(f64::total_cmp);
            d.truncate(k.max(1));
            total += d
                .iter()
                .map(|&d| disc_overlap_fraction(d, diameter))
                .sum::<f64>()
                / d.len() as f64;
            count += 1;
        }
    }
    (count > 0).then(|| total / count as f64)
}

/// Metric 2: over unique positions, the mean overlap with the min(K, n − 1) nearest other unique
/// positions; averaged. 0 with one unique position or none.
fn metric_image_based(unique: &[(f64, f64)], k: usize, diameter: f64) -> f64 {
    let n = unique.len();
    if n <= 1 {
        return 0.0;
    }
    let k = k.min(n - 1).max(1);
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut d: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| distance(unique[i], unique[j]))
                .collect();
            d.select_nth_unstable_by(k - 1, f64::total_cmp);
            d[..k]
                .iter()
                .map(|&d| disc_overlap_fraction(d, diameter))
                .sum::<f64>()
                / k as f64
        })
        .sum();
    total / n as f64
}

/// Metric 3: for each group centre, the mean overlap with the other centres closer than the diameter
/// (0 when none); averaged over groups. 0 with one group or none.
pub fn metric_group_to_group(centres: &[(f64, f64)], diameter: f64) -> f64 {
    let n = centres.len();
    if n <= 1 {
        return 0.0;
    }
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let near: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| distance(centres[i], centres[j]))
                .filter(|&d| d < diameter)
                .collect();
            if near.is_empty() {
                0.0
            } else {
                near.iter()
                    .map(|&d| disc_overlap_fraction(d, diameter))
                    .sum::<f64>()
                    / near.len() as f64
            }
        })
        .sum();
    total / n as f64
}

/// The geometry bound of the metrics generation and the effective minimum acceptance.
pub fn metrics_geometry_bound(points: &[(f64, f64)], diameter: f64) -> (f64, f64) {
    let n = points.len();
    if n == 0 {
        return (0.0, GEOMETRY_EPS);
    }
    let area = span_area(points).max(GEOMETRY_EPS);
    let disc = std::f64::consts::PI * (diameter.max(GEOMETRY_EPS) / 2.0).powi(2);
    let bound = (area / (n as f64 * disc).max(GEOMETRY_EPS)).min(GEOMETRY_CAP);
    (bound, bound.max(GEOMETRY_EPS))
}

/// The positions kept and the metrics of one split.
pub struct MetricsSelection {
    pub kept: Vec<usize>,
    pub metrics: OverlapMetrics,
}

/// Subsample, group and measure one split's positions.
pub fn select_by_metrics(
    points: &[(f64, f64)],
    config: &MetricsConfig,
) -> Result<MetricsSelection, StudyError> {
    config.validate()?;
    let kept = subsample(points.len(), config.s_img, config.rng_seed_subsample);
    if kept.is_empty() {
        return Err(StudyError::Input(
            "Subsampling resulted in zero images".into(),
        ));
    }
    let sub: Vec<(f64, f64)> = kept.iter().map(|&i| points[i]).collect();
    let groups = form_groups(&sub, config.gridsize, config.n_groups, GROUPING_SEED)?;
    let mut unique = sub.clone();
    unique.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    unique.dedup();
    let centres: Vec<(f64, f64)> = groups
        .iter()
        .map(|g| {
            let (sx, sy) = g
                .iter()
                .fold((0.0, 0.0), |(x, y), &i| (x + sub[i].0, y + sub[i].1));
            (sx / g.len() as f64, sy / g.len() as f64)
        })
        .collect();
    let d = config.probe_diameter_px;
    let metric_1 = if config.gridsize > 1 {
        metric_group_based(&sub, &groups, config.neighbor_count, d)
    } else {
        None
    };
    let (bound, effective) = metrics_geometry_bound(&sub, d);
    Ok(MetricsSelection {
        metrics: OverlapMetrics {
            metrics_version: METRICS_VERSION,
            gridsize: config.gridsize,
            s_img: config.s_img,
            n_groups: config.n_groups,
            neighbor_count: config.neighbor_count,
            probe_diameter_px: d,
            rng_seed_subsample: config.rng_seed_subsample,
            metric_1_group_based_avg: metric_1,
            metric_2_image_based_avg: metric_image_based(&unique, config.neighbor_count, d),
            metric_3_group_to_group_avg: metric_group_to_group(&centres, d),
            n_images_total: points.len(),
            n_images_subsampled: kept.len(),
            n_unique_images: unique.len(),
            n_groups_actual: groups.len(),
            geometry_acceptance_bound: bound,
            effective_min_acceptance: effective,
        },
        kept,
    })
}

// ---------------------------------------------------------------------------------------------------
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

/// The spacing threshold of a view: (1 − f)·N with f = 0.7 (dense) or 0.2 (sparse).
pub fn spacing_threshold(view: &str, patch_size: f64) -> Result<f64, StudyError> {
    let f = match view {
        "dense" => 0.7,
        "sparse" => 0.2,
        other => {
            return Err(StudyError::Input(format!(
                "Unknown view '{other}'. Expected one of: dense, sparse"
            )))
        }
    };
    Ok((1.0 - f) * patch_size)
}

/// One spacing view of one dose folder: `{view}_{split}.npz`, `{split}_metrics.json` and
/// `metrics_bundle.json` in `output_dir`. `patch_size` None: the data's N.
pub fn write_spacing_view(
    dose_dir: &Path,
    view: &str,
    patch_size: Option<f64>,
    output_dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<serde_json::Value, StudyError> {
    let mut bundle = serde_json::Map::new();
    let mut files = serde_json::Map::new();
    for (split, path) in find_splits(dose_dir)? {
        let scan = ScanFile::open(&path)?;
        let threshold = spacing_threshold(view, patch_size.unwrap_or(scan.n as f64))?;
        let points = points_of(&scan);
        let what = format!("{view} view in {split} split ({})", path.display());
        let selection = select_by_spacing(&points, threshold, &what)?;
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
            let files = write_spacing_view(&dir, view, patch_size, &out, &mut progress)?;
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
