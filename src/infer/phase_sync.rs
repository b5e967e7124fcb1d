//! Phase synchronisation of patches before stitching. Far-field data fix each patch only up to a
//! constant phase factor e^{iθ}: a network that reconstructs patches one at a time (gridsize 1) or
//! one group at a time (gridsize 2) picks that factor by habit, not from the data, so plain averaging
//! (`reassemble_position`) mixes patches whose phases disagree by a constant and washes the slow
//! phase variations out. Here every patch gets the rotation that makes it agree with its neighbours
//! where their stitching windows overlap: the phase-synchronisation problem
//! max Σ_ij Re(u_i ū_j h_ij) over unit u_i, with h_ij = Σ_overlap z_i z̄_j. It is started from a
//! maximum spanning tree of |h_ij| (exact on a tree) and refined by Gauss–Seidel sweeps
//! u_i ← phase(Σ_j h̄_ij u_j), each of which can only raise the objective. All in f64 on the host, in
//! a fixed order, so the result is deterministic.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use ptycho_kernels::Complex32;
use rustfft::num_complex::Complex64;
use serde::Serialize;

/// Refinement sweeps at most; they stop earlier once no rotation moves by more than the tolerance.
const MAX_SWEEPS: usize = 200;
const SWEEP_TOLERANCE_RAD: f64 = 1e-7;

/// What the synchronisation did.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseSync {
    /// The rotation applied to each patch, in radians.
    pub rotations: Vec<f64>,
    /// Overlapping pairs that constrained the rotations.
    pub pairs: usize,
    /// Groups of patches with no overlap between them (each keeps its own global phase).
    pub components: usize,
    pub sweeps: usize,
    /// Σ|h_ij| − Σ Re(u_i ū_j h_ij) over Σ|h_ij|, before and after: 0 when every overlap agrees in
    /// phase; what is left is the patches' disagreement in structure, not in offset.
    pub disagreement_before: f64,
    pub disagreement_after: f64,
}

impl std::fmt::Display for PhaseSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} overlapping pairs, {} component(s), phase disagreement {:.3} -> {:.3}",
            self.pairs, self.components, self.disagreement_before, self.disagreement_after
        )
    }
}

struct Edge {
    to: usize,
    /// h_{from,to} = Σ z_from z̄_to over the overlap.
    h: Complex64,
}

#[derive(PartialEq)]
struct Candidate {
    weight: f64,
    from: usize,
    to: usize,
    h: Complex64,
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    // Heaviest first; ties by index so that the tree does not depend on the heap's internals.
    fn cmp(&self, other: &Self) -> Ordering {
        self.weight
            .total_cmp(&other.weight)
            .then_with(|| other.to.cmp(&self.to))
            .then_with(|| other.from.cmp(&self.from))
    }
}

