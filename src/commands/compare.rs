//! `failover-verify compare`: read both nodes, place their timelines, account the lost WAL,
//! and report.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::checks::Catalog;
use crate::cli::CompareArgs;
use crate::divergence::{analyze, human_bytes, Analysis, Divergence, Verdict};
use crate::evidence::lostlist::{self, ListTarget};
use crate::evidence::scan::ScanOptions;
use crate::evidence::{self, Evidence, Source};
use crate::finding::{Finding, FindingId};
use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::SessionOptions;
use crate::report::{NodeSection, Report, SCHEMA_VERSION};
use crate::timeline::TimelineHistory;
use crate::wal::accounting::Detail;
use crate::wal::archive::{WalSource, WalStage};

use super::discover::DiscoveryPlan;
use super::{CommandError, Outcome};
use crate::report::{now_rfc3339, tool_id};

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
    /// Parses the flags (conninfo strings with the process environment, timeouts). Pure: no
    /// server and no HA manager is asked (only `--checks-dir` is read).
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
fn with_discovery(
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
fn no_new_primary() -> CommandError {
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
async fn pin_hosts(
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
                CommandError::NewPrimary(super::outcome::NodeError {
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

/// Findings about a discovery by repmgr, pg_auto_failover or CloudNativePG: a tie in choosing
/// the former primary, and members whose own records could not be read.
fn discovery_findings(d: &crate::discovery::Discovery) -> Vec<Finding> {
    let mut out = Vec::new();
    let manager = d.section.manager.label();
    if let (Some(_), Ok(c)) = (&d.section.former_primary, &d.former_primary) {
        if !c.tied_with.is_empty() {
            out.push(
                Finding::new(
                    FindingId::DiscoveryFormerAmbiguous,
                    format!(
                        "{manager} cannot tell the former primary apart: {} and {} fit equally well; {} was compared",
                        c.member.name,
                        c.tied_with.join(", "),
                        c.member.name
                    ),
                )
                .with_hint("name the former primary with --former-primary"),
            );
        }
    }
    if !d.section.unanswered.is_empty() {
        out.push(
            Finding::new(
                FindingId::DiscoveryUnanswered,
                format!(
                    "{manager}: members whose records could not be read: {}",
                    d.section.unanswered.join("; ")
                ),
            )
            .with_hint("a member that cannot be reached was not examined; check it by hand with `failover-verify cluster --primary ... --node CONNINFO`"),
        );
    }
    out
}

/// Findings about Patroni discovery: a tie in choosing the former primary, URLs that did not
/// answer, and a promotion in `/history` that disagrees with the new primary's history file.
fn patroni_findings(
    d: &crate::patroni::Discovery,
    divergence: Option<&Divergence>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Some(_), Ok(c)) = (&d.section.former_primary, &d.former_primary) {
        if !c.tied_with.is_empty() {
            out.push(Finding {
                severity: FindingId::PatroniFormerAmbiguous.severity(),
                id: FindingId::PatroniFormerAmbiguous,
                message: format!(
                    "Patroni cannot tell the former primary apart: {} and {} stayed on the old timeline with the same WAL; {} was compared",
                    c.member.name,
                    c.tied_with.join(", "),
                    c.member.name
                ),
                hint: Some("name the former leader with --former-primary; any of them holds the lost WAL as far as it was replicated".into()),
            });
        }
    }
    if !d.section.unanswered.is_empty() {
        out.push(Finding {
            severity: FindingId::PatroniUnanswered.severity(),
            id: FindingId::PatroniUnanswered,
            message: format!(
                "Patroni URLs that did not answer: {}",
                d.section.unanswered.join("; ")
            ),
            hint: None,
        });
    }
    if let (Some(p), Some(dv)) = (&d.section.promotion, divergence) {
        let same = dv.former_timeline.0 == p.parent_timeline
            && dv.switchpoint_lsn == Some(p.switchpoint_lsn);
        let covered = dv.timeline_path.iter().any(|t| t.0 == p.parent_timeline);
        if !same && covered {
            out.push(Finding {
                severity: FindingId::PatroniHistoryDisagrees.severity(),
                id: FindingId::PatroniHistoryDisagrees,
                message: format!(
                    "Patroni's last promotion ({}) is not the fork the nodes show (timeline {} ended at {})",
                    crate::report::patroni::promotion_line(p),
                    dv.former_timeline,
                    dv.switchpoint_lsn.map_or_else(|| "-".into(), |l| l.to_string())
                ),
                hint: Some("check that the compared nodes are the ones Patroni promoted and demoted".into()),
            });
        }
    }
    out
}

/// Runs the comparison and builds the report.
pub async fn run(input: &CompareInput) -> Result<Outcome, CommandError> {
    run_with_progress(input, &crate::diff::NoProgress).await
}

/// [`run`], reporting the row diff's progress to `progress`.
pub async fn run_with_progress(
    input: &CompareInput,
    progress: &dyn crate::diff::Progress,
) -> Result<Outcome, CommandError> {
    let started = Instant::now();
    let generated_at = now_rfc3339();
    let (pinned, new_choice, former_choice) = pin_hosts(input).await?;
    let input = &pinned;
    // The bundle's private directory exists from the start (a bad target fails before any
    // server is asked) and disappears if the run fails.
    let staging = match &input.evidence_dir {
        Some(dir) => Some(crate::bundle::Staging::create(dir)?),
        None => None,
    };
    let capture = staging.as_ref().map(|s| s.capture());
    let mut bundle_wal: Option<crate::bundle::WalRange> = None;
    let mut bundle_names = std::collections::BTreeMap::new();
    let mut bundle_databases = std::collections::BTreeMap::new();
    let mut wal_missing: Option<String> = None;
    // One budget for every session and stream to the new primary; the former primary serves
    // no one and is read at full speed.
    let pacer = input
        .busy_share
        .map(|s| crate::pg::Pacer::watching(&input.new_primary, &input.session, s));
    let former_read = async {
        match &input.former_primary {
            Some(p) => Some(super::read_node(p, &input.session, None).await),
            None => None,
        }
    };
    let (new, former) = tokio::join!(
        super::read_node(&input.new_primary, &input.session, pacer.clone()),
        former_read
    );
    crate::timing::record("compare: read both nodes' facts", started);
    let (mut new, mut former) = (new, former);
    new.section.host_choice = new_choice;
    if let Some(f) = former.as_mut() {
        f.section.host_choice = former_choice;
    }
    let mut findings = std::mem::take(&mut new.findings);
    let Some(new_facts) = new.facts.take() else {
        return Err(CommandError::NewPrimary(new.take_error()));
    };
    let (former_section, former_facts, former_session) = match former {
        Some(f) => {
            findings.extend(f.findings);
            (f.section, f.facts, f.session)
        }
        None => (
            NodeSection {
                target: if input.former_archive.is_empty() {
                    "(not connected: WAL from --former-wal-dir)".into()
                } else {
                    "(not connected: WAL from the archive)".into()
                },
                ..NodeSection::default()
            },
            None,
            None,
        ),
    };

    // WAL files: the archives, with --former-wal-dir tried first, fetched into a private
    // directory as they are needed.
    let stage = if input.former_archive.is_empty() {
        None
    } else {
        let mut sources = Vec::new();
        if let Some(d) = &input.former_wal_dir {
            sources.push(WalSource::Directory(d.clone()));
        }
        sources.extend(input.former_archive.iter().cloned());
        let seg_size = Some(new_facts.wal_segment_size)
            .filter(|s| crate::wal::page::valid_seg_size(*s))
            .unwrap_or(16 * 1024 * 1024);
        let st = WalStage::new(
            sources,
            input.restore_timeout,
            seg_size,
            Some(new_facts.system_identifier),
        )
        .map_err(CommandError::Staging)?;
        Some(Arc::new(Mutex::new(st)))
    };

    // Timelines and WAL positions.
    let mut files_only = former_facts.is_none();
    let mut former_history: Option<TimelineHistory> = former_facts.as_ref().and_then(|f| {
        f.history.clone().or_else(|| {
            new_facts
                .history
                .as_ref()
                .and_then(|h| crate::divergence::implied_history(h, f.timeline))
        })
    });
    let mut analysis = match (&former_facts, &stage, &input.former_wal_dir) {
        (Some(former), _, _) => analyze(&new_facts, former),
        (None, Some(st), _) => {
            let (a, h) = analyze_from_stage(&new_facts, st, input.former_timeline).await?;
            former_history = h;
            a
        }
        (None, None, Some(dir)) => {
            let (a, h) = analyze_from_dir(&new_facts, dir, input.former_timeline);
            former_history = h;
            a
        }
        (None, None, None) => {
            let why = former_section.error.clone().unwrap_or_default();
            findings.push(Finding {
                severity: FindingId::FormerUnreachable.severity(),
                id: FindingId::FormerUnreachable,
                message: format!("former primary: {why}"),
                hint: Some("start the former primary isolated (as a standby with no upstream) so it can be inspected, pass the right conninfo, or copy its pg_wal and pass --former-wal-dir".into()),
            });
            Analysis {
                verdict: Verdict::Inconclusive,
                explanation: format!("The former primary could not be read ({why}), so whether it wrote WAL past the switchpoint is unknown."),
                divergence: None,
            }
        }
    };

    // A rewound former primary no longer holds the lost WAL; the archive may.
    if let (Verdict::Rewound, Some(st)) = (analysis.verdict, &stage) {
        findings.push(Finding {
            severity: FindingId::FormerRewoundArchiveRead.severity(),
            id: FindingId::FormerRewoundArchiveRead,
            message: "the former primary already follows the new timeline: its lost WAL was read from the archive instead".into(),
            hint: None,
        });
        let (a, h) = analyze_from_stage(&new_facts, st, input.former_timeline).await?;
        analysis = a;
        former_history = h;
        files_only = true;
    }
    if let (Some(st), Some(h)) = (&stage, &new_facts.history) {
        let live_former = former_facts
            .as_ref()
            .filter(|_| !files_only)
            .and_then(|f| f.history.clone());
        findings.extend(history_findings(st, h, live_former).await?);
    }

    // The lost WAL, decoded: which transactions, when, which tables.
    let mut transactions = None;
    let mut attribution = None;
    let mut former_side: Option<crate::diff::walguided::SideWal> = None;
    let mut wal_rows_input: Option<WalRowsParts> = None;
    let mut touched_databases: Vec<String> = Vec::new();
    let mut downstream: Option<crate::downstream::Downstream> = None;
    let wal_range = analysis
        .divergence
        .as_ref()
        .and_then(|d| d.switchpoint_lsn.map(|sp| (d.clone(), sp)));
    if let Some((d, switchpoint)) = wal_range {
        let worth_reading = matches!(analysis.verdict, Verdict::Loss)
            || (analysis.verdict == Verdict::Inconclusive
                && (input.former_wal_dir.is_some() || stage.is_some()));
        if worth_reading {
            // In order: the running node (unless rewound), else a directory alone; then the
            // archive (with the directory as its first source). The first that reads wins.
            let mut sources = Vec::new();
            let live = (!files_only)
                .then_some(())
                .and(input.former_primary.as_ref())
                .zip(former_session.as_ref())
                .zip(former_facts.as_ref());
            match (&input.former_wal_dir, &stage) {
                (Some(dir), None) => sources.push(Source::Directory(dir.clone())),
                _ => {
                    if let Some(((params, session), facts)) = live {
                        sources.push(Source::Node {
                            params,
                            session,
                            can_replicate: facts.can_replicate,
                            seg_size: facts.wal_segment_size,
                        });
                    }
                }
            }
            if let Some(st) = &stage {
                sources.push(Source::Files(st.clone()));
            }
            let history = former_history
                .clone()
                .unwrap_or_else(|| TimelineHistory::root(d.former_timeline));
            let end = former_facts
                .as_ref()
                .filter(|_| !files_only)
                .map(|_| d.former_end_lsn);
            // Names from the former primary's catalogs; with only files, from the new
            // primary's (the same relfilenodes, unless rewritten after the switchpoint).
            let names_from = match (files_only, &input.former_primary) {
                (true, _) => evidence::Names::NewPrimary(&input.new_primary),
                (false, Some(p)) => evidence::Names::Former(p),
                (false, None) => evidence::Names::Unmapped,
            };
            // The row diff needs every lost commit and touched tuple; without it the
            // accounting stays bounded, and the complete list goes to the export directory.
            let row_diff = input.tables.is_some() && former_facts.is_some() && !files_only;
            // Without the former primary the rows come from the WAL's tuple images; with it,
            // they are decoded as well, to check the live row diff against.
            let keep_tuples = input.tables.is_some();
            let list = input
                .tables
                .as_ref()
                .and_then(|o| o.export_dir.as_ref())
                .map(|dir| ListTarget::at(dir.join(lostlist::EXPORT_FILE_NAME)));
            let scan_opts = ScanOptions {
                detail: if row_diff || keep_tuples {
                    Detail::Full
                } else {
                    ScanOptions::bounded(None).detail
                },
                list,
                horizon: row_diff || keep_tuples,
                tuples: keep_tuples,
            };
            let mut evidence = None;
            let count = sources.len();
            for (i, source) in sources.iter().enumerate() {
                let t = Instant::now();
                let (ev, more) = evidence::gather(
                    source,
                    names_from,
                    &input.session,
                    &history,
                    switchpoint,
                    end,
                    capture,
                    &scan_opts,
                )
                .await;
                crate::timing::record("compare: former timeline's WAL", t);
                findings.extend(more);
                match ev {
                    Err(evidence::scan::ScanError::Archive(e)) if !e.is_not_found() => {
                        return Err(CommandError::Archive(e));
                    }
                    Err(e) if i + 1 < count => findings.push(Finding {
                        severity: FindingId::WalSourceFailed.severity(),
                        id: FindingId::WalSourceFailed,
                        message: format!("reading the former timeline's WAL failed, trying the archive next: {e}"),
                        hint: None,
                    }),
                    other => {
                        evidence = Some(other);
                        break;
                    }
                }
            }
            if let Some(evidence) = evidence {
                if let Err(e) = &evidence {
                    findings.push(match e {
                        evidence::scan::ScanError::Archive(_) => {
                            evidence::unreadable_files_finding(e)
                        }
                        _ => evidence::unreadable_finding(e),
                    });
                    wal_missing = Some(format!("the former timeline's WAL could not be read: {e}"));
                }
                if let Ok(mut ev) = evidence {
                    // Consumers that already received some of the lost transactions.
                    if let Some(session) = &former_session {
                        let t = Instant::now();
                        downstream =
                            Some(crate::downstream::examine(session, switchpoint, Some(&ev)).await);
                        crate::timing::record("compare: downstream consumers", t);
                    }
                    if let (Some(c), Some(_)) = (capture, &stage) {
                        // Segments fetched from an archive go into the bundle as read.
                        for (name, path) in &ev.segment_files {
                            if let Err(e) = c.copy_file(path, name) {
                                findings.push(Finding::new(
                                    FindingId::WalCaveat,
                                    format!(
                                        "{name} could not be copied into the evidence bundle: {e}"
                                    ),
                                ));
                            }
                        }
                    }
                    if staging.is_some() {
                        bundle_wal = Some(crate::bundle::WalRange {
                            timeline: d.former_timeline,
                            segment_size: match (&input.former_wal_dir, &former_facts) {
                                (None, Some(f)) => f.wal_segment_size,
                                _ => evidence::dir_seg_size(
                                    input.former_wal_dir.as_deref().unwrap_or(".".as_ref()),
                                    d.former_timeline,
                                ),
                            },
                            switchpoint,
                            scan_start: ev.transactions.scan_start_lsn,
                            requested_end: end,
                            decoded_end: ev.transactions.end_lsn,
                            source: ev.transactions.source.clone(),
                            from_dir: input.former_wal_dir.clone(),
                        });
                        bundle_names = std::mem::take(&mut ev.names);
                        bundle_databases = ev.databases.clone();
                    }
                    if let (Some(session), Some(end_lsn)) = (&former_session, ev.lost.end_lsn) {
                        // pg_walinspect wants the MAXALIGNed end of the last record.
                        let t = Instant::now();
                        ev.transactions.walinspect = evidence::walinspect_check(
                            session,
                            switchpoint,
                            end_lsn.align8(),
                            ev.transactions.lost_commits,
                        )
                        .await;
                        crate::timing::record("compare: pg_walinspect check", t);
                    }
                    let t = Instant::now();
                    let former_names = match names_from {
                        evidence::Names::Former(p) => Some(p),
                        _ => None,
                    };
                    let (rels, unnamed) = evidence::ddl::name_lost_ddl(
                        former_names,
                        Some(&input.new_primary),
                        &input.session,
                        &ev.lost,
                        &ev.created_after_switchpoint,
                        &ev.databases,
                        ev.transactions.new_side_first_xid,
                    )
                    .await;
                    ev.transactions.lost_ddl_relations = rels;
                    ev.transactions.lost_ddl_unnamed = unnamed;
                    crate::timing::record("compare: name the lost DDL", t);
                    touched_databases = ev.touched_databases();
                    settle_with_wal(&mut analysis, &ev, files_only);
                    findings.extend(transaction_findings(&ev, "--export-dir DIR"));
                    attribution = Some(crate::diff::Attribution::from_evidence(&ev));
                    wal_rows_input = ev.tuples.take().map(|log| WalRowsParts {
                        log,
                        created: ev.created_after_switchpoint.clone(),
                        lost_ddl: ev.transactions.lost_ddl_relations.clone(),
                        incomplete: None,
                    });
                    former_side = Some(
                        crate::diff::walguided::SideWal::from_accounting(
                            &ev.lost,
                            std::mem::take(&mut ev.created_after_switchpoint),
                        )
                        .with_prepared_before_scan(&ev.prepared_before_scan),
                    );
                    if let (Some(w), Some(f)) = (&mut wal_rows_input, &former_side) {
                        w.incomplete = f.incomplete.clone();
                    }
                    transactions = Some(ev.transactions);
                }
            }
        }
    }

    // Without decoded WAL, the consumers' positions alone say who received WAL past the fork.
    if let (None, Some(session), Verdict::Loss, Some(sp)) = (
        &downstream,
        &former_session,
        analysis.verdict,
        analysis.divergence.as_ref().and_then(|d| d.switchpoint_lsn),
    ) {
        downstream = Some(crate::downstream::examine(session, sp, None).await);
    }
    // The former primary was not read (WAL from files only): its consumers are unknown.
    if let (None, None, Verdict::Loss, Some(sp)) = (
        &downstream,
        &former_session,
        analysis.verdict,
        analysis.divergence.as_ref().and_then(|d| d.switchpoint_lsn),
    ) {
        downstream = Some(crate::downstream::Downstream {
            switchpoint: sp,
            consumers: Vec::new(),
            not_examined: Some(
                "the former primary was not read (the lost WAL came from files), so its replication slots and walsenders are unknown".into(),
            ),
        });
    }
    if let Some(d) = &downstream {
        let lost = transactions
            .as_ref()
            .map(|t: &evidence::Transactions| t.lost_commits as u64);
        findings.extend(crate::downstream::findings(d, lost));
    }

    // Which rows: table checksums down to single rows, attributed with the lost xids.
    let tables = match (&input.tables, &input.former_primary, &former_facts) {
        (Some(opts), Some(former), Some(_))
            if !files_only && matches!(analysis.verdict, Verdict::Loss | Verdict::NoLoss) =>
        {
            let attribution = attribution.clone().unwrap_or_default();
            // Every database the lost WAL touched is compared, not only the conninfo's, and the
            // new primary's sessions share the run's pacing budget.
            let opts = &crate::diff::DiffOptions {
                new_pacer: pacer.clone(),
                databases: touched_databases.clone(),
                ..opts.clone()
            };
            let t = Instant::now();
            let result = match opts.mode {
                crate::diff::TablesMode::Full => {
                    crate::diff::compare_tables(
                        &input.new_primary,
                        former,
                        &input.session,
                        opts,
                        &attribution,
                        progress,
                    )
                    .await
                }
                mode => {
                    let planner = walguided_planner(
                        input,
                        pacer.clone(),
                        &new_facts,
                        analysis.divergence.as_ref(),
                        mode,
                        &attribution,
                        former_side.take(),
                    );
                    crate::diff::compare_tables_with(
                        &input.new_primary,
                        former,
                        &input.session,
                        opts,
                        &attribution,
                        &planner,
                        progress,
                    )
                    .await
                }
            };
            crate::timing::record("compare: row diff", t);
            match result {
                Ok(t) => {
                    findings.extend(table_findings(&t));
                    if transactions.is_none()
                        && analysis.verdict == Verdict::Loss
                        && !opts.all_databases
                    {
                        findings.push(Finding {
                            severity: FindingId::DatabasesUnknown.severity(),
                            id: FindingId::DatabasesUnknown,
                            message: format!(
                                "the lost WAL was not decoded, so the databases it wrote in are unknown: only {} was row-compared",
                                t.databases.join(", ")
                            ),
                            hint: Some("re-run with --all-databases to compare every database, or make the lost WAL readable (see wal_unreadable)".into()),
                        });
                    }
                    Some(t)
                }
                Err(e) => {
                    findings.push(Finding {
                        severity: FindingId::TablesFailed.severity(),
                        id: FindingId::TablesFailed,
                        message: format!("the row diff could not run: {e}"),
                        hint: Some("grant SELECT on the compared tables (e.g. GRANT pg_read_all_data TO role), or skip it with --no-tables".into()),
                    });
                    None
                }
            }
        }
        _ => None,
    };

    // The lost rows from the WAL: the row-level report when the former primary was not read,
    // a cross-check of the live rows when it was.
    let mut tables = tables;
    if let (Some(opts), Some(parts), Some(attribution)) =
        (&input.tables, &wal_rows_input, &attribution)
    {
        let former_read = former_facts.is_some() && !files_only;
        if analysis.verdict == Verdict::Loss && (tables.is_some() || !former_read) {
            let t = Instant::now();
            let (more, report) =
                rows_from_wal(input, opts, parts, attribution, tables.as_ref()).await;
            crate::timing::record("compare: rows from the WAL", t);
            findings.extend(more);
            if tables.is_none() {
                tables = report;
            }
        }
    }

    // Declarative checks (checks/*.toml, --checks-dir): their own section, not the verdict.
    let checks = match &input.checks {
        Some(catalog) => {
            crate::checks::run_checks(catalog, new.session.as_ref(), former_session.as_ref()).await
        }
        None => Vec::new(),
    };

    let from_files = transactions
        .as_ref()
        .is_some_and(|t: &evidence::Transactions| t.coverage.is_some());
    if analysis.verdict == Verdict::Loss && files_only && from_files {
        findings.push(Finding {
            severity: FindingId::KeepEvidence.severity(),
            id: FindingId::KeepEvidence,
            message: "The WAL files read hold the only copy of the lost transactions.".into(),
            hint: Some("keep those archive files (do not let retention expire them) until the lost transactions are accounted for".into()),
        });
    } else if analysis.verdict == Verdict::Loss {
        findings.push(Finding {
            severity: FindingId::KeepEvidence.severity(),
            id: FindingId::KeepEvidence,
            message: "The former primary holds the only copy of the lost WAL.".into(),
            hint: Some("do not pg_rewind, reinitialise or let Patroni rejoin it until the lost transactions are accounted for".into()),
        });
    }
    if let Some(d) = &input.discovery {
        match &d.patroni {
            Some(p) => findings.extend(patroni_findings(p, analysis.divergence.as_ref())),
            None => findings.extend(discovery_findings(d)),
        }
    }
    findings.sort_by_key(|f| f.severity);
    // A part that could not run (the WAL, a check) leaves the report incomplete, whatever the verdict.
    let incomplete = analysis.verdict == Verdict::Inconclusive
        || findings.iter().any(|f| {
            matches!(
                f.id,
                FindingId::WalUnreadable
                    | FindingId::WalRowsNotExamined
                    | FindingId::DatabaseNotCompared
                    | FindingId::DatabasesUnknown
            )
        })
        || transactions
            .as_ref()
            .and_then(|t| t.coverage.as_ref())
            .is_some_and(|c| !c.complete)
        || checks.iter().any(|c| {
            matches!(
                c.status,
                crate::checks::CheckStatus::Error | crate::checks::CheckStatus::Skipped
            )
        });
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool: tool_id(),
        generated_at,
        duration_ms: started.elapsed().as_millis() as u64,
        verdict: analysis.verdict,
        explanation: analysis.explanation,
        incomplete,
        new_primary: new.section,
        former_primary: former_section,
        divergence: analysis.divergence,
        transactions,
        findings,
        checks,
        tables,
        patroni: input
            .discovery
            .as_ref()
            .and_then(|d| d.patroni.as_ref())
            .map(|d| d.section.clone()),
        discovery: input.discovery.as_ref().map(|d| d.section.clone()),
        downstream,
    };
    if let Some(staging) = staging {
        let sealed = Sealed {
            wal: bundle_wal,
            wal_missing,
            names: bundle_names,
            databases: bundle_databases,
        };
        seal_bundle(
            staging,
            &mut report,
            input,
            &new_facts,
            former_facts.as_ref(),
            sealed,
        )?;
    }
    Ok(Outcome {
        report,
        epilogue: None,
    })
}

/// What the lost WAL's scan kept for the rows rebuilt from it.
struct WalRowsParts {
    log: crate::wal::tuplelog::TupleLog,
    created: std::collections::BTreeSet<crate::wal::RelFileLocator>,
    lost_ddl: Vec<crate::evidence::ddl::LostDdlRelation>,
    incomplete: Option<String>,
}

/// Rebuilds the lost rows from the WAL. Without `live` (the former primary was not read) the
/// result is the row-level report, exported when `--export-dir` asks; with it, any difference
/// between the two is a `wal_rows_disagree` finding.
async fn rows_from_wal(
    input: &CompareInput,
    opts: &crate::diff::DiffOptions,
    parts: &WalRowsParts,
    attribution: &crate::diff::Attribution,
    live: Option<&crate::diff::TablesReport>,
) -> (Vec<Finding>, Option<crate::diff::TablesReport>) {
    use crate::diff::walrows;
    let wi = walrows::WalRowsInput {
        log: &parts.log,
        attribution,
        created_after_switchpoint: &parts.created,
        lost_ddl: &parts.lost_ddl,
        incomplete: parts.incomplete.clone(),
        filter: Some(&opts.filter),
    };
    let mut findings = Vec::new();
    let mut rows = match walrows::rows_from_wal(&wi, &input.new_primary, &input.session).await {
        Ok(r) => r,
        Err(e) => {
            findings.push(
                Finding::new(
                    if live.is_some() {
                        FindingId::WalRowsDisagree
                    } else {
                        FindingId::WalRowsNotExamined
                    },
                    format!("the lost rows could not be rebuilt from the WAL: {e}"),
                )
                .with_hint("grant the role SELECT on the tables (e.g. pg_read_all_data) on the new primary, or compare with the former primary reachable"),
            );
            return (findings, None);
        }
    };
    if let Some(live) = live {
        let diffs = walrows::cross_check(live, &rows.report);
        if !diffs.is_empty() {
            findings.push(
                Finding::new(
                    FindingId::WalRowsDisagree,
                    format!(
                        "{} lost row(s) differ between the live row diff and the rows rebuilt from the WAL: {}{}",
                        diffs.len(),
                        diffs.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                        if diffs.len() > 5 { "; ..." } else { "" }
                    ),
                )
                .with_hint("trust the rows read from the former primary; keep the evidence (--evidence-dir) and report these rows"),
            );
        }
        return (findings, None);
    }
    findings.push(Finding::new(
        FindingId::RowsFromWal,
        format!(
            "the former primary was not read: the lost rows of {} table(s) were rebuilt from its WAL and checked against the new primary by primary key",
            rows.report.tables.len()
        ),
    ));
    findings.append(&mut rows.findings);
    if let Some(dir) = &opts.export_dir {
        match crate::diff::export::write_export(dir, &rows.report) {
            Ok(s) => rows.report.export = Some(s),
            Err(e) => findings.push(
                Finding::new(
                    FindingId::TablesFailed,
                    format!("the recovery export could not be written: {e}"),
                )
                .with_hint("check that the export directory is writable"),
            ),
        }
    }
    findings.extend(table_findings(&rows.report));
    (findings, Some(rows.report))
}

/// What the run kept for its evidence bundle besides the report.
struct Sealed {
    /// The WAL range decoded, if any.
    wal: Option<crate::bundle::WalRange>,
    /// Why no WAL was decoded, when the reading failed.
    wal_missing: Option<String>,
    /// The relfilenode names the accounting used.
    names: std::collections::BTreeMap<crate::wal::RelFileLocator, crate::evidence::names::RelName>,
    /// The former primary's databases (`oid → name`).
    databases: std::collections::BTreeMap<u32, String>,
}

/// Adds the `evidence_bundle` finding to `report`, then writes the bundle and renames it into
/// place; on error nothing is left at or beside the target.
fn seal_bundle(
    staging: crate::bundle::Staging,
    report: &mut Report,
    input: &CompareInput,
    new_facts: &NodeFacts,
    former_facts: Option<&NodeFacts>,
    sealed: Sealed,
) -> Result<(), CommandError> {
    let wal_missing = match &sealed.wal {
        Some(_) => None,
        None => Some(sealed.wal_missing.unwrap_or_else(|| {
            format!(
                "the run decoded no WAL (verdict {}: {})",
                report.verdict.as_str(),
                report.explanation
            )
        })),
    };
    let (history, notes) = crate::bundle::writer::histories(&[
        ("new-primary", Some(new_facts)),
        ("former-primary", former_facts),
    ]);
    let target = staging.target().display().to_string();
    report.findings.push(Finding {
        severity: FindingId::EvidenceBundle.severity(),
        id: FindingId::EvidenceBundle,
        message: format!(
            "evidence bundle written to {target}{}",
            if sealed.wal.is_some() {
                " with the lost range's WAL segments"
            } else {
                " (no WAL: none was decoded)"
            }
        ),
        hint: Some(format!(
            "check it with `sha256sum -c SHA256SUMS` in that directory; re-analyse it without any server with `failover-verify compare --from-evidence {target}`"
        )),
    });
    let t = Instant::now();
    let contents = crate::bundle::BundleContents {
        report,
        command: input.command_line.clone(),
        wal: sealed.wal,
        wal_missing,
        history,
        names: &sealed.names,
        databases: &sealed.databases,
        end_from_wal: former_facts.is_none(),
        notes,
        secrets: [Some(&input.new_primary), input.former_primary.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| p.password().map(str::to_string))
            .collect(),
    };
    // Hashing and writing gigabytes of WAL blocks: keep the runtime's other tasks going.
    let finish = || staging.finish(contents);
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(finish),
        _ => finish(),
    }?;
    crate::timing::record("compare: evidence bundle", t);
    Ok(())
}

/// The WAL-guided planner: the former side's changes from the decoded lost WAL, the new side's
/// read from the new primary's own timeline since the switchpoint, when the row diff plans.
fn walguided_planner<'a>(
    input: &CompareInput,
    pacer: Option<std::sync::Arc<crate::pg::Pacer>>,
    new_facts: &NodeFacts,
    divergence: Option<&Divergence>,
    mode: crate::diff::TablesMode,
    attribution: &crate::diff::Attribution,
    former_side: Option<crate::diff::walguided::SideWal>,
) -> crate::diff::walguided::WalGuidedPlanner<'a> {
    use crate::diff::walguided::{NewSideWal, SideWal, WalGuidedPlanner};
    let former = former_side.unwrap_or_else(|| {
        SideWal::unreadable("the former timeline's WAL after the switchpoint was not decoded")
    });
    let new_source: Box<dyn NewSideWal> =
        match divergence.and_then(|d| d.switchpoint_lsn.map(|sp| (d.new_timeline, sp))) {
            Some((timeline, switchpoint)) => Box::new(evidence::newside::NewSideSource {
                params: input.new_primary.clone(),
                session: input.session,
                can_replicate: new_facts.can_replicate,
                seg_size: new_facts.wal_segment_size,
                timeline,
                switchpoint,
                pacer,
            }),
            None => Box::new(SideWal::unreadable("the switchpoint is unknown")),
        };
    let opts = input.tables.as_ref();
    let full = crate::diff::FullTablePlanner {
        chunk_rows: opts.map_or(crate::diff::options::DEFAULT_CHUNK_ROWS, |o| o.chunk_rows),
        max_rate: opts.and_then(|o| o.max_rate),
    };
    WalGuidedPlanner::new(mode, attribution, former, new_source, full)
}

