//! The `ptycho` binary end to end: info, bench fft, device choice and its errors.

use std::process::{Command, Output};

fn ptycho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .output()
        .expect("run ptycho")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "ptycho failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn gpu_required() -> bool {
    std::env::var("PTYCHO_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

#[test]
fn info_json_lists_adapters_and_the_chosen_one() {
    let info = stdout_json(&ptycho(&["info", "--json"]));
    let adapters = info["adapters"].as_array().unwrap();
    if gpu_required() {
        assert!(!adapters.is_empty());
        let chosen = &info["chosen"];
        assert!(
            chosen["limits"]["max_storage_buffer_binding_size"]
                .as_u64()
                .unwrap()
                >= 128 << 20
        );
        assert!(
            chosen["limits"]["max_compute_workgroup_storage_size"]
                .as_u64()
                .unwrap()
                >= 16384
        );
        assert_eq!(chosen["features"].as_array().unwrap().len(), 3);
    } else if info["chosen"].is_null() {
        assert!(info["note"].as_str().unwrap().contains("CPU backend"));
    }
}

#[test]
fn info_without_adapters_says_what_auto_does() {
    let out = ptycho(&["info", "--backend", "metal"]);
    if cfg!(target_os = "linux") {
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("(none)") && text.contains("--device auto will use the CPU backend"),
            "{text}"
        );
    }
}

#[test]
fn bench_fft_on_the_cpu_backend() {
    let report = stdout_json(&ptycho(&[
        "bench", "fft", "--quick", "--device", "cpu", "--n", "32", "--batch", "8", "--json",
    ]));
    assert_eq!(report["n"], 32);
    assert_eq!(report["batch"], 8);
    assert_eq!(report["array_bytes"], 8 * 32 * 32 * 8);
    assert!(report["fft"]["seconds_per_batch"].as_f64().unwrap() > 0.0);
    assert!(report["gpu_copy"].is_null() && report["gpu_time_over_cpu_time"].is_null());
}

#[test]
fn bench_fft_on_the_gpu_reports_ratios() {
    let out = ptycho(&[
        "bench", "fft", "--quick", "--device", "gpu", "--n", "64", "--batch", "16", "--json",
    ]);
    if !out.status.success() && !gpu_required() {
        eprintln!(
            "skipping: no GPU ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let report = stdout_json(&out);
    for key in ["fft_over_copy_bandwidth", "gpu_time_over_cpu_time"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(report["gpu_copy"]["effective_gb_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        report["cpu_fft"]["microseconds_per_transform"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn bench_fft_text_output() {
    let out = ptycho(&[
        "bench", "fft", "--quick", "--device", "cpu", "--n", "32", "--batch", "4",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FFT 32x32 complex64, batch 4") && text.contains("CPU backend FFT"),
        "{text}"
    );
}

#[test]
fn unsupported_fft_size_is_a_clear_error() {
    let out = ptycho(&[
        "bench", "fft", "--quick", "--device", "cpu", "--n", "48", "--batch", "2",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FFT size 48 is not supported") && err.contains("[32, 64, 128, 256, 512]"),
        "{err}"
    );
}

#[test]
fn device_gpu_without_adapter_says_how_to_get_one() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let out = ptycho(&[
        "bench",
        "fft",
        "--quick",
        "--device",
        "gpu",
        "--backend",
        "metal",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mesa-vulkan-drivers") && err.contains("--device cpu"),
        "{err}"
    );

    let out = ptycho(&[
        "bench",
        "fft",
        "--quick",
        "--backend",
        "metal",
        "--n",
        "32",
        "--batch",
        "2",
    ]);
    assert!(out.status.success(), "auto falls back to the CPU backend");
    assert!(String::from_utf8_lossy(&out.stderr).contains("running on the CPU backend"));
}

#[test]
fn unknown_device_is_rejected() {
    let out = ptycho(&["bench", "fft", "--device", "tpu"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected auto, gpu or cpu"));
}

#[test]
fn demo_runs_its_embedded_study_and_keeps_a_hub_made_with_other_settings() {
    // The demo itself takes minutes (README); here its wiring: it locks the hub and refuses to mix
    // its settings with another study's before any work starts.
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    std::fs::create_dir_all(&hub).unwrap();
    std::fs::write(hub.join("study.toml"), "[training]\nepochs = 3\n").unwrap();
    let out = ptycho(&["demo", "--hub", hub.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the hub was made with other settings"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(hub.join("study.toml")).unwrap(),
        "[training]\nepochs = 3\n"
    );
}

#[test]
fn bench_physics_reports_both_gridsizes() {
    let report = stdout_json(&ptycho(&[
        "bench",
        "physics",
        "--quick",
        "--device",
        "cpu",
        "--n",
        "32",
        "--patterns",
        "8",
        "--json",
    ]));
    assert_eq!(report["patterns"], 8);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["gridsize"], 2);
    assert_eq!(results[1]["groups"], 2);
    assert_eq!(results[1]["canvas"], 32 + 4 + 10);
    for r in results {
        assert!(r["forward_over_fft"].as_f64().unwrap() > 0.0);
        assert!(r["forward_backward_patterns_per_s"].as_f64().unwrap() > 0.0);
    }
    assert!(report["cpu"].is_null());
}
