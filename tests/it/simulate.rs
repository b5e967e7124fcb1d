//! `ptycho simulate` (study phase C): reproducible bytes, the physics against an independent numpy
//! computation, Poisson statistics, the split, the manifest's digests, and bad input.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ptycho_wgpu::data::contract::ScanFile;
use ptycho_wgpu::io::npz_writer::NpzWriter;
use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::{Backend, Complex32};
use ptycho_wgpu::study::simulate::{run, ObjectSource, Positions, ProbeSource, SimulationConfig};

fn config(output: &Path, seed: u64, noise: bool) -> SimulationConfig {
    SimulationConfig {
        n: 64,
        object: ObjectSource::Synthetic { size: 192 },
        probe: ProbeSource::Default { curvature: 0.5 },
        positions: Positions::Random { count: 60 },
        doses: vec![1e3, 1e5],
        seed,
        noise,
        split: true,
        legacy_key: false,
        output: output.to_path_buf(),
        overwrite: false,
    }
}

fn simulate<B: Backend>(b: &B, config: &SimulationConfig) {
    run(b, config, |_| {}).unwrap();
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const FILES: [&str; 5] = [
    "run_manifest.json",
    "dose_1000/patched_train.npz",
    "dose_1000/patched_test.npz",
    "dose_100000/patched_train.npz",
    "dose_100000/patched_test.npz",
];

#[test]
fn the_same_seed_gives_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = CpuBackend::new();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    simulate(&cpu, &config(&a, 7, true));
    simulate(&cpu, &config(&b, 7, true));
    simulate(&cpu, &config(&c, 8, true));
    for f in FILES {
        assert!(
            read(a.join(f)) == read(b.join(f)),
            "{f} differs between two runs"
        );
        if f.ends_with(".npz") {
            assert!(read(a.join(f)) != read(c.join(f)), "{f} ignores the seed");
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(a.join("run_manifest.json"))).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for f in files {
        let path = a.join(f["path"].as_str().unwrap());
        let (sha, size) = ptycho_wgpu::persist::digest::sha256_file(&path).unwrap();
        assert_eq!(f["sha256"], sha.as_str());
        assert_eq!(f["size_bytes"], size);
    }
    assert_eq!(
        manifest["dose_1000"]["train"],
        "dose_1000/patched_train.npz"
    );
    for f in &FILES[1..] {
        let scan = ScanFile::open(&a.join(f)).unwrap();
        assert_eq!(scan.n, 64);
    }
}

/// numpy: counts (s·d)² are integers whose per-pattern sum averages the dose; train is y < midpoint; the
/// noise-free amplitude equals fftshift(|FFT2(P·O_patch)|)/N with the patch cut bilinearly around
/// (x, y); the digests match hashlib's.
const NUMPY_CHECK: &str = r#"
import numpy as np, json, hashlib
def patch(o, x, y, n):
    r = np.arange(n)[:, None] + y - n // 2; c = np.arange(n)[None, :] + x - n // 2
    r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int); wy, wx = r - r0, c - c0
    def at(rr, cc):
        ok = (rr >= 0) & (rr < o.shape[0]) & (cc >= 0) & (cc < o.shape[1])
        return np.where(ok, o[np.clip(rr, 0, o.shape[0] - 1), np.clip(cc, 0, o.shape[1] - 1)], 0)
    return ((1 - wx) * (1 - wy) * at(r0, c0) + wx * (1 - wy) * at(r0, c0 + 1)
            + (1 - wx) * wy * at(r0 + 1, c0) + wx * wy * at(r0 + 1, c0 + 1))
out = []
manifest = json.load(open('noisy/run_manifest.json'))
for f in manifest['files']:
    assert hashlib.sha256(open('noisy/' + f['path'], 'rb').read()).hexdigest() == f['sha256']
