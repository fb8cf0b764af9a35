//! What a command hands back: its [`Outcome`] (a report), or a [`CommandError`], each mapped
//! to one documented [`Exit`] code and a one-line hint.

use crate::report::Report;

/// The documented exit codes (see the README); cron jobs act on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: no committed data was lost.
    NoLoss = 0,
    /// 1: the former primary wrote WAL (and so, maybe, commits) the new primary lacks.
    Loss = 1,
    /// 2: the question could not be decided: inconclusive, rewound or unrelated.
    Undecided = 2,
    /// 3: usage or connection error; no report was produced.
    Error = 3,
    /// 130: interrupted (Ctrl-C).
    Interrupted = 130,
}

impl Exit {
    /// The exit code for a finished report: [`crate::report::exit_code`], the one rule.
    pub fn for_report(r: &Report) -> Exit {
        match crate::report::exit_code(r.verdict, &r.findings) {
            0 => Exit::NoLoss,
            1 => Exit::Loss,
            _ => Exit::Undecided,
        }
    }
}

/// Why a command produced no report.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A flag's value is unusable (a conninfo that does not parse, ...).
    #[error("{flag}: {message}")]
    Usage {
        /// The flag, e.g. `--new-primary`.
        flag: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The new primary could not be read; without it nothing can be said.
    #[error("new primary: {0}")]
    NewPrimary(#[source] NodeError),
    /// The throwaway clusters of `demo` could not be built.
    #[error("demo: {0}")]
    Demo(#[source] crate::sandbox::SandboxError),
    /// The demo's connection strings did not parse (a bug: the sandbox wrote them).
    #[error("demo: {0}")]
    DemoConnInfo(#[source] crate::pg::ConnInfoError),
    /// The WAL could not be decoded.
    #[error("wal: {0}")]
    Wal(#[source] crate::evidence::scan::ScanError),
    /// The PostgreSQL server binaries that `demo` runs are missing.
    #[error("demo: {0}")]
    NoServerBinaries(#[source] crate::sandbox::SandboxError),
    /// A check file (built-in or from --checks-dir) could not be loaded.
    #[error("{0}")]
    Checks(#[from] crate::checks::CatalogError),
    /// The primary of `cluster` could not be read; without it nothing can be said.
    #[error("primary: {0}")]
    Primary(#[source] NodeError),
    /// `cluster --node …` without `--primary`: none of the nodes accepts writes.
    #[error("primary: no --node accepts writes ({0}); name the primary with --primary")]
    NoWritableNode(String),
    /// A WAL archive could not deliver a file, or delivered one that cannot be used.
    #[error("archive: {0}")]
    Archive(#[from] crate::wal::archive::ArchiveError),
    /// The private directory for WAL fetched from an archive could not be made.
    #[error("archive: cannot create a private directory for the fetched WAL: {0}")]
    Staging(#[source] std::io::Error),
    /// `--new-primary` of `--from-evidence` belongs to another cluster than the bundle.
    #[error("new primary: {target}: system identifier {found} is not the bundle's cluster ({expected}): name the new primary of the cluster the bundle was made on")]
    NotTheBundlesCluster {
        /// host:port.
        target: String,
        /// Its system identifier.
        found: crate::lsn::SystemId,
        /// The bundle's.
        expected: crate::lsn::SystemId,
    },
    /// A worker thread of the tool failed (a bug: please report it with the command line).
    #[error("internal error: {0}")]
    Internal(#[from] tokio::task::JoinError),
    /// Patroni discovery (`--patroni`) could not determine a node to compare.
    #[error("patroni: {0}")]
    Patroni(#[from] crate::patroni::PatroniError),
    /// repmgr, pg_auto_failover or CloudNativePG discovery could not determine a node.
    #[error("discovery: {0}")]
    Discovery(#[source] crate::discovery::DiscoveryError),
    /// An evidence bundle could not be written (`--evidence-dir`) or read (`--from-evidence`).
    #[error("evidence bundle: {0}")]
    Bundle(#[from] crate::bundle::BundleError),
}

impl CommandError {
    /// The exit code of a command that produced no report: 3, whatever the cause (the README's
    /// table); the message and [`CommandError::hint`] say which.
    pub fn exit(&self) -> Exit {
        Exit::Error
    }

    /// What the user can do about it, when there is something specific.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CommandError::Usage { .. } => Some("run `failover-verify --help` for the syntax"),
            CommandError::Checks(_) => Some(
                "fix the file (the README's \"Checks\" section describes the format), or leave out --checks-dir",
            ),
            CommandError::Patroni(_) => Some(
                "pass the URL of Patroni's REST API (port 8008 by default), or name the nodes with --new-primary and --former-primary",
            ),
            CommandError::Discovery(_) => Some(
                "check the manager's conninfo (or status document) and --member-conninfo, or name the nodes with --new-primary and --former-primary",
            ),
            CommandError::Bundle(crate::bundle::BundleError::Exists(_)) => Some(
                "name a new directory for --evidence-dir; an existing bundle is evidence and is never replaced",
            ),
            CommandError::Bundle(
                crate::bundle::BundleError::Checksum { .. }
                | crate::bundle::BundleError::Missing(_)
                | crate::bundle::BundleError::NotListed(_),
            ) => Some(
                "the bundle is not as it was made: get an intact copy (check it with `sha256sum -c SHA256SUMS` in its directory)",
            ),
            CommandError::Archive(_) => Some(
                "check the restore command by hand (as the user running failover-verify), the archive's path or stanza, and --restore-timeout",
            ),
            CommandError::NoServerBinaries(_) => Some(
                "install the PostgreSQL server (`apt install postgresql`), or set PG_BINDIR to a directory holding initdb, pg_ctl and postgres",
            ),
            _ => None,
        }
    }
}

impl From<crate::discovery::DiscoveryError> for CommandError {
    fn from(e: crate::discovery::DiscoveryError) -> Self {
        match e {
            crate::discovery::DiscoveryError::Patroni(p) => CommandError::Patroni(p),
            other => CommandError::Discovery(other),
        }
    }
}

/// What a finished command hands to `main`.
#[derive(Debug)]
pub struct Outcome {
    /// The report to render.
    pub report: Report,
    /// Text to print on stderr after the report (e.g. `demo --keep` connection strings).
    pub epilogue: Option<String>,
}

/// A node that could not be read, and why: the PostgreSQL error keeps its SQLSTATE, host and
/// port, and the message always names the node.
#[derive(Debug)]
pub struct NodeError {
    /// The node, `host:port` (or its socket).
    pub target: String,
    /// Why its facts could not be read.
    pub source: crate::node::FactsError,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = self.source.to_string();
        if msg.contains(&self.target) {
            f.write_str(&msg)
        } else {
            write!(f, "{}: {msg}", self.target)
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
