//! The replication client's connection: its types, message framing, notices and errors.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::pg::error::{scrub, PgError, ServerError};

/// Largest backend message we accept (WAL chunks are at most 128 KB + header).
pub(super) const MAX_MESSAGE: usize = 1 << 30;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
pub(super) const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

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

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One result set of a simple query, values as raw bytes (text format).
#[derive(Debug, Default)]
pub(super) struct ResultSet {
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<Vec<Option<Bytes>>>,
}

/// A replication connection (`replication=true`) to one server.
pub struct ReplicationClient {
    pub(crate) io: Box<dyn Io>,
    pub(crate) rbuf: BytesMut,
    pub(crate) target: String,
    pub(crate) user: String,
    pub(crate) password: Option<String>,
    pub(crate) opts: ReplicationOptions,
    pub(crate) server_params: Vec<(String, String)>,
    pub(crate) notices: Vec<String>,
    pub(crate) stream_open: bool,
    pub(crate) broken: bool,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient")
            .field("target", &self.target)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

pub(super) fn cstr(buf: &mut Bytes) -> Option<String> {
    let end = buf.iter().position(|&b| b == 0)?;
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end + 1);
    Some(s)
}

pub(super) fn parse_error_fields(mut body: Bytes) -> (ServerError, String) {
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

    pub(super) async fn write(&mut self, buf: &[u8]) -> Result<(), PgError> {
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
    pub(super) async fn read_message(
        &mut self,
        wait: Duration,
        what: &str,
    ) -> Result<(u8, Bytes), PgError> {
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

    pub(super) fn server_error(&self, body: Bytes) -> PgError {
        let (mut e, _) = parse_error_fields(body);
        let secret = self.password.as_deref();
        e.message = scrub(&e.message, secret);
        e.detail = e.detail.map(|d| scrub(&d, secret));
        e.hint = e.hint.map(|h| scrub(&h, secret));
        PgError::from_server(&self.target, &self.user, true, e)
    }

    pub(super) fn note(&mut self, tag: u8, body: Bytes) {
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

    pub(super) fn check_usable(&self) -> Result<(), PgError> {
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
