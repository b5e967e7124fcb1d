//! Ptychodus files: our readers on files ptychodus 1.7 wrote (tests/fixtures/ptychodus), ptychodus's
//! own readers on files we write, and a dataset's round trip through them.

use std::path::{Path, PathBuf};

use ptycho_wgpu::interop::convert::{export_data, import_ptychodus, Geometry};
use ptycho_wgpu::interop::ptychodus::{object_pixel_m, read_diffraction, read_product};
use ptycho_wgpu::io::npz::NpzFile;
use serde_json::Value;

use crate::common::{ptycho_err, ptycho_ok, python_has, run_python};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ptychodus")
        .join(name)
}

/// Ptychodus's batch layout in `dir/batch`: the fixtures' diffraction.h5 and product.h5.
fn batch_layout(dir: &Path) -> PathBuf {
    let batch = dir.join("batch");
    std::fs::create_dir(&batch).unwrap();
    for (from, to) in [
        ("diffraction.h5", "diffraction.h5"),
        ("example_product.h5", "product.h5"),
    ] {
        std::fs::copy(fixture(from), batch.join(to)).unwrap();
    }
    batch
}

#[test]
fn our_readers_load_the_files_ptychodus_wrote() {
    let p = read_product(&fixture("example_product.h5")).unwrap();
    assert_eq!(p.name, "ptycho_dose1e4_test");
    assert!(p
        .comments
        .starts_with("ptycho simulate dose 1e4 test split"));
    assert_eq!(
        (p.photon_energy_ev, p.detector_object_distance_m),
        (10_000.0, 2.0)
    );
    assert!(p.far_field);
    assert_eq!(p.position_indexes, (0..607).collect::<Vec<i64>>());
    assert_eq!(p.position_x_m[5], 4.177791706766464e-06);
    assert_eq!(p.position_photon_counts.as_ref().unwrap().len(), 607);
    assert_eq!(p.object.shape, [1, 256, 256]);
    let o = p.object.data[100 * 256 + 100];
    assert_eq!((o.re, o.im), (1.0000293, 3.1637155e-05));
    assert_eq!(p.probe.shape, [1, 1, 64, 64]);
    assert_eq!(p.probe.data[32 * 64 + 32].re, 0.1111931);
    assert_eq!(p.loss_values.len(), 100);
    assert_eq!(p.loss_values[3], 0.04517548158764839);
    assert_eq!(p.loss_epochs[99], 99);
    // The fixture's pixel is the geometry's λ·z/(N·d).
    let pixel = object_pixel_m(10_000.0, 2.0, 64, 75e-6);
    assert!(
        (p.object_pixel_m[0] / pixel - 1.0).abs() < 1e-9,
        "{:?} {pixel}",
        p.object_pixel_m
    );
    assert_eq!(p.count_scale, None);

    // LZF-compressed counts.
    let d = read_diffraction(&fixture("diffraction.h5")).unwrap();
    assert_eq!(d.shape, [607, 64, 64]);
    assert_eq!(d.patterns.iter().map(|&k| k as u64).sum::<u64>(), 5_949_299);
    assert_eq!(d.patterns[10 * 4096 + 32 * 64 + 32], 1045);
    assert_eq!(d.indexes[606], 606);
    assert!(d.bad_pixels.iter().all(|&b| !b));
    assert_eq!(d.detector_pixel_m, [75e-6, 75e-6]);
}

#[test]
fn a_truncated_product_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("product.h5");
    let bytes = std::fs::read(fixture("example_product.h5")).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let e = read_product(&bad).unwrap_err().to_string();
    assert!(e.starts_with(&bad.display().to_string()), "{e}");
}

/// A small simulated dataset: `ptycho simulate` into `dir/sim`.
fn simulate(dir: &Path) -> PathBuf {
    let sim = dir.join("sim");
    ptycho_ok(&[
        "simulate",
        "--output",
        sim.to_str().unwrap(),
        "--n",
        "64",
        "--n-images",
        "40",
        "--object-size",
        "128",
        "--doses",
        "1e4",
        "--no-split",
        "--device",
        "cpu",
    ]);
    dir.join("sim/dose_10000/patched.npz")
}