for dose in [1000, 100000]:
    tr = np.load(f'noisy/dose_{dose}/patched_train.npz'); te = np.load(f'noisy/dose_{dose}/patched_test.npz')
    s = json.loads(str(tr['_metadata']))['physics_parameters']['s_sim']
    counts = np.concatenate([(s * tr['diffraction'].astype(float)) ** 2, (s * te['diffraction'].astype(float)) ** 2])
    y = np.concatenate([tr['ycoords'], te['ycoords']]); mid = y.min() + 0.5 * (y.max() - y.min())
    assert (tr['ycoords'] < mid).all() and (te['ycoords'] >= mid).all()
    assert tr['diffraction'].dtype == np.float32 and tr['objectGuess'].dtype == np.complex64
    out += [np.abs(counts - np.round(counts)).max() / max(counts.max(), 1), counts.sum(axis=(1, 2)).mean() / dose]
d = np.load('clean/dose_1000/patched_train.npz')
o, p, n = d['objectGuess'], d['probeGuess'], 64
err = 0
for i in range(len(d['xcoords'])):
    a = np.fft.fftshift(np.abs(np.fft.fft2(p * patch(o, d['xcoords'][i], d['ycoords'][i], n)))) / n
    err = max(err, np.linalg.norm(d['diffraction'][i] - a) / np.linalg.norm(a))
out.append(err)
print(' '.join(repr(float(v)) for v in out))
"#;

