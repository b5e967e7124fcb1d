//! Typed, checked reads of NPZ arrays, in one place: the key is present, the dtype is the kind asked
//! for, the values are finite, and every error is a [`DataError::Contract`] naming the file, the key,
//! what was expected, what was found and the keys the file has.

use std::path::Path;

use ptycho_kernels::Complex32;

use super::{DataError, Result};
use crate::io::npy::Kind;
use crate::io::npz::{ArrayView, NpzFile};
use crate::physics::image::ComplexImage;

pub struct CheckedNpz<'a> {
    pub npz: &'a NpzFile,
    file: String,
}

impl<'a> CheckedNpz<'a> {
    pub fn new(npz: &'a NpzFile, path: &Path) -> Self {
        Self {
            npz,
            file: path.display().to_string(),
        }
    }

    /// The file as errors name it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// An error about `key`: `expected` is what the file should hold, `found` what it holds.
    pub fn err(
        &self,
        key: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> DataError {
        DataError::Contract {
            file: self.file.clone(),
            key: key.to_string(),
            expected: expected.into(),
            found: found.into(),
            present: self.npz.keys().join(", "),
        }
    }

    /// An error saying `key` is missing.
    pub fn missing(&self, key: &str, expected: &str) -> DataError {
        self.err(key, expected, "nothing: the key is missing")
    }

    pub fn has(&self, key: &str) -> bool {
        self.npz.has(key)
    }

    /// The array at `key`, or an error saying it is missing.
    pub fn array(&self, key: &str, expected: &str) -> Result<ArrayView> {
        if !self.npz.has(key) {
            return Err(self.missing(key, expected));
        }
        self.npz.array(key)
    }

    fn require_kind(&self, view: &ArrayView, key: &str, kind: Kind, expected: &str) -> Result<()> {
        if view.dtype().kind != kind {
            return Err(self.err(key, expected, format!("dtype {}", view.dtype().descr)));
        }
        Ok(())
    }

    fn require_finite<T: Copy + std::fmt::Display>(
        &self,
        key: &str,
        values: &[T],
        finite: impl Fn(T) -> bool,
    ) -> Result<()> {
        match values.iter().position(|v| !finite(*v)) {
            Some(i) => Err(self.err(
                key,
                "finite values",
                format!("{} at flat index {i}", values[i]),
            )),
            None => Ok(()),
        }
    }

    /// A float array as f32 (shape, values), every value finite.
    pub fn real(&self, key: &str, expected: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let view = self.array(key, expected)?;
        self.require_kind(&view, key, Kind::Float, expected)?;
        let values = view.to_f32_vec()?;
        self.require_finite(key, &values, f32::is_finite)?;
        Ok((view.shape().to_vec(), values))
    }

    /// A float array as f64 (shape, values), every value finite.
    pub fn real_f64(&self, key: &str, expected: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let view = self.array(key, expected)?;
        self.require_kind(&view, key, Kind::Float, expected)?;
        let values = view.to_f64_vec()?;
        self.require_finite(key, &values, f64::is_finite)?;
        Ok((view.shape().to_vec(), values))
    }

    /// A complex array (shape, values), every value finite.
    pub fn complex(&self, key: &str, expected: &str) -> Result<(Vec<usize>, Vec<Complex32>)> {
        let view = self.array(key, expected)?;
        self.require_kind(&view, key, Kind::Complex, expected)?;
        let values = view.to_c64_vec()?;
        self.require_finite(key, &values, |v: Complex32| {
            v.re.is_finite() && v.im.is_finite()
        })?;
        Ok((view.shape().to_vec(), values))
    }

    /// A complex 2-D image, every value finite. Axes of length 1 (a trailing channel) are dropped.
    pub fn complex_image(&self, key: &str, expected: &str) -> Result<ComplexImage> {
        let (shape, values) = self.complex(key, expected)?;
        let dims: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
        match dims[..] {
            [rows, cols] => Ok(ComplexImage::new(rows, cols, values)),
            _ => Err(self.err(key, expected, format!("shape {shape:?}"))),
        }
    }

    /// A bool scalar, `default` when the key is absent.
    pub fn bool_flag(&self, key: &str, default: bool) -> Result<bool> {
        if !self.npz.has(key) {
            return Ok(default);
        }
        let view = self.npz.array(key)?;
        if view.len() != 1 || view.dtype().kind != Kind::Bool {
            return Err(self.err(
                key,
                "a bool scalar",
                format!("dtype {} shape {:?}", view.dtype().descr, view.shape()),
            ));
        }
        Ok(view.to_i64_vec()?[0] != 0)
    }
}
