//! `ptycho verify`: check a bundle's digests; `ptycho import-bundle`: a reference bundle as ours.

use std::path::PathBuf;

use clap::Args;

use crate::persist::{bundle, reference};

#[derive(Args)]
pub struct VerifyArgs {
    /// A wts.h5.zip bundle or the folder holding one.
    path: PathBuf,
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let verified = bundle::verify(&args.path)?;
    outln!(
        "OK: {} (sha256 {}, {} entries verified)",
        verified.path.display(),
        verified.sha256,
        verified.entries
    );
    Ok(())
}

#[derive(Args)]
pub struct ImportBundleArgs {
    /// The reference's wts.h5.zip (PtychoPINN's TensorFlow ModelManager).
    reference: PathBuf,
    /// Where wts.h5.zip, its .sha256 and import.json go.
    #[arg(long)]
    output_dir: PathBuf,
    /// The probe, when params.dill does not hold a readable one: an NPZ with probeGuess (N, N)
    /// complex. Given, it is used instead of the pickled probe.
    #[arg(long)]
    probe_npz: Option<PathBuf>,
    /// Replace a bundle already in --output-dir (otherwise refused).
    #[arg(long)]
    overwrite: bool,
}

pub fn import_bundle(args: ImportBundleArgs) -> anyhow::Result<()> {
    let summary = reference::import_bundle(
        &args.reference,
        &args.output_dir,
        args.probe_npz.as_deref(),
        args.overwrite,
    )?;
    let m = &summary.model;
    outln!(
        "{}: N = {}, gridsize {}, n_filters_scale {}, probe_big {}, {} activation; {} \
         convolutions mapped; intensity scale {}; probe from {}",
        args.reference.display(),
        m.n,
        m.gridsize,
        m.n_filters_scale,
        m.probe_big,
        serde_json::to_value(m.amp_activation)?
            .as_str()
            .unwrap_or_default(),
        summary.layers.len(),
        summary.intensity_scale,
        summary.probe_source
    );
    outln!(
        "→ {} (sha256 {}, {} bytes); the layer mapping is in {}",
        summary.bundle.path.display(),
        summary.bundle.sha256,
        summary.bundle.size_bytes,
        args.output_dir.join("import.json").display()
    );
    Ok(())
}
