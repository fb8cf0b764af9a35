//! Fuzzes `Lsn::from_str`: never panics, and whatever parses prints back to a string that
//! parses to the same value.
#![no_main]

use failover_verify::lsn::Lsn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(lsn) = s.parse::<Lsn>() {
        let printed = lsn.to_string();
        assert_eq!(printed.parse::<Lsn>().ok(), Some(lsn), "{s:?} -> {printed}");
    }
});
