//! `analysis/report.md` and its pictures: SSIM and FRC50 against dose for every arm, and grids of
//! the reconstructions (rows: doses; columns: truth, the PINN on each view, baseline, iterative) on
//! shared colour scales.

use std::path::Path;

use serde_json::Value;

use super::compare::ALIGNED_NPZ;
use super::config::StudyConfig;
use super::plan::{analysis_dir, python_exp, Arm, CONSTANT_MODEL};
use super::summary::{models, score, Entry};
use super::StudyError;
use crate::eval::image::Real;
use crate::eval::plot::{dose_panels_png, image_grid_png, DosePanel};
use crate::io::atomic::write_atomic;
use crate::io::npz::NpzFile;

pub const METRICS_PNG: &str = "analysis/metrics_vs_dose.png";
pub const AMPLITUDE_GRID_PNG: &str = "analysis/reconstructions_amplitude.png";
pub const PHASE_GRID_PNG: &str = "analysis/reconstructions_phase.png";

fn write_file(hub: &Path, relative: &str, bytes: &[u8]) -> Result<(), StudyError> {
    let path = hub.join(relative);
    write_atomic(&path, bytes).map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))
}

/// The successful comparisons: (dose, view, record).
fn cells<'a>(entries: &'a [Entry]) -> Vec<(f64, &'a str, &'a super::record::JobRecord)> {
    entries
        .iter()
        .filter(|e| e.job.phase == super::plan::Phase::Compare && e.succeeded())
        .filter_map(|e| Some((e.job.dose?, e.job.view.as_deref()?, e.record.as_ref()?)))
        .collect()
}

pub fn write_report(
    hub: &Path,
    config: &StudyConfig,
    entries: &[Entry],
    summary: &Value,
    highlights: &str,
) -> Result<(), StudyError> {
    let cells = cells(entries);
    write_file(hub, METRICS_PNG, &metrics_png(&cells))?;
    let (amplitude, phase) = grids(hub, config, &cells);
    write_file(hub, AMPLITUDE_GRID_PNG, &amplitude)?;
    write_file(hub, PHASE_GRID_PNG, &phase)?;

    let s = &config.simulation;
    let mut md = String::from("# Dose/overlap study report\n\n");
    md += &format!(
        "Simulated {} patterns of N = {} at doses {}; views {}; PINN gridsize {} ({} epochs, \
         n_filters_scale {}), baseline gridsize 1; iterative {} ({} epochs). Every score is beside \
         the constant object's (ones at the same positions) on the same test split.\n\n",
        s.n_images,
        s.n,
        s.doses
            .iter()
            .map(|d| python_exp(*d))
            .collect::<Vec<_>>()
            .join(", "),
        config
            .views()
            .iter()
            .map(|(v, f)| format!("{v} (overlap {f})"))
            .collect::<Vec<_>>()
            .join(", "),
        config.training.gridsize,
        config.training.epochs,
        config.training.n_filters_scale,
        config.iterative.algorithm.name(),
        config.iterative.epochs
    );
    md += &format!(
        "Comparisons: {} of {} succeeded.\n\n## Scores (amplitude / phase)\n",
        summary["n_success"], summary["n_jobs"]
    );
    for (dose, view, record) in &cells {
        md += &format!(
            "\n### dose {} / {view}\n\n| model | SSIM | MS-SSIM | MAE | FRC50 (rings) |\n|---|---|---|---|---|\n",
            python_exp(*dose)
        );
        for model in models(record) {
            let cell = |metric: &str, digits: usize| {
                score(record, &model, metric).map_or("N/A".into(), |(a, p)| {
                    format!("{a:.digits$} / {p:.digits$}")
                })
            };
            md += &format!(
                "| {model} | {} | {} | {} | {} |\n",
                cell("ssim", 3),
                cell("ms_ssim", 3),
                cell("mae", 4),
                cell("frc50", 1)
            );
        }
    }
    md += "\n## Deltas of the means\n\n```\n";
    md += highlights;
    md += "```\n\nPer-job tables and aggregates: [metrics_summary.md](metrics_summary.md).\n\n";
    md += "## Pictures\n\n![SSIM and FRC50 against dose](metrics_vs_dose.png)\n\n";
    md += "![amplitudes](reconstructions_amplitude.png)\n\n![phases](reconstructions_phase.png)\n";
    let failed: Vec<&Entry> = entries.iter().filter(|e| !e.succeeded()).collect();
    if !failed.is_empty() {
        md += "\n## Jobs that failed or did not run\n\n";
        for e in failed {
            md += &format!(
                "- {} ({}): {} — log `{}`\n",
                e.job,
                e.status(),
                e.record
                    .as_ref()
                    .and_then(|r| r.error.as_deref())
                    .unwrap_or("no record"),
                e.job.log_path().display()
            );
        }
    }
    write_file(hub, "analysis/report.md", md.as_bytes())
}

