//! WAL decoding benchmark: failover-verify's decoder versus `pg_waldump --stats=record` on the
//! same segment files, in the same run. See BENCHMARKS.md.
//!
//! ```text
//! cargo run --release --example wal_bench -- DIR [--tli 1] [--pg-waldump PATH] [--runs 3] [--ours-only]
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::wal::accounting::Accountant;
use failover_verify::wal::rmgr::WalStats;
use failover_verify::wal::segment::{segment_start, SegmentName};
use failover_verify::wal::source::WalDir;

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) used so far by this process or by its waited-for children.
fn cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; no other invariants.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut ru) != 0 {
            return 0.0;
        }
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    }
}

fn children_maxrss_kb() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; no other invariants.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) == 0 {
            ru.ru_maxrss as u64
        } else {
            0
        }
    }
}

/// Runs `pg_waldump --stats=record` on the range; returns (seconds, records counted).
fn run_pg_waldump(
    waldump: &std::path::Path,
    dir: &std::path::Path,
    tli: u32,
    start: Lsn,
    end: Lsn,
) -> anyhow::Result<(f64, u64)> {
    let t = Instant::now();
    let out = Command::new(waldump)
        .arg("-p")
        .arg(dir)
        .args([
            "-t",
            &tli.to_string(),
            "-s",
            &start.to_string(),
            "-e",
            &end.to_string(),
            "--stats=record",
        ])
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let n = text
        .lines()
        .find(|l| l.starts_with("Total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((secs, n))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = None;
    let mut tli = 1u32;
    let mut runs = 3usize;
    // Decode only (no pg_waldump, no accounting pass): for profiling with perf.
    let mut ours_only = false;
    // Measure only one of the two readers ("two" or "one" threads): for profiling.
    let mut only: Option<bool> = None;
    let mut waldump = PathBuf::from("/usr/lib/postgresql/15/bin/pg_waldump");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tli" => tli = it.next().map(|s| s.parse()).transpose()?.unwrap_or(1),
            "--ours-only" => ours_only = true,
            "--threads" => only = it.next().map(|s| s == "two"),
            "--runs" => runs = it.next().map(|s| s.parse()).transpose()?.unwrap_or(3),
            "--pg-waldump" => waldump = it.next().map(PathBuf::from).unwrap_or(waldump),
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let dir = dir.ok_or_else(|| {
        anyhow::anyhow!("usage: wal_bench DIR [--tli N] [--pg-waldump PATH] [--runs N]")
    })?;
    let wal = WalDir::open(&dir, TimelineId(tli))?;
    let seg = wal.segment_size();
    let first = std::fs::read_dir(&dir)?
        .filter_map(|e| SegmentName::parse(&e.ok()?.file_name().to_string_lossy()).ok())
        .filter(|n| n.tli.0 == tli)
        .filter_map(|n| n.segno(seg))
        .min()
        .ok_or_else(|| anyhow::anyhow!("no segments"))?;
    let start = segment_start(first, seg);

    // Ours: decode + per-record stats (the work pg_waldump --stats=record does), on two threads
    // (the default with a second CPU) and on one. Runs alternate with pg_waldump's so all see
    // the same machine load; the best of each is reported.
    let mut end = Lsn(0);
    let mut first_lsn = Lsn(0);
    let mut nrec = 0u64;
    let mut best = [f64::MAX; 2];
    let mut cpu = [f64::MAX; 2];
    let mut best_pg = f64::MAX;
    let mut pg_records = 0u64;
    let mut cpu_pg = f64::MAX;
    for _ in 0..runs {
        for (i, pipelined) in [true, false].into_iter().enumerate() {
            if only.is_some_and(|o| o != pipelined) {
                continue;
            }
            let c0 = cpu_secs(libc::RUSAGE_SELF);
            let t = Instant::now();
            let mut stats = WalStats::default();
            let mut reader = if pipelined {
                wal.read_pipelined(start, None)
            } else {
                wal.read_inline(start, None)
            };
            for r in reader.by_ref() {
                let r = r?;
                if stats.total.count == 0 {
                    first_lsn = r.lsn;
                }
                end = r.end_lsn;
                stats.add(&r);
            }
            best[i] = best[i].min(t.elapsed().as_secs_f64());
            cpu[i] = cpu[i].min(cpu_secs(libc::RUSAGE_SELF) - c0);
            if nrec != 0 && nrec != stats.total.count {
                anyhow::bail!(
                    "the two readers disagree: {nrec} and {} records",
                    stats.total.count
                );
            }
            nrec = stats.total.count;
        }
        if ours_only {
            continue;
        }
        let c1 = cpu_secs(libc::RUSAGE_CHILDREN);
        let (secs, n) = run_pg_waldump(&waldump, &dir, tli, first_lsn, end)?;
        cpu_pg = cpu_pg.min(cpu_secs(libc::RUSAGE_CHILDREN) - c1);
        best_pg = best_pg.min(secs);
        pg_records = n;
    }
    let ours_rss = vm_hwm_kb();
    if ours_only {
        for (i, what) in ["two threads", "one thread"].iter().enumerate() {
            if best[i] == f64::MAX {
                continue;
            }
            println!(
                "failover-verify decoder + stats ({what}): {nrec} records, {:.2} s wall, {:.2} CPU-s",
                best[i], cpu[i]
            );
        }
        println!("peak RSS {} MB", ours_rss / 1024);
        return Ok(());
    }

    // Ours with full accounting (xact/heap interpretation, touched tuples) from the start.
    let t = Instant::now();
    let mut acc = Accountant::new(Lsn(end.0.saturating_sub((end.0 - first_lsn.0) / 10)));
    for r in wal.read(start, None) {
        acc.add(&r?)?;
    }
    let lost = acc.finish(None);
    let acc_time = t.elapsed().as_secs_f64();

    let pg_rss = children_maxrss_kb();
    let mb = (end.0 - first_lsn.0) as f64 / 1e6;
    println!("WAL range: {first_lsn} .. {end} ({mb:.0} MB, {nrec} records; pg_waldump counted {pg_records})");
    for (i, what) in ["two threads", "one thread "].iter().enumerate() {
        println!(
            "failover-verify decoder + stats, {what}: {:.2} s, {:.0} MB/s, {:.2} CPU-s",
            best[i],
            mb / best[i],
            cpu[i]
        );
    }
    println!("failover-verify peak RSS: {} MB", ours_rss / 1024);
    println!(
        "failover-verify decoder + accounting: {:.2} s, {:.0} MB/s ({} lost commits in the last 10%)",
        acc_time,
        mb / acc_time,
        lost.lost_commits.len()
    );
    println!(
        "pg_waldump --stats=record:       {:.2} s, {:.0} MB/s, peak RSS {} MB",
        best_pg,
        mb / best_pg,
        pg_rss / 1024
    );
    println!(
        "ratio (pg_waldump time / ours): two threads {:.2}x, one thread {:.2}x wall",
        best_pg / best[0],
        best_pg / best[1]
    );
    println!(
        "CPU seconds (user+sys, best run): pg_waldump {:.2} s; ratio pg_waldump/ours: two threads {:.2}x, one thread {:.2}x",
        cpu_pg,
        cpu_pg / cpu[0],
        cpu_pg / cpu[1]
    );
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}
