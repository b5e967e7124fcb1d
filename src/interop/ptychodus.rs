//! Ptychodus 1.7's HDF5 files, read and written as its own `save_product` / `save_diffraction_data`
//! do (layout in ../shared/fixtures/ptychodus/SCHEMA.txt):
//!
//! - a product (`product.h5`): root attributes (name, comments, geometry, far_field), the probe
//!   positions in metres about the object's centre, the probe (modes..., N, N) and the object
//!   (layers, H, W) as complex64 compounds `{r, i}`, and the loss curve;
//! - a diffraction file (`diffraction.h5`): `patterns` (M, N, N) uint32 counts, `indexes`,
//!   `bad_pixels`, LZF-compressed.

use std::collections::HashMap;
use std::path::Path;

use hdf5_pure::{AttrValue, CompoundTypeBuilder, DType, EnumTypeBuilder, File, FileBuilder};
use ptycho_kernels::Complex32;

use super::InteropError;
use crate::io::atomic::write_atomic;

/// A complex array with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ComplexArray {
    pub shape: Vec<usize>,
    pub data: Vec<Complex32>,
}

/// Everything a Ptychodus product file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub name: String,
    pub comments: String,
    pub detector_object_distance_m: f64,
    pub photon_energy_ev: f64,
    pub probe_photon_count: f64,
    pub exposure_time_s: f64,
    pub mass_attenuation_m2_per_kg: f64,
    pub tomography_angle_deg: f64,
    pub focus_object_distance_m: f64,
    pub tilt_angle_deg: f64,
    pub far_field: bool,
    pub position_indexes: Vec<i64>,
    pub position_x_m: Vec<f64>,
    pub position_y_m: Vec<f64>,
    /// Photons of each position's pattern, when known.
    pub position_photon_counts: Option<Vec<f64>>,
    /// (modes..., N, N).
    pub probe: ComplexArray,
    /// (width, height) of a probe pixel in metres.
    pub probe_pixel_m: [f64; 2],
    /// (layers, H, W).
    pub object: ComplexArray,
    /// (x, y) of the object's centre in metres.
    pub object_center_m: [f64; 2],
    /// (width, height) of an object pixel in metres.
    pub object_pixel_m: [f64; 2],
    pub object_layer_spacing_m: Vec<f64>,
    pub loss_epochs: Vec<i64>,
    pub loss_values: Vec<f64>,
    /// This project's root attribute `ptycho_count_scale` (s: counts = (s·amplitude)²); Ptychodus
    /// ignores it.
    pub count_scale: Option<f64>,
}

/// The root attribute recording the count scale.
pub const COUNT_SCALE_ATTR: &str = "ptycho_count_scale";

/// Everything a Ptychodus diffraction file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Diffraction {
    /// (M, N, N) photon counts.
    pub patterns: Vec<u32>,
    pub shape: [usize; 3],
    pub indexes: Vec<i64>,
    /// (N, N), true where a detector pixel is bad.
    pub bad_pixels: Vec<bool>,
    /// (width, height) of a detector pixel in metres.
    pub detector_pixel_m: [f64; 2],
}

/// Planck's constant times the speed of light over the elementary charge, in eV·m, from the exact SI
/// values (as Ptychodus computes it).
const HC_EV_M: f64 = 6.626_070_15e-34 * 299_792_458.0 / 1.602_176_634e-19;

/// The object pixel of a far-field geometry: λ·z / (N·d).
pub fn object_pixel_m(
    photon_energy_ev: f64,
    detector_distance_m: f64,
    n: usize,
    detector_pixel_m: f64,
) -> f64 {
    HC_EV_M / photon_energy_ev * detector_distance_m / (n as f64 * detector_pixel_m)
}

