//! Connection parameters parsed the way libpq parses them.
//!
//! Accepts `key=value` conninfo strings and `postgres://` / `postgresql://` URLs, fills
//! absent keys from the `PG*` environment, applies libpq's defaults and looks the password
//! up in `PGPASSWORD` or the password file. The environment is injected so that tests are
//! deterministic. The password never appears in `Debug`, `Display` or error messages.

use crate::quote::conninfo_value;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// libpq's compiled-in socket directory on Debian; also the default host when it exists.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;

/// Why a connection string (or a `PG*` variable) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInfoError {
    /// A `key=value` string is malformed (missing `=`, unterminated quote).
    #[error("invalid connection string: {0}")]
    Syntax(String),
    /// A `postgres://` URL is malformed.
    #[error("invalid connection URL: {0}")]
    Url(String),
    /// A key that libpq (or this tool) does not know.
    #[error("invalid connection option \"{0}\"; supported: host, hostaddr, port, user, password, dbname, sslmode, sslrootcert, connect_timeout, application_name, options, target_session_attrs, passfile")]
    UnknownKey(String),
    /// A known key with a value that does not parse.
    #[error("invalid value {value:?} for {key}{from}: {why}")]
    BadValue {
        /// The key (or environment variable).
        key: String,
        /// The offending value (never a password).
        value: String,
        /// " (from PGPORT)" when it came from the environment, else empty.
        from: String,
        /// What a valid value looks like.
        why: String,
    },
    /// Several comma-separated hosts: libpq's multi-host failover is out of scope here.
    #[error("multiple hosts {0:?} are not supported; give the one server to inspect")]
    MultipleHosts(String),
    /// No user name given and the OS user could not be determined.
    #[error("could not determine the user name; set user= or PGUSER")]
    NoUser,
}

/// libpq's `sslmode`: whether to use TLS and how much to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS only if the server insists (approximated as `prefer`, see `tls.rs`).
    Allow,
    /// Try TLS, fall back to plain text if the server does not support it (libpq's default).
    #[default]
    Prefer,
    /// Require TLS; verify the chain only if a root certificate file exists.
    Require,
    /// Require TLS and a certificate chain that leads to `sslrootcert`.
    VerifyCa,
    /// Like `VerifyCa`, and the certificate must name the host we connect to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is unacceptable.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ConnInfoError::BadValue {
                    key: "sslmode".into(),
                    value: s.into(),
                    from: String::new(),
                    why: "expected disable, allow, prefer, require, verify-ca or verify-full"
                        .into(),
                })
            }
        })
    }
}

/// Where the server lives: a TCP host name / address, or a Unix socket directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name or IP address reached over TCP.
    Tcp(String),
    /// A directory holding the server's socket `.s.PGSQL.<port>`.
    Unix(PathBuf),
}

/// Where the password came from, so messages can say which source was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// No password was found; the server may not need one.
    None,
    /// `password=` in the conninfo or the URL's `user:password@`.
    ConnInfo,
    /// The `PGPASSWORD` environment variable.
    Env,
    /// A line of this password file.
    Passfile(PathBuf),
}

/// Parsed connection parameters for one server; the password is kept private.
#[derive(Clone)]
pub struct ConnParams {
    host: Host,
    hostaddr: Option<IpAddr>,
    port: u16,
    user: String,
    dbname: String,
    password: Option<String>,
    password_source: PasswordSource,
    sslmode: SslMode,
    sslrootcert: Option<PathBuf>,
    default_sslrootcert: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    options: Option<String>,
    warnings: Vec<String>,
}

/// Every key we accept, in libpq's spelling.
const KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
    "passfile",
];

/// Key → environment variable used when the key is absent.
const ENV_FALLBACKS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
    ("password", "PGPASSWORD"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("passfile", "PGPASSFILE"),
    ("options", "PGOPTIONS"),
];

impl ConnParams {
    /// Parses a conninfo string or URL, taking absent keys from `env` (e.g. `PGHOST`).
    pub fn parse(
        input: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnParams, ConnInfoError> {
        let pairs = split_input(input)?;
        let mut given: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            if !KEYS.contains(&k.as_str()) {
                return Err(ConnInfoError::UnknownKey(k));
            }
            given.retain(|(gk, _)| *gk != k);
            given.push((k, v));
        }
        Self::from_pairs(&given, env)
    }

