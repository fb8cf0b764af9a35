//! Fuzzes the Patroni REST readers (`/cluster`, `/history`) and the choice of the former
//! primary: any JSON a server might send gives a value or a typed error, never a panic.
#![no_main]

use failover_verify::patroni::{choose_former, parse_cluster, parse_history};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let cluster = parse_cluster("http://fuzz:8008", &v);
    let history = parse_history("http://fuzz:8008", &v);
    // Both readers accept the same document only in contrived inputs; feed each member
    // list to the former-primary rule with the history, as `--patroni` does.
    if let (Ok(c), Ok(h)) = (cluster, history) {
        for leader in &c.members {
            let _ = choose_former(leader, &c.members, &h, &|_| None);
        }
    }
});
