//! PtychoPINN's TensorFlow bundles: `ptycho import-bundle` on reference-layout bundles
//! (tests/fixtures/ptychopinn, written by bench/peers/make_reference_bundle.py with Keras 3's own
//! `model.save` and dill), `ptycho predict` against the Keras model's own outputs on both backends,
//! `ptycho infer` on an imported bundle, and the refusals a user meets.

use std::path::{Path, PathBuf};

use ptycho_wgpu::infer::predict::{predict, InputForm};
use ptycho_wgpu::io::npz::NpzFile;
use ptycho_wgpu::io::npz_writer::NpzWriter;
use ptycho_wgpu::io::pickle::{self, PickleValue};
use ptycho_wgpu::kernels::{backend_tests, Backend, Complex32};
use ptycho_wgpu::persist::{bundle, reference};

use crate::common::{ptycho_err, ptycho_ok, rewrite_zip};

fn fixture(case: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ptychopinn")
        .join(case)
        .join(name)
}

fn complex(npz: &NpzFile, key: &str) -> (Vec<usize>, Vec<Complex32>) {
    let a = npz.array(key).unwrap();
    (a.shape().to_vec(), a.to_c64_vec().unwrap())
}

/// max |a − b| / max |b|.
fn relative_error(a: &[Complex32], b: &[Complex32]) -> f32 {
    let scale = b.iter().map(|v| v.norm()).fold(0f32, f32::max);
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm())
        .fold(0f32, f32::max);
    worst / scale
}

/// The imported bundle of `case` run by `predict` on the Keras model's inputs (the reference's scaled
/// form, then ours) gives the Keras model's outputs to float32 precision.
fn imported_bundles_give_the_reference_outputs<B: Backend>(b: &B) {
    for case in ["gs1", "gs2_probe_big"] {
        let dir = tempfile::tempdir().unwrap();
        let imported = reference::import(&fixture(case, "wts.h5.zip"), None).unwrap();
        bundle::save(dir.path(), &imported.bundle).unwrap();
        let io = fixture(case, "reference_io.npz");
        let reference = NpzFile::open(&io).unwrap();
        let (shape, want_trimmed) = complex(&reference, "trimmed_obj");
        let (nhwc, want_obj) = complex(&reference, "obj");
        let [samples, n, _, c] = nhwc[..] else {
            panic!("obj shape {nhwc:?}")
        };
        assert_eq!(shape, [samples, n, n]);
        let want_obj: Vec<Complex32> = (0..want_obj.len())
            .map(|i| {
                let (s, k, p) = (i / (c * n * n), i / (n * n) % c, i % (n * n));
                want_obj[(s * n * n + p) * c + k]
            })
            .collect();

        // Our form of the same inputs: X = input / s as (B, C, N, N), offsets (B, C, 2).
        let scale = imported.bundle.params["intensity_scale"].as_f64().unwrap() as f32;
        let input = reference.array("input").unwrap().to_f32_vec().unwrap();
        let positions = reference
            .array("input_positions")
            .unwrap()
            .to_f32_vec()
            .unwrap();
        let x: Vec<f32> = (0..input.len())
            .map(|i| {
                let (s, k, p) = (i / (c * n * n), i / (n * n) % c, i % (n * n));
                input[(s * n * n + p) * c + k] / scale
            })
            .collect();
        let offsets: Vec<f32> = (0..samples * c * 2)
            .map(|i| {
                let (s, k, axis) = (i / (2 * c), i / 2 % c, i % 2);
                positions[s * 2 * c + axis * c + k]
            })
            .collect();
        let ours = dir.path().join("ours.npz");
        let mut w = NpzWriter::create(&ours, false).unwrap();
        w.add_f32("diffraction", &[samples, c, n, n], &x).unwrap();
        w.add_f32("offsets", &[samples, c, 2], &offsets).unwrap();
        w.finish().unwrap();

        for (input, form) in [
            (io.clone(), InputForm::ReferenceScaled),
            (ours, InputForm::Ours),
        ] {
            let out = dir.path().join("predicted.npz");
            let report = predict(b, dir.path(), &input, &out, true).unwrap();
            assert_eq!((report.input_form, report.samples), (form, samples));
            let got = NpzFile::open(&out).unwrap();
            let (_, trimmed) = complex(&got, "trimmed_obj");
            let (obj_shape, obj) = complex(&got, "obj");
            assert_eq!(obj_shape, [samples, c, n, n]);
            let (e_obj, e_trimmed) = (
                relative_error(&obj, &want_obj),
                relative_error(&trimmed, &want_trimmed),
            );
            // The merge with the ring ×1000 makes trimmed_obj's largest values ~100x the patches'.
            assert!(e_obj < 2e-6, "{case} {form:?}: obj {e_obj:e}");
            assert!(
                e_trimmed < 1e-5,
                "{case} {form:?}: trimmed_obj {e_trimmed:e}"
            );
        }
    }
}

