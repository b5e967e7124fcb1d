//! Overlap views (study phase D): the disc-overlap function, both generations' selection rules, the
//! acceptance cases of study-pipeline.md §9 items 7–12, and the command line on simulated data.

use crate::common::{self, ptycho_ok};

use std::path::Path;

use ptycho_wgpu::data::contract::ScanFile;
use ptycho_wgpu::data::subset::write_rows;
use ptycho_wgpu::io::npz::NpzFile;
use ptycho_wgpu::io::npz_writer::NpzWriter;
use ptycho_wgpu::kernels::rng::SplitMix64;
use ptycho_wgpu::kernels::Complex32;
use ptycho_wgpu::study::overlap::{
    disc_overlap_area, disc_overlap_fraction, form_groups, metric_group_to_group,
    select_by_metrics, select_by_spacing, spacing_geometry_bound, subsample, write_metrics_views,
    MetricsConfig, SelectionStrategy, SpacingRule,
};

#[test]
fn disc_overlap_values() {
    assert!((disc_overlap_fraction(0.0, 10.0) - 1.0).abs() < 1e-6);
    assert!((disc_overlap_fraction(5.0, 10.0) - 0.391002).abs() < 1e-6);
    assert_eq!(disc_overlap_fraction(10.0, 10.0), 0.0);
    assert_eq!(disc_overlap_fraction(15.0, 10.0), 0.0);
    assert!((disc_overlap_area(0.0, 10.0) - std::f64::consts::PI * 25.0).abs() < 1e-12);
    assert!(disc_overlap_area(3.0, 10.0) > disc_overlap_area(7.0, 10.0));
}

fn metrics_config(gridsize: usize, s_img: f64, n_groups: usize) -> MetricsConfig {
    MetricsConfig {
        gridsize,
        s_img,
        n_groups,
        neighbor_count: 6,
        probe_diameter_px: 38.4,
        rng_seed_subsample: 456,
    }
}

fn grid(side: usize, step: f64) -> Vec<(f64, f64)> {
    (0..side * side)
        .map(|i| ((i % side) as f64 * step, (i / side) as f64 * step))
        .collect()
}

#[test]
fn subsampling_is_seeded_and_counts_right() {
    let a = subsample(100, 0.5, 456);
    assert_eq!(a.len(), 50);
    assert_eq!(a, subsample(100, 0.5, 456));
    assert_ne!(a, subsample(100, 0.5, 457));
    assert!(a.windows(2).all(|w| w[0] < w[1]), "index order, no repeats");
    assert_eq!(subsample(10, 0.01, 1).len(), 1, "at least one image");
}

#[test]
fn subset_broadcasts_scalars_and_keeps_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.npz");
    let mut w = NpzWriter::create(&source, false).unwrap();
    // 128 positions and a 128 x 128 object: the object must not be cut by rows.
    let x: Vec<f64> = (0..128).map(|i| i as f64).collect();
    w.add_f64("xcoords", &[128], &x).unwrap();
    w.add_c64(
        "objectGuess",
        &[128, 128],
        &vec![Complex32::new(1.0, 2.0); 128 * 128],
    )
    .unwrap();
    w.add_f64("dose", &[], &[1000.0]).unwrap();
    w.add_i64("rng_seed", &[], &[42]).unwrap();
    w.add_text("_metadata", "{\"old\": 1}").unwrap();
    w.finish().unwrap();
    let out = dir.path().join("out.npz");
    write_rows(
        &NpzFile::open(&source).unwrap(),
        128,
        &[3, 7, 100],
        true,
        "{\"new\": 2}",
        &out,
    )
    .unwrap();
    let npz = NpzFile::open(&out).unwrap();
    assert_eq!(
        npz.array("xcoords").unwrap().to_f64_vec().unwrap(),
        [3.0, 7.0, 100.0]
    );
    assert_eq!(npz.array("dose").unwrap().shape(), [3]);
    assert_eq!(
        npz.array("rng_seed").unwrap().to_i64_vec().unwrap(),
        [42, 42, 42]
    );
    assert_eq!(npz.array("objectGuess").unwrap().shape(), [128, 128]);
    assert_eq!(
        npz.array("_metadata").unwrap().to_unicode_string().unwrap(),
        "{\"new\": 2}"
    );
}

