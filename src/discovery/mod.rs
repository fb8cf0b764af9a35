//! Manager-neutral discovery: what an HA manager (Patroni, repmgr, pg_auto_failover,
//! CloudNativePG) says about a cluster, as members with roles and addresses, promotion events
//! with times, and the new and former primary chosen from them, so that `compare` and
//! `cluster` do not need to know which manager it came from.
//!
//! Each adapter ([`repmgr`], [`pg_auto_failover`], [`cnpg`], and [`crate::patroni`] through
//! [`patroni::from_patroni`]) reads its manager's own records and fills a
//! [`Discovery`]. The SQL adapters open read-only sessions ([`crate::pg::session`]) bounded by
//! the run's timeouts; nothing here prints or writes to a server.

pub mod cnpg;
mod model;
pub mod patroni;
pub mod pg_auto_failover;
pub mod repmgr;

use crate::pg::session::SessionOptions;

pub(crate) use model::connect;
pub use model::{
    member_conninfo, Discovery, DiscoveryError, DiscoverySection, Event, EventKind, FormerChoice,
    Manager, Member, Role,
};

/// Which discovery the flags asked for.
#[derive(Clone, Debug)]
pub enum Source {
    /// `--repmgr CONNINFO` (any node of the cluster).
    Repmgr(String),
    /// `--pg-auto-failover MONITOR_CONNINFO`.
    PgAutoFailover(String),
    /// `--cnpg-status FILE` (`-` for stdin).
    Cnpg(String),
}

/// Runs the discovery `source` asks for, with `template` for every member's conninfo.
pub async fn discover(
    source: &Source,
    template: &str,
    session: &SessionOptions,
) -> Result<Discovery, DiscoveryError> {
    match source {
        Source::Repmgr(c) => repmgr::discover(c, template, session).await,
        Source::PgAutoFailover(c) => pg_auto_failover::discover(c, template, session).await,
        Source::Cnpg(path) => cnpg::discover_file(path, template),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(host: Option<&str>, port: Option<u16>, conninfo: Option<&str>) -> Member {
        Member {
            name: "pod-1".into(),
            role: Role::Standby,
            manager_role: "standby".into(),
            state: None,
            host: host.map(str::to_string),
            port,
            timeline: None,
            lsn: None,
            upstream: None,
            conninfo: conninfo.map(str::to_string),
        }
    }

    fn env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_members_address_wins_over_the_template() {
        let m = member(Some("10.0.0.5"), Some(5433), None);
        let p = member_conninfo(&m, "host=wrong port=1 user=fv dbname=app", &env).unwrap();
        assert_eq!(p.target(), "10.0.0.5:5433");
        assert_eq!(p.user(), "fv");
        assert_eq!(p.dbname(), "app");
    }

    #[test]
    fn the_template_overrides_the_managers_conninfo_but_not_its_address() {
        let m = member(
            Some("127.0.0.1"),
            Some(5433),
            Some("host=127.0.0.1 port=5433 user=repmgr dbname=repmgr connect_timeout=2"),
        );
        let p = member_conninfo(&m, "user=fv dbname=postgres", &env).unwrap();
        assert_eq!(p.target(), "127.0.0.1:5433");
        assert_eq!(p.user(), "fv");
        assert_eq!(p.dbname(), "postgres");
    }

    #[test]
    fn a_pod_template_names_the_host() {
        let m = member(Some("10.1.2.3"), None, None);
        let p = member_conninfo(&m, "host={pod}.db.svc port=5432 user=fv", &env).unwrap();
        assert_eq!(p.target(), "pod-1.db.svc:5432");
    }

    #[test]
    fn no_address_and_no_host_in_the_template_is_an_error_naming_the_member() {
        let m = member(None, None, None);
        let e = member_conninfo(&m, "user=fv", &env)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("member pod-1: "), "{e}");
        assert!(e.contains("{name}"), "{e}");
        let e = member_conninfo(&m, "postgres://x/y", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a URL"), "{e}");
    }
}
