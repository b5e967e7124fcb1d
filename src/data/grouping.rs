//! Grouping scan positions into samples (physics-and-model.md §3.2–3.3).
//!
//! gridsize 1: each pattern is a sample. gridsize g > 1: C = g² patterns per sample, drawn at random from
//! the K nearest neighbours of a seed position, the seed excluded. Offsets follow the reference: the group
//! centroid, and relative offsets −(position − centroid).

use ptycho_kernels::rng::SplitMix64;

use super::{DataError, Result};

#[derive(Clone, Debug)]
pub struct GroupingConfig {
    pub gridsize: usize,
    /// Samples to draw; None: one per pattern.
    pub n_groups: Option<usize>,
    /// K, the neighbours a group is drawn from (gridsize > 1).
    pub neighbor_count: usize,
    /// Allow n_groups > M for gridsize > 1 by drawing from the C-combinations of each seed's neighbours.
    pub enable_oversampling: bool,
    pub seed: u64,
}

impl Default for GroupingConfig {
    fn default() -> Self {
        Self {
            gridsize: 1,
            n_groups: None,
            neighbor_count: 4,
            enable_oversampling: false,
            seed: 42,
        }
    }
}

/// B groups of C pattern indices with their offsets.
#[derive(Clone, Debug, PartialEq)]
pub struct Groups {
    pub c: usize,
    /// (B, C) pattern indices.
    pub indices: Vec<usize>,
    /// (B, 2) group centroids (x, y): the reference's coords_offsets.
    pub centroids: Vec<[f64; 2]>,
    /// (B, C, 2) −(position − centroid) (x, y): the reference's coords_relative.
    pub relative: Vec<[f64; 2]>,
}

impl Groups {
    pub fn len(&self) -> usize {
        self.centroids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.centroids.is_empty()
    }

    /// The groups `range` (rows of this table), in order.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Groups {
        let c = self.c;
        Groups {
            c,
            indices: self.indices[range.start * c..range.end * c].to_vec(),
            centroids: self.centroids[range.clone()].to_vec(),
            relative: self.relative[range.start * c..range.end * c].to_vec(),
        }
    }

    /// Every pattern as a group of its own (C = 1), centred on its position (centroid − relative).
    pub fn flattened(&self) -> Groups {
        let centroids = self
            .relative
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let centroid = self.centroids[k / self.c];
                [centroid[0] - r[0], centroid[1] - r[1]]
            })
            .collect();
        Groups {
            c: 1,
            indices: self.indices.clone(),
            centroids,
            relative: vec![[0.0, 0.0]; self.indices.len()],
        }
    }
}

/// Draw `k` distinct values of 0..n (partial Fisher–Yates).
fn choose(rng: &mut SplitMix64, n: usize, k: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k.min(n));
    pool
}

pub fn group(x: &[f64], y: &[f64], config: &GroupingConfig) -> Result<Groups> {
    let m = x.len();
    let g = config.gridsize;
    if g == 0 || y.len() != m {
        return Err(DataError::Grouping(format!(
            "gridsize must be ≥ 1 and x/y of equal length (got {g}, {m}, {})",
            y.len()
        )));
    }
    if m == 0 {
        return Err(DataError::Grouping(
            "no scan positions: an empty dataset".into(),
        ));
    }
    let c = g * g;
    let mut rng = SplitMix64::new(config.seed);
    let wanted = config.n_groups.unwrap_or(m);
    let members: Vec<Vec<usize>> = if c == 1 {
        // The reference caps the count at M for gridsize 1.
        let seeds = if wanted >= m {
            (0..m).collect()
        } else {
            choose(&mut rng, m, wanted)
        };
        seeds.into_iter().map(|s| vec![s]).collect()
    } else {
        let k = config.neighbor_count;
        if k < c {
            return Err(DataError::Grouping(format!(
                "neighbor_count={k} < C={c}: a group of C patterns needs at least C neighbours (OVERSAMPLING-001)"
            )));
        }
        if k >= m {
            return Err(DataError::Grouping(format!(
                "neighbor_count={k} needs more than {k} scan positions; the dataset has {m}"
            )));
        }
        let tree = KdTree::new(x, y);
        let neighbours = |s: usize| tree.nearest(x[s], y[s], k, s);
        if wanted > m {
            if !config.enable_oversampling {
                return Err(DataError::Grouping(format!(
                    "n_groups={wanted} > {m} scan positions with gridsize {g}: ask for at most {m} \
                     groups (--n-groups), or leave --n-groups out to use every pattern once (more \
                     groups would need the reference's K-choose-C oversampling, OVERSAMPLING-001, \
                     which the commands do not offer)"
                )));
            }
            let combos = combinations(k, c);
            let pool = m * combos.len();
            if wanted > pool {
                return Err(DataError::Grouping(format!(
                    "n_groups={wanted} exceeds the {pool} distinct groups of {m} seeds x C({k},{c}) (OVERSAMPLING-001)"
                )));
            }
            choose(&mut rng, pool, wanted)
                .into_iter()
                .map(|p| {
                    let near = neighbours(p / combos.len());
                    combos[p % combos.len()].iter().map(|&i| near[i]).collect()
                })
                .collect()
        } else {
            let seeds = if wanted == m {
                (0..m).collect()
            } else {
                choose(&mut rng, m, wanted)
            };
            seeds
                .into_iter()
                .map(|s| {
                    let near = neighbours(s);
                    choose(&mut rng, k, c)
                        .into_iter()
                        .map(|i| near[i])
                        .collect()
                })
                .collect()
        }
    };
    let mut groups = Groups {
        c,
        indices: Vec::new(),
        centroids: Vec::new(),
        relative: Vec::new(),
    };
    for member in members {
        let cx = member.iter().map(|&i| x[i]).sum::<f64>() / c as f64;
        let cy = member.iter().map(|&i| y[i]).sum::<f64>() / c as f64;
        groups.centroids.push([cx, cy]);
        for &i in &member {
            groups.relative.push([-(x[i] - cx), -(y[i] - cy)]);
            groups.indices.push(i);
        }
    }
    Ok(groups)
}

