//! The data layer end to end: files written by numpy, our writer read back by numpy, the contract's
//! errors, streaming, and mutated archives (never a panic).

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ptycho_wgpu::data::contract::{Layout, ScanFile};
use ptycho_wgpu::data::dataset::Dataset;
use ptycho_wgpu::data::grouping::{group, GroupingConfig};
use ptycho_wgpu::data::stream::{BatchStream, StreamConfig};
use ptycho_wgpu::io::npz::NpzFile;
use ptycho_wgpu::io::npz_writer::NpzWriter;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::Complex32;
use ptycho_wgpu::physics::image::ComplexImage;

fn numpy() -> Option<()> {
    common::python_has("numpy").then_some(())
}

fn python(script: &str, dir: &Path) {
    common::run_python(dir, script);
}

/// A small valid scan file written by our writer: M patterns of N x N.
fn write_scan(path: &Path, m: usize, n: usize, key: &str, compress: bool) -> Vec<f32> {
    let mut rng = SplitMix64::new(1);
    let diffraction: Vec<f32> = (0..m * n * n).map(|_| rng.next_f64() as f32).collect();
    let x: Vec<f64> = (0..m).map(|i| 10.0 + (i % 5) as f64 * 3.0).collect();
    let y: Vec<f64> = (0..m).map(|i| 10.0 + (i / 5) as f64 * 3.0).collect();
    let probe: Vec<Complex32> = (0..n * n)
        .map(|i| Complex32::new(1.0, i as f32 * 0.01))
        .collect();
    let mut w = NpzWriter::create(path, compress).unwrap();
    w.add_f32(key, &[m, n, n], &diffraction).unwrap();
    w.add_f64("xcoords", &[m], &x).unwrap();
    w.add_f64("ycoords", &[m], &y).unwrap();
    w.add_c64("probeGuess", &[n, n], &probe).unwrap();
    w.add_c64(
        "objectGuess",
        &[40, 50],
        &vec![Complex32::new(1.0, 0.0); 2000],
    )
    .unwrap();
    w.add_text("_metadata", r#"{"source": "test"}"#).unwrap();
    w.finish().unwrap();
    diffraction
}

#[test]
fn numpy_files_with_either_key_load_and_validate() {
    let Some(()) = numpy() else { return };
    let dir = tempfile::tempdir().unwrap();
    python(
        r#"
import json, numpy as np
rng = np.random.default_rng(0)
M, N = 12, 8
d = rng.random((M, N, N)).astype(np.float32)
common = dict(xcoords=np.arange(M, dtype=np.float64), ycoords=np.arange(M, dtype=np.float64) * 2,
              probeGuess=(np.ones((N, N)) + 1j).astype(np.complex64),
              objectGuess=np.ones((30, 40), np.complex64))
meta = np.array(json.dumps({"dose": 1000.0, "seed": 42}), dtype=object)
np.savez('plain.npz', diffraction=d, **common)
np.savez_compressed('compressed.npz', diff3d=d, _metadata=meta, **common)
np.savez('both.npz', diffraction=d, diff3d=d, **common)
np.savez('legacy.npz', diff3d=np.ascontiguousarray(d.transpose(1, 2, 0)), **common)
np.savez('fortran.npz', diffraction=np.asfortranarray(d), **common)
np.savez('bigendian.npz', diffraction=d.astype('>f4'), **common)
np.savez('float64.npz', diffraction=d.astype(np.float64), **common)
np.savez('unicode_meta.npz', diffraction=d, _metadata=np.array(json.dumps({"dose": 10.0})), **common)
np.save('expected.npy', d)
"#,
        dir.path(),
    );
    let expected = NpzFile::open(&dir.path().join("plain.npz"))
        .unwrap()
        .array("diffraction")
        .unwrap()
        .to_f32_vec()
        .unwrap();
    for name in [
        "plain",
        "compressed",
        "both",
        "legacy",
        "fortran",
        "bigendian",
        "float64",
        "unicode_meta",
    ] {
        let path = dir.path().join(format!("{name}.npz"));
        let scan = ScanFile::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((scan.m, scan.n), (12, 8), "{name}");
        let mut all = vec![0f32; 12 * 64];
        for i in 0..12 {
            scan.read_pattern(i, &mut all[i * 64..(i + 1) * 64])
                .unwrap();
        }
        assert_eq!(all, expected, "{name}: patterns differ");
        assert_eq!(scan.layout == Layout::LegacyNnm, name == "legacy");
        assert_eq!(scan.object.as_ref().map(|o| o.shape()), Some([30, 40]));
        assert!(
            (scan.stats.max - expected.iter().cloned().fold(0.0, f32::max) as f64).abs() < 1e-7
        );
    }
    let meta = ScanFile::open(&dir.path().join("compressed.npz"))
        .unwrap()
        .metadata
        .unwrap();
    assert_eq!(meta["dose"], 1000.0);
    let cache = dir.path().join(".ptycho-cache");
    assert!(
        cache.is_dir(),
        "deflated members are cached beside the data"
    );
    let cached = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("compressed.npz.diff3d."))
            .collect();
        names.sort();
        names
    };
    let before = cached();
    assert_eq!(before.len(), 1, "{before:?}");
    // The file changes (here: only its time): the copy of its old version goes, not just gets company.
    let file = std::fs::File::options()
        .write(true)
        .open(dir.path().join("compressed.npz"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(file);
    ScanFile::open(&dir.path().join("compressed.npz")).unwrap();
    let after = cached();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before);
    let meta = ScanFile::open(&dir.path().join("unicode_meta.npz"))
        .unwrap()
        .metadata
        .unwrap();
    assert_eq!(meta["dose"], 10.0);
}

