//! Reading NPZ archives. Stored members are memory-mapped and sliced in place; deflated members are
//! decompressed once, streaming, into a cache file that is then mapped. Nothing is read whole into RAM.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use ptycho_kernels::Complex32;

use crate::data::{DataError, Result};
use crate::io::npy::{complex_at, decode_f32, real_at, Kind, NpyDtype, NpyHeader};

/// Largest .npy header we accept: numpy writes a few hundred bytes.
const MAX_HEADER_BYTES: usize = 1 << 20;

#[derive(Clone, Debug)]
struct Member {
    index: usize,
    compressed: bool,
    data_start: u64,
    size: u64,
    compressed_size: u64,
    /// The CRC-32 the archive records for the member's uncompressed bytes.
    crc32: u32,
}

/// An open NPZ archive.
pub struct NpzFile {
    path: PathBuf,
    map: Arc<Mmap>,
    members: BTreeMap<String, Member>,
    cache_dir: Option<PathBuf>,
}

/// One array of an archive: its header and its bytes, wherever they are mapped.
#[derive(Clone)]
pub struct ArrayView {
    file: String,
    key: String,
    header: NpyHeader,
    map: Arc<Mmap>,
    /// Offset of the first data byte in `map`.
    offset: usize,
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| DataError::io(path.display(), e))?;
    // Safety: the map is read-only; a file truncated under us is a user error that can fault reads,
    // as with every reader that maps (numpy's mmap_mode included).
    unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path.display(), e))
}

