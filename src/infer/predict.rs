//! `ptycho predict`: a bundle's `diffraction_to_obj` on raw inputs, with nothing around it (no
//! grouping, no stitching), for checking a model against the reference's own outputs.
//!
//! Inputs, one of each pair:
//! - `diffraction` (B, C, N, N) float32: the normalised amplitudes X the network reads (ours), or
//!   `input` (B, N, N, C) float32: the reference's model input X·s. The reference's IntensityScaler
//!   divides its input by exp(log_scale), the trained intensity scale the bundle records, so `input`
//!   is divided by the bundle's `intensity_scale` here.
//! - `offsets` (B, C, 2) float32 (x, y), or the reference's `input_positions` (B, 1, 2, C): each
//!   channel's offset from the group centroid as the reference's coords_relative, −(position − centroid).
//!
//! Outputs: `trimmed_obj` (B, N, N) complex64, the centre N x N of the merged canvas, and `obj`
//! (B, C, N, N) complex64, the network's patches before the merge. The merge is the reference's
//! (physics-and-model.md §5.2, the probe-big ring included as it merges it), per sample for every
//! batch size; the reference merges the whole batch into one canvas when B·C ≥ 64, so compare with it
//! at B·C < 64.

use std::path::{Path, PathBuf};

use ptycho_kernels::Backend;
use serde::Serialize;

use super::{merged_objects, network_patches, InferError, Merge};
use crate::data::checked::CheckedNpz;
use crate::io::npz::NpzFile;
use crate::io::npz_writer::NpzWriter;
use crate::model::network::Network;
use crate::model::params::model_config;
use crate::model::ModelKind;
use crate::persist::bundle;

/// Which form the network input came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputForm {
    /// `diffraction` (B, C, N, N), X.
    Ours,
    /// `input` (B, N, N, C), X·s, divided by the bundle's intensity scale.
    ReferenceScaled,
}

#[derive(Debug, Serialize)]
pub struct PredictReport {
    pub device: String,
    pub samples: usize,
    pub channels: usize,
    pub input_form: InputForm,
    pub intensity_scale: f32,
    pub output: PathBuf,
}

struct Inputs {
    /// (B, C, N, N).
    x: Vec<f32>,
    /// (B·C) offsets (x, y).
    offsets: Vec<[f32; 2]>,
    form: InputForm,
    samples: usize,
}

fn read_inputs(path: &Path, n: usize, c: usize, scale: f32) -> Result<Inputs, InferError> {
    let npz = NpzFile::open(path)?;
    let ctx = CheckedNpz::new(&npz, path);
    let bad = |key: &str, expected: String, found: &[usize]| {
        InferError::from(format!(
            "{}: {key} has shape {found:?}, expected {expected}",
            path.display()
        ))
    };
    let (x, form, samples) = if ctx.has("diffraction") {
        let (shape, x) = ctx.real("diffraction", "(B, C, N, N) float32 amplitudes")?;
        match shape[..] {
            [b, cc, h, w] if cc == c && h == n && w == n => (x, InputForm::Ours, b),
            _ => return Err(bad("diffraction", format!("(B, {c}, {n}, {n})"), &shape)),
        }
    } else if ctx.has("input") {
        let (shape, x) = ctx.real("input", "(B, N, N, C) float32, the reference's input")?;
        let [b, h, w, cc] = shape[..] else {
            return Err(bad("input", format!("(B, {n}, {n}, {c})"), &shape));
        };
        if h != n || w != n || cc != c {
            return Err(bad("input", format!("(B, {n}, {n}, {c})"), &shape));
        }
        let mut chw = vec![0f32; x.len()];
        for s in 0..b {
            for p in 0..n * n {
                for k in 0..c {
                    chw[(s * c + k) * n * n + p] = x[(s * n * n + p) * c + k] / scale;
                }
            }
        }
        (chw, InputForm::ReferenceScaled, b)
    } else {
        return Err(InferError::from(format!(
            "{}: holds neither 'diffraction' (B, {c}, {n}, {n}) nor the reference's 'input' \
             (B, {n}, {n}, {c})",
            path.display()
        )));
    };
    let offsets: Vec<[f32; 2]> = if ctx.has("offsets") {
        let (shape, v) = ctx.real("offsets", "(B, C, 2) float32 offsets (x, y)")?;
        if shape != [samples, c, 2] {
            return Err(bad("offsets", format!("({samples}, {c}, 2)"), &shape));
        }
        v.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
    } else if ctx.has("input_positions") {
        let (shape, v) = ctx.real("input_positions", "(B, 1, 2, C) float32")?;
        if shape != [samples, 1, 2, c] {
            return Err(bad(
                "input_positions",
                format!("({samples}, 1, 2, {c})"),
                &shape,
            ));
        }
        (0..samples * c)
            .map(|i| {
                let (s, k) = (i / c, i % c);
                [v[s * 2 * c + k], v[s * 2 * c + c + k]]
            })
            .collect()
    } else if c == 1 {
        vec![[0.0, 0.0]; samples]
    } else {
        return Err(InferError::from(format!(
            "{}: holds neither 'offsets' ({samples}, {c}, 2) nor 'input_positions' \
             ({samples}, 1, 2, {c}); gridsize 2 needs each channel's offset",
            path.display()
        )));
    };
    Ok(Inputs {
        x,
        offsets,
        form,
        samples,
    })
}

pub fn predict<B: Backend>(
    b: &B,
    model_dir: &Path,
    input: &Path,
    output: &Path,
    overwrite: bool,
) -> Result<PredictReport, InferError> {
    if output.exists() && !overwrite {
        return Err(InferError::from(format!(
            "{} exists: pass --overwrite to replace it",
            output.display()
        )));
    }
    let loaded = bundle::load(model_dir, None)?;
    let model = model_config(&loaded.params)?;
    if model.kind != ModelKind::Pinn {
        return Err(InferError::from(format!(
            "{}: a {} model; predict runs the PINN's diffraction_to_obj",
            model_dir.display(),
            model.kind.name()
        )));
    }
    let scale = loaded.params["intensity_scale"]
        .as_f64()
        .map(|s| s as f32)
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| {
            InferError::from(format!(
                "{}: params hold no positive intensity_scale",
                model_dir.display()
            ))
        })?;
    let network = Network::new(b, &model, &loaded.weights)
        .map_err(|e| InferError::from(format!("{}: {e}", model_dir.display())))?;
    let (n, c) = (model.n, model.channels());
    let inputs = read_inputs(input, n, c, scale)?;
    let patches = network_patches(b, &network, &inputs.x, inputs.samples)?;
    let trimmed = merged_objects(b, &patches, &inputs.offsets, &model, Merge::Reference)?;
    let obj = b.download_c64(&patches)?;
    let mut out = NpzWriter::create(output, false)?;
    out.add_c64("trimmed_obj", &[inputs.samples, n, n], &trimmed)?;
    out.add_c64("obj", &[inputs.samples, c, n, n], &obj)?;
    out.finish()?;
    Ok(PredictReport {
        device: b.describe(),
        samples: inputs.samples,
        channels: c,
        input_form: inputs.form,
        intensity_scale: scale,
        output: output.to_path_buf(),
    })
}