struct Reader<'a> {
    file: File,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn open(path: &'a Path) -> Result<Self, InteropError> {
        let file = File::open(path)
            .map_err(|e| InteropError::file(path, format!("not a readable HDF5 file: {e}")))?;
        Ok(Self { file, path })
    }

    fn err(&self, message: impl std::fmt::Display) -> InteropError {
        InteropError::file(self.path, message)
    }

    fn dataset(&self, key: &str) -> Result<hdf5_pure::Dataset, InteropError> {
        self.file
            .dataset(key)
            .map_err(|e| self.err(format!("no dataset '{key}' ({e})")))
    }

    fn shape(&self, key: &str) -> Result<Vec<usize>, InteropError> {
        let shape = self
            .dataset(key)?
            .shape()
            .map_err(|e| self.err(format!("{key}: {e}")))?;
        Ok(shape.into_iter().map(|d| d as usize).collect())
    }

    fn f64s(&self, key: &str) -> Result<Vec<f64>, InteropError> {
        self.dataset(key)?
            .read_f64()
            .map_err(|e| self.err(format!("{key}: not float64 values ({e})")))
    }

    fn i64s(&self, key: &str) -> Result<Vec<i64>, InteropError> {
        self.dataset(key)?
            .read_i64()
            .map_err(|e| self.err(format!("{key}: not integer values ({e})")))
    }

    fn has(&self, key: &str) -> bool {
        self.file.dataset(key).is_ok()
    }

    /// A complex64 compound `{r, i}` (or `{real, imag}`) dataset.
    fn complex(&self, key: &str) -> Result<ComplexArray, InteropError> {
        let dataset = self.dataset(key)?;
        let fields = match dataset
            .dtype()
            .map_err(|e| self.err(format!("{key}: {e}")))?
        {
            DType::Compound(fields) => fields,
            other => {
                return Err(self.err(format!(
                    "{key}: expected a complex compound, found {other:?}"
                )))
            }
        };
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        let float32 = fields.iter().all(|(_, t)| *t == DType::F32);
        if fields.len() != 2 || !(names == ["r", "i"] || names == ["real", "imag"]) || !float32 {
            return Err(self.err(format!(
                "{key}: expected a compound of two float32 fields (r, i), found {fields:?}"
            )));
        }
        let raw = dataset
            .read_raw()
            .map_err(|e| self.err(format!("{key}: {e}")))?;
        let data = raw
            .chunks_exact(8)
            .map(|c| {
                Complex32::new(
                    f32::from_le_bytes(c[0..4].try_into().expect("4 bytes")),
                    f32::from_le_bytes(c[4..8].try_into().expect("4 bytes")),
                )
            })
            .collect();
        Ok(ComplexArray {
            shape: self.shape(key)?,
            data,
        })
    }
}

fn attrs_of(
    reader: &Reader,
    attrs: Result<HashMap<String, AttrValue>, hdf5_pure::Error>,
    what: &str,
) -> Result<HashMap<String, AttrValue>, InteropError> {
    attrs.map_err(|e| reader.err(format!("attributes of {what}: {e}")))
}

fn attr_f64(
    reader: &Reader,
    attrs: &HashMap<String, AttrValue>,
    key: &str,
    default: Option<f64>,
) -> Result<f64, InteropError> {
    match attrs.get(key) {
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_i64().map(|i| i as f64))
            .ok_or_else(|| {
                reader.err(format!("attribute {key}: not a number ({})", v.type_name()))
            }),
        None => default.ok_or_else(|| reader.err(format!("no attribute {key}"))),
    }
}

fn attr_string(attrs: &HashMap<String, AttrValue>, key: &str, default: &str) -> String {
    attrs
        .get(key)
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| default.to_string())
}