/// Places the former timeline when only its WAL directory is available: the switchpoint is
/// where that timeline ends in the new primary's history (or, for another branch, where the
/// two histories part); the end of WAL comes from decoding.
fn analyze_from_dir(
    new: &NodeFacts,
    dir: &std::path::Path,
    tli: Option<TimelineId>,
) -> (Analysis, Option<TimelineHistory>) {
    let label = dir.display().to_string();
    let probe = |history: &TimelineHistory| Ok(newest_ancestor_in_dir(history, dir));
    let history_of =
        |t: TimelineId| Ok(std::fs::read_to_string(dir.join(t.history_file_name())).ok());
    match analyze_from_files(new, &label, tli, probe, history_of) {
        Ok(r) => r,
        Err(e) => (
            Analysis {
                verdict: Verdict::Inconclusive,
                explanation: e.to_string(),
                divergence: None,
            },
            None,
        ),
    }
}

/// The newest ancestor timeline (in `history`) with at least one segment file in `dir`.
fn newest_ancestor_in_dir(history: &TimelineHistory, dir: &std::path::Path) -> Option<TimelineId> {
    let prefixes: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(|n| n.chars().take(8).collect()))
        .collect();
    history
        .entries
        .iter()
        .rev()
        .map(|e| e.parent)
        .find(|t| prefixes.iter().any(|p| *p == format!("{:08X}", t.0)))
}

