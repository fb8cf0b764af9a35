//! The compare flags as a plan (no I/O), and as a run's input once the HA manager answered.

use std::path::PathBuf;
use std::time::Duration;

use crate::checks::Catalog;
use crate::cli::CompareArgs;
use crate::commands::discover::DiscoveryPlan;
use crate::commands::CommandError;
use crate::lsn::{Lsn, TimelineId};
use crate::pg::conninfo::ConnParams;
use crate::pg::session::SessionOptions;
use crate::wal::archive::WalSource;

/// The inputs of a comparison. `N` is the promoted node: [`ConnParams`] once known, and
/// `Option<ConnParams>` in a [`ComparePlan`] (`None`: the HA manager names it).
#[derive(Debug, Clone)]
pub struct CompareInput<N = ConnParams> {
    /// The promoted node.
    pub new_primary: N,
    /// The node that was primary before the failover (or any node left on its timeline).
    pub former_primary: Option<ConnParams>,
    /// A directory holding the former timeline's WAL segments.
    pub former_wal_dir: Option<PathBuf>,
    /// WAL archives of the former timeline (`--former-restore-command`, `--former-wal-archive`).
    pub former_archive: Vec<WalSource>,
    /// The time limit of one restore_command call.
    pub restore_timeout: Duration,
    /// The former timeline, when it cannot be asked.
    pub former_timeline: Option<TimelineId>,
    /// Timeouts for every session.
    pub session: SessionOptions,
    /// The checks to run after the divergence analysis (`None`: `--no-checks`).
    pub checks: Option<Catalog>,
    /// The row diff's options (`None`: `--no-tables`).
    pub tables: Option<crate::diff::DiffOptions>,
    /// The share of its time the run may keep the new primary busy (`--max-rate 25%`): every
    /// session and WAL stream to it pauses accordingly. `None`: unpaced.
    pub busy_share: Option<f64>,
    /// What HA-manager discovery (`--patroni`, `--repmgr`, `--pg-auto-failover`,
    /// `--cnpg-status`) found, for the report.
    pub discovery: Option<crate::discovery::Discovery>,
    /// Where to write an evidence bundle (`--evidence-dir`).
    pub evidence_dir: Option<PathBuf>,
    /// The command line with conninfo strings redacted, for the bundle's index.
    pub command_line: String,
}

/// What the compare flags say, before any server or HA manager is asked: the nodes the flags
/// name, and the discovery that names the others ([`ComparePlan::resolve`]).
#[derive(Debug, Clone)]
pub struct ComparePlan {
    /// The inputs from the flags alone; no discovery result yet.
    pub input: CompareInput<Option<ConnParams>>,
    /// The HA manager to ask (`--patroni`, `--repmgr`, `--pg-auto-failover`, `--cnpg-status`).
    pub manager: Option<DiscoveryPlan>,
}

