//! `ptycho study` (the whole study over its grid, resumable, or as Slurm job arrays) and `ptycho demo`
//! (a miniature study from an embedded config).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::device::{with_backend, AdapterArgs};
use crate::study::config::{StudyConfig, DEFAULT_TOML, DEMO_TOML};
use crate::study::plan::{Arm, Filters, Phase, Plan};
use crate::study::record::{Digests, Status};
use crate::study::report::score_table;
use crate::study::run::{self, shared_hub, Event, Hub, RunSummary};
use crate::study::slurm::{submit, write_scripts, SlurmOptions};
use crate::study::summary::load_entries;

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Run the study: every job of the dose × view × arm grid not already done in the hub.
    Run(RunArgs),
    /// Write the study as Slurm job arrays (HUB/slurm/*.sbatch, one array per phase, each after the
    /// one before) and, with --submit, submit them. The hub must be on a filesystem every node shares.
    Slurm(SlurmArgs),
    /// One job of the plan (what each Slurm array task runs): the INDEX-th job (1-based) of PHASE.
    RunJob(RunJobArgs),
    /// Where a study stands: every job of the hub's plan with its status, time and error, from the
    /// job records (while a run or a Slurm array is going, too).
    Status {
        #[arg(long)]
        hub: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
    },
    /// Print a study.toml: the embedded default (or the demo's), every field with its default.
    Config {
        /// The default settings.
        #[arg(long, conflicts_with = "demo")]
        default: bool,
        /// The miniature study of `ptycho demo`.
        #[arg(long)]
        demo: bool,
    },
}

/// `--dose`, `--view`, `--arm`: the part of the plan to run.
#[derive(Args, Clone)]
pub struct FilterArgs {
    /// Only these doses (comma-separated).
    #[arg(long, value_delimiter = ',')]
    dose: Vec<f64>,
    /// Only these views: dense, sparse, baseline (comma-separated).
    #[arg(long, value_delimiter = ',')]
    view: Vec<String>,
    /// Only these arms: pinn, baseline, iterative (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_arm)]
    arm: Vec<Arm>,
}

impl FilterArgs {
    fn filters(&self) -> Filters {
        Filters {
            doses: self.dose.clone(),
            views: self.view.clone(),
            arms: self.arm.clone(),
        }
    }

    /// The same filters as flags, for the Slurm tasks.
    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut add = |name: &str, values: Vec<String>| {
            if !values.is_empty() {
                flags.push(format!("--{name}={}", values.join(",")));
            }
        };
        add("dose", self.dose.iter().map(|d| d.to_string()).collect());
        add("view", self.view.clone());
        add(
            "arm",
            self.arm.iter().map(|a| a.name().to_string()).collect(),
        );
        flags
    }
}

#[derive(Args)]
pub struct SlurmArgs {
    /// The study's settings [default: the embedded default].
    #[arg(long)]
    config: Option<PathBuf>,
    /// The study's folder, on a filesystem every node shares.
    #[arg(long)]
    hub: PathBuf,
    #[command(flatten)]
    filters: FilterArgs,
    #[arg(long)]
    partition: Option<String>,
    /// Wall-time limit of each task, in Slurm's format (e.g. 02:00:00).
    #[arg(long)]
    time: Option<String>,
    #[arg(long)]
    gpus_per_task: Option<u32>,
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// Submit the scripts with sbatch and print the job ids.
    #[arg(long)]
    submit: bool,
    /// Move the outputs of an earlier run to HUB/archive/{UTC}/ first.
    #[arg(long)]
    clobber: bool,
}

#[derive(Args)]
pub struct RunJobArgs {
    #[arg(long)]
    hub: PathBuf,
    /// simulate, overlap, train, reconstruct, compare or aggregate.
    #[arg(long)]
    phase: String,
    /// 1-based place of the job in its phase (a Slurm array's task id).
    #[arg(long)]
    index: usize,
    #[command(flatten)]
    filters: FilterArgs,
    /// auto, gpu or cpu [default: the hub's study.toml].
    #[arg(long, env = "PTYCHO_DEVICE")]
    device: Option<String>,
    #[command(flatten)]
    adapter: AdapterArgs,
}