    /// Parses like [`ConnParams::parse`] with the real process environment.
    pub fn parse_with_process_env(input: &str) -> Result<ConnParams, ConnInfoError> {
        Self::parse(input, &|k| std::env::var(k).ok())
    }

    fn from_pairs(
        given: &[(String, String)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnParams, ConnInfoError> {
        // value, and the env var it came from (for messages)
        let get = |key: &str| -> Option<(String, Option<&'static str>)> {
            if let Some((_, v)) = given.iter().find(|(k, _)| k == key) {
                if !v.is_empty() {
                    return Some((v.clone(), None));
                }
                // An explicit empty password stops PGPASSWORD (libpq), other keys fall back.
                if key == "password" {
                    return None;
                }
            }
            let (_, var) = ENV_FALLBACKS.iter().find(|(k, _)| *k == key)?;
            env(var).filter(|v| !v.is_empty()).map(|v| (v, Some(*var)))
        };
        let bad = |key: &str, value: &str, from: Option<&str>, why: &str| ConnInfoError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            from: from.map(|v| format!(" (from {v})")).unwrap_or_default(),
            why: why.to_string(),
        };

        let hostaddr = match get("hostaddr") {
            None => None,
            Some((v, from)) => {
                if v.contains(',') {
                    return Err(ConnInfoError::MultipleHosts(v));
                }
                Some(v.trim().parse::<IpAddr>().map_err(|_| {
                    bad(
                        "hostaddr",
                        &v,
                        from,
                        "expected a numeric IPv4 or IPv6 address",
                    )
                })?)
            }
        };
        let host = match get("host") {
            Some((v, _)) => {
                if v.contains(',') {
                    return Err(ConnInfoError::MultipleHosts(v));
                }
                if v.starts_with('/') {
                    Host::Unix(PathBuf::from(v))
                } else {
                    Host::Tcp(v)
                }
            }
            None => match hostaddr {
                Some(a) => Host::Tcp(a.to_string()),
                None if Path::new(DEFAULT_SOCKET_DIR).is_dir() => {
                    Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR))
                }
                None => Host::Tcp("localhost".to_string()),
            },
        };
        let port = match get("port") {
            None => DEFAULT_PORT,
            Some((v, from)) => {
                if v.contains(',') {
                    return Err(ConnInfoError::MultipleHosts(v));
                }
                match v.trim().parse::<u16>() {
                    Ok(p) if p > 0 => p,
                    _ => return Err(bad("port", &v, from, "expected an integer from 1 to 65535")),
                }
            }
        };
        let user = match get("user") {
            Some((v, _)) => v,
            None => os_user_name().ok_or(ConnInfoError::NoUser)?,
        };
        let dbname = get("dbname")
            .map(|(v, _)| v)
            .unwrap_or_else(|| user.clone());
        let sslmode = match get("sslmode") {
            None => SslMode::Prefer,
            Some((v, from)) => v.parse::<SslMode>().map_err(|_| {
                bad(
                    "sslmode",
                    &v,
                    from,
                    "expected disable, allow, prefer, require, verify-ca or verify-full",
                )
            })?,
        };
        let sslrootcert = get("sslrootcert").map(|(v, _)| PathBuf::from(v));
        let home = env("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(os_home_dir);
        let default_sslrootcert = home.as_ref().map(|h| h.join(".postgresql/root.crt"));
        let connect_timeout = match get("connect_timeout") {
            None => None,
            Some((v, from)) => {
                let secs: i64 = v.trim().parse().map_err(|_| {
                    bad(
                        "connect_timeout",
                        &v,
                        from,
                        "expected a whole number of seconds",
                    )
                })?;
                // libpq: 0 or negative means "wait forever" (we then use the session default);
                // 1 is raised to 2 seconds.
                match secs {
                    s if s <= 0 => None,
                    1 => Some(Duration::from_secs(2)),
                    s => Some(Duration::from_secs(s.unsigned_abs())),
                }
            }
        };
        let options = get("options").map(|(v, _)| v);

        let mut warnings = Vec::new();
        let (password, password_source) = match given.iter().find(|(k, _)| k == "password") {
            Some((_, v)) if !v.is_empty() => (Some(v.clone()), PasswordSource::ConnInfo),
            _ => match get("password") {
                Some((v, _)) => (Some(v), PasswordSource::Env),
                None => {
                    let file = get("passfile")
                        .map(|(v, _)| PathBuf::from(v))
                        .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
                    let host_key = passfile_host(&host);
                    match file.and_then(|f| {
                        lookup_passfile(&f, &host_key, port, &dbname, &user, &mut warnings)
                            .map(|pw| (pw, f))
                    }) {
                        Some((pw, f)) => (Some(pw), PasswordSource::Passfile(f)),
                        None => (None, PasswordSource::None),
                    }
                }
            },
        };

        Ok(ConnParams {
            host,
            hostaddr,
            port,
            user,
            dbname,
            password,
            password_source,
            sslmode,
            sslrootcert,
            default_sslrootcert,
            connect_timeout,
            options,
            warnings,
        })
    }

