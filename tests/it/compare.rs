//! `ptycho compare` and the metrics against scikit-image / scipy / numpy on the same inputs.

use crate::common;

use std::path::Path;
use std::process::Command;

use ptycho_wgpu::eval::image::{Complex, Real};
use ptycho_wgpu::eval::metrics::{
    frc, gaussian_filter, ms_ssim, ssim, uniform_filter, FrcWindow, MsSsimForm,
};
use ptycho_wgpu::eval::register::phase_cross_correlation;
use ptycho_wgpu::io::npz::NpzFile;
use ptycho_wgpu::kernels::rng::SplitMix64;
use rustfft::num_complex::Complex64;

fn scientific_python() -> bool {
    common::python_has("numpy, scipy, skimage")
}

/// Run `script` in `dir`; it prints a JSON object.
fn python_json(dir: &Path, script: &str) -> serde_json::Value {
    serde_json::from_slice(&common::run_python(dir, script)).unwrap()
}

fn textured(h: usize, w: usize, seed: u64) -> Real {
    let mut rng = SplitMix64::new(seed);
    Real::new(
        h,
        w,
        (0..h * w)
            .map(|i| {
                ((i % w) as f64 / 5.0).sin() * ((i / w) as f64 / 7.0).cos() + 0.3 * rng.next_f64()
            })
            .collect(),
    )
}