fn metrics_png(cells: &[(f64, &str, &super::record::JobRecord)]) -> Vec<u8> {
    let mut panels = Vec::new();
    for (metric, title) in [("ssim", "SSIM"), ("frc50", "FRC50 (RINGS)")] {
        for (k, part) in ["amplitude", "phase"].into_iter().enumerate() {
            let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            for (dose, view, record) in cells {
                for model in models(record) {
                    let Some(value) =
                        score(record, &model, metric).map(|s| if k == 0 { s.0 } else { s.1 })
                    else {
                        continue;
                    };
                    let label = format!("{model} ({view})");
                    match series.iter_mut().find(|(l, _)| *l == label) {
                        Some((_, points)) => points.push((*dose, value)),
                        None => series.push((label, vec![(*dose, value)])),
                    }
                }
            }
            panels.push(DosePanel {
                title: format!("{title} {part}"),
                series,
            });
        }
    }
    dose_panels_png(&panels)
}

fn read_real(path: &Path, key: &str) -> Option<Real> {
    let npz = NpzFile::open(path).ok()?;
    let array = npz.array(key).ok()?;
    let shape = array.shape().to_vec();
    let data = array.to_f32_vec().ok()?;
    (shape.len() == 2).then(|| {
        Real::new(
            shape[0],
            shape[1],
            data.into_iter().map(f64::from).collect(),
        )
    })
}

/// The amplitude and phase grids.
fn grids(
    hub: &Path,
    config: &StudyConfig,
    cells: &[(f64, &str, &super::record::JobRecord)],
) -> (Vec<u8>, Vec<u8>) {
    let views: Vec<&str> = config.views().into_iter().map(|(v, _)| v).collect();
    let first_view = views[0];
    // (column label, view whose cell holds it, key prefix in the aligned file)
    let mut columns: Vec<(String, &str, String)> =
        vec![("TRUTH".into(), first_view, "ground_truth".into())];
    for &v in &views {
        columns.push((format!("PINN {v}"), v, Arm::Pinn.model().to_lowercase()));
    }
    if config.training.baseline {
        columns.push((
            "BASELINE".into(),
            first_view,
            Arm::Baseline.model().to_lowercase(),
        ));
    }
    columns.push((
        "ITERATIVE".into(),
        first_view,
        Arm::Iterative.model().to_lowercase(),
    ));
    columns.push((
        CONSTANT_MODEL.to_uppercase(),
        first_view,
        CONSTANT_MODEL.to_lowercase(),
    ));
    let mut doses: Vec<f64> = cells.iter().map(|c| c.0).collect();
    doses.sort_by(f64::total_cmp);
    doses.dedup();
    let labels: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
    let mut out = Vec::new();
    for part in ["amplitude", "phase"] {
        let rows: Vec<(String, Vec<Option<Real>>)> = doses
            .iter()
            .map(|&dose| {
                let images = columns
                    .iter()
                    .map(|(_, view, prefix)| {
                        let file = hub.join(analysis_dir(dose, view)).join(ALIGNED_NPZ);
                        read_real(&file, &format!("{prefix}_{part}"))
                    })
                    .collect();
                (format!("DOSE {}", python_exp(dose)), images)
            })
            .collect();
        // Amplitudes on the truth's scale; phases on the scale of everything shown.
        let range_of = |imgs: &mut dyn Iterator<Item = &Real>| {
            imgs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), img| {
                (lo.min(img.min()), hi.max(img.max()))
            })
        };
        let mut range = if part == "amplitude" {
            range_of(&mut rows.iter().filter_map(|(_, imgs)| imgs[0].as_ref()))
        } else {
            range_of(&mut rows.iter().flat_map(|(_, imgs)| imgs.iter().flatten()))
        };
        if !(range.0.is_finite() && range.1 > range.0) {
            range = (0.0, 1.0);
        }
        out.push(image_grid_png(
            &format!("{} (SHARED SCALE)", part.to_uppercase()),
            &labels,
            &rows,
            range,
            part == "phase",
        ));
    }
    let phase = out.pop().expect("two grids");
    (out.pop().expect("two grids"), phase)
}

/// The terminal's summary: amplitude and phase SSIM of every model in every cell, the constant
/// object's beside them, and whether each arm beat it.
pub fn score_table(entries: &[Entry]) -> String {
    let cells = cells(entries);
    if cells.is_empty() {
        return "no comparison finished".into();
    }
    let mut s = format!(
        "{:<7} {:<7} {:<11} {:>15} {:>11}  {}\n",
        "dose", "view", "model", "amplitude SSIM", "phase SSIM", "vs the constant object"
    );
    for (dose, view, record) in &cells {
        let constant = score(record, CONSTANT_MODEL, "ssim");
        for model in models(record) {
            let Some((a, p)) = score(record, &model, "ssim") else {
                continue;
            };
            let verdict = match constant {
                _ if model == CONSTANT_MODEL => String::new(),
                Some((ca, cp)) => format!(
                    "{:+.3} / {:+.3} {}",
                    a - ca,
                    p - cp,
                    if a > ca && p > cp {
                        "better"
                    } else {
                        "NOT better"
                    }
                ),
                None => String::new(),
            };
            s += &format!(
                "{:<7} {:<7} {:<11} {a:>15.3} {p:>11.3}  {verdict}\n",
                python_exp(*dose),
                view,
                model
            );
        }
    }
    s
}
