//! Every libpq connection keyword: its environment variable and what this tool does with it.
//!
//! libpq (up to PostgreSQL 18) knows about fifty keywords. The ones this tool uses are parsed in
//! `conninfo.rs`; the others are accepted with a one-line notice, unless honouring them is a
//! security promise this tool cannot keep (then the connection string is refused, saying why).

/// What the tool does with a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Parsed and honoured by `conninfo.rs`.
    Used,
    /// Accepted and ignored; the text says why (shown as a notice).
    Ignored(&'static str),
    /// Depends on the value: see [`check_value`].
    ByValue,
}

/// One libpq keyword: its name, the `PG*` variable that supplies it, and its use here.
#[derive(Debug, Clone, Copy)]
pub struct Keyword {
    /// libpq's spelling.
    pub name: &'static str,
    /// The environment variable libpq reads when the keyword is absent.
    pub env: Option<&'static str>,
    /// What the tool does with it.
    pub use_: Use,
}

const fn kw(name: &'static str, env: Option<&'static str>, use_: Use) -> Keyword {
    Keyword { name, env, use_ }
}

const GSS: &str = "GSSAPI/Kerberos authentication is not supported by this tool";
const KEEPALIVE: &str = "TCP keepalives are always on, with the system's timings";
const OAUTH: &str = "OAuth authentication is not supported by this tool";

/// libpq's `PQconninfoOptions` (PostgreSQL 18), in its order.
pub const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE"), Use::Used),
    kw("user", Some("PGUSER"), Use::Used),
    kw("password", Some("PGPASSWORD"), Use::Used),
    kw("passfile", Some("PGPASSFILE"), Use::Used),
    kw("channel_binding", Some("PGCHANNELBINDING"), Use::Used),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT"), Use::Used),
    kw("dbname", Some("PGDATABASE"), Use::Used),
    kw("host", Some("PGHOST"), Use::Used),
    kw("hostaddr", Some("PGHOSTADDR"), Use::Used),
    kw("port", Some("PGPORT"), Use::Used),
    kw(
        "client_encoding",
        Some("PGCLIENTENCODING"),
        Use::Ignored("sessions always use UTF8"),
    ),
    kw("options", Some("PGOPTIONS"), Use::Used),
    kw(
        "application_name",
        Some("PGAPPNAME"),
        Use::Ignored("sessions always identify as failover-verify"),
    ),
    kw(
        "fallback_application_name",
        None,
        Use::Ignored("sessions always identify as failover-verify"),
    ),
    kw("keepalives", None, Use::Ignored(KEEPALIVE)),
    kw("keepalives_idle", None, Use::Ignored(KEEPALIVE)),
    kw("keepalives_interval", None, Use::Ignored(KEEPALIVE)),
    kw("keepalives_count", None, Use::Ignored(KEEPALIVE)),
    kw(
        "tcp_user_timeout",
        None,
        Use::Ignored("every wait is bounded by the tool's own timeouts"),
    ),
    kw(
        "replication",
        None,
        Use::Ignored("SQL sessions are plain; the tool opens its own replication connections"),
    ),
    kw("sslmode", Some("PGSSLMODE"), Use::Used),
    kw("sslnegotiation", Some("PGSSLNEGOTIATION"), Use::ByValue),
    kw(
        "sslcompression",
        Some("PGSSLCOMPRESSION"),
        Use::Ignored("TLS compression is never used"),
    ),
    kw("sslcert", Some("PGSSLCERT"), Use::Used),
    kw("sslkey", Some("PGSSLKEY"), Use::Used),
    kw("sslcertmode", Some("PGSSLCERTMODE"), Use::Used),
    kw("sslpassword", None, Use::Used),
    kw("sslrootcert", Some("PGSSLROOTCERT"), Use::Used),
    kw("sslcrl", Some("PGSSLCRL"), Use::Used),
    kw("sslcrldir", Some("PGSSLCRLDIR"), Use::Used),
    kw("sslsni", Some("PGSSLSNI"), Use::ByValue),
    kw("requirepeer", Some("PGREQUIREPEER"), Use::ByValue),
    kw("require_auth", Some("PGREQUIREAUTH"), Use::ByValue),
    kw(
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        Use::Used,
    ),
    kw(
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        Use::Used,
    ),
    kw("gssencmode", Some("PGGSSENCMODE"), Use::ByValue),
    kw("krbsrvname", Some("PGKRBSRVNAME"), Use::Ignored(GSS)),
    kw("gsslib", Some("PGGSSLIB"), Use::Ignored(GSS)),
    kw("gssdelegation", Some("PGGSSDELEGATION"), Use::Ignored(GSS)),
    kw(
        "target_session_attrs",
        Some("PGTARGETSESSIONATTRS"),
        Use::Used,
    ),
    kw("load_balance_hosts", Some("PGLOADBALANCEHOSTS"), Use::Used),
    kw(
        "min_protocol_version",
        Some("PGMINPROTOCOLVERSION"),
        Use::ByValue,
    ),
    kw(
        "max_protocol_version",
        Some("PGMAXPROTOCOLVERSION"),
        Use::Ignored("the tool speaks protocol 3.0"),
    ),
    kw("scram_client_key", None, Use::ByValue),
    kw("scram_server_key", None, Use::ByValue),
    kw("oauth_issuer", None, Use::Ignored(OAUTH)),
    kw("oauth_client_id", None, Use::Ignored(OAUTH)),
    kw("oauth_client_secret", None, Use::Ignored(OAUTH)),
    kw("oauth_scope", None, Use::Ignored(OAUTH)),
    kw(
        "sslkeylogfile",
        Some("PGSSLKEYLOGFILE"),
        Use::Ignored("TLS session keys are never written out"),
    ),
];