#[derive(Args)]
pub struct RunArgs {
    /// The study's settings [default: the embedded default, `ptycho study config --default`].
    #[arg(long)]
    config: Option<PathBuf>,
    /// The study's folder: data/phase_c..f, analysis/, jobs/, logs/.
    #[arg(long)]
    hub: PathBuf,
    /// Print the numbered plan and create nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    filters: FilterArgs,
    /// Move the outputs of an earlier run to HUB/archive/{UTC}/ and start over (needed when the
    /// settings changed).
    #[arg(long)]
    clobber: bool,
    /// auto, gpu or cpu [default: the config's `device`].
    #[arg(long, env = "PTYCHO_DEVICE")]
    device: Option<String>,
    #[command(flatten)]
    adapter: AdapterArgs,
    /// After the run, write a product.h5 for another tool (ptychodus) beside every finished
    /// reconstruction: each iterative one and each arm's inference.
    #[arg(long, value_enum)]
    export: Option<super::interop::Format>,
    #[command(flatten)]
    geometry: super::interop::GeometryArgs,
}

fn parse_arm(s: &str) -> Result<Arm, String> {
    Arm::ALL
        .into_iter()
        .find(|a| a.name() == s)
        .ok_or_else(|| format!("unknown arm '{s}'; expected pinn, baseline or iterative"))
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where the miniature study goes; run again, it reuses every finished job.
    #[arg(long, default_value = "ptycho-demo")]
    hub: PathBuf,
    /// auto, gpu or cpu [default: cpu, whose time the demo's size is chosen for].
    #[arg(long, env = "PTYCHO_DEVICE", default_value = "cpu")]
    device: String,
    #[command(flatten)]
    adapter: AdapterArgs,
}

pub fn study(command: StudyCommand) -> anyhow::Result<()> {
    match command {
        StudyCommand::Config { demo, .. } => {
            outln!("{}", if demo { DEMO_TOML } else { DEFAULT_TOML }.trim_end());
            Ok(())
        }
        StudyCommand::Run(args) => {
            let config = match &args.config {
                Some(path) => StudyConfig::read(path)?,
                None => StudyConfig::parse(DEFAULT_TOML, "the embedded default")?,
            };
            let plan = Plan::new(&config, &args.filters.filters())?;
            if args.dry_run {
                out!("{}", plan.describe());
                outln!("{} jobs; nothing was run or created", plan.jobs.len());
                return Ok(());
            }
            let device = args.device.clone().unwrap_or(config.device.clone());
            let started = Instant::now();
            let summary = run_study(
                &args.hub,
                &config,
                &plan,
                &device,
                &args.adapter,
                args.clobber,
            )?;
            if let Some(super::interop::Format::Ptychodus) = args.export {
                export_products(&args.hub, &plan, args.geometry)?;
            }
            finish(&args.hub, &plan, &summary, started)
        }
        StudyCommand::Slurm(args) => slurm(args),
        StudyCommand::RunJob(args) => run_job(args),
        StudyCommand::Status { hub, filters } => status(&hub, &filters),
    }
}

fn slurm(args: SlurmArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => StudyConfig::read(path)?,
        None => StudyConfig::parse(DEFAULT_TOML, "the embedded default")?,
    };
    let plan = Plan::new(&config, &args.filters.filters())?;
    std::fs::create_dir_all(&args.hub)
        .with_context(|| format!("creating {}", args.hub.display()))?;
    // The tasks run on other nodes, from other working folders.
    let hub_path = std::fs::canonicalize(&args.hub)?;
    let hub = Hub::open(&hub_path, &config, args.clobber)?;
    let options = SlurmOptions {
        partition: args.partition,
        time: args.time,
        gpus_per_task: args.gpus_per_task,
        cpus_per_task: args.cpus_per_task,
        program: std::env::current_exe().context("finding the ptycho binary")?,
        filter_args: args.filters.flags(),
    };
    let scripts = write_scripts(&hub.root, &plan, &options)?;
    drop(hub);
    for script in &scripts {
        outln!(
            "{}: {} task(s) in {}",
            script.phase.name(),
            script.tasks,
            script.path.display()
        );
    }
    if !args.submit {
        outln!(
            "submit with {} (or run again with --submit)",
            hub_path.join("slurm/submit.sh").display()
        );
        return Ok(());
    }
    for (phase, id) in submit(&scripts)? {
        outln!("submitted {} as job {id}", phase.name());
    }
    Ok(())
}

