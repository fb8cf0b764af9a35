//! Unit tests of the compare command: flag parsing and timelines placed from WAL files.

use std::time::{Duration, Instant};

use crate::commands::discover::DiscoveryPlan;
use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::timeline::TimelineHistory;

use super::former_wal::analyze_from_files;
use super::*;

#[test]
fn parsing_names_the_patroni_url_without_asking_it() {
    use clap::Parser;
    // Nothing listens on port 1: asking would fail (refused), so success proves no request.
    let url = "http://127.0.0.1:1";
    let cli = crate::cli::Cli::try_parse_from(["failover-verify", "compare", "--patroni", url])
        .expect("flags");
    let crate::cli::Command::Compare(args) = cli.command else {
        panic!("not a compare: {:?}", cli.command);
    };
    let started = Instant::now();
    let plan = ComparePlan::from_args(&args).expect("parsing asks no one");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    match &plan.manager {
        Some(DiscoveryPlan::Patroni { urls, .. }) => assert_eq!(urls, &[url]),
        other => panic!("no Patroni plan: {other:?}"),
    }
    assert!(plan.input.new_primary.is_none() && plan.input.former_primary.is_none());
    assert!(plan.input.discovery.is_none());
    // The sync entry point refuses to ask, rather than asking while parsing.
    assert!(matches!(
        CompareInput::from_args(&args),
        Err(CommandError::Usage {
            flag: "--patroni",
            ..
        })
    ));
}

fn new_primary(tli: u32, history: &str) -> NodeFacts {
    NodeFacts {
        timeline: TimelineId(tli),
        history: Some(TimelineHistory::parse("h", TimelineId(tli), history).unwrap()),
        ..NodeFacts::default()
    }
}

type Fetched = Result<Option<String>, crate::wal::archive::ArchiveError>;

#[test]
fn files_place_an_ancestor_another_branch_and_refuse_the_unknown() {
    // New primary on 3 after 1 -> 2 -> 3; the probe finds timeline 2's WAL.
    let new = new_primary(3, "1\t0/3000060\tx\n2\t0/5000000\tx\n");
    let none = |_: TimelineId| -> Fetched { Ok(None) };
    let (a, h) = analyze_from_files(&new, "arch", None, |_| Ok(Some(TimelineId(2))), none).unwrap();
    let d = a.divergence.unwrap();
    assert_eq!(
        (d.former_timeline, d.switchpoint_lsn),
        (TimelineId(2), Some(Lsn(0x5000000)))
    );
    assert_eq!(d.timeline_path, vec![TimelineId(2), TimelineId(3)]);
    assert_eq!(h.unwrap().entries.len(), 1);

    // Timeline 4 branched from 1 after the new primary's fork at 0/3000060: the lost range
    // starts there, on timeline 1, and crosses into 4.
    let branch = |_: TimelineId| -> Fetched { Ok(Some("1\t0/4000000\ty\n".into())) };
    let (a, h) =
        analyze_from_files(&new, "arch", Some(TimelineId(4)), |_| Ok(None), branch).unwrap();
    let d = a.divergence.unwrap();
    assert_eq!(d.switchpoint_lsn, Some(Lsn(0x3000060)));
    assert_eq!(
        d.timeline_path,
        vec![TimelineId(1), TimelineId(2), TimelineId(3)]
    );
    assert_eq!(h.unwrap().timeline, TimelineId(4));

    // Another branch without its history file, or nothing found: inconclusive, saying why.
    let (a, _) = analyze_from_files(&new, "arch", Some(TimelineId(4)), |_| Ok(None), none).unwrap();
    assert_eq!(a.verdict, Verdict::Inconclusive);
    assert!(
        a.explanation.contains("00000004.history"),
        "{}",
        a.explanation
    );
    let (a, _) = analyze_from_files(&new, "arch", None, |_| Ok(None), none).unwrap();
    assert!(
        a.explanation.contains("--former-timeline"),
        "{}",
        a.explanation
    );
}
