//! Position stitching (`reassemble_position` semantics): exact reproduction of an object from its
//! patches at integer offsets, on both backends; sub-pixel offsets against a numpy transcription of the
//! reference; the command line.

use crate::common;

use std::process::Command;

use ptycho_wgpu::infer::stitch::{canvas_size, reassemble};
use ptycho_wgpu::io::npz::NpzFile;
use ptycho_wgpu::io::npz_writer::NpzWriter;
use ptycho_wgpu::kernels::cpu::CpuBackend;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::testing::shared_gpu;
use ptycho_wgpu::kernels::{Backend, Complex32};

const N: usize = 32;
const SIDE: usize = 96;

/// A random object and the N x N patches centred on a grid of integer positions (mean 48, 48).
fn object_and_patches() -> (Vec<Complex32>, Vec<Complex32>, Vec<[f64; 2]>) {
    let object = SplitMix64::new(9).complex_vec(SIDE * SIDE);
    let mut patches = Vec::new();
    let mut offsets = Vec::new();
    for y in (33..=63).step_by(6) {
        for x in (33..=63).step_by(6) {
            for r in 0..N {
                for c in 0..N {
                    patches.push(object[(y - N / 2 + r) * SIDE + (x - N / 2 + c)]);
                }
            }
            offsets.push([x as f64, y as f64]);
        }
    }
    (object, patches, offsets)
}

fn integer_offsets_reproduce_the_object<B: Backend>(b: &B) {
    let (object, patches, offsets) = object_and_patches();
    let crop = 20;
    let stitched = reassemble(b, &patches, N, &offsets, crop).unwrap();
    // Relative offsets reach ±15: pad 16 (made even), S = 20 + 32.
    assert_eq!(stitched.size, 52);
    let s = stitched.size as i64;
    let mut covered = 0;
    for r in 0..s {
        for c in 0..s {
            let k = (r * s + c) as usize;
            if stitched.coverage[k] < 0.5 {
                assert_eq!(
                    stitched.image[k],
                    Complex32::default(),
                    "uncovered ({r}, {c})"
                );
                continue;
            }
            covered += 1;
            // Canvas (S/2, S/2) is the mean position (48, 48).
            let (oy, ox) = (r - s / 2 + 48, c - s / 2 + 48);
            let truth = object[(oy * SIDE as i64 + ox) as usize];
            assert!(
                (stitched.image[k] - truth).norm() < 1e-5,
                "({r}, {c}): {} vs {truth}",
                stitched.image[k]
            );
        }
    }
    // Crops of 20 on a 6 px grid from 33 to 63 cover 50 x 50 pixels.
    assert_eq!(covered, 50 * 50);
}

#[test]
fn cpu_integer_offsets_reproduce_the_object() {
    integer_offsets_reproduce_the_object(&CpuBackend::new());
}

#[test]
fn gpu_integer_offsets_reproduce_the_object() {
    if let Some(gpu) = shared_gpu() {
        integer_offsets_reproduce_the_object(gpu);
    }
}

#[test]
fn canvas_size_rule() {
    assert_eq!(canvas_size(&[[0.0, 0.0]], 20), (0, 20));
    assert_eq!(canvas_size(&[[2.2, -0.5], [-2.2, 0.5]], 20), (4, 28));
    assert_eq!(canvas_size(&[[4.0, 0.0]], 20), (4, 28));
    assert_eq!(canvas_size(&[[0.0, -4.01]], 20), (6, 32));
}