fn status(hub: &Path, filters: &FilterArgs) -> anyhow::Result<()> {
    let config = shared_hub(hub)?;
    let plan = Plan::new(&config, &filters.filters())?;
    let entries = load_entries(hub, &plan);
    let width = plan.jobs.len().to_string().len();
    for entry in &entries {
        let record = entry.record.as_ref();
        outln!(
            "{:>width$}. {:<40} {:<8} {}",
            entry.job.number,
            entry.job.to_string(),
            entry.status(),
            match record {
                Some(r) if r.status == Status::Success => format!("{:.1} s", r.seconds),
                Some(r) => r.error.clone().unwrap_or_default(),
                None => String::new(),
            }
        );
    }
    let done = entries.iter().filter(|e| e.succeeded()).count();
    let failed = entries
        .iter()
        .filter(|e| e.record.is_some() && !e.succeeded())
        .count();
    outln!(
        "{done} of {} jobs done, {failed} failed, {} not run",
        entries.len(),
        entries.len() - done - failed
    );
    Ok(())
}

fn run_job(args: RunJobArgs) -> anyhow::Result<()> {
    let config = shared_hub(&args.hub)?;
    let plan = Plan::new(&config, &args.filters.filters())?;
    let phase = Phase::parse(&args.phase)?;
    let jobs = plan.phase(phase);
    let Some(job) = args.index.checked_sub(1).and_then(|i| jobs.get(i)) else {
        bail!(
            "--index {}: phase {} has {} job(s) in this plan (1-based)",
            args.index,
            phase.name(),
            jobs.len()
        );
    };
    let device = args.device.clone().unwrap_or(config.device.clone());
    let (backend, notice) =
        ptycho_kernels::open_backend(device.parse()?, &args.adapter.selection())?;
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    let mut watcher = Watcher::default();
    let mut digests = Digests::default();
    let record = with_backend!(backend, b => run::run_job(
        &b, &args.hub, &config, &plan, job, &mut digests, &mut |e| watcher.event(e)
    ))?;
    // A failed job is in its record and the phases after it go on (afterok); only the aggregation
    // reports failures in its exit status.
    if phase == Phase::Aggregate {
        let failed = load_entries(&args.hub, &plan)
            .iter()
            .filter(|e| !e.succeeded())
            .count();
        outln!(
            "{}",
            score_table(&load_entries(&args.hub, &plan)).trim_end()
        );
        if failed > 0 {
            bail!(
                "{failed} job(s) failed or did not run (see {})",
                args.hub.join("analysis/blocker.log").display()
            );
        }
    } else if record.is_none() {
        outln!("{job}: done already");
    }
    Ok(())
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let config = StudyConfig::parse(DEMO_TOML, "the demo's settings")?;
    let plan = Plan::new(&config, &Filters::default())?;
    outln!(
        "ptycho demo: a miniature dose/overlap study in {} ({} jobs: simulate, cut the views, train \
         the PINN and the baseline, reconstruct iteratively, compare with the truth)",
        args.hub.display(),
        plan.jobs.len()
    );
    let started = Instant::now();
    let summary = run_study(
        &args.hub,
        &config,
        &plan,
        &args.device,
        &args.adapter,
        false,
    )?;
    finish(&args.hub, &plan, &summary, started)
}

fn run_study(
    hub_root: &Path,
    config: &StudyConfig,
    plan: &Plan,
    device: &str,
    adapter: &AdapterArgs,
    clobber: bool,
) -> anyhow::Result<RunSummary> {
    let choice: ptycho_kernels::DeviceChoice = device.parse()?;
    let hub = Hub::open(hub_root, config, clobber)?;
    let (backend, notice) = ptycho_kernels::open_backend(choice, &adapter.selection())?;
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    let mut watcher = Watcher::default();
    let summary =
        with_backend!(backend, b => run::run(&b, &hub, config, plan, &mut |e| watcher.event(e)))?;
    Ok(summary)
}