#[test]
fn our_files_load_in_numpy_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for compress in [false, true] {
        let path = dir.path().join(format!("ours_{compress}.npz"));
        let diffraction = write_scan(&path, 10, 32, "diffraction", compress);
        let npz = NpzFile::open(&path).unwrap();
        assert_eq!(npz.is_compressed("diffraction"), compress);
        assert_eq!(
            npz.array("diffraction").unwrap().to_f32_vec().unwrap(),
            diffraction
        );
        let scan = ScanFile::open(&path).unwrap();
        assert_eq!(scan.metadata.unwrap()["source"], "test");
        if numpy().is_some() {
            python(
                &format!(
                    r#"
import json, numpy as np
with np.load('{}') as f:
    assert f['diffraction'].shape == (10, 32, 32) and f['diffraction'].dtype == np.float32
    assert f['probeGuess'].dtype == np.complex64 and f['probeGuess'][0, 3] == 1 + 0.03j
    assert json.loads(str(f['_metadata']))['source'] == 'test'
    assert f['xcoords'].dtype == np.float64
"#,
                    path.display()
                ),
                dir.path(),
            );
        }
    }
}

fn contract_error(dir: &Path, script: &str) -> String {
    python(script, dir);
    match ScanFile::open(&dir.join("bad.npz")) {
        Ok(_) => panic!("bad.npz was accepted: {script}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn contract_violations_are_clear_errors() {
    let Some(()) = numpy() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prelude = r#"
import numpy as np
M, N = 6, 8
d = np.ones((M, N, N), np.float32)
c = dict(xcoords=np.arange(M, dtype=np.float64), ycoords=np.arange(M, dtype=np.float64),
         probeGuess=np.ones((N, N), np.complex64))
"#;
    let cases = [
        ("np.savez('bad.npz', **c)", "missing"),
        ("np.savez('bad.npz', diffraction=d.astype(np.uint16), **c)", "look like raw counts"),
        ("np.savez('bad.npz', diffraction=d.astype(np.complex64), **c)", "diffraction must be float amplitude"),
        ("d[2, 3, 4] = np.nan; np.savez('bad.npz', diffraction=d, **c)", "non-finite value NaN in pattern 2 at pixel (3, 4)"),
        ("d[1, 0, 0] = -1; np.savez('bad.npz', diffraction=d, **c)", "negative amplitude"),
        ("c['xcoords'] = c['xcoords'][:5]; np.savez('bad.npz', diffraction=d, **c)", "xcoords length"),
        ("c['xcoords'] = np.arange(M); np.savez('bad.npz', diffraction=d, **c)", "float array"),
        ("c['probeGuess'] = np.ones((N, N), np.float32); np.savez('bad.npz', diffraction=d, **c)", "complex"),
        ("c['probeGuess'] = np.ones((4, 4), np.complex64); np.savez('bad.npz', diffraction=d, **c)", "matching the pattern size"),
        ("np.savez('bad.npz', diffraction=d, objectGuess=np.ones((5, 5)), **c)", "objectGuess must be complex"),
        ("np.savez('bad.npz', diffraction=d, diff3d=d[:, :4, :4], **c)", "the same shape as 'diffraction'"),
        ("np.savez('bad.npz', diffraction=d, diff3d=d * 2, **c)", "the same contents"),
        ("np.savez('bad.npz', diffraction=d, names=np.array([object()] * 2, dtype=object), **c)", "only _metadata may hold Python objects"),
        ("np.savez('bad.npz', diffraction=np.ones((0, N, N), np.float32), xcoords=np.zeros(0), ycoords=np.zeros(0), probeGuess=c['probeGuess'])", "empty dataset"),
    ];
    for (body, needle) in cases {
        let err = contract_error(dir.path(), &format!("{prelude}{body}"));
        assert!(
            err.contains(needle),
            "{body}\n  error: {err}\n  wanted: {needle}"
        );
        assert!(err.contains("bad.npz"), "the error names the file: {err}");
    }
    let err = contract_error(dir.path(), &format!("{prelude}np.savez('bad.npz', **c)"));
    assert!(
        err.contains("keys present: probeGuess, xcoords, ycoords"),
        "{err}"
    );
}

#[test]
fn corrupt_and_lying_archives_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.npz");
    write_scan(&good, 10, 32, "diffraction", false);
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.npz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(ScanFile::open(&truncated)
        .unwrap_err()
        .to_string()
        .contains("truncated.npz"));

    let garbage = dir.path().join("garbage.npz");
    std::fs::write(&garbage, b"this is not a zip archive at all").unwrap();
    assert!(ScanFile::open(&garbage)
        .unwrap_err()
        .to_string()
        .contains("not a readable NPZ"));

    // A header that claims more data than the member holds.
    let needle = b"'shape': (10, 32, 32)";
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut lying = bytes.clone();
    lying[pos..pos + needle.len()].copy_from_slice(b"'shape': (90, 32, 32)");
    let path = dir.path().join("lying.npz");
    std::fs::write(&path, &lying).unwrap();
    let err = NpzFile::open(&path)
        .unwrap()
        .array("diffraction")
        .unwrap_err()
        .to_string();
    assert!(err.contains("header claims shape [90, 32, 32]"), "{err}");

    assert!(Dataset::open(&dir.path().join("nothing_*.npz"))
        .unwrap_err()
        .to_string()
        .contains("empty dataset"));
}

/// Mutated archives (flipped bytes, truncations) must give Ok or an error, never a panic.
#[test]
fn mutated_archives_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for compress in [false, true] {
        let good = dir.path().join("good.npz");
        write_scan(&good, 6, 32, "diffraction", compress);
        let bytes = std::fs::read(&good).unwrap();
        let mut rng = SplitMix64::new(if compress { 7 } else { 8 });
        let cache = dir.path().join("cache");
        for case in 0..150 {
            let mut mutated = bytes.clone();
            if case % 3 == 0 {
                mutated.truncate((rng.next_u64() % bytes.len() as u64) as usize);
            } else {
                for _ in 0..1 + case % 4 {
                    let i = (rng.next_u64() % mutated.len() as u64) as usize;
                    mutated[i] ^= 1 << (rng.next_u64() % 8);
                }
            }
            let path = dir.path().join(format!("mutant_{compress}_{case}.npz"));
            std::fs::write(&path, &mutated).unwrap();
            let result = std::panic::catch_unwind(|| {
                ptycho_wgpu::data::contract::ScanFile::open_with(
                    &path,
                    Default::default(),
                    Some(&cache),
                )
                .map(|_| ())
            });
            assert!(result.is_ok(), "case {case} (compress {compress}) panicked");
            std::fs::remove_file(&path).unwrap();
        }
    }
}