/// Read a product file, checking every array's shape against the others.
pub fn read_product(path: &Path) -> Result<Product, InteropError> {
    let r = Reader::open(path)?;
    let root = attrs_of(&r, r.file.root().attrs(), "the root")?;
    let object_attrs = attrs_of(&r, r.dataset("object")?.attrs(), "object")?;
    let probe_attrs = attrs_of(&r, r.dataset("probe")?.attrs(), "probe")?;
    let object = r.complex("object")?;
    let probe = r.complex("probe")?;
    if object.shape.len() != 3 {
        return Err(r.err(format!(
            "object: expected (layers, H, W), found shape {:?}",
            object.shape
        )));
    }
    if probe.shape.len() < 2
        || probe.shape[probe.shape.len() - 1] != probe.shape[probe.shape.len() - 2]
    {
        return Err(r.err(format!(
            "probe: expected (modes..., N, N), found shape {:?}",
            probe.shape
        )));
    }
    let object_pixel_m = [
        attr_f64(&r, &object_attrs, "pixel_width_m", None)?,
        attr_f64(&r, &object_attrs, "pixel_height_m", None)?,
    ];
    let product = Product {
        name: attr_string(&root, "name", "Unnamed"),
        comments: attr_string(&root, "comments", ""),
        detector_object_distance_m: attr_f64(&r, &root, "detector_object_distance_m", None)?,
        photon_energy_ev: attr_f64(&r, &root, "photon_energy_eV", None)?,
        probe_photon_count: attr_f64(&r, &root, "probe_photon_count", Some(0.0))?,
        exposure_time_s: attr_f64(&r, &root, "exposure_time_s", Some(0.0))?,
        mass_attenuation_m2_per_kg: attr_f64(&r, &root, "mass_attenuation_m2_per_kg", Some(0.0))?,
        tomography_angle_deg: attr_f64(&r, &root, "tomography_angle_deg", Some(0.0))?,
        focus_object_distance_m: attr_f64(&r, &root, "focus_object_distance_m", Some(0.0))?,
        tilt_angle_deg: attr_f64(&r, &root, "tilt_angle_deg", Some(0.0))?,
        far_field: attr_f64(&r, &root, "far_field", Some(1.0))? != 0.0,
        position_indexes: r.i64s("probe_position_indexes")?,
        position_x_m: r.f64s("probe_position_x_m")?,
        position_y_m: r.f64s("probe_position_y_m")?,
        position_photon_counts: if r.has("probe_photon_counts") {
            Some(r.f64s("probe_photon_counts")?)
        } else {
            None
        },
        probe,
        probe_pixel_m: [
            attr_f64(&r, &probe_attrs, "pixel_width_m", Some(object_pixel_m[0]))?,
            attr_f64(&r, &probe_attrs, "pixel_height_m", Some(object_pixel_m[1]))?,
        ],
        object,
        object_center_m: [
            attr_f64(&r, &object_attrs, "center_x_m", None)?,
            attr_f64(&r, &object_attrs, "center_y_m", None)?,
        ],
        object_pixel_m,
        object_layer_spacing_m: if r.has("object_layer_spacing_m") {
            r.f64s("object_layer_spacing_m")?
        } else {
            Vec::new()
        },
        loss_epochs: if r.has("loss_epochs") {
            r.i64s("loss_epochs")?
        } else {
            Vec::new()
        },
        loss_values: if r.has("loss_values") {
            r.f64s("loss_values")?
        } else {
            Vec::new()
        },
        count_scale: match root.get(COUNT_SCALE_ATTR) {
            Some(_) => Some(attr_f64(&r, &root, COUNT_SCALE_ATTR, None)?),
            None => None,
        },
    };
    let m = product.position_indexes.len();
    let counts_ok = product
        .position_photon_counts
        .as_ref()
        .is_none_or(|c| c.len() == m);
    if product.position_x_m.len() != m || product.position_y_m.len() != m || !counts_ok {
        return Err(r.err(format!(
            "probe positions: {m} indexes but {} x, {} y{}",
            product.position_x_m.len(),
            product.position_y_m.len(),
            product
                .position_photon_counts
                .as_ref()
                .map_or(String::new(), |c| format!(", {} photon counts", c.len()))
        )));
    }
    if product.loss_epochs.len() != product.loss_values.len() {
        return Err(r.err(format!(
            "loss: {} epochs but {} values",
            product.loss_epochs.len(),
            product.loss_values.len()
        )));
    }
    Ok(product)
}

fn complex_bytes(data: &[Complex32]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(data.len() * 8);
    for c in data {
        raw.extend_from_slice(&c.re.to_le_bytes());
        raw.extend_from_slice(&c.im.to_le_bytes());
    }
    raw
}

fn add_complex<'b>(
    b: &'b mut FileBuilder,
    key: &str,
    array: &ComplexArray,
) -> Result<&'b mut hdf5_pure::DatasetBuilder, InteropError> {
    let datatype = CompoundTypeBuilder::new()
        .f32_field("r")
        .f32_field("i")
        .build()
        .map_err(|e| InteropError::Invalid(format!("{key}: {e}")))?;
    let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
    let dataset = b.create_dataset(key);
    dataset
        .with_compound_data(
            datatype,
            complex_bytes(&array.data),
            array.data.len() as u64,
        )
        .with_shape(&shape);
    Ok(dataset)
}

fn finish(b: FileBuilder, path: &Path) -> Result<(), InteropError> {
    let bytes = b
        .finish()
        .map_err(|e| InteropError::file(path, format!("encoding HDF5: {e}")))?;
    write_atomic(path, &bytes).map_err(|e| InteropError::file(path, e.to_string()))
}

