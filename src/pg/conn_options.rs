//! The values of connection keywords as the tool keeps them (sslmode, hosts,
//! target_session_attrs, TLS settings), and why a connection string could not be parsed.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

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
    /// A key that libpq does not know either.
    #[error("invalid connection option \"{0}\": libpq does not know it either (check the spelling; keywords are lower case, e.g. sslmode, target_session_attrs)")]
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
    /// A keyword libpq knows whose promise (usually a security one) this tool cannot keep.
    #[error("connection option \"{key}\" is not supported: {why}")]
    Refused {
        /// The keyword.
        key: String,
        /// Why, and what to do instead.
        why: String,
    },
    /// The service (`service=`, `PGSERVICE`) could not be read.
    #[error("{0}")]
    Service(String),
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

/// libpq's `target_session_attrs`: which kind of server a (multi-host) string must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TargetSessionAttrs {
    /// Any server that accepts the connection (libpq's default).
    #[default]
    Any,
    /// A server that accepts writes: a primary.
    ReadWrite,
    /// A server that refuses writes: a standby (or a primary with default_transaction_read_only).
    ReadOnly,
    /// A server not in recovery.
    Primary,
    /// A server in recovery.
    Standby,
    /// A standby if any host is one, else any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            _ => return None,
        })
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq's `sslcertmode`: whether to offer a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslCertMode {
    /// Never send one.
    Disable,
    /// Send one if a certificate file exists (libpq's default).
    #[default]
    Allow,
    /// A certificate must be configured (and sent).
    Require,
}

/// A TLS protocol version bound (`ssl_min_protocol_version`, `ssl_max_protocol_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLSv1 (refused by this tool as a maximum).
    V1_0,
    /// TLSv1.1 (refused by this tool as a maximum).
    V1_1,
    /// TLSv1.2.
    V1_2,
    /// TLSv1.3.
    V1_3,
}

impl TlsVersion {
    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "TLSv1" => TlsVersion::V1_0,
            "TLSv1.1" => TlsVersion::V1_1,
            "TLSv1.2" => TlsVersion::V1_2,
            "TLSv1.3" => TlsVersion::V1_3,
            _ => return None,
        })
    }

    /// libpq's spelling, e.g. `TLSv1.2`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_0 => "TLSv1",
            TlsVersion::V1_1 => "TLSv1.1",
            TlsVersion::V1_2 => "TLSv1.2",
            TlsVersion::V1_3 => "TLSv1.3",
        }
    }
}

/// One entry of a (possibly multi-host) connection string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// The host name, address or socket directory.
    pub host: Host,
    /// The numeric address to use instead of resolving the name.
    pub hostaddr: Option<IpAddr>,
    /// The port.
    pub port: u16,
}

impl HostSpec {
    /// `host:port`, `[v6]:port` or the socket path.
    pub fn target(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Host::Tcp(h) => format!("{h}:{}", self.port),
            Host::Unix(d) => d
                .join(format!(".s.PGSQL.{}", self.port))
                .display()
                .to_string(),
        }
    }
}

/// The client side of TLS: certificate, key, revocation lists and protocol bounds.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// `sslcert` / `PGSSLCERT`, else `~/.postgresql/postgresql.crt` (used only if it exists).
    pub cert: Option<PathBuf>,
    /// Whether `cert` was given (not libpq's default file).
    pub cert_given: bool,
    /// `sslkey` / `PGSSLKEY`, else `~/.postgresql/postgresql.key`.
    pub key: Option<PathBuf>,
    /// `sslpassword`: decrypts an encrypted key; never shown.
    pub key_password: Option<String>,
    /// `sslcrl` / `PGSSLCRL`, else `~/.postgresql/root.crl` (used only if it exists).
    pub crl: Option<PathBuf>,
    /// Whether `crl` was given (then it must exist).
    pub crl_given: bool,
    /// `sslcrldir` / `PGSSLCRLDIR`: every file in it is a CRL.
    pub crl_dir: Option<PathBuf>,
    /// `sslcertmode`.
    pub cert_mode: SslCertMode,
    /// `ssl_min_protocol_version` (libpq's default is TLSv1.2).
    pub min_version: Option<TlsVersion>,
    /// `ssl_max_protocol_version`.
    pub max_version: Option<TlsVersion>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field(
                "key_password",
                &self.key_password.as_ref().map(|_| "********"),
            )
            .field("crl", &self.crl)
            .field("crl_dir", &self.crl_dir)
            .field("cert_mode", &self.cert_mode)
            .finish()
    }
}