impl ComparePlan {
    /// Parses the flags (conninfo strings with the process environment, timeouts). No server
    /// and no HA manager is asked; only local files are read (`--checks-dir`, a service or
    /// password file).
    pub fn from_args(args: &CompareArgs) -> Result<Self, CommandError> {
        let parse = |flag: &'static str, s: &str| {
            ConnParams::parse_with_process_env(s).map_err(|e| CommandError::Usage {
                flag,
                message: e.to_string(),
            })
        };
        let mut former_archive = Vec::new();
        if let Some(c) = &args.former_restore_command {
            if !c.contains("%f") || !c.contains("%p") {
                return Err(CommandError::Usage {
                    flag: "--former-restore-command",
                    message: format!("{c:?} has no %f (file name) or no %p (path to write); e.g. 'cp /archive/%f %p'"),
                });
            }
            former_archive.push(WalSource::RestoreCommand(c.clone()));
        }
        if let Some(d) = &args.former_wal_archive {
            if !d.is_dir() {
                return Err(CommandError::Usage {
                    flag: "--former-wal-archive",
                    message: format!("{} is not a directory", d.display()),
                });
            }
            former_archive.push(WalSource::Directory(d.clone()));
        }
        let wal_files = args.former_wal_dir.is_some() || !former_archive.is_empty();
        if args.former_primary.is_none()
            && !wal_files
            && args.patroni.urls.is_empty()
            && args.discovery.source().is_none()
        {
            return Err(CommandError::Usage {
                flag: "--former-primary",
                message: "name the former primary (a conninfo), or its WAL with --former-wal-dir, --former-restore-command or --former-wal-archive"
                    .into(),
            });
        }
        if args.former_timeline.is_some() && !wal_files {
            return Err(CommandError::Usage {
                flag: "--former-timeline",
                message:
                    "only with --former-wal-dir, --former-restore-command or --former-wal-archive"
                        .into(),
            });
        }
        let restore_timeout = Duration::try_from_secs_f64(args.restore_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| CommandError::Usage {
                flag: "--restore-timeout",
                message: format!(
                    "{} is not a positive number of seconds",
                    args.restore_timeout
                ),
            })?;
        let manager = DiscoveryPlan::from_args(&args.patroni, &args.discovery, &args.timeouts);
        let new_primary = match &args.new_primary {
            Some(s) => Some(parse("--new-primary", s)?),
            None if manager.is_some() => None,
            None => return Err(no_new_primary()),
        };
        let former_primary = match &args.former_primary {
            Some(s) => {
                let p = parse("--former-primary", s)?;
                // The exact node matters here: several hosts need an explicit rule.
                if p.is_multi_host() && !p.target_session_attrs_given() {
                    return Err(CommandError::Usage {
                        flag: "--former-primary",
                        message: format!(
                            "{} hosts ({}) but no target_session_attrs: the lost WAL is on one exact node, so say which kind to pick, e.g. target_session_attrs=primary (the node still writing on the old timeline) or standby (an isolated former primary restarted as a standby)",
                            p.hosts().len(),
                            p.target()
                        ),
                    });
                }
                Some(p)
            }
            None => None,
        };
        // Before the row diff's options, so that a bad combination is named as --max-rate.
        let throttle =
            crate::diff::Throttle::from_specs(&args.tables.max_rate).map_err(|message| {
                CommandError::Usage {
                    flag: "--max-rate",
                    message,
                }
            })?;
        let input = CompareInput {
            new_primary,
            former_primary,
            former_wal_dir: args.former_wal_dir.clone(),
            former_archive,
            restore_timeout,
            former_timeline: args.former_timeline.map(TimelineId),
            session: args.timeouts.session_options(),
            checks: if args.no_checks {
                None
            } else {
                Some(Catalog::load(args.checks_dir.as_deref())?)
            },
            tables: crate::diff::DiffOptions::from_args(&args.tables).map_err(|e| {
                CommandError::Usage {
                    flag: "--tables",
                    message: e.to_string(),
                }
            })?,
            busy_share: throttle.busy_share,
            discovery: None,
            evidence_dir: args.evidence_dir.clone(),
            command_line: crate::bundle::redacted_command_line(
                &std::env::args_os()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
            ),
        };
        Ok(ComparePlan { input, manager })
    }

    /// The gather step's first part: asks the HA manager the plan names (if any), within the
    /// run's timeouts, and takes from it the nodes the flags did not name.
    pub async fn resolve(self) -> Result<CompareInput, CommandError> {
        let discovery = match &self.manager {
            Some(m) => Some(m.discover().await?),
            None => None,
        };
        with_discovery(self.input, discovery)
    }
}

