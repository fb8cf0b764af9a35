//! Shared helpers for the WAL tests: fixture decompression and pg_waldump runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use failover_verify::lsn::Lsn;

/// The pg15 fixture directory.
pub fn fixture_dir() -> PathBuf {
    fixture_dir_for(15)
}

/// The fixture directory of PostgreSQL `major`.
pub fn fixture_dir_for(major: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/wal/pg{major}"))
}

/// Fixture metadata written by generate.sh.
pub struct Meta {
    pub start: Lsn,
    pub switchpoint: Lsn,
    pub end: Lsn,
    pub seg_size: u64,
}

pub fn meta() -> Meta {
    meta_for(15)
}

/// Metadata of the fixture of PostgreSQL `major`.
pub fn meta_for(major: u32) -> Meta {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir_for(major).join("meta.json")).unwrap(),
    )
    .unwrap();
    let l = |k: &str| v[k].as_str().unwrap().parse::<Lsn>().unwrap();
    Meta {
        start: l("start"),
        switchpoint: l("switchpoint"),
        end: l("end"),
        seg_size: v["segment_size"].as_u64().unwrap(),
    }
}

/// Decompresses the fixture segments into a fresh temp dir.
pub fn plain_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture_dir()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".gz") {
            let mut d = flate2::read::GzDecoder::new(std::fs::File::open(e.path()).unwrap());
            let mut out = std::fs::File::create(tmp.path().join(base)).unwrap();
            std::io::copy(&mut d, &mut out).unwrap();
        }
    }
    tmp
}

/// The pg_waldump binary, or None (the caller prints "skipped").
pub fn pg_waldump() -> Option<PathBuf> {
    let candidates = [
        std::env::var("PG_WALDUMP").ok().map(PathBuf::from),
        Some(PathBuf::from("/usr/lib/postgresql/15/bin/pg_waldump")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or_else(|| {
            Command::new("pg_waldump")
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| PathBuf::from("pg_waldump"))
        })
}

/// Runs pg_waldump with `args` on `dir` (TZ=UTC) and returns stdout.
pub fn waldump(bin: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .env("TZ", "UTC")
        .arg("-p")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One line of pg_waldump's record output.
#[derive(Debug, Clone)]
pub struct DumpLine {
    pub rmgr: String,
    pub rec_len: u32,
    pub tot_len: u32,
    pub xid: u32,
    pub lsn: Lsn,
    pub prev: Lsn,
    pub desc: String,
}

/// Parses `rmgr: Heap len (rec/tot): 59/ 59, tx: 735, lsn: 0/00B2E088, prev 0/00B2E048, desc: ...`.
pub fn parse_dump(out: &str) -> Vec<DumpLine> {
    out.lines()
        .filter(|l| l.starts_with("rmgr: "))
        .map(|l| {
            let rmgr = l[6..].split_whitespace().next().unwrap().to_string();
            let lens = l.split("len (rec/tot):").nth(1).unwrap();
            let lens = lens.split(',').next().unwrap();
            let (rec, tot) = lens.split_once('/').unwrap();
            let xid = l
                .split("tx:")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .trim();
            let lsn = l
                .split("lsn: ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .trim();
            let prev = l
                .split("prev ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .trim();
            let desc = l.split("desc: ").nth(1).unwrap_or("").to_string();
            DumpLine {
                rmgr,
                rec_len: rec.trim().parse().unwrap(),
                tot_len: tot.trim().parse().unwrap(),
                xid: xid.parse().unwrap(),
                lsn: lsn.parse().unwrap(),
                prev: prev.parse().unwrap(),
                desc,
            }
        })
        .collect()
}
