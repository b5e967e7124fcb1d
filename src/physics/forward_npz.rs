//! `ptycho forward`: the forward model on arrays from an NPZ file, for checking what diffraction an object
//! gives. Input and output keys are listed in README.md ("Forward model").

use std::path::Path;

use ptycho_kernels::ops::fft::SUPPORTED_FFT_SIZES;
use ptycho_kernels::ops::loss::LossKind;
use ptycho_kernels::{Backend, Complex32};
use serde::Serialize;

use super::forward::{default_canvas_size, mean_loss, ForwardConfig, ForwardModel};
use super::merge::relative_tensor;
use super::PhysicsError;
use crate::data::checked::CheckedNpz;
use crate::io::npy::Kind;
use crate::io::npz::NpzFile;
use crate::io::npz_writer::NpzWriter;

/// Groups sent to the device at once, bounding its memory whatever the input size.
const GROUPS_PER_BATCH: usize = 256;

/// What `ptycho forward` reports.
#[derive(Debug, Serialize)]
pub struct ForwardSummary {
    pub groups: usize,
    pub channels: usize,
    pub n: usize,
    pub canvas_size: usize,
    pub object_big: bool,
    pub poisson_nll: Option<f64>,
    pub mae: Option<f64>,
}

struct Inputs {
    /// (B, heads, N, N).
    patches: Vec<Complex32>,
    heads: usize,
    /// (B·C) pairs (x, y).
    offsets: Vec<[f32; 2]>,
    probe: Vec<Complex32>,
    counts: Option<Vec<f32>>,
    groups: usize,
    channels: usize,
    n: usize,
    config: ForwardConfig,
}

fn read_inputs(path: &Path) -> Result<Inputs, PhysicsError> {
    let npz = NpzFile::open(path)?;
    let r = CheckedNpz::new(&npz, path);
    let object_big = r.bool_flag("object_big", true)?;
    let probe_mask = r.bool_flag("probe_mask", false)?;

    let patch_expected = "complex64 (B, C, N, N), or float32 `amp` and `phase` (B, C, N, N)";
    let (shape, patches) = if npz.has("patches") || !(npz.has("amp") && npz.has("phase")) {
        r.complex("patches", patch_expected)?
    } else {
        let (shape, amp) = r.real("amp", "float32 amplitudes (B, C, N, N)")?;
        let (phase_shape, phase) = r.real("phase", "float32 phases (B, C, N, N)")?;
        if phase_shape != shape {
            return Err(r
                .err(
                    "phase",
                    format!("the shape of `amp` {shape:?}"),
                    format!("shape {phase_shape:?}"),
                )
                .into());
        }
        let values = amp
            .iter()
            .zip(&phase)
            .map(|(&a, &p)| Complex32::from_polar(a, p))
            .collect();
        (shape, values)
    };
    let patch_key = if npz.has("patches") { "patches" } else { "amp" };
    let (groups, heads, n) = match *shape {
        [b, c, h, w] if h == w && b > 0 && c > 0 => (b, c, h),
        _ => {
            return Err(r
                .err(patch_key, patch_expected, format!("shape {shape:?}"))
                .into())
        }
    };
    if !SUPPORTED_FFT_SIZES.contains(&n) {
        return Err(r
            .err(
                patch_key,
                format!("N x N patches with N one of {SUPPORTED_FFT_SIZES:?}"),
                format!("shape {shape:?}"),
            )
            .into());
    }

    let offsets_view = r.array("offsets", "float32 (B, C, 2)")?;
    let channels = match *offsets_view.shape() {
        [b, c, 2] if b == groups && c > 0 => c,
        _ => {
            return Err(r
                .err(
                    "offsets",
                    format!(
                        "float32 ({groups}, C, 2): the relative offsets (x, y) of each channel"
                    ),
                    format!("shape {:?}", offsets_view.shape()),
                )
                .into())
        }
    };
    if object_big && heads != channels {
        return Err(r
            .err(
                patch_key,
                format!("({groups}, {channels}, {n}, {n}): one patch per channel of `offsets`"),
                format!("shape {shape:?}"),
            )
            .into());
    }
    if !object_big && heads != 1 {
        return Err(r
            .err(
                patch_key,
                format!("({groups}, 1, {n}, {n}): one patch per group when object_big is false"),
                format!("shape {shape:?}"),
            )
            .into());
    }
    let (_, offsets) = r.real("offsets", "float32 (B, C, 2)")?;
    let offsets = offsets.chunks(2).map(|p| [p[0], p[1]]).collect();

    let (probe_shape, probe) = r.complex("probe", "complex64 (N, N), already normalised")?;
    if probe_shape != [n, n] {
        return Err(r
            .err(
                "probe",
                format!("complex64 ({n}, {n})"),
                format!("shape {probe_shape:?}"),
            )
            .into());
    }
    let (scale_shape, scale) = r.real("intensity_scale", "a float32 scalar")?;
    if scale.len() != 1 || scale[0] <= 0.0 {
        return Err(r
            .err(
                "intensity_scale",
                "one positive value",
                format!("shape {scale_shape:?} values {scale:?}"),
            )
            .into());
    }
    let counts = if npz.has("counts") {
        let expected = format!("float32 ({groups}, {channels}, {n}, {n}) photon counts ≥ 0");
        let (counts_shape, counts) = r.real("counts", &expected)?;
        if counts_shape != [groups, channels, n, n] {
            return Err(r
                .err("counts", expected, format!("shape {counts_shape:?}"))
                .into());
        }
        if let Some(i) = counts.iter().position(|&c| c < 0.0) {
            return Err(r
                .err(
                    "counts",
                    "counts ≥ 0",
                    format!("{} at flat index {i}", counts[i]),
                )
                .into());
        }
        Some(counts)
    } else {
        None
    };
    let canvas = if npz.has("canvas_size") {
        let view = npz.array("canvas_size")?;
        let values = if view.len() == 1 && matches!(view.dtype().kind, Kind::Int | Kind::UInt) {
            view.to_i64_vec()?
        } else {
            vec![]
        };
        match values.first() {
            Some(&p) if p >= n as i64 && (p - n as i64) % 2 == 0 => p as usize,
            _ => {
                return Err(r
                    .err(
                        "canvas_size",
                        format!("an integer scalar P ≥ N = {n} with P − N even"),
                        format!("dtype {} values {values:?}", view.dtype().descr),
                    )
                    .into())
            }
        }
    } else {
        let gridsize = (channels as f64).sqrt().round() as usize;
        if gridsize * gridsize != channels {
            return Err(r
                .err(
                    "canvas_size",
                    format!("an explicit canvas size, since C = {channels} is not gridsize²"),
                    "nothing: the key is missing",
                )
                .into());
        }
        default_canvas_size(n, gridsize)
    };
    Ok(Inputs {
        patches,
        heads,
        offsets,
        probe,
        counts,
        groups,
        channels,
        n,
        config: ForwardConfig {
            canvas,
            object_big,
            probe_mask,
            intensity_scale: scale[0],
            separate_ring: false,
        },
    })
}

