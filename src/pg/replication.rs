//! A small physical-replication client on `postgres-protocol`.
//!
//! tokio-postgres 0.7 cannot send `replication=true` at startup, so this module speaks the
//! protocol itself: TCP or Unix socket, optional SSLRequest + TLS (see [`super::tls`]),
//! StartupMessage, trust / cleartext / MD5 / SCRAM-SHA-256 authentication, then the
//! replication commands `IDENTIFY_SYSTEM`, `TIMELINE_HISTORY` and
//! `START_REPLICATION PHYSICAL … TIMELINE …` (no slot). Every wait is bounded.
//!
//! It only reads. Standby status updates report the received position as `write` and an
//! invalid (0/0) `flush` and `apply`: a walsender whose standby reports no valid flush
//! position is never chosen as a synchronous standby, so this client can neither release
//! nor hold up commits on the server it reads from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conninfo::ConnParams;
use super::error::{scrub, ErrorKind, PgError, ServerError};
use super::session::APPLICATION_NAME;
use crate::lsn::{Lsn, SystemId, TimelineId};

/// Largest backend message we accept (WAL chunks are at most 128 KB + header).
const MAX_MESSAGE: usize = 1 << 30;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Timeouts for a replication connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationOptions {
    /// Bound on TCP + TLS + authentication + startup (a conninfo `connect_timeout` overrides it).
    pub connect_timeout: Duration,
    /// Bound on one command (IDENTIFY_SYSTEM, TIMELINE_HISTORY, starting or stopping a stream).
    pub command_timeout: Duration,
    /// Longest silence tolerated while streaming (the server sends keepalives when idle).
    pub idle_timeout: Duration,
}

