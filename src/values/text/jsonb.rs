//! jsonb values as PostgreSQL prints them, from the binary container format.

use std::fmt::Write as _;

use crate::values::toast::{parse_varlena, payload, varsize_any};

use super::number::numeric_out;

const JB_CMASK: u32 = 0x0FFF_FFFF;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;

/// `jsonb_out` of a jsonb varlena payload (the binary container format of `jsonb.h`).
pub fn jsonb_out(b: &[u8]) -> Result<String, String> {
    let mut s = String::with_capacity(b.len() + 16);
    // Offsets inside the payload; the 4-byte varlena header keeps 4-alignment unchanged.
    jsonb_container(b, 0, &mut s, 0)?;
    Ok(s)
}

pub(super) fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    let c = b
        .get(at..at + 4)
        .ok_or_else(|| format!("jsonb: 4 bytes at {at} beyond its {} bytes", b.len()))?;
    Ok(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

pub(super) fn jsonb_container(
    b: &[u8],
    at: usize,
    s: &mut String,
    depth: usize,
) -> Result<(), String> {
    if depth > 1000 {
        return Err("jsonb nested too deeply".into());
    }
    let header = u32_at(b, at)?;
    let count = (header & JB_CMASK) as usize;
    let is_object = header & JB_FOBJECT != 0;
    let is_array = header & JB_FARRAY != 0;
    if is_object == is_array {
        return Err(format!("jsonb container header {header:#010x}"));
    }
    let n = if is_object { count * 2 } else { count };
    let entries_at = at + 4;
    let data_at = entries_at
        .checked_add(n.checked_mul(4).ok_or("jsonb count overflows")?)
        .filter(|d| *d <= b.len())
        .ok_or("jsonb entries beyond the value")?;
    let mut entries = Vec::with_capacity(n);
    let mut off = 0usize;
    for i in 0..n {
        let je = u32_at(b, entries_at + 4 * i)?;
        let field = (je & JENTRY_OFFLENMASK) as usize;
        let end = if je & JENTRY_HAS_OFF != 0 {
            field
        } else {
            off + field
        };
        if end < off || data_at + end > b.len() {
            return Err("jsonb entry beyond the value".into());
        }
        entries.push((je & JENTRY_TYPEMASK, data_at + off, data_at + end));
        off = end;
    }
    if header & JB_FSCALAR != 0 {
        if !is_array || count != 1 {
            return Err("jsonb scalar container without exactly one element".into());
        }
        return jsonb_value(b, entries[0], s, depth);
    }
    if is_array {
        s.push('[');
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            jsonb_value(b, *e, s, depth)?;
        }
        s.push(']');
    } else {
        s.push('{');
        for i in 0..count {
            if i > 0 {
                s.push_str(", ");
            }
            let k = entries[i];
            if k.0 != 0 {
                return Err("jsonb object key is not a string".into());
            }
            jsonb_value(b, k, s, depth)?;
            s.push_str(": ");
            jsonb_value(b, entries[count + i], s, depth)?;
        }
        s.push('}');
    }
    Ok(())
}

pub(super) fn jsonb_value(
    b: &[u8],
    (typ, start, end): (u32, usize, usize),
    s: &mut String,
    depth: usize,
) -> Result<(), String> {
    let v = &b[start..end];
    match typ {
        0x0000_0000 => {
            let t = std::str::from_utf8(v).map_err(|_| "jsonb string is not UTF-8")?;
            escape_json(s, t);
        }
        0x1000_0000 => {
            let p = start.next_multiple_of(4);
            let num = b.get(p..end).ok_or("jsonb numeric beyond its entry")?;
            let len = varsize_any(num)?;
            let n = parse_varlena(&num[..len])?;
            s.push_str(&numeric_out(&payload(&n)?)?);
        }
        0x2000_0000 => s.push_str("false"),
        0x3000_0000 => s.push_str("true"),
        0x4000_0000 => s.push_str("null"),
        0x5000_0000 => {
            let p = start.next_multiple_of(4);
            if p >= end {
                return Err("jsonb container entry too short".into());
            }
            jsonb_container(&b[..end], p, s, depth + 1)?;
        }
        t => return Err(format!("jsonb entry type {t:#010x}")),
    }
    Ok(())
}

/// `escape_json`.
pub(super) fn escape_json(s: &mut String, t: &str) {
    s.push('"');
    for c in t.chars() {
        match c {
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}
