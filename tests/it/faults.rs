//! Faults a user meets (issue: nothing lost, nothing silent, nothing panics), each through the
//! command line: bad input found before training starts, bundles never replaced or lost, locked
//! output folders, diverged runs stopped, folders that mean one dataset, a closed stdout.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ptycho_wgpu::persist::bundle;
use ptycho_wgpu::persist::output_dir::OutputDir;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .unwrap()
}

/// Run `ptycho`, which must succeed; its standard output and error.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

/// Run `ptycho`, which must fail with exit 1 (an error, not a panic); its standard error.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small N = 64 simulation at dose 1e4 (train and test split) in `dir/sim`.
fn simulate(dir: &Path, n: &str) -> PathBuf {
    let sim = dir.join(format!("sim{n}"));
    ok(&[
        "simulate",
        "--output",
        s(&sim),
        "--n",
        n,
        "--object-size",
        "160",
        "--n-images",
        "40",
        "--doses",
        "1e4",
        "--device",
        "cpu",
    ]);
    sim.join("dose_10000")
}

/// `ptycho train` arguments for a one-epoch run of a small network.
fn train_args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--train-data", s(data), "--output-dir", s(out)];
    if !extra.contains(&"--nepochs") {
        args.extend(["--nepochs", "1"]);
    }
    args.extend([
        "--batch-size",
        "8",
        "--n-filters-scale",
        "1",
        "--device",
        "cpu",
    ]);
    args.extend_from_slice(extra);
    args
}

fn sha(path: &Path) -> String {
    bundle::verify(path).unwrap().sha256
}

#[test]
fn bad_test_data_is_refused_before_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path(), "64");
    let train = data.join("patched_train.npz");
    let out = dir.path().join("run");
    let missing = dir.path().join("typo.npz");
    let err = fails(&train_args(&train, &out, &["--test-data", s(&missing)]));
    assert!(
        err.contains("--test-data") && err.contains("typo.npz"),
        "{err}"
    );
    assert!(!err.contains("epoch 1"), "no step may run: {err}");

    let other_n = simulate(dir.path(), "128").join("patched_test.npz");
    let err = fails(&train_args(&train, &out, &["--test-data", s(&other_n)]));
    assert!(err.contains("128x128") && !err.contains("epoch 1"), "{err}");
    assert!(!out.join("wts.h5.zip").exists());
    // The failure is in the log too.
    let log = std::fs::read_to_string(out.join("train.log")).unwrap();
    assert!(log.contains("error: --test-data"), "{log}");
}

#[test]
fn a_bundle_is_never_replaced_unless_asked_and_a_locked_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let train = simulate(dir.path(), "64").join("patched_train.npz");
    let out = dir.path().join("run");
    let said = ok(&train_args(&train, &out, &[]));
    // The dose comes from the data's _metadata when --nphotons is not given, and says so.
    assert!(said.contains("nphotons 1e4 (the dose recorded"), "{said}");
    let saved = bundle::load(&out, None).unwrap();
    assert_eq!(saved.params["nphotons"], 1e4);
    let first = sha(&out);

    let err = fails(&train_args(&train, &out, &[]));
    assert!(
        err.contains("already holds wts.h5.zip") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(sha(&out), first, "the bundle is untouched");

    // While another process holds the folder, a run fails at once.
    let held = OutputDir::lock(&out).unwrap();
    let err = fails(&train_args(&train, &out, &["--overwrite"]));
    assert!(err.contains("another ptycho run"), "{err}");
    drop(held);

    ok(&train_args(&train, &out, &["--overwrite", "--seed", "5"]));
    assert_ne!(sha(&out), first, "--overwrite replaced it");
    // The history describes the bundle: the same epochs.
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let state = &bundle::load(&out, None).unwrap().params["training_state"]["epochs"];
    assert_eq!(&history["epochs"], state);
    let log = std::fs::read_to_string(out.join("train.log")).unwrap();
    assert!(log.contains("epoch 1/1") && log.contains("saved"), "{log}");
}

