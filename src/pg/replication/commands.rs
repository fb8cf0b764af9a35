//! The replication commands: IDENTIFY_SYSTEM, TIMELINE_HISTORY and START_REPLICATION.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use postgres_protocol::message::frontend;

use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::pg::error::{ErrorKind, PgError};

use super::client::{cstr, IdentifySystem, ReplicationClient, ResultSet};
use super::stream::WalStream;

impl ReplicationClient {
    /// Runs a simple query and collects its result sets up to ReadyForQuery.
    pub(super) async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>, PgError> {
        self.check_usable()?;
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)
            .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
        self.write(&buf).await?;
        self.collect_results(self.opts.command_timeout, "waiting for a command result")
            .await
    }

    pub(super) async fn collect_results(
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

    pub(super) fn text_cell<'a>(
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
}
