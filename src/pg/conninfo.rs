//! Connection parameters parsed the way libpq parses them.
//!
//! Accepts `key=value` conninfo strings and `postgres://` / `postgresql://` URLs (several
//! hosts included), fills absent keys from a service file and then the `PG*` environment,
//! applies libpq's defaults and looks the password up in `PGPASSWORD` or the password file. The environment is injected so that tests are
//! deterministic. The password never appears in `Debug`, `Display` or error messages.

use crate::quote::conninfo_value;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod parse;

pub use super::conn_options::{
    ClientTls, ConnInfoError, Host, HostSpec, PasswordSource, SslCertMode, SslMode,
    TargetSessionAttrs, TlsVersion, DEFAULT_PORT, DEFAULT_SOCKET_DIR,
};

/// Parsed connection parameters; the password is kept private.
///
/// A multi-host string (`host=a,b port=1,2`) keeps every host in [`ConnParams::hosts`]; the
/// single-host accessors (`host()`, `port()`, `target()` for one host) describe the first, and
/// `pg::multihost` picks the one to use (then [`ConnParams::pinned`] narrows to it).
#[derive(Clone)]
pub struct ConnParams {
    host: Host,
    hostaddr: Option<IpAddr>,
    port: u16,
    hosts: Vec<HostSpec>,
    user: String,
    dbname: String,
    password: Option<String>,
    password_source: PasswordSource,
    /// The password given in the string or `PGPASSWORD` (applies to every host).
    given_password: Option<(String, PasswordSource)>,
    /// The password file to look each host up in.
    passfile: Option<PathBuf>,
    sslmode: SslMode,
    sslrootcert: Option<PathBuf>,
    default_sslrootcert: Option<PathBuf>,
    client_tls: ClientTls,
    channel_binding: Option<String>,
    connect_timeout: Option<Duration>,
    options: Option<String>,
    target_session_attrs: TargetSessionAttrs,
    target_session_attrs_given: bool,
    load_balance_hosts: bool,
    service: Option<(String, PathBuf)>,
    warnings: Vec<String>,
}

/// Where a keyword's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The connection string.
    Given,
    /// The service file.
    Service,
    /// This environment variable.
    Env(&'static str),
}

impl ConnParams {
    /// Every host of the string, in the order given.
    pub fn hosts(&self) -> &[HostSpec] {
        &self.hosts
    }

    /// Whether the string names more than one host.
    pub fn is_multi_host(&self) -> bool {
        self.hosts.len() > 1
    }

    /// Whether connecting means choosing among hosts or checking the server's role first
    /// (several hosts, or a `target_session_attrs` other than `any`).
    pub fn needs_host_choice(&self) -> bool {
        self.is_multi_host() || self.target_session_attrs != TargetSessionAttrs::Any
    }

