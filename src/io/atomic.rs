//! Atomic writes: the bytes go to a temporary file in the target's folder, are synced, and the file is
//! renamed over the target only when complete, so the target is either the old file or the whole new
//! one. Temporaries are named `.NAME.XXXXXX.tmp`; a run killed before it could remove its own leaves
//! them behind, and the next command that locks the folder removes them (`persist::output_dir`).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// A temporary file in `dir` for an output named `name`, readable by others as a normal output would
/// be (tempfile's default is owner-only); it becomes the output by `persist`.
pub fn temp_output(dir: &Path, name: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

/// Write `bytes` to `path` atomically, creating its folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or("output".into(), |n| n.to_string_lossy().to_string());
    let mut tmp = temp_output(dir, &name)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Write `value` as pretty-printed JSON to `path` atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.json");
        write_json(&path, &serde_json::json!({"a": 1})).unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["out.json"]);
    }
}
