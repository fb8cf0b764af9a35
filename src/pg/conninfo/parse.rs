//! ConnParams built from a conninfo string or URL: service file, `PG*` environment, defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pg::conn_options::{
    ClientTls, ConnInfoError, Host, HostSpec, PasswordSource, SslCertMode, SslMode,
    TargetSessionAttrs, TlsVersion, DEFAULT_PORT, DEFAULT_SOCKET_DIR,
};
use crate::pg::conn_syntax::split_input;
use crate::pg::keywords;
use crate::pg::pgpass::{lookup_passfile, os_home_dir, os_user_name, passfile_host};

use super::{ConnParams, Origin};

impl ConnParams {
    /// Parses a conninfo string or URL, taking absent keys from a service file and from `env`
    /// (e.g. `PGHOST`), with libpq's precedence: string, then service, then environment.
    ///
    /// The parsing is hand-written rather than tokio-postgres' `Config::from_str` because
    /// tokio-postgres refuses every keyword it does not use (libpq knows ~50: `sslcert`,
    /// `service`, `passfile`, `gssencmode`, …), reads no `PG*` variables, password file or
    /// service file, and accepts URLs libpq refuses (`%00`, a `=` in a query value).
    pub fn parse(
        input: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnParams, ConnInfoError> {
        let pairs = split_input(input)?;
        let mut given: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            if keywords::find(&k).is_none() {
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
        let home = env("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(os_home_dir);

        // The service: explicit keywords win over it, it wins over the environment.
        let service_name = given
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .or_else(|| env("PGSERVICE").filter(|v| !v.is_empty()));
        let mut from_service: Vec<(String, String)> = Vec::new();
        let mut service = None;
        if let Some(name) = service_name {
            let s = crate::pg::service::lookup(&name, env, home.as_deref())
                .map_err(|e| ConnInfoError::Service(e.to_string()))?;
            from_service = s.pairs;
            service = Some((name, s.file));
        }

        // value, and where it came from (for messages)
        let get = |key: &str| -> Option<(String, Origin)> {
            for (list, origin) in [(given, Origin::Given), (&from_service[..], Origin::Service)] {
                if let Some((_, v)) = list.iter().find(|(k, _)| k == key) {
                    if !v.is_empty() {
                        return Some((v.clone(), origin));
                    }
                    // An explicit empty password stops PGPASSWORD (libpq), other keys fall back.
                    if key == "password" {
                        return None;
                    }
                }
            }
            let var = keywords::find(key)?.env?;
            env(var)
                .filter(|v| !v.is_empty())
                .map(|v| (v, Origin::Env(var)))
        };
        let bad = |key: &str, value: &str, from: Origin, why: &str| ConnInfoError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            from: match from {
                Origin::Given => String::new(),
                Origin::Service => " (from the service file)".to_string(),
                Origin::Env(v) => format!(" (from {v})"),
            },
            why: why.to_string(),
        };

        let mut warnings = Vec::new();
        // Keywords libpq knows that the tool does not use: a notice, or a refusal.
        for kw in keywords::KEYWORDS {
            let Some((value, origin)) = get(kw.name) else {
                continue;
            };
            let verdict = match kw.use_ {
                keywords::Use::Used => continue,
                keywords::Use::Ignored(why) => keywords::Verdict::Notice(why.to_string()),
                keywords::Use::ByValue => keywords::check_value(kw.name, &value),
            };
            match verdict {
                keywords::Verdict::Fine => {}
                // Variables from the environment are not the user's words for this run.
                keywords::Verdict::Notice(_) if matches!(origin, Origin::Env(_)) => {}
                keywords::Verdict::Notice(why) => {
                    warnings.push(format!("connection option \"{}\" ignored: {why}", kw.name))
                }
                keywords::Verdict::Refuse(why) => {
                    return Err(ConnInfoError::Refused {
                        key: kw.name.to_string(),
                        why: match origin {
                            Origin::Env(v) => format!("{why} (set by {v})"),
                            Origin::Service => format!("{why} (from the service file)"),
                            Origin::Given => why,
                        },
                    })
                }
            }
        }

        // Hosts: comma-separated lists of host, hostaddr and port, matched by position.
        let split =
            |v: &str| -> Vec<String> { v.split(',').map(|s| s.trim().to_string()).collect() };
        let host_list = get("host").map(|(v, o)| (split(&v), v, o));
        let addr_list = get("hostaddr").map(|(v, o)| (split(&v), v, o));
        let n = match (&host_list, &addr_list) {
            (Some((h, hv, ho)), Some((a, _, _))) if h.len() != a.len() => {
                return Err(bad(
                    "hostaddr",
                    hv,
                    *ho,
                    &format!(
                        "could not match {} host names to {} hostaddr values",
                        h.len(),
                        a.len()
                    ),
                ))
            }
            (Some((h, _, _)), _) => h.len(),
            (None, Some((a, _, _))) => a.len(),
            (None, None) => 1,
        };
        let ports: Vec<u16> = match get("port") {
            None => vec![DEFAULT_PORT; n],
            Some((v, from)) => {
                let list = split(&v);
                if list.len() != 1 && list.len() != n {
                    return Err(bad(
                        "port",
                        &v,
                        from,
                        &format!("could not match {} port numbers to {n} hosts", list.len()),
                    ));
                }
                let mut out = Vec::with_capacity(n);
                for p in &list {
                    out.push(if p.is_empty() {
                        DEFAULT_PORT
                    } else {
                        match p.parse::<u16>() {
                            Ok(p) if p > 0 => p,
                            _ => {
                                return Err(bad(
                                    "port",
                                    &v,
                                    from,
                                    "expected an integer from 1 to 65535",
                                ))
                            }
                        }
                    });
                }
                if out.len() == 1 {
                    vec![out[0]; n]
                } else {
                    out
                }
            }
        };
        let mut hosts = Vec::with_capacity(n);
        for (i, port) in ports.into_iter().enumerate() {
            let hostaddr = match &addr_list {
                Some((a, v, from)) if !a[i].is_empty() => {
                    Some(a[i].parse::<IpAddr>().map_err(|_| {
                        bad(
                            "hostaddr",
                            v,
                            *from,
                            "expected a numeric IPv4 or IPv6 address",
                        )
                    })?)
                }
                _ => None,
            };
            let host = match host_list.as_ref().map(|(h, _, _)| h[i].as_str()) {
                Some(h) if h.starts_with('/') => Host::Unix(PathBuf::from(h)),
                Some(h) if !h.is_empty() => Host::Tcp(h.to_string()),
                _ => match hostaddr {
                    Some(a) => Host::Tcp(a.to_string()),
                    None if Path::new(DEFAULT_SOCKET_DIR).is_dir() => {
                        Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR))
                    }
                    None => Host::Tcp("localhost".to_string()),
                },
            };
            hosts.push(HostSpec {
                host,
                hostaddr,
                port,
            });
        }

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
        let pgdir = home.as_ref().map(|h| h.join(".postgresql"));
        let default_sslrootcert = pgdir.as_ref().map(|d| d.join("root.crt"));
        let cert_given = get("sslcert");
        let crl_given = get("sslcrl");
        let cert_mode = match get("sslcertmode") {
            None => SslCertMode::Allow,
            Some((v, from)) => match v.as_str() {
                "disable" => SslCertMode::Disable,
                "allow" => SslCertMode::Allow,
                "require" => SslCertMode::Require,
                _ => {
                    return Err(bad(
                        "sslcertmode",
                        &v,
                        from,
                        "expected disable, allow or require",
                    ))
                }
            },
        };
        let version = |key: &str| -> Result<Option<TlsVersion>, ConnInfoError> {
            match get(key) {
                None => Ok(None),
                Some((v, from)) => TlsVersion::parse(&v).map(Some).ok_or_else(|| {
                    bad(key, &v, from, "expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3")
                }),
            }
        };
        let min_version = version("ssl_min_protocol_version")?;
        let max_version = version("ssl_max_protocol_version")?;
        if let Some(max) = max_version {
            if max < TlsVersion::V1_2 {
                return Err(ConnInfoError::Refused {
                    key: "ssl_max_protocol_version".into(),
                    why: format!(
                        "{} is below TLSv1.2, the oldest TLS this tool speaks",
                        max.as_str()
                    ),
                });
            }
            if min_version.is_some_and(|min| min > max) {
                return Err(ConnInfoError::Refused {
                    key: "ssl_min_protocol_version".into(),
                    why: "it is above ssl_max_protocol_version".into(),
                });
            }
        }
        let client_tls = ClientTls {
            cert_given: cert_given.is_some(),
            cert: cert_given
                .map(|(v, _)| PathBuf::from(v))
                .or_else(|| pgdir.as_ref().map(|d| d.join("postgresql.crt"))),
            key: get("sslkey")
                .map(|(v, _)| PathBuf::from(v))
                .or_else(|| pgdir.as_ref().map(|d| d.join("postgresql.key"))),
            key_password: given
                .iter()
                .chain(from_service.iter())
                .find(|(k, _)| k == "sslpassword")
                .map(|(_, v)| v.clone()),
            crl_given: crl_given.is_some(),
            crl: crl_given
                .map(|(v, _)| PathBuf::from(v))
                .or_else(|| pgdir.as_ref().map(|d| d.join("root.crl"))),
            crl_dir: get("sslcrldir").map(|(v, _)| PathBuf::from(v)),
            cert_mode,
            min_version,
            max_version,
        };
        let channel_binding = match get("channel_binding") {
            None => None,
            Some((v, from)) => match v.as_str() {
                "disable" | "prefer" | "require" => Some(v),
                _ => {
                    return Err(bad(
                        "channel_binding",
                        &v,
                        from,
                        "expected disable, prefer or require",
                    ))
                }
            },
        };
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
        let tsa = get("target_session_attrs");
        let target_session_attrs = match &tsa {
            None => TargetSessionAttrs::Any,
            Some((v, from)) => TargetSessionAttrs::parse(v).ok_or_else(|| {
                bad(
                    "target_session_attrs",
                    v,
                    *from,
                    "expected any, read-write, read-only, primary, standby or prefer-standby",
                )
            })?,
        };
        let load_balance_hosts = match get("load_balance_hosts") {
            None => false,
            Some((v, from)) => match v.as_str() {
                "disable" => false,
                "random" => true,
                _ => {
                    return Err(bad(
                        "load_balance_hosts",
                        &v,
                        from,
                        "expected disable or random",
                    ))
                }
            },
        };

        let given_password = match given
            .iter()
            .chain(from_service.iter())
            .find(|(k, _)| k == "password")
        {
            Some((_, v)) if !v.is_empty() => Some((v.clone(), PasswordSource::ConnInfo)),
            _ => get("password").map(|(v, _)| (v, PasswordSource::Env)),
        };
        let passfile = get("passfile")
            .map(|(v, _)| PathBuf::from(v))
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));

        let first = hosts[0].clone();
        let mut p = ConnParams {
            host: first.host.clone(),
            hostaddr: first.hostaddr,
            port: first.port,
            hosts,
            user,
            dbname,
            password: None,
            password_source: PasswordSource::None,
            given_password,
            passfile,
            sslmode,
            sslrootcert,
            default_sslrootcert,
            client_tls,
            channel_binding,
            connect_timeout,
            options,
            target_session_attrs,
            target_session_attrs_given: tsa.is_some(),
            load_balance_hosts,
            service,
            warnings,
        };
        p.find_password();
        Ok(p)
    }

    /// Sets the password for the current (first) host: given, else from the password file.
    pub(super) fn find_password(&mut self) {
        let (pw, src) = match &self.given_password {
            Some((v, s)) => (Some(v.clone()), s.clone()),
            None => {
                let host_key = passfile_host(&self.host);
                match self.passfile.clone().and_then(|f| {
                    lookup_passfile(
                        &f,
                        &host_key,
                        self.port,
                        &self.dbname,
                        &self.user,
                        &mut self.warnings,
                    )
                    .map(|pw| (pw, f))
                }) {
                    Some((pw, f)) => (Some(pw), PasswordSource::Passfile(f)),
                    None => (None, PasswordSource::None),
                }
            }
        };
        self.password = pw;
        self.password_source = src;
    }
}