#[test]
fn grouping_gridsize_one_and_two() {
    let points = grid(10, 5.0);
    let ones = form_groups(&points[..10], 1, 3, 42).unwrap();
    assert_eq!(ones.len(), 10);
    let twos = form_groups(&points[..50], 2, 10, 42).unwrap();
    assert_eq!(twos.len(), 10);
    assert_eq!(twos.iter().map(|g| g.len()).sum::<usize>(), 40);
    for g in &twos {
        // The seed and its 3 nearest: all within one grid step and a diagonal.
        let seed = points[g[0]];
        assert!(g[1..].iter().all(|&j| {
            let q = points[j];
            (q.0 - seed.0).hypot(q.1 - seed.1) <= 5.0 * 2f64.sqrt() + 1e-9
        }));
    }
    let err = form_groups(&points[..3], 2, 1, 42)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("Need at least 4 images for gridsize=2"),
        "{err}"
    );
}

#[test]
fn image_and_group_metrics_edge_cases() {
    let one = [(5.0, 5.0)];
    let m = select_by_metrics(&one, &metrics_config(1, 1.0, 1)).unwrap();
    assert_eq!(m.metrics.metric_2_image_based_avg, 0.0);
    assert_eq!(
        metric_group_to_group(&[(0.0, 0.0), (100.0, 0.0), (200.0, 0.0)], 38.4),
        0.0
    );
    assert!(metric_group_to_group(&[(0.0, 0.0), (30.0, 0.0), (100.0, 0.0)], 38.4) > 0.0);
    // Duplicated coordinates count once.
    let dup = [
        (0.0, 0.0),
        (0.0, 0.0),
        (20.0, 0.0),
        (20.0, 0.0),
        (40.0, 0.0),
    ];
    let m = select_by_metrics(&dup, &metrics_config(1, 1.0, 1))
        .unwrap()
        .metrics;
    assert_eq!(m.n_unique_images, 3);
    assert!(m.metric_2_image_based_avg > 0.0 && m.metric_2_image_based_avg < 1.0);
}

#[test]
fn metrics_selection_counts_and_validation() {
    let points = grid(10, 7.0)[..50].to_vec();
    let m = select_by_metrics(&points, &metrics_config(1, 0.8, 10)).unwrap();
    assert!(m.metrics.metric_1_group_based_avg.is_none());
    assert_eq!(m.metrics.n_images_subsampled, 40);
    assert_eq!(m.kept.len(), 40);
    let m2 = select_by_metrics(&points, &metrics_config(2, 1.0, 10)).unwrap();
    let metric_1 = m2.metrics.metric_1_group_based_avg.unwrap();
    assert!(metric_1 > 0.0 && metric_1 < 1.0);
    let err = select_by_metrics(&points, &metrics_config(1, 0.0, 10))
        .err()
        .unwrap();
    assert!(err.to_string().contains("s_img must be in"), "{err}");
    let err = select_by_metrics(&points, &metrics_config(3, 1.0, 10))
        .err()
        .unwrap();
    assert!(err.to_string().contains("gridsize must be"), "{err}");
    let err = select_by_metrics(&points, &metrics_config(1, 1.0, 0))
        .err()
        .unwrap();
    assert!(err.to_string().contains("n_groups must be >= 1"), "{err}");
}

