//! Deforming a heap tuple with its relation's descriptor (`heap_deform_tuple`): alignment,
//! by-value attributes, the null bitmap, dropped columns, attributes added after the tuple was
//! written, and varlena headers; then each column as text.

use serde::Serialize;

use crate::wal::heap::Tid;
use crate::wal::tuple::HeapTuple;

use super::desc::{Attr, RelDesc};
use super::text::{render, Value};
use super::toast::{parse_varlena, payload, varsize_any, Varlena};

/// A tuple that does not fit its descriptor, or a value that cannot be read: names the
/// relation, the ctid and (when known) the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relation {rel}, ctid ({},{}){}: {what}", .tid.block, .tid.offset, .column.as_ref().map(|c| format!(", column {c}")).unwrap_or_default())]
pub struct TupleError {
    /// The relation's name.
    pub rel: String,
    /// The tuple's ctid.
    pub tid: Tid,
    /// The column, when the problem is one value.
    pub column: Option<String>,
    /// What is wrong.
    pub what: String,
}

/// One attribute's stored datum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// NULL.
    Null,
    /// Past the tuple's natts: the column was added later; `attmissingval` as text, or NULL.
    Missing(Option<String>),
    /// A fixed-length value (`attlen` > 0), by value or by reference: its bytes.
    Fixed(Vec<u8>),
    /// A varlena.
    Varlena(Varlena),
    /// A C string (`attlen` -2), without its terminating NUL.
    CString(Vec<u8>),
}

/// Aligns `off` as `att_align_nominal` does.
pub fn align_nominal(off: usize, align: u8) -> Result<usize, String> {
    let a = match align {
        b'c' => 1,
        b's' => 2,
        b'i' => 4,
        b'd' => 8,
        other => return Err(format!("unknown attalign {:?}", char::from(other))),
    };
    Ok(off.next_multiple_of(a))
}

/// Splits a tuple into one datum per attribute of the descriptor (dropped ones included).
pub fn deform(desc: &RelDesc, tuple: &HeapTuple, tid: Tid) -> Result<Vec<Datum>, TupleError> {
    let err = |column: Option<&Attr>, what: String| TupleError {
        rel: desc.name.clone(),
        tid,
        column: column.map(|a| a.name.clone()),
        what,
    };
    let natts = usize::from(tuple.natts());
    if natts > desc.attrs.len() {
        return Err(err(
            None,
            format!(
                "the tuple has {natts} attributes, the relation's descriptor {} (a column added after the switchpoint?)",
                desc.attrs.len()
            ),
        ));
    }
    let bitmap = tuple.null_bitmap();
    let data = tuple.data();
    let mut off = 0usize;
    let mut out = Vec::with_capacity(desc.attrs.len());
    for (i, a) in desc.attrs.iter().enumerate() {
        if i >= natts {
            out.push(if a.dropped {
                Datum::Null
            } else {
                Datum::Missing(a.missing.clone().flatten())
            });
            continue;
        }
        if let Some(bits) = bitmap {
            if bits[i >> 3] & (1 << (i & 7)) == 0 {
                out.push(Datum::Null);
                continue;
            }
        }
        let e = |what: String| err(Some(a), what);
        if a.len == -1 {
            // att_align_pointer: a varlena starting with a non-zero byte is not padded.
            if data.get(off).copied().unwrap_or(0) == 0 {
                off = align_nominal(off, a.align).map_err(e)?;
            }
            let rest = data
                .get(off..)
                .ok_or_else(|| e(format!("offset {off} beyond the data")))?;
            let len = varsize_any(rest).map_err(e)?;
            out.push(Datum::Varlena(parse_varlena(&rest[..len]).map_err(e)?));
            off += len;
        } else if a.len == -2 {
            off = align_nominal(off, a.align).map_err(e)?;
            let rest = data
                .get(off..)
                .ok_or_else(|| e(format!("offset {off} beyond the data")))?;
            let n = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| e("C string without its NUL".into()))?;
            out.push(Datum::CString(rest[..n].to_vec()));
            off += n + 1;
        } else if a.len > 0 {
            off = align_nominal(off, a.align).map_err(e)?;
            let n = a.len as usize;
            if a.byval && !matches!(n, 1 | 2 | 4 | 8) {
                return Err(e(format!("by-value attribute of length {n}")));
            }
            let v = data.get(off..off + n).ok_or_else(|| {
                e(format!(
                    "{n}-byte value at offset {off} beyond the {} data bytes",
                    data.len()
                ))
            })?;
            out.push(Datum::Fixed(v.to_vec()));
            off += n;
        } else {
            return Err(e(format!("attlen {}", a.len)));
        }
    }
    if off > data.len() {
        return Err(err(None, "attributes run past the tuple".into()));
    }
    Ok(out)
}

/// One column of a decoded row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// `attnum`.
    pub attnum: i16,
    /// `attname`.
    pub name: String,
    /// The value.
    pub value: Value,
}

