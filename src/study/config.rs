//! The study's settings (`study.toml`): every field optional, each default the reference's
//! (study-pipeline.md §2.1, §4.2, §6.2) unless its comment says why not.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StudyError;
use crate::recon::reconstruct::Algorithm;

/// The embedded default, printed by `ptycho study config --default`; `StudyConfig::default()` equals
/// it (a test checks).
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The miniature study `ptycho demo` runs.
pub const DEMO_TOML: &str = include_str!("demo.toml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudyConfig {
    /// auto (a GPU adapter when one exists, else the CPU), gpu or cpu.
    pub device: String,
    pub simulation: SimulationSettings,
    pub views: ViewSettings,
    pub training: TrainingSettings,
    pub iterative: IterativeSettings,
    pub metrics: MetricsSettings,
}

/// Phase C.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationSettings {
    pub doses: Vec<f64>,
    /// Patch (detector) size N.
    pub n: usize,
    /// Random scan positions over the object.
    pub n_images: usize,
    /// Side of the synthetic object; 0: 4·N.
    pub object_size: usize,
    /// Phase curvature of the built-in probe (radians at radius N/4); 0 is the reference's
    /// symmetric probe, whose twin image the PINN cannot tell apart (bench/results/quality).
    pub probe_curvature: f64,
    pub seed: u64,
}

/// Phase D: the overlap fraction f of each view; a view keeps positions at least (1 − f)·N apart
/// (the greedy selection, without the legacy acceptance gate; `overlap::SpacingRule::Greedy`).
/// A `[views]` table lists the views to cut; without one, both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparse: Option<f64>,
}

/// What the PINN arms train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainingData {
    /// The train split only (the reference).
    Train,
    /// Train and test splits: the loss needs no labels, so the scan to be reconstructed may be
    /// fitted, as an iterative engine does; the largest lever measured in bench/results/quality.
    Scan,
}

/// Phase E.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingSettings {
    pub epochs: usize,
    pub batch_size: usize,
    /// Samples drawn from the data (at most every pattern).
    pub n_groups: usize,
    /// Gridsize of the dense and sparse arms; the baseline is gridsize 1.
    pub gridsize: usize,
    pub n_filters_scale: usize,
    pub probe_big: bool,
    pub data: TrainingData,
    /// Seed of the grouping and the sample draw.
    pub seed: u64,
    /// Train the gridsize-1 baseline arm.
    pub baseline: bool,
}

/// Phase F, on each view's test split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IterativeSettings {
    pub algorithm: Algorithm,
    pub epochs: usize,
    pub batch_size: usize,
}

/// Phase G.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub ms_ssim_sigma: f64,
    /// M of the stitching crop.
    pub stitch_crop: usize,
    /// Register the iterative reconstruction to the truth before scoring (the reference registers
    /// only its iterative arm).
    pub register_iterative: bool,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            device: "auto".into(),
            simulation: SimulationSettings::default(),
            views: ViewSettings::default(),
            training: TrainingSettings::default(),
            iterative: IterativeSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

impl Default for SimulationSettings {
    fn default() -> Self {
        Self {
            doses: vec![1e3, 1e4, 1e5],
            n: 64,
            n_images: 1200,
            object_size: 0,
            probe_curvature: crate::physics::probe::DEFAULT_PROBE_CURVATURE,
            seed: 42,
        }
    }
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self {
            dense: Some(0.7),
            sparse: Some(0.2),
        }
    }
}

impl Default for TrainingSettings {
    fn default() -> Self {
        Self {
            epochs: 50,
            batch_size: 16,
            n_groups: 512,
            gridsize: 2,
            n_filters_scale: 2,
            probe_big: true,
            data: TrainingData::Scan,
            seed: 123,
            baseline: true,
        }
    }
}

impl Default for IterativeSettings {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Lsqml,
            epochs: 100,
            batch_size: 96,
        }
    }
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            ms_ssim_sigma: 1.0,
            stitch_crop: 20,
            register_iterative: true,
        }
    }
}

