//! The `wts.h5.zip` bundle (study-pipeline.md §5): the reference's outer layout, one folder per model
//! (`autoencoder/` and `diffraction_to_obj/`, the names users and Ptychodus look for), each with
//! `weights.h5` (HDF5, one float32 dataset per tensor), `params.json` (the whole configuration) and
//! `probe.npy` (the probe used for training, complex64); `optimizer.h5` at the root when optimizer state
//! is saved; `manifest.dill`, a plain pickle of the model list, version and backend; and `manifest.json`
//! with the format, the models, the creation time and the SHA-256 of every other entry.
//!
//! Saving is atomic (a temporary file in the same folder, fsync, rename), so an interrupted save leaves
//! the previous bundle as it was. Beside the bundle, `wts.h5.zip.sha256` holds its whole-file digest in
//! `sha256sum` format. Loading verifies both digests first.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ptycho_kernels::Complex32;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use super::digest::{hex, sha256_file};
use super::weights::{self, NamedTensor};
use super::PersistError;
use crate::io::atomic::temp_output;
use crate::io::npy::{Kind, NpyDtype, NpyHeader};
use crate::io::pickle::{self, PickleValue};

pub const BUNDLE_FILE: &str = "wts.h5.zip";
pub const FORMAT_NAME: &str = "ptycho-wgpu-bundle";
pub const FORMAT_VERSION: u64 = 1;
/// Both hold the same weights: the reference saves its training and inference models under these names.
pub const MODELS: [&str; 2] = ["autoencoder", "diffraction_to_obj"];
const MANIFEST_JSON: &str = "manifest.json";
const MANIFEST_DILL: &str = "manifest.dill";
const OPTIMIZER: &str = "optimizer.h5";
/// Parameters a bundle must carry to rebuild its model.
const REQUIRED_PARAMS: [&str; 3] = ["N", "gridsize", "model_type"];

/// What a bundle holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// The configuration (N, gridsize, nphotons, intensity_scale, n_filters_scale, probe_big,
    /// model_type, offset, max_position_jitter, the training data digests, ...). Saving adds
    /// `format_version` and `tool_version`.
    pub params: serde_json::Map<String, Value>,
    pub weights: Vec<NamedTensor>,
    /// The probe, N x N complex64.
    pub probe: Vec<Complex32>,
    /// Optimizer state (Adam moments and step), if saved.
    pub optimizer: Option<Vec<NamedTensor>>,
}

/// Where a bundle was saved and its digest, as the study manifests record them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SavedBundle {
    pub path: PathBuf,
    pub sha256: String,
    pub size_bytes: u64,
}

/// A bundle path from a bundle file or the folder holding one.
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(BUNDLE_FILE)
    } else {
        path.to_path_buf()
    }
}

fn digest_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn npy_bytes(shape: &[usize], data: &[Complex32]) -> Vec<u8> {
    let mut out = NpyHeader::encode(&NpyDtype::little(Kind::Complex, 8), shape);
    out.extend_from_slice(bytemuck::cast_slice(data));
    out
}