#[test]
fn resuming_refuses_another_dose_and_says_when_the_learning_rate_changes() {
    let dir = tempfile::tempdir().unwrap();
    let train = simulate(dir.path(), "64").join("patched_train.npz");
    let out = dir.path().join("run");
    ok(&train_args(&train, &out, &[]));
    let err = fails(&train_args(
        &train,
        &out,
        &["--resume", s(&out), "--nepochs", "2", "--nphotons", "1e5"],
    ));
    assert!(err.contains("contradicts") && err.contains("1e4"), "{err}");
    let err = fails(&train_args(
        &train,
        &out,
        &["--resume", s(&out), "--nepochs", "2", "--gridsize", "2"],
    ));
    assert!(
        err.contains("gridsize 1 in the bundle, 2 asked for") && !err.contains("ModelConfig"),
        "{err}"
    );
    let said = ok(&train_args(
        &train,
        &out,
        &[
            "--resume",
            s(&out),
            "--nepochs",
            "2",
            "--learning-rate",
            "5e-4",
        ],
    ));
    assert!(
        said.contains("learning rate 5.00e-4 from --learning-rate"),
        "{said}"
    );
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    assert_eq!(history["learning_rate"][1], 5e-4);
}

#[test]
fn a_diverged_run_stops_at_the_epoch_and_keeps_the_good_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let train = simulate(dir.path(), "64").join("patched_train.npz");
    let out = dir.path().join("run");
    ok(&train_args(&train, &out, &[]));
    let good = sha(&out);
    let err = fails(&train_args(
        &train,
        &out,
        &[
            "--resume",
            s(&out),
            "--nepochs",
            "3",
            "--learning-rate",
            "1e6",
        ],
    ));
    assert!(
        err.contains("epoch 2: training diverged") && err.contains("non-finite"),
        "{err}"
    );
    assert!(err.contains("is as it was before this run"), "{err}");
    assert_eq!(sha(&out), good);
}

/// A bundle whose weights are rewritten by h5py to `value` (digests recomputed, so only the values
/// are wrong), as a bundle written by an older version of a diverged run would be.
fn bundle_with_weights(dir: &Path, from: &Path, value: &str) -> PathBuf {
    let target = dir.join(format!("bad_{}", value.replace(['.', '-'], "_")));
    std::fs::create_dir_all(&target).unwrap();
    let script = format!(
        r#"
import hashlib, io, json, zipfile, h5py, numpy as np
src = zipfile.ZipFile('{src}')
entries = {{n: src.read(n) for n in src.namelist()}}
def poison(data):
    f = h5py.File(io.BytesIO(data), 'r')
    out = io.BytesIO()
    g = h5py.File(out, 'w')
    def copy(name, obj):
        if isinstance(obj, h5py.Dataset):
            a = obj[()]
            if a.dtype.kind == 'f' and a.ndim == 4:
                a = np.full(a.shape, {value}, a.dtype)
            g.create_dataset(name, data=a)
    f.visititems(copy)
    for k, v in f.attrs.items():
        g.attrs[k] = v
    g.close()
    return out.getvalue()
manifest = json.loads(entries['manifest.json'])
for n in list(entries):
    if n.endswith('weights.h5'):
        entries[n] = poison(entries[n])
        manifest['sha256'][n] = hashlib.sha256(entries[n]).hexdigest()
entries['manifest.json'] = json.dumps(manifest).encode()
with zipfile.ZipFile('{dst}/wts.h5.zip', 'w') as z:
    for n, b in entries.items():
        z.writestr(n, b)
digest = hashlib.sha256(open('{dst}/wts.h5.zip', 'rb').read()).hexdigest()
open('{dst}/wts.h5.zip.sha256', 'w').write(digest + '  wts.h5.zip\n')
"#,
        src = from.join("wts.h5.zip").display(),
        dst = target.display()
    );
    common::run_python(dir, &script);
    target
}

#[test]
fn verify_and_infer_refuse_non_finite_models() {
    if !common::python_has("numpy, h5py") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path(), "64");
    let out = dir.path().join("run");
    // A ReLU amplitude passes an overflow on (a sigmoid would saturate it).
    ok(&train_args(
        &data.join("patched_train.npz"),
        &out,
        &["--amp-activation", "relu"],
    ));
    let nan = bundle_with_weights(dir.path(), &out, "np.nan");
    let err = fails(&["verify", s(&nan)]);
    assert!(err.contains("non-finite values"), "{err}");

    // Finite but absurd weights overflow inside the network: infer must not write NaN images.
    let huge = bundle_with_weights(dir.path(), &out, "1e38");
    ok(&["verify", s(&huge)]);
    let recon = dir.path().join("recon");
    let err = fails(&[
        "infer",
        "--model-dir",
        s(&huge),
        "--test-data",
        s(&data.join("patched_test.npz")),
        "--output-dir",
        s(&recon),
        "--device",
        "cpu",
    ]);
    assert!(err.contains("non-finite"), "{err}");
    assert!(!recon.join("reconstruction.npz").exists());
}

