//! The plan as Slurm job arrays: one sbatch script per phase (array index = the job's place in its
//! phase), each phase after the one before (`afterok`), and the aggregation last. Every task runs
//! `ptycho study run-job`, which writes only its own job's folder and record; the aggregation merges
//! the records. The hub must be on a filesystem every node shares.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::plan::{Phase, Plan};
use super::StudyError;
use crate::io::atomic::write_atomic;

/// What the scripts ask of the scheduler; None: the cluster's default.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: Option<u32>,
    /// The ptycho binary the tasks run (absolute).
    pub program: PathBuf,
    /// The plan's filters as `ptycho study run-job` flags, so that every task sees the same plan.
    pub filter_args: Vec<String>,
}

/// One phase's script.
#[derive(Clone, Debug)]
pub struct PhaseScript {
    pub phase: Phase,
    pub path: PathBuf,
    pub tasks: usize,
}

/// Single-quote `s` for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Write `HUB/slurm/{nn}_{phase}.sbatch` for every phase with jobs, and `HUB/slurm/submit.sh`, which
/// submits them in order with their dependencies. `hub` must be absolute.
pub fn write_scripts(
    hub: &Path,
    plan: &Plan,
    options: &SlurmOptions,
) -> Result<Vec<PhaseScript>, StudyError> {
    let dir = hub.join("slurm");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| StudyError::Input(format!("{}: {e}", logs.display())))?;
    let mut scripts = Vec::new();
    for (k, phase) in Phase::ALL.into_iter().enumerate() {
        let tasks = plan.phase(phase).len();
        if tasks == 0 {
            continue;
        }
        let mut s = String::from("#!/bin/bash\n");
        s += &format!("#SBATCH --job-name=ptycho-{}\n", phase.name());
        if phase != Phase::Aggregate {
            s += &format!("#SBATCH --array=1-{tasks}\n");
        }
        let pattern = if phase == Phase::Aggregate {
            "%x-%j.out"
        } else {
            "%x-%A_%a.out"
        };
        s += &format!("#SBATCH --output={}\n", logs.join(pattern).display());
        if let Some(p) = &options.partition {
            s += &format!("#SBATCH --partition={p}\n");
        }
        if let Some(t) = &options.time {
            s += &format!("#SBATCH --time={t}\n");
        }
        if let Some(g) = options.gpus_per_task {
            s += &format!("#SBATCH --gpus-per-task={g}\n");
        }
        if let Some(c) = options.cpus_per_task {
            s += &format!("#SBATCH --cpus-per-task={c}\n");
        }
        s += &format!(
            "# Phase {} ({}): {tasks} job(s) of the plan in {}. The hub must be on a filesystem every\n\
             # node shares: each task reads its study.toml and writes its own job's folder and record.\n",
            phase.letter(),
            phase.name(),
            hub.display()
        );
        s += "set -euo pipefail\n";
        let index = if phase == Phase::Aggregate {
            "1".to_string()
        } else {
            "\"$SLURM_ARRAY_TASK_ID\"".into()
        };
        let mut command = vec![
            quote(&options.program.display().to_string()),
            "study".into(),
            "run-job".into(),
            "--hub".into(),
            quote(&hub.display().to_string()),
            "--phase".into(),
            phase.name().into(),
            "--index".into(),
            index,
        ];
        command.extend(options.filter_args.iter().map(|a| quote(a)));
        s += &format!("exec {}\n", command.join(" "));
        let path = dir.join(format!("{k}_{}.sbatch", phase.name()));
        write_atomic(&path, s.as_bytes())
            .map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))?;
        scripts.push(PhaseScript { phase, path, tasks });
    }
    let mut submit = String::from(
        "#!/bin/bash\n# Submit the study's phases in order, each after the one before succeeded.\nset -euo pipefail\nprevious=\"\"\n",
    );
    for script in &scripts {
        submit += &format!(
            "id=$(sbatch --parsable ${{previous:+--dependency=afterok:$previous}} {})\nid=${{id%%;*}}\necho \"{} $id\"\nprevious=$id\n",
            quote(&script.path.display().to_string()),
            script.phase.name()
        );
    }
    let path = dir.join("submit.sh");
    write_atomic(&path, submit.as_bytes())
        .map_err(|e| StudyError::Input(format!("{}: {e}", path.display())))?;
    Ok(scripts)
}

/// Submit the scripts with `sbatch`, each phase after the one before (`afterok`); the job ids.
pub fn submit(scripts: &[PhaseScript]) -> Result<Vec<(Phase, String)>, StudyError> {
    let mut ids: Vec<(Phase, String)> = Vec::new();
    for script in scripts {
        let mut command = Command::new("sbatch");
        command.arg("--parsable");
        if let Some((_, previous)) = ids.last() {
            command.arg(format!("--dependency=afterok:{previous}"));
        }
        command.arg(&script.path);
        let out = command.output().map_err(|e| {
            StudyError::Input(format!(
                "sbatch: {e} (is Slurm installed here? the scripts are in {})",
                script
                    .path
                    .parent()
                    .map_or(String::new(), |p| p.display().to_string())
            ))
        })?;
        if !out.status.success() {
            return Err(StudyError::Input(format!(
                "sbatch {}: {}",
                script.path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            return Err(StudyError::Input(format!(
                "sbatch {} printed no job id",
                script.path.display()
            )));
        }
        ids.push((script.phase, id));
    }
    Ok(ids)
}
