//! The Patroni configuration audit of `cluster --patroni`: which settings will destroy the
//! evidence of the next lossy failover (pure: the answers in, findings out).

use crate::finding::{Finding, FindingId};

/// `maximum_lag_on_failover` above this (bytes) is "far behind" (Patroni's default is 1 MiB).
pub const MAX_SAFE_FAILOVER_LAG: u64 = 16 * 1024 * 1024;

/// What the audit reads: Patroni's dynamic configuration (`GET /config`) and the primary's
/// `archive_mode` (SQL `SHOW archive_mode`; `None` when it could not be asked).
#[derive(Clone, Debug, Default)]
pub struct AuditInput {
    /// The answer of `GET /config`.
    pub dynamic: serde_json::Value,
    /// `SHOW archive_mode` on the primary.
    pub archive_mode: Option<String>,
    /// `SHOW archive_command` on the primary.
    pub archive_command: Option<String>,
}

fn truthy(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" | "always" | "quorum" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        },
        serde_json::Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

fn bytes(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The findings for one cluster's configuration.
pub fn audit(input: &AuditInput) -> Vec<Finding> {
    let d = &input.dynamic;
    let pg = &d["postgresql"];
    let mut out = Vec::new();
    let archive_on = match (
        &input.archive_mode,
        truthy(&pg["parameters"]["archive_mode"]),
    ) {
        (Some(m), _) => {
            let m = m.to_ascii_lowercase();
            (m == "on" || m == "always")
                && input
                    .archive_command
                    .as_deref()
                    .is_none_or(|c| !c.trim().is_empty() && c.trim() != "(disabled)")
        }
        (None, Some(b)) => b,
        (None, None) => false,
    };
    if !archive_on {
        out.push(Finding::new(
            FindingId::ArchiveModeOff,
            match &input.archive_mode {
                Some(m) => format!("the primary has archive_mode = {m}{}", input.archive_command.as_deref().map(|c| format!(", archive_command = '{c}'")).unwrap_or_default()),
                None => "archive_mode is not on in Patroni's postgresql.parameters (the primary could not be asked)".into(),
            },
        ));
    }
    if truthy(&pg["use_pg_rewind"]) == Some(true) && !archive_on {
        out.push(Finding::new(
            FindingId::PatroniRewindWithoutArchive,
            "use_pg_rewind: true without WAL archiving: the next lossy failover's commits are erased from the former primary seconds later, unless rewind-guard is installed as bin_name.pg_rewind on every member (not visible through the REST API)",
        ));
    }
    if truthy(&pg["remove_data_directory_on_rewind_failure"]) == Some(true) {
        out.push(Finding::new(
            FindingId::PatroniRemovesDataOnRewindFailure,
            "postgresql.remove_data_directory_on_rewind_failure: true in Patroni's dynamic configuration",
        ));
    }
    if truthy(&pg["remove_data_directory_on_diverged_timelines"]) == Some(true) {
        out.push(Finding::new(
            FindingId::PatroniRemovesDataOnDivergedTimelines,
            "postgresql.remove_data_directory_on_diverged_timelines: true in Patroni's dynamic configuration",
        ));
    }
    let sync = truthy(&d["synchronous_mode"]).unwrap_or(false);
    let strict = truthy(&d["synchronous_mode_strict"]).unwrap_or(false);
    // Patroni's default maximum_lag_on_failover is 1 MiB.
    let lag = bytes(&d["maximum_lag_on_failover"]).unwrap_or(1024 * 1024);
    let mut why = Vec::new();
    if !sync {
        why.push("synchronous_mode is off".to_string());
    } else if !strict {
        why.push("synchronous_mode_strict is off (a forced failover may still pick an asynchronous replica)".to_string());
    }
    if lag > MAX_SAFE_FAILOVER_LAG {
        why.push(format!(
            "maximum_lag_on_failover is {}",
            crate::divergence::human_bytes(lag)
        ));
    }
    if !why.is_empty() {
        out.push(Finding::new(
            FindingId::PatroniFailoverLagAllowed,
            format!("a failover candidate may be far behind: {}", why.join("; ")),
        ));
    }
    out.into_iter()
        .map(|f| {
            let action = f.id.action();
            f.with_hint(action)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn an_unsafe_configuration_is_flagged() {
        let f = audit(&AuditInput {
            dynamic: json!({
                "maximum_lag_on_failover": 10737418240u64,
                "synchronous_mode": true,
                "postgresql": {"use_pg_rewind": true,
                    "remove_data_directory_on_rewind_failure": true,
                    "remove_data_directory_on_diverged_timelines": "on"}
            }),
            archive_mode: Some("off".into()),
            archive_command: Some("(disabled)".into()),
        });
        assert_eq!(
            ids(&f),
            [
                "archive_mode_off",
                "patroni_rewind_without_archive",
                "patroni_removes_data_on_rewind_failure",
                "patroni_removes_data_on_diverged_timelines",
                "patroni_failover_lag_allowed"
            ]
        );
        assert!(
            f[4].message.contains("synchronous_mode_strict"),
            "{}",
            f[4].message
        );
        assert!(
            f[4].message.contains("10.0 GiB") || f[4].message.contains("maximum_lag"),
            "{}",
            f[4].message
        );
        assert!(f.iter().all(|f| f.hint.is_some()));
    }

    #[test]
    fn a_safe_configuration_is_clean() {
        let f = audit(&AuditInput {
            dynamic: json!({
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": true,
                "synchronous_mode_strict": true,
                "postgresql": {"use_pg_rewind": true,
                    "remove_data_directory_on_rewind_failure": false,
                    "parameters": {"archive_mode": "on"}}
            }),
            archive_mode: Some("on".into()),
            archive_command: Some("cp %p /archive/%f".into()),
        });
        assert!(f.is_empty(), "{f:?}");
        // Without an answer from the primary, Patroni's parameters decide.
        let f = audit(&AuditInput {
            dynamic: json!({"synchronous_mode": false, "postgresql": {"use_pg_rewind": true}}),
            archive_mode: None,
            archive_command: None,
        });
        assert_eq!(
            ids(&f),
            [
                "archive_mode_off",
                "patroni_rewind_without_archive",
                "patroni_failover_lag_allowed"
            ]
        );
    }
}
