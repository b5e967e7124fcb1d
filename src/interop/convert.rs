//! Ptychodus files and this project's NPZ contract, both ways.
//!
//! Units: Ptychodus stores photon counts k and a probe P_pd such that k ≈ |FFT(P_pd·O)|² with the
//! unnormalised FFT; the contract stores amplitudes a = √k / s and a probe P with a = |FFT(P·O)|/N,
//! so P_pd = (s/N)·P. s is the data's count scale (`physics_parameters.s_sim` in `_metadata`); a
//! product written here records it as the root attribute `ptycho_count_scale`, which Ptychodus
//! ignores and an import uses, so the amplitudes come back bit for bit. Positions: Ptychodus's are
//! metres about the object's centre; with pixel coordinates x (patch centres, the contract's
//! `xcoords`), x_m = pixel · (x − W/2) + center_x_m.

use std::path::{Path, PathBuf};

use ptycho_kernels::Complex32;
use serde::Serialize;
use serde_json::json;

use super::ptychodus::{
    object_pixel_m, read_diffraction, read_product, write_diffraction, write_product, ComplexArray,
    Diffraction, Product,
};
use super::InteropError;
use crate::data::dataset::Dataset;
use crate::io::npz_writer::NpzWriter;
use crate::physics::image::{covering_shape, ComplexImage};

/// The far-field geometry a product records; it sets the object pixel, λ·z / (N·d).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Geometry {
    pub photon_energy_ev: f64,
    pub detector_distance_m: f64,
    pub detector_pixel_m: f64,
    /// The object pixel when a file already fixes it (a Ptychodus batch input); None: λ·z / (N·d).
    pub object_pixel_m: Option<f64>,
}

impl Default for Geometry {
    /// The geometry of the Ptychodus fixtures: 10 keV photons, 2 m, 75 µm detector pixels.
    fn default() -> Self {
        Self {
            photon_energy_ev: 10_000.0,
            detector_distance_m: 2.0,
            detector_pixel_m: 75e-6,
            object_pixel_m: None,
        }
    }
}

/// The count scale s of a dataset (counts = (s·amplitude)²) from its `_metadata`.
fn count_scale(dataset: &Dataset) -> Option<f64> {
    dataset.shards.iter().find_map(|s| {
        s.metadata
            .as_ref()?
            .pointer("/physics_parameters/s_sim")?
            .as_f64()
    })
}

fn no_count_scale(data: &Path) -> InteropError {
    InteropError::file(
        data,
        "_metadata records no count scale (physics_parameters.s_sim: counts = (s·amplitude)²), so \
         the amplitudes cannot be turned back into photon counts; pass --count-scale (1 when the \
         diffraction is the square root of counts)",
    )
}

/// Counts of every pattern of `dataset`: round((s·a)²).
fn counts(dataset: &Dataset, s: f64) -> Result<Vec<u32>, InteropError> {
    let patterns = dataset.patterns_array(0..dataset.m)?;
    Ok(patterns
        .iter()
        .map(|&a| {
            let k = (s * a as f64).powi(2).round();
            k.clamp(0.0, u32::MAX as f64) as u32
        })
        .collect())
}

fn scaled(data: &[Complex32], factor: f64) -> Vec<Complex32> {
    data.iter()
        .map(|c| Complex32::new((c.re as f64 * factor) as f32, (c.im as f64 * factor) as f32))
        .collect()
}

/// What an export wrote.
#[derive(Debug, Serialize)]
pub struct Exported {
    pub files: Vec<PathBuf>,
    pub positions: usize,
    pub object_shape: [usize; 2],
    pub object_pixel_m: f64,
    pub count_scale: f64,
    pub geometry: Geometry,
}

