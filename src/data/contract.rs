//! The DATA-001 contract for one NPZ scan file (study-pipeline.md §1, physics-and-model.md §3.1).
//!
//! Accepts `diffraction` or the legacy `diff3d` (both present: they must agree), the legacy (N, N, M)
//! layout (FORMAT-001, read transposed, with a notice), float32/float64 amplitudes, pickled or unicode
//! `_metadata`. Every error names the file, the key, what was expected and what was found, and lists the
//! keys present.

use std::path::{Path, PathBuf};

use ptycho_kernels::Complex32;
use rayon::prelude::*;
use serde::Serialize;

use super::checked::CheckedNpz;
use super::Result;
use crate::io::npy::Kind;
use crate::io::npz::{ArrayView, NpzFile};
use crate::io::pickle;
use crate::physics::image::ComplexImage;

pub const DIFFRACTION_KEYS: [&str; 2] = ["diffraction", "diff3d"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// (M, N, N)
    Canonical,
    /// (N, N, M): FORMAT-001, read transposed.
    LegacyNnm,
}

/// Streaming statistics of the diffraction amplitudes, accumulated in f64.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DiffractionStats {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    /// Σ over every pattern and pixel of amplitude², for the normalisation α.
    pub sum_sq: f64,
    pub count: u64,
}

impl Default for DiffractionStats {
    fn default() -> Self {
        Self {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            sum_sq: 0.0,
            count: 0,
        }
    }
}

impl DiffractionStats {
    pub fn mean(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }

