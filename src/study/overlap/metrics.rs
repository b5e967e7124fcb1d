//! Generation 2, metrics-based subsampling (study-pipeline.md §3.1): keep a seeded fraction s_img of
//! the positions, group them, and report three disc-overlap metrics and the geometry bound.

use super::*;

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
