//! `ptycho train` end to end on a tiny simulated dataset (CPU backend): history.json, a verified
//! bundle whose tensors fit the architecture, and the same loss history for the same seed.

use crate::common::{self, ptycho_err, ptycho_ok};

use std::path::Path;

use ptycho_wgpu::model::{parameters, ModelConfig};
use ptycho_wgpu::persist::bundle;

/// `ptycho simulate` of N = 64 patterns from a 160² object on the CPU backend into `sim`.
fn simulate(sim: &Path, images: &str, dose: &str, extra: &[&str]) {
    let mut args = vec![
        "simulate",
        "--output",
        sim.to_str().unwrap(),
        "--n",
        "64",
        "--object-size",
        "160",
        "--n-images",
        images,
        "--doses",
        dose,
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    ptycho_ok(&args);
}

fn train(data: &Path, out: &Path) -> serde_json::Value {
    ptycho_ok(&[
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
    simulate(&sim, "40", "1e4", &["--no-split"]);
    let data = sim.join("dose_10000/patched.npz");
    let first = train(&data, &dir.path().join("a"));
    let losses = first["train_loss"].as_array().unwrap();
    assert_eq!(losses.len(), 2);
    assert!(losses.iter().all(|l| l.as_f64().unwrap().is_finite()));
    // Keras' split: floor(16 · 0.95) = 15 groups train, the last one is held out.
    let validation = first["val_loss"].as_array().unwrap();
    assert!(validation.iter().all(|v| v.as_f64().unwrap().is_finite()));
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
    // 15 training groups: 2 batches (8 + 7) per epoch, 2 epochs.
    assert_eq!(step.data, [4.0]);

    assert_eq!(loaded.params["n_groups"], 16);

    let second = train(&data, &dir.path().join("b"));
    assert_eq!(
        first["train_loss"], second["train_loss"],
        "same seed, same history"
    );

    // Without --n-groups every pattern is a sample: 40 groups, floor(40 · 0.95) = 38 of them train,
    // 5 batches of 8 in the one epoch.
    let all = dir.path().join("all");
    ptycho_ok(&[
        "train",
        "--train-data",
        data.to_str().unwrap(),
        "--output-dir",
        all.to_str().unwrap(),
        "--nepochs",
        "1",
        "--batch-size",
        "8",
        "--n-filters-scale",
        "1",
        "--nphotons",
        "1e4",
        "--device",
        "cpu",
    ]);
    let loaded = bundle::load(&all, None).unwrap();
    assert_eq!(loaded.params["n_groups"], 40);
    let optimizer = loaded.optimizer.unwrap();
    let step = optimizer.iter().find(|t| t.name == "step").unwrap();
    assert_eq!(step.data, [5.0]);
}

/// Two epochs, then a resume to four, equals four epochs at once: the same history and the same
/// weights, bit for bit (CPU backend).
#[test]
fn resumed_training_matches_uninterrupted_training() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    simulate(&sim, "24", "1e5", &["--no-split", "--seed", "9"]);
    let data = sim.join("dose_100000/patched.npz");
    let run = |out: &str, epochs: &str, resume: Option<&str>| {
        let out = dir.path().join(out);
        let mut args = vec![
            "train".to_string(),
            "--train-data".into(),
            data.to_str().unwrap().into(),
            "--output-dir".into(),
            out.to_str().unwrap().into(),
            "--n-groups".into(),
            "24".into(),
            "--nepochs".into(),
            epochs.into(),
            "--batch-size".into(),
            "8".into(),
            "--n-filters-scale".into(),
            "1".into(),
            "--nphotons".into(),
            "1e5".into(),
            "--device".into(),
            "cpu".into(),
            "--checkpoint-every".into(),
            "2".into(),
        ];
        if let Some(r) = resume {
            args.push("--resume".into());
            args.push(dir.path().join(r).to_str().unwrap().into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ptycho_ok(&refs);
        out
    };
    let whole = run("whole", "4", None);
    let first = run("first", "2", None);
    std::fs::create_dir_all(dir.path().join("resumed")).unwrap();
    for f in ["wts.h5.zip", "wts.h5.zip.sha256"] {
        std::fs::copy(first.join(f), dir.path().join("resumed").join(f)).unwrap();
    }
    let resumed = run("resumed", "4", Some("resumed"));
    let history = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("history.json")).unwrap()).unwrap()
    };
    // The resumed run trained epochs 3 and 4 only: its first two records are the saved ones (their
    // timings included), not a fresh start that would reproduce the same losses.
    assert_eq!(
        history(&resumed)["seconds"][0],
        history(&first)["seconds"][0]
    );
    assert_eq!(
        history(&resumed)["seconds"][1],
        history(&first)["seconds"][1]
    );
    assert_eq!(
        history(&whole)["train_loss"],
        history(&resumed)["train_loss"]
    );
    assert_eq!(history(&whole)["val_loss"], history(&resumed)["val_loss"]);
    let a = bundle::load(&whole, None).unwrap();
    let b = bundle::load(&resumed, None).unwrap();
    assert_eq!(a.weights, b.weights, "the same weights after four epochs");
    assert_eq!(a.optimizer, b.optimizer);
}

/// The baseline at gridsize 2 (groups flattened to patterns) and the PINN with the probe-big ring,
/// each trained, saved, and reconstructed by `ptycho infer`; test data scored into history.json; a
/// baseline on a file without ground truth refused by name.
#[test]
fn baseline_and_probe_big_train_and_infer() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    simulate(&sim, "60", "1e4", &[]);
    let train_file = sim.join("dose_10000/patched_train.npz");
    let test_file = sim.join("dose_10000/patched_test.npz");
    for (name, extra) in [
        ("baseline", &["--model", "baseline", "--gridsize", "2"][..]),
        ("ring", &["--probe-big", "--gridsize", "1"][..]),
    ] {
        let out = dir.path().join(name);
        let mut args = vec![
            "train",
            "--train-data",
            train_file.to_str().unwrap(),
            "--test-data",
            test_file.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--n-groups",
            "8",
            "--nepochs",
            "1",
            "--batch-size",
            "8",
            "--n-filters-scale",
            "1",
            "--nphotons",
            "1e4",
            "--device",
            "cpu",
        ];
        args.extend_from_slice(extra);
        ptycho_ok(&args);
        let history: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
        assert!(history["test_loss"].as_f64().unwrap().is_finite(), "{name}");
        let saved = bundle::load(&out, None).unwrap();
        assert_eq!(
            saved.params["model_type"],
            if name == "baseline" {
                "baseline"
            } else {
                "pinn"
            }
        );
        let recon = dir.path().join(format!("{name}_recon"));
        let infer = |recon: &Path, extra: &[&str]| {
            let mut args = vec![
                "infer",
                "--model-dir",
                out.to_str().unwrap(),
                "--test-data",
                test_file.to_str().unwrap(),
                "--output-dir",
                recon.to_str().unwrap(),
                "--device",
                "cpu",
            ];
            args.extend_from_slice(extra);
            ptycho_ok(&args)
        };
        let said = infer(&recon, &[]);
        assert!(recon.join("reconstruction.npz").exists(), "{name}");
        assert!(said.contains("phase sync: "), "{name}: {said}");
        // The reference's plain stitch: no synchronisation, a different object.
        let plain = dir.path().join(format!("{name}_plain"));
        let said = infer(&plain, &["--no-phase-sync"]);
        assert!(!said.contains("phase sync"), "{name}: {said}");
        let object = |dir: &Path| {
            ptycho_wgpu::io::npz::NpzFile::open(&dir.join("reconstruction.npz"))
                .unwrap()
                .array("object")
                .unwrap()
                .to_c64_vec()
                .unwrap()
        };
        assert_ne!(object(&recon), object(&plain), "{name}");
    }

    // Without objectGuess (and without Y) there is nothing to cut labels from.
    let bare = dir.path().join("bare.npz");
    let script = format!(
        "import numpy as np\nd = dict(np.load('{}'))\nd.pop('objectGuess')\nnp.savez('{}', **d)",
        train_file.display(),
        bare.display()
    );
    if common::python_has("numpy") {
        common::run_python(dir.path(), &script);
        let err = ptycho_err(&[
            "train",
            "--train-data",
            bare.to_str().unwrap(),
            "--output-dir",
            dir.path().join("none").to_str().unwrap(),
            "--model",
            "baseline",
            "--n-groups",
            "8",
            "--nepochs",
            "1",
            "--n-filters-scale",
            "1",
            "--device",
            "cpu",
        ]);
        assert!(
            err.contains("bare.npz") && err.contains("objectGuess"),
            "{err}"
        );
    }
}
