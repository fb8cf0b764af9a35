//! The complete list of lost transactions, streamed to a CSV or JSON Lines file while decoding.
//!
//! The report itself lists only the first and the last lost transactions.
//!
//! The file is written to a temporary file next to its destination and renamed into place
//! once decoding ended, so a reader never sees a partial list.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::wal::accounting::LostCommit;

/// The file name of the list in an export directory (`compare --export-dir`).
pub const EXPORT_FILE_NAME: &str = "lost_transactions.csv";

/// The columns, in order (CSV header; the keys of each JSON line).
pub const COLUMNS: [&str; 13] = [
    "xid",
    "subxids",
    "commit_lsn",
    "commit_time",
    "database_oid",
    "prepared_gid",
    "ddl",
    "inserts",
    "updates",
    "hot_updates",
    "deletes",
    "truncates",
    "changes_before_switchpoint",
];

/// The list's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListFormat {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl ListFormat {
    /// JSON Lines for a `.jsonl` or `.ndjson` file name, else CSV.
    pub fn for_path(path: &Path) -> ListFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson") => {
                ListFormat::JsonLines
            }
            _ => ListFormat::Csv,
        }
    }
}

/// Where to write the list.
#[derive(Clone, Debug)]
pub struct ListTarget {
    /// The destination file.
    pub path: PathBuf,
    /// Its format.
    pub format: ListFormat,
}

impl ListTarget {
    /// A target whose format follows the file name ([`ListFormat::for_path`]).
    pub fn at(path: PathBuf) -> ListTarget {
        ListTarget {
            format: ListFormat::for_path(&path),
            path,
        }
    }
}

/// The list could not be written.
#[derive(Debug, thiserror::Error)]
#[error("lost-transaction list {}: {source}", path.display())]
pub struct ListError {
    /// The destination.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: std::io::Error,
}

/// A list written in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListWritten {
    /// Where it is.
    pub path: PathBuf,
    /// Lost transactions in it (one line each, after the CSV header).
    pub rows: u64,
}

/// Streams lost commits to a temporary file; [`ListWriter::finish`] renames it into place.
/// Dropped unfinished, it removes the temporary file.
#[derive(Debug)]
pub struct ListWriter {
    target: ListTarget,
    out: Option<BufWriter<tempfile::NamedTempFile>>,
    line: Vec<u8>,
    rows: u64,
    error: Option<std::io::Error>,
}