const NUMPY_REASSEMBLE: &str = r#"
import numpy as np
from bilinear import translate
d = np.load('in.npz'); out = np.load('out.npz')
obj, off, M = d['patches'], d['global_offsets'], 20
N = obj.shape[1]
crop = obj[:, N // 2 - M // 2:N // 2 + M // 2, N // 2 - M // 2:N // 2 + M // 2]
dd = off - off.mean(axis=0)
pad = int(np.ceil(np.abs(dd).max()));  pad += pad % 2
S = M + 2 * pad
num = sum(translate(np.pad(c, pad), *t) for c, t in zip(crop, dd))
den = sum(translate(np.pad(np.ones((M, M)), pad), *t) for t in dd)
img = num / (1e-9 + den)
print(S, out['stitched'].shape[0], np.linalg.norm(out['stitched'] - img) / np.linalg.norm(img))
"#;

#[test]
fn subpixel_offsets_match_numpy_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npz");
    let output = dir.path().join("out.npz");
    let mut rng = SplitMix64::new(10);
    let b = 12;
    let patches = rng.complex_vec(b * N * N);
    let offsets: Vec<f64> = (0..b * 2)
        .map(|i| 40.0 + 9.0 * (i / 2 % 4) as f64 + 3.3 * rng.next_f64() + (i % 2) as f64)
        .collect();
    let mut w = NpzWriter::create(&input, false).unwrap();
    w.add_c64("patches", &[b, N, N], &patches).unwrap();
    w.add_f64("global_offsets", &[b, 2], &offsets).unwrap();
    w.finish().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args([
            "stitch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let npz = NpzFile::open(&output).unwrap();
    let s = npz.array("stitched").unwrap().shape()[0];
    assert_eq!(npz.array("coverage").unwrap().shape(), [s, s]);
    if common::python_has("numpy") {
        common::write_numpy_bilinear(dir.path());
        let text = String::from_utf8(common::run_python(dir.path(), NUMPY_REASSEMBLE)).unwrap();
        let v: Vec<f64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(v[0], v[1], "canvas size");
        assert!(v[2] < 1e-6, "relative error against numpy {}", v[2]);
    }

    let mut w = NpzWriter::create(&input, false).unwrap();
    w.add_c64("patches", &[b, N, N], &patches).unwrap();
    w.add_f64("global_offsets", &[b, 3], &vec![0.0; b * 3])
        .unwrap();
    w.finish().unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args([
            "stitch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("global_offsets") && err.contains("(12, 2)"),
        "{err}"
    );
}

/// `ptycho stitch --phase-sync`: patches of one object, each turned by its own constant phase, stitch
/// back into the object (up to one common phase); the plain stitch does not.
#[test]
fn phase_sync_undoes_per_patch_phases_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npz");
    let (object, mut patches, offsets) = object_and_patches();
    for (i, patch) in patches.chunks_mut(N * N).enumerate() {
        let turn = Complex32::from_polar(1.0, (i as f32 * 2.399).rem_euclid(std::f32::consts::TAU));
        patch.iter_mut().for_each(|v| *v *= turn);
    }
    let flat: Vec<f64> = offsets.iter().flatten().copied().collect();
    let mut w = NpzWriter::create(&input, false).unwrap();
    w.add_c64("patches", &[offsets.len(), N, N], &patches)
        .unwrap();
    w.add_f64("global_offsets", &[offsets.len(), 2], &flat)
        .unwrap();
    w.finish().unwrap();
    // Relative error of the covered pixels against the object, after the best common phase.
    let error_with = |extra: &[&str]| {
        let output = dir.path().join(format!("out{}.npz", extra.len()));
        let mut args = vec![
            "stitch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--device",
            "cpu",
        ];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(said.contains("phase sync: "), !extra.is_empty(), "{said}");
        let npz = NpzFile::open(&output).unwrap();
        let image = npz.array("stitched").unwrap().to_c64_vec().unwrap();
        let coverage = npz.array("coverage").unwrap().to_f32_vec().unwrap();
        let s = (image.len() as f64).sqrt() as i64;
        let pairs: Vec<(Complex32, Complex32)> = (0..s * s)
            .filter(|&k| coverage[k as usize] > 0.5)
            .map(|k| {
                let (oy, ox) = (k / s - s / 2 + 48, k % s - s / 2 + 48);
                (image[k as usize], object[(oy * SIDE as i64 + ox) as usize])
            })
            .collect();
        let overlap: Complex32 = pairs.iter().map(|(a, t)| a * t.conj()).sum();
        let common = overlap / overlap.norm();
        let err: f32 = pairs.iter().map(|(a, t)| (a - t * common).norm_sqr()).sum();
        let norm: f32 = pairs.iter().map(|(_, t)| t.norm_sqr()).sum();
        (err / norm).sqrt()
    };
    let plain = error_with(&[]);
    let synced = error_with(&["--phase-sync"]);
    assert!(plain > 0.3, "plain stitch of scrambled phases: {plain}");
    assert!(synced < 1e-5, "synchronised: {synced}");
}
