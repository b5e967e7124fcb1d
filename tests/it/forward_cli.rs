//! `ptycho forward` end to end: its outputs against an independent numpy transcription of the reference
//! semantics (physics-and-model.md §4–5 and §7), and clear errors for bad input.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use ptycho_wgpu::io::npz_writer::NpzWriter;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::Complex32;
use ptycho_wgpu::physics::probe::{default_probe, normalize};

const N: usize = 32;

fn ptycho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .expect("run ptycho")
}

/// Two groups of four patterns with sub-pixel offsets, object patches zero outside the centre square,
/// and counts.
fn write_input(path: &Path, omit: Option<&str>) {
    write_input_with(path, omit, None);
}

fn write_input_with(path: &Path, omit: Option<&str>, canvas_size: Option<i64>) {
    let (b, c) = (2, 4);
    let mut rng = SplitMix64::new(3);
    let patches: Vec<Complex32> = (0..b * c * N * N)
        .map(|i| {
            let (r, col) = ((i / N) % N, i % N);
            if (N / 4..3 * N / 4).contains(&r) && (N / 4..3 * N / 4).contains(&col) {
                Complex32::from_polar(0.6 + 0.4 * rng.next_f64() as f32, rng.next_symmetric_f32())
            } else {
                Complex32::default()
            }
        })
        .collect();
    let offsets: [f32; 16] = [
        2.3, 1.7, -2.1, 1.2, 1.6, -2.4, -1.8, -0.5, -3.2, 0.4, 2.9, -1.1, 0.6, 2.6, -0.3, -1.9,
    ];
    let probe = normalize(&default_probe(N, 0.5), N, 4.0).unwrap();
    let counts: Vec<f32> = (0..b * c * N * N)
        .map(|_| (4.0 * rng.next_f64() as f32).floor())
        .collect();
    let mut w = NpzWriter::create(path, false).unwrap();
    if omit != Some("patches") {
        w.add_c64("patches", &[b, c, N, N], &patches).unwrap();
    }
    if omit != Some("offsets") {
        w.add_f32("offsets", &[b, c, 2], &offsets).unwrap();
    }
    w.add_c64("probe", &[N, N], &probe).unwrap();
    w.add_f32("intensity_scale", &[], &[3.0]).unwrap();
    w.add_f32("counts", &[b, c, N, N], &counts).unwrap();
    if let Some(p) = canvas_size {
        w.add_i64("canvas_size", &[], &[p]).unwrap();
    }
    w.finish().unwrap();
}

/// The reference's forward in numpy: bilinear translation with per-corner zero fill, per-sample merge
/// with the centre-mask count + 0.001, centre crop, re-extraction, probe, fftshift(|FFT2|)/N, s.
const NUMPY_FORWARD: &str = r#"
import numpy as np
from bilinear import translate
d = np.load('in.npz'); o = np.load('out.npz')
patches, off, probe = d['patches'], d['offsets'], d['probe']
s = float(d['intensity_scale']); counts = d['counts']
B, C, N, _ = patches.shape; P = N + 4 + 10
pad = lambda a: np.pad(a, (P - N) // 2)
crop = lambda a, n: a[(a.shape[0] - n) // 2:(a.shape[0] - n) // 2 + n, (a.shape[1] - n) // 2:(a.shape[1] - n) // 2 + n]
mc = np.zeros((N, N)); mc[N // 4:3 * N // 4, N // 4:3 * N // 4] = 1
canvas = np.zeros((B, P, P), complex); amp = np.zeros((B, C, N, N))
for b in range(B):
    num = sum(translate(pad(patches[b, c]), -off[b, c, 0], -off[b, c, 1]) for c in range(C))
    den = sum(translate(pad(mc), -off[b, c, 0], -off[b, c, 1]) for c in range(C)) + 0.001
    canvas[b] = num / den
    for c in range(C):
        psi = probe * crop(translate(canvas[b], off[b, c, 0], off[b, c, 1]), N)
        amp[b, c] = s * np.fft.fftshift(np.abs(np.fft.fft2(psi))) / N
rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
inten = amp ** 2
nll = np.mean(inten - counts * np.log(inten)); mae = np.mean(np.abs(np.sqrt(counts) - amp))
print(rel(o['canvas'], canvas), rel(o['trimmed_obj'], np.stack([crop(x, N) for x in canvas])),
      rel(o['pred_amplitude'], amp), rel(o['pred_intensity'], inten),
      abs(float(o['poisson_nll']) / nll - 1), abs(float(o['mae']) / mae - 1))
"#;

#[test]
fn forward_matches_a_numpy_transcription_of_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    write_input(&dir.path().join("in.npz"), None);
    for device in ["cpu", "auto"] {
        let out = ptycho(&[
            "forward",
            "--input",
            dir.path().join("in.npz").to_str().unwrap(),
            "--output",
            dir.path().join("out.npz").to_str().unwrap(),
            "--device",
            device,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("2 groups of 4 patterns") && stdout.contains("poisson_nll"));
        if !common::python_has("numpy") {
            return;
        }
        common::write_numpy_bilinear(dir.path());
        let errors: Vec<f64> = String::from_utf8(common::run_python(dir.path(), NUMPY_FORWARD))
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(errors.len(), 6);
        for (name, e) in [
            "canvas",
            "trimmed_obj",
            "pred_amplitude",
            "pred_intensity",
            "nll",
            "mae",
        ]
        .iter()
        .zip(&errors)
        {
            assert!(*e < 1e-5, "{device}: {name} relative error {e:.2e}");
        }
    }
}

#[test]
fn missing_keys_and_bad_shapes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npz");
    let output = dir.path().join("out.npz");
    for (omit, expected) in [
        (Some("patches"), "'patches'"),
        (Some("offsets"), "'offsets'"),
    ] {
        write_input(&input, omit);
        let out = ptycho(&[
            "forward",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--device",
            "cpu",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains(expected) && err.contains("keys present") && err.contains("in.npz"),
            "{err}"
        );
        assert!(!output.exists(), "no output on failure");
    }
    let mut w = NpzWriter::create(&input, false).unwrap();
    w.add_c64(
        "patches",
        &[1, 4, N, N],
        &vec![Complex32::default(); 4 * N * N],
    )
    .unwrap();
    w.add_f32("offsets", &[1, 3, 2], &[0.0; 6]).unwrap();
    w.finish().unwrap();
    let out = ptycho(&[
        "forward",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("one patch per channel") && err.contains("[1, 4, 32, 32]"),
        "{err}"
    );
}

/// A canvas far beyond the machine's memory is refused before anything is allocated (it used to
/// abort the process on a 32 TB allocation).
#[test]
fn a_canvas_too_large_for_memory_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npz");
    write_input_with(&input, None, Some(2_000_032));
    let out = ptycho(&[
        "forward",
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("out.npz").to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("canvas_size 2000032"), "{err}");
}