impl NpzFile {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, None)
    }

    /// Open with deflated members cached in `cache_dir` (default: `.ptycho-cache` beside the file, or the
    /// system temp folder when that is not writable).
    pub fn open_with_cache(path: &Path, cache_dir: Option<&Path>) -> Result<Self> {
        let shown = path.display();
        let map = Arc::new(map_file(path)?);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&map[..])).map_err(|e| {
            DataError::format(&shown, format!("not a readable NPZ (zip) archive: {e}"))
        })?;
        let mut members = BTreeMap::new();
        for index in 0..archive.len() {
            let entry = archive.by_index_raw(index).map_err(|e| {
                DataError::format(&shown, format!("zip entry {index} is corrupt: {e}"))
            })?;
            let name = entry
                .name()
                .map_err(|e| DataError::format(&shown, e.to_string()))?
                .to_string();
            let compressed = match entry.compression() {
                zip::CompressionMethod::Stored => false,
                zip::CompressionMethod::Deflated => true,
                other => {
                    return Err(DataError::format(
                        &shown,
                        format!("member '{name}' uses unsupported compression {other}"),
                    ))
                }
            };
            let data_start = entry
                .data_start()
                .ok_or_else(|| DataError::format(&shown, format!("member '{name}' has no data")))?;
            let member = Member {
                index,
                compressed,
                data_start,
                size: entry.size(),
                compressed_size: entry.compressed_size(),
                crc32: entry.crc32(),
            };
            let stored_end = data_start.checked_add(member.compressed_size);
            if stored_end.is_none_or(|end| end > map.len() as u64) {
                return Err(DataError::format(
                    &shown,
                    format!("member '{name}' runs past the end of the file (truncated?)"),
                ));
            }
            let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
            members.insert(key, member);
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            members,
            cache_dir: cache_dir.map(Path::to_path_buf),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn keys(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    pub fn has(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }

    pub fn is_compressed(&self, key: &str) -> bool {
        self.members.get(key).is_some_and(|m| m.compressed)
    }

    /// The header of `key` without decompressing or mapping its data.
    pub fn header(&self, key: &str) -> Result<NpyHeader> {
        let shown = self.path.display();
        let member = self.member(key)?;
        if member.compressed {
            let mut archive = self.archive()?;
            let mut entry = self.entry(&mut archive, member.index)?;
            let mut head = Vec::new();
            (&mut entry)
                .take(MAX_HEADER_BYTES as u64)
                .read_to_end(&mut head)
                .map_err(|e| {
                    DataError::format(&shown, format!("member '{key}' does not inflate: {e}"))
                })?;
            return NpyHeader::parse(&head)
                .map_err(|m| DataError::format(&shown, format!("'{key}': {m}")));
        }
        let start = member.data_start as usize;
        let end = (start + MAX_HEADER_BYTES).min(start + member.size as usize);
        NpyHeader::parse(&self.map[start..end])
            .map_err(|m| DataError::format(&shown, format!("'{key}': {m}")))
    }

    /// The bytes after the .npy header of `key`, read into memory: for object arrays (a pickle), which
    /// have no fixed element size. At most `limit` bytes.
    pub fn object_payload(&self, key: &str, limit: u64) -> Result<Vec<u8>> {
        let shown = self.path.display();
        let member = self.member(key)?;
        if member.size > limit {
            return Err(DataError::format(
                &shown,
                format!(
                    "'{key}' holds {} bytes; at most {limit} are read",
                    member.size
                ),
            ));
        }
        let mut archive = self.archive()?;
        let mut entry = self.entry(&mut archive, member.index)?;
        let mut all = Vec::new();
        (&mut entry)
            .take(limit)
            .read_to_end(&mut all)
            .map_err(|e| DataError::format(&shown, format!("member '{key}' does not read: {e}")))?;
        let header = NpyHeader::parse(&all)
            .map_err(|m| DataError::format(&shown, format!("'{key}': {m}")))?;
        Ok(all.split_off(header.data_offset))
    }

    fn archive(&self) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>> {
        zip::ZipArchive::new(std::io::Cursor::new(&self.map[..]))
            .map_err(|e| DataError::format(self.path.display(), e.to_string()))
    }

    /// The decompressing reader of member `index`.
    fn entry<'a, 'm>(
        &self,
        archive: &'a mut zip::ZipArchive<std::io::Cursor<&'m [u8]>>,
        index: usize,
    ) -> Result<zip::read::ZipFile<'a, std::io::Cursor<&'m [u8]>>> {
        archive
            .by_index(index)
            .map_err(|e| DataError::format(self.path.display(), e.to_string()))
    }

    fn member(&self, key: &str) -> Result<&Member> {
        self.members.get(key).ok_or_else(|| {
            DataError::format(
                self.path.display(),
                format!("no key '{key}' (keys present: {})", self.keys().join(", ")),
            )
        })
    }

    /// For a stored member: the CRC-32 its archive records and the byte range of the whole member (npy
    /// header and data) in the file's mapping, which stored arrays' views share. None for deflated
    /// members, whose CRC the zip reader checks as it inflates them.
    pub fn stored_crc(&self, key: &str) -> Result<Option<(u32, std::ops::Range<usize>)>> {
        let member = self.member(key)?;
        Ok((!member.compressed).then(|| {
            let start = member.data_start as usize;
            (member.crc32, start..start + member.size as usize)
        }))
    }

    /// Check a stored member's bytes against its CRC-32 (a full read; nothing to do when deflated).
    pub fn check_crc(&self, key: &str) -> Result<()> {
        match self.stored_crc(key)? {
            Some((expected, range)) => {
                self.crc_verdict(key, expected, crc32fast::hash(&self.map[range]))
            }
            None => Ok(()),
        }
    }

    /// The error for a member whose bytes do not match the CRC-32 its archive records.
    pub fn crc_verdict(&self, key: &str, expected: u32, found: u32) -> Result<()> {
        if expected == found {
            return Ok(());
        }
        Err(DataError::format(
            self.path.display(),
            format!(
                "member '{key}.npy' fails its CRC-32 check (the archive records {expected:08x}, \
                 its bytes give {found:08x}): the file was changed or damaged after it was written"
            ),
        ))
    }

    /// The array `key`, mapped in place (stored) or through the decompression cache (deflated).
    pub fn array(&self, key: &str) -> Result<ArrayView> {
        let shown = self.path.display().to_string();
        let member = self.member(key)?.clone();
        let (map, base, available) = if member.compressed {
            let cached = self.inflate_to_cache(key, &member)?;
            let len = cached.len() as u64;
            (Arc::new(cached), 0usize, len)
        } else {
            (self.map.clone(), member.data_start as usize, member.size)
        };
        let head_end = (base + MAX_HEADER_BYTES).min(base + available as usize);
        let header = NpyHeader::parse(&map[base..head_end])
            .map_err(|m| DataError::format(&shown, format!("'{key}': {m}")))?;
        let needed = header
            .data_bytes()
            .map_err(|m| DataError::format(&shown, format!("'{key}': {m}")))?;
        let have = available.saturating_sub(header.data_offset as u64);
        if needed != have {
            return Err(DataError::format(
                &shown,
                format!("'{key}': header claims shape {:?} of {} ({needed} bytes) but the member holds {have} bytes", header.shape, header.dtype.descr),
            ));
        }
        Ok(ArrayView {
            file: shown,
            key: key.to_string(),
            offset: base + header.data_offset,
            header,
            map,
        })
    }

    fn cache_path(&self, key: &str) -> Result<PathBuf> {
        let meta =
            std::fs::metadata(&self.path).map_err(|e| DataError::io(self.path.display(), e))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let stamp = format!("{}-{}", meta.len(), modified.map_or(0, |d| d.as_nanos()));
        let stem = self
            .path
            .file_name()
            .map_or("data".into(), |s| s.to_string_lossy().to_string());
        let name = format!("{stem}.{key}.{stamp}.npy");
        let dir = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => {
                let beside = self
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(".ptycho-cache");
                if std::fs::create_dir_all(&beside).is_ok() && writable(&beside) {
                    beside
                } else {
                    std::env::temp_dir().join("ptycho-cache")
                }
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(dir.display(), e))?;
        Ok(dir.join(name))
    }

    fn inflate_to_cache(&self, key: &str, member: &Member) -> Result<Mmap> {
        let target = self.cache_path(key)?;
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == member.size) {
            return map_file(&target);
        }
        let shown = self.path.display();
        let mut archive = self.archive()?;
        let mut entry = self.entry(&mut archive, member.index)?;
        let dir = target.parent().expect("cache files live in a folder");
        let mut tmp = crate::io::atomic::temp_output(dir, key)
            .map_err(|e| DataError::io(dir.display(), e))?;
        // Bounded copy: a member that inflates past its declared size is corrupt, not a reason to fill the disk.
        let copied = std::io::copy(&mut (&mut entry).take(member.size + 1), tmp.as_file_mut())
            .map_err(|e| {
                DataError::format(&shown, format!("member '{key}' does not inflate: {e}"))
            })?;
        if copied != member.size {
            return Err(DataError::format(
                &shown,
                format!(
                    "member '{key}' inflates to {copied} bytes, not the declared {}",
                    member.size
                ),
            ));
        }
        tmp.as_file_mut()
            .flush()
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| DataError::io(dir.display(), e))?;
        tmp.persist(&target)
            .map_err(|e| DataError::io(target.display(), e.error))?;
        remove_stale_copies(&target);
        map_file(&target)
    }
}