/// UTC now as ISO 8601 with a Z.
pub(crate) fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Save `bundle` as `dir/wts.h5.zip` (atomically) and `dir/wts.h5.zip.sha256`.
pub fn save(dir: &Path, bundle: &Bundle) -> Result<SavedBundle, PersistError> {
    for key in REQUIRED_PARAMS {
        if !bundle.params.contains_key(key) {
            return Err(PersistError::Invalid(format!(
                "params must hold '{key}' (required: {REQUIRED_PARAMS:?})"
            )));
        }
    }
    let n = bundle.params["N"].as_u64().unwrap_or(0) as usize;
    if n == 0 || bundle.probe.len() != n * n {
        return Err(PersistError::Invalid(format!(
            "the probe has {} values, expected N x N with N = {}",
            bundle.probe.len(),
            bundle.params["N"]
        )));
    }
    let non_finite = non_finite_tensors(&bundle.weights);
    if !non_finite.is_empty() {
        return Err(PersistError::Invalid(format!(
            "{} weight tensor(s) hold non-finite values ({}): not saved",
            non_finite.len(),
            non_finite.join(", ")
        )));
    }
    if bundle
        .probe
        .iter()
        .any(|v| !v.re.is_finite() || !v.im.is_finite())
    {
        return Err(PersistError::Invalid(
            "the probe holds non-finite values: not saved".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| PersistError::io(dir.display(), e))?;
    let target = dir.join(BUNDLE_FILE);
    let shown = target.display().to_string();
    let tmp = temp_output(dir, BUNDLE_FILE).map_err(|e| PersistError::io(dir.display(), e))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| PersistError::io(&shown, e))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut digests = serde_json::Map::new();
    let mut put = |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, bytes: &[u8]| {
        zip.start_file(name, options)
            .map_err(|e| PersistError::format(&shown, e.to_string()))?;
        zip.write_all(bytes)
            .map_err(|e| PersistError::io(&shown, e))?;
        digests.insert(name.to_string(), json!(hex(&Sha256::digest(bytes))));
        Ok::<(), PersistError>(())
    };

    let version = format!("{FORMAT_VERSION}-wgpu");
    let dill = pickle::dict(&[
        (
            "models",
            PickleValue::List(MODELS.iter().map(|m| m.to_string()).collect()),
        ),
        ("version", PickleValue::Str(version.clone())),
        ("backend", PickleValue::Str("wgpu".into())),
    ]);
    put(&mut zip, MANIFEST_DILL, &dill)?;

    let mut params = bundle.params.clone();
    params.insert("format_version".into(), json!(FORMAT_VERSION));
    params.insert("tool_version".into(), json!(env!("CARGO_PKG_VERSION")));
    params.insert("_version".into(), json!(version));
    let params_text = serde_json::to_vec_pretty(&Value::Object(params)).expect("plain data");
    let weights_bytes = weights::write(&bundle.weights, &[("format", FORMAT_NAME.into())])?;
    let probe = npy_bytes(&[n, n], &bundle.probe);
    for model in MODELS {
        put(&mut zip, &format!("{model}/params.json"), &params_text)?;
        put(&mut zip, &format!("{model}/weights.h5"), &weights_bytes)?;
        put(&mut zip, &format!("{model}/probe.npy"), &probe)?;
    }
    if let Some(state) = &bundle.optimizer {
        put(
            &mut zip,
            OPTIMIZER,
            &weights::write(state, &[("format", FORMAT_NAME.into())])?,
        )?;
    }
    let manifest = json!({
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "backend": "wgpu",
        "tool_version": env!("CARGO_PKG_VERSION"),
        "models": MODELS,
        "created": utc_now(),
        "sha256": Value::Object(digests),
    });
    zip.start_file(MANIFEST_JSON, options)
        .map_err(|e| PersistError::format(&shown, e.to_string()))?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest).expect("plain data"))
        .map_err(|e| PersistError::io(&shown, e))?;
    let file = zip
        .finish()
        .map_err(|e| PersistError::format(&shown, e.to_string()))?;
    file.sync_all().map_err(|e| PersistError::io(&shown, e))?;
    drop(file);

    let (sha256, size_bytes) = sha256_file(tmp.path()).map_err(|e| PersistError::io(&shown, e))?;
    let digest_file = digest_path(&target);
    let mut digest_tmp = temp_output(dir, &format!("{BUNDLE_FILE}.sha256"))
        .map_err(|e| PersistError::io(dir.display(), e))?;
    writeln!(digest_tmp, "{sha256}  {BUNDLE_FILE}")
        .and_then(|_| digest_tmp.as_file().sync_all())
        .map_err(|e| PersistError::io(digest_file.display(), e))?;
    tmp.persist(&target)
        .map_err(|e| PersistError::io(&shown, e.error))?;
    digest_tmp
        .persist(&digest_file)
        .map_err(|e| PersistError::io(digest_file.display(), e.error))?;
    Ok(SavedBundle {
        path: target,
        sha256,
        size_bytes,
    })
}

/// The names of the tensors holding a NaN or an infinity.
pub fn non_finite_tensors(tensors: &[NamedTensor]) -> Vec<&str> {
    tensors
        .iter()
        .filter(|t| t.data.iter().any(|v| !v.is_finite()))
        .map(|t| t.name.as_str())
        .collect()
}

/// A bundle whose digests were checked.
#[derive(Debug)]
pub struct Verified {
    pub path: PathBuf,
    pub sha256: String,
    pub entries: usize,
    manifest: Value,
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<std::fs::File>, PersistError> {
    let file = std::fs::File::open(path).map_err(|e| PersistError::io(path.display(), e))?;
    zip::ZipArchive::new(file).map_err(|e| {
        PersistError::format(
            path.display(),
            format!("not a readable zip archive (truncated or corrupt?): {e}"),
        )
    })
}

pub(crate) fn entry_names(
    zip: &zip::ZipArchive<std::fs::File>,
    path: &Path,
) -> Result<Vec<String>, PersistError> {
    zip.file_names()
        .map(|n| {
            n.map(|n| n.to_string())
                .map_err(|e| PersistError::format(path.display(), format!("entry name: {e}")))
        })
        .collect()
}

fn read_entry(
    zip: &mut zip::ZipArchive<std::fs::File>,
    path: &Path,
    name: &str,
) -> Result<Vec<u8>, PersistError> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| PersistError::format(path.display(), format!("entry '{name}': {e}")))?;
    let mut bytes = Vec::with_capacity(entry.size().min(1 << 30) as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| PersistError::format(path.display(), format!("entry '{name}': {e}")))?;
    Ok(bytes)
}