/// The keyword named `name`, if libpq knows it.
pub fn find(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == name)
}

/// The verdict on a value of a [`Use::ByValue`] keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to say (the value asks for nothing the tool does not do).
    Fine,
    /// Accepted with this notice.
    Notice(String),
    /// Refused: honouring it is a security promise the tool cannot keep; the text says why.
    Refuse(String),
}

/// Judges the value of a keyword whose acceptability depends on it.
pub fn check_value(name: &str, value: &str) -> Verdict {
    match (name, value) {
        ("gssencmode", "disable") => Verdict::Fine,
        ("gssencmode", "prefer") => Verdict::Notice(
            "GSSAPI encryption is not supported; TLS follows sslmode instead".into(),
        ),
        ("gssencmode", "require") => Verdict::Refuse(
            "GSSAPI encryption is not supported by this tool, and require forbids falling back to TLS or plain text; use sslmode=verify-full for an encrypted, verified connection".into(),
        ),
        ("sslnegotiation", "postgres") => Verdict::Fine,
        ("sslnegotiation", "direct") => Verdict::Notice(
            "direct TLS negotiation is not supported; TLS is negotiated with an SSLRequest as before PostgreSQL 17 (sslmode still applies)".into(),
        ),
        ("sslsni", "1") => Verdict::Fine,
        ("sslsni", "0") => Verdict::Notice(
            "the server name is always sent (SNI) when the host is a name".into(),
        ),
        ("requirepeer", _) => Verdict::Refuse(
            "the tool cannot check which OS user runs the server on a Unix socket; remove requirepeer or use TLS with sslmode=verify-full".into(),
        ),
        ("require_auth", _) => Verdict::Refuse(
            "the tool cannot restrict which authentication methods the server may ask for; remove require_auth (a password is only ever sent through SCRAM or md5/password as the server asks)".into(),
        ),
        ("min_protocol_version", "3.0") => Verdict::Fine,
        ("min_protocol_version", _) => Verdict::Refuse(
            "the tool speaks protocol 3.0 only, so it cannot meet a higher minimum".into(),
        ),
        ("scram_client_key" | "scram_server_key", _) => Verdict::Refuse(
            "SCRAM pass-through keys are not supported; give a password (password=, PGPASSWORD or the password file)".into(),
        ),
        (_, v) => Verdict::Refuse(format!("unexpected value {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicates_and_covers_the_used_keys() {
        let mut names: Vec<_> = KEYWORDS.iter().map(|k| k.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
        for k in ["host", "sslcert", "service", "target_session_attrs"] {
            assert_eq!(find(k).unwrap().use_, Use::Used, "{k}");
        }
        assert!(find("frob").is_none());
    }

    #[test]
    fn security_values_are_refused() {
        assert!(matches!(
            check_value("gssencmode", "require"),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            check_value("gssencmode", "prefer"),
            Verdict::Notice(_)
        ));
        assert_eq!(check_value("gssencmode", "disable"), Verdict::Fine);
        assert!(matches!(
            check_value("requirepeer", "postgres"),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            check_value("require_auth", "scram-sha-256"),
            Verdict::Refuse(_)
        ));
        assert!(matches!(check_value("sslsni", "x"), Verdict::Refuse(_)));
    }
}