/// All C-element subsets of 0..k, in lexicographic order.
fn combinations(k: usize, c: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur: Vec<usize> = (0..c).collect();
    loop {
        out.push(cur.clone());
        let Some(i) = (0..c).rev().find(|&i| cur[i] < k - c + i) else {
            return out;
        };
        cur[i] += 1;
        for j in i + 1..c {
            cur[j] = cur[j - 1] + 1;
        }
    }
}

/// A static 2-D k-d tree over the scan positions: O(M log M) to build, about O(log M) per query.
struct KdTree<'a> {
    x: &'a [f64],
    y: &'a [f64],
    /// Point indices in tree order: the median of each range is its node.
    order: Vec<usize>,
}

impl<'a> KdTree<'a> {
    fn new(x: &'a [f64], y: &'a [f64]) -> Self {
        let mut order: Vec<usize> = (0..x.len()).collect();
        let mut tree = Self {
            x,
            y,
            order: Vec::new(),
        };
        tree.build(&mut order, 0);
        tree.order = order;
        tree
    }

    fn coord(&self, i: usize, axis: usize) -> f64 {
        if axis == 0 {
            self.x[i]
        } else {
            self.y[i]
        }
    }

    fn build(&self, range: &mut [usize], depth: usize) {
        if range.len() <= 1 {
            return;
        }
        let axis = depth % 2;
        let mid = range.len() / 2;
        range.select_nth_unstable_by(mid, |&a, &b| {
            self.coord(a, axis).total_cmp(&self.coord(b, axis))
        });
        let (left, right) = range.split_at_mut(mid);
        self.build(left, depth + 1);
        self.build(&mut right[1..], depth + 1);
    }