    pub fn merge(&mut self, other: &DiffractionStats) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.count += other.count;
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ContractOptions {
    /// Accept integer diffraction as raw counts and read amplitudes as sqrt(counts)
    /// (`ptycho data convert --from-counts`).
    pub from_counts: bool,
}

/// One validated scan file.
#[derive(Debug)]
pub struct ScanFile {
    pub path: PathBuf,
    pub diffraction: ArrayView,
    pub diffraction_key: &'static str,
    pub layout: Layout,
    pub m: usize,
    pub n: usize,
    pub xcoords: Vec<f64>,
    pub ycoords: Vec<f64>,
    pub xcoords_start: Vec<f64>,
    pub ycoords_start: Vec<f64>,
    pub scan_index: Vec<i64>,
    pub probe: Vec<Complex32>,
    /// (H, W) and values.
    pub object: Option<ComplexImage>,
    /// Ground-truth patches (M, N, N) when present with a matching first axis.
    pub patches: Option<ArrayView>,
    pub metadata: Option<serde_json::Value>,
    pub stats: DiffractionStats,
    pub notices: Vec<String>,
    from_counts: bool,
}

/// (M,) finite float positions at `key`, M the diffraction's first axis.
fn positions(ctx: &CheckedNpz<'_>, key: &str, m: usize, name_for_len: &str) -> Result<Vec<f64>> {
    let (shape, values) = ctx.real_f64(key, "a float array (positions in object pixels)")?;
    if shape.len() != 1 || values.len() != m {
        return Err(ctx.err(
            key,
            format!(
                "shape ({m},): {name_for_len} length must equal the diffraction first axis {m}"
            ),
            format!("shape {shape:?}"),
        ));
    }
    Ok(values)
}

impl ScanFile {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, ContractOptions::default(), None)
    }

    pub fn open_with(
        path: &Path,
        options: ContractOptions,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let npz = NpzFile::open_with_cache(path, cache_dir)?;
        let ctx = CheckedNpz::new(&npz, path);
        let mut notices = Vec::new();

        for key in npz.keys() {
            if key != "_metadata" && npz.header(&key)?.dtype.kind == Kind::Object {
                return Err(ctx.err(
                    &key,
                    "a numeric array (only _metadata may hold Python objects)",
                    "an object array",
                ));
            }
        }

        let present: Vec<&'static str> = DIFFRACTION_KEYS
            .into_iter()
            .filter(|k| npz.has(k))
            .collect();
        let diffraction_key = *present.first().ok_or_else(|| {
            ctx.missing(
                "diffraction",
                "(M, N, N) float32 amplitudes under 'diffraction' (or the legacy 'diff3d')",
            )
        })?;
        let diffraction = npz.array(diffraction_key)?;
        if present.len() == 2 {
            check_same(&ctx, &diffraction, &npz.array("diff3d")?)?;
            notices.push(
                "both 'diffraction' and 'diff3d' are present and identical; using 'diffraction'"
                    .into(),
            );
        }
        let kind = diffraction.dtype().kind;
        let from_counts = match kind {
            Kind::Float => false,
            Kind::Int | Kind::UInt if options.from_counts => true,
            Kind::Int | Kind::UInt => {
                return Err(ctx.err(
                    diffraction_key,
                    "float amplitudes (sqrt of intensity)",
                    format!("integer dtype {}: these look like raw counts, not amplitudes; convert with `ptycho data convert --from-counts` (takes the square root)", diffraction.dtype().descr),
                ))
            }
            Kind::Complex => return Err(ctx.err(diffraction_key, "diffraction must be float amplitude", format!("complex dtype {}", diffraction.dtype().descr))),
            _ => return Err(ctx.err(diffraction_key, "float amplitudes", format!("dtype {}", diffraction.dtype().descr))),
        };

        let xview = npz
            .array("xcoords")
            .map_err(|_| ctx.missing("xcoords", "(M,) float positions"))?;
        if !npz.has("ycoords") {
            return Err(ctx.missing("ycoords", "(M,) float positions"));
        }
        let m = xview.len();
        let mut shape = diffraction.shape().to_vec();
        if shape.len() == 4 && shape[3] == 1 {
            shape.pop();
        }
        let (layout, n) = match *shape.as_slice() {
            [a, b, c] if a == m && b == c => (Layout::Canonical, b),
            [a, b, c] if c == m && a == b => {
                notices.push(format!("'{diffraction_key}' has the legacy (N, N, M) layout {shape:?}; reading it transposed (FORMAT-001)"));
                (Layout::LegacyNnm, a)
            }
            _ => {
                let found = match *shape.as_slice() {
                    [_, b, c] if b != c => format!(
                        "shape {:?}: its patterns are {b}x{c}, not square",
                        diffraction.shape()
                    ),
                    [a, _, _] => format!(
                        "shape {:?}: {a} patterns, but xcoords holds {m} positions",
                        diffraction.shape()
                    ),
                    _ => format!("shape {:?}: not 3-D", diffraction.shape()),
                };
                return Err(ctx.err(
                    diffraction_key,
                    format!(
                        "shape (M, N, N) with M = {m} (the xcoords length) and square patterns"
                    ),
                    found,
                ));
            }
        };
        if m == 0 {
            return Err(ctx.err(
                diffraction_key,
                "at least one pattern",
                "an empty dataset (M = 0)",
            ));
        }
        let xcoords = positions(&ctx, "xcoords", m, "xcoords")?;
        let ycoords = positions(&ctx, "ycoords", m, "ycoords")?;
        let xcoords_start = if npz.has("xcoords_start") {
            positions(&ctx, "xcoords_start", m, "xcoords_start")?
        } else {
            xcoords.clone()
        };
        let ycoords_start = if npz.has("ycoords_start") {
            positions(&ctx, "ycoords_start", m, "ycoords_start")?
        } else {
            ycoords.clone()
        };
        let scan_index = if npz.has("scan_index") {
            let v = npz.array("scan_index")?;
            if v.len() != m {
                return Err(ctx.err(
                    "scan_index",
                    format!("shape ({m},)"),
                    format!("shape {:?}", v.shape()),
                ));
            }
            v.to_i64_vec().map_err(|_| {
                ctx.err(
                    "scan_index",
                    "an integer array",
                    format!("dtype {}", v.dtype().descr),
                )
            })?
        } else {
            vec![0; m]
        };

        if !npz.has("probeGuess") {
            return Err(ctx.missing("probeGuess", "(N, N) complex probe"));
        }
        let (probe_shape, probe) = ctx.complex("probeGuess", "probeGuess of a complex dtype")?;
        let probe_shape: Vec<usize> = probe_shape
            .into_iter()
            .filter(|&d| d != 1 || n == 1)
            .collect();
        if probe_shape != [n, n] {
            return Err(ctx.err(
                "probeGuess",
                format!("shape ({n}, {n}) matching the pattern size"),
                format!("shape {probe_shape:?}"),
            ));
        }
        let object = if npz.has("objectGuess") {
            let (shape, values) = ctx.complex(
                "objectGuess",
                "objectGuess must be complex: an array of a complex dtype",
            )?;
            if shape.len() != 2 {
                return Err(ctx.err(
                    "objectGuess",
                    "a 2-D (H, W) array",
                    format!("shape {shape:?}"),
                ));
            }
            Some(ComplexImage::new(shape[0], shape[1], values))
        } else {
            None
        };
        let patches = if npz.has("Y") {
            let y = npz.array("Y")?;
            if y.shape().first() == Some(&m)
                && y.len() == m * n * n
                && y.dtype().kind == Kind::Complex
            {
                Some(y)
            } else {
                notices.push(format!(
                    "ignoring 'Y' of shape {:?} (not one (N, N) complex patch per pattern)",
                    y.shape()
                ));
                None
            }
        } else {
            None
        };
        let metadata = if npz.has("_metadata") {
            Some(read_metadata(&ctx)?)
        } else {
            None
        };

        let mut scan = Self {
            path: path.to_path_buf(),
            diffraction,
            diffraction_key,
            layout,
            m,
            n,
            xcoords,
            ycoords,
            xcoords_start,
            ycoords_start,
            scan_index,
            probe,
            object,
            patches,
            metadata,
            stats: DiffractionStats::default(),
            notices,
            from_counts,
        };
        // Every stored member is checked against its CRC-32: the diffraction during the pass over its
        // values, the small arrays here. Y (ground-truth patches, twice the diffraction's size and
        // not read to validate) is the exception.
        for key in npz.keys() {
            if key != scan.diffraction_key && key != "Y" {
                npz.check_crc(&key)?;
            }
        }
        scan.stats = scan.scan_values(&ctx)?;
        if scan.stats.sum_sq == 0.0 {
            return Err(ctx.err(
                scan.diffraction_key,
                "diffraction with some signal",
                format!(
                    "all {} amplitudes are zero (an empty detector, or the wrong array): the \
                     normalisation would divide by zero",
                    scan.m * scan.n * scan.n
                ),
            ));
        }
        Ok(scan)
    }

    /// Pattern `i` as N*N amplitudes (C order), whatever the stored layout and dtype.
    pub fn read_pattern(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let nn = self.n * self.n;
        match self.layout {
            Layout::Canonical => self.diffraction.read_f32(i * nn, &mut out[..nn])?,
            Layout::LegacyNnm => {
                let mut one = [0f32];
                for (p, o) in out[..nn].iter_mut().enumerate() {
                    self.diffraction.read_f32(p * self.m + i, &mut one)?;
                    *o = one[0];
                }
            }
        }
        if self.from_counts {
            out[..nn].iter_mut().for_each(|v| *v = v.max(0.0).sqrt());
        }
        Ok(())
    }

    /// One pass over every amplitude: finite, non-negative, and the statistics; with it, the
    /// stored member's CRC-32 over the same bytes (each chunk's bytes, in storage order whatever
    /// the layout, hashed as they are read and the parts combined in order).
    fn scan_values(&self, ctx: &CheckedNpz<'_>) -> Result<DiffractionStats> {
        let nn = self.n * self.n;
        let chunk = (1 << 20) / nn.max(1) + 1;
        let key = self.diffraction_key;
        let crc = ctx.npz.stored_crc(key)?;
        let (map, data) = self.diffraction.mapping();
        let pattern_bytes = nn * self.diffraction.dtype().size;
        let partials: Vec<Result<(DiffractionStats, crc32fast::Hasher)>> = (0..self
            .m
            .div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let mut buf = vec![0f32; nn];
                let mut s = DiffractionStats::default();
                let mut hasher = crc32fast::Hasher::new();
                for i in c * chunk..((c + 1) * chunk).min(self.m) {
                    self.read_pattern(i, &mut buf)?;
                    for (p, &v) in buf.iter().enumerate() {
                        if !v.is_finite() || v < 0.0 {
                            let what = if v.is_finite() {
                                "a negative amplitude"
                            } else {
                                "a non-finite value"
                            };
                            return Err(ctx.err(
                                key,
                                "finite, non-negative amplitudes",
                                format!(
                                    "{what} {v} in pattern {i} at pixel ({}, {})",
                                    p / self.n,
                                    p % self.n
                                ),
                            ));
                        }
                        let v = v as f64;
                        s.min = s.min.min(v);
                        s.max = s.max.max(v);
                        s.sum += v;
                        s.sum_sq += v * v;
                    }
                    s.count += nn as u64;
                }
                if crc.is_some() {
                    let (first, end) = (c * chunk, ((c + 1) * chunk).min(self.m));
                    hasher.update(
                        &map[data.start + first * pattern_bytes..data.start + end * pattern_bytes],
                    );
                }
                if self.layout == Layout::Canonical {
                    let first = c * chunk;
                    self.diffraction
                        .release(first * nn, (((c + 1) * chunk).min(self.m) - first) * nn);
                }
                Ok((s, hasher))
            })
            .collect();
        let mut total = DiffractionStats::default();
        let mut hasher = crc32fast::Hasher::new();
        if let Some((_, member)) = &crc {
            hasher.update(&map[member.start..data.start]);
        }
        for p in partials {
            let (stats, part) = p?;
            total.merge(&stats);
            hasher.combine(&part);
        }
        if let Some((expected, _)) = crc {
            ctx.npz.crc_verdict(key, expected, hasher.finalize())?;
        }
        release_pages(&self.diffraction);
        Ok(total)
    }
}

