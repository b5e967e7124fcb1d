//! Writing datasets in the canonical contract: `diffraction` (M, N, N) float32 amplitudes, float64
//! coordinates, complex64 probe and object, and `_metadata` carried forward with a provenance record.
//! Used by `ptycho data shard` and `ptycho data convert`.

use crate::io::FormatError;

use std::io::Write;
use std::path::{Path, PathBuf};

use super::dataset::Dataset;
use super::{DataError, Result};
use crate::io::npy::{Kind, NpyDtype};
use crate::io::npz_writer::NpzWriter;

/// Patterns `range` of `dataset` to one canonical NPZ at `path`; `record` is appended to the
/// `provenance` list of the carried-forward `_metadata`.
pub fn write_range(
    dataset: &Dataset,
    range: std::ops::Range<usize>,
    path: &Path,
    compress: bool,
    record: serde_json::Value,
) -> Result<()> {
    let (count, n) = (range.len(), dataset.n);
    let mut writer = NpzWriter::create(path, compress)?;
    let shown = path.display().to_string();
    writer.add_streamed(
        "diffraction",
        &NpyDtype::little(Kind::Float, 4),
        &[count, n, n],
        |out: &mut dyn Write| {
            let mut pattern = vec![0f32; n * n];
            for i in range.clone() {
                dataset.read_pattern(i, &mut pattern)?;
                out.write_all(bytemuck::cast_slice(&pattern))
                    .map_err(|e| DataError::io(&shown, e))?;
            }
            Ok(())
        },
    )?;
    let slice = |v: Vec<f64>| v[range.clone()].to_vec();
    writer.add_f64("xcoords", &[count], &slice(dataset.xcoords()))?;
    writer.add_f64("ycoords", &[count], &slice(dataset.ycoords()))?;
    writer.add_f64("xcoords_start", &[count], &slice(dataset.xcoords_start()))?;
    writer.add_f64("ycoords_start", &[count], &slice(dataset.ycoords_start()))?;
    let scan_index: Vec<i64> = dataset
        .shards
        .iter()
        .flat_map(|s| s.scan_index.iter().copied())
        .collect();
    writer.add_i64("scan_index", &[count], &scan_index[range.clone()])?;
    writer.add_c64("probeGuess", &[n, n], dataset.probe())?;

    let (first_shard, _) = dataset.locate(range.start);
    let (last_shard, _) = dataset.locate(range.end.saturating_sub(1).max(range.start));
    let sources = &dataset.shards[first_shard..=last_shard];
    if let Some(object) = &sources[0].object {
        writer.add_c64("objectGuess", &object.shape(), &object.data)?;
    }
    if sources.iter().all(|s| s.patches.is_some()) {
        writer.add_streamed(
            "Y",
            &NpyDtype::little(Kind::Complex, 8),
            &[count, n, n],
            |out: &mut dyn Write| {
                let mut patch = vec![ptycho_kernels::Complex32::default(); n * n];
                for i in range.clone() {
                    let (s, k) = dataset.locate(i);
                    let y = dataset.shards[s].patches.as_ref().expect("checked above");
                    y.read_c64(k * n * n, &mut patch)?;
                    out.write_all(bytemuck::cast_slice(&patch))
                        .map_err(|e| DataError::io(&shown, e))?;
                }
                Ok(())
            },
        )?;
    }
    let mut metadata = sources[0]
        .metadata
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    if !metadata.is_object() {
        metadata = serde_json::json!({ "original": metadata });
    }
    let objects: Vec<serde_json::Value> = sources
        .iter()
        .map(|s| serde_json::json!({ "file": s.path.display().to_string(), "object_shape": s.object.as_ref().map(|o| o.shape()) }))
        .collect();
    let mut record = record;
    record["sources"] = serde_json::Value::Array(objects);
    record["patterns"] = serde_json::json!([range.start, range.end]);
    let provenance = metadata
        .as_object_mut()
        .expect("made an object")
        .entry("provenance")
        .or_insert_with(|| serde_json::json!([]));
    match provenance.as_array_mut() {
        Some(list) => list.push(record),
        None => *provenance = serde_json::json!([provenance.clone(), record]),
    }
    writer.add_text("_metadata", &metadata.to_string())?;
    writer.finish()
}

/// Split `dataset` into shards of at most `max_bytes` of diffraction each, as `DIR/shard_00000.npz`, ...
pub fn write_shards(
    dataset: &Dataset,
    dir: &Path,
    max_bytes: u64,
    compress: bool,
    record: serde_json::Value,
) -> Result<Vec<PathBuf>> {
    let pattern_bytes = (dataset.n * dataset.n * 4) as u64;
    let per_shard = (max_bytes / pattern_bytes).max(1) as usize;
    let mut paths = Vec::new();
    for (k, start) in (0..dataset.m).step_by(per_shard).enumerate() {
        let path = dir.join(super::dataset::shard_name(k));
        write_range(
            dataset,
            start..(start + per_shard).min(dataset.m),
            &path,
            compress,
            record.clone(),
        )?;
        paths.push(path);
    }
    Ok(paths)
}

/// Parse sizes such as `1GiB`, `512MiB`, `4GB`, `100000`.
pub fn parse_size(text: &str) -> std::result::Result<u64, FormatError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| FormatError::from(format!("'{text}' is not a size (e.g. 1GiB, 512MiB)")))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(FormatError::from(format!(
                "'{text}': unknown size unit '{unit}'"
            )))
        }
    };
    Ok((value * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("4GB").unwrap(), 4_000_000_000);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
