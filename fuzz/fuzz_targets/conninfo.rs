//! Fuzzes `ConnParams::parse` (keyword/value conninfo and postgres:// URLs) with an empty
//! environment (HOME points nowhere, so no ~/.pgpass is read): never panics, and whatever
//! parses can be described and redacted.
#![no_main]

use failover_verify::pg::ConnParams;
use libfuzzer_sys::fuzz_target;

fn env(key: &str) -> Option<String> {
    (key == "HOME").then(|| "/nonexistent-home-for-fuzzing".to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = ConnParams::parse(s, &env) {
        let _ = p.target();
        let _ = p.redacted();
        let _ = p.tls_server_name();
        let _ = p.socket_path();
        let _ = format!("{p:?}");
    }
});