fn write_split(path: &Path, points: &[(f64, f64)], n: usize) {
    let m = points.len();
    let mut w = NpzWriter::create(path, false).unwrap();
    w.add_f32("diffraction", &[m, n, n], &vec![0.5; m * n * n])
        .unwrap();
    let x: Vec<f64> = points.iter().map(|p| p.0).collect();
    let y: Vec<f64> = points.iter().map(|p| p.1).collect();
    w.add_f64("xcoords", &[m], &x).unwrap();
    w.add_f64("ycoords", &[m], &y).unwrap();
    w.add_c64(
        "probeGuess",
        &[n, n],
        &vec![Complex32::new(1.0, 0.0); n * n],
    )
    .unwrap();
    w.add_c64(
        "objectGuess",
        &[64, 64],
        &vec![Complex32::new(1.0, 0.0); 64 * 64],
    )
    .unwrap();
    w.finish().unwrap();
}

#[test]
fn bundle_schema_and_geometry_bound() {
    let dir = tempfile::tempdir().unwrap();
    let dose = dir.path().join("dose_1000");
    let diagonal: Vec<(f64, f64)> = (0..50)
        .map(|i| (i as f64 * 50.0 / 49.0, i as f64 * 50.0 / 49.0))
        .collect();
    std::fs::create_dir_all(&dose).unwrap();
    write_split(&dose.join("patched_train.npz"), &diagonal, 32);
    write_split(&dose.join("patched_test.npz"), &diagonal, 32);
    let out = dir.path().join("views");
    write_metrics_views(&dose, &metrics_config(1, 1.0, 10), &out, false, |_| {}).unwrap();
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics_bundle.json")).unwrap()).unwrap();
    let expected = 2500.0 / (50.0 * std::f64::consts::PI * 19.2f64.powi(2));
    for split in ["train", "test"] {
        let m = &bundle[split];
        assert_eq!(m["metrics_version"], "1.0");
        assert_eq!(m["gridsize"], 1);
        assert_eq!(m["s_img"], 1.0);
        assert_eq!(m["rng_seed_subsample"], 456);
        assert!(
            m.get("metric_1_group_based_avg").is_none(),
            "omitted at gridsize 1"
        );
        let bound = m["geometry_acceptance_bound"].as_f64().unwrap();
        assert!(
            (bound - expected).abs() < 1e-9 && (bound - 0.043174).abs() < 1e-6,
            "{bound}"
        );
        assert_eq!(
            m["effective_min_acceptance"].as_f64().unwrap(),
            bound.max(1e-6)
        );
        let npz = NpzFile::open(&out.join(format!("{split}.npz"))).unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(&npz.array("_metadata").unwrap().to_unicode_string().unwrap())
                .unwrap();
        assert_eq!(meta["geometry_acceptance_bound"].as_f64().unwrap(), bound);
        assert_eq!(
            meta["effective_min_acceptance"].as_f64().unwrap(),
            bound.max(1e-6)
        );
        let per_split: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("{split}_metrics.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(&per_split, m);
    }
}

#[test]
fn spacing_direct_greedy_and_failure() {
    // Far apart: every position passes directly.
    let sparse = grid(4, 50.0);
    let s = select_by_spacing(&sparse, 38.4, SpacingRule::Gated, "test").unwrap();
    assert_eq!(s.strategy, SelectionStrategy::Direct);
    assert_eq!(s.metrics.n_accepted, 16);
    assert!((s.metrics.min_spacing - 50.0).abs() < 1e-12);

    // 5 x 5 at 64 px against 102.4 px: no position passes directly; greedy keeps a spaced subset.
    let raster = grid(5, 64.0);
    let s = select_by_spacing(&raster, 102.4, SpacingRule::Gated, "test").unwrap();
    assert_eq!(s.strategy, SelectionStrategy::Greedy);
    let kept: Vec<(f64, f64)> = (0..25)
        .filter(|&i| s.accepted[i])
        .map(|i| raster[i])
        .collect();
    assert!(kept.len() >= 3);
    for (i, a) in kept.iter().enumerate() {
        for b in &kept[i + 1..] {
            assert!((a.0 - b.0).hypot(a.1 - b.1) >= 102.4);
        }
    }
    assert_eq!(s.metrics.n_accepted + s.metrics.n_rejected, 25);

    // Uniform random positions whose greedy packing cannot reach 80% of the geometry bound: the
    // reference's ACCEPTANCE-001 situation.
    let mut rng = SplitMix64::new(4);
    let random: Vec<(f64, f64)> = (0..300)
        .map(|_| (96.0 * rng.next_f64(), 96.0 * rng.next_f64()))
        .collect();
    let err = select_by_spacing(
        &random,
        20.0,
        SpacingRule::Gated,
        "dense view in train split",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("Insufficient positions meet spacing threshold for dense view in train split"),
        "{err}"
    );
    // Without the gate (the study's rule) the same points give the greedy selection.
    let s = select_by_spacing(&random, 20.0, SpacingRule::Greedy, "test").unwrap();
    assert_eq!(s.strategy, SelectionStrategy::Greedy);
    let kept: Vec<_> = (0..random.len())
        .filter(|&i| s.accepted[i])
        .map(|i| random[i])
        .collect();
    assert!(kept.len() >= 10, "{}", kept.len());
    for (i, a) in kept.iter().enumerate() {
        for b in &kept[i + 1..] {
            assert!((a.0 - b.0).hypot(a.1 - b.1) >= 20.0);
        }
    }
    assert_eq!(s.metrics.n_accepted, kept.len());

    assert_eq!(spacing_geometry_bound(&[(1.0, 1.0)], 38.4), 0.10);
    assert_eq!(spacing_geometry_bound(&[], 38.4), 0.0);
}

#[test]
fn command_line_on_simulated_data() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let run = ptycho_ok;
    let s = sim.to_str().unwrap();
    // A raster: random positions rarely satisfy the spacing views (ACCEPTANCE-001).
    run(&[
        "simulate",
        "--output",
        s,
        "--n",
        "64",
        "--positions",
        "raster",
        "--step",
        "16",
        "--doses",
        "1e3",
        "--device",
        "cpu",
    ]);
    let views = dir.path().join("views");
    let artifacts = dir.path().join("artifacts");
    let stdout = run(&[
        "overlap",
        "spacing",
        "--phase-c-root",
        s,
        "--output-root",
        views.to_str().unwrap(),
        "--artifact-root",
        artifacts.to_str().unwrap(),
    ]);
    assert!(stdout.contains("dense/train"), "{stdout}");
    for f in [
        "dose_1000/dense/dense_train.npz",
        "dose_1000/sparse/sparse_test.npz",
        "dose_1000/dense/train_metrics.json",
        "dose_1000/sparse/metrics_bundle.json",
        "overlap_manifest.json",
    ] {
        assert!(views.join(f).exists(), "{f}");
    }
    assert!(artifacts.join("metrics/dose_1000/dense.json").exists());
    let view = ScanFile::open(&views.join("dose_1000/dense/dense_train.npz")).unwrap();
    let meta = view.metadata.unwrap();
    assert_eq!(meta["overlap_view"], "dense");
    assert_eq!(meta["n_accepted"].as_u64().unwrap() as usize, view.m);

    let metrics = dir.path().join("metrics");
    run(&[
        "overlap",
        "metrics",
        "--phase-c-root",
        sim.join("dose_1000").to_str().unwrap(),
        "--output-root",
        metrics.to_str().unwrap(),
        "--gridsize",
        "2",
        "--s-img",
        "0.8",
        "--n-groups",
        "20",
    ]);
    let train = ScanFile::open(&metrics.join("train.npz")).unwrap();
    let source = ScanFile::open(&sim.join("dose_1000/patched_train.npz")).unwrap();
    assert_eq!(train.m, (0.8 * source.m as f64).round() as usize);
    if common::python_has("numpy") {
        let out = common::run_python(
            &metrics,
            "import numpy as np, json\nd = np.load('test.npz')\nm = json.loads(str(d['_metadata']))\nprint(m['gridsize'], d['diffraction'].shape[0], d['objectGuess'].shape)",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("2 "), "{text}");
    }
}
