//! A dataset: one NPZ file, a folder of NPZ shards, or a glob of them, concatenated along the scan axis.

use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayView2};
use ptycho_kernels::Complex32;
use serde::Serialize;

use super::contract::{ContractOptions, DiffractionStats, ScanFile};
use super::{DataError, Result};

#[derive(Debug)]
pub struct Dataset {
    pub shards: Vec<ScanFile>,
    /// First global pattern index of each shard.
    starts: Vec<usize>,
    pub m: usize,
    pub n: usize,
    pub stats: DiffractionStats,
}

/// Per-shard record, for manifests and `ptycho data inspect`.
#[derive(Serialize)]
pub struct ShardSummary {
    pub path: String,
    pub patterns: usize,
    pub object_shape: Option<[usize; 2]>,
}

/// The name of shard `k` of a dataset written as a folder: `shard_00000.npz`, `shard_00001.npz`, ...
pub fn shard_name(k: usize) -> String {
    format!("shard_{k:05}.npz")
}

/// Whether a file name is a shard name (`shard_` + digits + `.npz`).
pub fn is_shard_name(name: &str) -> bool {
    name.strip_prefix("shard_")
        .and_then(|rest| rest.strip_suffix(".npz"))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// The files a dataset path names: the file itself; the shards of a folder (`shard_NNNNN.npz`,
/// sorted; a folder holding any other file is refused, so that a folder always means one dataset);
/// or the matches of a `*`/`?` pattern in the last path component (sorted). Hidden entries (locks,
/// caches, temporary files) are ignored.
pub fn resolve(path: &Path) -> Result<Vec<PathBuf>> {
    let shown = path.display();
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if path.is_dir() {
        return folder_shards(path);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Err(DataError::format(&shown, "no such file or folder"));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir.display(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| glob_match(&name, &n.to_string_lossy()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::format(
            &shown,
            format!("no files match '{name}': an empty dataset"),
        ));
    }
    Ok(files)
}

fn folder_shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let (mut shards, mut others) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir.display(), e))? {
        let entry = entry.map_err(|e| DataError::io(dir.display(), e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if is_shard_name(&name) && entry.path().is_file() {
            shards.push(entry.path());
        } else {
            others.push(name);
        }
    }
    others.sort();
    if !others.is_empty() {
        let glob = dir.join("*.npz");
        return Err(DataError::format(
            dir.display(),
            format!(
                "a folder given as a dataset must hold only the shards of one dataset, named \
                 shard_NNNNN.npz (as `ptycho data shard` writes them), but it also holds {}; \
                 name one file, or several with a glob such as '{}'",
                others.join(", "),
                glob.display()
            ),
        ));
    }
    if shards.is_empty() {
        return Err(DataError::format(
            dir.display(),
            "no shards (shard_NNNNN.npz) in this folder: an empty dataset",
        ));
    }
    shards.sort();
    Ok(shards)
}

fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Dataset {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, ContractOptions::default(), None)
    }

    pub fn open_with(
        path: &Path,
        options: ContractOptions,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let files = resolve(path)?;
        let shards = files
            .iter()
            .map(|f| ScanFile::open_with(f, options, cache_dir))
            .collect::<Result<Vec<_>>>()?;
        Self::from_shards(shards)
    }

    pub fn from_shards(shards: Vec<ScanFile>) -> Result<Self> {
        let first = shards
            .first()
            .ok_or_else(|| DataError::format("dataset", "no shards: an empty dataset"))?;
        let n = first.n;
        for s in &shards[1..] {
            if s.n != n {
                return Err(DataError::format(
                    s.path.display(),
                    format!(
                        "pattern size {} differs from {} in {}",
                        s.n,
                        n,
                        first.path.display()
                    ),
                ));
            }
            if s.probe != first.probe {
                return Err(DataError::format(
                    s.path.display(),
                    format!(
                        "probeGuess differs from the one in {}: shards must share one probe",
                        first.path.display()
                    ),
                ));
            }
        }
        let mut starts = Vec::with_capacity(shards.len());
        let mut m = 0;
        let mut stats = DiffractionStats::default();
        for s in &shards {
            starts.push(m);
            m += s.m;
            stats.merge(&s.stats);
        }
        Ok(Self {
            shards,
            starts,
            m,
            n,
            stats,
        })
    }

    /// (shard, index within it) of global pattern `i`.
    pub fn locate(&self, i: usize) -> (usize, usize) {
        let shard = self.starts.partition_point(|&s| s <= i) - 1;
        (shard, i - self.starts[shard])
    }

    pub fn read_pattern(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let (s, k) = self.locate(i);
        self.shards[s].read_pattern(k, out)
    }

    pub fn xcoords(&self) -> Vec<f64> {
        self.shards
            .iter()
            .flat_map(|s| s.xcoords.iter().copied())
            .collect()
    }

    pub fn ycoords(&self) -> Vec<f64> {
        self.shards
            .iter()
            .flat_map(|s| s.ycoords.iter().copied())
            .collect()
    }

    pub fn xcoords_start(&self) -> Vec<f64> {
        self.shards
            .iter()
            .flat_map(|s| s.xcoords_start.iter().copied())
            .collect()
    }

    pub fn ycoords_start(&self) -> Vec<f64> {
        self.shards
            .iter()
            .flat_map(|s| s.ycoords_start.iter().copied())
            .collect()
    }

    pub fn probe(&self) -> &[Complex32] {
        &self.shards[0].probe
    }

    /// The probe as an (N, N) ndarray view, without a copy.
    pub fn probe_view(&self) -> ArrayView2<'_, Complex32> {
        ArrayView2::from_shape((self.n, self.n), self.probe()).expect("the contract's (N, N) probe")
    }

    /// Diffraction amplitudes of pattern `i` as an (N, N) array.
    pub fn pattern_array(&self, i: usize) -> Result<Array2<f32>> {
        let mut values = vec![0f32; self.n * self.n];
        self.read_pattern(i, &mut values)?;
        Ok(Array2::from_shape_vec((self.n, self.n), values).expect("N x N values"))
    }

    /// Diffraction amplitudes of the patterns in `range` as a (len, N, N) array, read across shards.
    pub fn patterns_array(&self, range: Range<usize>) -> Result<Array3<f32>> {
        if range.end > self.m || range.start > range.end {
            return Err(DataError::format(
                self.shards[0].path.display(),
                format!("patterns {range:?} of {} in the dataset", self.m),
            ));
        }
        let nn = self.n * self.n;
        let mut values = vec![0f32; range.len() * nn];
        for (i, out) in range.clone().zip(values.chunks_mut(nn)) {
            self.read_pattern(i, out)?;
        }
        Ok(Array3::from_shape_vec((range.len(), self.n, self.n), values).expect("len x N x N"))
    }

    /// Scan positions as an (M, 2) array of (x, y) patch centres in object pixels.
    pub fn positions_array(&self) -> Array2<f64> {
        let (x, y) = (self.xcoords(), self.ycoords());
        Array2::from_shape_fn((self.m, 2), |(i, k)| if k == 0 { x[i] } else { y[i] })
    }

    /// α = sqrt((N/2)² / mean over patterns of Σ amplitude²) (physics-and-model.md §3.4), in f64.
    pub fn normalization(&self) -> f64 {
        let half = self.n as f64 / 2.0;
        let mean_per_pattern = self.stats.sum_sq / self.m as f64;
        (half * half / mean_per_pattern).sqrt()
    }

    /// The dose the shards' `_metadata` records (`physics_parameters.nphotons`, where the reference's
    /// MetadataManager and `ptycho simulate` put it): None when no shard records one, an error when
    /// two shards disagree.
    pub fn recorded_nphotons(&self) -> Result<Option<f64>> {
        let mut found: Option<(f64, &Path)> = None;
        for shard in &self.shards {
            let recorded = shard
                .metadata
                .as_ref()
                .and_then(|m| m.pointer("/physics_parameters/nphotons"))
                .and_then(serde_json::Value::as_f64);
            match (recorded, found) {
                (Some(v), None) => found = Some((v, &shard.path)),
                (Some(v), Some((w, first))) if v != w => {
                    return Err(DataError::format(
                        shard.path.display(),
                        format!(
                            "_metadata records nphotons {v:e}, but {} records {w:e}: shards of \
                             one dataset must share one dose",
                            first.display()
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(found.map(|(v, _)| v))
    }

    pub fn summaries(&self) -> Vec<ShardSummary> {
        self.shards
            .iter()
            .map(|s| ShardSummary {
                path: s.path.display().to_string(),
                patterns: s.m,
                object_shape: s.object.as_ref().map(|o| o.shape()),
            })
            .collect()
    }
}

/// The intensity scale s = sqrt(nphotons) / (N/2) (physics-and-model.md §3.5).
pub fn intensity_scale(nphotons: f64, n: usize) -> f64 {
    nphotons.sqrt() / (n as f64 / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_are_shard_underscore_digits_npz() {
        assert_eq!(shard_name(7), "shard_00007.npz");
        assert!(is_shard_name(&shard_name(123_456)));
        for name in [
            "shard_.npz",
            "shard_1a.npz",
            "patched_train.npz",
            "shard_01.npz.tmp",
        ] {
            assert!(!is_shard_name(name), "{name}");
        }
    }

    #[test]
    fn a_folder_with_other_files_is_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["shard_00000.npz", "shard_00001.npz", ".ptycho.lock"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = resolve(dir.path()).unwrap();
        assert_eq!(found.len(), 2);
        std::fs::write(dir.path().join("patched_test.npz"), b"").unwrap();
        let e = resolve(dir.path()).unwrap_err().to_string();
        assert!(e.contains("also holds patched_test.npz"), "{e}");
    }

    #[test]
    fn globs_match() {
        assert!(glob_match("*.npz", "shard_0001.npz"));
        assert!(glob_match("shard_??.npz", "shard_07.npz"));
        assert!(!glob_match("shard_??.npz", "shard_7.npz"));
        assert!(!glob_match("*.npz", "notes.txt"));
    }

    #[test]
    fn intensity_scale_matches_the_reference() {
        assert!((intensity_scale(1e9, 64) - 988.211_768_8).abs() < 1e-6);
    }
}
