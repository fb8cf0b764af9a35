//! Unit tests of WAL archive staging: substitution, fetching with time limits, disagreeing sources.

use std::time::Instant;

use super::*;

#[test]
fn placeholders_as_postgresql_replaces_them() {
    assert_eq!(
        substitute("cp /a/%f \"%p\" # %r %% %x %", "F", "/t/P", "R"),
        "cp /a/F \"/t/P\" # R % %x %"
    );
    assert_eq!(substitute("%%f", "F", "P", "R"), "%f");
}

#[test]
fn secrets_in_a_command_are_redacted() {
    assert_eq!(
        redact_command("AWS_SECRET_ACCESS_KEY=abc PGPASSWORD=pw wal-g wal-fetch %f %p --repo1-s3-key=k1 --stanza=main"),
        "AWS_SECRET_ACCESS_KEY=*** PGPASSWORD=*** wal-g wal-fetch %f %p --repo1-s3-key=*** --stanza=main"
    );
}

fn stage(sources: Vec<WalSource>, timeout: Duration) -> WalStage {
    WalStage::new(sources, timeout, 1 << 20, Some(SystemId(7))).unwrap()
}

/// A 1 MB segment whose pages all carry valid headers, with `sysid`.
fn segment(segno: u64, sysid: u64) -> Vec<u8> {
    let mut b = vec![0u8; 1 << 20];
    for (i, page) in b.chunks_mut(8192).enumerate() {
        page[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        page[2..4].copy_from_slice(&(if i == 0 { 2u16 } else { 0 }).to_le_bytes());
        page[4..8].copy_from_slice(&1u32.to_le_bytes());
        let addr = segno * (1 << 20) + (i * 8192) as u64;
        page[8..16].copy_from_slice(&addr.to_le_bytes());
        if i == 0 {
            page[24..32].copy_from_slice(&sysid.to_le_bytes());
            page[32..36].copy_from_slice(&(1u32 << 20).to_le_bytes());
            page[36..40].copy_from_slice(&8192u32.to_le_bytes());
        }
    }
    b
}

#[test]
fn restore_command_outcomes() {
    let arch = tempfile::tempdir().unwrap();
    let name = segment_file_name(TimelineId(1), 3, 1 << 20);
    std::fs::write(arch.path().join(&name), segment(3, 7)).unwrap();
    let cp = WalSource::RestoreCommand(format!("cp {}/%f %p", arch.path().display()));
    let mut s = stage(vec![cp.clone()], Duration::from_secs(10));
    assert!(s.fetch_segment(TimelineId(1), 3).unwrap());
    assert!(s.path().join(&name).is_file());
    assert!(
        !s.fetch_segment(TimelineId(1), 4).unwrap(),
        "cp exits 1: not found"
    );

    let failing = WalSource::RestoreCommand("echo 'no such stanza' >&2; exit 3".into());
    let e = stage(vec![failing], Duration::from_secs(10))
        .fetch_segment(TimelineId(1), 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&name) && e.contains("status 3") && e.contains("no such stanza"),
        "{e}"
    );

    let t = Instant::now();
    let hang = WalSource::RestoreCommand("sleep 30; cp x %p".into());
    let e = stage(vec![hang], Duration::from_millis(300))
        .fetch_segment(TimelineId(1), 3)
        .unwrap_err();
    assert!(matches!(e, ArchiveError::TimedOut { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));

    let short =
        WalSource::RestoreCommand(format!("head -c 100000 {}/%f > %p", arch.path().display()));
    let e = stage(vec![short], Duration::from_secs(10))
        .fetch_segment(TimelineId(1), 3)
        .unwrap_err();
    assert!(
        matches!(e, ArchiveError::Truncated { size: 100000, .. }),
        "{e}"
    );

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join(&name), segment(3, 8)).unwrap();
    let e = stage(
        vec![WalSource::Directory(other.path().into())],
        Duration::from_secs(1),
    )
    .fetch_segment(TimelineId(1), 3)
    .unwrap_err();
    assert!(matches!(e, ArchiveError::OtherCluster { .. }), "{e}");
}

#[test]
fn two_sources_that_disagree_are_recorded() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let name = segment_file_name(TimelineId(1), 3, 1 << 20);
    let seg = segment(3, 7);
    let mut other = seg.clone();
    other[3 * 8192 + 100] ^= 1;
    std::fs::write(a.path().join(&name), &seg).unwrap();
    std::fs::write(b.path().join(&name), &other).unwrap();
    let mut s = stage(
        vec![
            WalSource::Directory(a.path().into()),
            WalSource::Directory(b.path().into()),
        ],
        Duration::from_secs(1),
    );
    assert!(s.fetch_segment(TimelineId(1), 3).unwrap());
    assert_eq!(s.disagreements().len(), 1);
    assert_eq!(s.disagreements()[0].offset, 3 * 8192 + 100);
    // A stale (recycled) page in one copy is not a disagreement.
    let mut stale = seg.clone();
    stale[5 * 8192 + 8] ^= 0x10; // its page address
    stale[5 * 8192 + 200] ^= 1;
    assert_eq!(first_valid_difference(&seg, &stale, 3 << 20), None);
}