fn f64s(npz: &NpzFile, key: &str) -> Vec<f64> {
    npz.array(key).unwrap().to_f64_vec().unwrap()
}

#[test]
fn a_dataset_round_trips_through_ptychodus_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());
    let out = dir.path().join("pd");
    let exported = export_data(&data, &out, Geometry::default(), None).unwrap();
    assert_eq!(exported.positions, 40);
    let back = dir.path().join("back.npz");
    let imported = import_ptychodus(&out, &back).unwrap();
    assert_eq!(imported.count_scale, exported.count_scale);

    let (a, b) = (NpzFile::open(&data).unwrap(), NpzFile::open(&back).unwrap());
    // Counts and the count scale give the amplitudes back bit for bit.
    assert_eq!(
        a.array("diffraction").unwrap().to_f32_vec().unwrap(),
        b.array("diffraction").unwrap().to_f32_vec().unwrap()
    );
    assert_eq!(
        a.array("objectGuess").unwrap().to_c64_vec().unwrap(),
        b.array("objectGuess").unwrap().to_c64_vec().unwrap()
    );
    for key in ["xcoords", "ycoords"] {
        for (x, y) in f64s(&a, key).iter().zip(f64s(&b, key)) {
            assert!((x - y).abs() < 1e-9, "{key}: {x} vs {y}");
        }
    }
    // The probe goes out as (s/N)·P in complex64 and comes back as N/s times that: equal to float32
    // rounding.
    for (p, q) in a
        .array("probeGuess")
        .unwrap()
        .to_c64_vec()
        .unwrap()
        .iter()
        .zip(b.array("probeGuess").unwrap().to_c64_vec().unwrap())
    {
        assert!(
            (p - q).norm() <= 2.0 * f32::EPSILON * p.norm().max(1e-30),
            "{p} vs {q}"
        );
    }
}

