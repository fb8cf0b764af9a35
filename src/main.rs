//! The thin binary: parse flags, run one command, render its report, map it to an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use failover_verify::cli::{Cli, Command, OutputArgs};
use failover_verify::commands::{self, CommandError, Exit, Outcome};
use failover_verify::report::{self, write_file_atomically};
// Cron mode.
use failover_verify::cli::{ClusterArgs, CompareArgs};
use failover_verify::state::{Decision, RunKey, StateFile};
use std::path::{Path, PathBuf};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // A broken guard wrapper must not block the rejoin: run pg_rewind anyway.
            if let Some(exit) = rewind_guard_fallback() {
                return exit;
            }
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => code(Exit::Error),
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return code(Exit::Error);
        }
    };
    runtime.block_on(async {
        // Pinned out here so that `run`, and its sessions, live until the interrupt handler
        // has cancelled their queries: dropping them leaves the queries running on the servers.
        let run = run(cli);
        tokio::pin!(run);
        tokio::select! {
            exit = &mut run => exit,
            _ = tokio::signal::ctrl_c() => {
                failover_verify::pg::session::cancel_all().await;
                eprintln!("error: interrupted");
                code(Exit::Interrupted)
            }
        }
    })
}

fn code(e: Exit) -> ExitCode {
    ExitCode::from(e as u8)
}

async fn run(cli: Cli) -> ExitCode {
    let (result, output) = match &cli.command {
        // Cron mode: `cluster`, `compare` without a former primary, and `--state`.
        Command::Cluster(args) => return run_cluster(args, &cli).await,
        // Re-analysis of an evidence bundle.
        Command::Compare(args) if args.from_evidence.is_some() => {
            let result = match commands::from_evidence::FromEvidenceInput::from_args(args) {
                Ok(input) => commands::from_evidence::run(&input).await,
                Err(e) => Err(e),
            };
            (result, args.output.clone())
        }
        Command::Compare(args)
            if args.former_primary.is_none()
                && args.former_wal_dir.is_none()
                && args.evidence_dir.is_none()
                && args.former_restore_command.is_none()
                && args.former_wal_archive.is_none()
                && args.patroni.urls.is_empty() =>
        {
            return run_cluster(&commands::cluster::args_from_compare(args), &cli).await;
        }
        Command::Compare(args) if args.state.is_some() => {
            return run_compare_with_state(args, &cli).await;
        }
        Command::Compare(args) => {
            let result = match commands::compare::CompareInput::from_args(args) {
                Ok(input) => run_compare(&input, &cli).await,
                Err(e) => Err(e),
            };
            (result, args.output.clone())
        }
        Command::Wal(args) => (commands::wal::run(args).await, args.output.clone()),
        Command::Demo(args) => (commands::demo::run(args).await, args.output.clone()),
        Command::Checks(args) => return checks_command(args),
        Command::RewindGuard(args) => return rewind_guard(args).await,
    };
    match result {
        Ok(outcome) => finish(outcome, &output, cli.quiet),
        Err(e) => {
            print_error(&e);
            code(Exit::Error)
        }
    }
}

fn print_error(e: &CommandError) {
    eprintln!("error: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
}

fn finish(outcome: Outcome, output: &OutputArgs, quiet: bool) -> ExitCode {
    let mut buf = Vec::new();
    if let Err(e) = report::render(&outcome.report, output.format, &mut buf) {
        eprintln!("error: cannot render the report: {e}");
        return code(Exit::Error);
    }
    let written = match &output.output {
        Some(path) => write_file_atomically(path, &buf)
            .map_err(|e| format!("cannot write the report to {}: {e}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&buf).and_then(|_| out.flush()) {
                Ok(()) => Ok(()),
                // A closed pipe (`| head`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(format!("cannot write the report: {e}")),
            }
        }
    };
    if let Err(msg) = written {
        eprintln!("error: {msg}");
        return code(Exit::Error);
    }
    if let Some(text) = outcome.epilogue {
        if !quiet {
            eprintln!("{text}");
        }
    }
    if output.output.is_some() && !quiet && std::io::stderr().is_terminal() {
        eprintln!("verdict: {}", outcome.report.verdict.as_str());
    }
    code(Exit::for_report(&outcome.report))
}

/// `failover-verify checks ...`: no report, just the catalog on stdout.
fn checks_command(args: &failover_verify::cli::ChecksArgs) -> ExitCode {
    match commands::checks::run(args) {
        Ok(bytes) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&bytes).and_then(|_| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the list: {e}");
                    code(Exit::Error)
                }
            }
        }
        Err(e) => {
            print_error(&e);
            code(Exit::Error)
        }
    }
}
// ---------------------------------------------------------------------------- cron mode