fn save_npy(path: &Path, img: &Real) {
    let mut w =
        ptycho_wgpu::io::npz_writer::NpzWriter::create(&path.with_extension("npz"), false).unwrap();
    w.add_f64("x", &[img.h, img.w], &img.data).unwrap();
    w.finish().unwrap();
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn metrics_match_scikit_image_and_scipy() {
    if !scientific_python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (textured(45, 60, 1), textured(45, 60, 2));
    save_npy(&dir.path().join("a"), &a);
    save_npy(&dir.path().join("b"), &b);
    let reference = python_json(
        dir.path(),
        r#"
import json, numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity as ssim
a = np.load('a.npz')['x']; b = np.load('b.npz')['x']
r = max(a.max() - a.min(), b.max() - b.min())
levels, x, y = [], a.copy(), b.copy()
for _ in range(5):
    if min(x.shape) < 7: break
    v = ssim(x, y, data_range=r)
    levels.append(1e-4 if v < 0 else v)
    x, y = x[::2, ::2], y[::2, ::2]
w = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
ms = float(np.prod([l ** w[i] for i, l in enumerate(levels)]))
# The reference's FSC (hoidn/FRC), transcribed: ring means over round(r) about (h//2, w//2), corner
# rings included, |R(F1 F2*)| / sqrt(R(|F1|^2) R(|F2|^2)); thresholds by linear interpolation, len(curve)
# when the curve never crosses.
def ring_mean(values, rr):
    return np.bincount(rr.ravel(), values.ravel()) / np.bincount(rr.ravel())
def fsc(x, y):
    F1 = np.fft.fftshift(np.fft.fft2(x)); F2 = np.fft.fftshift(np.fft.fft2(y))
    yy, xx = np.indices(F1.shape)
    rr = np.round(np.hypot(yy - F1.shape[0] // 2, xx - F1.shape[1] // 2)).astype(int)
    p = F1 * F2.conj()
    num = np.abs(ring_mean(p.real, rr) + 1j * ring_mean(p.imag, rr))
    return num / np.sqrt(np.abs(ring_mean(abs(F1) ** 2, rr) * ring_mean(abs(F2) ** 2, rr)))
def crossing(curve, t):
    below = np.where(curve < t)[0]
    if len(below) == 0: return float(len(curve))
    i = below[0]
    if i == 0: return 0.0
    return float(i - 1 + (curve[i - 1] - t) / (curve[i - 1] - curve[i]))
curve = fsc(a[:, 7:52], b[:, 7:52])
rng = np.random.default_rng(3)
noisy = a[:, 7:52] + 0.6 * rng.standard_normal((45, 45))
noisy_curve = fsc(a[:, 7:52], noisy)
np.savez('noisy.npz', x=noisy)
print(json.dumps({
  "ssim": ssim(a, b, data_range=a.max() - a.min()),
  "gauss": ndimage.gaussian_filter(a, 1.0).tolist(),
  "uniform": ndimage.uniform_filter(a, 7).tolist(),
  "ms_ssim": ms,
  "frc": curve.tolist(),
  "noisy_frc50": crossing(noisy_curve, 0.5),
  "noisy_frc1over7": crossing(noisy_curve, 1 / 7),
  "frc50": crossing(curve, 0.5),
}))
"#,
    );
    let ours = ssim(&a, &b, a.range());
    assert!(
        close(ours, reference["ssim"].as_f64().unwrap(), 1e-10),
        "SSIM {ours} vs {}",
        reference["ssim"]
    );
    let flat = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect()
    };
    for (name, got) in [
        ("gauss", gaussian_filter(&a, 1.0)),
        ("uniform", uniform_filter(&a, 7)),
    ] {
        let want = flat(&reference[name]);
        assert!(
            got.data
                .iter()
                .zip(&want)
                .all(|(g, w)| (g - w).abs() < 1e-12),
            "{name} differs from scipy"
        );
    }
    let ms = ms_ssim(&a, &b, MsSsimForm::Reference);
    assert!(
        close(ms, reference["ms_ssim"].as_f64().unwrap(), 1e-10),
        "MS-SSIM {ms} vs {}",
        reference["ms_ssim"]
    );
    let square = |img: &Real| img.center_crop(45, 45);
    let ours = frc(&square(&a), &square(&b), false, FrcWindow::None);
    let curve = ours.curve.clone();
    let want: Vec<f64> = reference["frc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(curve.len(), want.len());
    assert!(
        curve.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-10),
        "FRC differs from numpy"
    );
    assert!(close(
        ours.frc50,
        reference["frc50"].as_f64().unwrap(),
        1e-10
    ));
    // A pair whose curve crosses both thresholds inside the rings.
    let noisy = NpzFile::open(&dir.path().join("noisy.npz"))
        .unwrap()
        .array("x")
        .unwrap()
        .to_f64_vec()
        .unwrap();
    let noisy = frc(
        &square(&a),
        &Real::new(45, 45, noisy),
        false,
        FrcWindow::None,
    );
    assert!(noisy.crossed[0] && noisy.crossed[1], "{:?}", noisy.curve);
    for (got, key) in [
        (noisy.frc50, "noisy_frc50"),
        (noisy.frc1over7, "noisy_frc1over7"),
    ] {
        let want = reference[key].as_f64().unwrap();
        assert!(close(got, want, 1e-9), "{key}: {got} vs {want}");
    }
}

#[test]
fn registration_matches_scikit_image() {
    if !scientific_python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import json, numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation
rng = np.random.default_rng(3)
y, x = np.mgrid[0:64, 0:72]
ref = np.exp(-((x - 30.0) ** 2 + (y - 28.0) ** 2) / 90.0) + 0.5 * np.sin(x / 6.0) * np.cos(y / 5.0) + 0.05 * rng.random((64, 72))
moving = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(ref), (2.37, -1.61))).real
shift, _, _ = phase_cross_correlation(ref, moving, upsample_factor=50)
np.savez('pair.npz', ref=ref, moving=moving)
print(json.dumps({"shift": [float(s) for s in shift]}))
"#;
    let reference = python_json(dir.path(), script);
    let npz = ptycho_wgpu::io::npz::NpzFile::open(&dir.path().join("pair.npz")).unwrap();
    let load = |k: &str| {
        Complex::new(
            64,
            72,
            npz.array(k)
                .unwrap()
                .to_f64_vec()
                .unwrap()
                .into_iter()
                .map(|v| Complex64::new(v, 0.0))
                .collect(),
        )
    };
    let ours = phase_cross_correlation(&load("ref"), &load("moving"), 50);
    let want: Vec<f64> = reference["shift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        (ours[0] - want[0]).abs() < 1e-9 && (ours[1] - want[1]).abs() < 1e-9,
        "{ours:?} vs {want:?}"
    );
    assert!((ours[0] + 2.37).abs() < 0.05 && (ours[1] - 1.61).abs() < 0.05);
}

fn write_object(
    path: &Path,
    key: &str,
    h: usize,
    w: usize,
    noise: f64,
    seed: u64,
    positions: bool,
) {
    let mut rng = SplitMix64::new(seed);
    let data: Vec<ptycho_wgpu::kernels::Complex32> = (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f32, (i % w) as f32);
            let amp = 0.75
                + 0.25 * (c / 7.0).sin() * (r / 9.0).cos()
                + noise as f32 * (rng.next_f64() as f32 - 0.5);
            let phase =
                0.8 * (c / 13.0 + r / 17.0).sin() + noise as f32 * (rng.next_f64() as f32 - 0.5);
            ptycho_wgpu::kernels::Complex32::from_polar(amp, phase)
        })
        .collect();
    let mut writer = ptycho_wgpu::io::npz_writer::NpzWriter::create(path, false).unwrap();
    writer.add_c64(key, &[h, w], &data).unwrap();
    if positions {
        writer.add_f64("xcoords", &[2], &[30.0, 90.0]).unwrap();
        writer.add_f64("ycoords", &[2], &[25.0, 70.0]).unwrap();
    }
    writer.finish().unwrap();
}

