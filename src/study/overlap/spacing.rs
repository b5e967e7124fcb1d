//! Generation 1, the spacing views (study-pipeline.md §3.2; the legacy generation that phase E/F
//! layouts still name): keep positions whose nearest neighbour is at least S = (1 − f)·N away, with a
//! greedy fallback and a geometry bound.

use super::*;

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

/// How a spacing view chooses its positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpacingRule {
    /// The legacy generation: direct nearest-neighbour acceptance, else greedy, else an error when
    /// neither reaches the geometry's minimum acceptance.
    Gated,
    /// The greedy selection, always, with no acceptance gate: the reference retired the gate
    /// (ACCEPTANCE-001, overlap_metrics.md), which random scans of the study's size fail; and
    /// unlike "direct", a smaller threshold never keeps fewer positions.
    Greedy,
}

/// The spacing filter of one split under `rule`.
pub fn select_by_spacing(
    points: &[(f64, f64)],
    threshold: f64,
    rule: SpacingRule,
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
    if rule == SpacingRule::Greedy {
        let greedy = greedy_spacing(points, threshold);
        return Ok(SpacingSelection {
            metrics: metrics_for(&greedy),
            accepted: greedy,
            strategy: SelectionStrategy::Greedy,
        });
    }
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