/// Like [`analyze_from_dir`] for WAL archives: the former timeline is the newest ancestor whose
/// segment holding its switchpoint a source has (or `--former-timeline`).
async fn analyze_from_stage(
    new: &NodeFacts,
    stage: &Arc<Mutex<WalStage>>,
    tli: Option<TimelineId>,
) -> Result<(Analysis, Option<TimelineHistory>), CommandError> {
    let new = new.clone();
    let st = stage.clone();
    tokio::task::spawn_blocking(move || {
        let mut stage = st.lock().unwrap_or_else(|e| e.into_inner());
        let seg = stage.segment_size();
        let label = stage.sources_label();
        let stage = std::cell::RefCell::new(&mut *stage);
        let probe = |history: &TimelineHistory| {
            for e in history.entries.iter().rev() {
                if stage
                    .borrow_mut()
                    .fetch_segment(e.parent, e.switchpoint.segment_number(seg))?
                {
                    return Ok(Some(e.parent));
                }
            }
            // None archived: the last promotion's loser, whose missing segment the scan names.
            Ok(history.entries.last().map(|e| e.parent))
        };
        let history_of = |t: TimelineId| stage.borrow_mut().fetch_history(t);
        analyze_from_files(&new, &label, tli, probe, history_of)
    })
    .await?
    .map_err(CommandError::Archive)
}

