//! Unit tests of the bundle writer: staging, sealing, permissions and refusals.

use super::*;

#[test]
fn an_existing_target_is_refused_and_left_alone() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("ev");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    let e = Staging::create(&target).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"x");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
}

#[test]
fn a_dropped_staging_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let s = Staging::create(&t.path().join("ev")).unwrap();
    s.capture().record(TimelineId(1), 1 << 20, Lsn(0), b"x");
    drop(s);
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
}

#[test]
fn a_failure_midway_leaves_no_partial_bundle() {
    use crate::divergence::Verdict;
    use crate::report::NodeSection;
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("ev");
    let s = Staging::create(&target).unwrap();
    s.capture().record(TimelineId(1), 1 << 20, Lsn(0), b"wal");
    // Something in the way of a file written after the reports: the write fails there.
    let staging = s.capture().dir().parent().unwrap().to_path_buf();
    std::fs::create_dir(staging.join(NODES_FILE)).unwrap();
    let report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: "test".into(),
        generated_at: "2026-01-01T00:00:00Z".into(),
        duration_ms: 1,
        verdict: Verdict::Loss,
        explanation: "test".into(),
        incomplete: false,
        new_primary: NodeSection::default(),
        former_primary: NodeSection::default(),
        divergence: None,
        transactions: None,
        tables: None,
        findings: Vec::new(),
        checks: Vec::new(),
        patroni: None,
        discovery: None,
        downstream: None,
    };
    let e = s
        .finish(BundleContents {
            report: &report,
            command: "failover-verify compare".into(),
            wal: None,
            wal_missing: Some("test".into()),
            history: Vec::new(),
            names: &BTreeMap::new(),
            databases: &BTreeMap::new(),
            end_from_wal: false,
            notes: Vec::new(),
            secrets: Vec::new(),
        })
        .unwrap_err();
    assert!(e.to_string().contains(NODES_FILE), "{e}");
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
}

fn empty_report() -> Report {
    use crate::divergence::Verdict;
    use crate::report::NodeSection;
    Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: "test".into(),
        generated_at: "2026-01-01T00:00:00Z".into(),
        duration_ms: 1,
        verdict: Verdict::Loss,
        explanation: "test".into(),
        incomplete: false,
        new_primary: NodeSection::default(),
        former_primary: NodeSection::default(),
        divergence: None,
        transactions: None,
        tables: None,
        findings: Vec::new(),
        checks: Vec::new(),
        patroni: None,
        discovery: None,
        downstream: None,
    }
}

#[test]
fn offered_segments_are_linked_with_their_digest_and_others_copied() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("raw");
    std::fs::create_dir(&dir).unwrap();
    let seg = 1u64 << 20;
    let offered = dir.join("000000010000000000000002");
    let other = dir.join("000000010000000000000003");
    std::fs::write(&offered, vec![2u8; seg as usize]).unwrap();
    std::fs::write(&other, vec![3u8; seg as usize]).unwrap();
    // A digest that is not the file's: the manifest shows it was taken, not recomputed.
    let claimed = "ab".repeat(32);
    super::super::adopt::offer(&offered, &claimed).unwrap();
    let target = t.path().join("ev");
    let report = empty_report();
    Staging::create(&target)
        .unwrap()
        .finish(BundleContents {
            report: &report,
            command: "failover-verify compare".into(),
            wal: Some(WalRange {
                timeline: TimelineId(1),
                segment_size: seg,
                switchpoint: Lsn(2 * seg + 40),
                scan_start: Lsn(2 * seg),
                requested_end: Some(Lsn(3 * seg + 100)),
                decoded_end: None,
                source: "test".into(),
                from_dir: Some(dir.clone()),
            }),
            wal_missing: None,
            history: Vec::new(),
            names: &BTreeMap::new(),
            databases: &BTreeMap::new(),
            end_from_wal: false,
            notes: Vec::new(),
            secrets: Vec::new(),
        })
        .unwrap();
    let linked = target.join("wal/000000010000000000000002");
    let copied = target.join("wal/000000010000000000000003");
    assert_eq!(
        std::fs::metadata(&linked).unwrap().ino(),
        std::fs::metadata(&offered).unwrap().ino()
    );
    assert_ne!(
        std::fs::metadata(&copied).unwrap().ino(),
        std::fs::metadata(&other).unwrap().ino()
    );
    assert_eq!(std::fs::read(&copied).unwrap(), vec![3u8; seg as usize]);
    let sums = std::fs::read_to_string(target.join(MANIFEST)).unwrap();
    assert!(
        sums.contains(&format!("{claimed}  wal/000000010000000000000002\n")),
        "{sums}"
    );
    let copied_sum = manifest::sha256_file(&copied).unwrap();
    assert!(sums.contains(&format!("{copied_sum}  wal/000000010000000000000003\n")));
    // The streamed reports' digests, computed on the way out, are their files' digests.
    let json_sum = manifest::sha256_file(&target.join("report.json")).unwrap();
    assert!(
        sums.contains(&format!("{json_sum}  report.json\n")),
        "{sums}"
    );
}

#[test]
fn a_password_in_a_written_file_refuses_the_bundle() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("report.md"), b"target password=hunter22").unwrap();
    let e = check_no_secret(t.path(), &["hunter22".into()]).unwrap_err();
    assert!(e.to_string().contains("report.md"), "{e}");
    check_no_secret(t.path(), &["other".into()]).unwrap();
}

#[test]
fn rename_does_not_replace_an_empty_directory() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("a")).unwrap();
    std::fs::create_dir(t.path().join("b")).unwrap();
    let e = rename_noreplace(&t.path().join("a"), &t.path().join("b")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
}
