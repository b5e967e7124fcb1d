//! A bundle's `params.json`: the model configuration and the training record, written by training and
//! read back by inference and by a resumed run, in this one place. The keys follow the reference's
//! params.cfg where it has them (`N`, `gridsize`, `n_filters_scale`, `nphotons`, `intensity_scale`,
//! `offset`, `max_position_jitter`, `probe_scale`, `object_big`, `pad_object`); the rest are ours.

use serde_json::{json, Map, Value};

use super::{AmpActivation, ModelConfig, ModelError, ModelKind};
use crate::physics::forward::{MAX_POSITION_JITTER, OFFSET};
use crate::physics::probe::DEFAULT_PROBE_SCALE;

/// What a training run records beside the model configuration.
pub struct TrainingRecord {
    pub nphotons: f64,
    pub intensity_scale: f32,
    pub n_groups: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// One `{path, sha256, size_bytes}` per training shard.
    pub train_data: Vec<Value>,
}

/// The params.json of a model trained as `record` says.
pub fn bundle_params(model: &ModelConfig, record: &TrainingRecord) -> Map<String, Value> {
    let params = json!({
        "N": model.n, "gridsize": model.gridsize, "model_type": model.kind.name(),
        "n_filters_scale": model.n_filters_scale, "probe_big": model.probe_big,
        "amp_activation": model.amp_activation, "nphotons": record.nphotons,
        "intensity_scale": record.intensity_scale, "offset": OFFSET,
        "max_position_jitter": MAX_POSITION_JITTER, "probe_scale": DEFAULT_PROBE_SCALE,
        "object_big": true, "pad_object": true, "n_groups": record.n_groups,
        "batch_size": record.batch_size, "seed": record.seed, "train_data": record.train_data,
        "backend": "wgpu",
    });
    match params {
        Value::Object(map) => map,
        _ => unreachable!("json!({{...}}) is an object"),
    }
}

/// The model configuration a bundle's params.json describes.
pub fn model_config(params: &Map<String, Value>) -> Result<ModelConfig, ModelError> {
    let invalid = |message: String| ModelError::Params(message);
    let int = |k: &str| params.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    let amp = match params.get("amp_activation").and_then(|v| v.as_str()) {
        None | Some("sigmoid") => AmpActivation::Sigmoid,
        Some("swish") => AmpActivation::Swish,
        Some("softplus") => AmpActivation::Softplus,
        Some("relu") => AmpActivation::Relu,
        Some(other) => {
            return Err(invalid(format!(
                "unknown amp_activation '{other}' in params.json"
            )))
        }
    };
    let kind = match params.get("model_type").and_then(|v| v.as_str()) {
        Some("pinn") => ModelKind::Pinn,
        Some("baseline") => ModelKind::Baseline,
        other => {
            return Err(invalid(format!(
                "model_type {other:?} in params.json: expected \"pinn\" or \"baseline\""
            )))
        }
    };
    Ok(ModelConfig {
        kind,
        n: int("N").ok_or_else(|| invalid("params.json lacks N".into()))?,
        gridsize: int("gridsize").ok_or_else(|| invalid("params.json lacks gridsize".into()))?,
        n_filters_scale: int("n_filters_scale").unwrap_or(2),
        probe_big: params
            .get("probe_big")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        amp_activation: amp,
    })
}

/// The photons per pattern a model was trained at.
pub fn nphotons(params: &Map<String, Value>) -> Option<f64> {
    params.get("nphotons").and_then(Value::as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_params_a_run_writes_read_back_as_the_same_model() {
        let model = ModelConfig {
            kind: ModelKind::Baseline,
            n: 64,
            gridsize: 2,
            n_filters_scale: 1,
            probe_big: true,
            amp_activation: AmpActivation::Swish,
        };
        let record = TrainingRecord {
            nphotons: 1e4,
            intensity_scale: 3.125,
            n_groups: 10,
            batch_size: 4,
            seed: 7,
            train_data: vec![],
        };
        let params = bundle_params(&model, &record);
        assert_eq!(model_config(&params).unwrap(), model);
        assert_eq!(nphotons(&params), Some(1e4));

        let mut broken = params.clone();
        broken.remove("N");
        assert_eq!(
            model_config(&broken).unwrap_err().to_string(),
            "params.json lacks N"
        );
    }
}
