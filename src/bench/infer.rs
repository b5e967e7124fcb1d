//! `ptycho bench infer`: the PINN's `diffraction_to_obj` (network, complex object, merge, trimmed
//! object back on the host) over a synthetic scan in batches, as the reference's `predict`, in
//! patterns per second; with `profile`, every backend call of the run timed ([`Profiled`]).

use std::time::Instant;

use ptycho_kernels::Backend;
use serde::Serialize;

use super::profile::{ProfileTable, Profiled};
use super::train::synthetic_diffraction;
use super::BenchError;
use crate::infer::{merged_objects, network_patches, Merge};
use crate::model::network::{glorot_init, Network};
use crate::model::{layers, ModelConfig, ModelKind};

#[derive(Clone, Debug)]
pub struct InferBenchConfig {
    pub model: ModelConfig,
    /// Groups in the scan (patterns: groups × gridsize²).
    pub groups: usize,
    pub batch_size: usize,
    pub profile: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct InferBenchReport {
    pub device: String,
    pub model: String,
    pub groups: usize,
    pub patterns: usize,
    pub batch_size: usize,
    pub seconds: f64,
    pub patterns_per_s: f64,
    pub profile: Option<ProfileTable>,
}

/// diffraction_to_obj over every batch of the scan on `b`.
fn run_scan<B: Backend>(
    b: &B,
    network: &Network<B::Storage>,
    config: &InferBenchConfig,
    x: &[f32],
    offsets: &[[f32; 2]],
) -> Result<(), BenchError> {
    let model = &config.model;
    let (c, pattern) = (model.channels(), model.n * model.n);
    for first in (0..config.groups).step_by(config.batch_size) {
        let count = config.batch_size.min(config.groups - first);
        let (from, to) = (first * c, (first + count) * c);
        let patches = network_patches(b, network, &x[from * pattern..to * pattern], count)?;
        merged_objects(b, &patches, &offsets[from..to], model, Merge::Reference)?;
    }
    Ok(())
}

pub fn run<B: Backend>(b: &B, config: &InferBenchConfig) -> Result<InferBenchReport, BenchError> {
    let model = &config.model;
    model.validate()?;
    if model.kind != ModelKind::Pinn || config.groups == 0 || config.batch_size == 0 {
        return Err(BenchError::Invalid(
            "bench infer times the PINN on at least one group, in batches of at least 1".into(),
        ));
    }
    let network = Network::new(b, model, &glorot_init(model, 1)?)?;
    let (x, offsets) = synthetic_diffraction(model, config.groups);
    // One untimed pass, as the peer's first predict.
    run_scan(b, &network, config, &x, &offsets)?;
    let start = Instant::now();
    run_scan(b, &network, config, &x, &offsets)?;
    let seconds = start.elapsed().as_secs_f64();
    let profile = if config.profile {
        let profiled = Profiled::new(b);
        let start = Instant::now();
        run_scan(&profiled, &network, config, &x, &offsets)?;
        let seconds = start.elapsed().as_secs_f64();
        Some(profiled.take().table(1, seconds, &layers(model)?))
    } else {
        None
    };
    let patterns = config.groups * model.channels();
    Ok(InferBenchReport {
        device: b.describe(),
        model: format!(
            "pinn N={} gridsize {} n_filters_scale {}{}",
            model.n,
            model.gridsize,
            model.n_filters_scale,
            if model.probe_big { " probe_big" } else { "" }
        ),
        groups: config.groups,
        patterns,
        batch_size: config.batch_size,
        seconds,
        patterns_per_s: patterns as f64 / seconds,
        profile,
    })
}

impl InferBenchReport {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}: {}, {} groups ({} patterns) in batches of {}\n  diffraction_to_obj {:.1} ms: {:.1} patterns/s\n",
            self.device,
            self.model,
            self.groups,
            self.patterns,
            self.batch_size,
            1e3 * self.seconds,
            self.patterns_per_s
        );
        if let Some(profile) = &self.profile {
            out.push_str("  per-op profile of the scan:\n");
            out.push_str(&profile.to_text());
        }
        out
    }
}
