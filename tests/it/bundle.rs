//! The wts.h5.zip bundle: round trip, digests (`sha256sum -c`, per entry), tampering, truncation,
//! foreign bundles, an interrupted save, and Python reading what we write (h5py, pickle).

use crate::common::{self, rewrite};

use std::io::Write;
use std::path::Path;
use std::process::Command;

use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::persist::bundle::{self, Bundle, BUNDLE_FILE};
use ptycho_wgpu::persist::weights::NamedTensor;
use serde_json::json;

fn sample_bundle(seed: u64) -> Bundle {
    let mut rng = SplitMix64::new(seed);
    let n = 8;
    let weights = vec![
        NamedTensor::new("encoder/conv_1a/kernel", &[3, 3, 1, 4], rng.real_vec(36)),
        NamedTensor::new("encoder/conv_1a/bias", &[4], rng.real_vec(4)),
        NamedTensor::new("amplitude/head/kernel", &[3, 3, 4, 1], rng.real_vec(36)),
        NamedTensor::new("log_scale", &[], vec![0.5]),
    ];
    let optimizer = vec![
        NamedTensor::new("m/encoder/conv_1a/kernel", &[3, 3, 1, 4], rng.real_vec(36)),
        NamedTensor::new("step", &[1], vec![12.0]),
    ];
    let params = json!({
        "N": n, "gridsize": 1, "model_type": "pinn", "nphotons": 1e9, "intensity_scale": 988.2,
        "n_filters_scale": 2, "probe_big": false, "offset": 4, "max_position_jitter": 10,
        "train_data_sha256": ["ab".repeat(32)],
    });
    Bundle {
        params: params.as_object().unwrap().clone(),
        weights,
        probe: rng.complex_vec(n * n),
        optimizer: Some(optimizer),
    }
}

#[test]
fn round_trip_is_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let original = sample_bundle(1);
    let saved = bundle::save(dir.path(), &original).unwrap();
    assert_eq!(saved.path, dir.path().join(BUNDLE_FILE));
    assert_eq!(saved.sha256.len(), 64);
    assert!(saved
        .sha256
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(
        saved.size_bytes,
        std::fs::metadata(&saved.path).unwrap().len()
    );
    let loaded = bundle::load(dir.path(), None).unwrap();
    let mut sorted = original.weights.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for (a, b) in loaded.weights.iter().zip(&sorted) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.shape, b.shape);
        assert_eq!(
            a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    assert_eq!(loaded.weights.len(), sorted.len());
    assert_eq!(loaded.probe, original.probe);
    for (key, value) in &original.params {
        assert_eq!(&loaded.params[key], value, "{key}");
    }
    assert_eq!(loaded.params["format_version"], 1);
    let mut opt = original.optimizer.clone().unwrap();
    opt.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(loaded.optimizer.unwrap(), opt);

    let expected: Vec<(String, Vec<usize>)> = sorted
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    bundle::load(dir.path(), Some(&expected)).unwrap();
    let mut wrong = expected.clone();
    wrong[0].1 = vec![7];
    wrong.push(("decoder/extra".into(), vec![2]));
    let err = bundle::load(dir.path(), Some(&wrong))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&wrong[0].0) && err.contains("[7]") && err.contains("decoder/extra"),
        "{err}"
    );
}

