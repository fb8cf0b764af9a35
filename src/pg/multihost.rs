//! Choosing one server from a multi-host connection string, as libpq does: hosts tried in
//! order (or shuffled with `load_balance_hosts=random`) until one accepts the connection and
//! matches `target_session_attrs`.
//!
//! One difference from libpq: this tool's sessions are always read-only
//! (`default_transaction_read_only=on` in the startup packet), so `read-write` and
//! `read-only` are judged by `pg_is_in_recovery()` alone, like `primary` and `standby`.

use serde::{Deserialize, Serialize};

use super::conninfo::{ConnParams, TargetSessionAttrs};
use super::error::PgError;
use super::session::{self, Session, SessionOptions};

/// A host that was tried and not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedHost {
    /// `host:port` or the socket path.
    pub target: String,
    /// Why it was not used (connection error, or its role).
    pub why: String,
}

/// Which host of a multi-host string answered, and why that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChoice {
    /// Every host of the string, in the order given.
    pub hosts: Vec<String>,
    /// `target_session_attrs` as given (libpq's default `any`).
    pub target_session_attrs: String,
    /// Whether `load_balance_hosts=random` shuffled the order.
    pub load_balanced: bool,
    /// The host used.
    pub reached: String,
    /// Why this host: its role and the rule that picked it.
    pub reason: String,
    /// Hosts tried before it (or rejected), in the order tried.
    pub skipped: Vec<SkippedHost>,
}

/// Tries the hosts of `params` and returns the first acceptable one: the parameters pinned to
/// it, an open session to it, and the account of the choice.
pub async fn choose(
    params: &ConnParams,
    opts: &SessionOptions,
) -> Result<(ConnParams, Session, HostChoice), PgError> {
    let tsa = params.target_session_attrs();
    let n = params.hosts().len();
    let mut order: Vec<usize> = (0..n).collect();
    if params.load_balance_hosts() {
        shuffle(&mut order);
    }
    let mut skipped = Vec::new();
    // Hosts that answered but had the wrong role, for prefer-standby's second pass.
    let mut answered = Vec::new();
    let want_standby = matches!(
        tsa,
        TargetSessionAttrs::ReadOnly
            | TargetSessionAttrs::Standby
            | TargetSessionAttrs::PreferStandby
    );
    for &i in &order {
        let p = params.pinned(i);
        let target = p.target();
        let s = match session::connect_single(&p, opts).await {
            Ok(s) => s,
            Err(e) => {
                skipped.push(SkippedHost {
                    target,
                    why: e.to_string(),
                });
                continue;
            }
        };
        if tsa == TargetSessionAttrs::Any {
            let reason = if n == 1 {
                "the only host".to_string()
            } else if skipped.is_empty() {
                "the first host, which accepted the connection (target_session_attrs=any)"
                    .to_string()
            } else {
                "the first host that accepted the connection (target_session_attrs=any)".to_string()
            };
            return Ok(done(params, p, s, reason, skipped));
        }
        let in_recovery = match s.simple_value("SELECT pg_is_in_recovery()").await {
            Ok(v) => v.as_deref() == Some("t"),
            Err(e) => {
                skipped.push(SkippedHost {
                    target,
                    why: format!("cannot tell whether it is in recovery: {e}"),
                });
                s.close().await;
                continue;
            }
        };
        let role = if in_recovery {
            "a standby (in recovery)"
        } else {
            "a primary (not in recovery)"
        };
        if in_recovery == want_standby {
            let reason = format!("{role}, as target_session_attrs={tsa} asks");
            return Ok(done(params, p, s, reason, skipped));
        }
        s.close().await;
        skipped.push(SkippedHost {
            target,
            why: format!(
                "is {role}; target_session_attrs={tsa} wants {}",
                if want_standby {
                    "a standby"
                } else {
                    "a primary"
                }
            ),
        });
        answered.push(i);
    }
    if tsa == TargetSessionAttrs::PreferStandby {
        // libpq: no standby anywhere, so any server will do; try the ones that answered again.
        for &i in &answered {
            let p = params.pinned(i);
            if let Ok(s) = session::connect_single(&p, opts).await {
                let reason = "a primary: no host is a standby, so target_session_attrs=prefer-standby takes the first that answered".to_string();
                return Ok(done(params, p, s, reason, skipped));
            }
        }
    }
    let detail = skipped
        .iter()
        .map(|s| format!("{}: {}", s.target, s.why))
        .collect::<Vec<_>>()
        .join("; ");
    Err(PgError::connect(
        &params.target(),
        format!("no host is suitable (target_session_attrs={tsa}): {detail}"),
    ))
}

fn done(
    params: &ConnParams,
    pinned: ConnParams,
    s: Session,
    reason: String,
    skipped: Vec<SkippedHost>,
) -> (ConnParams, Session, HostChoice) {
    let choice = HostChoice {
        hosts: params.hosts().iter().map(|h| h.target()).collect(),
        target_session_attrs: params.target_session_attrs().to_string(),
        load_balanced: params.load_balance_hosts(),
        reached: pinned.target(),
        reason,
        skipped,
    };
    (pinned, s, choice)
}

/// Fisher-Yates with the standard library's per-process random hash keys.
fn shuffle(v: &mut [usize]) {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    for i in (1..v.len()).rev() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        let j = (h.finish() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..10).collect();
        shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
}