/// A product from an object (H, W) in the data's object frame, the data's probe and positions.
#[allow(clippy::too_many_arguments)]
fn product_of(
    dataset: &Dataset,
    s: f64,
    object: &ComplexImage,
    probe: &[Complex32],
    positions: (&[f64], &[f64]),
    counts: Option<&[u32]>,
    geometry: Geometry,
    name: String,
    comments: String,
) -> Result<(Product, f64), InteropError> {
    let n = dataset.n;
    let pixel = geometry.object_pixel_m.unwrap_or_else(|| {
        object_pixel_m(
            geometry.photon_energy_ev,
            geometry.detector_distance_m,
            n,
            geometry.detector_pixel_m,
        )
    });
    let (xs, ys) = positions;
    let photon_counts: Option<Vec<f64>> = counts.map(|k| {
        k.chunks(n * n)
            .map(|p| p.iter().map(|&v| v as f64).sum())
            .collect()
    });
    let mean_count = photon_counts
        .as_ref()
        .map_or(0.0, |c| c.iter().sum::<f64>() / c.len().max(1) as f64);
    let (w, h) = (object.cols as f64, object.rows as f64);
    let product = Product {
        name,
        comments,
        detector_object_distance_m: geometry.detector_distance_m,
        photon_energy_ev: geometry.photon_energy_ev,
        probe_photon_count: mean_count,
        exposure_time_s: 1.0,
        mass_attenuation_m2_per_kg: 0.0,
        tomography_angle_deg: 0.0,
        focus_object_distance_m: 0.0,
        tilt_angle_deg: 0.0,
        far_field: true,
        position_indexes: (0..xs.len() as i64).collect(),
        position_x_m: xs.iter().map(|&x| pixel * (x - w / 2.0)).collect(),
        position_y_m: ys.iter().map(|&y| pixel * (y - h / 2.0)).collect(),
        position_photon_counts: photon_counts,
        probe: ComplexArray {
            shape: vec![1, 1, n, n],
            data: scaled(probe, s / n as f64),
        },
        probe_pixel_m: [pixel, pixel],
        object: ComplexArray {
            shape: vec![1, object.rows, object.cols],
            data: object.data.clone(),
        },
        object_center_m: [0.0, 0.0],
        object_pixel_m: [pixel, pixel],
        object_layer_spacing_m: Vec::new(),
        loss_epochs: Vec::new(),
        loss_values: Vec::new(),
        count_scale: Some(s),
    };
    Ok((product, pixel))
}

/// Where a reconstruction's pixels sit relative to its positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The data's object frame (`ptycho reconstruct`, `objectGuess`): positions are its pixels.
    Object,
    /// A stitched canvas (`ptycho infer`): its centre pixel is the mean of the positions.
    Stitched,
}

/// `ptycho export --format ptychodus`: a reconstruction (`object`, or `reconstructed_object`, with
/// its `xcoords`/`ycoords` when it has them, else the data's) with the data's probe, positions and
/// counts, as a product file. `scale` overrides the data's count scale.
pub fn export_product(
    recon: &Path,
    data: &Path,
    output: &Path,
    geometry: Geometry,
    scale: Option<f64>,
    frame: Frame,
) -> Result<Exported, InteropError> {
    let dataset = Dataset::open(data)?;
    let s = scale
        .or_else(|| count_scale(&dataset))
        .ok_or_else(|| no_count_scale(data))?;
    let npz = crate::io::npz::NpzFile::open(recon)?;
    let checked = crate::data::checked::CheckedNpz::new(&npz, recon);
    let key = ["object", "reconstructed_object", "objectGuess"]
        .into_iter()
        .find(|k| checked.has(k))
        .ok_or_else(|| {
            InteropError::file(recon, "no object, reconstructed_object or objectGuess")
        })?;
    let object = checked.complex_image(key, "a complex 2-D object")?;
    let (mut xs, mut ys) = if checked.has("xcoords") && checked.has("ycoords") {
        let expected = "(M,) float positions";
        (
            checked.real_f64("xcoords", expected)?.1,
            checked.real_f64("ycoords", expected)?.1,
        )
    } else {
        (dataset.xcoords(), dataset.ycoords())
    };
    if frame == Frame::Stitched {
        // Into the canvas's pixels, whose centre is the positions' mean.
        let recentre = |v: &mut Vec<f64>, size: usize| {
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            v.iter_mut().for_each(|x| *x += size as f64 / 2.0 - mean);
        };
        recentre(&mut xs, object.cols);
        recentre(&mut ys, object.rows);
    }
    let probe_key = ["probe", "reconstructed_probe"]
        .into_iter()
        .find(|k| checked.has(k));
    let probe = match probe_key {
        Some(k) => {
            let p = checked.complex_image(k, "a complex N x N probe")?;
            if (p.rows, p.cols) != (dataset.n, dataset.n) {
                return Err(InteropError::file(
                    recon,
                    format!(
                        "{k}: {}x{} but the data's patterns are {n}x{n}",
                        p.rows,
                        p.cols,
                        n = dataset.n
                    ),
                ));
            }
            p.data
        }
        None => dataset.probe().to_vec(),
    };
    let name = recon
        .file_stem()
        .map_or("reconstruction".into(), |s| s.to_string_lossy().to_string());
    let comments = format!(
        "written by ptycho export from {} (object '{key}') and {}",
        recon.display(),
        data.display()
    );
    // Photon counts per position when the positions are the data's patterns.
    let pattern_counts = if xs.len() == dataset.m {
        Some(counts(&dataset, s)?)
    } else {
        None
    };
    let (mut product, pixel) = product_of(
        &dataset,
        s,
        &object,
        &probe,
        (&xs, &ys),
        pattern_counts.as_deref(),
        geometry,
        name,
        comments,
    )?;
    product.loss_values = cost_beside(recon)?;
    product.loss_epochs = (0..product.loss_values.len() as i64).collect();
    write_product(output, &product)?;
    Ok(Exported {
        files: vec![output.to_path_buf()],
        positions: xs.len(),
        object_shape: [object.rows, object.cols],
        object_pixel_m: pixel,
        count_scale: product.count_scale.unwrap_or(1.0),
        geometry,
    })
}

