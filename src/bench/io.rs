//! `ptycho bench io`: the batch stream (shuffled, grouped, prefetched, within the host-memory budget)
//! against a plain sequential read of the same files, in one run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::{BenchError, During};
use ptycho_kernels::rng::SplitMix64;
use ptycho_kernels::Complex32;
use serde::Serialize;

use crate::data::dataset::{resolve, Dataset};
use crate::data::grouping::{group, GroupingConfig};
use crate::data::stream::{BatchStream, StreamConfig};
use crate::io::npy::{Kind, NpyDtype};
use crate::io::npz_writer::NpzWriter;

#[derive(Clone, Debug)]
pub struct IoBenchConfig {
    pub data: PathBuf,
    /// Create synthetic shards of this many diffraction bytes in `data` when it holds no NPZ files.
    pub make_bytes: Option<u64>,
    pub batch_size: usize,
    pub host_memory: usize,
}

#[derive(Debug, Serialize)]
pub struct IoBenchReport {
    pub files: usize,
    pub file_bytes: u64,
    pub patterns: usize,
    pub n: usize,
    pub open_and_validate_seconds: f64,
    pub plain_read_gb_per_s: f64,
    pub stream_gb_per_s: f64,
    pub stream_over_plain: f64,
    pub batches: usize,
    pub batch_size: usize,
    pub host_memory: usize,
    pub prefetch_batches: usize,
}

const SYNTH_N: usize = 64;
const SYNTH_SHARD_BYTES: u64 = 512 << 20;

fn make_shards(dir: &Path, total: u64) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
    let per_pattern = (SYNTH_N * SYNTH_N * 4) as u64;
    let mut rng = SplitMix64::new(7);
    let mut written = 0u64;
    let mut k = 0;
    while written < total {
        let m = ((total - written).min(SYNTH_SHARD_BYTES) / per_pattern).max(1) as usize;
        let path = dir.join(crate::data::dataset::shard_name(k));
        let mut w = NpzWriter::create(&path, false)?;
        w.add_streamed(
            "diffraction",
            &NpyDtype::little(Kind::Float, 4),
            &[m, SYNTH_N, SYNTH_N],
            |out| {
                let mut pattern = vec![0f32; SYNTH_N * SYNTH_N];
                for _ in 0..m {
                    pattern
                        .iter_mut()
                        .for_each(|v| *v = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32);
                    out.write_all(bytemuck::cast_slice(&pattern))
                        .map_err(|e| crate::data::DataError::io(path.display(), e))?;
                }
                Ok(())
            },
        )?;
        let x: Vec<f64> = (0..m).map(|i| (i % 256) as f64 * 4.0).collect();
        let y: Vec<f64> = (0..m).map(|i| (i / 256) as f64 * 4.0).collect();
        w.add_f64("xcoords", &[m], &x)?;
        w.add_f64("ycoords", &[m], &y)?;
        w.add_c64(
            "probeGuess",
            &[SYNTH_N, SYNTH_N],
            &vec![Complex32::new(1.0, 0.0); SYNTH_N * SYNTH_N],
        )?;
        w.finish()?;
        written += m as u64 * per_pattern;
        k += 1;
        eprintln!(
            "wrote {} ({:.2} GiB so far)",
            path.display(),
            written as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}

pub fn run(config: &IoBenchConfig) -> Result<IoBenchReport, BenchError> {
    if let Some(total) = config.make_bytes {
        if resolve(&config.data).is_err() {
            make_shards(&config.data, total).during("making synthetic shards")?;
        }
    }
    let files = resolve(&config.data)?;
    let file_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();

    let start = Instant::now();
    let dataset = Arc::new(Dataset::open(&config.data)?);
    let open_and_validate_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut buffer = vec![0u8; 8 << 20];
    let mut read = 0u64;
    for f in &files {
        let mut file = std::fs::File::open(f).map_err(|e| BenchError::io(f, e))?;
        loop {
            let got = file.read(&mut buffer).map_err(|e| BenchError::io(f, e))?;
            if got == 0 {
                break;
            }
            read += got as u64;
        }
    }
    let plain_read_gb_per_s = read as f64 / start.elapsed().as_secs_f64() / 1e9;

    let groups = Arc::new(group(
        &dataset.xcoords(),
        &dataset.ycoords(),
        &GroupingConfig::default(),
    )?);
    let stream_config = StreamConfig {
        batch_size: config.batch_size,
        host_memory: config.host_memory,
        ..Default::default()
    };
    let start = Instant::now();
    let stream = BatchStream::epoch(dataset.clone(), groups, &stream_config, 0)?;
    let prefetch_batches = stream.prefetch;
    let (mut batches, mut bytes, mut checksum) = (0usize, 0u64, 0f64);
    for batch in stream {
        let batch = batch?;
        batches += 1;
        bytes += (batch.diffraction.len() * 4) as u64;
        checksum += batch.diffraction[0] as f64;
    }
    let stream_gb_per_s = bytes as f64 / start.elapsed().as_secs_f64() / 1e9;
    std::hint::black_box(checksum);

    Ok(IoBenchReport {
        files: files.len(),
        file_bytes,
        patterns: dataset.m,
        n: dataset.n,
        open_and_validate_seconds,
        plain_read_gb_per_s,
        stream_gb_per_s,
        stream_over_plain: stream_gb_per_s / plain_read_gb_per_s,
        batches,
        batch_size: config.batch_size,
        host_memory: config.host_memory,
        prefetch_batches,
    })
}

impl IoBenchReport {
    pub fn to_text(&self) -> String {
        format!(
            "{} file(s), {:.2} GiB, {} patterns of {}x{}\n  open + validate (one pass):  {:.2} s\n  plain sequential read:       {:.2} GB/s\n  batch stream (shuffled, batch {}, {} MiB budget, {} ahead): {:.2} GB/s\n  stream / plain read:         {:.3}\n",
            self.files,
            self.file_bytes as f64 / (1u64 << 30) as f64,
            self.patterns,
            self.n,
            self.n,
            self.open_and_validate_seconds,
            self.plain_read_gb_per_s,
            self.batch_size,
            self.host_memory >> 20,
            self.prefetch_batches,
            self.stream_gb_per_s,
            self.stream_over_plain
        )
    }
}
