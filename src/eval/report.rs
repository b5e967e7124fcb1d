//! The files `ptycho compare` writes: metrics.json, metrics.csv, report.md (and compare.png, see
//! [`super::plot`]). Each is written atomically.

use std::path::Path;

use serde_json::{Map, Value};

use crate::io::atomic::write_atomic;

use super::compare::{Comparison, PartMetrics};

pub const METRIC_NAMES: [&str; 8] = [
    "mae",
    "mse",
    "psnr",
    "psnr_data_range",
    "ssim",
    "ms_ssim",
    "frc50",
    "frc1over7",
];

/// The metrics of the reference's tidy `comparison_metrics.csv` (no data-range PSNR).
pub const REFERENCE_METRIC_NAMES: [&str; 7] = [
    "mae",
    "mse",
    "psnr",
    "ssim",
    "ms_ssim",
    "frc50",
    "frc1over7",
];

/// The metric `name` of `p` (one of METRIC_NAMES).
pub fn value(p: &PartMetrics, name: &str) -> Option<f64> {
    match name {
        "mae" => Some(p.mae),
        "mse" => Some(p.mse),
        "psnr" => Some(p.psnr),
        "psnr_data_range" => Some(p.psnr_data_range),
        "ssim" => Some(p.ssim),
        "ms_ssim" => Some(p.ms_ssim),
        "frc50" => Some(p.frc50),
        "frc1over7" => Some(p.frc1over7),
        _ => None,
    }
}

pub fn metrics_json(results: &[(String, Comparison)]) -> Value {
    let mut out = Map::new();
    for (label, c) in results {
        out.insert(
            label.clone(),
            serde_json::to_value(c).expect("plain data serialises"),
        );
    }
    Value::Object(out)
}

pub fn metrics_csv(results: &[(String, Comparison)]) -> String {
    let mut s = String::from("label,part,metric,value\n");
    for (label, c) in results {
        for (part, p) in [("amplitude", &c.amplitude), ("phase", &c.phase)] {
            for name in METRIC_NAMES {
                let v = value(p, name).map_or(String::new(), |v| format!("{v}"));
                s += &format!("{},{part},{name},{v}\n", csv_field(label));
            }
        }
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn delta(a: Option<f64>, b: Option<f64>, digits: usize) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.*}", digits, a - b),
        _ => "N/A".into(),
    }
}

/// The delta lines of the reference's highlights, first label minus each other:
/// `MS-SSIM Δ (A - B)  : amplitude +0.010  phase +0.015`, then the MAE lines.
pub fn delta_lines(results: &[(String, Comparison)]) -> Vec<String> {
    let Some((first, head)) = results.first() else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for (metric, key, digits) in [("MS-SSIM", "ms_ssim", 3), ("MAE", "mae", 6)] {
        for (other, c) in &results[1..] {
            let title = format!("{metric} Δ ({first} - {other})");
            lines.push(format!(
                "{title:<35}: amplitude {}  phase {}",
                delta(
                    value(&head.amplitude, key),
                    value(&c.amplitude, key),
                    digits
                ),
                delta(value(&head.phase, key), value(&c.phase, key), digits)
            ));
        }
    }
    lines
}

pub fn report_md(results: &[(String, Comparison)], truth: &str) -> String {
    let mut s = format!("# Comparison against {truth}\n\n");
    s += "| label | part | MAE | MSE | PSNR | PSNR (data range) | SSIM | MS-SSIM | FRC50 | FRC1/7 |\n";
    s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    for (label, c) in results {
        for (part, p) in [("amplitude", &c.amplitude), ("phase", &c.phase)] {
            s += &format!("| {label} | {part} |");
            for name in METRIC_NAMES {
                s += &format!(" {} |", f(value(p, name)));
            }
            s += "\n";
        }
    }
    s += "\nFRC is the reference's, |Σ F1·F2*| / sqrt(Σ|F1|² · Σ|F2|²) over rings out to the corners, in ring-index units (cycles per pixel in metrics.json); a value equal to the number of rings means the curve never fell below the threshold (`frc50_crossed` false in metrics.json). PSNR uses the reference's peak of 255; \"data range\" uses the range of the ground truth.\n";
    for (label, c) in results {
        let shape = c.shape;
        let window = match c.frc_window {
            super::metrics::FrcWindow::None => "no window",
            super::metrics::FrcWindow::Hann => "a Hann window",
        };
        s += &format!(
            "\n{label}: {}x{} pixels compared ({}); FRC with {window}. ",
            shape[0], shape[1], c.cropping.note
        );
        match (&c.registration, c.registration_offset) {
            (_, Some([dy, dx])) => {
                s += &format!("Registration offset (dy, dx) = ({dy:.3}, {dx:.3}).")
            }
            (Some(r), None) => {
                s += &format!(
                    "Registration NOT applied: its correlation peak ({:.1}x the RMS) is too weak to trust.",
                    r.peak_ratio
                )
            }
            (None, None) => s += "Not registered.",
        }
        s += "\n";
    }
    let lines = delta_lines(results);
    if !lines.is_empty() {
        s += "\n\n## Deltas\n\n```\n";
        s += &lines.join("\n");
        s += "\n```\n";
    }
    s += "\n![comparison](compare.png)\n";
    s
}

/// What `write_all` writes.
pub const OUTPUTS: [&str; 4] = ["metrics.json", "metrics.csv", "report.md", "compare.png"];

pub fn write_all(
    dir: &Path,
    results: &[(String, Comparison)],
    truth: &str,
    png: &[u8],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&metrics_json(results)).expect("serialisable");
    write_atomic(&dir.join("metrics.json"), json.as_bytes())?;
    write_atomic(&dir.join("metrics.csv"), metrics_csv(results).as_bytes())?;
    write_atomic(&dir.join("report.md"), report_md(results, truth).as_bytes())?;
    write_atomic(&dir.join("compare.png"), png)?;
    Ok(())
}