backend_tests!(imported_bundles_give_the_reference_outputs);

#[test]
fn the_graph_maps_every_convolution_and_params_dill_gives_the_model() {
    let imported = reference::import(&fixture("gs2_probe_big", "wts.h5.zip"), None).unwrap();
    let m = &imported.model;
    assert_eq!(
        (m.n, m.gridsize, m.n_filters_scale, m.probe_big),
        (64, 2, 1, true)
    );
    assert_eq!(imported.layers.len(), 22);
    // Keras orders a functional model's layers by depth, so the heads interleave in the weights file.
    let group = |ours: &str| {
        let l = imported.layers.iter().find(|l| l.ours == ours).unwrap();
        (l.keras_layer.as_str(), l.weights_group.as_str())
    };
    assert_eq!(group("encoder/conv_1a"), ("conv2d", "layers/conv2d"));
    assert_eq!(group("encoder/conv_3b"), ("conv2d_5", "layers/conv2d_5"));
    assert_eq!(group("amplitude/up_1a"), ("conv2d_8", "layers/conv2d_6"));
    assert_eq!(group("phase/up_1a"), ("conv2d_16", "layers/conv2d_7"));
    assert_eq!(group("phase/ring_head"), ("conv2d_15", "layers/conv2d_21"));
    let p = &imported.bundle.params;
    assert_eq!(p["intensity_scale"], 3.125);
    assert_eq!(p["nphotons"], 1e4);
    assert_eq!(p["probe_scale"], 4.0);
    assert_eq!(imported.probe_source, "diffraction_to_obj/params.dill");
    // The probe is the pickled TensorFlow tensor: normalised so mean |disk · P| = 1/4.
    let mean_abs: f32 = imported.bundle.probe.iter().map(|v| v.norm()).sum::<f32>() / 4096.0;
    assert!(mean_abs > 0.1 && mean_abs < 1.0, "{mean_abs}");
}

