//! The thin binary: parse the flags, run the command, exit with its code (see the README's
//! table). Everything else lives in the library: [`failover_verify::commands::run`].

use std::process::ExitCode;

use clap::Parser;

use failover_verify::cli::Cli;
use failover_verify::commands::{self, Exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A broken guard wrapper must not block the rejoin: run pg_rewind anyway.
            if let Some(exit) = commands::rewind_guard_fallback() {
                return code(exit);
            }
            let _ = e.print();
            let shown = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            return code(if shown { Exit::NoLoss } else { Exit::Error });
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
    code(runtime.block_on(async {
        // Pinned out here so that the run, and its sessions, live until the interrupt handler
        // has cancelled their queries: dropping them leaves the queries running on the servers.
        let run = commands::run(&cli);
        tokio::pin!(run);
        tokio::select! {
            exit = &mut run => exit,
            _ = tokio::signal::ctrl_c() => {
                failover_verify::pg::session::cancel_all().await;
                eprintln!("error: interrupted");
                Exit::Interrupted
            }
        }
    }))
}

fn code(e: Exit) -> ExitCode {
    ExitCode::from(e as u8)
}