    /// The host (TCP name/address or socket directory).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The numeric address to connect to instead of resolving `host`, if given.
    pub fn hostaddr(&self) -> Option<IpAddr> {
        self.hostaddr
    }

    /// The port (also the socket file suffix for Unix sockets).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The role to log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database to connect to.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The same server and credentials, connected to database `dbname` (to read its catalogs).
    pub fn with_dbname(&self, dbname: &str) -> ConnParams {
        ConnParams {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// The password for authentication; never log or print it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Where the password came from.
    pub fn password_source(&self) -> &PasswordSource {
        &self.password_source
    }

    /// The requested sslmode.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// `sslrootcert` from the conninfo or `PGSSLROOTCERT`, if given.
    pub fn sslrootcert(&self) -> Option<&Path> {
        self.sslrootcert.as_deref()
    }

    /// The root certificate file libpq would use: `sslrootcert`, else `~/.postgresql/root.crt`.
    pub fn effective_sslrootcert(&self) -> Option<&Path> {
        self.sslrootcert
            .as_deref()
            .or(self.default_sslrootcert.as_deref())
    }

    /// `connect_timeout` from the conninfo or `PGCONNECT_TIMEOUT` (None when absent or 0).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The user's own `options` (server `-c` flags); ours are appended at connect time.
    pub fn options(&self) -> Option<&str> {
        self.options.as_deref()
    }

    /// Warnings to show the user, e.g. a password file ignored for its permissions.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether this connects over a Unix socket (no TLS then, like libpq).
    pub fn is_unix_socket(&self) -> bool {
        matches!(self.host, Host::Unix(_))
    }

    /// The name to verify in the server certificate: `host`, or `hostaddr` when only that is set.
    pub fn tls_server_name(&self) -> String {
        match &self.host {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        }
    }

    /// The socket file path for Unix-socket connections.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Unix(dir) => Some(dir.join(format!(".s.PGSQL.{}", self.port))),
            Host::Tcp(_) => None,
        }
    }

