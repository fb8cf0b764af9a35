//! One loopback-port helper for both kinds of test support (`util`, `common`): a port that was
//! free a moment ago, never the same one twice in this process.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// A loopback port with nothing listening on it a moment ago, never the same one twice in this
/// process: a test that picks several ports before starting anything (a Patroni cluster's REST
/// APIs, PostgreSQL servers and etcd) once got the same port for two of them.
pub fn unused() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}
