//! `ptycho data inspect|shard|convert` and `ptycho bench io` end to end.

use std::path::Path;
use std::process::{Command, Output};

use ptycho_wgpu::data::contract::ScanFile;
use ptycho_wgpu::data::dataset::Dataset;
use ptycho_wgpu::io::npy::{Kind, NpyDtype};
use ptycho_wgpu::io::npz_writer::NpzWriter;
use ptycho_wgpu::kernels::Complex32;

fn ptycho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .expect("run ptycho")
}

/// Raw counts (uint16) in the legacy (N, N, M) layout under `diff3d`: everything a converter must fix.
fn write_legacy_counts(path: &Path, m: usize, n: usize) -> Vec<u16> {
    let counts: Vec<u16> = (0..n * n * m).map(|i| (i % 17) as u16).collect();
    let mut w = NpzWriter::create(path, true).unwrap();
    w.add_streamed(
        "diff3d",
        &NpyDtype::little(Kind::UInt, 2),
        &[n, n, m],
        |out| {
            out.write_all(
                &counts
                    .iter()
                    .flat_map(|c| c.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
            .unwrap();
            Ok(())
        },
    )
    .unwrap();
    let x: Vec<f64> = (0..m).map(|i| i as f64).collect();
    w.add_f64("xcoords", &[m], &x).unwrap();
    w.add_f64("ycoords", &[m], &x).unwrap();
    w.add_c64(
        "probeGuess",
        &[n, n],
        &vec![Complex32::new(1.0, 0.0); n * n],
    )
    .unwrap();
    w.finish().unwrap();
    counts
}

#[test]
fn convert_counts_and_legacy_layout_then_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (m, n) = (20, 32);
    let raw = dir.path().join("raw.npz");
    let counts = write_legacy_counts(&raw, m, n);

    let out = ptycho(&["data", "inspect", raw.to_str().unwrap()]);
    assert!(!out.status.success(), "raw counts break the contract");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("contract: INVALID") && text.contains("--from-counts"),
        "{text}"
    );

    let canonical = dir.path().join("canonical.npz");
    let out = ptycho(&[
        "data",
        "convert",
        raw.to_str().unwrap(),
        "--out",
        canonical.to_str().unwrap(),
        "--from-counts",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("FORMAT-001"));
    let scan = ScanFile::open(&canonical).unwrap();
    assert_eq!(scan.diffraction_key, "diffraction");
    assert_eq!(scan.diffraction.shape(), &[m, n, n]);
    let mut pattern = vec![0f32; n * n];
    scan.read_pattern(7, &mut pattern).unwrap();
    for (p, v) in pattern.iter().enumerate() {
        assert_eq!(*v, (counts[p * m + 7] as f32).sqrt());
    }
    let provenance = &scan.metadata.as_ref().unwrap()["provenance"];
    assert_eq!(provenance[0]["command"], "data convert");
    assert_eq!(provenance[0]["from_counts"], true);

    let out = ptycho(&["data", "inspect", canonical.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["contract"], "ok");
    assert_eq!(report["patterns"], m);

    let shards = dir.path().join("shards");
    let out = ptycho(&[
        "data",
        "shard",
        canonical.to_str().unwrap(),
        "--out",
        shards.to_str().unwrap(),
        "--max-shard-size",
        "20KiB",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dataset = Dataset::open(&shards).unwrap();
    assert_eq!(
        (dataset.shards.len(), dataset.m),
        (4, m),
        "5 patterns of 4 KiB per 20 KiB shard"
    );
    let out = ptycho(&["data", "inspect", shards.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["patterns"], m);
    assert_eq!(report["shards"].as_array().unwrap().len(), 4);
    assert_eq!(report["shards"][3]["patterns"], 5);
    let mut again = vec![0f32; n * n];
    dataset.read_pattern(7, &mut again).unwrap();
    assert_eq!(again, pattern);
    assert_eq!(
        dataset.shards[1].metadata.as_ref().unwrap()["provenance"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn failed_convert_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.npz");
    write_legacy_counts(&raw, 6, 32);
    let out_path = dir.path().join("out.npz");
    let out = ptycho(&[
        "data",
        "convert",
        raw.to_str().unwrap(),
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("look like raw counts"));
    assert!(!out_path.exists());
}

#[test]
fn bench_io_on_a_small_synthetic_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shards");
    let out = ptycho(&[
        "bench",
        "io",
        "--data",
        data.to_str().unwrap(),
        "--make",
        "8MiB",
        "--host-memory",
        "8MiB",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["patterns"], 512);
    assert_eq!(report["batches"], 8);
    assert!(report["stream_over_plain"].as_f64().unwrap() > 0.0);
}
