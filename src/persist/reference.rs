//! Import of the reference's TensorFlow bundles (`wts.h5.zip` from PtychoPINN's ModelManager,
//! study-pipeline.md §5.1) into ours, reading only data: nothing in them is executed.
//!
//! What is read, from `diffraction_to_obj/`:
//! - `model.keras`, a zip of `config.json` (the functional graph: every layer with its class, its
//!   configuration and the layers it reads) and `model.weights.h5`, where each layer's variables are
//!   `layers/<snake_case(class)>[_i]/vars/<k>`, numbered in `model.layers` order, with the Keras layer
//!   name as the attribute `name` of `vars`. A Conv2D's kernel is `vars/0` (3, 3, cin, cout) and its
//!   bias `vars/1`, the shapes ours use.
//! - `model.h5`: the trained intensity scale, the root attribute `intensity_scale`.
//! - `params.dill`, a dill pickle of the reference's params.cfg, walked with [`pickle::parse`]: nphotons,
//!   the head activation and the flags checked below, and the probe, pickled as a TensorFlow tensor
//!   wrapping a numpy array.
//!
//! The reference's layer order is not ours: Keras orders a functional model's layers by depth, so the
//! amplitude and phase heads interleave. Each of our convolutions is therefore found by the graph: the
//! heads are the layers that feed the first and the second input of the CombineComplexLayer, and a
//! convolution is the one, in its part of the network, that reads (through pooling, upsampling,
//! slicing) the convolution already matched to our layer's predecessor, with our kernel shape. N,
//! gridsize, n_filters_scale and probe.big come from the graph and must agree with params.dill; every
//! convolution's settings (3 x 3, stride 1, 'same', bias, activation) are checked; a weighted layer that
//! is not one of ours is refused by name.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use hdf5_pure::File as H5File;
use ptycho_kernels::Complex32;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use super::bundle::{entry_names, save, Bundle, SavedBundle, BUNDLE_FILE};
use super::digest::sha256_file;
use super::output_dir::OutputDir;
use super::weights::NamedTensor;
use super::PersistError;
use crate::data::checked::CheckedNpz;
use crate::io::atomic::write_atomic;
use crate::io::npz::NpzFile;
use crate::io::pickle::{self, Value as Py};
use crate::model::{
    architecture, check_n, decoder_filters, encoder_filters, AmpActivation, Architecture, Layer,
    ModelConfig, ModelKind, Op,
};
use crate::physics::forward::{MAX_POSITION_JITTER, OFFSET};

/// The reference's model that maps diffraction to the object, the one imported.
const MODEL: &str = "diffraction_to_obj";

/// One of our convolutions and where its weights came from.
#[derive(Clone, Debug, Serialize)]
pub struct LayerMatch {
    pub ours: String,
    pub keras_layer: String,
    pub weights_group: String,
    pub kernel_shape: [usize; 4],
}

/// A converted bundle and how it was converted.
#[derive(Debug)]
pub struct Imported {
    pub bundle: Bundle,
    pub model: ModelConfig,
    pub layers: Vec<LayerMatch>,
    /// "params.dill" or the --probe-npz file.
    pub probe_source: String,
}

fn err(path: &Path, message: impl Into<String>) -> PersistError {
    PersistError::format(path.display(), message)
}

fn read_entry<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    what: &dyn Fn(String) -> PersistError,
) -> Result<Vec<u8>, PersistError> {
    let mut entry = zip
        .by_name(name)
        .map_err(|_| what(format!("has no '{name}'")))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| what(format!("{name}: {e}")))?;
    Ok(bytes)
}

/// A layer of the Keras functional graph.
struct KerasLayer {
    name: String,
    class: String,
    config: Json,
    /// The input shape the layer was built for.
    build_config: Json,
    /// The layers whose outputs this one reads.
    inputs: Vec<String>,
}

/// Every `keras_history` layer name under a node's arguments.
fn histories(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(m) => {
            if let Some(Json::Array(h)) = m.get("keras_history") {
                if let Some(name) = h.first().and_then(Json::as_str) {
                    out.push(name.to_string());
                }
            }
            m.values().for_each(|x| histories(x, out));
        }
        Json::Array(a) => a.iter().for_each(|x| histories(x, out)),
        _ => {}
    }
}

