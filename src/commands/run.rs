//! The dispatcher: runs the subcommand the flags name, renders its report, sends it where
//! `--output` says (consulting the cron state file with `--state`), and returns the exit code.
//! Errors end here as one line on stderr (and a hint) and exit 3.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::cli::RewindGuardArgs;

use crate::cli::{ChecksArgs, Cli, ClusterArgs, Command, CompareArgs, OutputArgs};
use crate::report;
use crate::state::{RunKey, StateFile};

use super::{cron, output, CommandError, Exit, Outcome};

/// Runs the command of `cli` to its exit code. Everything it prints, it prints here.
pub async fn run(cli: &Cli) -> Exit {
    let result = match &cli.command {
        // Cron mode: `cluster`, `compare` without a former primary, and `--state`.
        Command::Cluster(args) => return run_cluster(args, cli).await,
        // Re-analysis of an evidence bundle.
        Command::Compare(args) if args.from_evidence.is_some() => {
            let result = match super::from_evidence::FromEvidenceInput::from_args(args) {
                Ok(input) => {
                    print_notices(&input.notices(), cli.quiet);
                    super::from_evidence::run(&input).await
                }
                Err(e) => Err(e),
            };
            (result, &args.output)
        }
        Command::Compare(args) if only_new_primary(args) => {
            return run_cluster(&super::cluster::args_from_compare(args), cli).await;
        }
        Command::Compare(args) if args.state.is_some() => {
            return run_compare_with_state(args, cli).await;
        }
        Command::Compare(args) => {
            let result = match compare_input(args).await {
                Ok(input) => {
                    print_notices(&input.notices(), cli.quiet);
                    run_compare(&input, cli).await
                }
                Err(e) => Err(e),
            };
            (result, &args.output)
        }
        Command::Wal(args) => (super::wal::run(args).await, &args.output),
        Command::Demo(args) => (super::demo::run(args).await, &args.output),
        Command::Checks(args) => return checks(args),
        Command::RewindGuard(args) => return rewind_guard(args).await,
    };
    match result {
        (Ok(outcome), out) => finish(outcome, out, cli.quiet),
        (Err(e), _) => fail(&e),
    }
}

/// `compare` given only `--new-primary`: the one-node health check of `cluster`.
fn only_new_primary(args: &CompareArgs) -> bool {
    args.former_primary.is_none()
        && args.former_wal_dir.is_none()
        && args.evidence_dir.is_none()
        && args.former_restore_command.is_none()
        && args.former_wal_archive.is_none()
        && args.patroni.urls.is_empty()
        && args.discovery.source().is_none()
}

/// Notices about the connection strings (keywords accepted but not used), one line each.
fn print_notices(notices: &[String], quiet: bool) {
    if !quiet {
        for n in notices {
            eprintln!("notice: {n}");
        }
    }
}