#[test]
fn sha256sum_accepts_the_digest_file() {
    let dir = tempfile::tempdir().unwrap();
    bundle::save(dir.path(), &sample_bundle(2)).unwrap();
    let out = Command::new("sha256sum")
        .args(["-c", &format!("{BUNDLE_FILE}.sha256")])
        .current_dir(dir.path())
        .output()
        .expect("sha256sum (coreutils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

/// Rewrite the bundle's zip with `change` applied to each entry (None drops it).
fn entry_names(path: &Path) -> Vec<String> {
    let archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| archive.name_for_index(i).unwrap().unwrap().to_string())
        .collect()
}

#[test]
fn flipping_a_byte_of_any_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let saved = bundle::save(dir.path(), &sample_bundle(3)).unwrap();
    let pristine = std::fs::read(&saved.path).unwrap();
    let names = entry_names(&saved.path);
    assert!(names.len() >= 9, "{names:?}");
    for target in names.iter().filter(|n| *n != "manifest.json") {
        std::fs::write(&saved.path, &pristine).unwrap();
        rewrite(&saved.path, |name, mut bytes| {
            if name == target {
                let k = bytes.len() / 2;
                bytes[k] ^= 0x01;
            }
            Some(bytes)
        });
        let err = bundle::verify(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains(&format!("entry '{target}'")),
            "{target}: {err}"
        );
        assert!(
            err.contains(".sha256"),
            "the whole-file digest fails too: {err}"
        );
    }
    // An entry removed, and one added.
    std::fs::write(&saved.path, &pristine).unwrap();
    rewrite(&saved.path, |name, bytes| {
        (name != "autoencoder/probe.npy").then_some(bytes)
    });
    let err = bundle::verify(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("entry 'autoencoder/probe.npy': missing"),
        "{err}"
    );
    std::fs::write(&saved.path, &pristine).unwrap();
    let mut archive = zip::ZipWriter::new_append(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&saved.path)
            .unwrap(),
    )
    .unwrap();
    archive
        .start_file("extra.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    archive.write_all(b"hello").unwrap();
    archive.finish().unwrap();
    let err = bundle::verify(dir.path()).err().unwrap().to_string();
    assert!(err.contains("entry 'extra.txt': unexpected"), "{err}");
    // The CLI: exit status and the one-line OK.
    std::fs::write(&saved.path, &pristine).unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(["verify", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: "));
    rewrite(&saved.path, |name, mut bytes| {
        if name == "diffraction_to_obj/params.json" {
            bytes[5] ^= 0x20;
        }
        Some(bytes)
    });
    let bad = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(["verify", saved.path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("entry 'diffraction_to_obj/params.json'"));
}

#[test]
fn truncated_missing_manifest_foreign_and_unknown_version() {
    let dir = tempfile::tempdir().unwrap();
    let saved = bundle::save(dir.path(), &sample_bundle(4)).unwrap();
    let pristine = std::fs::read(&saved.path).unwrap();

    std::fs::write(&saved.path, &pristine[..pristine.len() / 2]).unwrap();
    let err = bundle::load(dir.path(), None).err().unwrap().to_string();
    assert!(err.contains("wts.h5.zip") && err.contains("zip"), "{err}");

    std::fs::write(&saved.path, &pristine).unwrap();
    rewrite(&saved.path, |name, bytes| {
        (name != "manifest.json").then_some(bytes)
    });
    let err = bundle::load(dir.path(), None).err().unwrap().to_string();
    assert!(err.contains("missing manifest.json"), "{err}");

    for (entry, kind, hint) in [
        (
            "autoencoder/model.keras",
            "TensorFlow",
            "ptycho import-bundle",
        ),
        (
            "autoencoder/model.pth",
            "PyTorch",
            "only PtychoPINN's TensorFlow bundles",
        ),
    ] {
        let foreign = dir.path().join(format!("foreign_{kind}.zip"));
        let mut z = zip::ZipWriter::new(std::fs::File::create(&foreign).unwrap());
        for name in ["manifest.dill", entry, "autoencoder/params.dill"] {
            z.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"\x80\x02}.").unwrap();
        }
        z.finish().unwrap();
        let err = bundle::load(&foreign, None).err().unwrap().to_string();
        assert!(err.contains(kind) && err.contains(hint), "{err}");
    }

    std::fs::write(&saved.path, &pristine).unwrap();
    rewrite(&saved.path, |name, bytes| {
        if name == "manifest.json" {
            let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            m["format_version"] = json!(99);
            Some(serde_json::to_vec(&m).unwrap())
        } else {
            Some(bytes)
        }
    });
    let err = bundle::load(dir.path(), None).err().unwrap().to_string();
    assert!(err.contains("unknown bundle format version 99"), "{err}");
}

#[test]
fn a_failed_save_leaves_the_previous_bundle_intact() {
    let dir = tempfile::tempdir().unwrap();
    let first = bundle::save(dir.path(), &sample_bundle(5)).unwrap();
    let before = std::fs::read(&first.path).unwrap();
    // The optimizer state is written last: its bad tensor fails the save after the models' entries
    // are already in the temporary file.
    let mut broken = sample_bundle(6);
    broken.optimizer.as_mut().unwrap()[0].data.pop();
    let err = bundle::save(dir.path(), &broken).err().unwrap().to_string();
    assert!(err.contains("m/encoder/conv_1a/kernel"), "{err}");
    assert_eq!(std::fs::read(&first.path).unwrap(), before);
    bundle::verify(dir.path()).unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn python_reads_weights_probe_and_manifest() {
    if !common::python_has("numpy, h5py") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = sample_bundle(7);
    bundle::save(dir.path(), &original).unwrap();
    let script = r#"
import zipfile, io, json, pickle, h5py, numpy as np
z = zipfile.ZipFile('wts.h5.zip')
m = pickle.loads(z.read('manifest.dill'))
assert m['backend'] == 'wgpu' and m['models'] == ['autoencoder', 'diffraction_to_obj'], m
f = h5py.File(io.BytesIO(z.read('diffraction_to_obj/weights.h5')), 'r')
k = f['encoder/conv_1a/kernel']
assert k.dtype == np.float32 and k.shape == (3, 3, 1, 4) and list(k.attrs['shape']) == [3, 3, 1, 4]
assert f['log_scale'][()] == np.float32(0.5)
p = np.load(io.BytesIO(z.read('diffraction_to_obj/probe.npy')))
assert p.dtype == np.complex64 and p.shape == (8, 8)
params = json.loads(z.read('autoencoder/params.json'))
print(' '.join(repr(float(v)) for v in k[()].ravel()), '|', repr(float(p[2, 3].real)), repr(float(p[2, 3].imag)), params['N'])
"#;
    let out = String::from_utf8(common::run_python(dir.path(), script)).unwrap();
    let (kernel, rest) = out.split_once('|').unwrap();
    let kernel: Vec<f32> = kernel
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(kernel, original.weights[0].data);
    let rest: Vec<&str> = rest.split_whitespace().collect();
    let p = original.probe[2 * 8 + 3];
    assert_eq!(rest[0].parse::<f32>().unwrap(), p.re);
    assert_eq!(rest[1].parse::<f32>().unwrap(), p.im);
    assert_eq!(rest[2], "8");
}