/// Name a bundle of PtychoPINN's own formats, which this tool does not load as it is, and say what
/// to do with it.
fn foreign_kind(names: &[String], dill: Option<&[u8]>) -> Option<&'static str> {
    let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix));
    let dill_says = |s: &str| dill.is_some_and(|d| d.windows(s.len()).any(|w| w == s.as_bytes()));
    if has("model.keras") || has("custom_objects.dill") {
        Some(
            "a PtychoPINN TensorFlow (Keras) bundle, not a ptycho-wgpu bundle; convert it with \
             `ptycho import-bundle THIS_FILE --output-dir DIR`",
        )
    } else if has("model.pth") || has(".ckpt") || dill_says("pytorch") {
        Some(
            "a PtychoPINN PyTorch bundle, not a ptycho-wgpu bundle; only PtychoPINN's TensorFlow \
             bundles can be imported",
        )
    } else {
        None
    }
}

/// Check the `.sha256` file beside the bundle and every entry digest of its manifest.
pub fn verify(path: &Path) -> Result<Verified, PersistError> {
    let path = resolve(path);
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(PersistError::format(&shown, "no such bundle file"));
    }
    let mut zip = open_zip(&path)?;
    let names = entry_names(&zip, &path)?;
    if !names.iter().any(|n| n == MANIFEST_JSON) {
        let dill = names
            .iter()
            .any(|n| n == MANIFEST_DILL)
            .then(|| read_entry(&mut zip, &path, MANIFEST_DILL))
            .transpose()?;
        if let Some(kind) = foreign_kind(&names, dill.as_deref()) {
            return Err(PersistError::format(&shown, kind));
        }
        return Err(PersistError::format(
            &shown,
            "missing manifest.json: not a ptycho-wgpu bundle",
        ));
    }
    let manifest: Value = serde_json::from_slice(&read_entry(&mut zip, &path, MANIFEST_JSON)?)
        .map_err(|e| PersistError::format(&shown, format!("manifest.json is not JSON: {e}")))?;
    if manifest["format"] != FORMAT_NAME {
        return Err(PersistError::format(
            &shown,
            format!(
                "manifest.json names format {}, expected {FORMAT_NAME}",
                manifest["format"]
            ),
        ));
    }
    if manifest["format_version"] != FORMAT_VERSION {
        return Err(PersistError::format(
            &shown,
            format!(
                "unknown bundle format version {} (this tool reads version {FORMAT_VERSION})",
                manifest["format_version"]
            ),
        ));
    }
    let expected = manifest["sha256"]
        .as_object()
        .ok_or_else(|| PersistError::format(&shown, "manifest.json has no sha256 table"))?;

    let mut problems = Vec::new();
    let (sha256, _) = sha256_file(&path).map_err(|e| PersistError::io(&shown, e))?;
    let digest_file = digest_path(&path);
    match std::fs::read_to_string(&digest_file) {
        Ok(text) => {
            let recorded = text.split_whitespace().next().unwrap_or("");
            if recorded != sha256 {
                problems.push(format!(
                    "{}: records {recorded}, the file's SHA-256 is {sha256}",
                    digest_file.display()
                ));
            }
        }
        Err(e) => problems.push(format!("{}: {e}", digest_file.display())),
    }
    for (name, digest) in expected {
        if !names.contains(name) {
            problems.push(format!("entry '{name}': missing"));
            continue;
        }
        let bytes = read_entry(&mut zip, &path, name)?;
        let actual = hex(&Sha256::digest(&bytes));
        if digest.as_str() != Some(actual.as_str()) {
            problems.push(format!(
                "entry '{name}': SHA-256 {actual} does not match the manifest's {digest}"
            ));
        }
    }
    for name in &names {
        if name != MANIFEST_JSON && !expected.contains_key(name) && !name.ends_with('/') {
            problems.push(format!("entry '{name}': unexpected (not in the manifest)"));
        }
    }
    // Intact bytes can still hold a diverged model (bundles written before save refused them). Both
    // models usually hold the same bytes: each distinct digest is read once.
    let mut checked = Vec::new();
    for name in names.iter().filter(|n| n.ends_with("weights.h5")) {
        let digest = expected.get(name).and_then(Value::as_str);
        if digest.is_some_and(|d| checked.contains(&d)) {
            continue;
        }
        checked.extend(digest);
        let what = format!("{shown}: {name}");
        match weights::read(read_entry(&mut zip, &path, name)?, &what) {
            Ok(tensors) => {
                let bad = non_finite_tensors(&tensors);
                if !bad.is_empty() {
                    problems.push(format!(
                        "entry '{name}': {} of {} tensors hold non-finite values ({})",
                        bad.len(),
                        tensors.len(),
                        bad.join(", ")
                    ));
                }
            }
            Err(e) => problems.push(format!("entry '{name}': {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(PersistError::Verification {
            file: shown,
            problems,
        });
    }
    Ok(Verified {
        path,
        sha256,
        entries: names.len(),
        manifest,
    })
}