    /// A short label for messages: `127.0.0.1:5433`, `[::1]:5432` or the socket path.
    pub fn target(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Host::Tcp(h) => format!("{h}:{}", self.port),
            Host::Unix(_) => self
                .socket_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// The parameters as a conninfo string with the password replaced by `********`.
    pub fn redacted(&self) -> String {
        let mut parts = Vec::new();
        let host = match &self.host {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        };
        parts.push(format!("host={}", conninfo_value(&host)));
        if let Some(a) = self.hostaddr {
            if a.to_string() != host {
                parts.push(format!("hostaddr={a}"));
            }
        }
        parts.push(format!("port={}", self.port));
        parts.push(format!("user={}", conninfo_value(&self.user)));
        parts.push(format!("dbname={}", conninfo_value(&self.dbname)));
        if self.password.is_some() {
            parts.push("password=********".to_string());
        }
        parts.push(format!("sslmode={}", self.sslmode));
        if let Some(c) = &self.sslrootcert {
            parts.push(format!(
                "sslrootcert={}",
                conninfo_value(&c.display().to_string())
            ));
        }
        if let Some(t) = self.connect_timeout {
            parts.push(format!("connect_timeout={}", t.as_secs()));
        }
        if let Some(o) = &self.options {
            parts.push(format!("options={}", conninfo_value(o)));
        }
        parts.join(" ")
    }
}

impl fmt::Display for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnParams")
            .field("host", &self.host)
            .field("hostaddr", &self.hostaddr)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("password_source", &self.password_source)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("connect_timeout", &self.connect_timeout)
            .field("options", &self.options)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Splits a conninfo string or URL into (key, value) pairs.
fn split_input(input: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    for prefix in ["postgresql://", "postgres://"] {
        if let Some(rest) = input.strip_prefix(prefix) {
            return parse_url(rest);
        }
    }
    parse_kv(input)
}

/// libpq's `conninfo_parse`: `key = value` pairs, values optionally single-quoted.
fn parse_kv(input: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let n = chars.len();
    loop {
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= n || chars[i] != '=' {
            return Err(ConnInfoError::Syntax(format!(
                "missing \"=\" after \"{key}\""
            )));
        }
        if key.is_empty() {
            return Err(ConnInfoError::Syntax(
                "\"=\" without a key before it".into(),
            ));
        }
        i += 1;
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < n && chars[i] == '\'' {
            i += 1;
            let mut closed = false;
            while i < n {
                match chars[i] {
                    '\\' if i + 1 < n => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    '\'' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(ConnInfoError::Syntax(format!(
                    "unterminated quoted string in the value of \"{key}\""
                )));
            }
        } else {
            while i < n && !chars[i].is_whitespace() {
                if chars[i] == '\\' {
                    i += 1;
                    if i < n {
                        value.push(chars[i]);
                        i += 1;
                    }
                } else {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Strict percent-decoding like libpq's `conninfo_uri_decode` (rejects bad escapes and %00).
fn pct_decode(s: &str) -> Result<String, ConnInfoError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(0) => {
                    return Err(ConnInfoError::Url(format!(
                        "forbidden value %00 in percent-encoded value {s:?}"
                    )))
                }
                Some(v) => out.push(v),
                None => {
                    return Err(ConnInfoError::Url(format!(
                        "invalid percent-encoded token in {s:?}"
                    )))
                }
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnInfoError::Url(format!("percent-decoded {s:?} is not UTF-8")))
}

/// libpq's `conninfo_uri_parse_options`, after the scheme.
fn parse_url(rest: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut s = rest;

    // userspec@ : only if an '@' comes before the first '/' (libpq) or '?'.
    let at_end = s.find(['/', '?']).unwrap_or(s.len());
    if let Some(at) = s[..at_end].rfind('@') {
        let userspec = &s[..at];
        let (user, pw) = match userspec.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userspec, None),
        };
        if !user.is_empty() {
            out.push(("user".into(), pct_decode(user)?));
        }
        if let Some(p) = pw {
            // Never echo the password in an error: decode quietly.
            let p = pct_decode(p).map_err(|_| {
                ConnInfoError::Url("invalid percent-encoding in the password".into())
            })?;
            if !p.is_empty() {
                out.push(("password".into(), p));
            }
        }
        s = &s[at + 1..];
    }

    // hostspec
    let host_end = s.find(['/', '?']).unwrap_or(s.len());
    let hostspec = &s[..host_end];
    s = &s[host_end..];
    if hostspec.contains(',') {
        return Err(ConnInfoError::MultipleHosts(hostspec.to_string()));
    }
    let (host, port) = if let Some(h) = hostspec.strip_prefix('[') {
        let close = h.find(']').ok_or_else(|| {
            ConnInfoError::Url(format!("missing \"]\" in IPv6 host address {hostspec:?}"))
        })?;
        let addr = &h[..close];
        if addr.is_empty() {
            return Err(ConnInfoError::Url(
                "IPv6 host address may not be empty: \"[]\"".into(),
            ));
        }
        let after = &h[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(ConnInfoError::Url(format!(
                    "unexpected {after:?} after IPv6 host address"
                )))
            }
        };
        (addr.to_string(), port)
    } else {
        match hostspec.split_once(':') {
            Some((h, p)) => (pct_decode(h)?, Some(p)),
            None => (pct_decode(hostspec)?, None),
        }
    };
    if !host.is_empty() {
        out.push(("host".into(), host));
    }
    if let Some(p) = port {
        if !p.is_empty() {
            out.push(("port".into(), pct_decode(p)?));
        }
    }

    // /dbname
    if let Some(r) = s.strip_prefix('/') {
        let end = r.find('?').unwrap_or(r.len());
        let db = pct_decode(&r[..end])?;
        if !db.is_empty() {
            out.push(("dbname".into(), db));
        }
        s = &r[end..];
    }

    // ?key=value&...
    if let Some(q) = s.strip_prefix('?') {
        for param in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = param.split_once('=').ok_or_else(|| {
                ConnInfoError::Url(format!(
                    "missing key/value separator \"=\" in URI query parameter {param:?}"
                ))
            })?;
            if v.contains('=') {
                return Err(ConnInfoError::Url(format!(
                    "extra key/value separator \"=\" in URI query parameter {k:?}"
                )));
            }
            let k = pct_decode(k)?;
            let v = if k == "password" {
                pct_decode(v).map_err(|_| {
                    ConnInfoError::Url("invalid percent-encoding in the password".into())
                })?
            } else {
                pct_decode(v)?
            };
            // libpq maps the JDBC-style ssl=true to sslmode=require.
            if k == "ssl" && v == "true" {
                out.push(("sslmode".into(), "require".into()));
                continue;
            }
            out.push((k, v));
        }
    }
    Ok(out)
}

/// The host string libpq matches against the password file's first field.
fn passfile_host(host: &Host) -> String {
    match host {
        Host::Tcp(h) => h.clone(),
        Host::Unix(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_string(),
        Host::Unix(dir) => dir.display().to_string(),
    }
}

/// Reads a password file and returns the first matching password (libpq's `passwordFromFile`).
fn lookup_passfile(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
    warnings: &mut Vec<String>,
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        warnings.push(format!(
            "password file \"{}\" is not a plain file; ignored",
            path.display()
        ));
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        warnings.push(format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less; ignored",
            path.display()
        ));
        return None;
    }
    let text = match std::fs::read(path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => {
            warnings.push(format!(
                "password file \"{}\" could not be read: {e}; ignored",
                path.display()
            ));
            return None;
        }
    };
    let port = port.to_string();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_passfile_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |f: &(String, bool), want: &str| (f.0 == "*" && !f.1) || f.0 == want;
        if matches(&fields[0], host)
            && matches(&fields[1], &port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            let pw = fields[4].0.clone();
            return (!pw.is_empty()).then_some(pw);
        }
    }
    None
}