/// Cache entries are named `{file}.{key}.{size}-{mtime}.npy`: when a source file changes, the copy
/// inflated from its earlier version is removed, so the cache holds one copy per member rather than
/// one per version. Best effort: a copy that cannot be removed costs only disk.
fn remove_stale_copies(current: &Path) {
    let (Some(dir), Some(name)) = (current.parent(), current.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    // Strip "{stamp}.npy" to get the "{file}.{key}." prefix the versions share.
    let Some(prefix) = name
        .strip_suffix(".npy")
        .and_then(|n| n.rsplit_once('.'))
        .map(|(p, _)| format!("{p}."))
    else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let other = entry.file_name().to_string_lossy().to_string();
        let stamp = other
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".npy"));
        if other != name && stamp.is_some_and(|s| !s.contains('.')) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn writable(dir: &Path) -> bool {
    tempfile::NamedTempFile::new_in(dir).is_ok()
}

impl std::fmt::Debug for ArrayView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ArrayView({}: '{}' {} {:?})",
            self.file, self.key, self.header.dtype.descr, self.header.shape
        )
    }
}

impl ArrayView {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    pub fn dtype(&self) -> &NpyDtype {
        &self.header.dtype
    }

    pub fn fortran_order(&self) -> bool {
        self.header.fortran_order
    }

