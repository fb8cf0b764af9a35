//! `PgError`: one small error type for everything that talks to PostgreSQL.
//!
//! Like the csv crate, the error is a pointer to a boxed, `#[non_exhaustive]` kind, so it is
//! cheap to pass around and rich to read. Every kind that involves a server names it
//! (`host:port` or the socket path) and messages are one line that say what to do.
//! No kind ever holds a password.

use std::fmt;
use std::time::Duration;

/// An error from connecting to, authenticating with, or querying a PostgreSQL server.
pub struct PgError(Box<ErrorKind>);

/// What went wrong; match on it to react to specific failures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection string or environment is invalid; nothing was sent to a server.
    Config {
        /// What is wrong with the input.
        message: String,
    },
    /// The server could not be reached (refused, unreachable, DNS failure, reset).
    Connect {
        /// `host:port` or socket path.
        target: String,
        /// The operating system's reason.
        message: String,
    },
    /// A network wait did not finish in time.
    Timeout {
        /// `host:port` or socket path.
        target: String,
        /// What was being waited for, e.g. "connecting" or "query".
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// The server rejected our credentials, or it asked for a password we do not have.
    Auth {
        /// `host:port` or socket path.
        target: String,
        /// The role we tried to log in as.
        user: String,
        /// The server's (or our) explanation.
        message: String,
        /// SQLSTATE when the server sent one (28P01, 28000).
        sqlstate: Option<String>,
        /// What to do about it.
        hint: String,
    },
    /// TLS could not be set up: missing root certificate, handshake or certificate failure.
    Tls {
        /// `host:port` or socket path (empty when the failure is local, e.g. a missing file).
        target: String,
        /// What failed.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The role lacks a privilege (SQLSTATE 42501) or the REPLICATION attribute / pg_hba line.
    InsufficientPrivilege {
        /// `host:port` or socket path.
        target: String,
        /// SQLSTATE when the server sent one.
        sqlstate: Option<String>,
        /// The server's message.
        message: String,
        /// The grant or configuration that is needed.
        hint: String,
    },
    /// The server has no history file for the requested timeline (timeline 1 never has one).
    NoTimelineHistory {
        /// `host:port` or socket path.
        target: String,
        /// The timeline that was asked for.
        timeline: u32,
        /// The server's message.
        message: String,
    },
    /// The server answered a query with an error.
    Query {
        /// `host:port` or socket path.
        target: String,
        /// The five-character SQLSTATE.
        sqlstate: String,
        /// The primary message.
        message: String,
        /// The DETAIL field, if any.
        detail: Option<String>,
        /// The HINT field, if any.
        hint: Option<String>,
    },
    /// The server sent something we did not expect, or the connection broke mid-conversation.
    Protocol {
        /// `host:port` or socket path.
        target: String,
        /// What was unexpected.
        message: String,
    },
}

impl PgError {
    /// Wraps a kind into an error.
    pub fn new(kind: ErrorKind) -> PgError {
        PgError(Box::new(kind))
    }

    /// The kind of error, for matching.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Consumes the error and returns its kind.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// The SQLSTATE the server sent, when there was one.
    pub fn sqlstate(&self) -> Option<&str> {
        match &*self.0 {
            ErrorKind::Auth { sqlstate, .. }
            | ErrorKind::InsufficientPrivilege { sqlstate, .. } => sqlstate.as_deref(),
            ErrorKind::Query { sqlstate, .. } => Some(sqlstate),
            ErrorKind::NoTimelineHistory { .. } => Some("58P01"),
            _ => None,
        }
    }

    /// The server this error is about (`host:port` or socket path), when there is one.
    pub fn target(&self) -> Option<&str> {
        let t = match &*self.0 {
            ErrorKind::Config { .. } => return None,
            ErrorKind::Connect { target, .. }
            | ErrorKind::Timeout { target, .. }
            | ErrorKind::Auth { target, .. }
            | ErrorKind::Tls { target, .. }
            | ErrorKind::InsufficientPrivilege { target, .. }
            | ErrorKind::NoTimelineHistory { target, .. }
            | ErrorKind::Query { target, .. }
            | ErrorKind::Protocol { target, .. } => target,
        };
        (!t.is_empty()).then_some(t.as_str())
    }

    /// What the user can do about this error, when we know.
    pub fn hint(&self) -> Option<&str> {
        match &*self.0 {
            ErrorKind::Auth { hint, .. } | ErrorKind::InsufficientPrivilege { hint, .. } => {
                Some(hint)
            }
            ErrorKind::Tls { hint, .. } | ErrorKind::Query { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(&*self.0, ErrorKind::Timeout { .. })
    }

    pub(crate) fn config(message: impl Into<String>) -> PgError {
        PgError::new(ErrorKind::Config {
            message: message.into(),
        })
    }

    pub(crate) fn connect(target: &str, message: impl Into<String>) -> PgError {
        PgError::new(ErrorKind::Connect {
            target: target.to_string(),
            message: message.into(),
        })
    }

    pub(crate) fn timeout(target: &str, what: impl Into<String>, after: Duration) -> PgError {
        PgError::new(ErrorKind::Timeout {
            target: target.to_string(),
            what: what.into(),
            after,
        })
    }

    pub(crate) fn protocol(target: &str, message: impl Into<String>) -> PgError {
        PgError::new(ErrorKind::Protocol {
            target: target.to_string(),
            message: message.into(),
        })
    }

    pub(crate) fn tls(target: &str, message: impl Into<String>, hint: Option<String>) -> PgError {
        PgError::new(ErrorKind::Tls {
            target: target.to_string(),
            message: message.into(),
            hint,
        })
    }

    /// Builds an Auth error for a missing password, with the standard hint.
    pub(crate) fn no_password(target: &str, user: &str) -> PgError {
        PgError::new(ErrorKind::Auth {
            target: target.to_string(),
            user: user.to_string(),
            message: "the server asked for a password but none was supplied".to_string(),
            sqlstate: None,
            hint: PASSWORD_HINT.to_string(),
        })
    }

    /// Maps a server ErrorResponse into the most specific kind.
    ///
    /// `replication` says whether this came from a walsender connection, where 42501 and
    /// 28000 mean the role lacks REPLICATION or pg_hba.conf lacks a `replication` line.
    pub(crate) fn from_server(
        target: &str,
        user: &str,
        replication: bool,
        fields: ServerError,
    ) -> PgError {
        let ServerError {
            sqlstate,
            message,
            detail,
            hint,
        } = fields;
        let kind = match sqlstate.as_str() {
            "28P01" => ErrorKind::Auth {
                target: target.to_string(),
                user: user.to_string(),
                message,
                sqlstate: Some(sqlstate),
                hint: PASSWORD_HINT.to_string(),
            },
            "42501" | "28000" if replication => ErrorKind::InsufficientPrivilege {
                target: target.to_string(),
                sqlstate: Some(sqlstate),
                message,
                hint: replication_hint(user),
            },
            "28000" => ErrorKind::Auth {
                target: target.to_string(),
                user: user.to_string(),
                message,
                sqlstate: Some(sqlstate),
                hint: format!(
                    "add a pg_hba.conf line that lets role \"{user}\" connect from this host, then reload the server"
                ),
            },
            "42501" => ErrorKind::InsufficientPrivilege {
                target: target.to_string(),
                sqlstate: Some(sqlstate),
                hint: hint.unwrap_or_else(|| privilege_hint(user, &message)),
                message,
            },
            _ => ErrorKind::Query {
                target: target.to_string(),
                sqlstate,
                message,
                detail,
                hint,
            },
        };
        PgError::new(kind)
    }
}

/// The fields of a server ErrorResponse that we keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServerError {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

const PASSWORD_HINT: &str = "check the user name and password; supply the password with password= in the connection string, PGPASSWORD, or a ~/.pgpass (PGPASSFILE) entry with 0600 permissions";

/// The hint for a walsender refusal.
pub(crate) fn replication_hint(user: &str) -> String {
    format!(
        "run ALTER ROLE \"{user}\" REPLICATION (as a superuser) and add a pg_hba.conf line like \"host replication {user} <client-address>/32 scram-sha-256\", then reload the server"
    )
}

fn privilege_hint(user: &str, message: &str) -> String {
    if message.contains("function") {
        format!(
            "grant the needed role or function to \"{user}\", e.g. GRANT pg_monitor TO \"{user}\" or GRANT EXECUTE ON FUNCTION <name> TO \"{user}\""
        )
    } else {
        format!(
            "grant \"{user}\" the privilege named in the message, e.g. GRANT SELECT ON <table> TO \"{user}\" or GRANT pg_read_all_data TO \"{user}\""
        )
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::Config { message } => write!(f, "invalid connection settings: {message}"),
            ErrorKind::Connect { target, message } => write!(
                f,
                "cannot connect to {target}: {message}; check that the server is running and accepts connections there"
            ),
            ErrorKind::Timeout {
                target,
                what,
                after,
            } => write!(
                f,
                "{target}: timed out after {:.1}s while {what}",
                after.as_secs_f64()
            ),
            ErrorKind::Auth {
                target,
                user,
                message,
                hint,
                ..
            } => write!(
                f,
                "authentication as \"{user}\" to {target} failed: {message}; hint: {hint}"
            ),
            ErrorKind::Tls {
                target,
                message,
                hint,
            } => {
                if target.is_empty() {
                    write!(f, "TLS setup failed: {message}")?;
                } else {
                    write!(f, "TLS with {target} failed: {message}")?;
                }
                if let Some(h) = hint {
                    write!(f, "; hint: {h}")?;
                }
                Ok(())
            }
            ErrorKind::InsufficientPrivilege {
                target,
                sqlstate,
                message,
                hint,
            } => {
                write!(f, "{target}: insufficient privilege: {message}")?;
                if let Some(s) = sqlstate {
                    write!(f, " (SQLSTATE {s})")?;
                }
                write!(f, "; hint: {hint}")
            }
            ErrorKind::NoTimelineHistory {
                target,
                timeline,
                message,
            } => write!(
                f,
                "{target}: no history file for timeline {timeline} ({message}); timeline 1 never has one"
            ),
            ErrorKind::Query {
                target,
                sqlstate,
                message,
                detail,
                hint,
            } => {
                write!(f, "{target}: {message} (SQLSTATE {sqlstate})")?;
                if let Some(d) = detail {
                    write!(f, "; detail: {}", one_line(d))?;
                }
                if let Some(h) = hint {
                    write!(f, "; hint: {}", one_line(h))?;
                }
                Ok(())
            }
            ErrorKind::Protocol { target, message } => {
                write!(f, "{target}: protocol error: {message}")
            }
        }
    }
}

impl fmt::Debug for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::error::Error for PgError {}

impl From<super::conninfo::ConnInfoError> for PgError {
    fn from(e: super::conninfo::ConnInfoError) -> PgError {
        PgError::config(e.to_string())
    }
}

impl From<ErrorKind> for PgError {
    fn from(kind: ErrorKind) -> PgError {
        PgError::new(kind)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Removes every occurrence of `secret` from `text` (defence in depth for server messages).
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if s.len() >= 3 => text.replace(s, "********"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert_eq!(std::mem::size_of::<PgError>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn replication_refusal_maps_to_privilege_with_hint() {
        let e = PgError::from_server(
            "127.0.0.1:5432",
            "alice",
            true,
            ServerError {
                sqlstate: "42501".into(),
                message: "must be superuser or replication role to start walsender".into(),
                ..Default::default()
            },
        );
        assert!(matches!(e.kind(), ErrorKind::InsufficientPrivilege { .. }));
        assert_eq!(e.sqlstate(), Some("42501"));
        assert_eq!(e.target(), Some("127.0.0.1:5432"));
        let msg = e.to_string();
        assert!(msg.contains("ALTER ROLE \"alice\" REPLICATION"), "{msg}");
        assert!(msg.contains("pg_hba.conf"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn query_error_is_one_line() {
        let e = PgError::from_server(
            "h:1",
            "u",
            false,
            ServerError {
                sqlstate: "25006".into(),
                message: "cannot execute CREATE TABLE in a read-only transaction".into(),
                detail: Some("line one\nline two".into()),
                hint: None,
            },
        );
        assert_eq!(e.sqlstate(), Some("25006"));
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn scrub_removes_secret() {
        assert_eq!(scrub("pw is hunter2!", Some("hunter2")), "pw is ********!");
        assert_eq!(scrub("abc", None), "abc");
    }
}