struct Graph {
    layers: Vec<KerasLayer>,
    index: HashMap<String, usize>,
}

impl Graph {
    fn parse(config: &Json) -> Result<Self, String> {
        if config["class_name"] != "Functional" {
            return Err(format!(
                "config.json describes a {} model, not the reference's functional one",
                config["class_name"]
            ));
        }
        let list = config["config"]["layers"]
            .as_array()
            .ok_or("config.json has no layer list")?;
        let mut layers = Vec::with_capacity(list.len());
        for l in list {
            let name = l["name"]
                .as_str()
                .or_else(|| l["config"]["name"].as_str())
                .ok_or("config.json has a layer without a name")?;
            let mut inputs = Vec::new();
            histories(&l["inbound_nodes"], &mut inputs);
            layers.push(KerasLayer {
                name: name.to_string(),
                class: l["class_name"].as_str().unwrap_or_default().to_string(),
                config: l["config"].clone(),
                build_config: l["build_config"].clone(),
                inputs,
            });
        }
        let index = layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.clone(), i))
            .collect();
        Ok(Self { layers, index })
    }

    fn layer(&self, name: &str) -> Option<&KerasLayer> {
        self.index.get(name).map(|&i| &self.layers[i])
    }

    fn convolutions(&self) -> Vec<&KerasLayer> {
        self.layers.iter().filter(|l| l.class == "Conv2D").collect()
    }

    /// `name` and every layer it depends on.
    fn ancestors(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            if let Some(l) = self.layer(&n) {
                todo.extend(l.inputs.iter().filter(|i| !seen.contains(*i)).cloned());
            }
            seen.insert(n);
        }
        seen
    }

    /// The nearest Conv2D layers `name` reads, through layers without weights.
    fn conv_parents(&self, name: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut todo: Vec<String> = self.layer(name).map_or(vec![], |l| l.inputs.clone());
        let mut seen = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            match self.layer(&n) {
                Some(l) if l.class == "Conv2D" => {
                    found.insert(n);
                }
                Some(l) => todo.extend(l.inputs.iter().cloned()),
                None => {}
            }
        }
        found
    }
}

fn conv_shape(l: &KerasLayer) -> Option<[usize; 4]> {
    let cout = l.config["filters"].as_u64()? as usize;
    let cin = l.build_config["input_shape"]
        .as_array()
        .and_then(|s| s.last())
        .and_then(Json::as_u64)? as usize;
    Some([3, 3, cin, cout])
}

/// The settings of a Conv2D that differ from ours, if any.
fn conv_settings_problem(l: &KerasLayer, activation: &str) -> Option<String> {
    let c = &l.config;
    let want = [
        ("kernel_size", json!([3, 3])),
        ("strides", json!([1, 1])),
        ("padding", json!("same")),
        ("use_bias", json!(true)),
        ("activation", json!(activation)),
    ];
    for (key, value) in want {
        if c[key] != value {
            return Some(format!("{key} is {}, ours is {value}", c[key]));
        }
    }
    if !c["dilation_rate"].is_null() && c["dilation_rate"] != json!([1, 1]) {
        return Some(format!("dilation_rate is {}", c["dilation_rate"]));
    }
    if !c["groups"].is_null() && c["groups"] != json!(1) {
        return Some(format!("groups is {}", c["groups"]));
    }
    if !c["data_format"].is_null() && c["data_format"] != json!("channels_last") {
        return Some(format!("data_format is {}", c["data_format"]));
    }
    None
}

/// The Keras weights file: for each layer name, its `vars` group.
struct Weights {
    file: H5File,
    groups: HashMap<String, String>,
    /// Groups holding variables, by path.
    weighted: BTreeSet<String>,
}