#[test]
fn ptychodus_reads_every_field_we_write() {
    if !python_has("ptychodus, h5py, numpy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());
    let out = dir.path().join("pd");
    export_data(&data, &out, Geometry::default(), None).unwrap();
    let ours = read_product(&out.join("product.h5")).unwrap();
    let diffraction = read_diffraction(&out.join("diffraction.h5")).unwrap();
    // Ptychodus's own readers, as its GUI and batch mode load them.
    let script = r#"
import json
from pathlib import Path
import numpy as np
from ptychodus.api.io import load_product, load_diffraction_data
# repr strings: Rust parses them correctly rounded, so floats compare exactly.
def exact(values):
    return [repr(float(v)) for v in values]
p = load_product(Path('pd/product.h5'))
d = load_diffraction_data(Path('pd/diffraction.h5'))
m = p.metadata
probe = p.probes.get_array()
obj = p.object_.get_array()
g = p.object_.get_geometry()
print(json.dumps({
    'name': m.name, 'comments': m.comments, 'detector_distance_m': m.detector_distance_m,
    'photon_energy_eV': m.photon_energy_eV, 'probe_photon_count': m.probe_photon_count,
    'exposure_time_s': m.exposure_time_s, 'far_field': m.far_field,
    'indexes': p.probe_positions.get_indexes().tolist(),
    'x_m': exact(p.probe_positions.get_coordinates_x_m()),
    'y_m': exact(p.probe_positions.get_coordinates_y_m()),
    'photon_counts': exact(p.probe_positions.get_probe_photon_counts()),
    'probe_shape': list(probe.shape), 'probe_dtype': str(probe.dtype),
    'probe_sum': [float(probe.real.sum()), float(probe.imag.sum())],
    'object_shape': list(obj.shape), 'object_dtype': str(obj.dtype),
    'object_sum': [float(obj.real.astype(np.float64).sum()), float(obj.imag.astype(np.float64).sum())],
    'object_pixel': exact([g.pixel_width_m, g.pixel_height_m]),
    'object_center': exact([g.center_x_m, g.center_y_m]),
    'patterns_shape': list(d.get_patterns().shape),
    'patterns_sum': int(d.get_patterns().astype(np.int64).sum()),
    'pattern_indexes': d.get_indexes().tolist(),
    'bad_pixels': int(d.get_bad_pixels().sum()), 'bad_pixels_dtype': str(d.get_bad_pixels().dtype),
    'detector_pixel': exact([d.get_pixel_geometry().width_m, d.get_pixel_geometry().height_m]),
}))
"#;
    let theirs: Value = serde_json::from_slice(&run_python(dir.path(), script)).unwrap();
    assert_eq!(theirs["name"], ours.name.as_str());
    assert_eq!(theirs["comments"], ours.comments.as_str());
    assert_eq!(
        theirs["detector_distance_m"],
        ours.detector_object_distance_m
    );
    assert_eq!(theirs["photon_energy_eV"], ours.photon_energy_ev);
    assert!(
        (theirs["probe_photon_count"].as_f64().unwrap() / ours.probe_photon_count - 1.0).abs()
            < 1e-15
    );
    assert_eq!(theirs["exposure_time_s"], 1.0);
    assert_eq!(theirs["far_field"], true);
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| match x {
                Value::String(s) => s.parse().unwrap(),
                other => other.as_f64().unwrap(),
            })
            .collect()
    };
    assert_eq!(floats(&theirs["x_m"]), ours.position_x_m);
    assert_eq!(floats(&theirs["y_m"]), ours.position_y_m);
    assert_eq!(
        floats(&theirs["photon_counts"]),
        ours.position_photon_counts.clone().unwrap()
    );
    assert_eq!(theirs["indexes"].as_array().unwrap().len(), 40);
    assert_eq!(theirs["probe_shape"], serde_json::json!([1, 1, 64, 64]));
    assert_eq!(theirs["probe_dtype"], "complex64");
    let probe_sum: f64 = ours.probe.data.iter().map(|c| c.re as f64).sum();
    assert!((floats(&theirs["probe_sum"])[0] / probe_sum - 1.0).abs() < 1e-5);
    assert_eq!(theirs["object_shape"], serde_json::json!([1, 128, 128]));
    assert_eq!(theirs["object_dtype"], "complex64");
    let object_sum: f64 = ours.object.data.iter().map(|c| c.re as f64).sum();
    assert!((floats(&theirs["object_sum"])[0] - object_sum).abs() < 1e-6 * object_sum.abs());
    assert_eq!(
        floats(&theirs["object_pixel"]),
        ours.object_pixel_m.to_vec()
    );
    assert_eq!(floats(&theirs["object_center"]), vec![0.0, 0.0]);
    assert_eq!(theirs["patterns_shape"], serde_json::json!([40, 64, 64]));
    assert_eq!(
        theirs["patterns_sum"].as_u64().unwrap(),
        diffraction.patterns.iter().map(|&k| k as u64).sum::<u64>()
    );
    assert_eq!(theirs["bad_pixels"], 0);
    assert_eq!(theirs["bad_pixels_dtype"], "bool");
    assert_eq!(floats(&theirs["detector_pixel"]), vec![75e-6, 75e-6]);
}

#[test]
fn the_commands_import_export_and_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let imported = dir.path().join("imported.npz");
    let fixtures = fixture("");
    let batch = batch_layout(dir.path());
    let import = [
        "data",
        "import",
        "--from",
        "ptychodus",
        batch.to_str().unwrap(),
        "--output",
        imported.to_str().unwrap(),
    ];
    ptycho_ok(&import);
    assert!(ptycho_err(&import).contains("exists; pass --overwrite"));
    let inspect = ptycho_ok(&["data", "inspect", imported.to_str().unwrap()]);
    assert!(inspect.contains("contract: OK"), "{inspect}");
    // Positions: ptychodus's metres about the centre become pixels (x_px = x_m/pixel + W/2).
    let npz = NpzFile::open(&imported).unwrap();
    let p = read_product(&fixtures.join("example_product.h5")).unwrap();
    let x = f64s(&npz, "xcoords");
    assert!((x[5] - (p.position_x_m[5] / p.object_pixel_m[0] + 128.0)).abs() < 1e-9);

    // Exporting the imported data needs its count scale: recorded by the import (1).
    let product = dir.path().join("product.h5");
    ptycho_ok(&[
        "export",
        "--format",
        "ptychodus",
        "--input",
        imported.to_str().unwrap(),
        "--data",
        imported.to_str().unwrap(),
        "--output",
        product.to_str().unwrap(),
    ]);
    let written = read_product(&product).unwrap();
    assert_eq!(written.object.data, p.object.data);
    assert_eq!(written.position_x_m.len(), 607);
}

