//! Each job's record, `HUB/jobs/{id}.json`: its status, its error, and the SHA-256 of every file it
//! read and wrote. One file per job, written atomically by the job alone, so that tasks running at
//! once (Slurm arrays) never write the same file; the aggregation merges them.
//!
//! A job is done when its record says success, every output still has the recorded digest, and
//! every input still has the digest it had when the job ran. Anything else runs it again: a killed
//! run, a failed job, an output deleted or changed, or an upstream job redone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::plan::{Arm, Job, Phase};
use super::StudyError;
use crate::io::atomic::write_json;
use crate::persist::digest::sha256_file;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Relative to the hub.
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub number: usize,
    pub phase: Phase,
    pub dose: Option<f64>,
    pub view: Option<String>,
    pub arm: Option<Arm>,
    pub gridsize: Option<usize>,
    pub status: Status,
    pub error: Option<String>,
    /// Relative to the hub.
    pub log_path: String,
    pub started: String,
    pub seconds: f64,
    pub inputs: Vec<FileDigest>,
    pub outputs: Vec<FileDigest>,
    /// What the job reports beyond its files (a training's final loss, the arms compared).
    pub details: serde_json::Value,
}

impl JobRecord {
    pub fn path(hub: &Path, id: &str) -> PathBuf {
        hub.join("jobs").join(format!("{id}.json"))
    }

    pub fn new(job: &Job, started: String) -> Self {
        Self {
            id: job.id.clone(),
            number: job.number,
            phase: job.phase,
            dose: job.dose,
            view: job.view.clone(),
            arm: job.arm,
            gridsize: job.gridsize,
            status: Status::Failed,
            error: None,
            log_path: job.log_path().display().to_string(),
            started,
            seconds: 0.0,
            inputs: Vec::new(),
            outputs: Vec::new(),
            details: serde_json::Value::Null,
        }
    }

    /// The record of `id`, if one was written; an unreadable record counts as none (the job runs
    /// again), and says so.
    pub fn read(hub: &Path, id: &str) -> Result<Option<Self>, String> {
        let path = Self::path(hub, id);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: not a job record ({e})", path.display()))
    }

    pub fn write(&self, hub: &Path) -> Result<(), StudyError> {
        let path = Self::path(hub, &self.id);
        write_json(&path, self).map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))
    }

    /// The record's details as a JSON object (empty when none).
    pub fn detail(&self, key: &str) -> Option<&serde_json::Value> {
        self.details.get(key)
    }
}

/// Digests of files under the hub, each computed once per (size, modification time).
#[derive(Default)]
pub struct Digests {
    known: HashMap<PathBuf, (u64, Option<SystemTime>, String)>,
}

impl Digests {
    /// The digest of `relative` under `hub`; None when the file does not exist.
    pub fn of(&mut self, hub: &Path, relative: &Path) -> Result<Option<FileDigest>, StudyError> {
        let path = hub.join(relative);
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StudyError::Input(format!("{}: {e}", path.display()))),
        };
        let stamp = (meta.len(), meta.modified().ok());
        let sha = match self.known.get(&path) {
            Some((size, modified, sha)) if (*size, *modified) == stamp => sha.clone(),
            _ => {
                let (sha, _) = sha256_file(&path)
                    .map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))?;
                self.known
                    .insert(path.clone(), (stamp.0, stamp.1, sha.clone()));
                sha
            }
        };
        Ok(Some(FileDigest {
            path: relative.display().to_string(),
            sha256: sha,
            size_bytes: stamp.0,
        }))
    }

    /// Digests of the files of `paths` that exist.
    pub fn existing(
        &mut self,
        hub: &Path,
        paths: &[PathBuf],
    ) -> Result<Vec<FileDigest>, StudyError> {
        let mut found = Vec::new();
        for p in paths {
            found.extend(self.of(hub, p)?);
        }
        Ok(found)
    }

    /// What the job would read now: every required input and the optional ones that exist.
    pub fn inputs_of(&mut self, hub: &Path, job: &Job) -> Result<Vec<FileDigest>, StudyError> {
        let mut inputs = self.existing(hub, &job.inputs)?;
        inputs.extend(self.existing(hub, &job.optional_inputs)?);
        Ok(inputs)
    }

    /// Why `job` must run, or None when its record shows it done with today's inputs and outputs.
    pub fn stale(
        &mut self,
        hub: &Path,
        job: &Job,
        record: Option<&JobRecord>,
    ) -> Result<Option<String>, StudyError> {
        let Some(record) = record else {
            return Ok(Some("no record".into()));
        };
        if record.status != Status::Success {
            return Ok(Some(format!(
                "it failed before: {}",
                record.error.as_deref().unwrap_or("no error recorded")
            )));
        }
        for output in &record.outputs {
            match self.of(hub, Path::new(&output.path))? {
                None => return Ok(Some(format!("{} is missing", output.path))),
                Some(now) if now != *output => {
                    return Ok(Some(format!(
                        "{} changed since it was written",
                        output.path
                    )))
                }
                Some(_) => {}
            }
        }
        let mut now = self.inputs_of(hub, job)?;
        let mut then = record.inputs.clone();
        now.sort_by(|a, b| a.path.cmp(&b.path));
        then.sort_by(|a, b| a.path.cmp(&b.path));
        if now != then {
            let changed: Vec<&str> = now
                .iter()
                .filter(|d| !then.contains(d))
                .map(|d| d.path.as_str())
                .chain(
                    then.iter()
                        .filter(|d| !now.iter().any(|n| n.path == d.path))
                        .map(|d| d.path.as_str()),
                )
                .collect();
            return Ok(Some(format!(
                "its inputs changed since it ran: {}",
                changed.join(", ")
            )));
        }
        Ok(None)
    }
}
