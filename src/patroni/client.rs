//! A small HTTP client for Patroni's REST API: timeouts, a bounded body, rustls.

use std::time::Duration;

use super::model::{one_line, PatroniError};

/// The largest answer read from Patroni (a /cluster of a few hundred members is far smaller).
const MAX_BODY: u64 = 4 * 1024 * 1024;

/// HTTP timeouts for every request to Patroni.
#[derive(Clone, Copy, Debug)]
pub struct HttpOptions {
    /// Time allowed to open the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, connection included.
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A blocking HTTP client for Patroni's REST API with connect and total timeouts.
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// A client whose every request is bounded by `opts`.
    pub fn new(opts: HttpOptions) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(opts.connect_timeout.min(opts.timeout)))
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .user_agent(format!("failover-verify/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { agent }
    }

    /// `GET url`, expecting 200 and a JSON body; `expected` names what for error messages.
    pub fn get_json(
        &self,
        url: &str,
        expected: &'static str,
    ) -> Result<serde_json::Value, PatroniError> {
        let unreachable = |reason: String| PatroniError::Unreachable {
            url: url.to_string(),
            reason,
            expected,
        };
        let mut resp = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| unreachable(http_reason(&e)))?;
        let status = resp.status().as_u16();
        let mime = resp.body().mime_type().map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| unreachable(http_reason(&e)))?;
        if status != 200 {
            let snippet = if body.trim_start().starts_with('<') {
                "an HTML page".to_string()
            } else {
                one_line(&body, 80)
            };
            return Err(PatroniError::Status {
                url: url.to_string(),
                status,
                body: if snippet.is_empty() {
                    String::new()
                } else {
                    format!(" ({snippet})")
                },
                expected,
            });
        }
        serde_json::from_str(&body).map_err(|_| PatroniError::NotPatroni {
            url: url.to_string(),
            reason: match mime {
                Some(m) if m != "application/json" => format!("answered {m}, not JSON"),
                _ => "the body is not JSON".into(),
            },
            expected,
        })
    }
}

/// A ureq error as a short reason: `connection refused`, `timed out`, ...
fn http_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset".into(),
            std::io::ErrorKind::TimedOut => "timed out".into(),
            _ => io.to_string(),
        },
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::BodyExceedsLimit(n) => format!("answer larger than {n} bytes"),
        other => other.to_string(),
    }
}

/// The base of a Patroni REST URL: scheme and authority, with a trailing `/`, `/patroni` or
/// `/cluster` removed; a bare `host:port` gets `http://`.
pub fn base_url(url: &str) -> Result<String, PatroniError> {
    let url = url.trim();
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let lower = with_scheme.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err(PatroniError::BadUrl {
            url: url.to_string(),
        });
    }
    let mut base = with_scheme.trim_end_matches('/').to_string();
    for suffix in ["/patroni", "/cluster", "/history"] {
        if let Some(b) = base.strip_suffix(suffix) {
            base = b.trim_end_matches('/').to_string();
        }
    }
    Ok(base)
}