#[test]
fn a_folder_means_the_shards_of_one_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path(), "64");
    // The dose folder holds the train and the test file: not one dataset.
    let err = fails(&train_args(&data, &dir.path().join("run"), &[]));
    assert!(
        err.contains("patched_test.npz") && err.contains("patched_train.npz"),
        "{err}"
    );

    let shards = dir.path().join("shards");
    let all = format!("{}/*.npz", data.display());
    let said = ok(&["data", "shard", &all, "--out", s(&shards)]);
    assert!(said.contains("40 patterns"), "{said}");
    let train = data.join("patched_train.npz");
    let err = fails(&["data", "shard", s(&train), "--out", s(&shards)]);
    assert!(err.contains("--overwrite"), "{err}");
    ok(&[
        "data",
        "shard",
        s(&train),
        "--out",
        s(&shards),
        "--overwrite",
    ]);
    let inspected = run(&["data", "inspect", s(&shards), "--json"]);
    assert!(inspected.status.success());
    let report: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let train_patterns = ptycho_wgpu::data::dataset::Dataset::open(&train).unwrap().m;
    assert_eq!(report["patterns"], train_patterns, "only the new shards");
}

#[test]
fn patches_reaching_outside_the_object_are_refused() {
    if !common::python_has("numpy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A 40 x 40 object cannot hold one 64 x 64 patch.
    common::run_python(
        dir.path(),
        "import numpy as np\nnp.savez('small.npz', objectGuess=np.ones((40, 40), np.complex64), probeGuess=np.ones((64, 64), np.complex64))",
    );
    let err = fails(&[
        "simulate",
        "--output",
        s(&dir.path().join("sim")),
        "--n",
        "64",
        "--object-npz",
        s(&dir.path().join("small.npz")),
        "--doses",
        "1e4",
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("position 0") && err.contains("smaller than one patch"),
        "{err}"
    );

    // The baseline's labels cut from an object that does not cover the scan.
    let data = simulate(dir.path(), "64").join("patched_train.npz");
    let script = format!(
        "import numpy as np\nd = dict(np.load('{}'))\nd['objectGuess'] = d['objectGuess'][:60, :60]\nnp.savez('cut.npz', **d)",
        data.display()
    );
    common::run_python(dir.path(), &script);
    let err = fails(&train_args(
        &dir.path().join("cut.npz"),
        &dir.path().join("run"),
        &["--model", "baseline"],
    ));
    assert!(
        err.contains("cut.npz") && err.contains("reaches outside"),
        "{err}"
    );
}

#[test]
fn simulate_refuses_to_overwrite_and_impossible_doses() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "64");
    let sim = dir.path().join("sim64");
    let args = |dose| {
        [
            "simulate",
            "--output",
            s(&sim),
            "--n",
            "64",
            "--object-size",
            "160",
            "--n-images",
            "40",
            "--doses",
            dose,
            "--device",
            "cpu",
        ]
    };
    let err = fails(&args("1e4"));
    assert!(err.contains("already holds dose_10000"), "{err}");
    let said = ok(&[&args("1e4")[..], &["--overwrite"]].concat());
    assert!(said.contains("40 patterns at 1 dose;"), "{said}");
    let err = fails(&args("1e30"));
    assert!(err.contains("1e15"), "{err}");
    assert!(!sim.join("dose_18446744073709551615").exists());
}

/// `ptycho compare ... | head -1`: the reader goes away; the command still writes its files and
/// exits quietly instead of panicking.
#[test]
fn a_closed_stdout_ends_the_output_not_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let test = simulate(dir.path(), "64").join("patched_test.npz");
    let cmp = dir.path().join("cmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args([
            "compare",
            "--recon",
            s(&test),
            "--truth",
            s(&test),
            "--output-dir",
            s(&cmp),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for name in ["metrics.json", "metrics.csv", "report.md", "compare.png"] {
        assert!(cmp.join(name).exists(), "{name}");
    }
}

