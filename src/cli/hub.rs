//! `ptycho study` (the whole study over its grid, resumable, or as Slurm job arrays) and `ptycho demo`
//! (a miniature study from an embedded config).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::device::{with_backend, AdapterArgs};
use crate::study::config::{StudyConfig, DEFAULT_TOML, DEMO_TOML};
use crate::study::plan::{Arm, Filters, Plan};
use crate::study::record::Status;
use crate::study::report::score_table;
use crate::study::run::{self, Event, Hub, RunSummary};
use crate::study::summary::load_entries;

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Run the study: every job of the dose × view × arm grid not already done in the hub.
    Run(RunArgs),
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
    /// Only these doses (comma-separated).
    #[arg(long, value_delimiter = ',')]
    dose: Vec<f64>,
    /// Only these views: dense, sparse, baseline (comma-separated).
    #[arg(long, value_delimiter = ',')]
    view: Vec<String>,
    /// Only these arms: pinn, baseline, iterative (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_arm)]
    arm: Vec<Arm>,
    /// Move the outputs of an earlier run to HUB/archive/{UTC}/ and start over (needed when the
    /// settings changed).
    #[arg(long)]
    clobber: bool,
    /// auto, gpu or cpu [default: the config's `device`].
    #[arg(long, env = "PTYCHO_DEVICE")]
    device: Option<String>,
    #[command(flatten)]
    adapter: AdapterArgs,
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
            let filters = Filters {
                doses: args.dose.clone(),
                views: args.view.clone(),
                arms: args.arm.clone(),
            };
            let plan = Plan::new(&config, &filters)?;
            if args.dry_run {
                out!("{}", plan.describe());
                outln!("{} jobs; nothing was run or created", plan.jobs.len());
                return Ok(());
            }
            let device = args.device.clone().unwrap_or(config.device.clone());
            let started = Instant::now();
            let summary = run_study(&args.hub, &config, &plan, &device, &args.adapter, args.clobber)?;
            finish(&args.hub, &plan, &summary, started)
        }
    }
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
    let summary = run_study(&args.hub, &config, &plan, &args.device, &args.adapter, false)?;
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
    let summary = with_backend!(backend, b => run::run(&b, &hub, config, plan, &mut |e| watcher.event(e)))?;
    Ok(summary)
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
                let seconds = self.started.take().map_or(0.0, |s| s.elapsed().as_secs_f64());
                match record.status {
                    Status::Success => {
                        outln!("[{:>2}/{total}] {job}: success in {seconds:.1} s", job.number)
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
