//! Every flag and subcommand, in one place (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::report::Format;

/// After a PostgreSQL failover: prove whether the promoted replica lost committed data.
#[derive(Debug, Parser)]
#[command(name = "failover-verify", version, about, long_about = None)]
pub struct Cli {
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run, never moved in a loop
pub enum Command {
    /// Compare the new primary with the former primary and report what was lost.
    Compare(Box<CompareArgs>),
    /// Decode a directory of WAL (a copy of pg_wal or an archive) with no connection at all.
    Wal(WalArgs),
    /// Build a throwaway primary and standby, force a lossy failover, and report on it.
    Demo(DemoArgs),
    /// The catalog of declarative checks (built in from checks/, plus --checks-dir).
    Checks(ChecksArgs),
    /// Check a running cluster before anything happens: standbys, slots, diverged nodes.
    Cluster(ClusterArgs),
    /// Stand in for pg_rewind (Patroni's `bin_name.pg_rewind`): copy a diverged target's lost
    /// WAL into an evidence bundle and account for it, then run the real pg_rewind.
    RewindGuard(RewindGuardArgs),
}

/// Flags of `rewind-guard`; pg_rewind's own arguments follow `--` unchanged.
#[derive(Debug, Clone, Args)]
pub struct RewindGuardArgs {
    /// The real pg_rewind, run with exactly the arguments after `--`.
    #[arg(long, value_name = "PATH")]
    pub pg_rewind: std::path::PathBuf,
    /// Where each divergence gets its evidence bundle `<sysid>-tl<T>-fork-<LSN>-end-<LSN>/`,
    /// and where `guard.log` records every call.
    #[arg(long, value_name = "DIR")]
    pub evidence_root: std::path::PathBuf,
    /// Time allowed for the accounting after the copy (which is never cut), e.g. `30s`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_budget)]
    pub budget: std::time::Duration,
    /// Refuse the rewind (exit 1 without running pg_rewind) when committed transactions were
    /// lost or could not be counted, until `<root>/<key>.release` exists. See the README.
    #[arg(long)]
    pub hold_when_lost: bool,
    /// Print the two-line wrapper script to name in `postgresql.bin_name.pg_rewind`, and exit.
    #[arg(long)]
    pub print_wrapper: bool,
    /// Run as a Patroni replica method (`create_replica_methods`, with `keep_data: true`):
    /// read `--datadir=` and `--connstring=` after `--`, capture a diverged data directory,
    /// then always exit 1 so that Patroni goes on to the next method (e.g. basebackup).
    /// `--pg-rewind` is not run.
    #[arg(long)]
    pub replica_method: bool,
    /// Internal: the detached accounting of a copy the guard made (the hand-off file it wrote).
    #[arg(long, value_name = "FILE", hide = true)]
    pub analyse_capture: Option<std::path::PathBuf>,
    /// pg_rewind's arguments.
    #[arg(last = true, value_name = "PG_REWIND_ARGS", allow_hyphen_values = true)]
    pub args: Vec<std::ffi::OsString>,
}

/// Parses `30s`, `2m`, `1.5s`, `500ms` or plain seconds.
fn parse_budget(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(std::time::Duration::from_secs_f64(v * mult)),
        _ => Err(format!("invalid duration {s:?}: use e.g. 30s, 2m, 500ms")),
    }
}

/// Where and how to write the report.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to FILE (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Connection timeouts, shared by every session.
#[derive(Debug, Args, Clone)]
pub struct TimeoutArgs {
    /// Seconds to wait for a connection (TCP, TLS and authentication).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds a single query may run on a server (statement_timeout).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub statement_timeout: f64,
    /// Seconds a query may wait for a lock (lock_timeout).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub lock_timeout: f64,
}

impl TimeoutArgs {
    /// The timeouts as durations (negative or NaN values become zero).
    pub fn durations(&self) -> (Duration, Duration, Duration) {
        let d = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO);
        (
            d(self.connect_timeout),
            d(self.statement_timeout),
            d(self.lock_timeout),
        )
    }

    /// Session options with these timeouts (the rest at their defaults).
    pub fn session_options(&self) -> crate::pg::session::SessionOptions {
        let (connect_timeout, statement_timeout, lock_timeout) = self.durations();
        crate::pg::session::SessionOptions {
            connect_timeout,
            statement_timeout,
            lock_timeout,
            ..Default::default()
        }
    }
}