#[test]
fn shards_concatenate_and_stream_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard_{i}.npz")))
        .collect();
    let mut all = Vec::new();
    for s in &shards {
        all.extend(write_scan(s, 10, 32, "diffraction", false));
    }
    let dataset = Arc::new(Dataset::open(dir.path()).unwrap());
    assert_eq!((dataset.m, dataset.shards.len()), (30, 3));
    let glob = Dataset::open(&dir.path().join("shard_?.npz")).unwrap();
    assert_eq!(glob.m, 30);
    let alpha = dataset.normalization();
    let mean_sq: f64 = all.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 30.0;
    assert!((alpha - (256.0 / mean_sq).sqrt()).abs() < 1e-9);

    let groups = Arc::new(
        group(
            &dataset.xcoords(),
            &dataset.ycoords(),
            &GroupingConfig {
                gridsize: 2,
                neighbor_count: 4,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let config = StreamConfig {
        batch_size: 4,
        seed: 3,
        host_memory: 1 << 20,
        scale: 2.0,
        ..Default::default()
    };
    let mut seen = Vec::new();
    for batch in BatchStream::epoch(dataset.clone(), groups.clone(), &config, 0).unwrap() {
        let batch = batch.unwrap();
        for (k, &p) in batch.indices.iter().enumerate() {
            assert_eq!(
                batch.diffraction[k * 1024..(k + 1) * 1024],
                all[p * 1024..(p + 1) * 1024]
                    .iter()
                    .map(|v| v * 2.0)
                    .collect::<Vec<_>>()[..]
            );
        }
        seen.extend(batch.group_ids);
    }
    let first_epoch = seen.clone();
    seen.sort();
    assert_eq!(
        seen,
        (0..30).collect::<Vec<_>>(),
        "every group once per epoch"
    );
    let again: Vec<usize> = BatchStream::epoch(dataset.clone(), groups.clone(), &config, 0)
        .unwrap()
        .flat_map(|b| b.unwrap().group_ids)
        .collect();
    assert_eq!(again, first_epoch, "same seed and epoch, same order");
    let next: Vec<usize> = BatchStream::epoch(dataset.clone(), groups.clone(), &config, 1)
        .unwrap()
        .flat_map(|b| b.unwrap().group_ids)
        .collect();
    assert_ne!(next, first_epoch, "reshuffled per epoch");

    let tiny = StreamConfig {
        host_memory: 10_000,
        ..config
    };
    assert!(BatchStream::epoch(dataset, groups, &tiny, 0)
        .err()
        .unwrap()
        .to_string()
        .contains("--host-memory"));
}

#[test]
fn an_unfinished_writer_leaves_nothing_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.npz");
    write_scan(&path, 5, 32, "diffraction", false);
    let before = std::fs::read(&path).unwrap();
    {
        let mut w = NpzWriter::create(&path, false).unwrap();
        w.add_f32("diffraction", &[1, 2], &[1.0, 2.0]).unwrap();
        // Dropped without finish(): as if the process failed mid-write.
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "out.npz")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn shards_must_share_pattern_size_and_probe() {
    let dir = tempfile::tempdir().unwrap();
    write_scan(
        &dir.path().join("shard_00000.npz"),
        5,
        32,
        "diffraction",
        false,
    );
    let other = dir.path().join("shard_00001.npz");
    let mut w = NpzWriter::create(&other, false).unwrap();
    w.add_f32("diffraction", &[2, 32, 32], &[0.5; 2 * 32 * 32])
        .unwrap();
    w.add_f64("xcoords", &[2], &[1.0, 2.0]).unwrap();
    w.add_f64("ycoords", &[2], &[1.0, 2.0]).unwrap();
    w.add_c64(
        "probeGuess",
        &[32, 32],
        &[Complex32::new(0.0, 1.0); 32 * 32],
    )
    .unwrap();
    w.finish().unwrap();
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("shard_00001.npz") && err.contains("probeGuess differs"),
        "{err}"
    );
    write_scan(&other, 5, 64, "diffraction", false);
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("pattern size 64 differs from 32"), "{err}");
}