/// Rotate each of the `count` patches (N x N, row-major, one after another) so that their central
/// `crop` x `crop` windows agree in phase where they overlap at `offsets` ((x, y) in pixels). Overlaps
/// are taken at whole-pixel offsets: a rotation is one number per patch and does not need the
/// sub-pixel placement that the stitch itself uses.
pub fn synchronise_phases(
    patches: &mut [Complex32],
    n: usize,
    offsets: &[[f64; 2]],
    crop: usize,
) -> PhaseSync {
    let count = offsets.len();
    assert_eq!(patches.len(), count * n * n, "patches and offsets disagree");
    assert!(crop >= 1 && crop <= n, "crop must be between 1 and N");
    let edges = overlaps(patches, n, offsets, crop);
    let pairs = edges.iter().map(Vec::len).sum::<usize>() / 2;
    let total: f64 = edges.iter().flatten().map(|e| e.h.norm()).sum::<f64>() / 2.0;
    let disagreement = |u: &[Complex64]| {
        if total == 0.0 {
            return 0.0;
        }
        let agreement: f64 = edges
            .iter()
            .enumerate()
            .flat_map(|(i, list)| list.iter().map(move |e| (i, e)))
            .map(|(i, e)| (u[i] * u[e.to].conj() * e.h).re)
            .sum::<f64>()
            / 2.0;
        (total - agreement) / total
    };
    let identity = vec![Complex64::new(1.0, 0.0); count];
    let disagreement_before = disagreement(&identity);

    let (mut u, components) = spanning_tree_start(&edges);
    let mut sweeps = 0;
    while sweeps < MAX_SWEEPS {
        sweeps += 1;
        let mut largest_move = 0.0f64;
        for i in 0..count {
            let pull: Complex64 = edges[i].iter().map(|e| e.h.conj() * u[e.to]).sum();
            if pull.norm() == 0.0 {
                continue;
            }
            let next = pull / pull.norm();
            largest_move = largest_move.max((next * u[i].conj()).arg().abs());
            u[i] = next;
        }
        if largest_move < SWEEP_TOLERANCE_RAD {
            break;
        }
    }
    // The rotations are fixed only up to one common factor: choose it so that they average to zero,
    // keeping the patches' mean phase where the network put it.
    let mean: Complex64 = u.iter().sum();
    if mean.norm() > 0.0 {
        let common = mean.conj() / mean.norm();
        u.iter_mut().for_each(|v| *v *= common);
    }
    let disagreement_after = disagreement(&u);
    for (patch, rotation) in patches.chunks_mut(n * n).zip(&u) {
        let r = Complex32::new(rotation.re as f32, rotation.im as f32);
        patch.iter_mut().for_each(|v| *v *= r);
    }
    PhaseSync {
        rotations: u.iter().map(|v| v.arg()).collect(),
        pairs,
        components,
        sweeps,
        disagreement_before,
        disagreement_after,
    }
}

/// For each patch, the patches whose windows overlap its own, with h over the overlap.
fn overlaps(patches: &[Complex32], n: usize, offsets: &[[f64; 2]], crop: usize) -> Vec<Vec<Edge>> {
    let count = offsets.len();
    let lo = (n - crop) / 2;
    let pos: Vec<[i64; 2]> = offsets
        .iter()
        .map(|o| [o[0].round() as i64, o[1].round() as i64])
        .collect();
    // Cells of side `crop`: two windows can overlap only if their cells are neighbours.
    let side = crop as i64;
    let cell = |p: [i64; 2]| (p[0].div_euclid(side), p[1].div_euclid(side));
    let mut cells: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, &p) in pos.iter().enumerate() {
        cells.entry(cell(p)).or_default().push(i);
    }
    let mut edges: Vec<Vec<Edge>> = (0..count).map(|_| Vec::new()).collect();
    for i in 0..count {
        let (cx, cy) = cell(pos[i]);
        let mut neighbours: Vec<usize> = (-1..=1)
            .flat_map(|dx| (-1..=1).map(move |dy| (cx + dx, cy + dy)))
            .filter_map(|c| cells.get(&c))
            .flatten()
            .copied()
            .filter(|&j| j > i)
            .collect();
        neighbours.sort_unstable();
        for j in neighbours {
            let (dx, dy) = (pos[j][0] - pos[i][0], pos[j][1] - pos[i][1]);
            if dx.abs() >= side || dy.abs() >= side {
                continue;
            }
            // Window pixel (r, c) of patch i shows the same object pixel as (r − dy, c − dx) of j.
            let mut h = Complex64::new(0.0, 0.0);
            for r in dy.max(0)..(side + dy.min(0)) {
                for c in dx.max(0)..(side + dx.min(0)) {
                    let zi = patches[i * n * n + (lo + r as usize) * n + lo + c as usize];
                    let zj =
                        patches[j * n * n + (lo + (r - dy) as usize) * n + lo + (c - dx) as usize];
                    h += Complex64::new(zi.re as f64, zi.im as f64)
                        * Complex64::new(zj.re as f64, -zj.im as f64);
                }
            }
            if h.norm() > 0.0 {
                edges[i].push(Edge { to: j, h });
                edges[j].push(Edge { to: i, h: h.conj() });
            }
        }
    }
    edges
}

