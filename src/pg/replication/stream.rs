//! A running START_REPLICATION stream: WAL chunks in, standby status updates out.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, BytesMut};
use postgres_protocol::message::frontend;

use super::client::{ReplicationClient, TimelineEnd, WalChunk, PG_EPOCH_OFFSET_US};
use crate::lsn::{Lsn, TimelineId};
use crate::pg::error::PgError;

/// A running `START_REPLICATION` stream; borrows the client until stopped or ended.
pub struct WalStream<'a> {
    pub(super) client: &'a mut ReplicationClient,
    pub(super) received: Lsn,
    pub(super) server_end: Lsn,
    pub(super) done: bool,
    pub(super) end: Option<TimelineEnd>,
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
    pub(super) async fn send_status(&mut self) -> Result<(), PgError> {
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
