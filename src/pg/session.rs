//! Read-only SQL sessions on tokio-postgres, with timeouts on every wait.
//!
//! Every session starts read-only: the startup packet carries
//! `options=-c default_transaction_read_only=on -c statement_timeout=… -c lock_timeout=…
//! -c idle_in_transaction_session_timeout=…` (after the user's own `options`, so ours win),
//! and `application_name=failover-verify`. The whole connect (TCP, TLS, authentication,
//! startup) is bounded by one timeout, and every query by the statement timeout plus a grace.

use std::error::Error as StdError;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, Client, NoTls, Row, SimpleQueryMessage, ToStatement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conninfo::{ConnParams, Host, PasswordSource};
use super::error::{scrub, ErrorKind, PgError, ServerError};
use super::tls::{self, TlsPlan};

/// The application_name every connection of this tool uses (visible in pg_stat_activity).
pub const APPLICATION_NAME: &str = "failover-verify";

/// Extra time the client waits beyond `statement_timeout` before giving up on a query.
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// How long to wait for a cancel request to be delivered.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Timeouts for a SQL session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Bound on TCP + TLS + authentication + startup (a conninfo `connect_timeout` overrides it).
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout`; the client waits this plus a few seconds.
    pub statement_timeout: Duration,
    /// Server-side `lock_timeout`, so we never queue behind a writer's lock for long.
    pub lock_timeout: Duration,
    /// Server-side `idle_in_transaction_session_timeout`, so a stuck client frees its snapshot.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(5),
            idle_in_transaction_timeout: Duration::from_secs(300),
        }
    }
}

impl SessionOptions {
    /// The `options` startup parameter: the user's own flags, then ours (later `-c` wins).
    pub fn startup_options(&self, user_options: Option<&str>) -> String {
        let ours = format!(
            "-c default_transaction_read_only=on -c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            self.statement_timeout.as_millis(),
            self.lock_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        );
        match user_options {
            Some(u) if !u.trim().is_empty() => format!("{} {ours}", u.trim()),
            _ => ours,
        }
    }

    /// How long the client waits for one call before cancelling it.
    pub fn call_timeout(&self) -> Duration {
        if self.statement_timeout.is_zero() {
            // statement_timeout=0 disables the server limit; still never wait forever.
            Duration::from_secs(3600)
        } else {
            self.statement_timeout + CLIENT_GRACE
        }
    }
}

#[derive(Clone)]
enum CancelTls {
    None,
    Rustls(MakeRustlsConnect),
}

/// A connected, read-only SQL session to one server.
pub struct Session {
    client: Client,
    /// Keeps this session's cancel key in [`cancel_all`]'s registry while the session lives.
    _registered: Registered,
    connection: JoinHandle<()>,
    cancel_token: CancelToken,
    cancel_tls: CancelTls,
    target: String,
    user: String,
    password: Option<String>,
    call_timeout: Duration,
    /// When set, every call pauses afterwards as this server's time budget asks.
    pacer: Option<std::sync::Arc<super::pace::Pacer>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Connects to the first (only) host of `params`, with libpq's `sslmode=allow`: plain text
/// first, TLS when the server refuses it.
pub(crate) async fn connect_single(
    params: &ConnParams,
    opts: &SessionOptions,
) -> Result<Session, PgError> {
    let target = params.target();
    let plan = tls::plan(params).map_err(|e| with_target(e, &target))?;
    if params.sslmode() == super::conninfo::SslMode::Allow {
        if let TlsPlan::Optional(cfg, v) = &plan {
            return match connect_with(params, opts, &TlsPlan::Disabled).await {
                Err(e) if e.sqlstate().is_some() => {
                    connect_with(params, opts, &TlsPlan::Required(cfg.clone(), *v)).await
                }
                other => other,
            };
        }
    }
    connect_with(params, opts, &plan).await
}

async fn connect_with(
    params: &ConnParams,
    opts: &SessionOptions,
    plan: &TlsPlan,
) -> Result<Session, PgError> {
    let target = params.target();
    let mut cfg = tokio_postgres::Config::new();
    match params.host() {
        Host::Tcp(h) => cfg.host(h),
        Host::Unix(p) => cfg.host_path(p),
    };
    if let Some(a) = params.hostaddr() {
        cfg.hostaddr(a);
    }
    let timeout = params.connect_timeout().unwrap_or(opts.connect_timeout);
    cfg.port(params.port())
        .user(params.user())
        .dbname(params.dbname())
        .application_name(APPLICATION_NAME)
        .options(opts.startup_options(params.options()))
        .connect_timeout(timeout)
        .keepalives(true)
        .ssl_mode(match plan {
            TlsPlan::Disabled => tokio_postgres::config::SslMode::Disable,
            TlsPlan::Optional(..) => tokio_postgres::config::SslMode::Prefer,
            TlsPlan::Required(..) => tokio_postgres::config::SslMode::Require,
        });
    if let Some(pw) = params.password() {
        cfg.password(pw);
    }
    if let Some(cb) = params.channel_binding() {
        cfg.channel_binding(match cb {
            "disable" => tokio_postgres::config::ChannelBinding::Disable,
            "require" => tokio_postgres::config::ChannelBinding::Require,
            _ => tokio_postgres::config::ChannelBinding::Prefer,
        });
    }

    let attempt = async {
        match plan.config() {
            Some(c) => {
                let tls = MakeRustlsConnect::new((**c).clone());
                let (client, conn) = cfg.connect(tls.clone()).await?;
                let task = tokio::spawn(async move {
                    // Errors surface to the caller through the client as "connection closed".
                    let _ = conn.await;
                });
                Ok::<_, tokio_postgres::Error>((client, task, CancelTls::Rustls(tls)))
            }
            None => {
                let (client, conn) = cfg.connect(NoTls).await?;
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok((client, task, CancelTls::None))
            }
        }
    };
    let (client, connection, cancel_tls) = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => {
            return Err(PgError::timeout(
                &target,
                "connecting (TCP, TLS, authentication and startup; raise connect_timeout if the server is just slow)",
                timeout,
            ))
        }
        Ok(Err(e)) => return Err(map_connect_error(params, &target, e)),
        Ok(Ok(v)) => v,
    };
    let cancel_token = client.cancel_token();
    let _registered = Registered::new(&cancel_token, &cancel_tls);
    Ok(Session {
        client,
        _registered,
        connection,
        cancel_token,
        cancel_tls,
        target,
        user: params.user().to_string(),
        password: params.password().map(str::to_string),
        call_timeout: opts.call_timeout(),
        pacer: None,
    })
}

impl Session {
    /// The server label (`host:port` or socket path) used in messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// This session with every later call paced by `pacer` (shared with the other sessions
    /// and streams to the same server); `None` leaves it unpaced.
    pub fn paced(mut self, pacer: Option<std::sync::Arc<super::pace::Pacer>>) -> Self {
        self.pacer = pacer;
        self
    }

    /// The underlying client, for calls this wrapper does not cover (no timeout is applied).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs a query and returns all rows, bounded by the call timeout.
    pub async fn query<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError>
    where
        T: ?Sized + ToStatement,
    {
        self.bounded(self.client.query(statement, params)).await
    }

    /// Runs a query that must return exactly one row.
    pub async fn query_one<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, PgError>
    where
        T: ?Sized + ToStatement,
    {
        self.bounded(self.client.query_one(statement, params)).await
    }

    /// Runs a query that returns zero or one row.
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, PgError>
    where
        T: ?Sized + ToStatement,
    {
        self.bounded(self.client.query_opt(statement, params)).await
    }

    /// Runs SQL through the simple-query protocol (text results; use for SHOW and SET).
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, PgError> {
        self.bounded(self.client.simple_query(sql)).await
    }

    /// Runs a simple query and returns the first column of the first row as text.
    pub async fn simple_value(&self, sql: &str) -> Result<Option<String>, PgError> {
        let msgs = self.simple_query(sql).await?;
        Ok(msgs
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    }

    /// Asks the server to cancel the statement this session is running (best effort, bounded).
    pub async fn cancel(&self) -> Result<(), PgError> {
        let fut = async {
            match &self.cancel_tls {
                CancelTls::None => self.cancel_token.cancel_query(NoTls).await,
                CancelTls::Rustls(t) => self.cancel_token.cancel_query(t.clone()).await,
            }
        };
        match tokio::time::timeout(CANCEL_TIMEOUT, fut).await {
            Err(_) => Err(PgError::timeout(
                &self.target,
                "sending a cancel request",
                CANCEL_TIMEOUT,
            )),
            Ok(Err(e)) => Err(map_error(
                &self.target,
                &self.user,
                self.password.as_deref(),
                e,
            )),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Closes the session and waits (bounded) for the connection to shut down.
    pub async fn close(self) {
        let Session {
            client, connection, ..
        } = self;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
    }

    async fn bounded<F, R>(&self, fut: F) -> Result<R, PgError>
    where
        F: std::future::Future<Output = Result<R, tokio_postgres::Error>>,
    {
        let started = std::time::Instant::now();
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(r) => {
                if let Some(p) = &self.pacer {
                    p.after(started.elapsed()).await;
                }
                r.map_err(|e| map_error(&self.target, &self.user, self.password.as_deref(), e))
            }
            Err(_) => {
                // Free the server: the statement may still be running.
                let _ = self.cancel().await;
                Err(PgError::timeout(
                    &self.target,
                    "waiting for a query result (client-side limit: statement_timeout plus grace)",
                    self.call_timeout,
                ))
            }
        }
    }
}

/// Every open session's cancel key, so an interrupt can stop the server-side queries: dropping
/// a tokio-postgres future (as Ctrl-C does) leaves the statement running on the server.
static OPEN_SESSIONS: std::sync::Mutex<Vec<(u64, CancelToken, CancelTls)>> =
    std::sync::Mutex::new(Vec::new());

/// One entry of [`OPEN_SESSIONS`], removed when the session is dropped.
struct Registered(u64);

impl Registered {
    fn new(token: &CancelToken, tls: &CancelTls) -> Registered {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut v) = OPEN_SESSIONS.lock() {
            v.push((id, token.clone(), tls.clone()));
        }
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut v) = OPEN_SESSIONS.lock() {
            v.retain(|(id, ..)| *id != self.0);
        }
    }
}

/// Asks every server to cancel whatever each open session is running, all at once, each
/// request bounded by a few seconds. For interrupts (Ctrl-C): a query whose client went away
/// keeps running on the server until it next writes to the socket, maybe for minutes.
/// Returns how many cancel requests were delivered.
pub async fn cancel_all() -> usize {
    let open: Vec<_> = match OPEN_SESSIONS.lock() {
        Ok(v) => v
            .iter()
            .map(|(_, t, tls)| (t.clone(), tls.clone()))
            .collect(),
        Err(_) => return 0,
    };
    let sends = open.into_iter().map(|(token, tls)| async move {
        let send = async {
            match tls {
                CancelTls::None => token.cancel_query(NoTls).await,
                CancelTls::Rustls(t) => token.cancel_query(t).await,
            }
        };
        matches!(tokio::time::timeout(CANCEL_TIMEOUT, send).await, Ok(Ok(())))
    });
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count()
}

fn with_target(e: PgError, target: &str) -> PgError {
    match e.into_kind() {
        ErrorKind::Tls { message, hint, .. } => PgError::tls(target, message, hint),
        other => PgError::new(other),
    }
}

/// The error and its sources joined into one line.
fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn server_error(db: &tokio_postgres::error::DbError, secret: Option<&str>) -> ServerError {
    ServerError {
        sqlstate: db.code().code().to_string(),
        message: scrub(db.message(), secret),
        detail: db.detail().map(|d| scrub(d, secret)),
        hint: db.hint().map(|h| scrub(h, secret)),
    }
}

fn map_connect_error(params: &ConnParams, target: &str, e: tokio_postgres::Error) -> PgError {
    let secret = params.password();
    if let Some(db) = e.as_db_error() {
        let err = PgError::from_server(target, params.user(), false, server_error(db, secret));
        return match (err.into_kind(), params.password_source()) {
            (
                ErrorKind::Auth {
                    target,
                    user,
                    message,
                    sqlstate,
                    hint,
                },
                PasswordSource::Passfile(f),
            ) => PgError::new(ErrorKind::Auth {
                target,
                user,
                message: format!("{message} (password taken from {})", f.display()),
                sqlstate,
                hint,
            }),
            (other, _) => PgError::new(other),
        };
    }
    let text = scrub(&chain_text(&e), secret);
    let top = e.to_string();
    if top.starts_with("invalid configuration") && text.contains("password missing") {
        return PgError::no_password(target, params.user());
    }
    if top.starts_with("error performing TLS handshake") {
        return tls::explain_handshake_error(target, &params.tls_server_name(), &e).unwrap_or_else(
            || {
                let hint = text.contains("server does not support TLS").then(|| {
                    "enable ssl on the server, or use sslmode=prefer or disable".to_string()
                });
                PgError::tls(target, text.clone(), hint)
            },
        );
    }
    if top.starts_with("error connecting to server") {
        if let Some(io) = find_io(&e) {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return PgError::timeout(
                    target,
                    "opening the TCP connection",
                    params.connect_timeout().unwrap_or_default(),
                );
            }
            return PgError::connect(target, scrub(&io.to_string(), secret));
        }
        return PgError::connect(target, text);
    }
    if top.starts_with("authentication error") {
        return PgError::new(ErrorKind::Auth {
            target: target.to_string(),
            user: params.user().to_string(),
            message: text,
            sqlstate: None,
            hint: "the server's authentication exchange failed; check the password and the server's pg_hba.conf method".into(),
        });
    }
    map_error(target, params.user(), secret, e)
}

fn find_io<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = x.source();
    }
    None
}

/// Maps an error from an established session.
fn map_error(target: &str, user: &str, secret: Option<&str>, e: tokio_postgres::Error) -> PgError {
    if let Some(db) = e.as_db_error() {
        return PgError::from_server(target, user, false, server_error(db, secret));
    }
    let text = scrub(&chain_text(&e), secret);
    if e.is_closed() {
        return PgError::connect(target, format!("the connection was closed: {text}"));
    }
    if find_io(&e).is_some() {
        return PgError::connect(target, text);
    }
    PgError::protocol(target, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_options_put_ours_last() {
        let o = SessionOptions::default();
        let s = o.startup_options(Some(
            "-c search_path=x -c default_transaction_read_only=off",
        ));
        assert!(s.starts_with("-c search_path=x"));
        assert!(s.ends_with("-c idle_in_transaction_session_timeout=300000"));
        let last_ro = s.rfind("default_transaction_read_only=").unwrap();
        assert_eq!(
            &s[last_ro..last_ro + 32],
            "default_transaction_read_only=on"
        );
        assert!(s.contains("-c statement_timeout=60000 -c lock_timeout=5000"));
        assert_eq!(o.startup_options(Some("  ")), o.startup_options(None));
        assert_eq!(o.call_timeout(), Duration::from_secs(65));
    }
}
