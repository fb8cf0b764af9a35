//! The two syntaxes of a connection string, keyword=value and URL, read into keyword/value
//! pairs as libpq reads them.

use super::conn_options::ConnInfoError;

/// Splits a conninfo string or URL into (key, value) pairs.
pub(super) fn split_input(input: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    for prefix in ["postgresql://", "postgres://"] {
        if let Some(rest) = input.strip_prefix(prefix) {
            return parse_url(rest);
        }
    }
    parse_kv(input)
}

/// libpq's `conninfo_parse`: `key = value` pairs, values optionally single-quoted.
pub(super) fn parse_kv(input: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
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
pub(super) fn pct_decode(s: &str) -> Result<String, ConnInfoError> {
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
pub(super) fn parse_url(rest: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
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
    // Several hosts are comma-separated, each with its own optional port (libpq).
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for one in hostspec.split(',') {
        let (host, port) = url_host_port(one)?;
        hosts.push(host);
        ports.push(match port {
            Some(p) => pct_decode(p)?,
            None => String::new(),
        });
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        out.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.push(("port".into(), ports.join(",")));
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

/// One `host[:port]` or `[v6addr][:port]` of a URL's host list.
pub(super) fn url_host_port(hostspec: &str) -> Result<(String, Option<&str>), ConnInfoError> {
    Ok(if let Some(h) = hostspec.strip_prefix('[') {
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
    })
}