#[cfg(unix)]
#[test]
fn outputs_are_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.npz");
    write_scan(&path, 3, 32, "diffraction", false);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o044,
        0o044,
        "mode {mode:o}: group and others can read"
    );
}

/// The library's ndarray interop: patterns, positions and the probe of a dataset of two shards, and
/// the object, as arrays in the file's order (the probe a view of the mapped data, not a copy).
#[test]
fn a_dataset_reads_as_ndarray_arrays_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let shards = dir.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    let first = write_scan(&shards.join("shard_00000.npz"), 6, 8, "diffraction", false);
    let second = write_scan(&shards.join("shard_00001.npz"), 4, 8, "diffraction", false);
    let dataset = Dataset::open(&shards).unwrap();

    let patterns = dataset.patterns_array(4..8).unwrap();
    assert_eq!(patterns.dim(), (4, 8, 8));
    assert_eq!(patterns[[0, 1, 2]], first[4 * 64 + 8 + 2]);
    assert_eq!(patterns[[3, 7, 7]], second[64 + 63]);
    assert_eq!(
        dataset.pattern_array(7).unwrap(),
        patterns.index_axis(ndarray::Axis(0), 3)
    );
    let err = dataset.patterns_array(8..11).unwrap_err().to_string();
    assert!(err.contains("patterns 8..11 of 10"), "{err}");

    let positions = dataset.positions_array();
    assert_eq!(positions.dim(), (10, 2));
    assert_eq!(
        positions.row(7).to_vec(),
        vec![dataset.xcoords()[7], dataset.ycoords()[7]]
    );

    let probe = dataset.probe_view();
    assert_eq!(probe.dim(), (8, 8));
    assert_eq!(probe[[1, 0]], Complex32::new(1.0, 0.08));
    assert_eq!(
        probe.as_ptr(),
        dataset.probe().as_ptr(),
        "a view, not a copy"
    );

    let object = dataset.shards[0].object.clone().unwrap();
    assert_eq!(object.view().dim(), (40, 50));
    let array = object.clone().into_array().unwrap();
    assert_eq!(ComplexImage::from_array(array), object);
}