impl Weights {
    fn open(bytes: Vec<u8>, graph: &Graph) -> Result<Self, String> {
        let file = H5File::from_bytes(bytes)
            .map_err(|e| format!("model.weights.h5 is not a readable HDF5 file: {e}"))?;
        let top = file
            .group("layers")
            .map_err(|e| format!("model.weights.h5 has no 'layers' group ({e})"))?;
        let mut groups = HashMap::new();
        let mut weighted = BTreeSet::new();
        for g in top.groups().map_err(|e| e.to_string())? {
            let vars = format!("layers/{g}/vars");
            let Ok(group) = file.group(&vars) else {
                continue;
            };
            if !group.datasets().map_err(|e| e.to_string())?.is_empty() {
                weighted.insert(vars.clone());
            }
            let name = group
                .attrs()
                .ok()
                .and_then(|a| a.get("name").and_then(|v| v.as_str().map(String::from)));
            if let Some(name) = name {
                groups.insert(name, vars);
            }
        }
        // Without the name attributes (older Keras 3), the groups follow `model.layers` order, each
        // class counted apart: conv2d, conv2d_1, ...
        let mut counts: HashMap<String, usize> = HashMap::new();
        for l in &graph.layers {
            if groups.contains_key(&l.name) {
                continue;
            }
            let snake = snake_case(&l.class);
            let k = counts.entry(snake.clone()).or_insert(0);
            let path = if *k == 0 {
                format!("layers/{snake}/vars")
            } else {
                format!("layers/{snake}_{k}/vars")
            };
            *k += 1;
            if weighted.contains(&path) && !groups.values().any(|p| p == &path) {
                groups.insert(l.name.clone(), path);
            }
        }
        Ok(Self {
            file,
            groups,
            weighted,
        })
    }

    fn tensor(&self, path: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let d = self
            .file
            .dataset(path)
            .map_err(|e| format!("model.weights.h5 has no {path} ({e})"))?;
        let found: Vec<usize> = d
            .shape()
            .map_err(|e| format!("{path}: {e}"))?
            .into_iter()
            .map(|x| x as usize)
            .collect();
        if found != shape {
            return Err(format!(
                "{path} has shape {found:?}, the layer needs {shape:?}"
            ));
        }
        d.read_f32()
            .map_err(|e| format!("{path}: not float32 values ({e})"))
    }
}

