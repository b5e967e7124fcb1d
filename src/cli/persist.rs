//! `ptycho verify`: check a bundle's digests.

use std::path::PathBuf;

use clap::Args;

use crate::persist::bundle;

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
