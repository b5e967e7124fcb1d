//! Output folders. Every command that writes a folder first takes an exclusive advisory lock on it
//! (`.ptycho.lock` inside, held until the command ends), so a second run into the same folder fails at
//! once instead of interleaving its files with the first's; and it refuses to replace outputs already
//! there unless the user asked for it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::PersistError;

/// The lock file inside a locked output folder.
pub const LOCK_FILE: &str = ".ptycho.lock";

/// A locked output folder; the lock is released when this is dropped (or the process ends).
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    _lock: File,
    /// The folder did not exist before: removed again if nothing but the lock was written.
    created: bool,
}

impl OutputDir {
    /// Create `path` if needed and lock it for this process; an error at once when another process
    /// holds it.
    pub fn lock(path: &Path) -> Result<Self, PersistError> {
        if path.exists() && !path.is_dir() {
            return Err(PersistError::Invalid(format!(
                "{}: exists and is not a folder (give a folder for the outputs)",
                path.display()
            )));
        }
        let ancestor_file = path
            .ancestors()
            .skip(1)
            .find(|a| !a.as_os_str().is_empty() && a.exists() && !a.is_dir());
        if let Some(file) = ancestor_file {
            return Err(PersistError::Invalid(format!(
                "{}: cannot create this folder, {} is a file",
                path.display(),
                file.display()
            )));
        }
        let created = !path.exists();
        std::fs::create_dir_all(path).map_err(|e| PersistError::io(path.display(), e))?;
        let lock_path = path.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| PersistError::io(lock_path.display(), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                return Err(PersistError::Invalid(format!(
                    "{}: another ptycho run is writing into this folder{}; wait for it to end or \
                     choose another output folder",
                    path.display(),
                    match holder.trim() {
                        "" => String::new(),
                        h => format!(" ({h})"),
                    }
                )));
            }
            Err(TryLockError::Error(e)) => return Err(PersistError::io(lock_path.display(), e)),
        }
        // Who holds it, for the message a second run prints.
        let command: Vec<String> = std::env::args().collect();
        let _ = file
            .set_len(0)
            .and_then(|_| writeln!(file, "pid {}: {}", std::process::id(), command.join(" ")));
        // With the lock held no other run can be writing here, so temporary files are leftovers of
        // a run that was killed (Ctrl-C, kill -9) before it could remove them.
        remove_temporaries(path, 3);
        Ok(Self {
            path: path.to_path_buf(),
            _lock: file,
            created,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Refuse when any of `names` already exists in the folder, unless `overwrite`; the message
    /// says to pass `flag` to replace them.
    pub fn refuse_existing(
        &self,
        names: &[&str],
        overwrite: bool,
        flag: &str,
    ) -> Result<(), PersistError> {
        self.refuse_existing_or(
            names,
            overwrite,
            &format!("pass {flag} to replace {{them}}"),
        )
    }

    /// As `refuse_existing`, with the user's ways out in `hint` ("{them}" becomes "it" or "them").
    pub fn refuse_existing_or(
        &self,
        names: &[&str],
        overwrite: bool,
        hint: &str,
    ) -> Result<(), PersistError> {
        if overwrite {
            return Ok(());
        }
        let present: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| self.path.join(n).exists())
            .collect();
        if present.is_empty() {
            return Ok(());
        }
        let them = if present.len() == 1 { "it" } else { "them" };
        Err(PersistError::Invalid(format!(
            "{}: already holds {}; {}, or choose another output folder",
            self.path.display(),
            present.join(", "),
            hint.replace("{them}", them)
        )))
    }

    /// The folder's entries other than the lock file, sorted.
    pub fn entries(&self) -> Result<Vec<String>, PersistError> {
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(&self.path).map_err(|e| PersistError::io(self.path.display(), e))?
        {
            let entry = entry.map_err(|e| PersistError::io(self.path.display(), e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name != LOCK_FILE {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Remove `.NAME.XXXX.tmp` files (what `temp_output` creates) in `dir` and its folders, `depth`
/// levels down. Best effort: a leftover that cannot be removed costs only disk.
fn remove_temporaries(dir: &Path, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() && name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        } else if kind.is_dir() && depth > 1 {
            remove_temporaries(&entry.path(), depth - 1);
        }
    }
}

impl Drop for OutputDir {
    /// A command that failed before writing anything leaves no empty folder behind.
    fn drop(&mut self) {
        if self.created && self.entries().is_ok_and(|e| e.is_empty()) {
            let _ = std::fs::remove_file(self.path.join(LOCK_FILE));
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_fails_while_the_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = OutputDir::lock(&out).unwrap();
        let second = OutputDir::lock(&out).unwrap_err().to_string();
        assert!(second.contains("another ptycho run"), "{second}");
        drop(first);
        assert!(!out.exists(), "a folder created for nothing is removed");
        let again = OutputDir::lock(&out).unwrap();
        std::fs::write(again.join("result"), b"x").unwrap();
        drop(again);
        assert!(out.join("result").exists());
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed_when_the_folder_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("dose_1000");
        std::fs::create_dir_all(&sub).unwrap();
        let leftover = sub.join(".patched_train.npz.a1B2c3.tmp");
        std::fs::write(&leftover, b"half a file").unwrap();
        std::fs::write(sub.join("patched_train.npz"), b"kept").unwrap();
        let _out = OutputDir::lock(dir.path()).unwrap();
        assert!(!leftover.exists());
        assert!(sub.join("patched_train.npz").exists());
    }

    #[test]
    fn existing_outputs_are_refused_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::lock(dir.path()).unwrap();
        std::fs::write(out.join("a.npz"), b"x").unwrap();
        let e = out
            .refuse_existing(&["a.npz", "b.npz"], false, "--overwrite")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("already holds a.npz") && e.contains("--overwrite"),
            "{e}"
        );
        out.refuse_existing(&["a.npz"], true, "--overwrite")
            .unwrap();
        out.refuse_existing(&["b.npz"], false, "--overwrite")
            .unwrap();
        assert_eq!(out.entries().unwrap(), vec!["a.npz"]);
    }

    #[test]
    fn an_output_folder_under_a_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = OutputDir::lock(&file.join("sub")).unwrap_err().to_string();
        assert!(e.contains("is a file"), "{e}");
        let e = OutputDir::lock(&file).unwrap_err().to_string();
        assert!(e.contains("not a folder"), "{e}");
    }
}
