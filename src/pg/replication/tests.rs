//! Unit tests of the replication client: error fields, chunk ends.

use bytes::{BufMut, Bytes, BytesMut};

use crate::lsn::Lsn;

use super::client::*;

#[test]
fn error_fields_parse() {
    let mut b = BytesMut::new();
    for (c, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "42501"),
        (
            b'M',
            "must be superuser or replication role to start walsender",
        ),
    ] {
        b.put_u8(c);
        b.extend_from_slice(v.as_bytes());
        b.put_u8(0);
    }
    b.put_u8(0);
    let (e, sev) = parse_error_fields(b.freeze());
    assert_eq!(sev, "FATAL");
    assert_eq!(e.sqlstate, "42501");
    assert!(e.message.starts_with("must be superuser"));
}

#[test]
fn chunk_end() {
    let c = WalChunk {
        start: Lsn(100),
        data: Bytes::from_static(b"abc"),
    };
    assert_eq!(c.end(), Lsn(103));
}
