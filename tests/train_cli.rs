//! `ptycho train` end to end on a tiny simulated dataset (CPU backend): history.json, a verified
//! bundle whose tensors fit the architecture, and the same loss history for the same seed.

use std::path::Path;
use std::process::Command;

use ptycho_wgpu::model::{parameters, ModelConfig};
use ptycho_wgpu::persist::bundle;

fn ptycho(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn train(data: &Path, out: &Path) -> serde_json::Value {
    ptycho(&[
        "train",
        "--train-data",
        data.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--n-groups",
        "16",
        "--nepochs",
        "2",
        "--batch-size",
        "8",
        "--n-filters-scale",
        "1",
        "--nphotons",
        "1e4",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]);
    serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap()
}

#[test]
fn train_writes_history_and_a_verified_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    ptycho(&[
        "simulate",
        "--output",
        sim.to_str().unwrap(),
        "--n",
        "64",
        "--object-size",
        "160",
        "--n-images",
        "40",
        "--doses",
        "1e4",
        "--no-split",
        "--device",
        "cpu",
    ]);
    let data = sim.join("dose_10000/patched.npz");
    let first = train(&data, &dir.path().join("a"));
    let losses = first["train_loss"].as_array().unwrap();
    assert_eq!(losses.len(), 2);
    assert!(losses.iter().all(|l| l.as_f64().unwrap().is_finite()));
    assert!(first["val_loss"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v.is_null()));
    assert_eq!(first["learning_rate"][0], 1e-3);

    let config = ModelConfig {
        n_filters_scale: 1,
        ..ModelConfig::pinn(64, 1)
    };
    let expected = parameters(&config).unwrap();
    let loaded = bundle::load(&dir.path().join("a"), Some(&expected)).unwrap();
    assert_eq!(loaded.params["N"], 64);
    assert_eq!(loaded.params["model_type"], "pinn");
    let optimizer = loaded.optimizer.unwrap();
    let step = optimizer.iter().find(|t| t.name == "step").unwrap();
    // int(16 · 0.05) = 0 groups held out, so 16 train: 2 batches of 8 per epoch, 2 epochs.
    assert_eq!(step.data, [4.0]);

    let second = train(&data, &dir.path().join("b"));
    assert_eq!(
        first["train_loss"], second["train_loss"],
        "same seed, same history"
    );
}