#[test]
fn compare_writes_every_output_for_non_square_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_object(&d.join("truth.npz"), "objectGuess", 100, 130, 0.0, 1, false);
    write_object(&d.join("pinn.npz"), "object", 100, 130, 0.05, 2, true);
    write_object(
        &d.join("base.npz"),
        "reconstructed_object",
        100,
        130,
        0.2,
        3,
        false,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args([
            "compare",
            "--recon",
            "pinn.npz",
            "--recon",
            "base.npz",
            "--recon-label",
            "PtychoPINN",
            "--recon-label",
            "Baseline",
        ])
        .args([
            "--truth",
            "truth.npz",
            "--output-dir",
            "out",
            "--align",
            "register",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/metrics.json")).unwrap())
            .unwrap();
    for label in ["PtychoPINN", "Baseline"] {
        for part in ["amplitude", "phase"] {
            for key in [
                "mae",
                "mse",
                "psnr",
                "psnr_data_range",
                "ssim",
                "ms_ssim",
                "frc50",
                "frc1over7",
            ] {
                assert!(
                    metrics[label][part].get(key).is_some(),
                    "{label}.{part}.{key} missing"
                );
            }
        }
        let offset = metrics[label]["registration_offset"].as_array().unwrap();
        assert!(
            offset.iter().all(|v| v.as_f64().unwrap().abs() < 0.5),
            "no shift was applied: {offset:?}"
        );
    }
    // The scanned region of pinn.npz (x 30..90, y 25..70, ± M/2 = 10): rows 15..80, columns 20..100,
    // less 2 + 2 pixels per edge (registration trim, then --trim).
    assert_eq!(
        metrics["PtychoPINN"]["shape"],
        serde_json::json!([65 - 8, 80 - 8])
    );
    assert_eq!(
        metrics["Baseline"]["shape"],
        serde_json::json!([100 - 8, 130 - 8])
    );
    assert!(
        metrics["PtychoPINN"]["amplitude"]["ms_ssim"]
            .as_f64()
            .unwrap()
            > metrics["Baseline"]["amplitude"]["ms_ssim"]
                .as_f64()
                .unwrap()
    );
    let csv = std::fs::read_to_string(d.join("out/metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 2 * 8);
    assert!(csv.starts_with("label,part,metric,value\nPtychoPINN,amplitude,mae,"));
    let report = std::fs::read_to_string(d.join("out/report.md")).unwrap();
    assert!(
        report.contains("MS-SSIM Δ (PtychoPINN - Baseline)  : amplitude +"),
        "{report}"
    );
    assert!(
        report.contains("MAE Δ (PtychoPINN - Baseline)      : amplitude -"),
        "{report}"
    );
    let png = std::fs::read(d.join("out/compare.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn compare_rejects_bad_inputs_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_object(&d.join("truth.npz"), "objectGuess", 40, 40, 0.0, 1, false);
    let mut w = ptycho_wgpu::io::npz_writer::NpzWriter::create(&d.join("real.npz"), false).unwrap();
    w.add_f32("object", &[40, 40], &[1.0; 1600]).unwrap();
    w.finish().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .arg("compare")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--recon",
        "real.npz",
        "--truth",
        "truth.npz",
        "--output-dir",
        "o",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("real.npz: key 'object': expected a complex 2-D image, found dtype"),
        "{err}"
    );
    let out = run(&[
        "--recon",
        "truth.npz",
        "--truth",
        "real.npz",
        "--output-dir",
        "o",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("none of the keys [\"objectGuess\", \"object\"]")
            || !out.status.success()
    );
    let out = run(&[
        "--recon",
        "truth.npz",
        "--recon-label",
        "a",
        "--recon-label",
        "b",
        "--truth",
        "truth.npz",
        "--output-dir",
        "o",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("one label per reconstruction"));
    assert!(!d.join("o").exists(), "no outputs after a failure");
}
