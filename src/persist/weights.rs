//! Named float32 tensors in an HDF5 file (written with the pure-Rust `hdf5-pure`, so no C library is
//! needed): one dataset per tensor, its name the layer path ("encoder/conv_1a/kernel" is the dataset
//! `kernel` in the group `encoder/conv_1a`), with `shape` and `dtype` attributes. h5py reads it.

use std::collections::BTreeMap;

use hdf5_pure::{AttrValue, File, FileBuilder, GroupBuilder};

use super::PersistError;

/// A tensor with its layer-path name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, shape: &[usize], data: Vec<f32>) -> Self {
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            data,
        }
    }
}

/// A group's children: datasets by name, subgroups by name.
#[derive(Default)]
struct Node<'a> {
    datasets: BTreeMap<&'a str, &'a NamedTensor>,
    groups: BTreeMap<&'a str, Node<'a>>,
}

fn check(t: &NamedTensor) -> Result<(), PersistError> {
    let parts: Vec<&str> = t.name.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(PersistError::Invalid(format!(
            "tensor name '{}' must be a '/'-separated path of non-empty names",
            t.name
        )));
    }
    let expected: usize = t.shape.iter().product();
    if expected != t.data.len() {
        return Err(PersistError::Invalid(format!(
            "tensor '{}': shape {:?} needs {expected} values, found {}",
            t.name,
            t.shape,
            t.data.len()
        )));
    }
    Ok(())
}

fn fill_dataset(b: &mut hdf5_pure::DatasetBuilder, t: &NamedTensor) {
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    b.with_f32_data(&t.data)
        .with_shape(&shape)
        .set_attr(
            "shape",
            AttrValue::I64Array(t.shape.iter().map(|&d| d as i64).collect()),
        )
        .set_attr("dtype", AttrValue::String("float32".into()));
}

fn build_group(mut g: GroupBuilder, node: &Node) -> hdf5_pure::FinishedGroup {
    for (name, t) in &node.datasets {
        fill_dataset(g.create_dataset(name), t);
    }
    for (name, child) in &node.groups {
        let sub = g.create_group(name);
        g.add_group(build_group(sub, child));
    }
    g.finish()
}

/// The HDF5 file's bytes for `tensors`, with string attributes `attrs` on the root group.
pub fn write(tensors: &[NamedTensor], attrs: &[(&str, String)]) -> Result<Vec<u8>, PersistError> {
    let mut root = Node::default();
    let mut seen = std::collections::HashSet::new();
    for t in tensors {
        check(t)?;
        if !seen.insert(t.name.as_str()) {
            return Err(PersistError::Invalid(format!(
                "tensor name '{}' appears twice",
                t.name
            )));
        }
        let mut parts: Vec<&str> = t.name.split('/').collect();
        let leaf = parts.pop().expect("checked non-empty");
        let mut node = &mut root;
        for p in parts {
            node = node.groups.entry(p).or_default();
        }
        if node.groups.contains_key(leaf) {
            return Err(PersistError::Invalid(format!(
                "tensor name '{}' is also a group",
                t.name
            )));
        }
        node.datasets.insert(leaf, t);
    }
    let mut file = FileBuilder::new();
    for (key, value) in attrs {
        file.set_attr(key, AttrValue::String(value.clone()));
    }
    for (name, t) in &root.datasets {
        fill_dataset(file.create_dataset(name), t);
    }
    for (name, child) in &root.groups {
        let g = file.create_group(name);
        file.add_group(build_group(g, child));
    }
    file.finish()
        .map_err(|e| PersistError::Invalid(format!("encoding HDF5: {e}")))
}

/// Every float32 dataset of an HDF5 file, by path, sorted by name. `what` names the file in errors.
pub fn read(bytes: Vec<u8>, what: &str) -> Result<Vec<NamedTensor>, PersistError> {
    let bad = |m: String| PersistError::Format {
        file: what.to_string(),
        message: m,
    };
    let file =
        File::from_bytes(bytes).map_err(|e| bad(format!("not a readable HDF5 file: {e}")))?;
    let mut out = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(prefix) = pending.pop() {
        let group = if prefix.is_empty() {
            file.root()
        } else {
            file.group(&prefix)
                .map_err(|e| bad(format!("group '{prefix}': {e}")))?
        };
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            }
        };
        for name in group
            .datasets()
            .map_err(|e| bad(format!("listing '{prefix}': {e}")))?
        {
            let path = join(&name);
            let ds = file
                .dataset(&path)
                .map_err(|e| bad(format!("dataset '{path}': {e}")))?;
            let shape: Vec<usize> = ds
                .shape()
                .map_err(|e| bad(format!("dataset '{path}': {e}")))?
                .iter()
                .map(|&d| d as usize)
                .collect();
            let data = ds
                .read_f32()
                .map_err(|e| bad(format!("dataset '{path}' is not float32 data: {e}")))?;
            if data.len() != shape.iter().product::<usize>() {
                return Err(bad(format!(
                    "dataset '{path}': {} values for shape {shape:?}",
                    data.len()
                )));
            }
            out.push(NamedTensor {
                name: path,
                shape,
                data,
            });
        }
        for name in group
            .groups()
            .map_err(|e| bad(format!("listing '{prefix}': {e}")))?
        {
            pending.push(join(&name));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
