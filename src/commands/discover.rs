//! HA-manager discovery for a command's gather step: planned from the flags, asked async.
//!
//! The plan ([`DiscoveryPlan`]) is built without I/O; [`DiscoveryPlan::discover`] then asks
//! Patroni's REST API (on the blocking pool), repmgr or pg_auto_failover (async sessions) or
//! reads CloudNativePG's status, each within the run's timeouts.

use std::time::Duration;

use crate::cli::{DiscoveryArgs, PatroniArgs, TimeoutArgs};
use crate::discovery::{Discovery, Source};
use crate::patroni::HttpOptions;
use crate::pg::session::SessionOptions;

use super::CommandError;

/// Which HA manager to ask and how, as the flags say; nothing has been asked yet.
#[derive(Debug, Clone)]
pub enum DiscoveryPlan {
    /// `--patroni URL...`: the members' REST API.
    Patroni {
        /// The REST API URLs (`--patroni`).
        urls: Vec<String>,
        /// The conninfo keywords every member is reached with (`--patroni-conninfo`).
        conninfo: String,
        /// The HTTP timeouts (`--patroni-timeout`, `--connect-timeout`).
        http: HttpOptions,
    },
    /// `--repmgr`, `--pg-auto-failover` or `--cnpg-status`.
    Manager {
        /// Which manager, and where its records are.
        source: Source,
        /// The conninfo template of every member (`--member-conninfo`).
        member_conninfo: String,
        /// The timeouts of the sessions to the manager's database.
        session: SessionOptions,
    },
}

impl DiscoveryPlan {
    /// The discovery the flags name, if any (Patroni first, as the flags exclude the rest).
    pub fn from_args(
        patroni: &PatroniArgs,
        other: &DiscoveryArgs,
        timeouts: &TimeoutArgs,
    ) -> Option<Self> {
        if !patroni.urls.is_empty() {
            let timeout = Duration::try_from_secs_f64(patroni.timeout.max(0.1))
                .unwrap_or(Duration::from_secs(10));
            let (connect_timeout, _, _) = timeouts.durations();
            return Some(DiscoveryPlan::Patroni {
                urls: patroni.urls.clone(),
                conninfo: patroni.conninfo.clone(),
                http: HttpOptions {
                    connect_timeout: connect_timeout.min(timeout),
                    timeout,
                },
            });
        }
        other.source().map(|source| DiscoveryPlan::Manager {
            source,
            member_conninfo: other.member_conninfo.clone(),
            session: timeouts.session_options(),
        })
    }

    /// The flag that names the manager, for messages.
    pub fn flag(&self) -> &'static str {
        match self {
            DiscoveryPlan::Patroni { .. } => "--patroni",
            DiscoveryPlan::Manager { source, .. } => match source {
                Source::Repmgr(_) => "--repmgr",
                Source::PgAutoFailover(_) => "--pg-auto-failover",
                Source::Cnpg(_) => "--cnpg-status",
            },
        }
    }

    /// Asks the manager for the members and the promotions, in the manager-neutral form.
    /// Every request is bounded by the plan's timeouts.
    pub async fn discover(&self) -> Result<Discovery, CommandError> {
        match self {
            DiscoveryPlan::Patroni {
                urls,
                conninfo,
                http,
            } => {
                let (urls, http) = (urls.clone(), *http);
                let p = blocking(move || crate::patroni::discover(&urls, http)).await?;
                Ok(crate::discovery::patroni::from_patroni(&p, conninfo))
            }
            DiscoveryPlan::Manager {
                source,
                member_conninfo,
                session,
            } => Ok(crate::discovery::discover(source, member_conninfo, session).await?),
        }
    }

    /// With Patroni: its dynamic configuration (`GET /config` from the first URL that
    /// answers), or why it could not be read; `None` for the other managers.
    pub async fn patroni_config(&self) -> Option<Result<serde_json::Value, String>> {
        let DiscoveryPlan::Patroni { urls, http, .. } = self else {
            return None;
        };
        let (urls, http) = (urls.clone(), *http);
        Some(blocking(move || patroni_config(&urls, http)).await)
    }
}

/// `GET /config` (Patroni's dynamic configuration) from the first of `urls` that answers.
fn patroni_config(urls: &[String], http: HttpOptions) -> Result<serde_json::Value, String> {
    let client = crate::patroni::Client::new(http);
    let mut errors = Vec::new();
    for url in urls {
        let base = crate::patroni::base_url(url).map_err(|e| e.to_string())?;
        match client.get_json(&format!("{base}/config"), "Patroni's dynamic configuration") {
            Ok(v) => return Ok(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(errors.join("; "))
}

/// Runs the blocking HTTP client off the async workers (a panic in it stays a panic).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use clap::Parser;

    use super::DiscoveryPlan;
    use crate::cli::{Cli, Command};
    use crate::commands::cluster::ClusterPlan;
    use crate::commands::compare::{CompareInput, ComparePlan};
    use crate::commands::CommandError;

    /// Nothing listens on port 1: asking would fail (refused), so success proves no request.
    const URL: &str = "http://127.0.0.1:1";

    fn command(name: &str) -> Command {
        Cli::try_parse_from(["failover-verify", name, "--patroni", URL])
            .expect("flags")
            .command
    }

    fn names_the_url(plan: Option<&DiscoveryPlan>) {
        match plan {
            Some(DiscoveryPlan::Patroni { urls, .. }) => assert_eq!(urls, &[URL]),
            other => panic!("no Patroni plan: {other:?}"),
        }
    }

    #[test]
    fn parsing_compare_flags_names_the_patroni_url_without_asking_it() {
        let Command::Compare(args) = command("compare") else {
            panic!("not a compare");
        };
        let started = Instant::now();
        let plan = ComparePlan::from_args(&args).expect("parsing asks no one");
        let took = started.elapsed();
        assert!(took < Duration::from_millis(500), "{took:?}");
        names_the_url(plan.manager.as_ref());
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

    #[test]
    fn parsing_cluster_flags_names_the_patroni_url_without_asking_it() {
        let Command::Cluster(args) = command("cluster") else {
            panic!("not a cluster");
        };
        let plan = ClusterPlan::from_args(&args).expect("parsing asks no one");
        names_the_url(plan.manager.as_ref());
        assert!(plan.primary.is_none() && plan.nodes.is_empty());
    }
}