/// The tensors a model expects: name and shape.
pub type Expected = [(String, Vec<usize>)];

/// Verify, then load the `diffraction_to_obj` model of a bundle (with the optimizer state if present).
/// With `expected`, the weights must have exactly these names and shapes.
pub fn load(path: &Path, expected: Option<&Expected>) -> Result<Bundle, PersistError> {
    let verified = verify(path)?;
    let path = verified.path.clone();
    let shown = path.display().to_string();
    let models: Vec<&str> = verified.manifest["models"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for model in MODELS {
        if !models.contains(&model) {
            return Err(PersistError::format(
                &shown,
                format!("model '{model}' is missing (models listed: {models:?})"),
            ));
        }
    }
    let mut zip = open_zip(&path)?;
    let model = "diffraction_to_obj";
    let params: Value = serde_json::from_slice(&read_entry(
        &mut zip,
        &path,
        &format!("{model}/params.json"),
    )?)
    .map_err(|e| PersistError::format(&shown, format!("{model}/params.json is not JSON: {e}")))?;
    let params = params.as_object().cloned().ok_or_else(|| {
        PersistError::format(&shown, format!("{model}/params.json is not an object"))
    })?;
    let missing: Vec<&str> = REQUIRED_PARAMS
        .iter()
        .copied()
        .filter(|k| !params.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(PersistError::format(
            &shown,
            format!("{model}/params.json is missing required fields {missing:?}; the model cannot be rebuilt"),
        ));
    }
    let n = params["N"].as_u64().unwrap_or(0) as usize;
    let weights = weights::read(
        read_entry(&mut zip, &path, &format!("{model}/weights.h5"))?,
        &format!("{shown}: {model}/weights.h5"),
    )?;
    if let Some(expected) = expected {
        check_expected(&weights, expected, &format!("{shown}: {model}/weights.h5"))?;
    }
    let probe_bytes = read_entry(&mut zip, &path, &format!("{model}/probe.npy"))?;
    let header = NpyHeader::parse(&probe_bytes)
        .map_err(|m| PersistError::format(&shown, format!("{model}/probe.npy: {m}")))?;
    if header.shape != [n, n] || header.dtype != NpyDtype::little(Kind::Complex, 8) {
        return Err(PersistError::format(
            &shown,
            format!(
                "{model}/probe.npy: expected complex64 ({n}, {n}), found {} {:?}",
                header.dtype.descr, header.shape
            ),
        ));
    }
    let data = &probe_bytes[header.data_offset..];
    if data.len() != n * n * 8 {
        return Err(PersistError::format(
            &shown,
            format!("{model}/probe.npy is truncated"),
        ));
    }
    let probe: Vec<Complex32> = data
        .chunks_exact(8)
        .map(|c| {
            Complex32::new(
                f32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                f32::from_le_bytes(c[4..].try_into().expect("4 bytes")),
            )
        })
        .collect();
    let optimizer = if entry_names(&zip, &path)?.iter().any(|n| n == OPTIMIZER) {
        Some(weights::read(
            read_entry(&mut zip, &path, OPTIMIZER)?,
            &format!("{shown}: {OPTIMIZER}"),
        )?)
    } else {
        None
    };
    Ok(Bundle {
        params,
        weights,
        probe,
        optimizer,
    })
}

fn check_expected(
    found: &[NamedTensor],
    expected: &Expected,
    what: &str,
) -> Result<(), PersistError> {
    let mut problems = Vec::new();
    for (name, shape) in expected {
        match found.iter().find(|t| &t.name == name) {
            None => problems.push(format!("tensor '{name}' {shape:?}: missing")),
            Some(t) if &t.shape != shape => problems.push(format!(
                "tensor '{name}': shape {:?}, the architecture needs {shape:?}",
                t.shape
            )),
            Some(_) => {}
        }
    }
    for t in found {
        if !expected.iter().any(|(name, _)| name == &t.name) {
            problems.push(format!("tensor '{}': not part of the architecture", t.name));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PersistError::Verification {
            file: what.to_string(),
            problems,
        })
    }
}