/// The memory this process may still take, from /proc/meminfo (None where there is none).
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A canvas size the machine cannot hold is an error before anything is allocated: every group's
/// P x P complex canvas is kept for the output, and each batch's canvases (and their counts) live on
/// the device too.
fn check_canvas_memory(
    input: &Path,
    groups: usize,
    p: usize,
    batch: usize,
) -> Result<(), PhysicsError> {
    let canvas_bytes = (p as u128) * (p as u128) * 8;
    let needed = canvas_bytes * (groups as u128 + 2 * batch.min(groups) as u128);
    let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
    match available_memory_bytes() {
        Some(available) if needed > available as u128 => Err(PhysicsError::Input(format!(
            "{}: canvas_size {p}: {groups} canvases of {p}x{p} complex64 need about {:.1} GiB, \
             more than the {:.1} GiB of memory available",
            input.display(),
            gib(needed),
            gib(available as u128)
        ))),
        _ => Ok(()),
    }
}

/// Run the forward model on `input` and write `output` (atomically), in batches of groups.
pub fn run<B: Backend>(b: &B, input: &Path, output: &Path) -> Result<ForwardSummary, PhysicsError> {
    let inputs = read_inputs(input)?;
    let (n, c, p) = (inputs.n, inputs.channels, inputs.config.canvas);
    check_canvas_memory(input, inputs.groups, p, GROUPS_PER_BATCH)?;
    let model = ForwardModel::new(b, &inputs.probe, n, inputs.config.clone())?;
    let mut canvas = Vec::new();
    canvas
        .try_reserve_exact(inputs.groups * p * p)
        .map_err(|e| PhysicsError::Input(format!("{}: canvas_size {p}: {e}", input.display())))?;
    let mut trimmed = Vec::with_capacity(inputs.groups * n * n);
    let mut amplitude = Vec::with_capacity(inputs.groups * c * n * n);
    for first in (0..inputs.groups).step_by(GROUPS_PER_BATCH) {
        let count = GROUPS_PER_BATCH.min(inputs.groups - first);
        let per_group = inputs.heads * n * n;
        let patches = b.upload_c64(
            &[count, inputs.heads, n, n],
            &inputs.patches[first * per_group..(first + count) * per_group],
        )?;
        let rel = relative_tensor(b, &inputs.offsets[first * c..(first + count) * c])?;
        let pass = model.forward(b, &patches, &rel, c)?;
        canvas.extend(b.download_c64(pass.canvas())?);
        trimmed.extend(b.download_c64(pass.trimmed())?);
        amplitude.extend(b.download_f32(pass.amplitude())?);
    }
    let intensity: Vec<f32> = amplitude.iter().map(|a| a * a).collect();
    let (poisson_nll, mae) = match &inputs.counts {
        Some(counts) => {
            let shape = [inputs.groups, c, n, n];
            let target: Vec<f32> = counts.iter().map(|v| v.sqrt()).collect();
            let target = b.upload_f32(&shape, &target)?;
            let pred = b.upload_f32(&shape, &amplitude)?;
            (
                Some(mean_loss(b, LossKind::Poisson, &pred, &target)?),
                Some(mean_loss(b, LossKind::Mae, &pred, &target)?),
            )
        }
        None => (None, None),
    };

    let mut out = NpzWriter::create(output, false)?;
    out.add_c64("canvas", &[inputs.groups, p, p], &canvas)?;
    out.add_c64("trimmed_obj", &[inputs.groups, n, n], &trimmed)?;
    out.add_f32("pred_amplitude", &[inputs.groups, c, n, n], &amplitude)?;
    out.add_f32("pred_intensity", &[inputs.groups, c, n, n], &intensity)?;
    if let (Some(nll), Some(mae)) = (poisson_nll, mae) {
        out.add_f32("poisson_nll", &[], &[nll as f32])?;
        out.add_f32("mae", &[], &[mae as f32])?;
    }
    out.finish()?;
    Ok(ForwardSummary {
        groups: inputs.groups,
        channels: c,
        n,
        canvas_size: p,
        object_big: inputs.config.object_big,
        poisson_nll,
        mae,
    })
}