impl Default for ReplicationOptions {
    fn default() -> Self {
        ReplicationOptions {
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The answer to `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifySystem {
    /// The cluster's system identifier (equal on every node of one cluster).
    pub system_id: SystemId,
    /// The server's current timeline (the insert timeline on a primary).
    pub timeline: TimelineId,
    /// The current WAL flush position (or replay position on a standby).
    pub xlogpos: Lsn,
    /// The database, for database-specific connections; `None` for physical replication.
    pub dbname: Option<String>,
}

/// One XLogData message: WAL bytes starting at `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalChunk {
    /// The WAL position of `data[0]`.
    pub start: Lsn,
    /// The raw WAL bytes, exactly as they are in the server's segment files.
    pub data: Bytes,
}

impl WalChunk {
    /// The position just past the last byte of this chunk.
    pub fn end(&self) -> Lsn {
        Lsn(self.start.0 + self.data.len() as u64)
    }
}

/// How the server ended a stream of a historic timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEnd {
    /// The timeline that follows the streamed one, when the server said.
    pub next_timeline: Option<TimelineId>,
    /// Where the next timeline starts (the switchpoint), when the server said.
    pub next_start: Option<Lsn>,
}

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One result set of a simple query, values as raw bytes (text format).
#[derive(Debug, Default)]
struct ResultSet {
    columns: Vec<String>,
    rows: Vec<Vec<Option<Bytes>>>,
}

/// A replication connection (`replication=true`) to one server.
pub struct ReplicationClient {
    pub(super) io: Box<dyn Io>,
    pub(super) rbuf: BytesMut,
    pub(super) target: String,
    pub(super) user: String,
    pub(super) password: Option<String>,
    pub(super) opts: ReplicationOptions,
    pub(super) server_params: Vec<(String, String)>,
    pub(super) notices: Vec<String>,
    pub(super) stream_open: bool,
    pub(super) broken: bool,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient")
            .field("target", &self.target)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn cstr(buf: &mut Bytes) -> Option<String> {
    let end = buf.iter().position(|&b| b == 0)?;
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end + 1);
    Some(s)
}

fn parse_error_fields(mut body: Bytes) -> (ServerError, String) {
    let mut e = ServerError::default();
    let mut severity = String::new();
    while body.has_remaining() {
        let code = body.get_u8();
        if code == 0 {
            break;
        }
        let Some(v) = cstr(&mut body) else { break };
        match code {
            b'V' => severity = v,
            b'S' if severity.is_empty() => severity = v,
            b'C' => e.sqlstate = v,
            b'M' => e.message = v,
            b'D' => e.detail = Some(v),
            b'H' => e.hint = Some(v),
            _ => {}
        }
    }
    (e, severity)
}

impl ReplicationClient {
    /// The server label (`host:port` or socket path) used in messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A ParameterStatus value the server reported at startup (e.g. `server_version`).
    pub fn server_parameter(&self, name: &str) -> Option<&str> {
        self.server_params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// NoticeResponse messages received so far (text), for the caller to show.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    async fn write(&mut self, buf: &[u8]) -> Result<(), PgError> {
        let t = self.opts.command_timeout;
        let res = tokio::time::timeout(t, async {
            self.io.write_all(buf).await?;
            self.io.flush().await
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(PgError::connect(&self.target, format!("write failed: {e}")))
            }
            Err(_) => {
                self.broken = true;
                Err(PgError::timeout(&self.target, "sending to the server", t))
            }
        }
    }

    /// Reads one backend message (tag, body), waiting at most `wait`.
    async fn read_message(&mut self, wait: Duration, what: &str) -> Result<(u8, Bytes), PgError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.rbuf.len() >= 5 {
                let tag = self.rbuf[0];
                let len =
                    u32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]])
                        as usize;
                if !(4..=MAX_MESSAGE).contains(&len) {
                    self.broken = true;
                    return Err(PgError::protocol(
                        &self.target,
                        format!(
                            "invalid message length {len} for message type {:?}",
                            tag as char
                        ),
                    ));
                }
                if self.rbuf.len() > len {
                    let mut msg = self.rbuf.split_to(1 + len).freeze();
                    msg.advance(5);
                    return Ok((tag, msg));
                }
                self.rbuf.reserve(1 + len - self.rbuf.len());
            }
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.rbuf)).await {
                Err(_) => {
                    self.broken = true;
                    return Err(PgError::timeout(&self.target, what, wait));
                }
                Ok(Ok(0)) => {
                    self.broken = true;
                    return Err(PgError::connect(
                        &self.target,
                        format!("the server closed the connection unexpectedly while {what}"),
                    ));
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.broken = true;
                    return Err(PgError::connect(
                        &self.target,
                        format!("read failed while {what}: {e}"),
                    ));
                }
            }
        }
    }

    fn server_error(&self, body: Bytes) -> PgError {
        let (mut e, _) = parse_error_fields(body);
        let secret = self.password.as_deref();
        e.message = scrub(&e.message, secret);
        e.detail = e.detail.map(|d| scrub(&d, secret));
        e.hint = e.hint.map(|h| scrub(&h, secret));
        PgError::from_server(&self.target, &self.user, true, e)
    }

    fn note(&mut self, tag: u8, body: Bytes) {
        match tag {
            b'N' => {
                let (e, sev) = parse_error_fields(body);
                if self.notices.len() < 100 {
                    self.notices.push(format!("{sev}: {}", e.message));
                }
            }
            b'S' => {
                let mut b = body;
                if let (Some(k), Some(v)) = (cstr(&mut b), cstr(&mut b)) {
                    self.server_params.push((k, v));
                }
            }
            _ => {}
        }
    }

    pub(super) async fn startup(&mut self, params: &ConnParams) -> Result<(), PgError> {
        let mut buf = BytesMut::new();
        let mut startup: Vec<(&str, &str)> = vec![
            ("user", params.user()),
            ("database", params.dbname()),
            ("replication", "true"),
            ("application_name", APPLICATION_NAME),
        ];
        if let Some(o) = params.options() {
            startup.push(("options", o));
        }
        frontend::startup_message(startup, &mut buf)
            .map_err(|e| PgError::config(format!("cannot encode startup message: {e}")))?;
        self.write(&buf).await?;
        let wait = self.opts.connect_timeout;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, mut body) = self.read_message(wait, "authenticating").await?;
            match tag {
                b'R' => {
                    if body.remaining() < 4 {
                        return Err(PgError::protocol(
                            &self.target,
                            "short authentication message",
                        ));
                    }
                    let code = body.get_i32();
                    let mut out = BytesMut::new();
                    match code {
                        0 => continue,
                        3 => {
                            let pw = self.need_password()?;
                            frontend::password_message(pw.as_bytes(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                        }
                        5 => {
                            if body.remaining() < 4 {
                                return Err(PgError::protocol(&self.target, "short MD5 salt"));
                            }
                            let salt = [body[0], body[1], body[2], body[3]];
                            let pw = self.need_password()?;
                            let hash = md5_hash(self.user.as_bytes(), pw.as_bytes(), salt);
                            frontend::password_message(hash.as_bytes(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                        }
                        10 => {
                            let mut mechs = Vec::new();
                            while let Some(m) = cstr(&mut body) {
                                if m.is_empty() {
                                    break;
                                }
                                mechs.push(m);
                            }
                            if !mechs.iter().any(|m| m == SCRAM_SHA_256) {
                                return Err(self.auth_error(format!(
                                    "the server offers only unsupported SASL mechanisms {mechs:?}"
                                )));
                            }
                            let pw = self.need_password()?;
                            // 'n': we do not do channel binding (allowed even when the server offers -PLUS).
                            let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                            frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                PgError::protocol(&self.target, "SASLContinue without SASL")
                            })?;
                            s.update(&body)
                                .map_err(|e| self.auth_error(format!("SCRAM exchange failed: {e}")))?;
                            frontend::sasl_response(s.message(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                PgError::protocol(&self.target, "SASLFinal without SASL")
                            })?;
                            s.finish(&body).map_err(|e| {
                                self.auth_error(format!("the server's SCRAM signature is invalid: {e}"))
                            })?;
                            continue;
                        }
                        other => {
                            return Err(self.auth_error(format!(
                                "the server asks for authentication method {other} (GSSAPI/SSPI/Kerberos), which is not supported"
                            )))
                        }
                    }
                    self.write(&out).await?;
                }
                b'E' => {
                    self.broken = true;
                    return Err(self.server_error(body));
                }
                b'K' => {}
                b'Z' => return Ok(()),
                b'N' | b'S' => self.note(tag, body),
                other => {
                    return Err(PgError::protocol(
                        &self.target,
                        format!("unexpected message {:?} during startup", other as char),
                    ))
                }
            }
        }
    }

    fn need_password(&self) -> Result<String, PgError> {
        self.password
            .clone()
            .ok_or_else(|| PgError::no_password(&self.target, &self.user))
    }

    fn auth_error(&self, message: String) -> PgError {
        PgError::new(ErrorKind::Auth {
            target: self.target.clone(),
            user: self.user.clone(),
            message,
            sqlstate: None,
            hint: "check the password and the pg_hba.conf method for replication connections"
                .into(),
        })
    }

    fn check_usable(&self) -> Result<(), PgError> {
        if self.stream_open {
            return Err(PgError::protocol(
                &self.target,
                "a WAL stream is still open on this connection; stop it first",
            ));
        }
        if self.broken {
            return Err(PgError::protocol(
                &self.target,
                "this replication connection failed earlier; open a new one",
            ));
        }
        Ok(())
    }

    /// Runs a simple query and collects its result sets up to ReadyForQuery.
    async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>, PgError> {
        self.check_usable()?;
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)
            .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
        self.write(&buf).await?;
        self.collect_results(self.opts.command_timeout, "waiting for a command result")
            .await
    }

    async fn collect_results(
        &mut self,
        wait: Duration,
        what: &str,
    ) -> Result<Vec<ResultSet>, PgError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut sets: Vec<ResultSet> = Vec::new();
        let mut error = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (tag, mut body) = self.read_message(left, what).await?;
            match tag {
                b'T' => {
                    let n = if body.remaining() >= 2 {
                        body.get_i16()
                    } else {
                        0
                    };
                    let mut cols = Vec::new();
                    for _ in 0..n.max(0) {
                        let name = cstr(&mut body).unwrap_or_default();
                        if body.remaining() >= 18 {
                            body.advance(18);
                        }
                        cols.push(name);
                    }
                    sets.push(ResultSet {
                        columns: cols,
                        rows: Vec::new(),
                    });
                }
                b'D' => {
                    let n = if body.remaining() >= 2 {
                        body.get_i16()
                    } else {
                        0
                    };
                    let mut row = Vec::new();
                    for _ in 0..n.max(0) {
                        if body.remaining() < 4 {
                            return Err(PgError::protocol(&self.target, "truncated DataRow"));
                        }
                        let len = body.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else {
                            let len = len as usize;
                            if body.remaining() < len {
                                return Err(PgError::protocol(&self.target, "truncated DataRow"));
                            }
                            row.push(Some(body.split_to(len)));
                        }
                    }
                    match sets.last_mut() {
                        Some(s) => s.rows.push(row),
                        None => {
                            return Err(PgError::protocol(
                                &self.target,
                                "DataRow without RowDescription",
                            ))
                        }
                    }
                }
                b'C' | b'I' => {}
                b'E' => error = Some(self.server_error(body)),
                b'N' | b'S' => self.note(tag, body),
                b'Z' => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(sets),
                    }
                }
                b'W' | b'H' | b'G' => {
                    self.broken = true;
                    return Err(PgError::protocol(
                        &self.target,
                        "unexpected COPY from a command",
                    ));
                }
                other => {
                    return Err(PgError::protocol(
                        &self.target,
                        format!("unexpected message {:?}", other as char),
                    ))
                }
            }
        }
    }

    fn text_cell<'a>(
        &self,
        set: &'a ResultSet,
        row: usize,
        col: usize,
    ) -> Result<Option<&'a str>, PgError> {
        let cell = set.rows.get(row).and_then(|r| r.get(col)).ok_or_else(|| {
            PgError::protocol(&self.target, format!("missing column {col} in result"))
        })?;
        match cell {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(Some)
                .map_err(|_| PgError::protocol(&self.target, format!("column {col} is not UTF-8"))),
        }
    }

    /// `IDENTIFY_SYSTEM`: system id, current timeline, WAL position and database.
    pub async fn identify_system(&mut self) -> Result<IdentifySystem, PgError> {
        let sets = self.simple_query("IDENTIFY_SYSTEM").await?;
        let set = sets
            .first()
            .ok_or_else(|| PgError::protocol(&self.target, "IDENTIFY_SYSTEM returned no result"))?;
        let bad = |what: &str, v: &str| {
            PgError::protocol(
                &self.target,
                format!("IDENTIFY_SYSTEM: invalid {what} {v:?}"),
            )
        };
        let sysid = self.text_cell(set, 0, 0)?.unwrap_or_default();
        let system_id = SystemId(sysid.parse().map_err(|_| bad("systemid", sysid))?);
        let tli = self.text_cell(set, 0, 1)?.unwrap_or_default();
        let timeline = TimelineId(tli.parse().map_err(|_| bad("timeline", tli))?);
        let pos = self.text_cell(set, 0, 2)?.unwrap_or_default();
        let xlogpos: Lsn = pos.parse().map_err(|_| bad("xlogpos", pos))?;
        let dbname = if set.columns.len() > 3 {
            self.text_cell(set, 0, 3)?.map(str::to_string)
        } else {
            None
        };
        Ok(IdentifySystem {
            system_id,
            timeline,
            xlogpos,
            dbname,
        })
    }

    /// `TIMELINE_HISTORY n`: the history file's name and raw bytes.
    ///
    /// Timeline 1 has no history file: that is a [`ErrorKind::NoTimelineHistory`] error.
    pub async fn timeline_history(
        &mut self,
        timeline: TimelineId,
    ) -> Result<(String, Vec<u8>), PgError> {
        let sets = match self
            .simple_query(&format!("TIMELINE_HISTORY {}", timeline.0))
            .await
        {
            Ok(s) => s,
            Err(e) if e.sqlstate() == Some("58P01") => {
                let message = match e.kind() {
                    ErrorKind::Query { message, .. } => message.clone(),
                    _ => e.to_string(),
                };
                return Err(PgError::new(ErrorKind::NoTimelineHistory {
                    target: self.target.clone(),
                    timeline: timeline.0,
                    message,
                }));
            }
            Err(e) => return Err(e),
        };
        let set = sets.first().ok_or_else(|| {
            PgError::protocol(&self.target, "TIMELINE_HISTORY returned no result")
        })?;
        let name = self.text_cell(set, 0, 0)?.unwrap_or_default().to_string();
        let content = set
            .rows
            .first()
            .and_then(|r| r.get(1))
            .cloned()
            .flatten()
            .map(|b| b.to_vec())
            .unwrap_or_default();
        Ok((name, content))
    }

    /// `START_REPLICATION PHYSICAL start TIMELINE tli` (no slot): a stream of WAL bytes.
    pub async fn start_physical(
        &mut self,
        start: Lsn,
        timeline: TimelineId,
    ) -> Result<WalStream<'_>, PgError> {
        self.check_usable()?;
        let mut buf = BytesMut::new();
        let sql = format!("START_REPLICATION PHYSICAL {start} TIMELINE {}", timeline.0);
        frontend::query(&sql, &mut buf)
            .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
        self.write(&buf).await?;
        let wait = self.opts.command_timeout;
        let deadline = tokio::time::Instant::now() + wait;
        let mut error = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (tag, body) = self.read_message(left, "starting replication").await?;
            match tag {
                b'W' => break,
                b'E' => error = Some(self.server_error(body)),
                b'N' | b'S' => self.note(tag, body),
                b'Z' => {
                    return Err(error.unwrap_or_else(|| {
                        PgError::protocol(&self.target, "START_REPLICATION ended without streaming")
                    }))
                }
                b'T' | b'D' | b'C' => {}
                other => {
                    return Err(PgError::protocol(
                        &self.target,
                        format!(
                            "unexpected message {:?} after START_REPLICATION",
                            other as char
                        ),
                    ))
                }
            }
        }
        self.stream_open = true;
        let mut stream = WalStream {
            client: self,
            received: start,
            server_end: Lsn::INVALID,
            done: false,
            end: None,
        };
        // Report right away so pg_stat_replication shows us (flush 0/0: never a sync standby).
        stream.send_status().await?;
        Ok(stream)
    }

    /// Sends Terminate and closes the connection.
    pub async fn close(mut self) {
        let mut buf = BytesMut::new();
        frontend::terminate(&mut buf);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.io.write_all(&buf).await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

/// A running `START_REPLICATION` stream; borrows the client until stopped or ended.
pub struct WalStream<'a> {
    client: &'a mut ReplicationClient,
    received: Lsn,
    server_end: Lsn,
    done: bool,
    end: Option<TimelineEnd>,
}