#[test]
fn physics_and_statistics_match_numpy() {
    if !common::python_has("numpy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cpu = CpuBackend::new();
    simulate(&cpu, &config(&dir.path().join("noisy"), 3, true));
    simulate(&cpu, &config(&dir.path().join("clean"), 3, false));
    let values: Vec<f64> = String::from_utf8(common::run_python(dir.path(), NUMPY_CHECK))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    // Per dose: the largest deviation of a count from an integer (relative to the largest count,
    // float32 storage) and the mean counts per pattern over the dose. 60 patterns: the mean of their
    // totals has a relative standard error of about 1/sqrt(60·dose) from the noise, and the totals of
    // a pattern vary with the object, which s_sim averages out exactly.
    for (k, dose) in [1e3f64, 1e5].iter().enumerate() {
        assert!(
            values[2 * k] < 1e-5,
            "dose {dose}: counts not integral {}",
            values[2 * k]
        );
        let tolerance = 5.0 / (60.0 * dose).sqrt();
        assert!(
            (values[2 * k + 1] - 1.0).abs() < tolerance,
            "dose {dose}: mean counts / dose = {}",
            values[2 * k + 1]
        );
    }
    assert!(
        values[4] < 1e-5,
        "noise-free amplitude vs numpy: {}",
        values[4]
    );
}

#[test]
fn gpu_and_cpu_simulate_the_same_expected_amplitudes() {
    let Some(gpu) = shared_gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    simulate(gpu, &config(&dir.path().join("gpu"), 5, false));
    simulate(
        &CpuBackend::new(),
        &config(&dir.path().join("cpu"), 5, false),
    );
    let load = |side: &str| {
        let scan =
            ScanFile::open(&dir.path().join(side).join("dose_1000/patched_train.npz")).unwrap();
        let mut all = vec![0f32; scan.m * 64 * 64];
        for (i, chunk) in all.chunks_mut(64 * 64).enumerate() {
            scan.read_pattern(i, chunk).unwrap();
        }
        all
    };
    let (g, c) = (load("gpu"), load("cpu"));
    let num: f64 = g
        .iter()
        .zip(&c)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = c.iter().map(|b| (*b as f64).powi(2)).sum();
    assert!((num / den).sqrt() < 1e-6, "{}", (num / den).sqrt());
}

fn write_positions(path: &Path, x: &[f64], y: &[f64]) {
    let mut w = NpzWriter::create(path, false).unwrap();
    w.add_f64("xcoords", &[x.len()], x).unwrap();
    w.add_f64("ycoords", &[y.len()], y).unwrap();
    w.finish().unwrap();
}

#[test]
fn positions_from_a_file_keep_their_order_and_raster_fills_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = CpuBackend::new();
    let positions = dir.path().join("pos.npz");
    let x = [81.0, 40.5, 140.0, 66.6];
    let y = [44.0, 151.0, 120.2, 60.0];
    write_positions(&positions, &x, &y);
    let mut c = config(&dir.path().join("file"), 1, false);
    c.positions = Positions::File(positions.clone());
    c.split = false;
    c.doses = vec![1e4];
    c.legacy_key = true;
    run(&cpu, &c, |_| {}).unwrap();
    let out = dir.path().join("file/dose_10000/patched.npz");
    let scan = ScanFile::open(&out).unwrap();
    assert_eq!(scan.xcoords, x.to_vec());
    assert_eq!(scan.ycoords, y.to_vec());
    let npz = ptycho_wgpu::io::npz::NpzFile::open(&out).unwrap();
    assert!(npz.has("diff3d") && npz.has("diffraction"));

    let mut c = config(&dir.path().join("raster"), 1, false);
    c.positions = Positions::Raster { step: 32.0 };
    c.doses = vec![1e4];
    c.split = false;
    run(&cpu, &c, |_| {}).unwrap();
    // From the buffer N/2 = 32 to 192 − 32 = 160 in steps of 32: 5 x 5.
    let scan = ScanFile::open(&dir.path().join("raster/dose_10000/patched.npz")).unwrap();
    assert_eq!(scan.m, 25);
    assert_eq!(scan.xcoords[..5], [32.0, 64.0, 96.0, 128.0, 160.0]);
    assert_eq!(scan.ycoords[5], 64.0);
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = CpuBackend::new();
    let positions = dir.path().join("pos.npz");
    write_positions(&positions, &[40.0, 500.0], &[40.0, 50.0]);
    let mut c = config(&dir.path().join("out"), 1, true);
    c.positions = Positions::File(positions);
    let err = run(&cpu, &c, |_| {}).err().unwrap().to_string();
    assert!(
        err.contains("position 1") && err.contains("outside"),
        "{err}"
    );

    let mut c = config(&dir.path().join("out"), 1, true);
    c.doses = vec![1e3, -5.0];
    assert!(run(&cpu, &c, |_| {})
        .err()
        .unwrap()
        .to_string()
        .contains("-5"));

    let probe = dir.path().join("probe.npz");
    let mut w = NpzWriter::create(&probe, false).unwrap();
    w.add_c64(
        "probeGuess",
        &[16, 16],
        &vec![Complex32::new(1.0, 0.0); 256],
    )
    .unwrap();
    w.finish().unwrap();
    let mut c = config(&dir.path().join("out"), 1, true);
    c.probe = ProbeSource::File(probe);
    let err = run(&cpu, &c, |_| {}).err().unwrap().to_string();
    assert!(err.contains("[16, 16]") && err.contains("N = 64"), "{err}");

    let mut c = config(&dir.path().join("out"), 1, true);
    c.positions = Positions::Random { count: 1 };
    let err = run(&cpu, &c, |_| {}).err().unwrap().to_string();
    assert!(err.contains("--no-split"), "{err}");
    assert!(!dir.path().join("out").exists());
}

fn ptycho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .expect("run ptycho")
}

#[test]
fn command_line_writes_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let result = ptycho(&[
        "simulate",
        "--output",
        out.to_str().unwrap(),
        "--n",
        "64",
        "--n-images",
        "40",
        "--doses",
        "1e3,1e4",
        "--device",
        "cpu",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for f in [
        "run_manifest.json",
        "dose_1000/patched_train.npz",
        "dose_10000/patched_test.npz",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    assert!(String::from_utf8_lossy(&result.stdout).contains("patterns/s"));
    let bad = ptycho(&[
        "simulate",
        "--output",
        out.to_str().unwrap(),
        "--n",
        "32",
        "--device",
        "cpu",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("N = 32") && err.contains("64, 128 or 256"),
        "{err}"
    );
}