impl ListWriter {
    /// Opens a temporary file in the destination's directory (created if missing) and writes
    /// the CSV header.
    pub fn create(target: &ListTarget) -> Result<ListWriter, ListError> {
        let err = |source| ListError {
            path: target.path.clone(),
            source,
        };
        let dir = match target.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        let tmp = tempfile::Builder::new()
            .prefix(".lost-transactions-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(err)?;
        let mut w = ListWriter {
            target: target.clone(),
            out: Some(BufWriter::with_capacity(256 * 1024, tmp)),
            line: Vec::with_capacity(256),
            rows: 0,
            error: None,
        };
        if target.format == ListFormat::Csv {
            w.line.extend_from_slice(COLUMNS.join(",").as_bytes());
            w.line.push(b'\n');
            w.flush_line();
        }
        Ok(w)
    }

    /// Appends one lost commit (an I/O error is kept and returned by [`Self::finish`]).
    pub fn write(&mut self, c: &LostCommit) {
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        match self.target.format {
            ListFormat::Csv => csv_line(&mut self.line, c),
            ListFormat::JsonLines => json_line(&mut self.line, c),
        }
        self.rows += 1;
        self.flush_line();
    }

    fn flush_line(&mut self) {
        if let Some(out) = &mut self.out {
            if let Err(e) = out.write_all(&self.line) {
                self.error = Some(e);
            }
        }
    }

    /// Lines written so far (header excluded).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the file and renames it to its destination.
    pub fn finish(mut self) -> Result<ListWritten, ListError> {
        let path = self.target.path.clone();
        let err = |source| ListError {
            path: path.clone(),
            source,
        };
        if let Some(e) = self.error.take() {
            return Err(err(e));
        }
        let Some(out) = self.out.take() else {
            return Err(err(std::io::Error::other("already finished")));
        };
        let tmp = out.into_inner().map_err(|e| err(e.into_error()))?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(ListWritten {
            path,
            rows: self.rows,
        })
    }
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = itoa_buf();
    out.extend_from_slice(fmt_u64(&mut b, v));
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// `2026-11-27T07:29:18.991700Z` from microseconds since the Unix epoch (RFC 3339, UTC).
pub(crate) fn push_rfc3339_micros(out: &mut Vec<u8>, unix_us: i64) {
    let secs = unix_us.div_euclid(1_000_000);
    let micros = unix_us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let two = |v: i64, out: &mut Vec<u8>| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    if (0..=9999).contains(&y) {
        two(y / 100, out);
        two(y % 100, out);
    } else {
        out.extend_from_slice(y.to_string().as_bytes());
    }
    out.push(b'-');
    two(m, out);
    out.push(b'-');
    two(d, out);
    out.push(b'T');
    two(sod / 3600, out);
    out.push(b':');
    two(sod / 60 % 60, out);
    out.push(b':');
    two(sod % 60, out);
    out.push(b'.');
    let mut b = itoa_buf();
    let digits = fmt_u64(&mut b, micros as u64);
    out.extend(std::iter::repeat_n(b'0', 6 - digits.len()));
    out.extend_from_slice(digits);
    out.push(b'Z');
}

fn subxids_text(out: &mut Vec<u8>, c: &LostCommit) {
    for (i, s) in c.subxids.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        push_u64(out, u64::from(s.0));
    }
}

/// One CSV line (RFC 4180 quoting, `\n` terminated). `subxids` are space-separated; an
/// unknown value is an empty field.
fn csv_line(out: &mut Vec<u8>, c: &LostCommit) {
    push_u64(out, u64::from(c.top_xid.0));
    out.push(b',');
    subxids_text(out, c);
    out.push(b',');
    out.extend_from_slice(c.lsn.to_string().as_bytes());
    out.push(b',');
    if let Some(t) = c.commit_time {
        push_rfc3339_micros(out, t.unix_micros());
    }
    out.push(b',');
    if let Some(db) = c.db_id {
        push_u64(out, u64::from(db));
    }
    out.push(b',');
    if c.prepared {
        let g = c.gid.as_deref().unwrap_or("");
        crate::quote::csv_field(out, g);
    }
    out.push(b',');
    out.extend_from_slice(if c.ddl { b"true" } else { b"false" });
    let n = &c.changes;
    for v in [
        n.inserts,
        n.updates + n.hot_updates,
        n.hot_updates,
        n.deletes,
        n.truncates,
        c.changes_before_switchpoint,
    ] {
        out.push(b',');
        push_u64(out, v);
    }
    out.push(b'\n');
}

/// One JSON object on one line, with the CSV's columns as keys (`null` when unknown,
/// `subxids` an array).
fn json_line(out: &mut Vec<u8>, c: &LostCommit) {
    out.extend_from_slice(b"{\"xid\":");
    push_u64(out, u64::from(c.top_xid.0));
    out.extend_from_slice(b",\"subxids\":[");
    for (i, s) in c.subxids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_u64(out, u64::from(s.0));
    }
    out.extend_from_slice(b"],\"commit_lsn\":\"");
    out.extend_from_slice(c.lsn.to_string().as_bytes());
    out.extend_from_slice(b"\",\"commit_time\":");
    match c.commit_time {
        Some(t) => {
            out.push(b'"');
            push_rfc3339_micros(out, t.unix_micros());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"database_oid\":");
    match c.db_id {
        Some(db) => push_u64(out, u64::from(db)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"prepared_gid\":");
    if c.prepared {
        let g = c.gid.as_deref().unwrap_or("");
        // serde_json escapes exactly as JSON requires; GIDs are rare and short.
        out.extend_from_slice(
            serde_json::to_string(g)
                .unwrap_or_else(|_| "\"\"".into())
                .as_bytes(),
        );
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(if c.ddl {
        b",\"ddl\":true"
    } else {
        b",\"ddl\":false"
    });
    let n = &c.changes;
    for (k, v) in [
        ("inserts", n.inserts),
        ("updates", n.updates + n.hot_updates),
        ("hot_updates", n.hot_updates),
        ("deletes", n.deletes),
        ("truncates", n.truncates),
        ("changes_before_switchpoint", c.changes_before_switchpoint),
    ] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        push_u64(out, v);
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::{Lsn, Xid};
    use crate::wal::accounting::ChangeCounts;
    use crate::wal::xact::PgTimestamp;

    fn commit(xid: u32, gid: Option<&str>) -> LostCommit {
        LostCommit {
            top_xid: Xid(xid),
            subxids: vec![Xid(xid + 1), Xid(xid + 2)],
            lsn: Lsn(0x3000060),
            commit_time: Some(PgTimestamp(817_457_358_991_700)),
            db_id: Some(5),
            prepared: gid.is_some(),
            gid: gid.map(str::to_string),
            has_invalidations: false,
            ddl: false,
            changes: ChangeCounts {
                inserts: 1,
                updates: 2,
                hot_updates: 3,
                deletes: 4,
                truncates: 0,
            },
            per_rel: Vec::new(),
            dropped_rels: Vec::new(),
            changes_before_switchpoint: 1,
        }
    }

    #[test]
    fn timestamps_match_the_time_crate() {
        for us in [
            0i64,
            951_782_400_000_000, // 2000-02-29
            1_795_000_000_123_456,
            -86_400_000_001,
            4_102_444_799_999_999, // 2099-12-31T23:59:59.999999
        ] {
            let mut out = Vec::new();
            push_rfc3339_micros(&mut out, us);
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
                .expect("in range");
            let parsed = time::OffsetDateTime::parse(
                std::str::from_utf8(&out).expect("utf8"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("RFC 3339");
            assert_eq!(parsed, t, "{}", String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn csv_and_json_lines_carry_the_same_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = ListTarget::at(dir.path().join("sub/x.csv"));
        let jsonl = ListTarget::at(dir.path().join("x.jsonl"));
        assert_eq!(jsonl.format, ListFormat::JsonLines);
        let mut a = ListWriter::create(&csv).expect("csv");
        let mut b = ListWriter::create(&jsonl).expect("jsonl");
        for c in [commit(700, None), commit(710, Some("g,\"1\""))] {
            a.write(&c);
            b.write(&c);
        }
        assert_eq!(a.finish().expect("csv").rows, 2);
        assert_eq!(b.finish().expect("jsonl").rows, 2);
        let text = std::fs::read_to_string(&csv.path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[2],
            "710,711 712,0/3000060,2025-11-26T07:29:18.991700Z,5,\"g,\"\"1\"\"\",false,1,5,3,4,0,1"
        );
        let json = std::fs::read_to_string(&jsonl.path).expect("read");
        let rows: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(rows[1]["prepared_gid"], "g,\"1\"");
        assert_eq!(rows[0]["prepared_gid"], serde_json::Value::Null);
        assert_eq!(rows[0]["updates"], 5);
        assert_eq!(rows[0]["subxids"], serde_json::json!([701, 702]));
        let keys: Vec<&str> = rows[0]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = COLUMNS.to_vec();
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want);
        // Nothing else left in the directory (the temporary files were renamed).
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn an_unfinished_list_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = ListTarget::at(dir.path().join("x.csv"));
        let mut w = ListWriter::create(&t).expect("create");
        w.write(&commit(700, None));
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