/// A copy in `dir` of the fixture bundle of `case` with its entry `name` (of diffraction_to_obj)
/// changed by `change`.
fn rewritten(dir: &Path, case: &str, name: &str, change: &dyn Fn(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let path = dir.join(format!("{case}_changed.zip"));
    let wanted = format!("diffraction_to_obj/{name}");
    let bytes = rewrite_zip(
        std::fs::read(fixture(case, "wts.h5.zip")).unwrap(),
        |n, b| Some(if n == wanted { change(b) } else { b }),
    );
    std::fs::write(&path, bytes).unwrap();
    path
}

type ConfigEdit = fn(&mut serde_json::Value);

/// model.keras with its config.json changed by `edit`.
fn keras_with_config(keras: Vec<u8>, edit: ConfigEdit) -> Vec<u8> {
    rewrite_zip(keras, |name, bytes| {
        Some(if name == "config.json" {
            let mut config: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            edit(&mut config);
            serde_json::to_vec(&config).unwrap()
        } else {
            bytes
        })
    })
}

#[test]
fn import_bundle_writes_a_verified_bundle_that_infer_uses_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported");
    let (reference, out_s) = (fixture("gs1", "wts.h5.zip"), out.to_str().unwrap());
    let args = [
        "import-bundle",
        reference.to_str().unwrap(),
        "--output-dir",
        out_s,
    ];
    let stdout = ptycho_ok(&args);
    assert!(stdout.contains("16 convolutions mapped"), "{stdout}");
    assert!(
        stdout.contains("probe from diffraction_to_obj/params.dill"),
        "{stdout}"
    );
    ptycho_ok(&["verify", out_s]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("import.json")).unwrap()).unwrap();
    assert_eq!(report["layers"].as_array().unwrap().len(), 16);
    assert_eq!(
        report["source"]["format"],
        "PtychoPINN TensorFlow ModelManager bundle"
    );
    assert_eq!(report["source"]["sha256"].as_str().unwrap().len(), 64);
    let refused = ptycho_err(&args);
    assert!(refused.contains("already holds wts.h5.zip"), "{refused}");

    // `ptycho infer` on it, as on our own bundles.
    let sim = dir.path().join("sim");
    let sim_s = sim.to_str().unwrap();
    ptycho_ok(&[
        "simulate",
        "--output",
        sim_s,
        "--n",
        "64",
        "--object-size",
        "128",
        "--n-images",
        "12",
        "--doses",
        "1e4",
        "--no-split",
        "--device",
        "cpu",
    ]);
    let recon = dir.path().join("recon");
    let data = sim.join("dose_10000/patched.npz");
    let stdout = ptycho_ok(&[
        "infer",
        "--model-dir",
        out_s,
        "--test-data",
        data.to_str().unwrap(),
        "--output-dir",
        recon.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(stdout.contains("12 groups"), "{stdout}");
    assert!(recon.join("reconstruction.npz").exists());
}

#[test]
fn a_probe_params_dill_lacks_comes_from_probe_npz() {
    let dir = tempfile::tempdir().unwrap();
    let bare_params = pickle::dict(&[("model_type", PickleValue::Str("pinn".into()))]);
    let changed = rewritten(dir.path(), "gs1", "params.dill", &|_| bare_params.clone());
    let out = dir.path().join("out");
    let mut args = vec![
        "import-bundle".to_string(),
        changed.display().to_string(),
        "--output-dir".into(),
        out.display().to_string(),
    ];
    let refused = ptycho_err(&argv(&args));
    assert!(
        refused.contains("the probe cannot be recovered") && refused.contains("--probe-npz"),
        "{refused}"
    );
    assert!(!out.join("wts.h5.zip").exists());

    let probe: Vec<Complex32> = (0..64 * 64)
        .map(|i| Complex32::new(1.0, (i % 7) as f32 * 0.1))
        .collect();
    let probe_npz = dir.path().join("probe.npz");
    let mut w = NpzWriter::create(&probe_npz, false).unwrap();
    w.add_c64("probeGuess", &[64, 64], &probe).unwrap();
    w.finish().unwrap();
    args.extend(["--probe-npz".into(), probe_npz.display().to_string()]);
    let stdout = ptycho_ok(&argv(&args));
    assert!(stdout.contains("probe.npz"), "{stdout}");
    assert_eq!(bundle::load(&out, None).unwrap().probe, probe);
}

#[test]
fn networks_that_are_not_the_reference_cnn_are_refused_by_layer() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, ConfigEdit, &str); 2] = [
        (
            "valid padding",
            |c| c["config"]["layers"][2]["config"]["padding"] = "valid".into(),
            "Conv2D 'conv2d' (our 'encoder/conv_1a'): padding is \"valid\", ours is \"same\"",
        ),
        (
            "a wider encoder",
            |c| c["config"]["layers"][3]["build_config"]["input_shape"][3] = 48.into(),
            "no Conv2D fits our layer 'encoder/conv_1b' (kernel [3, 3, 32, 32], after conv2d)",
        ),
    ];
    for (what, edit, expected) in cases {
        let changed = rewritten(dir.path(), "gs1", "model.keras", &|bytes| {
            keras_with_config(bytes, edit)
        });
        let e = reference::import(&changed, None).unwrap_err().to_string();
        assert!(e.contains(expected), "{what}: {e}");
    }
    let ours = dir.path().join("ours");
    bundle::save(
        &ours,
        &reference::import(&fixture("gs1", "wts.h5.zip"), None)
            .unwrap()
            .bundle,
    )
    .unwrap();
    let e = reference::import(&ours.join("wts.h5.zip"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already a ptycho bundle"), "{e}");
    let e = reference::import(&fixture("gs1", "reference_io.npz"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no 'diffraction_to_obj/model.keras'"), "{e}");
}

fn argv(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