impl StudyConfig {
    /// Parse and check a study.toml; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, StudyError> {
        let config: Self = toml::from_str(text)
            .map_err(|e| StudyError::Input(format!("{what}: {}", e.to_string().trim_end())))?;
        config
            .validate()
            .map_err(|e| StudyError::Input(format!("{what}: {e}")))?;
        Ok(config)
    }

    pub fn read(path: &Path) -> Result<Self, StudyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the settings are plain data")
    }

    /// The overlap views in the plan's order, with their fractions.
    pub fn views(&self) -> Vec<(&'static str, f64)> {
        [("dense", self.views.dense), ("sparse", self.views.sparse)]
            .into_iter()
            .filter_map(|(name, f)| f.map(|f| (name, f)))
            .collect()
    }

    fn validate(&self) -> Result<(), String> {
        self.device
            .parse::<ptycho_kernels::DeviceChoice>()
            .map_err(|e| format!("device: {e}"))?;
        let s = &self.simulation;
        if s.doses.is_empty() {
            return Err("simulation.doses must not be empty".into());
        }
        if let Some(d) = s.doses.iter().find(|d| !(d.is_finite() && **d >= 1.0)) {
            return Err(format!(
                "simulation.doses: every dose must be at least 1 photon, got {d}"
            ));
        }
        let mut labels: Vec<u64> = s.doses.iter().map(|d| *d as u64).collect();
        labels.sort_unstable();
        if labels.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!(
                "simulation.doses: two doses share a folder dose_{{int}}: {:?}",
                s.doses
            ));
        }
        crate::model::check_n(s.n).map_err(|e| format!("simulation.n: {e}"))?;
        if s.n_images < 4 {
            return Err(format!(
                "simulation.n_images must be at least 4, got {}",
                s.n_images
            ));
        }
        if s.object_size != 0 && s.object_size < s.n + 2 {
            return Err(format!(
                "simulation.object_size {} must be larger than N = {} (or 0 for 4·N)",
                s.object_size, s.n
            ));
        }
        for (view, f) in self.views() {
            if !(0.0..1.0).contains(&f) {
                return Err(format!("views.{view} = {f} must be in [0, 1)"));
            }
        }
        if self.views().is_empty() {
            return Err("views: give at least one of dense, sparse".into());
        }
        let t = &self.training;
        if t.epochs == 0 || t.batch_size == 0 || t.n_groups == 0 {
            return Err("training.epochs, batch_size and n_groups must be at least 1".into());
        }
        if !(1..=2).contains(&t.gridsize) {
            return Err(format!(
                "training.gridsize must be 1 or 2, got {}",
                t.gridsize
            ));
        }
        if t.n_filters_scale == 0 || t.n_filters_scale > 16 {
            return Err(format!(
                "training.n_filters_scale must be in 1..=16, got {}",
                t.n_filters_scale
            ));
        }
        let i = &self.iterative;
        if i.epochs == 0 || i.batch_size == 0 {
            return Err("iterative.epochs and batch_size must be at least 1".into());
        }
        let m = &self.metrics;
        if !(m.ms_ssim_sigma.is_finite() && m.ms_ssim_sigma >= 0.0) {
            return Err(format!(
                "metrics.ms_ssim_sigma must be at least 0, got {}",
                m.ms_ssim_sigma
            ));
        }
        if m.stitch_crop == 0 || m.stitch_crop > s.n {
            return Err(format!(
                "metrics.stitch_crop must be in 1..=N ({}), got {}",
                s.n, m.stitch_crop
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_the_code_default_and_round_trips() {
        let parsed = StudyConfig::parse(DEFAULT_TOML, "default.toml").unwrap();
        assert_eq!(parsed, StudyConfig::default());
        let again = StudyConfig::parse(&parsed.to_toml(), "round trip").unwrap();
        assert_eq!(again, parsed);
        StudyConfig::parse(DEMO_TOML, "demo.toml").unwrap();
    }

    #[test]
    fn an_empty_file_is_the_default_and_bad_fields_are_named() {
        assert_eq!(StudyConfig::parse("", "x").unwrap(), StudyConfig::default());
        for (text, needle) in [
            (
                "[simulation]\ndoses = []",
                "simulation.doses must not be empty",
            ),
            ("[simulation]\ndoses = [1000.0, 1000.5]", "share a folder"),
            (
                "[views]\ndense = 1.5",
                "views.dense = 1.5 must be in [0, 1)",
            ),
            (
                "[training]\ngridsize = 3",
                "training.gridsize must be 1 or 2",
            ),
            ("[training]\nepoch = 3", "unknown field `epoch`"),
            ("[iterative]\nalgorithm = \"sgd\"", "unknown variant `sgd`"),
            ("device = \"tpu\"", "device"),
        ] {
            let e = StudyConfig::parse(text, "s.toml").unwrap_err().to_string();
            assert!(
                e.starts_with("s.toml: ") && e.contains(needle),
                "{text}: {e}"
            );
        }
    }
}
