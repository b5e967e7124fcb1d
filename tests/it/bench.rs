//! The benchmarks' per-op profile: a training step through [`Profiled`] computes exactly what the
//! plain step does, and its table accounts for every layer and for the whole step; `ptycho bench
//! infer` and `bench train --profile` report it.

use ptycho_wgpu::bench::profile::Profiled;
use ptycho_wgpu::bench::train::batch;
use ptycho_wgpu::kernels::ops::optim::AdamConfig;
use ptycho_wgpu::kernels::{backend_tests, Backend};
use ptycho_wgpu::model::network::glorot_init;
use ptycho_wgpu::model::{layers, ModelConfig, Op};
use ptycho_wgpu::physics::probe::{default_probe, normalize, DEFAULT_PROBE_SCALE};
use ptycho_wgpu::train::Trainer;

use crate::common::ptycho_ok;

fn profiled_steps_compute_what_plain_steps_do<B: Backend>(b: &B) {
    let model = ModelConfig {
        n_filters_scale: 1,
        probe_big: true,
        ..ModelConfig::pinn(64, 2)
    };
    let weights = glorot_init(&model, 3).unwrap();
    let probe = normalize(&default_probe(64, 0.0), 64, DEFAULT_PROBE_SCALE).unwrap();
    let trainer =
        || Trainer::pinn(b, &model, &weights, &probe, 100.0, AdamConfig::default()).unwrap();
    let data = batch(b, &model, 2, 100.0).unwrap();
    let (mut plain, mut profiled_trainer) = (trainer(), trainer());
    let want: Vec<f64> = (0..2)
        .map(|_| plain.train_step(b, &data).unwrap())
        .collect();
    let profiled = Profiled::new(b);
    let start = std::time::Instant::now();
    let got: Vec<f64> = (0..2)
        .map(|_| profiled_trainer.train_step(&profiled, &data).unwrap())
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(want, got);
    let architecture = layers(&model).unwrap();
    let table = profiled.take().table(2, seconds, &architecture);
    for layer in architecture
        .iter()
        .filter(|l| matches!(l.op, Op::Conv { .. }))
    {
        for part in ["conv forward", "conv kernel grad"] {
            assert!(
                table
                    .rows
                    .iter()
                    .any(|r| r.part == part && r.what.contains(&layer.name)),
                "{part} of {} is missing:\n{}",
                layer.name,
                table.to_text()
            );
        }
    }
    for family in [
        "physics: FFT",
        "physics: merge and extraction",
        "optimizer (Adam)",
        "loss",
    ] {
        assert!(table.rows.iter().any(|r| r.what == family), "{family}");
    }
    let shares: f64 =
        table.rows.iter().map(|r| r.share).sum::<f64>() + table.host_ms / table.step_ms;
    assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
    assert!(table.rows.iter().all(|r| r.ms >= 0.0 && r.calls > 0.0));
}

backend_tests!(profiled_steps_compute_what_plain_steps_do);

#[test]
fn bench_infer_and_train_profile_report_the_table() {
    let infer = ptycho_ok(&[
        "bench",
        "infer",
        "--groups",
        "5",
        "--batch-size",
        "2",
        "--gridsize",
        "2",
        "--n-filters-scale",
        "1",
        "--profile",
        "--device",
        "cpu",
    ]);
    assert!(
        infer.contains("5 groups (20 patterns) in batches of 2"),
        "{infer}"
    );
    assert!(
        infer.contains("patterns/s") && infer.contains("per-op profile"),
        "{infer}"
    );
    assert!(
        infer.contains("encoder/conv_1a") && infer.contains("physics: merge"),
        "{infer}"
    );
    let train = ptycho_ok(&[
        "bench",
        "train",
        "--quick",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--n-filters-scale",
        "1",
        "--profile",
        "--json",
        "--device",
        "cpu",
    ]);
    let report: serde_json::Value = serde_json::from_str(&train).unwrap();
    let rows = report["profile"]["rows"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["part"] == "conv kernel grad"),
        "{train}"
    );
    assert!(report["profile"]["step_ms"].as_f64().unwrap() > 0.0);
}
