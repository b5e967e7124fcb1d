//! `ptycho export`, `ptycho data import` and `ptycho data export`: Ptychodus's product and
//! diffraction files.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};

use crate::interop::convert::{export_data, export_product, import_ptychodus, Frame, Geometry};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Ptychodus,
}

/// The far-field geometry a product records (it sets the object pixel, λ·z / (N·d)).
#[derive(Args, Clone, Copy)]
pub struct GeometryArgs {
    #[arg(long, default_value_t = Geometry::default().photon_energy_ev)]
    photon_energy_ev: f64,
    #[arg(long, default_value_t = Geometry::default().detector_distance_m)]
    detector_distance_m: f64,
    #[arg(long, default_value_t = Geometry::default().detector_pixel_m)]
    detector_pixel_m: f64,
    /// s in counts = (s·amplitude)² [default: the data's `_metadata` physics_parameters.s_sim].
    #[arg(long)]
    count_scale: Option<f64>,
}

impl GeometryArgs {
    pub fn geometry(self) -> anyhow::Result<Geometry> {
        for (name, v) in [
            ("--photon-energy-ev", self.photon_energy_ev),
            ("--detector-distance-m", self.detector_distance_m),
            ("--detector-pixel-m", self.detector_pixel_m),
            ("--count-scale", self.count_scale.unwrap_or(1.0)),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("{name} must be a positive number, got {v}");
            }
        }
        Ok(Geometry {
            photon_energy_ev: self.photon_energy_ev,
            detector_distance_m: self.detector_distance_m,
            detector_pixel_m: self.detector_pixel_m,
            object_pixel_m: None,
        })
    }
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    format: Format,
    /// A reconstruction NPZ (`object` or `reconstructed_object`, in the data's object frame).
    #[arg(long)]
    input: PathBuf,
    /// The dataset it reconstructs: probe, positions, counts and the count scale.
    #[arg(long)]
    data: PathBuf,
    /// The product file to write (e.g. product.h5).
    #[arg(long)]
    output: PathBuf,
    /// The reconstruction is a stitched canvas (`ptycho infer`), whose centre is the mean of its
    /// positions, not an image in the data's object frame.
    #[arg(long)]
    stitched: bool,
    /// Replace --output if it exists (otherwise refused).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    geometry: GeometryArgs,
}

fn refuse_existing(path: &Path, overwrite: bool) -> anyhow::Result<()> {
    if path.exists() && !overwrite {
        bail!("{} exists; pass --overwrite to replace it", path.display());
    }
    Ok(())
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let Format::Ptychodus = args.format;
    refuse_existing(&args.output, args.overwrite)?;
    let report = export_product(
        &args.input,
        &args.data,
        &args.output,
        args.geometry.geometry()?,
        args.geometry.count_scale,
        if args.stitched {
            Frame::Stitched
        } else {
            Frame::Object
        },
    )?;
    outln!(
        "wrote {}: object {}x{}, {} positions, object pixel {:.4e} m, count scale {}",
        args.output.display(),
        report.object_shape[0],
        report.object_shape[1],
        report.positions,
        report.object_pixel_m,
        report.count_scale
    );
    Ok(())
}

/// `--export ptychodus` of `ptycho reconstruct` and `ptycho infer`: OUTPUT_DIR/product.h5 beside
/// the reconstruction.
pub fn export_beside(
    recon: &Path,
    data: &Path,
    geometry: GeometryArgs,
    frame: Frame,
    overwrite: bool,
) -> anyhow::Result<PathBuf> {
    let output = recon.with_file_name("product.h5");
    refuse_existing(&output, overwrite)?;
    export_product(
        recon,
        data,
        &output,
        geometry.geometry()?,
        geometry.count_scale,
        frame,
    )?;
    Ok(output)
}

/// `ptycho data import --from ptychodus DIR --output DATA.npz`.
pub fn import(from: Format, dir: &Path, output: &Path, overwrite: bool) -> anyhow::Result<()> {
    let Format::Ptychodus = from;
    refuse_existing(output, overwrite)?;
    let report = import_ptychodus(dir, output)?;
    outln!(
        "wrote {}: {} patterns of {n}x{n}, object {}x{}, count scale {}",
        output.display(),
        report.patterns,
        report.object_shape[0],
        report.object_shape[1],
        report.count_scale,
        n = report.n
    );
    if report.bad_pixels > 0 {
        eprintln!(
            "note: {} detector pixels are marked bad in {}; their counts are kept as measured (the NPZ \
             contract has no mask)",
            report.bad_pixels,
            dir.join("diffraction.h5").display()
        );
    }
    Ok(())
}

/// `ptycho data export --format ptychodus --input DATA.npz --output DIR`.
pub fn export_dataset(
    format: Format,
    input: &Path,
    output: &Path,
    overwrite: bool,
    geometry: GeometryArgs,
) -> anyhow::Result<()> {
    let Format::Ptychodus = format;
    for name in ["diffraction.h5", "product.h5"] {
        refuse_existing(&output.join(name), overwrite)?;
    }
    let report = export_data(input, output, geometry.geometry()?, geometry.count_scale)?;
    outln!(
        "wrote {}: {} patterns, object {}x{}, object pixel {:.4e} m, count scale {}",
        report
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        report.positions,
        report.object_shape[0],
        report.object_shape[1],
        report.object_pixel_m,
        report.count_scale
    );
    Ok(())
}