/// Write a product file as Ptychodus's `save_product` does.
pub fn write_product(path: &Path, p: &Product) -> Result<(), InteropError> {
    let mut b = FileBuilder::new();
    b.set_attr("name", AttrValue::VarLenString(p.name.clone()));
    b.set_attr("comments", AttrValue::VarLenString(p.comments.clone()));
    for (key, value) in [
        ("detector_object_distance_m", p.detector_object_distance_m),
        ("photon_energy_eV", p.photon_energy_ev),
        ("probe_photon_count", p.probe_photon_count),
        ("exposure_time_s", p.exposure_time_s),
        ("mass_attenuation_m2_per_kg", p.mass_attenuation_m2_per_kg),
        ("tomography_angle_deg", p.tomography_angle_deg),
        ("focus_object_distance_m", p.focus_object_distance_m),
        ("tilt_angle_deg", p.tilt_angle_deg),
    ] {
        b.set_attr(key, AttrValue::F64(value));
    }
    b.set_attr("far_field", AttrValue::U8(u8::from(p.far_field)));
    if let Some(scale) = p.count_scale {
        b.set_attr(COUNT_SCALE_ATTR, AttrValue::F64(scale));
    }
    b.create_dataset("probe_position_indexes")
        .with_i64_data(&p.position_indexes);
    b.create_dataset("probe_position_x_m")
        .with_f64_data(&p.position_x_m);
    b.create_dataset("probe_position_y_m")
        .with_f64_data(&p.position_y_m);
    if let Some(counts) = &p.position_photon_counts {
        b.create_dataset("probe_photon_counts")
            .with_f64_data(counts);
    }
    let probe = add_complex(&mut b, "probe", &p.probe)?;
    probe.set_attr("pixel_width_m", AttrValue::F64(p.probe_pixel_m[0]));
    probe.set_attr("pixel_height_m", AttrValue::F64(p.probe_pixel_m[1]));
    {
        let object = add_complex(&mut b, "object", &p.object)?;
        object.set_attr("center_x_m", AttrValue::F64(p.object_center_m[0]));
        object.set_attr("center_y_m", AttrValue::F64(p.object_center_m[1]));
        object.set_attr("pixel_width_m", AttrValue::F64(p.object_pixel_m[0]));
        object.set_attr("pixel_height_m", AttrValue::F64(p.object_pixel_m[1]));
    }
    b.create_dataset("object_layer_spacing_m")
        .with_f64_data(&p.object_layer_spacing_m);
    b.create_dataset("loss_epochs")
        .with_i64_data(&p.loss_epochs);
    b.create_dataset("loss_values")
        .with_f64_data(&p.loss_values);
    finish(b, path)
}

/// Read a diffraction file (LZF or uncompressed).
pub fn read_diffraction(path: &Path) -> Result<Diffraction, InteropError> {
    let r = Reader::open(path)?;
    let shape = r.shape("patterns")?;
    let [m, h, w] = shape[..] else {
        return Err(r.err(format!(
            "patterns: expected (M, N, N), found shape {shape:?}"
        )));
    };
    let patterns = r
        .dataset("patterns")?
        .read_u32()
        .map_err(|e| r.err(format!("patterns: not unsigned counts ({e})")))?;
    let indexes = r.i64s("indexes")?;
    if indexes.len() != m {
        return Err(r.err(format!("indexes: {} for {m} patterns", indexes.len())));
    }
    let bad_pixels: Vec<bool> = if r.has("bad_pixels") {
        let bad = r
            .dataset("bad_pixels")?
            .read_u8()
            .map_err(|e| r.err(format!("bad_pixels: {e}")))?;
        if bad.len() != h * w {
            return Err(r.err(format!(
                "bad_pixels: {} values for a {h}x{w} detector",
                bad.len()
            )));
        }
        bad.into_iter().map(|v| v != 0).collect()
    } else {
        vec![false; h * w]
    };
    let attrs = attrs_of(&r, r.dataset("patterns")?.attrs(), "patterns")?;
    Ok(Diffraction {
        patterns,
        shape: [m, h, w],
        indexes,
        bad_pixels,
        detector_pixel_m: [
            attr_f64(&r, &attrs, "detector_pixel_width_m", None)?,
            attr_f64(&r, &attrs, "detector_pixel_height_m", None)?,
        ],
    })
}

/// Write a diffraction file as Ptychodus's `save_diffraction_data` does (LZF).
pub fn write_diffraction(path: &Path, d: &Diffraction) -> Result<(), InteropError> {
    let [m, h, w] = d.shape;
    let mut b = FileBuilder::new();
    b.create_dataset("indexes")
        .with_i64_data(&d.indexes)
        .with_chunks(&[m.max(1) as u64])
        .with_lzf();
    let patterns = b.create_dataset("patterns");
    patterns
        .with_u32_data(&d.patterns)
        .with_shape(&[m as u64, h as u64, w as u64])
        .with_chunks(&[1, h as u64, w as u64])
        .with_lzf();
    patterns.set_attr(
        "detector_pixel_width_m",
        AttrValue::F64(d.detector_pixel_m[0]),
    );
    patterns.set_attr(
        "detector_pixel_height_m",
        AttrValue::F64(d.detector_pixel_m[1]),
    );
    let boolean = EnumTypeBuilder::u8_based()
        .u8_value("FALSE", 0)
        .u8_value("TRUE", 1)
        .build()
        .map_err(|e| InteropError::Invalid(format!("bad_pixels: {e}")))?;
    let bad: Vec<u8> = d.bad_pixels.iter().map(|&v| u8::from(v)).collect();
    b.create_dataset("bad_pixels")
        .with_enum_u8_data(boolean, &bad)
        .with_shape(&[h as u64, w as u64])
        .with_chunks(&[h as u64, w as u64])
        .with_lzf();
    finish(b, path)
}
