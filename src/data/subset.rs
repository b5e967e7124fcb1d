//! A subset of a scan file's positions written as a new NPZ, keeping every array: arrays whose first
//! axis is the position count keep the chosen rows, 0-d arrays are optionally repeated per kept
//! position, and the rest (object, probe, singleton Y) are copied whole. `_metadata` is replaced.
//! Unlike the reference's filter, `objectGuess` and `probeGuess` are never cut by rows, even when their
//! first axis happens to equal the position count.

use std::io::Write;
use std::path::Path;

use super::{DataError, Result};
use crate::io::npy::Kind;
use crate::io::npz::NpzFile;
use crate::io::npz_writer::NpzWriter;

/// Arrays that never hold one entry per position.
const WHOLE: [&str; 2] = ["objectGuess", "probeGuess"];

/// Write `rows` (indices of positions, in that order) of `source`, which holds `positions` positions.
pub fn write_rows(
    source: &NpzFile,
    positions: usize,
    rows: &[usize],
    broadcast_scalars: bool,
    metadata: &str,
    target: &Path,
) -> Result<()> {
    if let Some(&r) = rows.iter().find(|&&r| r >= positions) {
        return Err(DataError::format(
            source.path().display(),
            format!("row {r} out of range for {positions} positions"),
        ));
    }
    let shown = target.display().to_string();
    let mut out = NpzWriter::create(target, false)?;
    let mut keys = source.keys();
    keys.sort();
    for key in keys.iter().filter(|k| *k != "_metadata") {
        let header = source.header(key)?;
        if header.dtype.kind == Kind::Object {
            return Err(DataError::format(
                source.path().display(),
                format!("'{key}': object arrays other than _metadata cannot be copied"),
            ));
        }
        let view = source.array(key)?;
        let shape = view.shape().to_vec();
        let dtype = view.dtype().clone();
        if shape.first() == Some(&positions) && !WHOLE.contains(&key.as_str()) {
            let per_row: usize = shape[1..].iter().product();
            let mut new_shape = shape.clone();
            new_shape[0] = rows.len();
            out.add_streamed(key, &dtype, &new_shape, |w: &mut dyn Write| {
                for &r in rows {
                    w.write_all(&view.c_order_bytes(r * per_row, per_row)?)
                        .map_err(|e| DataError::io(&shown, e))?;
                }
                Ok(())
            })?;
        } else if shape.is_empty() && broadcast_scalars {
            let value = view.c_order_bytes(0, 1)?;
            out.add_streamed(key, &dtype, &[rows.len()], |w: &mut dyn Write| {
                for _ in rows {
                    w.write_all(&value).map_err(|e| DataError::io(&shown, e))?;
                }
                Ok(())
            })?;
        } else {
            let bytes = view.c_order_bytes(0, view.len())?;
            out.add_streamed(key, &dtype, &shape, |w: &mut dyn Write| {
                w.write_all(&bytes).map_err(|e| DataError::io(&shown, e))
            })?;
        }
    }
    out.add_text("_metadata", metadata)?;
    out.finish()
}
