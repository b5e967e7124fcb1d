//! Benchmarks behind `ptycho bench`. They report ratios measured in one run on one adapter (kernel
//! bandwidth against a copy kernel, GPU against the CPU backend), since absolute times on shared or
//! software devices say little.

pub mod fft;
pub mod io;
pub mod physics;
pub mod train;

use std::time::{Duration, Instant};

/// Median seconds per repetition of `run(reps)`, with `reps` chosen so that one sample lasts about
/// `target`, after one untimed warm-up run (pipeline compilation, first allocations). `run` must finish
/// (synchronise) all the work it starts.
pub fn median_seconds_per_rep(
    target: Duration,
    samples: usize,
    mut run: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<(f64, usize)> {
    run(1)?;
    let start = Instant::now();
    run(1)?;
    let once = start.elapsed().as_secs_f64().max(1e-6);
    let reps = ((target.as_secs_f64() / once).round() as usize).clamp(1, 10_000);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        run(reps)?;
        times.push(start.elapsed().as_secs_f64() / reps as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], reps))
}
