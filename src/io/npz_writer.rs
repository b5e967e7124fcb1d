//! Writing NPZ archives numpy reads: stored members by default (so outputs can be memory-mapped), deflate
//! on request. Atomic: the archive is written to a temporary file in the target folder, synced, and renamed
//! over the target only when complete; an error or a crash leaves any earlier file untouched.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ptycho_kernels::Complex32;
use zip::write::SimpleFileOptions;

use crate::data::{DataError, Result};
use crate::io::atomic::temp_output;
use crate::io::npy::{Kind, NpyDtype, NpyHeader};

pub struct NpzWriter {
    target: PathBuf,
    tmp: tempfile::NamedTempFile,
    zip: zip::ZipWriter<File>,
    compress: bool,
}

impl NpzWriter {
    pub fn create(target: &Path, compress: bool) -> Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(dir.display(), e))?;
        let name = target
            .file_name()
            .map_or("out".into(), |n| n.to_string_lossy().to_string());
        let tmp = temp_output(&dir, &name).map_err(|e| DataError::io(dir.display(), e))?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| DataError::io(target.display(), e))?;
        Ok(Self {
            target: target.to_path_buf(),
            tmp,
            zip: zip::ZipWriter::new(file),
            compress,
        })
    }

    /// Start member `key`.npy for `bytes` bytes of data and return the writer of its data.
    fn start(
        &mut self,
        key: &str,
        dtype: &NpyDtype,
        shape: &[usize],
    ) -> Result<&mut zip::ZipWriter<File>> {
        let header = NpyHeader::encode(dtype, shape);
        let data_bytes = shape.iter().product::<usize>() as u64 * dtype.size as u64;
        let method = if self.compress {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(data_bytes + header.len() as u64 >= u32::MAX as u64)
            .with_alignment(64);
        let shown = self.target.display().to_string();
        self.zip
            .start_file(format!("{key}.npy"), options)
            .map_err(|e| DataError::format(&shown, e.to_string()))?;
        self.zip
            .write_all(&header)
            .map_err(|e| DataError::io(&shown, e))?;
        Ok(&mut self.zip)
    }

    /// Add an array whose data `fill` streams in C order (for arrays too large to hold at once).
    pub fn add_streamed(
        &mut self,
        key: &str,
        dtype: &NpyDtype,
        shape: &[usize],
        fill: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let writer = self.start(key, dtype, shape)?;
        fill(writer)
    }

    fn add_bytes(
        &mut self,
        key: &str,
        dtype: NpyDtype,
        shape: &[usize],
        data: &[u8],
    ) -> Result<()> {
        let expected = shape.iter().product::<usize>() * dtype.size;
        if expected != data.len() {
            return Err(DataError::format(
                self.target.display(),
                format!(
                    "'{key}': shape {shape:?} needs {expected} bytes, got {}",
                    data.len()
                ),
            ));
        }
        let shown = self.target.display().to_string();
        self.start(key, &dtype, shape)?
            .write_all(data)
            .map_err(|e| DataError::io(shown, e))
    }

    pub fn add_f32(&mut self, key: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        self.add_bytes(
            key,
            NpyDtype::little(Kind::Float, 4),
            shape,
            bytemuck::cast_slice(data),
        )
    }

    pub fn add_f64(&mut self, key: &str, shape: &[usize], data: &[f64]) -> Result<()> {
        self.add_bytes(
            key,
            NpyDtype::little(Kind::Float, 8),
            shape,
            bytemuck::cast_slice(data),
        )
    }

    pub fn add_c64(&mut self, key: &str, shape: &[usize], data: &[Complex32]) -> Result<()> {
        self.add_bytes(
            key,
            NpyDtype::little(Kind::Complex, 8),
            shape,
            bytemuck::cast_slice(data),
        )
    }

    pub fn add_i64(&mut self, key: &str, shape: &[usize], data: &[i64]) -> Result<()> {
        self.add_bytes(
            key,
            NpyDtype::little(Kind::Int, 8),
            shape,
            bytemuck::cast_slice(data),
        )
    }

    /// A 0-d unicode array (`<U{len}`), which numpy reads without allow_pickle.
    pub fn add_text(&mut self, key: &str, text: &str) -> Result<()> {
        let chars: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let dtype = NpyDtype::little(Kind::Unicode, 4 * chars.len().max(1));
        let mut data: Vec<u8> = chars.iter().flat_map(|c| c.to_le_bytes()).collect();
        data.resize(dtype.size, 0);
        self.add_bytes(key, dtype, &[], &data)
    }

    /// Finish the archive, sync it, and move it to the target path.
    pub fn finish(self) -> Result<()> {
        let shown = self.target.display().to_string();
        let file = self
            .zip
            .finish()
            .map_err(|e| DataError::format(&shown, e.to_string()))?;
        file.sync_all().map_err(|e| DataError::io(&shown, e))?;
        drop(file);
        self.tmp
            .persist(&self.target)
            .map_err(|e| DataError::io(&shown, e.error))?;
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the rename itself durable.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