/// A stored NPZ written by numpy with one byte changed afterwards, and one whose diffraction is all
/// zeros: both are refused by the contract, naming the cause.
#[test]
fn changed_bytes_and_empty_diffraction_break_the_contract() {
    if !common::python_has("numpy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import numpy as np
rng = np.random.default_rng(0)
def save(name, diffraction):
    np.savez(name, diffraction=diffraction.astype(np.float32),
             xcoords=np.linspace(40, 60, 8), ycoords=np.linspace(40, 60, 8),
             probeGuess=np.ones((32, 32), np.complex64))
save('good.npz', rng.random((8, 32, 32)))
save('zeros.npz', np.zeros((8, 32, 32)))
raw = bytearray(open('good.npz', 'rb').read())
at = raw.index(b'diffraction.npy') + 600
raw[at] ^= 0x01
open('flipped.npz', 'wb').write(bytes(raw))
raw = bytearray(open('good.npz', 'rb').read())
at = raw.index(b'xcoords.npy') + 180
raw[at] ^= 0x01
open('flipped_x.npz', 'wb').write(bytes(raw))
"#;
    common::run_python(dir.path(), script);
    ok(&["data", "inspect", s(&dir.path().join("good.npz"))]);
    for name in ["flipped.npz", "flipped_x.npz"] {
        let out = run(&["data", "inspect", s(&dir.path().join(name))]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {said}");
        assert!(said.contains("CRC-32"), "{name}: {said}");
    }
    let out = run(&["data", "inspect", s(&dir.path().join("zeros.npz"))]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("amplitudes are zero"), "{said}");
}

/// An 80 x 80 complex test object (smooth texture) for `compare`.
fn object(h: usize, w: usize, seed: u64) -> Vec<ptycho_wgpu::kernels::Complex32> {
    let mut rng = ptycho_wgpu::kernels::rng::SplitMix64::new(seed);
    (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f32, (i % w) as f32);
            let amp = 0.7 + 0.2 * (c / 5.0).sin() * (r / 7.0).cos() + 0.05 * rng.next_f64() as f32;
            ptycho_wgpu::kernels::Complex32::from_polar(amp, 0.5 * (r / 9.0).sin())
        })
        .collect()
}

fn write_object(
    path: &Path,
    key: &str,
    h: usize,
    w: usize,
    values: &[ptycho_wgpu::kernels::Complex32],
) {
    let mut npz = ptycho_wgpu::io::npz_writer::NpzWriter::create(path, false).unwrap();
    npz.add_c64(key, &[h, w], values).unwrap();
    npz.finish().unwrap();
}

#[test]
fn compare_says_what_it_cropped_and_refuses_what_cannot_be_scored() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.npz");
    let full = object(80, 80, 1);
    write_object(&truth, "objectGuess", 80, 80, &full);
    // A 50 x 70 reconstruction against the 80 x 80 truth: the crop is stated, not silent.
    let small: Vec<_> = (15..65)
        .flat_map(|r| full[r * 80 + 5..r * 80 + 75].to_vec())
        .collect();
    let recon = dir.path().join("small.npz");
    write_object(&recon, "object", 50, 70, &small);
    let cmp = dir.path().join("cmp");
    let said = ok(&[
        "compare",
        "--recon",
        s(&recon),
        "--truth",
        s(&truth),
        "--output-dir",
        s(&cmp),
    ]);
    assert!(
        said.contains("reconstruction 50x70, truth 80x80")
            && said.contains("centre-cropped to the common 50x70"),
        "{said}"
    );
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cmp.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        metrics["small"]["cropping"]["common_shape"],
        serde_json::json!([50, 70])
    );
    assert_eq!(metrics["small"]["frc_window"], "none");

    // Nothing to score: an all-zero reconstruction is refused, not scored NaN.
    let zeros = dir.path().join("zeros.npz");
    write_object(&zeros, "object", 80, 80, &vec![Default::default(); 6400]);
    let err = fails(&[
        "compare",
        "--recon",
        s(&zeros),
        "--truth",
        s(&truth),
        "--output-dir",
        s(&dir.path().join("z")),
    ]);
    assert!(err.contains("zero everywhere"), "{err}");

    // An unrelated reconstruction: the registration peak is too weak to trust, so no shift is applied.
    let other = dir.path().join("other.npz");
    let mut rng = ptycho_wgpu::kernels::rng::SplitMix64::new(9);
    let noise: Vec<_> = (0..6400)
        .map(|_| ptycho_wgpu::kernels::Complex32::new(0.5 + rng.next_f64() as f32, 0.0))
        .collect();
    write_object(&other, "object", 80, 80, &noise);
    let out = run(&[
        "compare",
        "--recon",
        s(&other),
        "--truth",
        s(&truth),
        "--output-dir",
        s(&dir.path().join("o")),
        "--align",
        "register",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("registration not trusted"), "{err}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o/metrics.json")).unwrap()).unwrap();
    assert!(metrics["other"]["registration_offset"].is_null());
    assert_eq!(metrics["other"]["registration"]["trusted"], false);
}