/// Prints a command error (and its hint) and returns its exit code.
pub fn fail(e: &CommandError) -> Exit {
    eprintln!("error: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
    e.exit()
}

fn fail_msg(msg: impl std::fmt::Display) -> Exit {
    eprintln!("error: {msg}");
    Exit::Error
}

fn finish(outcome: Outcome, out: &OutputArgs, quiet: bool) -> Exit {
    let mut buf = Vec::new();
    if let Err(e) = report::render(&outcome.report, out.format, &mut buf) {
        return fail_msg(format!("cannot render the report: {e}"));
    }
    if let Err(msg) = output::deliver(out.output.as_deref(), &buf) {
        return fail_msg(msg);
    }
    if let Some(text) = outcome.epilogue.filter(|_| !quiet) {
        eprintln!("{text}");
    }
    if out.output.is_some() && !quiet && std::io::stderr().is_terminal() {
        eprintln!("verdict: {}", outcome.report.verdict.as_str());
    }
    Exit::for_report(&outcome.report)
}

/// `failover-verify checks ...`: no report, just the catalogue on stdout.
fn checks(args: &ChecksArgs) -> Exit {
    match super::checks::run(args) {
        Ok(bytes) => match output::to_stdout(&bytes) {
            Ok(()) => Exit::NoLoss,
            Err(e) => fail_msg(format!("cannot write the list: {e}")),
        },
        Err(e) => fail(&e),
    }
}

/// A rendered report with what cron mode needs to decide, print, remember and exit.
struct Rendered {
    bytes: Vec<u8>,
    exit: Exit,
    verdict: &'static str,
    key: Option<RunKey>,
    generated_at: String,
}

/// Reads the `--state` file before anything else, so a bad one fails fast (exit 3, untouched).
fn load_state(path: Option<&Path>) -> Result<Option<(PathBuf, StateFile)>, Exit> {
    let Some(path) = path else {
        return Ok(None);
    };
    StateFile::load(path)
        .map(|s| Some((path.to_path_buf(), s)))
        .map_err(fail_msg)
}

/// `cluster`, and `compare` given only `--new-primary`.
async fn run_cluster(args: &ClusterArgs, cli: &Cli) -> Exit {
    let state = match load_state(args.state.as_deref()) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let result = match cluster_input(args).await {
        Ok(input) => {
            // Cron mode (--state) stays silent while nothing changes.
            print_notices(&input.notices(), cli.quiet || args.state.is_some());
            super::cluster::run(&input).await
        }
        Err(e) => Err(e),
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut bytes = Vec::new();
    if let Err(e) = report::render_cluster(&report, args.output.format, &mut bytes) {
        return fail_msg(format!("cannot render the report: {e}"));
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
        exit: super::cluster::exit_for(report.verdict),
        verdict: report.verdict.as_str(),
        key,
        generated_at: report.generated_at.clone(),
    };
    finish_cron(rendered, &args.output, state, cli)
}

/// `compare --state FILE`.
async fn run_compare_with_state(args: &CompareArgs, cli: &Cli) -> Exit {
    let state = match load_state(args.state.as_deref()) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    // Cron mode (--state) stays silent while nothing changes: no notices.
    let result = match compare_input(args).await {
        Ok(input) => run_compare(&input, cli).await,
        Err(e) => Err(e),
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let r = &outcome.report;
    let mut bytes = Vec::new();
    if let Err(e) = report::render(r, args.output.format, &mut bytes) {
        return fail_msg(format!("cannot render the report: {e}"));
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

/// Writes `--output` (always, so metrics stay fresh), then does what [`cron::plan`] says.
fn finish_cron(
    r: Rendered,
    out: &OutputArgs,
    state: Option<(PathBuf, StateFile)>,
    cli: &Cli,
) -> Exit {
    let plan = cron::plan(
        state.as_ref().map(|(_, s)| s),
        r.key.as_ref(),
        r.exit,
        cli.quiet,
        cli.verbose > 0,
    );
    if let Some(path) = &out.output {
        if let Err(msg) = output::deliver(Some(path), &r.bytes) {
            return fail_msg(msg);
        }
    }
    if let Some(notice) = &plan.notice {
        eprintln!("{notice}");
    }
    if !plan.print_report {
        return plan.exit;
    }
    if out.output.is_none() {
        if let Err(msg) = output::deliver(None, &r.bytes) {
            return fail_msg(msg);
        }
    }
    if let (true, Some((path, mut s)), Some(k)) = (plan.record, state, &r.key) {
        s.record(k, &r.generated_at);
        if let Err(e) = s.save(&path) {
            return fail_msg(e);
        }
    }
    if out.output.is_some() && !cli.quiet && std::io::stderr().is_terminal() {
        eprintln!("verdict: {}", r.verdict);
    }
    plan.exit
}

/// The compare flags parsed (no I/O), then the HA manager they name asked.
async fn compare_input(args: &CompareArgs) -> Result<super::compare::CompareInput, CommandError> {
    super::compare::ComparePlan::from_args(args)?
        .resolve()
        .await
}

/// The cluster flags parsed (no I/O), then the HA manager they name asked.
async fn cluster_input(args: &ClusterArgs) -> Result<super::cluster::ClusterInput, CommandError> {
    super::cluster::ClusterPlan::from_args(args)?
        .resolve()
        .await
}

/// Runs `compare` with progress on stderr (a bar on a terminal, lines with `-v`).
async fn run_compare(
    input: &super::compare::CompareInput,
    cli: &Cli,
) -> Result<Outcome, CommandError> {
    let progress = crate::progress::StderrProgress::new(
        !cli.quiet && std::io::stderr().is_terminal(),
        cli.verbose > 0,
    );
    let result = super::compare::run_with_progress(input, &progress).await;
    progress.finish();
    result
}

/// `rewind-guard`: the guard's own work (a panic in it is caught and logged), then the real
/// pg_rewind with exactly the given arguments: in this process's place once the guard is done,
/// or, without `--hold-when-lost`, as a child as soon as the copy is made, the accounting
/// going on alongside (the exit code is pg_rewind's).
async fn rewind_guard(args: &RewindGuardArgs) -> Exit {
    use super::rewind_guard;
    if args.print_wrapper {
        let tool = std::env::current_exe().unwrap_or_else(|_| "failover-verify".into());
        let script = crate::guard::wrapper_script(&tool, &rewind_guard::wrapper_options(args));
        return match output::to_stdout(script.as_bytes()) {
            Ok(()) => Exit::NoLoss,
            Err(e) => fail_msg(format!("cannot write the wrapper: {e}")),
        };
    }
    if let Some(handoff) = &args.analyse_capture {
        let code = rewind_guard::analyse_capture(args, handoff).await;
        return if code == 0 { Exit::NoLoss } else { Exit::Error };
    }
    let owned = args.clone();
    // Without --hold-when-lost the accounting decides nothing: a detached process does it
    // while pg_rewind runs in this one's place (else alongside pg_rewind, here).
    let alongside = !args.hold_when_lost && !args.replica_method;
    let outcome = match tokio::spawn(async move { rewind_guard::prepare(&owned).await }).await {
        Ok(mut p) if alongside && p.pending() => {
            let detached = std::env::current_exe()
                .map_err(|e| e.to_string())
                .and_then(|exe| p.detach(&exe, args));
            match detached {
                Ok(pid) => {
                    p.line(format!(
                        "the accounting goes on in process {pid}, detached (it seals the bundle and logs here); running {} now in this process's place",
                        args.pg_rewind.display()
                    ));
                    for l in p.take_lines() {
                        eprintln!("{l}");
                    }
                    return exec_pg_rewind(&args.pg_rewind, &args.args);
                }
                Err(e) => {
                    p.line(format!(
                        "cannot detach the accounting ({e}); it runs alongside pg_rewind here"
                    ));
                    let code = rewind_guard::run_alongside(p, &args.pg_rewind, &args.args).await;
                    std::process::exit(code)
                }
            }
        }
        Ok(mut p) => {
            tokio::spawn(async move {
                p.account().await;
                p.decide()
            })
            .await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(outcome) => {
            for l in &outcome.lines {
                eprintln!("{l}");
            }
            if outcome.hold.is_some() {
                // Held: commits were lost; the node stays out until the release marker.
                return Exit::Loss;
            }
        }
        Err(e) => eprintln!(
            "failover-verify rewind-guard: internal error ({e}); running pg_rewind anyway"
        ),
    }
    if args.replica_method {
        // Patroni goes on to its next replica method.
        return Exit::Loss;
    }
    exec_pg_rewind(&args.pg_rewind, &args.args)
}

/// Replaces this process with pg_rewind (its output and exit code are the caller's).
fn exec_pg_rewind(pg_rewind: &Path, args: &[std::ffi::OsString]) -> Exit {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(pg_rewind).args(args).exec();
    fail_msg(format!("cannot run {}: {err}", pg_rewind.display()))
}

/// When the flags do not parse but name `rewind-guard --pg-rewind PATH ... -- ARGS`: a broken
/// guard wrapper must not block the rejoin, so pg_rewind runs without the guard (or, as a
/// replica method, Patroni is told to go on to the next one).
pub fn rewind_guard_fallback() -> Option<Exit> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_none_or(|a| a != "rewind-guard") {
        return None;
    }
    let sep = argv.iter().position(|a| a == "--")?;
    if argv[..sep].iter().any(|a| a == "--replica-method") {
        eprintln!(
            "failover-verify rewind-guard: bad guard options; exiting 1 (next replica method)"
        );
        return Some(Exit::Loss);
    }
    let at = argv[..sep].iter().position(|a| a == "--pg-rewind")?;
    let pg_rewind = PathBuf::from(argv.get(at + 1).filter(|_| at + 1 < sep)?);
    eprintln!(
        "failover-verify rewind-guard: bad guard options; running pg_rewind without the guard"
    );
    Some(exec_pg_rewind(&pg_rewind, &argv[sep + 1..]))
}