/// Keras's `to_snake_case` of a class name: "Conv2D" → "conv2d", "MaxPooling2D" → "max_pooling2d".
fn snake_case(class: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = class.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // Keras: "(.)([A-Z][a-z]+)" → "\1_\2", then "([a-z])([A-Z])" → "\1_\2".
        if c.is_ascii_uppercase() && i > 0 {
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if next_lower || chars[i - 1].is_ascii_lowercase() {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Our convolution that feeds layer `i` (through pooling, upsampling, slicing, padding).
fn our_conv_parent(layers: &[Layer], i: usize) -> Option<usize> {
    let source = |i: usize| layers[i].input.or(i.checked_sub(1));
    let mut j = source(i);
    while let Some(k) = j {
        if matches!(layers[k].op, Op::Conv { .. }) {
            return Some(k);
        }
        j = source(k);
    }
    None
}

/// A params.dict entry read by key, with the names the reference has used for it.
fn param<'a>(params: &'a Py, keys: &[&str]) -> Option<&'a Py> {
    keys.iter().find_map(|k| params.get(k))
}

fn probe_from(value: &Py, n: usize) -> Result<Vec<Complex32>, String> {
    let a = value
        .ndarray()
        .ok_or("'probe' is not a numpy array or a tensor wrapping one")?;
    let squeezed: Vec<usize> = a.shape.iter().copied().filter(|&d| d != 1).collect();
    if squeezed != [n, n] || a.fortran_order {
        return Err(format!(
            "'probe' has shape {:?}{}, expected ({n}, {n}) or ({n}, {n}, 1)",
            a.shape,
            if a.fortran_order {
                " in Fortran order"
            } else {
                ""
            }
        ));
    }
    match a.dtype.as_str() {
        "<c8" => Ok(a
            .data
            .chunks_exact(8)
            .map(|c| {
                Complex32::new(
                    f32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                    f32::from_le_bytes(c[4..].try_into().expect("4 bytes")),
                )
            })
            .collect()),
        "<c16" => Ok(a
            .data
            .chunks_exact(16)
            .map(|c| {
                Complex32::new(
                    f64::from_le_bytes(c[..8].try_into().expect("8 bytes")) as f32,
                    f64::from_le_bytes(c[8..].try_into().expect("8 bytes")) as f32,
                )
            })
            .collect()),
        other => Err(format!("'probe' has dtype {other}, expected complex64")),
    }
    .and_then(|p: Vec<Complex32>| {
        if p.len() == n * n {
            Ok(p)
        } else {
            Err("'probe' is truncated".into())
        }
    })
}

fn probe_from_npz(path: &Path, n: usize) -> Result<Vec<Complex32>, PersistError> {
    let npz = NpzFile::open(path).map_err(|e| PersistError::Invalid(e.to_string()))?;
    let ctx = CheckedNpz::new(&npz, path);
    let key = if ctx.has("probeGuess") {
        "probeGuess"
    } else {
        "probe"
    };
    let (shape, probe) = ctx
        .complex(key, "the probe, (N, N) complex")
        .map_err(|e| PersistError::Invalid(e.to_string()))?;
    if shape != [n, n] {
        return Err(err(
            path,
            format!("{key} has shape {shape:?}, the model needs ({n}, {n})"),
        ));
    }
    Ok(probe)
}

/// What the Keras graph says of the model.
struct GraphModel {
    n: usize,
    gridsize: usize,
    n_filters_scale: usize,
    probe_big: bool,
}

/// The layers feeding the amplitude and the phase inputs of the CombineComplexLayer.
struct Parts {
    amp: BTreeSet<String>,
    phase: BTreeSet<String>,
}

impl Parts {
    /// The part of our network a layer belongs to: "encoder" (both heads read it), "amplitude",
    /// "phase", or "none".
    fn of(&self, name: &str) -> &'static str {
        match (self.amp.contains(name), self.phase.contains(name)) {
            (true, true) => "encoder",
            (true, false) => "amplitude",
            (false, true) => "phase",
            (false, false) => "none",
        }
    }
}

