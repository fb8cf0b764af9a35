//! The cluster flags as a plan (no I/O), and as a run's input once the HA manager answered.

use crate::cli::ClusterArgs;
use crate::commands::discover::DiscoveryPlan;
use crate::commands::CommandError;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::SessionOptions;

/// The parsed inputs of `cluster`.
#[derive(Debug, Clone)]
pub struct ClusterInput {
    /// The primary; `None` with `--node` alone: the writable node on the newest timeline.
    pub primary: Option<ConnParams>,
    /// Other nodes to inspect directly.
    pub nodes: Vec<ConnParams>,
    /// Timeouts for every session.
    pub session: SessionOptions,
    /// With --patroni: Patroni's dynamic configuration (`GET /config`) for the audit, or why
    /// it could not be read.
    pub patroni_config: Option<Result<serde_json::Value, String>>,
}

impl ClusterInput {
    /// One-line notices about the connection strings, for the command layer to print.
    pub fn notices(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .primary
            .iter()
            .flat_map(|p| p.warnings().iter())
            .map(|w| format!("--primary: {w}"))
            .collect();
        for n in &self.nodes {
            out.extend(n.warnings().iter().map(|w| format!("--node: {w}")));
        }
        out.dedup();
        out
    }
}

/// What the cluster flags say, before any server or HA manager is asked.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// `--primary`, when given.
    pub primary: Option<ConnParams>,
    /// `--node`s.
    pub nodes: Vec<ConnParams>,
    /// Timeouts for every session.
    pub session: SessionOptions,
    /// The HA manager to ask (`--patroni`, `--repmgr`, ...): it names the primary (unless
    /// `--primary`) and every other member with data is a node.
    pub manager: Option<DiscoveryPlan>,
}

impl ClusterPlan {
    /// Parses the flags (conninfo strings with the process environment, timeouts). No server
    /// and no HA manager is asked; only local files are read (a service or password file).
    pub fn from_args(args: &ClusterArgs) -> Result<Self, CommandError> {
        let parse = |flag: &'static str, s: &str| {
            ConnParams::parse_with_process_env(s).map_err(|e| CommandError::Usage {
                flag,
                message: e.to_string(),
            })
        };
        let manager = DiscoveryPlan::from_args(&args.patroni, &args.discovery, &args.timeouts);
        let primary = match &args.primary {
            Some(s) => Some(parse("--primary", s)?),
            None if manager.is_some() || !args.nodes.is_empty() => None,
            None => {
                return Err(CommandError::Usage {
                    flag: "--primary",
                    message: "name the primary (a conninfo), or pass --patroni, --repmgr, --pg-auto-failover, --cnpg-status or --node".into(),
                })
            }
        };
        let nodes = args
            .nodes
            .iter()
            .map(|s| parse("--node", s))
            .collect::<Result<_, _>>()?;
        Ok(ClusterPlan {
            primary,
            nodes,
            session: args.timeouts.session_options(),
            manager,
        })
    }

    /// The gather step's first part: asks the HA manager the plan names (if any), within the
    /// run's timeouts, for the primary, the other members, and Patroni's configuration.
    pub async fn resolve(self) -> Result<ClusterInput, CommandError> {
        let ClusterPlan {
            mut primary,
            mut nodes,
            session,
            manager,
        } = self;
        let Some(manager) = manager else {
            return Ok(ClusterInput {
                primary,
                nodes: dedup_by_target(nodes),
                session,
                patroni_config: None,
            });
        };
        let d = manager.discover().await?;
        if primary.is_none() {
            primary = Some(d.conninfo(d.new_primary()?)?);
        }
        use crate::discovery::Role;
        for m in d
            .section
            .members
            .iter()
            .filter(|m| !matches!(m.role, Role::Primary | Role::Witness))
        {
            match d.conninfo(m) {
                Ok(p) if primary.as_ref().is_none_or(|x| p.target() != x.target()) => nodes.push(p),
                Ok(_) => {}
                // A member the manager gives no address for is left out, as Patroni's are.
                Err(_) if m.address().is_none() && m.conninfo.is_none() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let patroni_config = match d.patroni {
            Some(_) => manager.patroni_config().await,
            None => None,
        };
        Ok(ClusterInput {
            primary,
            nodes: dedup_by_target(nodes),
            session,
            patroni_config,
        })
    }
}

/// The nodes with one entry per `host:port` (the first wins): one server, one check.
pub(super) fn dedup_by_target(nodes: Vec<ConnParams>) -> Vec<ConnParams> {
    let mut seen = std::collections::HashSet::new();
    nodes
        .into_iter()
        .filter(|p| seen.insert(p.target()))
        .collect()
}
