//! Fuzzes `TimelineHistory::parse` and the lookups on a parsed history: never panics.
//! Byte 0 picks the timeline the file claims to describe; the rest is the file's content.
#![no_main]

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::timeline::TimelineHistory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&tli, rest)) = data.split_first() else {
        return;
    };
    let Ok(content) = std::str::from_utf8(rest) else {
        return;
    };
    let tli = TimelineId(u32::from(tli));
    if let Ok(h) = TimelineHistory::parse("fuzz.history", tli, content) {
        for e in &h.entries {
            let _ = h.end_of(e.parent);
            let _ = h.end_of(TimelineId(e.parent.0.wrapping_add(1)));
        }
        let _ = h.end_of(tli);
        let _ = h.contains(tli);
        for lsn in [Lsn(0), Lsn(1), Lsn(u64::MAX)] {
            let _ = h.timeline_at(lsn);
        }
        for e in &h.entries {
            let _ = h.timeline_at(e.switchpoint);
        }
        let _ = h.fork_point(&h);
        let _ = h.fork_point(&TimelineHistory::root(TimelineId(1)));
        let _ = format!("{h:?}");
    }
});