    /// The k nearest points to (qx, qy) other than `exclude`, nearest first (ties by index).
    fn nearest(&self, qx: f64, qy: f64, k: usize, exclude: usize) -> Vec<usize> {
        let mut best: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
        self.search(0, self.order.len(), 0, qx, qy, k, exclude, &mut best);
        best.into_iter().map(|(_, i)| i).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        lo: usize,
        hi: usize,
        depth: usize,
        qx: f64,
        qy: f64,
        k: usize,
        exclude: usize,
        best: &mut Vec<(f64, usize)>,
    ) {
        if lo >= hi {
            return;
        }
        let mid = lo + (hi - lo) / 2;
        let p = self.order[mid];
        if p != exclude {
            let d = (self.x[p] - qx).powi(2) + (self.y[p] - qy).powi(2);
            let pos = best.partition_point(|&(bd, bi)| (bd, bi) < (d, p));
            if pos < k {
                best.insert(pos, (d, p));
                best.truncate(k);
            }
        }
        let axis = depth % 2;
        let diff = if axis == 0 {
            qx - self.x[p]
        } else {
            qy - self.y[p]
        };
        let (near, far) = if diff < 0.0 {
            ((lo, mid), (mid + 1, hi))
        } else {
            ((mid + 1, hi), (lo, mid))
        };
        self.search(near.0, near.1, depth + 1, qx, qy, k, exclude, best);
        if best.len() < k || diff * diff <= best[best.len() - 1].0 {
            self.search(far.0, far.1, depth + 1, qx, qy, k, exclude, best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(x: &[f64], y: &[f64], s: usize, k: usize) -> Vec<usize> {
        let mut d: Vec<(f64, usize)> = (0..x.len())
            .filter(|&i| i != s)
            .map(|i| ((x[i] - x[s]).powi(2) + (y[i] - y[s]).powi(2), i))
            .collect();
        d.sort_by(|a, b| a.partial_cmp(b).unwrap());
        d.into_iter().take(k).map(|(_, i)| i).collect()
    }

    #[test]
    fn kd_tree_matches_brute_force() {
        let mut rng = SplitMix64::new(5);
        let x: Vec<f64> = (0..500).map(|_| rng.next_f64() * 100.0).collect();
        let y: Vec<f64> = (0..500).map(|_| rng.next_f64() * 100.0).collect();
        let tree = KdTree::new(&x, &y);
        for s in 0..500 {
            assert_eq!(
                tree.nearest(x[s], y[s], 7, s),
                brute_force(&x, &y, s, 7),
                "seed {s}"
            );
        }
    }

    #[test]
    fn raster_interior_groups_are_the_plus_around_the_seed() {
        let (x, y): (Vec<f64>, Vec<f64>) = (0..100)
            .map(|i| ((i % 10) as f64 * 5.0, (i / 10) as f64 * 5.0))
            .unzip();
        let config = GroupingConfig {
            gridsize: 2,
            n_groups: None,
            ..Default::default()
        };
        let groups = group(&x, &y, &config).unwrap();
        assert_eq!(groups.len(), 100);
        let b = 55;
        let mut members = groups.indices[b * 4..b * 4 + 4].to_vec();
        members.sort();
        assert_eq!(members, vec![45, 54, 56, 65]);
        assert_eq!(groups.centroids[b], [25.0, 25.0]);
        for g in 0..groups.len() {
            let sx: f64 = (0..4).map(|c| groups.relative[g * 4 + c][0]).sum();
            let sy: f64 = (0..4).map(|c| groups.relative[g * 4 + c][1]).sum();
            assert!(
                sx.abs() < 1e-9 && sy.abs() < 1e-9,
                "relative offsets sum to zero"
            );
        }
        let i = groups.indices[b * 4];
        assert_eq!(groups.relative[b * 4], [-(x[i] - 25.0), -(y[i] - 25.0)]);
    }

    #[test]
    fn gridsize_one_samples_without_replacement_and_caps_at_m() {
        let x: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let config = GroupingConfig {
            n_groups: Some(10),
            ..Default::default()
        };
        let groups = group(&x, &x, &config).unwrap();
        let mut ids = groups.indices.clone();
        ids.sort();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        assert!(groups.relative.iter().all(|r| *r == [0.0, 0.0]));
        let capped = group(
            &x,
            &x,
            &GroupingConfig {
                n_groups: Some(50),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(capped.len(), 10);
        let some = group(
            &x,
            &x,
            &GroupingConfig {
                n_groups: Some(4),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(some.len(), 4);
        assert_eq!(
            some,
            group(
                &x,
                &x,
                &GroupingConfig {
                    n_groups: Some(4),
                    ..Default::default()
                }
            )
            .unwrap(),
            "seeded"
        );
    }

    #[test]
    fn gridsize_two_with_fifty_points_and_ten_groups() {
        let x: Vec<f64> = (0..50).map(|i| i as f64 * 3.0).collect();
        let y: Vec<f64> = (0..50).map(|i| (i % 7) as f64).collect();
        let config = GroupingConfig {
            gridsize: 2,
            n_groups: Some(10),
            ..Default::default()
        };
        let groups = group(&x, &y, &config).unwrap();
        assert_eq!(groups.indices.len(), 40);
        assert_eq!(groups.len(), 10);
    }

    #[test]
    fn oversampling_needs_the_opt_in() {
        let x: Vec<f64> = (0..20).map(|i| (i % 5) as f64).collect();
        let y: Vec<f64> = (0..20).map(|i| (i / 5) as f64).collect();
        let mut config = GroupingConfig {
            gridsize: 2,
            n_groups: Some(30),
            neighbor_count: 6,
            ..Default::default()
        };
        let err = group(&x, &y, &config).unwrap_err().to_string();
        assert!(
            err.contains("OVERSAMPLING-001") && err.contains("n_groups=30 > 20"),
            "{err}"
        );
        config.enable_oversampling = true;
        let groups = group(&x, &y, &config).unwrap();
        assert_eq!(groups.len(), 30);
        let mut seen: Vec<Vec<usize>> = groups
            .indices
            .chunks(4)
            .map(|g| {
                let mut g = g.to_vec();
                g.sort();
                g
            })
            .collect();
        seen.sort();
        seen.dedup();
        assert!(
            seen.len() >= 25,
            "groups are drawn without replacement from the combinations"
        );
        let few = GroupingConfig {
            gridsize: 2,
            neighbor_count: 3,
            ..Default::default()
        };
        assert!(group(&x, &y, &few)
            .unwrap_err()
            .to_string()
            .contains("neighbor_count=3 < C=4"));
    }

    #[test]
    fn combinations_are_complete() {
        assert_eq!(combinations(4, 2).len(), 6);
        assert_eq!(combinations(6, 4).len(), 15);
        assert_eq!(combinations(4, 4), vec![vec![0, 1, 2, 3]]);
    }
}