    pub fn len(&self) -> usize {
        self.header.len()
    }

    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
    }

    /// The raw element bytes as stored (any alignment, the stored byte order and memory order).
    pub fn bytes(&self) -> &[u8] {
        let size = self.header.dtype.size * self.len();
        &self.map[self.offset..self.offset + size]
    }

    /// The mapping this view lives in, and the byte range of its data.
    pub fn mapping(&self) -> (&Arc<Mmap>, std::ops::Range<usize>) {
        (
            &self.map,
            self.offset..self.offset + self.header.dtype.size * self.len(),
        )
    }

    /// Drop this process's mapping of the pages holding elements `[first, first + count)` (storage
    /// order); they stay in the page cache and fault back in if read again. Keeps the resident memory of
    /// a pass over a large array bounded.
    pub fn release(&self, first: usize, count: usize) {
        const PAGE: usize = 4096;
        // The kernel maps up to 64 KiB around a faulting page (fault-around); release those too.
        const AROUND: usize = 64 << 10;
        let size = self.header.dtype.size;
        let start = (self.offset + first * size).saturating_sub(AROUND) / PAGE * PAGE;
        let end = (self.offset + (first + count) * size + AROUND).min(self.map.len());
        if end > start {
            // Safety: a read-only file mapping; released pages are read back from the file when touched.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }

    /// Storage position of the element at C-order flat index `i`.
    fn storage_index(&self, i: usize) -> usize {
        if !self.header.fortran_order || self.shape().len() < 2 {
            return i;
        }
        // Unravel the C-order index from the last axis while walking the Fortran strides down from the
        // largest, so no per-element allocation is needed (this runs once per element read).
        let shape = self.shape();
        let mut rem = i;
        let mut stride: usize = shape[..shape.len() - 1].iter().product();
        let mut offset = 0;
        for d in (0..shape.len()).rev() {
            offset += (rem % shape[d]) * stride;
            rem /= shape[d];
            if d > 0 {
                stride /= shape[d - 1];
            }
        }
        offset
    }

    /// The raw bytes (in the file's byte order) of elements `[first, first + count)` in C order.
    pub fn c_order_bytes(&self, first: usize, count: usize) -> Result<Vec<u8>> {
        if first.checked_add(count).is_none_or(|e| e > self.len()) {
            return Err(DataError::format(
                &self.file,
                format!("'{}': read past the end", self.key),
            ));
        }
        let size = self.header.dtype.size;
        if !self.header.fortran_order || self.shape().len() < 2 {
            return Ok(self.bytes()[first * size..(first + count) * size].to_vec());
        }
        Ok((first..first + count)
            .flat_map(|i| self.element(i).iter().copied())
            .collect())
    }

    fn element(&self, i: usize) -> &[u8] {
        let size = self.header.dtype.size;
        let s = self.storage_index(i) * size;
        &self.bytes()[s..s + size]
    }

    fn require(&self, ok: bool, expected: &str) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(DataError::format(
                &self.file,
                format!(
                    "'{}': expected {expected}, found dtype {}",
                    self.key, self.header.dtype.descr
                ),
            ))
        }
    }

    /// All elements as f64 in C order (numbers and booleans only).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.require(self.header.dtype.is_real_number(), "a real number dtype")?;
        Ok((0..self.len())
            .map(|i| real_at(&self.header.dtype, self.element(i)))
            .collect())
    }

    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        self.require(
            matches!(self.header.dtype.kind, Kind::Int | Kind::UInt | Kind::Bool),
            "an integer dtype",
        )?;
        Ok(self.to_f64_vec()?.into_iter().map(|v| v as i64).collect())
    }

    /// All elements as complex64 in C order (complex dtypes only).
    pub fn to_c64_vec(&self) -> Result<Vec<Complex32>> {
        self.require(self.header.dtype.kind == Kind::Complex, "a complex dtype")?;
        Ok((0..self.len())
            .map(|i| {
                let (re, im) = complex_at(&self.header.dtype, self.element(i));
                Complex32::new(re as f32, im as f32)
            })
            .collect())
    }

    /// Elements `[first, first + out.len())` in C order as complex64 (complex dtypes only).
    pub fn read_c64(&self, first: usize, out: &mut [Complex32]) -> Result<()> {
        self.require(self.header.dtype.kind == Kind::Complex, "a complex dtype")?;
        if first.checked_add(out.len()).is_none_or(|e| e > self.len()) {
            return Err(DataError::format(
                &self.file,
                format!("'{}': read past the end", self.key),
            ));
        }
        for (k, o) in out.iter_mut().enumerate() {
            let (re, im) = complex_at(&self.header.dtype, self.element(first + k));
            *o = Complex32::new(re as f32, im as f32);
        }
        Ok(())
    }

    /// Elements `[first, first + out.len())` in C order as f32 (real dtypes), with a fast path for
    /// contiguous little-endian f32.
    pub fn read_f32(&self, first: usize, out: &mut [f32]) -> Result<()> {
        self.require(self.header.dtype.is_real_number(), "a real number dtype")?;
        let end = first.checked_add(out.len()).filter(|&e| e <= self.len());
        if end.is_none() {
            return Err(DataError::format(
                &self.file,
                format!("'{}': read past the end", self.key),
            ));
        }
        let size = self.header.dtype.size;
        if !self.header.fortran_order || self.shape().len() < 2 {
            decode_f32(
                &self.header.dtype,
                &self.bytes()[first * size..(first + out.len()) * size],
                out,
            );
        } else {
            for (k, o) in out.iter_mut().enumerate() {
                *o = real_at(&self.header.dtype, self.element(first + k)) as f32;
            }
        }
        Ok(())
    }

    /// The whole array as f32 in C order.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.len()];
        self.read_f32(0, &mut out)?;
        Ok(out)
    }

    /// A 0-d (or 1-element) unicode array as a String.
    pub fn to_unicode_string(&self) -> Result<String> {
        self.require(self.header.dtype.kind == Kind::Unicode, "a unicode string")?;
        let big = self.header.dtype.big_endian;
        let text: String = self
            .bytes()
            .chunks_exact(4)
            .map(|c| {
                let w = [c[0], c[1], c[2], c[3]];
                if big {
                    u32::from_be_bytes(w)
                } else {
                    u32::from_le_bytes(w)
                }
            })
            .take_while(|&c| c != 0)
            .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        Ok(text)
    }
}