/// Splits a password-file line on unescaped `:`; each field is (unescaped text, had escapes).
fn split_passfile_line(line: &str) -> Vec<(String, bool)> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    escaped = true;
                }
            }
            ':' => {
                fields.push((std::mem::take(&mut cur), escaped));
                escaped = false;
                if fields.len() == 4 {
                    // The password is the rest, up to the next unescaped ':' (libpq).
                    let mut pw = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some(n) = chars.next() {
                                    pw.push(n);
                                }
                            }
                            ':' => break,
                            c => pw.push(c),
                        }
                    }
                    fields.push((pw, false));
                    return fields;
                }
            }
            c => cur.push(c),
        }
    }
    fields.push((cur, escaped));
    fields
}

/// The effective OS user's passwd entry: its name and home directory.
fn passwd_entry() -> Option<(String, PathBuf)> {
    let u = nix::unistd::User::from_uid(nix::unistd::geteuid()).ok()??;
    Some((u.name, u.dir))
}

/// The effective OS user's name (libpq's default user).
fn os_user_name() -> Option<String> {
    passwd_entry().map(|(n, _)| n).filter(|n| !n.is_empty())
}

fn os_home_dir() -> Option<PathBuf> {
    passwd_entry()
        .map(|(_, d)| d)
        .filter(|d| !d.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    fn no_env() -> impl Fn(&str) -> Option<String> {
        // HOME points nowhere so a real ~/.pgpass never leaks into tests.
        env_of(&[("HOME", "/nonexistent-home-for-tests")])
    }

    fn p(s: &str) -> ConnParams {
        ConnParams::parse(s, &no_env()).unwrap()
    }

    fn err(s: &str) -> ConnInfoError {
        ConnParams::parse(s, &no_env()).unwrap_err()
    }

    #[test]
    fn kv_basic_and_spaces_around_equals() {
        let c = p("host = db1  port=5433 user =alice dbname= shop sslmode=require");
        assert_eq!(c.host(), &Host::Tcp("db1".into()));
        assert_eq!(c.port(), 5433);
        assert_eq!(c.user(), "alice");
        assert_eq!(c.dbname(), "shop");
        assert_eq!(c.sslmode(), SslMode::Require);
        assert_eq!(c.target(), "db1:5433");
    }

    #[test]
    fn kv_quotes_and_escapes() {
        let c = p(r"host=h user='o\'brien' dbname='my db' password='p w\\x' options=-c\ a=b");
        assert_eq!(c.user(), "o'brien");
        assert_eq!(c.dbname(), "my db");
        assert_eq!(c.password(), Some(r"p w\x"));
        assert_eq!(c.options(), Some("-c a=b"));
        assert_eq!(c.password_source(), &PasswordSource::ConnInfo);
        let c = p("host=h user=u dbname=''");
        assert_eq!(c.dbname(), "u", "empty dbname falls back to the user");
    }

    #[test]
    fn kv_later_key_wins_and_ignored_keys() {
        let c = p("host=h port=1 port=2 user=u application_name=x target_session_attrs=any");
        assert_eq!(c.port(), 2);
    }

    #[test]
    fn kv_errors() {
        assert!(
            matches!(err("host=h user='abc"), ConnInfoError::Syntax(m) if m.contains("unterminated"))
        );
        assert!(
            matches!(err("host"), ConnInfoError::Syntax(m) if m.contains("missing \"=\" after \"host\""))
        );
        assert!(matches!(err("host h"), ConnInfoError::Syntax(_)));
        assert!(matches!(err("=x"), ConnInfoError::Syntax(_)));
        assert_eq!(
            err("host=h user=u foo=bar"),
            ConnInfoError::UnknownKey("foo".into())
        );
        assert!(err("host=h user=u foo=bar").to_string().contains("\"foo\""));
        for bad in ["port=abc", "port=0", "port=70000", "port=-1"] {
            let e = err(&format!("host=h user=u {bad}"));
            assert!(
                matches!(e, ConnInfoError::BadValue { ref key, .. } if key == "port"),
                "{bad}: {e}"
            );
        }
        let e = err("host=h user=u sslmode=verify");
        assert!(e.to_string().contains("verify-full"), "{e}");
        assert!(matches!(
            err("host=h user=u connect_timeout=soon"),
            ConnInfoError::BadValue { .. }
        ));
        assert!(matches!(
            err("host=h user=u hostaddr=db.example"),
            ConnInfoError::BadValue { .. }
        ));
        assert!(matches!(
            err("host=a,b user=u"),
            ConnInfoError::MultipleHosts(_)
        ));
    }

    #[test]
    fn empty_input_uses_defaults() {
        let c =
            ConnParams::parse("", &env_of(&[("PGUSER", "bob"), ("HOME", "/nonexistent")])).unwrap();
        assert_eq!(c.port(), 5432);
        assert_eq!(c.user(), "bob");
        assert_eq!(c.dbname(), "bob");
        assert_eq!(c.sslmode(), SslMode::Prefer);
        let expect_host = if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
            Host::Unix(DEFAULT_SOCKET_DIR.into())
        } else {
            Host::Tcp("localhost".into())
        };
        assert_eq!(c.host(), &expect_host);
        // without PGUSER the OS user is used
        let c = ConnParams::parse("", &no_env()).unwrap();
        assert!(!c.user().is_empty());
    }

    #[test]
    fn env_fallbacks_apply_only_when_absent() {
        let env = env_of(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/tmp/ca.pem"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("HOME", "/nonexistent"),
        ]);
        let c = ConnParams::parse("", &env).unwrap();
        assert_eq!(c.host(), &Host::Tcp("envhost".into()));
        assert_eq!(c.port(), 6000);
        assert_eq!(c.user(), "envuser");
        assert_eq!(c.dbname(), "envdb");
        assert_eq!(c.password(), Some("envpw"));
        assert_eq!(c.password_source(), &PasswordSource::Env);
        assert_eq!(c.sslmode(), SslMode::VerifyFull);
        assert_eq!(c.sslrootcert(), Some(Path::new("/tmp/ca.pem")));
        assert_eq!(c.connect_timeout(), Some(Duration::from_secs(7)));
        let c = ConnParams::parse("host=h port=1 user=u password=x sslmode=disable", &env).unwrap();
        assert_eq!(c.host(), &Host::Tcp("h".into()));
        assert_eq!(c.port(), 1);
        assert_eq!(c.password(), Some("x"));
        assert_eq!(c.password_source(), &PasswordSource::ConnInfo);
        assert_eq!(c.sslmode(), SslMode::Disable);
        assert_eq!(c.dbname(), "envdb");
        let e = ConnParams::parse("", &env_of(&[("PGPORT", "x"), ("PGUSER", "u")])).unwrap_err();
        assert!(e.to_string().contains("from PGPORT"), "{e}");
    }

    #[test]
    fn connect_timeout_like_libpq() {
        assert_eq!(p("host=h user=u connect_timeout=0").connect_timeout(), None);
        assert_eq!(
            p("host=h user=u connect_timeout=1").connect_timeout(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p("host=h user=u connect_timeout=-3").connect_timeout(),
            None
        );
    }

    #[test]
    fn hostaddr_only_and_unix_host() {
        let c = p("hostaddr=127.0.0.1 port=5 user=u");
        assert_eq!(c.host(), &Host::Tcp("127.0.0.1".into()));
        assert_eq!(c.target(), "127.0.0.1:5");
        let c = p("host=/tmp/sock port=5433 user=u");
        assert!(c.is_unix_socket());
        assert_eq!(c.target(), "/tmp/sock/.s.PGSQL.5433");
        let c = p("host=db.example hostaddr=::1 user=u");
        assert_eq!(c.hostaddr(), Some("::1".parse().unwrap()));
        assert_eq!(c.tls_server_name(), "db.example");
    }

    #[test]
    fn urls() {
        let c = p("postgresql://al%40ice:s%3Ac%2Fret@db.example:6543/my%20db?sslmode=verify-ca&connect_timeout=5&application_name=x");
        assert_eq!(c.user(), "al@ice");
        assert_eq!(c.password(), Some("s:c/ret"));
        assert_eq!(c.host(), &Host::Tcp("db.example".into()));
        assert_eq!(c.port(), 6543);
        assert_eq!(c.dbname(), "my db");
        assert_eq!(c.sslmode(), SslMode::VerifyCa);
        assert_eq!(c.connect_timeout(), Some(Duration::from_secs(5)));

        let c = p("postgres://u@[::1]:5433/db");
        assert_eq!(c.host(), &Host::Tcp("::1".into()));
        assert_eq!(c.target(), "[::1]:5433");

        let c = p("postgresql://%2Fvar%2Frun%2Fpostgresql:5444/db?user=u");
        assert_eq!(c.host(), &Host::Unix("/var/run/postgresql".into()));
        assert_eq!(c.target(), "/var/run/postgresql/.s.PGSQL.5444");

        let c = p("postgresql:///db?host=/tmp/x&user=u&ssl=true");
        assert_eq!(c.host(), &Host::Unix("/tmp/x".into()));
        assert_eq!(c.sslmode(), SslMode::Require);

        let c = p("postgresql://h?user=u");
        assert_eq!(c.dbname(), "u");
        let c = p("postgresql://u@h");
        assert_eq!((c.user(), c.port()), ("u", 5432));
    }

    #[test]
    fn url_errors() {
        assert!(matches!(
            err("postgresql://u@[::1/db"),
            ConnInfoError::Url(_)
        ));
        assert!(matches!(err("postgresql://u@[]/db"), ConnInfoError::Url(_)));
        assert!(matches!(
            err("postgresql://u@h/db?sslmode"),
            ConnInfoError::Url(_)
        ));
        assert!(matches!(
            err("postgresql://u@h/db?a=b=c"),
            ConnInfoError::Url(_)
        ));
        assert!(matches!(
            err("postgresql://u@h/d%zzb"),
            ConnInfoError::Url(_)
        ));
        assert!(matches!(
            err("postgresql://u@h/d%00b"),
            ConnInfoError::Url(_)
        ));
        assert!(matches!(
            err("postgresql://u@h:port/db"),
            ConnInfoError::BadValue { .. }
        ));
        assert!(matches!(
            err("postgresql://u@h1,h2/db"),
            ConnInfoError::MultipleHosts(_)
        ));
        assert_eq!(
            err("postgresql://u@h/db?frob=1"),
            ConnInfoError::UnknownKey("frob".into())
        );
        let e = err("postgresql://u:se%zzcret@h/db");
        assert!(!e.to_string().contains("cret"), "{e}");
    }

    #[test]
    fn password_never_shown() {
        let c = p("host=h user=u password=hunter2secret");
        for s in [format!("{c}"), format!("{c:?}"), c.redacted()] {
            assert!(!s.contains("hunter2secret"), "{s}");
        }
        assert!(c.redacted().contains("password=********"));
        let c = p("postgresql://u:hunter2secret@h/db");
        assert!(!format!("{c:?}{c}").contains("hunter2secret"));
        assert_eq!(
            p("host=h user=u").redacted(),
            "host=h port=5432 user=u dbname=u sslmode=prefer"
        );
        let r = p("host=h user=u dbname='a b' options='-c x=y'").redacted();
        assert_eq!(
            r,
            "host=h port=5432 user=u dbname='a b' sslmode=prefer options='-c x=y'"
        );
        // redacted output parses back to the same parameters
        let back = p(&r);
        assert_eq!((back.dbname(), back.options()), ("a b", Some("-c x=y")));
    }

    fn passfile(content: &str, mode: u32) -> tempfile::NamedTempFile {
        use std::os::unix::fs::PermissionsExt;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    fn with_passfile(input: &str, f: &tempfile::NamedTempFile) -> ConnParams {
        let path = f.path().display().to_string();
        ConnParams::parse(
            input,
            &env_of(&[("PGPASSFILE", &path), ("HOME", "/nonexistent")]),
        )
        .unwrap()
    }

    #[test]
    fn passfile_matching() {
        let f = passfile(
            "# comment\n\
             other:5432:*:u:wrong\n\
             h:5433:db:u:right\n\
             h:*:*:u:wild\n\
             we\\:ird:*:*:*:pa\\:ss\\\\word\n\
             localhost:*:*:sock:socketpw\n\
             /tmp/s:*:*:sock:tmpsock\n",
            0o600,
        );
        let c = with_passfile("host=h port=5433 dbname=db user=u", &f);
        assert_eq!(c.password(), Some("right"));
        assert!(matches!(c.password_source(), PasswordSource::Passfile(_)));
        assert_eq!(
            with_passfile("host=h port=1 dbname=x user=u", &f).password(),
            Some("wild")
        );
        assert_eq!(
            with_passfile("host=we:ird user=z", &f).password(),
            Some("pa:ss\\word")
        );
        assert_eq!(with_passfile("host=nomatch user=u", &f).password(), None);
        assert_eq!(
            with_passfile("host=/var/run/postgresql user=sock", &f).password(),
            Some("socketpw")
        );
        assert_eq!(
            with_passfile("host=/tmp/s user=sock", &f).password(),
            Some("tmpsock")
        );
        // explicit password and PGPASSWORD win over the file
        assert_eq!(
            with_passfile("host=h port=5433 dbname=db user=u password=x", &f).password(),
            Some("x")
        );
        let path = f.path().display().to_string();
        let c = ConnParams::parse(
            "host=h port=5433 dbname=db user=u",
            &env_of(&[("PGPASSFILE", &path), ("PGPASSWORD", "envpw")]),
        )
        .unwrap();
        assert_eq!(c.password(), Some("envpw"));
        // the passfile key works too
        let c = ConnParams::parse(
            &format!("host=h port=5433 dbname=db user=u passfile={path}"),
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.password(), Some("right"));
    }

    #[test]
    fn passfile_with_open_permissions_is_ignored_with_warning() {
        let f = passfile("*:*:*:*:secret\n", 0o644);
        let c = with_passfile("host=h user=u", &f);
        assert_eq!(c.password(), None);
        assert_eq!(c.warnings().len(), 1);
        assert!(
            c.warnings()[0].contains("group or world access"),
            "{:?}",
            c.warnings()
        );
        assert!(!c.warnings()[0].contains("secret"));
    }

    #[test]
    fn passfile_from_home() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join(".pgpass");
        std::fs::write(&pf, "*:*:*:u:homepw\n").unwrap();
        std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let home = dir.path().display().to_string();
        let c = ConnParams::parse("host=h user=u", &env_of(&[("HOME", &home)])).unwrap();
        assert_eq!(c.password(), Some("homepw"));
        assert_eq!(
            c.effective_sslrootcert(),
            Some(dir.path().join(".postgresql/root.crt").as_path())
        );
    }
}
