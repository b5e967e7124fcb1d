//! Batch streaming: grouped samples read straight from the mapped shards by a background thread, a bounded
//! number of batches ahead, shuffled per epoch with a seed. Host memory stays within the budget whatever
//! the dataset size: batches in flight are bounded, and mapped pages already read are released.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use ptycho_kernels::rng::SplitMix64;

use super::contract::release_pages;
use rayon::prelude::*;

use super::dataset::Dataset;
use super::grouping::Groups;
use super::{DataError, Result};

pub const DEFAULT_HOST_MEMORY: usize = 512 << 20;

#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Groups per batch.
    pub batch_size: usize,
    pub shuffle: bool,
    pub seed: u64,
    /// Bytes of host memory the stream may hold in batches.
    pub host_memory: usize,
    /// Factor applied to every amplitude as it is copied (the normalisation α, or 1).
    pub scale: f32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            batch_size: 16,
            shuffle: true,
            seed: 42,
            host_memory: DEFAULT_HOST_MEMORY,
            scale: 1.0,
        }
    }
}

/// One batch of B groups of C patterns.
#[derive(Clone, Debug)]
pub struct Batch {
    pub epoch: usize,
    /// Position of this batch in the epoch.
    pub index: usize,
    pub groups: usize,
    pub c: usize,
    pub n: usize,
    /// (B, C, N, N) amplitudes times the configured scale.
    pub diffraction: Vec<f32>,
    /// (B, C, 2) relative offsets (x, y).
    pub relative_offsets: Vec<f32>,
    /// (B, 2) group centroids (x, y).
    pub centroids: Vec<f64>,
    /// (B, C) global pattern indices.
    pub indices: Vec<usize>,
    /// Group numbers (rows of the `Groups`) in this batch.
    pub group_ids: Vec<usize>,
}

pub struct BatchStream {
    receiver: Receiver<Result<Batch>>,
    worker: Option<JoinHandle<()>>,
    /// Batches the worker may hold ready ahead of the consumer.
    pub prefetch: usize,
}

/// Bytes of one batch of `batch_size` groups.
pub fn batch_bytes(batch_size: usize, c: usize, n: usize) -> usize {
    batch_size * c * (n * n * 4 + 2 * 4 + 8) + batch_size * 16
}

impl BatchStream {
    /// Stream epoch `epoch` of `groups` over `dataset`.
    pub fn epoch(
        dataset: Arc<Dataset>,
        groups: Arc<Groups>,
        config: &StreamConfig,
        epoch: usize,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(DataError::Stream("batch size must be at least 1".into()));
        }
        let one = batch_bytes(config.batch_size, groups.c, dataset.n);
        // The consumer's batch, the one being filled, and the queue must fit the budget.
        let prefetch = (config.host_memory / one).saturating_sub(2);
        if prefetch == 0 {
            return Err(DataError::Stream(format!(
                "a batch of {} groups takes {one} bytes; --host-memory {} holds fewer than 3 (the consumer's, one being read, one ready)",
                config.batch_size, config.host_memory
            )));
        }
        let mut order: Vec<usize> = (0..groups.len()).collect();
        if config.shuffle {
            let mut rng =
                SplitMix64::new(config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for i in (1..order.len()).rev() {
                order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
        }
        let (sender, receiver) = sync_channel(prefetch);
        let config = config.clone();
        let worker = std::thread::Builder::new()
            .name("ptycho-prefetch".into())
            .spawn(move || {
                // Mapped pages read so far are released every `release_every` bytes: with the kernel's
                // fault-around (up to 16 pages per fault), at most about 16 x that stays mapped. Releasing
                // per pattern instead bounds it tighter but halves the rate (a TLB flush per call).
                let release_every = (config.host_memory / 64).clamp(1 << 20, 16 << 20);
                let mut read_since_release = 0usize;
                for (index, ids) in order.chunks(config.batch_size).enumerate() {
                    let batch = fill(&dataset, &groups, ids, &config, epoch, index);
                    read_since_release += one;
                    if read_since_release >= release_every {
                        dataset
                            .shards
                            .iter()
                            .for_each(|s| release_pages(&s.diffraction));
                        read_since_release = 0;
                    }
                    let failed = batch.is_err();
                    if sender.send(batch).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| DataError::io("prefetch thread", e))?;
        Ok(Self {
            receiver,
            worker: Some(worker),
            prefetch,
        })
    }
}

fn fill(
    dataset: &Dataset,
    groups: &Groups,
    ids: &[usize],
    config: &StreamConfig,
    epoch: usize,
    index: usize,
) -> Result<Batch> {
    let (c, n) = (groups.c, dataset.n);
    let nn = n * n;
    let mut batch = Batch {
        epoch,
        index,
        groups: ids.len(),
        c,
        n,
        diffraction: vec![0.0; ids.len() * c * nn],
        relative_offsets: Vec::with_capacity(ids.len() * c * 2),
        centroids: Vec::with_capacity(ids.len() * 2),
        indices: Vec::with_capacity(ids.len() * c),
        group_ids: ids.to_vec(),
    };
    for &g in ids {
        batch.centroids.extend_from_slice(&groups.centroids[g]);
        for row in g * c..(g + 1) * c {
            batch
                .relative_offsets
                .extend(groups.relative[row].iter().map(|&v| v as f32));
            batch.indices.push(groups.indices[row]);
        }
    }
    // Patterns are copied in parallel: one thread alone does not keep up with the page cache.
    batch
        .diffraction
        .par_chunks_mut(nn)
        .zip(batch.indices.par_iter())
        .try_for_each(|(out, &pattern)| {
            dataset.read_pattern(pattern, out)?;
            if config.scale != 1.0 {
                out.iter_mut().for_each(|v| *v *= config.scale);
            }
            Ok::<(), DataError>(())
        })?;
    Ok(batch)
}

impl Iterator for BatchStream {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.recv().ok()
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing the receiver makes the worker's next send fail, so it exits.
        let (_, closed) = sync_channel(0);
        drop(std::mem::replace(&mut self.receiver, closed));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