/// Rotations that satisfy every edge of a maximum spanning tree of |h| exactly (Prim's algorithm
/// from the lowest unvisited index, component by component), and the number of components.
fn spanning_tree_start(edges: &[Vec<Edge>]) -> (Vec<Complex64>, usize) {
    let count = edges.len();
    let mut u = vec![Complex64::new(1.0, 0.0); count];
    let mut visited = vec![false; count];
    let mut components = 0;
    for root in 0..count {
        if visited[root] {
            continue;
        }
        components += 1;
        visited[root] = true;
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Candidate>, from: usize| {
            for e in &edges[from] {
                heap.push(Candidate {
                    weight: e.h.norm(),
                    from,
                    to: e.to,
                    h: e.h,
                });
            }
        };
        push(&mut heap, root);
        while let Some(c) = heap.pop() {
            if visited[c.to] {
                continue;
            }
            visited[c.to] = true;
            // u_to z_to ≈ u_from z_from, and z_from ≈ z_to·h/|h| over the overlap.
            u[c.to] = u[c.from] * c.h / c.h.norm();
            push(&mut heap, c.to);
        }
    }
    (u, components)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patches cut from one smooth complex object, each given a different constant phase: after
    /// synchronisation they agree again, up to one common factor.
    #[test]
    fn undoes_per_patch_phase_offsets() {
        let (n, crop, size) = (16usize, 8usize, 48usize);
        let object = |x: i64, y: i64| {
            let (x, y) = (x as f64, y as f64);
            Complex64::from_polar(0.7 + 0.2 * (0.3 * x).sin(), 0.8 * (0.2 * y).cos() + 0.1 * x)
        };
        let mut offsets = Vec::new();
        for y in (8..size as i64 - 8).step_by(3) {
            for x in (8..size as i64 - 8).step_by(4) {
                offsets.push([x as f64, y as f64]);
            }
        }
        let truth: Vec<Complex32> = offsets
            .iter()
            .flat_map(|o| {
                (0..n * n).map(move |k| {
                    let v = object(
                        o[0] as i64 + (k % n) as i64 - n as i64 / 2,
                        o[1] as i64 + (k / n) as i64 - n as i64 / 2,
                    );
                    Complex32::new(v.re as f32, v.im as f32)
                })
            })
            .collect();
        let scrambles: Vec<f64> = (0..offsets.len())
            .map(|i| ((i * 7919) % 628) as f64 / 100.0)
            .collect();
        let mut patches: Vec<Complex32> = truth
            .chunks(n * n)
            .zip(&scrambles)
            .flat_map(|(p, &t)| {
                let r = Complex32::from_polar(1.0, t as f32);
                p.iter().map(move |v| v * r)
            })
            .collect();
        let sync = synchronise_phases(&mut patches, n, &offsets, crop);
        assert_eq!(sync.components, 1);
        assert!(sync.disagreement_before > 0.1, "{sync:?}");
        assert!(sync.disagreement_after < 1e-9, "{sync:?}");
        // Every patch now differs from the truth by the same factor.
        let factor = |i: usize| {
            let k = i * n * n + (n / 2) * n + n / 2;
            (patches[k] / truth[k]).arg() as f64
        };
        let common = factor(0);
        for i in 0..offsets.len() {
            let d = (factor(i) - common).rem_euclid(std::f64::consts::TAU);
            assert!(d.min(std::f64::consts::TAU - d) < 1e-4, "patch {i}: {d}");
        }
    }

    #[test]
    fn patches_without_overlap_keep_their_phase() {
        let n = 8;
        let mut patches = vec![Complex32::from_polar(1.0, 0.5); 2 * n * n];
        patches[n * n..].fill(Complex32::from_polar(1.0, -1.0));
        let before = patches.clone();
        let sync = synchronise_phases(&mut patches, n, &[[0.0, 0.0], [100.0, 0.0]], 4);
        assert_eq!((sync.pairs, sync.components), (0, 2));
        // At most one common rotation moves them: their phase difference stays.
        let diff = |p: &[Complex32]| (p[0] * p[n * n].conj()).arg();
        assert!((diff(&patches) - diff(&before)).abs() < 1e-6);
    }
}
