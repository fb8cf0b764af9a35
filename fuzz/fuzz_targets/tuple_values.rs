//! Fuzzes tuple deforming and the value converters with arbitrary descriptors and bytes.
//!
//! Input: byte 0 = the number of attributes (0..=15), then one byte per attribute picking its
//! type from a palette of the natively printed types (plus a dropped column, a C string and an
//! unknown type), then the heap tuple from its `t_infomask2` on: infomask2 u16, infomask u16,
//! t_hoff u8, then the bytes after the 23-byte header. Every converter also runs on the raw
//! rest of the input, and the varlena, TOAST and pglz decoders on it. Garbage must give errors,
//! never a panic.
#![no_main]

use std::collections::HashMap;

use failover_verify::values::desc::{Attr, ElemType, RelDesc, TypeInfo};
use failover_verify::values::text::{jsonb_out, numeric_out, scalar_out, Raw};
use failover_verify::values::toast::{assemble, parse_varlena, ToastPointer};
use failover_verify::values::{decode_row, deform};
use failover_verify::wal::heap::Tid;
use failover_verify::wal::tuple::{tuple_from_page, HeapTuple};
use libfuzzer_sys::fuzz_target;

/// (type oid, typname, attlen, attalign, attbyval, element type)
const PALETTE: &[(u32, &str, i16, u8, bool, Option<(u32, i16, u8, bool)>)] = &[
    (16, "bool", 1, b'c', true, None),
    (21, "int2", 2, b's', true, None),
    (23, "int4", 4, b'i', true, None),
    (20, "int8", 8, b'd', true, None),
    (700, "float4", 4, b'i', true, None),
    (701, "float8", 8, b'd', true, None),
    (1700, "numeric", -1, b'i', false, None),
    (25, "text", -1, b'i', false, None),
    (1042, "bpchar", -1, b'i', false, None),
    (19, "name", 64, b'c', false, None),
    (18, "char", 1, b'c', true, None),
    (17, "bytea", -1, b'i', false, None),
    (2950, "uuid", 16, b'c', false, None),
    (1082, "date", 4, b'i', true, None),
    (1083, "time", 8, b'd', true, None),
    (1266, "timetz", 12, b'd', false, None),
    (1114, "timestamp", 8, b'd', true, None),
    (1184, "timestamptz", 8, b'd', true, None),
    (1186, "interval", 16, b'd', false, None),
    (114, "json", -1, b'i', false, None),
    (3802, "jsonb", -1, b'i', false, None),
    (869, "inet", -1, b'i', false, None),
    (650, "cidr", -1, b'i', false, None),
    (1007, "_int4", -1, b'i', false, Some((23, 4, b'i', true))),
    (1009, "_text", -1, b'i', false, Some((25, -1, b'i', false))),
    (1231, "_numeric", -1, b'i', false, Some((1700, -1, b'i', false))),
    (90001, "mood", 4, b'i', true, None),
    (0, "", 4, b'i', true, None),      // dropped
    (2275, "cstring", -2, b'c', false, None),
    (600, "point", 16, b'd', false, None), // not printed natively
];

fn desc(picks: &[u8]) -> RelDesc {
    let attrs = picks
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (oid, name, len, align, byval, elem) = PALETTE[usize::from(*p) % PALETTE.len()];
            Attr {
                attnum: i as i16 + 1,
                name: format!("c{i}"),
                typ: TypeInfo {
                    oid,
                    name: name.into(),
                    typtype: if oid == 90001 { b'e' } else { b'b' },
                    elem: elem.map(|(oid, len, align, byval)| ElemType {
                        oid,
                        name: String::new(),
                        typtype: b'b',
                        len,
                        byval,
                        align,
                    }),
                },
                len,
                align,
                byval,
                dropped: oid == 0,
                missing: (p % 3 == 0).then(|| Some("7".to_string())),
            }
        })
        .collect();
    RelDesc {
        oid: 1,
        name: "fuzz".into(),
        attrs,
        enums: HashMap::from([(5, "sad".to_string())]),
        pg_major: 15,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16);
    if rest.len() < n {
        return;
    }
    let (picks, rest) = rest.split_at(n);
    let d = desc(picks);
    let tid = Tid { block: 0, offset: 1 };
    if rest.len() >= 5 {
        let im2 = u16::from_le_bytes([rest[0], rest[1]]);
        let im = u16::from_le_bytes([rest[2], rest[3]]);
        if let Ok(t) = HeapTuple::from_parts(im2, im, rest[4], &rest[5..]) {
            if let Err(e) = deform(&d, &t, tid) {
                assert!(e.to_string().contains("relation fuzz, ctid (0,1)"));
            }
            let _ = decode_row(&d, &t, tid);
        }
    }
    for oid in [16, 21, 23, 20, 700, 701, 1700, 25, 19, 18, 17, 2950, 1082, 1083, 1266, 1114, 1184, 1186, 3802, 869, 650] {
        let _ = scalar_out(oid, Raw::Varlena(rest), 15);
        let _ = scalar_out(oid, Raw::Fixed(rest), 13);
    }
    let _ = jsonb_out(rest);
    let _ = numeric_out(rest);
    let _ = parse_varlena(rest);
    let _ = tuple_from_page(rest, 1);
    let _ = failover_verify::wal::pglz::decompress(rest, rest.len().saturating_mul(3) % 20_000);
    let ptr = ToastPointer {
        raw_size: rest.len() as u32,
        ext_size: rest.len().saturating_sub(4) as u32,
        compression: Some(failover_verify::values::toast::ToastCompression::Pglz),
        value_id: 1,
        toast_rel: 2,
    };
    let half = rest.len() / 2;
    let _ = assemble(&ptr, &[(1, &rest[half..]), (0, &rest[..half])]);
});