/// `--device auto` with only a software adapter (lavapipe, as in CI) runs on the CPU backend and
/// says why, without libwayland's XDG_RUNTIME_DIR complaints; `--device gpu` still takes it.
#[test]
fn auto_prefers_the_cpu_backend_to_a_software_adapter_and_is_quiet() {
    let info = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(["info", "--json"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&info.stderr).contains("XDG_RUNTIME_DIR"),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let software = report["adapters"]
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(|a| a["device_type"] == "Cpu"));
    if !software {
        eprintln!("skipping: this machine has no adapters, or a hardware one");
        return;
    }
    let bench = |device: &str| {
        Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .args([
                "bench", "fft", "--quick", "--n", "64", "--batch", "4", "--json",
            ])
            .args(["--device", device])
            .env_remove("XDG_RUNTIME_DIR")
            .output()
            .unwrap()
    };
    let auto = bench("auto");
    let err = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success(), "{err}");
    assert!(
        err.contains("a software one") && !err.contains("XDG_RUNTIME_DIR"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(&auto.stdout).unwrap();
    assert!(
        report["device"].as_str().unwrap().contains("CPU backend"),
        "{report}"
    );
    let gpu = bench("gpu");
    assert!(gpu.status.success());
    let report: serde_json::Value = serde_json::from_slice(&gpu.stdout).unwrap();
    assert!(
        report["device"].as_str().unwrap().contains("llvmpipe"),
        "{report}"
    );
}

#[test]
fn negative_numbers_meet_the_range_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let err = fails(&[
        "simulate",
        "--output",
        s(&out),
        "--doses",
        "-5",
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("found -5") && !err.contains("unexpected argument"),
        "{err}"
    );
    let err = fails(&[
        "simulate",
        "--output",
        s(&out),
        "--n",
        "32",
        "--device",
        "cpu",
    ]);
    assert!(err.contains("N = 64, 128 or 256"), "{err}");
}

#[test]
fn an_io_error_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.npz");
    let err = fails(&[
        "compare",
        "--recon",
        s(&missing),
        "--truth",
        s(&missing),
        "--output-dir",
        s(&dir.path().join("c")),
    ]);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn non_square_patterns_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rect.npz");
    let mut npz = ptycho_wgpu::io::npz_writer::NpzWriter::create(&path, false).unwrap();
    npz.add_f32("diffraction", &[4, 8, 6], &[1.0; 4 * 8 * 6])
        .unwrap();
    npz.add_f64("xcoords", &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    npz.add_f64("ycoords", &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    npz.finish().unwrap();
    let out = run(&["data", "inspect", s(&path)]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("8x6, not square"), "{said}");
    assert!(!said.contains("xcoords length 4 !="), "{said}");
}

#[test]
fn bench_train_says_what_it_is_doing() {
    let out = run(&[
        "bench",
        "train",
        "--quick",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--n-filters-scale",
        "1",
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("measuring the FP32 FMA peak")
            && err.contains("measuring the copy bandwidth")
            && err.contains("timing convolution 1/"),
        "{err}"
    );
    // The yardsticks are reported beside each other, and both are rates.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rate = |after: &str, unit: &str| -> f64 {
        let tail = &text[text
            .find(after)
            .unwrap_or_else(|| panic!("no '{after}' in {text}"))
            + after.len()..];
        tail[..tail.find(unit).unwrap()].trim().parse().unwrap()
    };
    assert!(
        rate("FMA peak", "GFLOP/s") > 0.0 && rate("copy bandwidth", "GB/s") > 0.0,
        "{text}"
    );
}