/// `ptycho data export --format ptychodus`: a dataset as Ptychodus's batch input,
/// `OUT/diffraction.h5` (counts) and `OUT/product.h5` (its probe, positions and object, or ones).
pub fn export_data(
    data: &Path,
    out_dir: &Path,
    geometry: Geometry,
    scale: Option<f64>,
) -> Result<Exported, InteropError> {
    let dataset = Dataset::open(data)?;
    let s = scale
        .or_else(|| count_scale(&dataset))
        .ok_or_else(|| no_count_scale(data))?;
    let n = dataset.n;
    let (xs, ys) = (dataset.xcoords(), dataset.ycoords());
    let object = match dataset.shards[0].object.clone() {
        Some(o) => o,
        None => {
            let (rows, cols) = covering_shape(&xs, &ys, n);
            ComplexImage::filled(rows, cols, Complex32::new(1.0, 0.0))
        }
    };
    std::fs::create_dir_all(out_dir).map_err(|e| InteropError::file(out_dir, e.to_string()))?;
    let pattern_counts = counts(&dataset, s)?;
    let (product, pixel) = product_of(
        &dataset,
        s,
        &object,
        dataset.probe(),
        (&xs, &ys),
        Some(&pattern_counts),
        geometry,
        data.file_stem()
            .map_or("data".into(), |s| s.to_string_lossy().to_string()),
        format!("written by ptycho data export from {}", data.display()),
    )?;
    let diffraction = Diffraction {
        patterns: pattern_counts,
        shape: [dataset.m, n, n],
        indexes: (0..dataset.m as i64).collect(),
        bad_pixels: vec![false; n * n],
        detector_pixel_m: [geometry.detector_pixel_m; 2],
    };
    let diffraction_path = out_dir.join("diffraction.h5");
    write_diffraction(&diffraction_path, &diffraction)?;
    let product_path = out_dir.join("product.h5");
    write_product(&product_path, &product)?;
    Ok(Exported {
        files: vec![diffraction_path, product_path],
        positions: dataset.m,
        object_shape: [object.rows, object.cols],
        object_pixel_m: pixel,
        count_scale: s,
        geometry,
    })
}