/// The input with the nodes `discovery` names where the flags named none.
pub(super) fn with_discovery(
    i: CompareInput<Option<ConnParams>>,
    mut discovery: Option<crate::discovery::Discovery>,
) -> Result<CompareInput, CommandError> {
    let wal_files = i.former_wal_dir.is_some() || !i.former_archive.is_empty();
    if let Some(d) = &mut discovery {
        // The sections forget the choices that flags override.
        if i.new_primary.is_some() {
            d.section.new_primary = None;
            if let Some(p) = &mut d.patroni {
                p.section.new_primary = None;
            }
        }
        if i.former_primary.is_some() || wal_files {
            d.section.former_primary = None;
            d.section.former_primary_rule = None;
            if let Some(p) = &mut d.patroni {
                p.section.former_primary = None;
                p.section.former_primary_rule = None;
            }
        }
    }
    let new_primary = match (i.new_primary, &discovery) {
        (Some(p), _) => p,
        (None, Some(d)) => d.conninfo(d.new_primary()?)?,
        (None, None) => return Err(no_new_primary()),
    };
    let former_primary = match (i.former_primary, &discovery) {
        (Some(p), _) => Some(p),
        (None, Some(d)) if !wal_files => Some(d.conninfo(&d.former_primary()?.member)?),
        _ => None,
    };
    Ok(CompareInput {
        new_primary,
        former_primary,
        former_wal_dir: i.former_wal_dir,
        former_archive: i.former_archive,
        restore_timeout: i.restore_timeout,
        former_timeline: i.former_timeline,
        session: i.session,
        checks: i.checks,
        tables: i.tables,
        busy_share: i.busy_share,
        discovery,
        evidence_dir: i.evidence_dir,
        command_line: i.command_line,
    })
}

/// `--new-primary` missing with no HA manager to name it.
pub(super) fn no_new_primary() -> CommandError {
    CommandError::Usage {
        flag: "--new-primary",
        message: "name the new primary (a conninfo), or pass --patroni, --repmgr, --pg-auto-failover or --cnpg-status".into(),
    }
}

impl CompareInput {
    /// Parses flags that name the nodes themselves (no HA manager to ask); with `--patroni`,
    /// `--repmgr`, ... use [`ComparePlan::from_args`] and [`ComparePlan::resolve`].
    pub fn from_args(args: &CompareArgs) -> Result<Self, CommandError> {
        let plan = ComparePlan::from_args(args)?;
        if let Some(m) = &plan.manager {
            return Err(CommandError::Usage {
                flag: m.flag(),
                message: "an HA manager is asked in the command's gather step (ComparePlan::resolve), not while parsing".into(),
            });
        }
        with_discovery(plan.input, None)
    }
}

impl CompareInput {
    /// One-line notices about the connection strings (keywords accepted but not used, a
    /// password file ignored), for the command layer to print on stderr.
    pub fn notices(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, p) in [
            ("--new-primary", Some(&self.new_primary)),
            ("--former-primary", self.former_primary.as_ref()),
        ] {
            if let Some(p) = p {
                out.extend(p.warnings().iter().map(|w| format!("{flag}: {w}")));
            }
        }
        out
    }
}

/// Multi-host connection strings narrowed to the host libpq's rules pick, so that every
/// session and stream of the run goes to that one node; the choices, for the report.
pub(super) async fn pin_hosts(
    input: &CompareInput,
) -> Result<
    (
        CompareInput,
        Option<crate::pg::HostChoice>,
        Option<crate::pg::HostChoice>,
    ),
    CommandError,
> {
    let mut out = input.clone();
    let mut new_choice = None;
    let mut former_choice = None;
    if input.new_primary.needs_host_choice() {
        let (p, s, c) = crate::pg::multihost::choose(&input.new_primary, &input.session)
            .await
            .map_err(|e| {
                CommandError::NewPrimary(crate::commands::outcome::NodeError {
                    target: input.new_primary.target(),
                    source: e.into(),
                })
            })?;
        s.close().await;
        out.new_primary = p;
        new_choice = Some(c);
    }
    if let Some(f) = input
        .former_primary
        .as_ref()
        .filter(|f| f.needs_host_choice())
    {
        // On failure the string stays as given: reading the node then fails with the reason.
        if let Ok((p, s, c)) = crate::pg::multihost::choose(f, &input.session).await {
            s.close().await;
            out.former_primary = Some(p);
            former_choice = Some(c);
        }
    }
    Ok((out, new_choice, former_choice))
}

/// Exposed for the `wal` subcommand: `Lsn` parsing with the flag named.
pub fn parse_lsn_flag(flag: &'static str, s: &str) -> Result<Lsn, CommandError> {
    s.parse()
        .map_err(|e: crate::lsn::LsnParseError| CommandError::Usage {
            flag,
            message: e.to_string(),
        })
}
