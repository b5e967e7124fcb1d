//! `ptycho data inspect|shard|convert`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;

use crate::data::canonical::{parse_size, write_range, write_shards};
use crate::data::contract::ContractOptions;
use crate::data::dataset::{is_shard_name, resolve, Dataset};
use crate::io::npz::NpzFile;
use crate::persist::output_dir::OutputDir;
use anyhow::Context;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Keys, shapes and dtypes of an NPZ (the first file of a folder or glob), diffraction statistics of
    /// the whole dataset, and the contract verdict (exit 1 when it breaks the contract).
    Inspect {
        /// An NPZ file, a folder of shards, or a glob.
        path: PathBuf,
        #[arg(long)]
        json: bool,
        /// Folder for decompressed copies of deflated members [default: .ptycho-cache beside the file].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Rewrite a dataset (file, folder of shards, or glob) as stored, memory-mappable shards in the
    /// canonical keys.
    Shard {
        /// The dataset: an NPZ file, a folder of shards, or a glob.
        input: PathBuf,
        /// The folder for the shards (shard_00000.npz, ...); it must be empty or new.
        #[arg(long)]
        out: PathBuf,
        /// Remove the shards already in --out before writing the new ones.
        #[arg(long)]
        overwrite: bool,
        /// Largest diffraction payload per shard, e.g. 1GiB or 512MiB.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        max_shard_size: u64,
        /// Deflate the members (smaller files, but no longer memory-mappable in place).
        #[arg(long)]
        compress: bool,
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Rewrite legacy files in the canonical contract: `diff3d` to `diffraction`, (N, N, M) to (M, N, N),
    /// and with --from-counts integer photon counts to amplitudes (square root).
    Convert {
        /// The legacy NPZ file.
        input: PathBuf,
        /// The canonical NPZ file to write.
        #[arg(long)]
        out: PathBuf,
        /// The diffraction holds photon counts (intensities): store their square roots, the
        /// amplitudes the contract asks for.
        #[arg(long)]
        from_counts: bool,
        /// Deflate the members (smaller files, but no longer memory-mappable in place).
        #[arg(long)]
        compress: bool,
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Another tool's files as one NPZ of the contract: `--from ptychodus DIR` reads DIR/diffraction.h5
    /// (counts) and DIR/product.h5 (positions, probe, object).
    Import {
        #[arg(long, value_enum)]
        from: super::interop::Format,
        /// The folder holding the files.
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        overwrite: bool,
    },
    /// A dataset as another tool's files: `--format ptychodus` writes OUT/diffraction.h5 (counts,
    /// LZF) and OUT/product.h5 (probe, positions, object), Ptychodus's batch input.
    Export {
        #[arg(long, value_enum)]
        format: super::interop::Format,
        #[arg(long)]
        input: PathBuf,
        /// The folder to write into.
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        geometry: super::interop::GeometryArgs,
    },
}

/// An empty shard folder, or with --overwrite one whose old shards are removed; any other file in
/// it is refused (it is not ours to delete, and would make the folder no longer one dataset).
fn clear_shard_folder(out: &OutputDir, overwrite: bool) -> anyhow::Result<()> {
    let entries = out.entries()?;
    let (shards, others): (Vec<&String>, Vec<&String>) = entries
        .iter()
        .filter(|n| !n.starts_with('.'))
        .partition(|n| is_shard_name(n));
    if !others.is_empty() {
        anyhow::bail!(
            "{}: holds files that are not shards ({}); shards go into an empty or new folder",
            out.path().display(),
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if shards.is_empty() {
        return Ok(());
    }
    if !overwrite {
        anyhow::bail!(
            "{}: already holds {} shard(s) ({} ...); they would be read back together with the new \
             ones. Pass --overwrite to remove them first, or choose an empty folder",
            out.path().display(),
            shards.len(),
            shards[0]
        );
    }
    for name in shards {
        let path = out.join(name);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

fn provenance(command: &str, input: &Path) -> serde_json::Value {
    json!({
        "tool": "ptycho-wgpu",
        "version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "input": input.display().to_string(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    })
}

pub fn run(command: DataCommand) -> anyhow::Result<bool> {
    match command {
        DataCommand::Import {
            from,
            input,
            output,
            overwrite,
        } => super::interop::import(from, &input, &output, overwrite).map(|_| true),
        DataCommand::Export {
            format,
            input,
            output,
            overwrite,
            geometry,
        } => super::interop::export_dataset(format, &input, &output, overwrite, geometry)
            .map(|_| true),
        DataCommand::Inspect {
            path,
            json,
            cache_dir,
        } => inspect(&path, json, cache_dir.as_deref()),
        DataCommand::Shard {
            input,
            out,
            max_shard_size,
            compress,
            cache_dir,
            overwrite,
        } => {
            let dataset =
                Dataset::open_with(&input, ContractOptions::default(), cache_dir.as_deref())?;
            report_notices(&dataset);
            let out_dir = OutputDir::lock(&out)?;
            clear_shard_folder(&out_dir, overwrite)?;
            let paths = write_shards(
                &dataset,
                &out,
                max_shard_size,
                compress,
                provenance("data shard", &input),
            )?;
            outln!(
                "wrote {} shard(s) with {} patterns to {}",
                paths.len(),
                dataset.m,
                out.display()
            );
            Ok(true)
        }
        DataCommand::Convert {
            input,
            out,
            from_counts,
            compress,
            cache_dir,
        } => {
            let options = ContractOptions { from_counts };
            let dataset = Dataset::open_with(&input, options, cache_dir.as_deref())?;
            report_notices(&dataset);
            let mut record = provenance("data convert", &input);
            record["from_counts"] = json!(from_counts);
            write_range(&dataset, 0..dataset.m, &out, compress, record)?;
            outln!(
                "wrote {} patterns of {}x{} to {}",
                dataset.m,
                dataset.n,
                dataset.n,
                out.display()
            );
            Ok(true)
        }
    }
}

fn report_notices(dataset: &Dataset) {
    for shard in &dataset.shards {
        for notice in &shard.notices {
            eprintln!("note: {}: {notice}", shard.path.display());
        }
    }
}

fn inspect(path: &Path, as_json: bool, cache_dir: Option<&Path>) -> anyhow::Result<bool> {
    let files = resolve(path)?;
    let npz = NpzFile::open_with_cache(&files[0], cache_dir)?;
    let mut arrays = Vec::new();
    for key in npz.keys() {
        let header = npz.header(&key)?;
        arrays.push(json!({
            "key": key,
            "shape": header.shape,
            "dtype": header.dtype.descr,
            "fortran_order": header.fortran_order,
            "compressed": npz.is_compressed(&key),
        }));
    }
    let verdict = Dataset::open_with(path, ContractOptions::default(), cache_dir);
    let report = match &verdict {
        Ok(d) => {
            let s = &d.shards[0];
            json!({
                "file": path.display().to_string(),
                "arrays": arrays,
                "contract": "ok",
                "diffraction_key": s.diffraction_key,
                "layout": s.layout,
                "patterns": d.m,
                "n": d.n,
                "diffraction": { "min": d.stats.min, "mean": d.stats.mean(), "max": d.stats.max },
                "normalization_alpha": d.normalization(),
                "object_shape": s.object.as_ref().map(|o| o.shape()),
                "metadata": s.metadata,
                "notices": s.notices,
                "shards": d.summaries(),
            })
        }
        Err(e) => {
            json!({ "file": path.display().to_string(), "arrays": arrays, "contract": "invalid", "error": e.to_string() })
        }
    };
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match files.len() {
            1 => outln!("{}", files[0].display()),
            n => outln!(
                "{} ({n} files; keys of {})",
                path.display(),
                files[0].display()
            ),
        }
        for a in &arrays {
            outln!(
                "  {:<16} {:<8} {:<18} {}{}",
                a["key"].as_str().unwrap_or(""),
                a["dtype"].as_str().unwrap_or(""),
                a["shape"].to_string(),
                if a["compressed"] == true {
                    "deflated"
                } else {
                    "stored"
                },
                if a["fortran_order"] == true {
                    ", Fortran order"
                } else {
                    ""
                },
            );
        }
        match &verdict {
            Ok(d) => {
                outln!(
                    "diffraction: {} patterns of {}x{} under '{}'; min {:.6} mean {:.6} max {:.6}; alpha {:.6}",
                    d.m, d.n, d.n, d.shards[0].diffraction_key, d.stats.min, d.stats.mean(), d.stats.max, d.normalization()
                );
                for notice in &d.shards[0].notices {
                    outln!("note: {notice}");
                }
                outln!("contract: OK");
            }
            Err(e) => outln!("contract: INVALID: {e}"),
        }
    }
    Ok(verdict.is_ok())
}