/// Deforms `tuple` and renders every live column (dropped ones are skipped). Inline
/// compressed values are decompressed; out-of-line ones come back as [`Value::External`].
pub fn decode_row(desc: &RelDesc, tuple: &HeapTuple, tid: Tid) -> Result<Vec<Column>, TupleError> {
    let datums = deform(desc, tuple, tid)?;
    let mut out = Vec::with_capacity(datums.len());
    for (a, d) in desc.attrs.iter().zip(datums) {
        if a.dropped {
            continue;
        }
        let e = |what: String| TupleError {
            rel: desc.name.clone(),
            tid,
            column: Some(a.name.clone()),
            what,
        };
        let value = match d {
            Datum::Null | Datum::Missing(None) => Value::Null,
            Datum::Missing(Some(text)) => Value::Text { text },
            Datum::Varlena(Varlena::External(pointer)) => Value::External { pointer },
            Datum::Varlena(v) => {
                let p = payload(&v).map_err(e)?;
                render(desc, &a.typ, super::text::Raw::Varlena(&p)).map_err(e)?
            }
            Datum::Fixed(b) => render(desc, &a.typ, super::text::Raw::Fixed(&b)).map_err(e)?,
            Datum::CString(b) => render(desc, &a.typ, super::text::Raw::CString(&b)).map_err(e)?,
        };
        out.push(Column {
            attnum: a.attnum,
            name: a.name.clone(),
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::desc::TypeInfo;
    use std::collections::HashMap;

    fn attr(n: i16, oid: u32, len: i16, align: u8, byval: bool) -> Attr {
        Attr {
            attnum: n,
            name: format!("c{n}"),
            typ: TypeInfo {
                oid,
                name: format!("t{oid}"),
                typtype: b'b',
                elem: None,
            },
            len,
            align,
            byval,
            dropped: oid == 0,
            missing: None,
        }
    }

    fn desc() -> RelDesc {
        RelDesc {
            oid: 1,
            name: "public.t".into(),
            attrs: vec![
                attr(1, 23, 4, b'i', true),
                attr(2, 0, 8, b'd', true),
                attr(3, 25, -1, b'i', false),
                attr(4, 20, 8, b'd', true),
                attr(5, 3802, -1, b'i', false),
                attr(6, 1700, -1, b'i', false),
            ],
            enums: HashMap::new(),
            pg_major: 15,
        }
    }

    const TID: Tid = Tid {
        block: 3,
        offset: 7,
    };

    #[test]
    fn a_tuple_is_deformed_with_alignment_nulls_and_dropped_columns() {
        // int4 5, dropped int8 (aligned to 8), text 'hi' (short header), int8 NULL, no 5, 6.
        let mut body = vec![0b0000_0111u8]; // bitmap: 1-3 not null, 4 null
        let pad = 24 - 23 - 1; // t_hoff 24
        body.extend(vec![0; pad]);
        body.extend(5i32.to_le_bytes());
        body.extend([0; 4]);
        body.extend(9i64.to_le_bytes());
        body.extend([0x07, b'h', b'i']);
        let t = HeapTuple::from_parts(4, 0x0001, 24, &body).unwrap();
        let row = decode_row(&desc(), &t, TID).unwrap();
        let texts: Vec<_> = row
            .iter()
            .map(|c| (c.name.as_str(), c.value.clone()))
            .collect();
        assert_eq!(texts.len(), 5);
        assert_eq!(texts[0], ("c1", Value::Text { text: "5".into() }));
        assert_eq!(texts[1], ("c3", Value::Text { text: "hi".into() }));
        assert_eq!(texts[2], ("c4", Value::Null));
        assert_eq!(texts[3], ("c5", Value::Null)); // past natts, no missing value
    }

    #[test]
    fn a_tuple_that_does_not_fit_names_relation_and_ctid() {
        let t = HeapTuple::from_parts(3, 0, 24, &[0, 5, 0, 0, 0]).unwrap();
        let e = deform(&desc(), &t, TID).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("relation public.t, ctid (3,7), column c2"),
            "{e}"
        );
        let t = HeapTuple::from_parts(9, 0, 24, &[0; 40]).unwrap();
        assert!(deform(&desc(), &t, TID)
            .unwrap_err()
            .to_string()
            .contains("9 attributes"));
    }

    /// A poor man's fuzzer that runs in every `cargo test`: random bytes through the deformer
    /// and every converter must give values or errors, never a panic.
    #[test]
    fn random_garbage_never_panics() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let d = desc();
        for round in 0..20_000 {
            let len = (next() % 96) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Ok(t) = HeapTuple::from_parts(
                (next() % 8) as u16,
                (next() % 4) as u16,
                23 + (next() % 4) as u8,
                &bytes,
            ) {
                let _ = decode_row(&d, &t, TID);
            }
            for oid in [
                16, 21, 23, 20, 700, 701, 1700, 25, 19, 18, 17, 2950, 1082, 1083, 1266, 1114, 1184,
                1186, 3802, 869, 650,
            ] {
                let _ = crate::values::text::scalar_out(
                    oid,
                    super::super::text::Raw::Varlena(&bytes),
                    15,
                );
            }
            let _ = crate::values::toast::parse_varlena(&bytes);
            let _ = crate::wal::pglz::decompress(&bytes, round % 300);
            let _ = crate::wal::tuple::tuple_from_page(&bytes, 1);
        }
    }
}