/// The former timeline and its history from WAL files alone: `tli` if given, else the newest
/// ancestor that `probe` finds in the sources; the former's history is implied by the new
/// primary's for an ancestor, else read with `history_of` (its `.history` file).
fn analyze_from_files(
    new: &NodeFacts,
    label: &str,
    tli: Option<TimelineId>,
    probe: impl FnOnce(
        &TimelineHistory,
    ) -> Result<Option<TimelineId>, crate::wal::archive::ArchiveError>,
    history_of: impl FnOnce(TimelineId) -> Result<Option<String>, crate::wal::archive::ArchiveError>,
) -> Result<(Analysis, Option<TimelineHistory>), crate::wal::archive::ArchiveError> {
    let inconclusive = |explanation: String| {
        Ok((
            Analysis {
                verdict: Verdict::Inconclusive,
                explanation,
                divergence: None,
            },
            None,
        ))
    };
    let Some(history) = &new.history else {
        return inconclusive(
            "The new primary's timeline history could not be read, so the switchpoint is unknown."
                .into(),
        );
    };
    let tli = match tli {
        Some(t) => Some(t),
        None => probe(history)?,
    };
    let Some(tli) = tli else {
        return inconclusive(format!(
            "{label} holds no WAL segments of any ancestor of timeline {} at its switchpoint; pass --former-timeline.",
            history.timeline
        ));
    };
    if tli == history.timeline {
        return inconclusive(format!(
            "Timeline {tli} is the new primary's own timeline; pass the former primary's with --former-timeline."
        ));
    }
    let former_history = match crate::divergence::implied_history(history, tli) {
        Some(h) if history.end_of(tli).is_some() => h,
        _ => match history_of(tli)? {
            Some(text) => match TimelineHistory::parse(&tli.history_file_name(), tli, &text) {
                Ok(h) => h,
                Err(e) => return inconclusive(format!("The former timeline's history is unusable: {e}.")),
            },
            None => {
                return inconclusive(format!(
                    "Timeline {tli} is not an ancestor of the new primary's timeline {}, and {label} holds no {}.",
                    history.timeline,
                    tli.history_file_name()
                ))
            }
        },
    };
    let Some(switchpoint) = history.fork_point(&former_history) else {
        return inconclusive(format!(
            "Timeline {tli} does not fork from the new primary's timeline {}.",
            history.timeline
        ));
    };
    // The timeline both shared last, then the new primary's branch.
    let common = former_history.timeline_at(Lsn(switchpoint.0.saturating_sub(1)));
    Ok((
        Analysis {
            verdict: Verdict::Inconclusive,
            explanation: format!("The former primary's WAL in {label} has not been decoded yet."),
            divergence: Some(Divergence {
                former_timeline: tli,
                new_timeline: new.timeline,
                switchpoint_lsn: Some(switchpoint),
                former_end_lsn: switchpoint,
                lost_wal_bytes: 0,
                timeline_path: history
                    .entries
                    .iter()
                    .map(|e| e.parent)
                    .skip_while(|t| *t != common)
                    .chain(std::iter::once(history.timeline))
                    .collect(),
            }),
        },
        Some(former_history),
    ))
}