/// The model the graph describes: N and C from the input layer, the heads from the
/// CombineComplexLayer's inputs, n_filters_scale from the first convolution, probe.big from the
/// amplitude head's convolutions.
fn model_of(graph: &Graph, config: &Json) -> Result<(GraphModel, Parts), String> {
    let input = config["config"]["input_layers"][0][0]
        .as_str()
        .and_then(|n| graph.layer(n))
        .ok_or("config.json names no input layer")?;
    let input_shape: Vec<u64> = input.config["batch_shape"]
        .as_array()
        .or_else(|| input.config["batch_input_shape"].as_array())
        .map(|s| s.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default();
    let [n, n2, c] = input_shape[..] else {
        return Err(format!(
            "input layer '{}' has shape {:?}, expected (N, N, C)",
            input.name, input.config["batch_shape"]
        ));
    };
    let (n, c) = (n as usize, c as usize);
    let gridsize = match c {
        1 => 1,
        4 => 2,
        _ => 0,
    };
    if n2 as usize != n || gridsize == 0 {
        return Err(format!(
            "input layer '{}' is {n} x {n2} x {c}: expected N x N x C with C = 1 or 4",
            input.name
        ));
    }
    let combine: Vec<&KerasLayer> = graph
        .layers
        .iter()
        .filter(|l| l.class == "CombineComplexLayer")
        .collect();
    let [combine] = combine[..] else {
        return Err(format!(
            "expected one CombineComplexLayer joining amplitude and phase, found {}",
            combine.len()
        ));
    };
    let [amp_out, phase_out] = &combine.inputs[..] else {
        return Err(format!(
            "CombineComplexLayer '{}' reads {:?}, expected amplitude and phase",
            combine.name, combine.inputs
        ));
    };
    let (amp, phase) = (graph.ancestors(amp_out), graph.ancestors(phase_out));
    let convs = graph.convolutions();
    let parts = Parts { amp, phase };
    let first = convs
        .iter()
        .find(|l| graph.conv_parents(&l.name).is_empty() && parts.of(&l.name) == "encoder")
        .ok_or("no first encoder convolution")?;
    let filters0 = first.config["filters"].as_u64().unwrap_or(0) as usize;
    check_n(n).map_err(|e| e.to_string())?;
    let ladder0 = encoder_filters(n)[0];
    if filters0 == 0 || !filters0.is_multiple_of(ladder0) {
        return Err(format!(
            "first convolution '{}' has {filters0} filters, not a multiple of {ladder0}: not the \
             reference's CNN",
            first.name
        ));
    }
    let n_filters_scale = filters0 / ladder0;
    let amp_convs = convs
        .iter()
        .filter(|l| parts.of(&l.name) == "amplitude")
        .count();
    let plain = 2 * decoder_filters(n).len() + 1;
    let probe_big = match amp_convs {
        k if k == plain => false,
        k if k == plain + 3 => true,
        k => {
            return Err(format!(
                "the amplitude head has {k} convolutions; the reference's CNN has {plain} \
                 ({} with probe.big)",
                plain + 3
            ))
        }
    };

    Ok((
        GraphModel {
            n,
            gridsize,
            n_filters_scale,
            probe_big,
        },
        parts,
    ))
}

/// The head activation, after checking that params.dill agrees with the graph and describes what
/// our network does.
fn check_params(params: &Py, found: &GraphModel) -> Result<AmpActivation, String> {
    let number = |keys: &[&str]| param(params, keys).and_then(Py::number);
    let flag = |keys: &[&str]| param(params, keys).and_then(Py::as_bool);
    for (keys, found) in [
        (&["N"][..], found.n as f64),
        (&["gridsize"][..], found.gridsize as f64),
        (&["n_filters_scale"][..], found.n_filters_scale as f64),
    ] {
        if let Some(v) = number(keys) {
            if v != found {
                return Err(format!(
                    "{} = {v}, but the network in model.keras has {found}",
                    keys[0]
                ));
            }
        }
    }
    if let Some(v) = flag(&["probe.big", "probe_big"]) {
        if v != found.probe_big {
            return Err(format!(
                "probe.big = {v}, but the network in model.keras {} the ring branch",
                if found.probe_big { "has" } else { "lacks" }
            ));
        }
    }
    for (keys, what) in [
        (
            &["object.big", "object_big"][..],
            "object.big = False (one patch per group, no merge)",
        ),
        (
            &["pad_object"][..],
            "pad_object = False (heads without the zero-padded centre)",
        ),
    ] {
        if flag(keys) == Some(false) {
            return Err(format!("{what} is not supported"));
        }
    }
    for (key, ours) in [
        ("offset", OFFSET),
        ("max_position_jitter", MAX_POSITION_JITTER),
    ] {
        if let Some(v) = number(&[key]) {
            if v != ours as f64 {
                return Err(format!(
                    "{key} = {v}: our canvas is sized by {key} = {ours}"
                ));
            }
        }
    }
    Ok(
        match param(params, &["amp_activation"]).map(|v| v.as_str()) {
            None | Some(Some("sigmoid")) => AmpActivation::Sigmoid,
            Some(Some("swish")) => AmpActivation::Swish,
            Some(Some("softplus")) => AmpActivation::Softplus,
            Some(Some("relu")) => AmpActivation::Relu,
            Some(other) => {
                return Err(format!(
                    "amp_activation {other:?}: expected sigmoid, swish, softplus or relu"
                ))
            }
        },
    )
}

/// Our convolutions, each found in the graph after its predecessor, with their weights; every
/// weighted group of the file must be used.
fn match_convolutions(
    graph: &Graph,
    weights: &Weights,
    parts: &Parts,
    arch: &Architecture,
) -> Result<(Vec<NamedTensor>, Vec<LayerMatch>), String> {
    let convs = graph.convolutions();
    let mut matched: HashMap<usize, String> = HashMap::new();
    let mut tensors = Vec::new();
    let mut layers = Vec::new();
    let mut used = BTreeSet::new();
    for (i, layer) in arch.layers.iter().enumerate() {
        let (
            Some(shape),
            Op::Conv {
                activation_name, ..
            },
        ) = (layer.kernel_shape(), &layer.op)
        else {
            continue;
        };
        let part = layer.name.split('/').next().unwrap_or_default();
        let parent: BTreeSet<String> = our_conv_parent(&arch.layers, i)
            .map(|p| BTreeSet::from([matched[&p].clone()]))
            .unwrap_or_default();
        let candidates: Vec<&&KerasLayer> = convs
            .iter()
            .filter(|l| {
                !used.contains(&l.name)
                    && parts.of(&l.name) == part
                    && graph.conv_parents(&l.name) == parent
            })
            .collect();
        let fitting: Vec<&&KerasLayer> = candidates
            .iter()
            .copied()
            .filter(|l| conv_shape(l) == Some(shape))
            .collect();
        let keras =
            match fitting[..] {
                [one] => one,
                [] => {
                    let seen: Vec<String> = candidates
                        .iter()
                        .map(|l| format!("'{}' {:?}", l.name, conv_shape(l)))
                        .collect();
                    return Err(format!(
                    "no Conv2D fits our layer '{}' (kernel {shape:?}, after {}); candidates: {}",
                    layer.name,
                    parent.iter().next().map_or("the input", |s| s.as_str()),
                    if seen.is_empty() { "none".into() } else { seen.join(", ") }
                ));
                }
                _ => {
                    return Err(format!(
                        "several Conv2D layers fit our layer '{}': {:?}",
                        layer.name,
                        fitting.iter().map(|l| &l.name).collect::<Vec<_>>()
                    ))
                }
            };
        let keras_activation = if *activation_name == "relu" {
            "relu"
        } else {
            "linear"
        };
        if let Some(problem) = conv_settings_problem(keras, keras_activation) {
            return Err(format!(
                "Conv2D '{}' (our '{}'): {problem}",
                keras.name, layer.name
            ));
        }
        let group = weights.groups.get(&keras.name).ok_or_else(|| {
            format!(
                "model.weights.h5 holds no variables for Conv2D '{}'",
                keras.name
            )
        })?;
        let kernel = weights.tensor(&format!("{group}/0"), &shape)?;
        let bias = weights.tensor(&format!("{group}/1"), &[shape[3]])?;
        tensors.push(NamedTensor::new(
            format!("{}/kernel", layer.name),
            &shape,
            kernel,
        ));
        tensors.push(NamedTensor::new(
            format!("{}/bias", layer.name),
            &[shape[3]],
            bias,
        ));
        used.insert(keras.name.clone());
        matched.insert(i, keras.name.clone());
        layers.push(LayerMatch {
            ours: layer.name.clone(),
            keras_layer: keras.name.clone(),
            weights_group: group.trim_end_matches("/vars").to_string(),
            kernel_shape: shape,
        });
    }
    let claimed: BTreeSet<&String> = used.iter().filter_map(|n| weights.groups.get(n)).collect();
    if let Some(extra) = weights.weighted.iter().find(|g| !claimed.contains(g)) {
        let owner = weights
            .groups
            .iter()
            .find(|(_, g)| g == &extra)
            .and_then(|(name, _)| graph.layer(name))
            .map_or(String::new(), |l| {
                format!(" (layer '{}', {})", l.name, l.class)
            });
        return Err(format!(
            "model.weights.h5 holds weights in {extra}{owner}, which our network has no place for"
        ));
    }

    Ok((tensors, layers))
}

/// Convert the reference bundle at `path`. The probe comes from params.dill, or from `probe_npz` when
/// given (its `probeGuess` or `probe`), which then takes precedence.
pub fn import(path: &Path, probe_npz: Option<&Path>) -> Result<Imported, PersistError> {
    let shown = path.display().to_string();
    let outer_err = |m: String| err(path, m);
    let file = std::fs::File::open(path).map_err(|e| PersistError::io(&shown, e))?;
    let mut outer = zip::ZipArchive::new(file).map_err(|e| {
        err(
            path,
            format!("not a zip archive ({e}); expected the reference's wts.h5.zip"),
        )
    })?;
    let names = entry_names(&outer, path)?;
    if names.iter().any(|n| n == "manifest.json")
        && names.iter().any(|n| n.ends_with("/weights.h5"))
    {
        return Err(err(
            path,
            "this is already a ptycho bundle: use it as it is",
        ));
    }
    if names.iter().any(|n| n == &format!("{MODEL}/model.pth")) {
        return Err(err(
            path,
            "a PtychoPINN PyTorch bundle (model.pth): only the TensorFlow bundles are imported",
        ));
    }
    let keras_bytes = read_entry(&mut outer, &format!("{MODEL}/model.keras"), &outer_err)?;
    let params_bytes = read_entry(&mut outer, &format!("{MODEL}/params.dill"), &outer_err)?;
    let inner_err = |m: String| err(path, format!("{MODEL}/model.keras: {m}"));
    let mut inner = zip::ZipArchive::new(std::io::Cursor::new(keras_bytes))
        .map_err(|e| inner_err(format!("not a Keras 3 archive ({e})")))?;
    let config: Json = serde_json::from_slice(&read_entry(&mut inner, "config.json", &inner_err)?)
        .map_err(|e| inner_err(format!("config.json is not JSON ({e})")))?;
    let graph = Graph::parse(&config).map_err(&inner_err)?;
    let weights = Weights::open(
        read_entry(&mut inner, "model.weights.h5", &inner_err)?,
        &graph,
    )
    .map_err(&inner_err)?;
    let params =
        pickle::parse(&params_bytes).map_err(|e| err(path, format!("{MODEL}/params.dill: {e}")))?;
    if !matches!(params, Py::Dict(_)) {
        return Err(err(path, format!("{MODEL}/params.dill is not a dict")));
    }
    let params_err = |m: String| err(path, format!("{MODEL}/params.dill: {m}"));

    let (found, parts) = model_of(&graph, &config).map_err(&inner_err)?;
    let amp_activation = check_params(&params, &found).map_err(&params_err)?;
    let GraphModel {
        n,
        gridsize,
        n_filters_scale,
        probe_big,
    } = found;
    let model = ModelConfig {
        kind: ModelKind::Pinn,
        n,
        gridsize,
        n_filters_scale,
        probe_big,
        amp_activation,
    };
    let arch = architecture(&model).map_err(|e| inner_err(e.to_string()))?;
    let (tensors, layers) =
        match_convolutions(&graph, &weights, &parts, &arch).map_err(&inner_err)?;
    let number = |keys: &[&str]| param(&params, keys).and_then(Py::number);
    let flag = |keys: &[&str]| param(&params, keys).and_then(Py::as_bool);

    let intensity_scale = match read_entry(&mut outer, &format!("{MODEL}/model.h5"), &outer_err) {
        Ok(bytes) => H5File::from_bytes(bytes)
            .ok()
            .and_then(|f| f.root().attrs().ok())
            .and_then(|a| a.get("intensity_scale").and_then(|v| v.as_f64())),
        Err(_) => None,
    }
    .or_else(|| number(&["intensity_scale"]))
    .filter(|s| s.is_finite() && *s > 0.0)
    .ok_or_else(|| {
        err(
            path,
            format!(
                "no positive intensity scale: neither {MODEL}/model.h5 (attribute \
                 intensity_scale) nor params.dill holds one"
            ),
        )
    })?;
    let nphotons = number(&["nphotons"]);
    let (probe, probe_source) = match probe_npz {
        Some(p) => (probe_from_npz(p, n)?, p.display().to_string()),
        None => {
            let probe = match param(&params, &["probe"]) {
                Some(v) => probe_from(v, n),
                None => Err("it holds no 'probe'".to_string()),
            }
            .map_err(|m| {
                params_err(format!(
                    "the probe cannot be recovered: {m}; give it with --probe-npz P (an NPZ \
                     holding probeGuess, ({n}, {n}) complex)"
                ))
            })?;
            (probe, format!("{MODEL}/params.dill"))
        }
    };
    let (sha256, size) = sha256_file(path).map_err(|e| PersistError::io(&shown, e))?;
    let mut our_params = Map::new();
    let mut put = |k: &str, v: Json| {
        our_params.insert(k.to_string(), v);
    };
    put("N", json!(n));
    put("gridsize", json!(gridsize));
    put("model_type", json!(ModelKind::Pinn.name()));
    put("n_filters_scale", json!(n_filters_scale));
    put("probe_big", json!(probe_big));
    put("amp_activation", json!(amp_activation));
    put("intensity_scale", json!(intensity_scale as f32));
    if let Some(v) = nphotons {
        put("nphotons", json!(v));
    }
    put("offset", json!(OFFSET));
    put("max_position_jitter", json!(MAX_POSITION_JITTER));
    if let Some(v) = number(&["probe_scale"]) {
        put("probe_scale", json!(v));
    }
    put("object_big", json!(true));
    put("pad_object", json!(true));
    if let Some(v) = flag(&["probe.mask", "probe_mask"]) {
        put("probe_mask", json!(v));
    }
    if let Some(v) = number(&["gaussian_smoothing_sigma"]) {
        put("gaussian_smoothing_sigma", json!(v));
    }
    put("backend", json!("tensorflow"));
    put(
        "imported_from",
        json!({
            "path": shown, "sha256": sha256, "size_bytes": size,
            "format": "PtychoPINN TensorFlow ModelManager bundle", "model": MODEL,
            "probe": probe_source,
        }),
    );
    Ok(Imported {
        bundle: Bundle {
            params: our_params,
            weights: tensors,
            probe,
            optimizer: None,
        },
        model,
        layers,
        probe_source,
    })
}

/// What `ptycho import-bundle` wrote.
#[derive(Debug, Serialize)]
pub struct ImportSummary {
    pub bundle: SavedBundle,
    pub model: ModelConfig,
    pub intensity_scale: f32,
    pub probe_source: String,
    pub layers: Vec<LayerMatch>,
}

/// The files [`import_bundle`] writes into its output folder.
pub const OUTPUTS: [&str; 3] = [BUNDLE_FILE, "wts.h5.zip.sha256", "import.json"];

/// Convert the reference bundle at `reference` into `output_dir/wts.h5.zip`, with `import.json`
/// beside it (the source's digest, the model, and which Keras layer filled each of ours). The folder
/// is locked; bundles already there are kept unless `overwrite`.
pub fn import_bundle(
    reference: &Path,
    output_dir: &Path,
    probe_npz: Option<&Path>,
    overwrite: bool,
) -> Result<ImportSummary, PersistError> {
    let out = OutputDir::lock(output_dir)?;
    out.refuse_existing(&OUTPUTS, overwrite, "--overwrite")?;
    let imported = import(reference, probe_npz)?;
    let saved = save(out.path(), &imported.bundle)?;
    let summary = ImportSummary {
        bundle: saved,
        intensity_scale: imported.bundle.params["intensity_scale"]
            .as_f64()
            .unwrap_or_default() as f32,
        model: imported.model,
        probe_source: imported.probe_source,
        layers: imported.layers,
    };
    let report = json!({
        "source": imported.bundle.params["imported_from"],
        "bundle": summary.bundle,
        "model": summary.model,
        "intensity_scale": summary.intensity_scale,
        "layers": summary.layers,
    });
    let path = out.join("import.json");
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&report).expect("plain data"),
    )
    .map_err(|e| PersistError::io(path.display(), e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn layer_classes_are_snake_cased_as_keras_does() {
        for (class, snake) in [
            ("Conv2D", "conv2d"),
            ("MaxPooling2D", "max_pooling2d"),
            ("UpSampling2D", "up_sampling2d"),
            ("CombineComplexLayer", "combine_complex_layer"),
            ("IntensityScaler_inv", "intensity_scaler_inv"),
        ] {
            assert_eq!(snake_case(class), snake);
        }
    }
}