/// A rendered report with what cron mode needs to decide, print, remember and exit.
struct Rendered {
    bytes: Vec<u8>,
    exit: Exit,
    verdict: &'static str,
    key: Option<RunKey>,
    generated_at: String,
}

/// Reads the `--state` file before anything else, so a bad one fails fast (exit 3, untouched).
fn load_state(path: Option<&Path>) -> Result<Option<(PathBuf, StateFile)>, ExitCode> {
    let Some(path) = path else {
        return Ok(None);
    };
    match StateFile::load(path) {
        Ok(s) => Ok(Some((path.to_path_buf(), s))),
        Err(e) => {
            eprintln!("error: {e}");
            Err(code(Exit::Error))
        }
    }
}

/// `cluster`, and `compare` given only `--new-primary`.
async fn run_cluster(args: &ClusterArgs, cli: &Cli) -> ExitCode {
    let state = match load_state(args.state.as_deref()) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let result = match commands::cluster::ClusterInput::from_args(args) {
        Ok(input) => commands::cluster::run(&input).await,
        Err(e) => Err(e),
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            print_error(&e);
            return code(Exit::Error);
        }
    };
    let mut bytes = Vec::new();
    if let Err(e) = report::cluster::render(&report, args.output.format, &mut bytes) {
        eprintln!("error: cannot render the report: {e}");
        return code(Exit::Error);
    }
    let key =
        report
            .system_identifier()
            .zip(report.timeline())
            .map(|(system_identifier, timeline)| RunKey {
                system_identifier,
                command: "cluster",
                timeline,
                verdict: report.verdict.as_str().into(),
            });
    let rendered = Rendered {
        bytes,
        exit: commands::cluster::exit_for(report.verdict),
        verdict: report.verdict.as_str(),
        key,
        generated_at: report.generated_at.clone(),
    };
    finish_cron(rendered, &args.output, state, cli)
}

/// `compare --state FILE`.
async fn run_compare_with_state(args: &CompareArgs, cli: &Cli) -> ExitCode {
    let state = match load_state(args.state.as_deref()) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let result = match commands::compare::CompareInput::from_args(args) {
        Ok(input) => run_compare(&input, cli).await,
        Err(e) => Err(e),
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            print_error(&e);
            return code(Exit::Error);
        }
    };
    let r = &outcome.report;
    let mut bytes = Vec::new();
    if let Err(e) = report::render(r, args.output.format, &mut bytes) {
        eprintln!("error: cannot render the report: {e}");
        return code(Exit::Error);
    }
    let key = r.new_primary.facts.as_ref().map(|f| RunKey {
        system_identifier: f.system_identifier,
        command: "compare",
        timeline: f.timeline,
        verdict: r.verdict.as_str().into(),
    });
    let rendered = Rendered {
        bytes,
        exit: Exit::for_report(r),
        verdict: r.verdict.as_str(),
        key,
        generated_at: r.generated_at.clone(),
    };
    finish_cron(rendered, &args.output, state, cli)
}

