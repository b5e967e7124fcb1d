//! `ptycho data inspect|shard|convert`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;

use crate::data::canonical::{parse_size, write_range, write_shards};
use crate::data::contract::ContractOptions;
use crate::data::dataset::{resolve, Dataset};
use crate::data::npz::NpzFile;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Keys, shapes and dtypes of an NPZ (the first file of a folder or glob), diffraction statistics of
    /// the whole dataset, and the contract verdict (exit 1 when it breaks the contract).
    Inspect {
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
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
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
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        from_counts: bool,
        #[arg(long)]
        compress: bool,
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
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
        } => {
            let dataset =
                Dataset::open_with(&input, ContractOptions::default(), cache_dir.as_deref())?;
            report_notices(&dataset);
            let paths = write_shards(
                &dataset,
                &out,
                max_shard_size,
                compress,
                provenance("data shard", &input),
            )?;
            println!(
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
            println!(
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
                "object_shape": s.object.as_ref().map(|o| [o.0, o.1]),
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
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match files.len() {
            1 => println!("{}", files[0].display()),
            n => println!(
                "{} ({n} files; keys of {})",
                path.display(),
                files[0].display()
            ),
        }
        for a in &arrays {
            println!(
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
                println!(
                    "diffraction: {} patterns of {}x{} under '{}'; min {:.6} mean {:.6} max {:.6}; alpha {:.6}",
                    d.m, d.n, d.n, d.shards[0].diffraction_key, d.stats.min, d.stats.mean(), d.stats.max, d.normalization()
                );
                for notice in &d.shards[0].notices {
                    println!("note: {notice}");
                }
                println!("contract: OK");
            }
            Err(e) => println!("contract: INVALID: {e}"),
        }
    }
    Ok(verdict.is_ok())
}
