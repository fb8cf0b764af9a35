//! One module per subcommand. Each computes a [`Report`] (or fails with a [`CommandError`]);
//! `main` renders it and turns it into an exit code.

pub mod checks;
pub mod cluster;
pub mod compare;
pub mod demo;
pub mod from_evidence;
pub mod rewind_guard;
pub mod wal;

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
    NewPrimary(String),
    /// The throwaway clusters of `demo` could not be built.
    #[error("demo: {0}")]
    Demo(String),
    /// The WAL could not be decoded.
    #[error("wal: {0}")]
    Wal(String),
    /// The PostgreSQL server binaries that `demo` runs are missing.
    #[error("demo: {0}")]
    NoServerBinaries(String),
    /// A check file (built-in or from --checks-dir) could not be loaded.
    #[error("{0}")]
    Checks(#[from] crate::checks::CatalogError),
    /// The primary of `cluster` could not be read; without it nothing can be said.
    #[error("primary: {0}")]
    Primary(String),
    /// A WAL archive could not deliver a file, or delivered one that cannot be used.
    #[error("archive: {0}")]
    Archive(String),
    /// Patroni discovery (`--patroni`) could not determine a node to compare.
    #[error("patroni: {0}")]
    Patroni(#[from] crate::patroni::PatroniError),
    /// An evidence bundle could not be written (`--evidence-dir`) or read (`--from-evidence`).
    #[error("evidence bundle: {0}")]
    Bundle(#[from] crate::bundle::BundleError),
}

impl CommandError {
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

/// What a finished command hands to `main`.
#[derive(Debug)]
pub struct Outcome {
    /// The report to render.
    pub report: Report,
    /// Text to print on stderr after the report (e.g. `demo --keep` connection strings).
    pub epilogue: Option<String>,
}

/// `failover-verify <version>`, for reports.
pub fn tool_id() -> String {
    format!("failover-verify {}", env!("CARGO_PKG_VERSION"))
}

/// Now as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One node after reading it: what the report shows, and the open session for later phases.
pub(crate) struct ReadNode {
    pub(crate) section: crate::report::NodeSection,
    pub(crate) facts: Option<crate::node::NodeFacts>,
    pub(crate) session: Option<crate::pg::session::Session>,
    pub(crate) findings: Vec<crate::finding::Finding>,
}

/// Connects read-only and reads the node's facts; errors become one line of text.
pub(crate) async fn read_node(
    params: &crate::pg::ConnParams,
    opts: &crate::pg::session::SessionOptions,
    pacer: Option<std::sync::Arc<crate::pg::Pacer>>,
) -> ReadNode {
    let mut r = ReadNode {
        section: crate::report::NodeSection {
            target: params.redacted(),
            ..crate::report::NodeSection::default()
        },
        facts: None,
        session: None,
        findings: Vec::new(),
    };
    let target = params.target();
    let with_target = |msg: String| {
        if msg.contains(&target) {
            msg
        } else {
            format!("{target}: {msg}")
        }
    };
    let session = match crate::pg::session::connect(params, opts).await {
        Ok(s) => s.paced(pacer),
        Err(e) => {
            r.section.error = Some(with_target(e.to_string()));
            return r;
        }
    };
    match crate::node::read_facts(&session, params, opts).await {
        Ok((facts, findings)) => {
            r.section.facts = Some(facts.clone());
            r.facts = Some(facts);
            r.findings = findings;
            r.session = Some(session);
        }
        Err(e) => {
            r.section.error = Some(with_target(e.to_string()));
            session.close().await;
        }
    }
    r
}
