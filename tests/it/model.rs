//! Network architectures: parameter counts equal the reference's (physics-and-model.md §6.5, §8.1), the
//! layer table's shapes and FLOPs, tensor names, and `ptycho model summary`.

use std::process::Command;

use ptycho_wgpu::model::{layers, parameter_count, parameters, ModelConfig, ModelKind};

#[test]
fn parameter_counts_equal_the_reference() {
    let pinn = |gridsize, probe_big| ModelConfig {
        probe_big,
        ..ModelConfig::pinn(64, gridsize)
    };
    assert_eq!(parameter_count(&pinn(1, false)).unwrap(), 2_252_026);
    assert_eq!(parameter_count(&pinn(2, false)).unwrap(), 2_257_000);
    assert_eq!(parameter_count(&pinn(1, true)).unwrap(), 2_331_772);
    assert_eq!(parameter_count(&pinn(2, true)).unwrap(), 2_340_208);
    let baseline = ModelConfig {
        kind: ModelKind::Baseline,
        ..ModelConfig::pinn(64, 1)
    };
    assert_eq!(parameter_count(&baseline).unwrap(), 4_612_418);
    // The other ladders of §6.2 build and end at N x N.
    for n in [128, 256] {
        let config = ModelConfig::pinn(n, 1);
        let table = layers(&config).unwrap();
        assert_eq!(
            table.last().unwrap().output,
            [n, n, 1],
            "N = {n}: the heads end at N x N"
        );
    }
}

#[test]
fn layer_table_shapes_flops_and_names() {
    let config = ModelConfig::pinn(64, 2);
    let table = layers(&config).unwrap();
    let e1b = table.iter().find(|l| l.name == "encoder/conv_1b").unwrap();
    assert_eq!(e1b.flops, 301_989_888);
    let bottleneck = table.iter().find(|l| l.name == "encoder/pool_3").unwrap();
    assert_eq!(bottleneck.output, [8, 8, 256]);
    let head = table.iter().find(|l| l.name == "phase/head").unwrap();
    assert_eq!(head.kernel_shape(), Some([3, 3, 60, 4]));
    assert_eq!(head.parameters, 2_164);
    let params = parameters(&config).unwrap();
    assert_eq!(params.len(), 32, "16 convolutions, kernel and bias each");
    let mut names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 32);
    assert_eq!(
        params[0],
        ("encoder/conv_1a/kernel".to_string(), vec![3, 3, 4, 64])
    );
    let total: usize = params
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(total, 2_257_000);
    let flops: u64 = table.iter().map(|l| l.flops).sum();
    // §0: ~1.4–1.7 GFLOP forward per sample.
    assert!((1.4e9..1.8e9).contains(&(flops as f64)), "{flops}");
}

#[test]
fn invalid_configurations_are_errors() {
    assert!(layers(&ModelConfig::pinn(48, 1))
        .unwrap_err()
        .to_string()
        .contains("N = 48"));
    assert!(layers(&ModelConfig::pinn(64, 3))
        .unwrap_err()
        .to_string()
        .contains("gridsize"));
    let baseline = ModelConfig {
        kind: ModelKind::Baseline,
        ..ModelConfig::pinn(128, 1)
    };
    assert!(layers(&baseline)
        .unwrap_err()
        .to_string()
        .contains("N = 64 only"));
}

#[test]
fn summary_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args([
            "model",
            "summary",
            "--n",
            "64",
            "--gridsize",
            "1",
            "--probe-big",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("total parameters: 2331772"), "{text}");
    assert!(text.contains("amplitude/ring_head") && text.contains("[3, 3, 64, 1]"));
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(["model", "summary", "--model", "baseline", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total_parameters"], 4_612_418);
    assert_eq!(report["layers"][0]["name"], "encoder/conv_1a");
}