impl std::fmt::Debug for WalStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalStream")
            .field("target", &self.client.target)
            .field("received", &self.received)
            .field("done", &self.done)
            .finish()
    }
}

impl WalStream<'_> {
    /// The position just past the last byte received.
    pub fn received_up_to(&self) -> Lsn {
        self.received
    }

    /// The server's WAL end as of its last message (XLogData or keepalive).
    pub fn server_wal_end(&self) -> Lsn {
        self.server_end
    }

    /// How the server ended the timeline, once [`WalStream::next_chunk`] returned `None`.
    pub fn timeline_end(&self) -> Option<&TimelineEnd> {
        self.end.as_ref()
    }

    /// The next chunk of WAL, or `None` when the server ended the (historic) timeline.
    ///
    /// Answers keepalives that ask for a reply. Fails with a Timeout after the idle timeout.
    pub async fn next_chunk(&mut self) -> Result<Option<WalChunk>, PgError> {
        if self.done {
            return Ok(None);
        }
        let idle = self.client.opts.idle_timeout;
        loop {
            let (tag, mut body) = self
                .client
                .read_message(idle, "waiting for WAL (idle timeout)")
                .await?;
            match tag {
                b'd' => {
                    if !body.has_remaining() {
                        continue;
                    }
                    match body.get_u8() {
                        b'w' => {
                            if body.remaining() < 24 {
                                return Err(PgError::protocol(
                                    &self.client.target,
                                    "short XLogData message",
                                ));
                            }
                            let start = Lsn(body.get_u64());
                            let wal_end = Lsn(body.get_u64());
                            let _send_time = body.get_i64();
                            self.server_end = wal_end;
                            let chunk = WalChunk { start, data: body };
                            self.received = self.received.max(chunk.end());
                            return Ok(Some(chunk));
                        }
                        b'k' => {
                            if body.remaining() < 17 {
                                return Err(PgError::protocol(
                                    &self.client.target,
                                    "short keepalive message",
                                ));
                            }
                            self.server_end = Lsn(body.get_u64());
                            let _send_time = body.get_i64();
                            if body.get_u8() != 0 {
                                self.send_status().await?;
                            }
                        }
                        other => {
                            return Err(PgError::protocol(
                                &self.client.target,
                                format!("unexpected CopyData message type {:?}", other as char),
                            ))
                        }
                    }
                }
                b'c' => {
                    // End of a historic timeline: answer CopyDone, then read the next-timeline
                    // result set, CommandComplete and ReadyForQuery.
                    let mut buf = BytesMut::new();
                    frontend::copy_done(&mut buf);
                    self.client.write(&buf).await?;
                    self.client.stream_open = false;
                    self.done = true;
                    let wait = self.client.opts.command_timeout;
                    let sets = self
                        .client
                        .collect_results(wait, "finishing the WAL stream")
                        .await?;
                    let mut end = TimelineEnd {
                        next_timeline: None,
                        next_start: None,
                    };
                    if let Some(set) = sets.first() {
                        if let Ok(Some(t)) = self.client.text_cell(set, 0, 0) {
                            end.next_timeline = t.parse().ok().map(TimelineId);
                        }
                        if let Ok(Some(p)) = self.client.text_cell(set, 0, 1) {
                            end.next_start = p.parse().ok();
                        }
                    }
                    self.end = Some(end);
                    return Ok(None);
                }
                b'E' => {
                    self.client.broken = true;
                    self.client.stream_open = false;
                    self.done = true;
                    return Err(self.client.server_error(body));
                }
                b'N' | b'S' => self.client.note(tag, body),
                other => {
                    self.client.broken = true;
                    return Err(PgError::protocol(
                        &self.client.target,
                        format!("unexpected message {:?} while streaming", other as char),
                    ));
                }
            }
        }
    }

    /// Sends a standby status update: write = received, flush = apply = 0/0 (never a sync standby).
    async fn send_status(&mut self) -> Result<(), PgError> {
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
            - PG_EPOCH_OFFSET_US;
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(self.received.0);
        payload.put_u64(0);
        payload.put_u64(0);
        payload.put_i64(now_us);
        payload.put_u8(0);
        let mut buf = BytesMut::with_capacity(40);
        buf.put_u8(b'd');
        buf.put_u32(4 + payload.len() as u32);
        buf.extend_from_slice(&payload);
        self.client.write(&buf).await
    }

    /// Ends the stream: sends CopyDone and drains the server's answer (bounded).
    pub async fn stop(mut self) -> Result<(), PgError> {
        if self.done {
            return Ok(());
        }
        let mut buf = BytesMut::new();
        frontend::copy_done(&mut buf);
        self.client.write(&buf).await?;
        self.done = true;
        let wait = self.client.opts.command_timeout;
        let deadline = tokio::time::Instant::now() + wait;
        let mut error = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (tag, body) = self
                .client
                .read_message(left, "stopping the WAL stream")
                .await?;
            match tag {
                b'd' | b'c' | b'T' | b'D' | b'C' => {}
                b'N' | b'S' => self.client.note(tag, body),
                b'E' => error = Some(self.client.server_error(body)),
                b'Z' => {
                    self.client.stream_open = false;
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                }
                other => {
                    self.client.broken = true;
                    return Err(PgError::protocol(
                        &self.client.target,
                        format!("unexpected message {:?} while stopping", other as char),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_fields_parse() {
        let mut b = BytesMut::new();
        for (c, v) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "42501"),
            (
                b'M',
                "must be superuser or replication role to start walsender",
            ),
        ] {
            b.put_u8(c);
            b.extend_from_slice(v.as_bytes());
            b.put_u8(0);
        }
        b.put_u8(0);
        let (e, sev) = parse_error_fields(b.freeze());
        assert_eq!(sev, "FATAL");
        assert_eq!(e.sqlstate, "42501");
        assert!(e.message.starts_with("must be superuser"));
    }

    #[test]
    fn chunk_end() {
        let c = WalChunk {
            start: Lsn(100),
            data: Bytes::from_static(b"abc"),
        };
        assert_eq!(c.end(), Lsn(103));
    }
}