/// Drop this process's mapping of the array's pages (they stay in the page cache): what streaming has
/// read must not count towards its resident memory.
pub fn release_pages(view: &ArrayView) {
    let (map, _) = view.mapping();
    // Safety: the map is a read-only file mapping; pages dropped here are read back from the file on the
    // next access, so no data is lost.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}

fn check_same(ctx: &CheckedNpz<'_>, a: &ArrayView, b: &ArrayView) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(ctx.err(
            "diff3d",
            format!(
                "the same shape as 'diffraction' {:?} when both are present",
                a.shape()
            ),
            format!("shape {:?}", b.shape()),
        ));
    }
    let same = if a.dtype() == b.dtype() && a.fortran_order() == b.fortran_order() {
        a.bytes() == b.bytes()
    } else {
        a.to_f64_vec()? == b.to_f64_vec()?
    };
    if same {
        Ok(())
    } else {
        Err(ctx.err(
            "diff3d",
            "the same contents as 'diffraction' when both are present",
            "different values",
        ))
    }
}

fn read_metadata(ctx: &CheckedNpz<'_>) -> Result<serde_json::Value> {
    let header = ctx.npz.header("_metadata")?;
    let text = match header.dtype.kind {
        Kind::Unicode => ctx.npz.array("_metadata")?.to_unicode_string()?,
        Kind::Object => pickle::strings(&ctx.npz.object_payload("_metadata", 16 << 20)?)
            .map_err(|e| ctx.err("_metadata", "a pickled JSON string", e.to_string()))?
            .into_iter()
            .find(|s| s.trim_start().starts_with('{'))
            .ok_or_else(|| {
                ctx.err(
                    "_metadata",
                    "a pickled JSON string",
                    "a pickle without a JSON object",
                )
            })?,
        _ => {
            return Err(ctx.err(
                "_metadata",
                "a JSON string (unicode or pickled object)",
                format!("dtype {}", header.dtype.descr),
            ))
        }
    };
    serde_json::from_str(&text).map_err(|e| ctx.err("_metadata", "valid JSON", e.to_string()))
}