/// Writes `--output` (always, so metrics stay fresh), then either stays quiet (already
/// reported: nothing on stdout, exit 0) or prints the report, records it, and exits with its
/// code.
fn finish_cron(
    r: Rendered,
    output: &OutputArgs,
    state: Option<(PathBuf, StateFile)>,
    cli: &Cli,
) -> ExitCode {
    let decision = match (&state, &r.key) {
        (Some((_, s)), Some(k)) => s.decide(k),
        _ => Decision::New { previous: None },
    };
    if let Some(path) = &output.output {
        if let Err(e) = write_file_atomically(path, &r.bytes) {
            eprintln!("error: cannot write the report to {}: {e}", path.display());
            return code(Exit::Error);
        }
    }
    match &decision {
        Decision::AlreadyReported(e) => {
            if cli.verbose > 0 {
                eprintln!(
                    "failover-verify: already reported at {}: timeline {}, verdict {}; nothing new",
                    e.recorded_at, e.timeline, e.verdict
                );
            }
            return code(Exit::NoLoss);
        }
        Decision::New {
            previous: Some(prev),
        } if !cli.quiet => {
            eprintln!(
                "failover-verify: new since the last report ({} at {}, timeline {})",
                prev.verdict, prev.recorded_at, prev.timeline
            );
        }
        Decision::New { .. } => {}
    }
    if output.output.is_none() {
        let mut out = std::io::stdout().lock();
        match out.write_all(&r.bytes).and_then(|_| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                eprintln!("error: cannot write the report: {e}");
                return code(Exit::Error);
            }
        }
    }
    if let (Some((path, mut s)), Some(k)) = (state, &r.key) {
        s.record(k, &r.generated_at);
        if let Err(e) = s.save(&path) {
            eprintln!("error: {e}");
            return code(Exit::Error);
        }
    }
    if output.output.is_some() && !cli.quiet && std::io::stderr().is_terminal() {
        eprintln!("verdict: {}", r.verdict);
    }
    code(r.exit)
}

/// Runs `compare` with progress on stderr (a bar on a terminal, lines with `-v`).
async fn run_compare(
    input: &commands::compare::CompareInput,
    cli: &Cli,
) -> Result<Outcome, CommandError> {
    let progress = failover_verify::progress::StderrProgress::new(
        !cli.quiet && std::io::stderr().is_terminal(),
        cli.verbose > 0,
    );
    let result = commands::compare::run_with_progress(input, &progress).await;
    progress.finish();
    result
}

// ---------------------------------------------------------------------------- rewind guard

/// `rewind-guard`: the guard's own work (a panic in it is caught and logged), then the real
/// pg_rewind in this process's place, with exactly the given arguments.
async fn rewind_guard(args: &failover_verify::cli::RewindGuardArgs) -> ExitCode {
    use commands::rewind_guard;
    if args.print_wrapper {
        let tool = std::env::current_exe().unwrap_or_else(|_| "failover-verify".into());
        let script =
            failover_verify::guard::wrapper_script(&tool, &rewind_guard::wrapper_options(args));
        print!("{script}");
        return ExitCode::SUCCESS;
    }
    let owned = args.clone();
    match tokio::spawn(async move { rewind_guard::run(&owned).await }).await {
        Ok(outcome) => {
            for l in &outcome.lines {
                eprintln!("{l}");
            }
            if outcome.hold.is_some() {
                return ExitCode::from(1);
            }
        }
        Err(e) => eprintln!(
            "failover-verify rewind-guard: internal error ({e}); running pg_rewind anyway"
        ),
    }
    if args.replica_method {
        // Patroni goes on to its next replica method.
        return ExitCode::from(1);
    }
    exec_pg_rewind(&args.pg_rewind, &args.args)
}

/// Replaces this process with pg_rewind (its output and exit code are the caller's).
fn exec_pg_rewind(pg_rewind: &Path, args: &[std::ffi::OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(pg_rewind).args(args).exec();
    eprintln!("error: cannot run {}: {err}", pg_rewind.display());
    code(Exit::Error)
}

/// When the flags do not parse but name `rewind-guard --pg-rewind PATH ... -- ARGS`.
fn rewind_guard_fallback() -> Option<ExitCode> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_none_or(|a| a != "rewind-guard") {
        return None;
    }
    let sep = argv.iter().position(|a| a == "--")?;
    if argv[..sep].iter().any(|a| a == "--replica-method") {
        eprintln!(
            "failover-verify rewind-guard: bad guard options; exiting 1 (next replica method)"
        );
        return Some(ExitCode::from(1));
    }
    let at = argv[..sep].iter().position(|a| a == "--pg-rewind")?;
    let pg_rewind = PathBuf::from(argv.get(at + 1).filter(|_| at + 1 < sep)?);
    eprintln!(
        "failover-verify rewind-guard: bad guard options; running pg_rewind without the guard"
    );
    Some(exec_pg_rewind(&pg_rewind, &argv[sep + 1..]))
}