    /// `target_session_attrs` (libpq's default `any`).
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.target_session_attrs
    }

    /// Whether `target_session_attrs` was given (string, service or `PGTARGETSESSIONATTRS`).
    pub fn target_session_attrs_given(&self) -> bool {
        self.target_session_attrs_given
    }

    /// `load_balance_hosts=random`: try the hosts in a random order.
    pub fn load_balance_hosts(&self) -> bool {
        self.load_balance_hosts
    }

    /// The same parameters narrowed to host number `i` of [`ConnParams::hosts`] (its password
    /// looked up again in the password file), with no host choice left to make.
    pub fn pinned(&self, i: usize) -> ConnParams {
        let spec = self
            .hosts
            .get(i)
            .cloned()
            .unwrap_or_else(|| self.hosts[0].clone());
        let mut p = ConnParams {
            host: spec.host.clone(),
            hostaddr: spec.hostaddr,
            port: spec.port,
            hosts: vec![spec],
            target_session_attrs: TargetSessionAttrs::Any,
            load_balance_hosts: false,
            warnings: Vec::new(),
            ..self.clone()
        };
        p.find_password();
        p.warnings = self.warnings.clone();
        p
    }

    /// The service (`service=` or `PGSERVICE`) and the file that defined it, if one was used.
    pub fn service(&self) -> Option<(&str, &Path)> {
        self.service
            .as_ref()
            .map(|(n, f)| (n.as_str(), f.as_path()))
    }

    /// Client certificate, key, revocation lists and TLS version bounds.
    pub fn client_tls(&self) -> &ClientTls {
        &self.client_tls
    }

    /// `channel_binding` (disable, prefer, require), if given.
    pub fn channel_binding(&self) -> Option<&str> {
        self.channel_binding.as_deref()
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

    /// Notices to show the user (stderr): a password file ignored for its permissions, a
    /// keyword accepted but not used.
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

    /// A short label for messages: `127.0.0.1:5433`, `[::1]:5432` or the socket path; every
    /// host, comma-separated, for a multi-host string.
    pub fn target(&self) -> String {
        self.hosts
            .iter()
            .map(HostSpec::target)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The parameters as a conninfo string with the passwords replaced by `********`.
    pub fn redacted(&self) -> String {
        let mut parts = Vec::new();
        let host_of = |s: &HostSpec| match &s.host {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        };
        let hosts: Vec<String> = self.hosts.iter().map(host_of).collect();
        parts.push(format!("host={}", conninfo_value(&hosts.join(","))));
        let addrs: Vec<String> = self
            .hosts
            .iter()
            .map(|s| match s.hostaddr {
                Some(a) if a.to_string() != host_of(s) => a.to_string(),
                _ => String::new(),
            })
            .collect();
        if addrs.iter().any(|a| !a.is_empty()) {
            parts.push(format!("hostaddr={}", addrs.join(",")));
        }
        let ports: Vec<String> = self.hosts.iter().map(|s| s.port.to_string()).collect();
        parts.push(format!("port={}", ports.join(",")));
        parts.push(format!("user={}", conninfo_value(&self.user)));
        parts.push(format!("dbname={}", conninfo_value(&self.dbname)));
        if self.password.is_some() || self.given_password.is_some() {
            parts.push("password=********".to_string());
        }
        parts.push(format!("sslmode={}", self.sslmode));
        if let Some(c) = &self.sslrootcert {
            parts.push(format!(
                "sslrootcert={}",
                conninfo_value(&c.display().to_string())
            ));
        }
        let t = &self.client_tls;
        if t.cert_given {
            if let Some(c) = &t.cert {
                parts.push(format!(
                    "sslcert={}",
                    conninfo_value(&c.display().to_string())
                ));
            }
            if let Some(k) = &t.key {
                parts.push(format!(
                    "sslkey={}",
                    conninfo_value(&k.display().to_string())
                ));
            }
        }
        if t.key_password.is_some() {
            parts.push("sslpassword=********".to_string());
        }
        if t.crl_given {
            if let Some(c) = &t.crl {
                parts.push(format!(
                    "sslcrl={}",
                    conninfo_value(&c.display().to_string())
                ));
            }
        }
        if let Some(d) = &t.crl_dir {
            parts.push(format!(
                "sslcrldir={}",
                conninfo_value(&d.display().to_string())
            ));
        }
        match t.cert_mode {
            SslCertMode::Allow => {}
            SslCertMode::Disable => parts.push("sslcertmode=disable".into()),
            SslCertMode::Require => parts.push("sslcertmode=require".into()),
        }
        if let Some(v) = t.min_version {
            parts.push(format!("ssl_min_protocol_version={}", v.as_str()));
        }
        if let Some(v) = t.max_version {
            parts.push(format!("ssl_max_protocol_version={}", v.as_str()));
        }
        if let Some(c) = &self.channel_binding {
            parts.push(format!("channel_binding={c}"));
        }
        if let Some(t) = self.connect_timeout {
            parts.push(format!("connect_timeout={}", t.as_secs()));
        }
        if let Some(o) = &self.options {
            parts.push(format!("options={}", conninfo_value(o)));
        }
        if self.target_session_attrs != TargetSessionAttrs::Any {
            parts.push(format!(
                "target_session_attrs={}",
                self.target_session_attrs
            ));
        }
        if self.load_balance_hosts {
            parts.push("load_balance_hosts=random".into());
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
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("password_source", &self.password_source)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("client_tls", &self.client_tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("options", &self.options)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("service", &self.service)
            .field("warnings", &self.warnings)
            .finish()
    }
}

#[cfg(test)]
mod tests;