/// The cost per epoch of `ptycho reconstruct`'s `history.json` beside `recon`, if there is one.
fn cost_beside(recon: &Path) -> Result<Vec<f64>, InteropError> {
    let path = recon.with_file_name("history.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let history: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| InteropError::file(&path, format!("not JSON: {e}")))?;
    Ok(history
        .get("cost")
        .and_then(|c| c.as_array())
        .map(|c| c.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default())
}

/// The geometry a Ptychodus batch input records: photon energy, distance and object pixel from its
/// product, detector pixel from its diffraction file.
pub fn batch_geometry(dir: &Path) -> Result<Geometry, InteropError> {
    let product = read_product(&dir.join("product.h5"))?;
    let diffraction = read_diffraction(&dir.join("diffraction.h5"))?;
    Ok(Geometry {
        photon_energy_ev: product.photon_energy_ev,
        detector_distance_m: product.detector_object_distance_m,
        detector_pixel_m: diffraction.detector_pixel_m[0],
        object_pixel_m: Some(product.object_pixel_m[0]),
    })
}

/// What an import wrote.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub output: PathBuf,
    pub patterns: usize,
    pub n: usize,
    pub object_shape: [usize; 2],
    pub count_scale: f64,
    /// Detector pixels marked bad: kept as measured (the contract has no mask).
    pub bad_pixels: usize,
}

/// `ptycho data import --from ptychodus DIR`: `DIR/diffraction.h5` and `DIR/product.h5` as one NPZ
/// of the contract.
pub fn import_ptychodus(dir: &Path, output: &Path) -> Result<Imported, InteropError> {
    let product_path = dir.join("product.h5");
    let diffraction_path = dir.join("diffraction.h5");
    let product = read_product(&product_path)?;
    let diffraction = read_diffraction(&diffraction_path)?;
    let [m, n, w] = diffraction.shape;
    if n != w {
        return Err(InteropError::file(
            &diffraction_path,
            format!("patterns are {n}x{w}; the contract needs square patterns"),
        ));
    }
    let probe_n = product.probe.shape[product.probe.shape.len() - 1];
    if probe_n != n {
        return Err(InteropError::file(
            &product_path,
            format!("probe is {probe_n}x{probe_n} but the patterns are {n}x{n}"),
        ));
    }
    // Positions in the order of the patterns, matched by index.
    let mut rows = Vec::with_capacity(m);
    for &index in &diffraction.indexes {
        let row = product
            .position_indexes
            .iter()
            .position(|&i| i == index)
            .ok_or_else(|| {
                InteropError::file(
                    &product_path,
                    format!(
                        "no probe position for pattern index {index} of {}",
                        diffraction_path.display()
                    ),
                )
            })?;
        rows.push(row);
    }
    let [layers, h, w_obj] = [
        product.object.shape[0],
        product.object.shape[1],
        product.object.shape[2],
    ];
    if layers == 0 {
        return Err(InteropError::file(&product_path, "object has no layer"));
    }
    let s = product.count_scale.unwrap_or(1.0);
    let [pw, ph] = product.object_pixel_m;
    let [cx, cy] = product.object_center_m;
    let xs: Vec<f64> = rows
        .iter()
        .map(|&r| (product.position_x_m[r] - cx) / pw + w_obj as f64 / 2.0)
        .collect();
    let ys: Vec<f64> = rows
        .iter()
        .map(|&r| (product.position_y_m[r] - cy) / ph + h as f64 / 2.0)
        .collect();
    let amplitude: Vec<f32> = diffraction
        .patterns
        .iter()
        .map(|&k| ((k as f64).sqrt() / s) as f32)
        .collect();
    let probe = scaled(&product.probe.data[..n * n], n as f64 / s);
    let object = &product.object.data[..h * w_obj];
    let nphotons = diffraction.patterns.iter().map(|&k| k as f64).sum::<f64>() / m.max(1) as f64;
    let bad_pixels = diffraction.bad_pixels.iter().filter(|&&b| b).count();
    let metadata = json!({
        "schema_version": "1.0.0",
        "creation_info": { "tool": "ptycho data import", "tool_version": env!("CARGO_PKG_VERSION") },
        "physics_parameters": {
            "nphotons": nphotons,
            "N": n,
            "gridsize": 1,
            "s_sim": s,
        },
        "additional_parameters": {
            "photon_energy_eV": product.photon_energy_ev,
            "detector_object_distance_m": product.detector_object_distance_m,
            "detector_pixel_m": diffraction.detector_pixel_m,
            "object_pixel_m": product.object_pixel_m,
            "bad_pixels": bad_pixels,
        },
        "data_transformations": [{
            "tool": "ptycho data import --from ptychodus",
            "operation": "counts to amplitude sqrt(k)/s; positions from metres about the object centre to pixels; probe times N/s",
            "diffraction": diffraction_path.display().to_string(),
            "product": product_path.display().to_string(),
        }],
    });
    let mut npz = NpzWriter::create(output, true)?;
    npz.add_f32("diffraction", &[m, n, n], &amplitude)?;
    npz.add_c64("objectGuess", &[h, w_obj], object)?;
    npz.add_c64("probeGuess", &[n, n], &probe)?;
    npz.add_f64("xcoords", &[m], &xs)?;
    npz.add_f64("ycoords", &[m], &ys)?;
    npz.add_f64("xcoords_start", &[m], &xs)?;
    npz.add_f64("ycoords_start", &[m], &ys)?;
    npz.add_i64("scan_index", &[m], &vec![0; m])?;
    npz.add_text("_metadata", &metadata.to_string())?;
    npz.finish()?;
    Ok(Imported {
        output: output.to_path_buf(),
        patterns: m,
        n,
        object_shape: [h, w_obj],
        count_scale: s,
        bad_pixels,
    })
}