/// Flags of `compare`.
#[derive(Debug, Args, Clone)]
pub struct CompareArgs {
    /// The promoted node: a libpq conninfo (`host=... port=...`) or a postgres:// URL.
    /// Optional with --patroni (the current leader) and with --from-evidence.
    #[arg(
        long,
        value_name = "CONNINFO",
        required_unless_present_any = ["patroni", "from_evidence", "repmgr", "pg_auto_failover", "cnpg_status"]
    )]
    pub new_primary: Option<String>,
    /// The node that was primary before the failover (conninfo or URL). Any node that stayed
    /// on the former timeline works, e.g. the former synchronous standby.
    #[arg(long, visible_alias = "old-primary", value_name = "CONNINFO")]
    pub former_primary: Option<String>,
    /// Read the former timeline's WAL from DIR (a copy of the former primary's pg_wal, or a WAL
    /// archive) instead of from the server; needed when the former primary cannot start.
    #[arg(long, value_name = "DIR")]
    pub former_wal_dir: Option<PathBuf>,
    /// Fetch the former timeline's WAL segments and history files from a WAL archive with
    /// this restore_command, as recovery does (`%f` file name, `%p` path to write, `%r`, `%%`;
    /// run by `sh -c`), e.g. 'pgbackrest --stanza=main archive-get %f "%p"' or
    /// 'cp /archive/%f %p'. Exit status 1 with no file written means "not in the archive";
    /// any other failure is an error. Works after the former primary was rewound or removed.
    #[arg(long, value_name = "COMMAND")]
    pub former_restore_command: Option<String>,
    /// Like --former-restore-command for a plain archive directory (files by their plain
    /// names, or NAME.gz); `.partial` files are never read as the former primary's WAL.
    #[arg(long, value_name = "DIR")]
    pub former_wal_archive: Option<PathBuf>,
    /// Time limit of one restore_command call, in seconds; a call still running is killed.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub restore_timeout: f64,
    /// The former primary's timeline, when it cannot be asked (with --former-wal-dir or an
    /// archive); by default the newest ancestor of the new primary's timeline whose WAL the
    /// sources hold. Another branch's timeline needs its `.history` file in the sources.
    #[arg(long, value_name = "TLI")]
    pub former_timeline: Option<u32>,
    /// Also run the checks in DIR (`*.toml`); a check with a built-in's id replaces it.
    #[arg(long, value_name = "DIR", conflicts_with = "no_checks")]
    pub checks_dir: Option<PathBuf>,
    /// Do not run the checks of the catalog.
    #[arg(long)]
    pub no_checks: bool,
    /// The row diff: which tables, how fast, and where to export the lost rows.
    #[command(flatten)]
    pub tables: crate::diff::TableArgs,
    /// Cron mode: remember the last reported timeline and verdict per cluster in FILE, and
    /// stay quiet (no output, exit 0) while they do not change. See the README, "Cron".
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Also write an evidence bundle to DIR (must not exist): the reports in every format,
    /// the lost-row export, the lost range's WAL segments, both timeline histories, the node
    /// facts, an index and SHA256SUMS; owner-only, renamed into place when complete.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["state", "from_evidence"])]
    pub evidence_dir: Option<PathBuf>,
    /// Re-analyse an evidence bundle with no server: check its SHA256SUMS, then decode its WAL
    /// again. With --new-primary, also check the new primary against it.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["former_primary", "former_wal_dir", "patroni", "repmgr", "pg_auto_failover", "cnpg_status", "state", "export_dir"]
    )]
    pub from_evidence: Option<PathBuf>,
    /// Patroni discovery: the new primary is the leader, the former primary is chosen from
    /// the failover history, unless --new-primary / --former-primary name them.
    #[command(flatten)]
    pub patroni: PatroniArgs,
    /// repmgr, pg_auto_failover or CloudNativePG discovery, like --patroni.
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    /// Report output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Timeouts.
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

/// Flags of `wal`.
#[derive(Debug, Args, Clone)]
pub struct WalArgs {
    /// The directory holding the segments (plain, `.partial` or `.gz`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The timeline whose segments to read.
    #[arg(long, value_name = "TLI")]
    pub timeline: u32,
    /// The switchpoint: every commit at or after it counts as lost (e.g. `0/3000060`).
    #[arg(long, value_name = "LSN")]
    pub from: String,
    /// Stop at this LSN instead of the end of valid WAL.
    #[arg(long, value_name = "LSN")]
    pub to: Option<String>,
    /// Write every lost transaction to this file while decoding (CSV with a header row, or
    /// JSON Lines when the name ends in `.jsonl`); the report lists the first and last 100.
    #[arg(long, value_name = "PATH")]
    pub lost_xids_file: Option<std::path::PathBuf>,
    /// Report output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Flags of `demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Leave both servers running at the end and print how to connect to them.
    #[arg(long)]
    pub keep: bool,
    /// Transactions the former primary commits after the standby is cut off (they are lost).
    #[arg(long, default_value_t = 25, value_name = "N")]
    pub lost_transactions: usize,
    /// Report output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Flags of `checks`.
#[derive(Debug, Args, Clone)]
pub struct ChecksArgs {
    /// What to do with the catalog.
    #[command(subcommand)]
    pub command: ChecksCommand,
}

/// The subcommands of `checks`.
#[derive(Debug, Subcommand, Clone)]
pub enum ChecksCommand {
    /// List the checks: id, severity, the nodes each runs on, title and origin.
    List(ChecksListArgs),
}

/// Flags of `checks list`.
#[derive(Debug, Args, Clone)]
pub struct ChecksListArgs {
    /// Also load the checks in DIR (`*.toml`); a check with a built-in's id replaces it.
    #[arg(long, value_name = "DIR")]
    pub checks_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Flags of `cluster`.
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// The primary (conninfo or URL): its standbys and slots are listed. Optional with
    /// --patroni (the leader), a manager flag, or --node (the writable node on the newest
    /// timeline).
    #[arg(
        long,
        value_name = "CONNINFO",
        required_unless_present_any = ["patroni", "repmgr", "pg_auto_failover", "cnpg_status", "nodes"]
    )]
    pub primary: Option<String>,
    /// Another node to inspect directly, e.g. a former primary that no longer streams
    /// (repeatable): is it on the primary's timeline history, or diverged?
    #[arg(long = "node", value_name = "CONNINFO")]
    pub nodes: Vec<String>,
    /// Cron mode: remember the last reported timeline and verdict per cluster in FILE, and
    /// stay quiet (no output, exit 0) while they do not change. See the README, "Cron".
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Patroni discovery: the leader is the primary, every other member a --node.
    #[command(flatten)]
    pub patroni: PatroniArgs,
    /// repmgr, pg_auto_failover or CloudNativePG discovery, like --patroni.
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    /// Report output.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Timeouts.
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