/// A Ptychodus product beside every finished reconstruction of the study: the iterative arm's (in
/// the object frame) and each trained arm's inference (a stitched canvas), all on the view's test
/// split.
fn export_products(
    hub: &Path,
    plan: &Plan,
    geometry: super::interop::GeometryArgs,
) -> anyhow::Result<()> {
    use crate::interop::convert::Frame;
    use crate::study::plan::{analysis_dir, test_file};
    for entry in load_entries(hub, plan) {
        if !entry.succeeded() {
            continue;
        }
        let (Some(dose), Some(view)) = (entry.job.dose, entry.job.view.as_deref()) else {
            continue;
        };
        let recons: Vec<(PathBuf, Frame)> = match entry.job.phase {
            Phase::Reconstruct => vec![(entry.job.dir.join("reconstruction.npz"), Frame::Object)],
            Phase::Compare => [Arm::Pinn, Arm::Baseline]
                .iter()
                .map(|arm| {
                    let path = analysis_dir(dose, view)
                        .join(arm.name())
                        .join("reconstruction.npz");
                    (path, Frame::Stitched)
                })
                .filter(|(path, _)| hub.join(path).is_file())
                .collect(),
            _ => Vec::new(),
        };
        for (recon, frame) in recons {
            let data = hub.join(test_file(dose, view));
            let product =
                super::interop::export_beside(&hub.join(recon), &data, geometry, frame, true)?;
            outln!("wrote {}", product.display());
        }
    }
    Ok(())
}

/// The summary table and where everything is; an error when a job failed.
fn finish(hub: &Path, plan: &Plan, summary: &RunSummary, started: Instant) -> anyhow::Result<()> {
    outln!();
    outln!("{}", score_table(&load_entries(hub, plan)).trim_end());
    outln!();
    outln!(
        "{} jobs ran, {} were already done, {} failed; {:.0} s",
        summary.ran,
        summary.up_to_date,
        summary.failed.len(),
        started.elapsed().as_secs_f64()
    );
    let analysis = hub.join("analysis");
    outln!(
        "report: {}; pictures: {}, {}, {}",
        analysis.join("report.md").display(),
        analysis.join("metrics_vs_dose.png").display(),
        analysis.join("reconstructions_amplitude.png").display(),
        analysis.join("reconstructions_phase.png").display()
    );
    if let Some((id, error)) = summary.failed.first() {
        bail!(
            "{} job(s) failed; the first, {id}: {error} (see {})",
            summary.failed.len(),
            analysis.join("blocker.log").display()
        );
    }
    Ok(())
}

/// One line per job and a progress bar inside it.
#[derive(Default)]
struct Watcher {
    bar: Option<ProgressBar>,
    started: Option<Instant>,
}

impl Watcher {
    fn event(&mut self, event: Event) {
        match event {
            Event::UpToDate { job, total } => {
                outln!("[{:>2}/{total}] {job}: done already", job.number)
            }
            Event::Start { job, total, reason } => {
                outln!("[{:>2}/{total}] {job}: running ({reason})", job.number);
                self.started = Some(Instant::now());
                let bar = ProgressBar::new(0).with_style(
                    ProgressStyle::with_template("        [{bar:30}] {pos}/{len} {msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                self.bar = Some(bar);
            }
            Event::Step {
                done,
                total,
                message,
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    bar.set_message(message);
                }
            }
            Event::Line(line) => match &self.bar {
                Some(bar) => bar.suspend(|| outln!("        {line}")),
                None => outln!("        {line}"),
            },
            Event::Finish { job, total, record } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let seconds = self
                    .started
                    .take()
                    .map_or(0.0, |s| s.elapsed().as_secs_f64());
                match record.status {
                    Status::Success => {
                        outln!(
                            "[{:>2}/{total}] {job}: success in {seconds:.1} s",
                            job.number
                        )
                    }
                    Status::Failed => outln!(
                        "[{:>2}/{total}] {job}: FAILED after {seconds:.1} s: {} (log {})",
                        job.number,
                        record.error.as_deref().unwrap_or("no error recorded"),
                        record.log_path
                    ),
                }
            }
        }
    }
}