/// Findings for history files in the archive that contradict a server's: the new primary's
/// timeline and each ancestor (a prefix of its history), and a running former primary's.
async fn history_findings(
    stage: &Arc<Mutex<WalStage>>,
    new: &TimelineHistory,
    former: Option<TimelineHistory>,
) -> Result<Vec<Finding>, CommandError> {
    let mut expected: Vec<(TimelineHistory, &'static str)> = Vec::new();
    for t in new.entries.iter().map(|e| e.parent).chain([new.timeline]) {
        if t.0 > 1 {
            if let Some(h) = crate::divergence::implied_history(new, t) {
                expected.push((h, "the new primary"));
            }
        }
    }
    if let Some(f) = former.filter(|f| f.timeline.0 > 1 && !new.contains(f.timeline)) {
        expected.push((f, "the former primary"));
    }
    let st = stage.clone();
    tokio::task::spawn_blocking(move || {
        let mut stage = st.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (want, who) in expected {
            let name = want.timeline.history_file_name();
            let Some(text) = stage.fetch_history(want.timeline)? else {
                continue;
            };
            let from = stage
                .histories()
                .find(|f| f.name == name)
                .map(|f| f.source.clone())
                .unwrap_or_default();
            let line = |h: &TimelineHistory| {
                h.entries
                    .iter()
                    .map(|e| format!("{}→{}", e.parent, e.switchpoint))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let problem = match TimelineHistory::parse(&name, want.timeline, &text) {
                Err(e) => Some(e.to_string()),
                Ok(got) => {
                    let same = got.entries.len() == want.entries.len()
                        && got
                            .entries
                            .iter()
                            .zip(&want.entries)
                            .all(|(a, b)| a.parent == b.parent && a.switchpoint == b.switchpoint);
                    (!same).then(|| format!("it says {}, {who} says {}", line(&got), line(&want)))
                }
            };
            if let Some(problem) = problem {
                out.push(Finding {
                    severity: FindingId::HistoryDisagrees.severity(),
                    id: FindingId::HistoryDisagrees,
                    message: format!("{name} from {from} contradicts {who}'s timeline history: {problem}"),
                    hint: Some("the archive may hold another cluster's files or a reused timeline id (check its path or stanza); the servers' histories were used".into()),
                });
            }
        }
        Ok(out)
    })
    .await?
    .map_err(CommandError::Archive)
}

/// With the lost WAL decoded, the verdict rests on commits, not bytes: background records
/// (checkpoints, running-xacts) after the switchpoint lose nothing.
pub(crate) fn settle_with_wal(analysis: &mut Analysis, ev: &Evidence, end_from_wal: bool) {
    let t = &ev.transactions;
    let Some(d) = analysis.divergence.as_mut() else {
        return;
    };
    let switchpoint = d.switchpoint_lsn.unwrap_or_default();
    if end_from_wal {
        let end = ev.lost.end_lsn.unwrap_or(switchpoint).max(switchpoint);
        d.former_end_lsn = end;
        d.lost_wal_bytes = end.saturating_bytes_since(switchpoint);
    }
    let bytes = human_bytes(d.lost_wal_bytes);
    let window = match (&t.first_lost_commit_time, &t.last_lost_commit_time) {
        (Some(a), Some(b)) if a != b => format!(" committed between {a} and {b}"),
        (Some(a), _) => format!(" committed at {a}"),
        _ => String::new(),
    };
    if t.lost_commits > 0 || !t.in_doubt.is_empty() {
        analysis.verdict = Verdict::Loss;
        // User tables only: the rows lost DDL wrote into system catalogs are not row changes
        // (the lost DDL has its own line), and TOAST chunks count against their table.
        let mut s = format!(
            "{} transaction(s){window} exist only on the former primary's timeline {}: {} of WAL after the switchpoint {switchpoint}, {} row change(s) in {} table(s)",
            t.lost_commits,
            d.former_timeline,
            bytes,
            t.row_changes,
            t.tables_changed,
        );
        if !t.in_doubt.is_empty() {
            s.push_str(&format!(
                ", and {} prepared transaction(s) in doubt",
                t.in_doubt.len()
            ));
        }
        s.push('.');
        analysis.explanation = s;
    } else {
        analysis.verdict = Verdict::NoLoss;
        analysis.explanation = if d.lost_wal_bytes == 0 {
            format!(
                "The former primary's WAL ends at the switchpoint {switchpoint}: nothing was lost."
            )
        } else {
            format!(
                "The former primary wrote {bytes} of WAL after the switchpoint {switchpoint}, but no transaction committed there ({} record(s): checkpoints, running-xacts and the like): no committed data was lost.",
                t.records_after_switchpoint
            )
        };
    }
    if let Some(note) = lower_bound_note(ev) {
        if analysis.verdict == Verdict::NoLoss {
            // Nothing lost in what was read is not "nothing lost": the rest is unknown.
            analysis.verdict = Verdict::Inconclusive;
            analysis.explanation = format!(
                "No transaction committed on the former timeline after the switchpoint {switchpoint} in the WAL that was read (up to {}), but the rest of its WAL was in no source.",
                ev.lost.end_lsn.unwrap_or(switchpoint)
            );
        }
        analysis.explanation.push_str(&note);
    }
}

/// The sentence added to the explanation when the WAL files did not reach the former's end.
fn lower_bound_note(ev: &Evidence) -> Option<String> {
    let c = ev.transactions.coverage.as_ref().filter(|c| !c.complete)?;
    Some(format!(
        " The evidence is incomplete: the WAL from {} on was in no source ({}), so these counts are a lower bound.",
        c.uncovered_from.unwrap_or(c.covered_to),
        c.missing_segments.first().map_or("-", String::as_str)
    ))
}

/// Findings that follow from the row diff.
fn table_findings(t: &crate::diff::TablesReport) -> Vec<Finding> {
    let c = &t.totals;
    let mut out = Vec::new();
    let lost = c.lost_insert + c.lost_update + c.lost_delete;
    if lost > 0 || c.conflict > 0 {
        out.push(Finding {
            severity: FindingId::LostRows.severity(),
            id: FindingId::LostRows,
            message: format!(
                "{lost} row(s) lost ({} inserted, {} updated, {} deleted on the former primary only) and {} conflict(s) changed on both sides",
                c.lost_insert, c.lost_update, c.lost_delete, c.conflict
            ),
            hint: Some(if t.export.is_some() {
                "review the recovery script in the export directory before running it on the new primary".into()
            } else {
                "re-run with --export-dir DIR to get the lost rows as CSV and a reviewable recovery script".into()
            }),
        });
    }
    let former_only: Vec<&crate::diff::TableReport> = t
        .tables
        .iter()
        .filter(|x| x.presence == crate::diff::Presence::FormerOnly)
        .collect();
    if !former_only.is_empty() {
        let rows: u64 = former_only.iter().map(|x| x.rows_compared).sum();
        out.push(Finding {
            severity: FindingId::TablesOnlyOnFormer.severity(),
            id: FindingId::TablesOnlyOnFormer,
            message: format!(
                "{} table(s) exist only on the former primary (created by lost transactions?), with {rows} row(s) not in the row counts above: {}",
                former_only.len(),
                former_only
                    .iter()
                    .map(|x| format!("{}.{}.{} ({} row(s))", x.database, x.schema, x.table, x.rows_compared))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some("recreate them on the new primary from the former primary (pg_dump --schema-only -t TABLE, then its rows) before re-applying lost rows".into()),
        });
    }
    if c.unexplained > 0 {
        out.push(Finding {
            severity: FindingId::UnexplainedRows.severity(),
            id: FindingId::UnexplainedRows,
            message: format!(
                "{} differing row(s) fit no rule (neither a lost nor a post-failover write)",
                c.unexplained
            ),
            hint: None,
        });
    }
    if c.unknown > 0 {
        out.push(Finding {
            severity: FindingId::UnattributedRows.severity(),
            id: FindingId::UnattributedRows,
            message: format!("{} differing row(s) could not be attributed: the lost transactions were not decoded", c.unknown),
            hint: Some("give the role access to the former primary's WAL (see wal_unreadable) to tell lost writes from post-failover ones".into()),
        });
    }
    for d in &t.skipped_databases {
        out.push(Finding {
            severity: FindingId::DatabaseNotCompared.severity(),
            id: FindingId::DatabaseNotCompared,
            message: format!(
                "database {} holds lost changes but its rows were not compared: {}",
                d.database, d.reason
            ),
            hint: Some(d.hint.clone()),
        });
    }
    for w in &t.warnings {
        out.push(Finding {
            severity: FindingId::TablesNote.severity(),
            id: FindingId::TablesNote,
            message: w.clone(),
            hint: None,
        });
    }
    out
}

/// Findings that follow from the decoded WAL; `list_flag` is how to ask for the complete list
/// of lost transactions (`--export-dir DIR`, `--lost-xids-file PATH`).
pub(crate) fn transaction_findings(ev: &Evidence, list_flag: &str) -> Vec<Finding> {
    let t = &ev.transactions;
    let mut out = Vec::new();
    if t.lost_xids_omitted > 0 {
        let shown = t.lost_xids.len();
        out.push(Finding {
            severity: FindingId::LostXidsAbridged.severity(),
            id: FindingId::LostXidsAbridged,
            message: match &t.lost_xids_file {
                Some(f) => format!(
                    "the report lists {shown} of the {} lost transactions (the first and the last); all of them are in {f}",
                    t.lost_commits
                ),
                None => format!(
                    "the report lists {shown} of the {} lost transactions (the first and the last); {} are left out of the list, not of the counts",
                    t.lost_commits, t.lost_xids_omitted
                ),
            },
            hint: t
                .lost_xids_file
                .is_none()
                .then(|| format!("re-run with {list_flag} to get every lost transaction in a CSV file")),
        });
    }
    if !t.in_doubt.is_empty() {
        out.push(Finding {
            severity: FindingId::PreparedInDoubt.severity(),
            id: FindingId::PreparedInDoubt,
            message: format!(
                "{} transaction(s) were PREPAREd on the former primary after the switchpoint and are unknown to the new primary: {}",
                t.in_doubt.len(),
                t.in_doubt.iter().map(|d| d.gid.clone().unwrap_or_else(|| d.xid.to_string())).collect::<Vec<_>>().join(", ")
            ),
            hint: Some("tell the transaction manager these GIDs were not prepared on the new primary".into()),
        });
    }
    if t.lost_ddl > 0 {
        let named = crate::report::lost_ddl_line(t)
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        out.push(Finding {
            severity: FindingId::LostDdl.severity(),
            id: FindingId::LostDdl,
            message: format!(
                "{} lost transaction(s) changed the schema (DDL){named}",
                t.lost_ddl
            ),
            hint: Some(
                "re-create those schema changes on the new primary before re-applying rows".into(),
            ),
        });
    }
    if !t.lost_ddl_unnamed.is_empty() {
        out.push(Finding {
            severity: FindingId::LostDdlUnnamed.severity(),
            id: FindingId::LostDdlUnnamed,
            message: format!(
                "lost DDL not named by relation: {}",
                t.lost_ddl_unnamed.join("; ")
            ),
            hint: Some("start the former primary isolated (as a standby with no upstream) and run failover-verify compare --new-primary CONNINFO --former-primary CONNINFO to name them; pg_waldump -p PG_WAL -s SWITCHPOINT -r Transaction lists the relation files each lost commit dropped".into()),
        });
    }
    if !t.sequences.is_empty() {
        out.push(Finding {
            severity: FindingId::SequencesAdvanced.severity(),
            id: FindingId::SequencesAdvanced,
            message: format!("{} sequence(s) advanced on the former primary after the switchpoint", t.sequences.len()),
            hint: Some("advance them on the new primary (setval) past the former primary's values before re-applying lost rows".into()),
        });
    }
    if let Some(w) = &t.walinspect {
        if !w.agrees {
            out.push(Finding {
                severity: FindingId::WalinspectDisagrees.severity(),
                id: FindingId::WalinspectDisagrees,
                message: format!(
                    "pg_walinspect counts {} commit(s) in the same range, the decoder {}",
                    w.commits, t.lost_commits
                ),
                hint: None,
            });
        }
    }
    for c in &t.caveats {
        out.push(Finding {
            severity: FindingId::WalCaveat.severity(),
            id: FindingId::WalCaveat,
            message: c.clone(),
            hint: None,
        });
    }
    out
}

/// Exposed for the `wal` subcommand: `Lsn` parsing with the flag named.
pub fn parse_lsn_flag(flag: &'static str, s: &str) -> Result<Lsn, CommandError> {
    s.parse()
        .map_err(|e: crate::lsn::LsnParseError| CommandError::Usage {
            flag,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_names_the_patroni_url_without_asking_it() {
        use clap::Parser;
        // Nothing listens on port 1: asking would fail (refused), so success proves no request.
        let url = "http://127.0.0.1:1";
        let cli = crate::cli::Cli::try_parse_from(["failover-verify", "compare", "--patroni", url])
            .expect("flags");
        let crate::cli::Command::Compare(args) = cli.command else {
            panic!("not a compare: {:?}", cli.command);
        };
        let started = Instant::now();
        let plan = ComparePlan::from_args(&args).expect("parsing asks no one");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        match &plan.manager {
            Some(DiscoveryPlan::Patroni { urls, .. }) => assert_eq!(urls, &[url]),
            other => panic!("no Patroni plan: {other:?}"),
        }
        assert!(plan.input.new_primary.is_none() && plan.input.former_primary.is_none());
        assert!(plan.input.discovery.is_none());
        // The sync entry point refuses to ask, rather than asking while parsing.
        assert!(matches!(
            CompareInput::from_args(&args),
            Err(CommandError::Usage {
                flag: "--patroni",
                ..
            })
        ));
    }

    fn new_primary(tli: u32, history: &str) -> NodeFacts {
        NodeFacts {
            timeline: TimelineId(tli),
            history: Some(TimelineHistory::parse("h", TimelineId(tli), history).unwrap()),
            ..NodeFacts::default()
        }
    }

    type Fetched = Result<Option<String>, crate::wal::archive::ArchiveError>;

    #[test]
    fn files_place_an_ancestor_another_branch_and_refuse_the_unknown() {
        // New primary on 3 after 1 -> 2 -> 3; the probe finds timeline 2's WAL.
        let new = new_primary(3, "1\t0/3000060\tx\n2\t0/5000000\tx\n");
        let none = |_: TimelineId| -> Fetched { Ok(None) };
        let (a, h) =
            analyze_from_files(&new, "arch", None, |_| Ok(Some(TimelineId(2))), none).unwrap();
        let d = a.divergence.unwrap();
        assert_eq!(
            (d.former_timeline, d.switchpoint_lsn),
            (TimelineId(2), Some(Lsn(0x5000000)))
        );
        assert_eq!(d.timeline_path, vec![TimelineId(2), TimelineId(3)]);
        assert_eq!(h.unwrap().entries.len(), 1);

        // Timeline 4 branched from 1 after the new primary's fork at 0/3000060: the lost range
        // starts there, on timeline 1, and crosses into 4.
        let branch = |_: TimelineId| -> Fetched { Ok(Some("1\t0/4000000\ty\n".into())) };
        let (a, h) =
            analyze_from_files(&new, "arch", Some(TimelineId(4)), |_| Ok(None), branch).unwrap();
        let d = a.divergence.unwrap();
        assert_eq!(d.switchpoint_lsn, Some(Lsn(0x3000060)));
        assert_eq!(
            d.timeline_path,
            vec![TimelineId(1), TimelineId(2), TimelineId(3)]
        );
        assert_eq!(h.unwrap().timeline, TimelineId(4));

        // Another branch without its history file, or nothing found: inconclusive, saying why.
        let (a, _) =
            analyze_from_files(&new, "arch", Some(TimelineId(4)), |_| Ok(None), none).unwrap();
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(
            a.explanation.contains("00000004.history"),
            "{}",
            a.explanation
        );
        let (a, _) = analyze_from_files(&new, "arch", None, |_| Ok(None), none).unwrap();
        assert!(
            a.explanation.contains("--former-timeline"),
            "{}",
            a.explanation
        );
    }
}
