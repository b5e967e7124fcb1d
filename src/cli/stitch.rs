//! `ptycho stitch`: patches placed at their positions into one image (`reassemble_position`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::device::{with_backend, DeviceArgs};
use crate::data::checked::CheckedNpz;
use crate::infer::phase_sync::synchronise_phases;
use crate::infer::stitch;
use crate::io::npz::NpzFile;
use crate::io::npz_writer::NpzWriter;

#[derive(Args)]
pub struct StitchArgs {
    /// NPZ with `patches` complex64 (B, N, N), `global_offsets` float (B, 2) as (x, y), optional `crop`.
    #[arg(long)]
    input: PathBuf,
    /// Output NPZ: `stitched` complex64 (S, S) and `coverage` float32 (S, S).
    #[arg(long)]
    output: PathBuf,
    /// M of the central crop [default: the input's `crop`, else 20].
    #[arg(long)]
    crop: Option<usize>,
    /// First rotate each patch's global phase to agree with its overlapping neighbours (as `ptycho
    /// infer` does by default); without it, the reference's plain stitch.
    #[arg(long)]
    phase_sync: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: StitchArgs) -> anyhow::Result<()> {
    let shown = args.input.display().to_string();
    let npz = NpzFile::open(&args.input)?;
    let checked = CheckedNpz::new(&npz, &args.input);
    let (patch_shape, mut data) = checked.complex("patches", "complex64 patches (B, N, N)")?;
    let (b, n) = match *patch_shape {
        [b, h, w] | [b, h, w, 1] if h == w && b > 0 => (b, h),
        _ => bail!("{shown}: 'patches' must be (B, N, N) complex64, found shape {patch_shape:?}"),
    };
    let (offset_shape, values) =
        checked.real_f64("global_offsets", "float offsets (B, 2) as (x, y)")?;
    if !matches!(*offset_shape, [m, 2] | [m, 1, 2, 1] if m == b) {
        bail!("{shown}: 'global_offsets' must be float ({b}, 2) as (x, y), found shape {offset_shape:?}");
    }
    let offsets: Vec<[f64; 2]> = values.chunks(2).map(|p| [p[0], p[1]]).collect();
    let crop = match (args.crop, npz.has("crop")) {
        (Some(c), _) => c,
        (None, true) => {
            let v = npz
                .array("crop")?
                .to_i64_vec()
                .context("'crop' must be an integer")?;
            match v.as_slice() {
                [c] if *c > 0 => *c as usize,
                _ => bail!("{shown}: 'crop' must be one positive integer, found {v:?}"),
            }
        }
        (None, false) => 20,
    };
    if args.phase_sync {
        stitch::check_crop(n, crop).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let sync = synchronise_phases(&mut data, n, &offsets, crop);
        outln!("phase sync: {sync}");
    }
    let stitched = with_backend!(args.device.open()?, backend => stitch::reassemble(&backend, &data, n, &offsets, crop))?;
    let s = stitched.size;
    let mut out = NpzWriter::create(&args.output, false)?;
    out.add_c64("stitched", &[s, s], &stitched.image)?;
    out.add_f32("coverage", &[s, s], &stitched.coverage)?;
    out.finish()?;
    outln!(
        "stitched {b} patches (crop {crop}) into {s} x {s}: {}",
        args.output.display()
    );
    Ok(())
}