/// Patroni discovery flags, shared by `compare` and `cluster`.
#[derive(Debug, Args, Clone, Default)]
pub struct PatroniArgs {
    /// Read the members and the failover history from Patroni's REST API at URL
    /// (repeatable, e.g. one per member; every URL that answers is merged).
    #[arg(id = "patroni", long = "patroni", value_name = "URL")]
    pub urls: Vec<String>,
    /// With --patroni: the connection parameters of every member except host and port
    /// (`user=fv dbname=postgres sslmode=require`); absent ones come from PG* variables.
    #[arg(
        long = "patroni-conninfo",
        value_name = "CONNINFO",
        default_value = "",
        requires = "patroni"
    )]
    pub conninfo: String,
    /// With --patroni: seconds allowed for each HTTP request (connect + answer).
    #[arg(
        long = "patroni-timeout",
        value_name = "SECS",
        default_value_t = 10.0,
        requires = "patroni"
    )]
    pub timeout: f64,
}

/// Discovery from repmgr, pg_auto_failover or CloudNativePG, shared by `compare` and
/// `cluster` (one manager per run; `--patroni` is the fourth).
#[derive(Debug, Args, Clone, Default)]
pub struct DiscoveryArgs {
    /// repmgr discovery: read repmgr.nodes and repmgr.events from this node (any node of the
    /// cluster, e.g. `host=db1 dbname=repmgr user=repmgr`), then from every node listed.
    #[arg(
        long,
        value_name = "CONNINFO",
        group = "discovery_source",
        conflicts_with_all = ["patroni", "pg_auto_failover", "cnpg_status"]
    )]
    pub repmgr: Option<String>,
    /// pg_auto_failover discovery: read pgautofailover.node and pgautofailover.event from the
    /// monitor (e.g. `host=monitor dbname=pg_auto_failover user=autoctl_node`).
    #[arg(
        long = "pg-auto-failover",
        value_name = "MONITOR_CONNINFO",
        group = "discovery_source",
        conflicts_with_all = ["patroni", "repmgr", "cnpg_status"]
    )]
    pub pg_auto_failover: Option<String>,
    /// CloudNativePG discovery: the output of `kubectl get clusters.postgresql.cnpg.io NAME -o
    /// json` in FILE (`-`: stdin). Needs --cnpg-conninfo unless the pods' IPs are reachable.
    #[arg(
        long = "cnpg-status",
        value_name = "FILE",
        group = "discovery_source",
        conflicts_with_all = ["patroni", "repmgr", "pg_auto_failover"]
    )]
    pub cnpg_status: Option<String>,
    /// With --repmgr, --pg-auto-failover or --cnpg-status: the connection parameters of every
    /// member (`user=fv dbname=postgres sslmode=require`); the member's address comes from
    /// the manager unless the template names the host with `{pod}` (alias `{name}`; also
    /// `{namespace}` and `{cluster}` for CloudNativePG), e.g.
    /// `host={pod}.{namespace} port=5432 user=fv dbname=postgres`.
    #[arg(
        long = "member-conninfo",
        visible_alias = "cnpg-conninfo",
        value_name = "CONNINFO",
        default_value = "",
        requires = "discovery_source"
    )]
    pub member_conninfo: String,
}

impl DiscoveryArgs {
    /// The discovery these flags ask for, if any.
    pub fn source(&self) -> Option<crate::discovery::Source> {
        use crate::discovery::Source;
        if let Some(c) = &self.repmgr {
            Some(Source::Repmgr(c.clone()))
        } else if let Some(c) = &self.pg_auto_failover {
            Some(Source::PgAutoFailover(c.clone()))
        } else {
            self.cnpg_status.clone().map(Source::Cnpg)
        }
    }
}
