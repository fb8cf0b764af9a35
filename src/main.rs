//! The thin binary: parse flags, run one command, render its report, map it to an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use failover_verify::cli::{Cli, Command, OutputArgs};
use failover_verify::commands::{self, CommandError, Exit, Outcome};
use failover_verify::report::{self, write_file_atomically};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
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
        tokio::select! {
            exit = run(cli) => exit,
            _ = tokio::signal::ctrl_c() => {
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
        Command::Compare(args) => {
            let result = match commands::compare::CompareInput::from_args(args) {
                Ok(input) => commands::compare::run(&input).await,
                Err(e) => Err(e),
            };
            (result, args.output.clone())
        }
        Command::Wal(args) => (commands::wal::run(args).await, args.output.clone()),
        Command::Demo(args) => (commands::demo::run(args).await, args.output.clone()),
        Command::Checks(args) => return checks_command(args),
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
    code(Exit::for_verdict(outcome.report.verdict))
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