#[test]
fn reconstruct_runs_in_ptychodus_batch_layout_and_writes_its_product() {
    let dir = tempfile::tempdir().unwrap();
    let batch = batch_layout(dir.path());
    let out = dir.path().join("out");
    ptycho_ok(&[
        "reconstruct",
        "--ptychodus",
        batch.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--epochs",
        "3",
        "--device",
        "cpu",
    ]);
    let input = read_product(&batch.join("product.h5")).unwrap();
    let written = read_product(&out.join("product.h5")).unwrap();
    assert_eq!(
        written.loss_values.len(),
        3,
        "the cost per epoch is the product's loss curve"
    );
    assert_eq!(written.object.shape, input.object.shape);
    assert_eq!(written.position_indexes, input.position_indexes);
    // The positions come back to 1e-9 px (no position correction was asked for).
    let pixel = input.object_pixel_m[0];
    assert_eq!(written.object_pixel_m, input.object_pixel_m);
    for (a, b) in written.position_x_m.iter().zip(&input.position_x_m) {
        assert!((a - b).abs() <= 1e-9 * pixel, "{a} vs {b}");
    }
    assert_eq!(
        (written.photon_energy_ev, written.detector_object_distance_m),
        (input.photon_energy_ev, input.detector_object_distance_m)
    );
    // The object moved away from the initial guess.
    assert_ne!(written.object.data, input.object.data);
}

#[test]
fn reconstruct_and_infer_export_products_ptychodus_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());
    let ptycho = |args: &[&str]| {
        ptycho_ok(&[args, &["--device", "cpu"]].concat());
    };
    let (recon, model, stitched) = (
        dir.path().join("recon"),
        dir.path().join("model"),
        dir.path().join("stitched"),
    );
    let data_s = data.to_str().unwrap();
    ptycho(&[
        "reconstruct",
        "--input",
        data_s,
        "--output-dir",
        recon.to_str().unwrap(),
        "--epochs",
        "2",
        "--export",
        "ptychodus",
    ]);
    ptycho(&[
        "train",
        "--train-data",
        data_s,
        "--output-dir",
        model.to_str().unwrap(),
        "--nepochs",
        "1",
        "--n-filters-scale",
        "1",
    ]);
    ptycho(&[
        "infer",
        "--model-dir",
        model.to_str().unwrap(),
        "--test-data",
        data_s,
        "--output-dir",
        stitched.to_str().unwrap(),
        "--export",
        "ptychodus",
    ]);
    // The iterative product is in the object frame: its positions are the data's.
    let npz = NpzFile::open(&data).unwrap();
    let iterative = read_product(&recon.join("product.h5")).unwrap();
    let pixel = iterative.object_pixel_m[0];
    let x = f64s(&npz, "xcoords");
    for (x_m, x) in iterative.position_x_m.iter().zip(&x) {
        assert!((x_m / pixel + 64.0 - x).abs() < 1e-9, "{x_m} {x}");
    }
    assert_eq!(iterative.loss_values.len(), 2);
    // The stitched product's positions are about the canvas centre, the mean of the positions.
    let pinn = read_product(&stitched.join("product.h5")).unwrap();
    let mean = pinn.position_x_m.iter().sum::<f64>() / pinn.position_x_m.len() as f64;
    assert!(
        mean.abs() < 1e-9 * pixel * pinn.position_x_m.len() as f64,
        "{mean}"
    );
    if python_has("ptychodus, h5py, numpy") {
        let script = r#"
from pathlib import Path
from ptychodus.api.io import load_product
for f in ['recon/product.h5', 'stitched/product.h5']:
    p = load_product(Path(f))
    print(f, p.object_.get_array().shape, len(p.probe_positions))
"#;
        let text = String::from_utf8(run_python(dir.path(), script)).unwrap();
        assert!(text.contains("recon/product.h5 (1, 128, 128) 40"), "{text}");
        assert!(text.contains("stitched/product.h5 (1, "), "{text}");
    }
}
