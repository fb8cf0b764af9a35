//! Datums as the text PostgreSQL's output functions print, natively, with the settings the
//! tool pins (TimeZone UTC, DateStyle ISO, IntervalStyle postgres, extra_float_digits 1,
//! bytea_output hex). Types not listed here come back undecoded, never guessed.

mod datetime;
mod inet;
mod jsonb;
mod number;

use std::fmt::Write as _;

use serde::Serialize;

use datetime::{date_out, encode_timezone, interval_out, time_out, timestamp_out, USECS_PER_DAY};
use inet::inet_out;
pub use jsonb::jsonb_out;
use number::fixed;
pub use number::{float_out, numeric_out};

use super::desc::{ElemType, RelDesc, TypeInfo};
use super::toast::{parse_varlena, payload, varsize_any, ToastPointer};

/// One column's value as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Value {
    /// NULL.
    Null,
    /// The text the type's output function prints.
    Text {
        /// The text.
        text: String,
    },
    /// Stored out of line: resolve it from the TOAST chunks (the lost WAL or the new primary's
    /// TOAST table), then [`super::toast::assemble`] and [`super::text::render_payload`].
    External {
        /// The pointer.
        pointer: ToastPointer,
    },
    /// A type this tool does not print natively: the stored bytes (varlena payload, or the
    /// fixed-length bytes) and the type's name. Never a guessed value.
    Undecoded {
        /// `typname`.
        type_name: String,
        /// The bytes, hex.
        hex: String,
    },
}

/// A datum's stored bytes, as the renderer takes them.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// A fixed-length value's bytes.
    Fixed(&'a [u8]),
    /// A varlena's payload (header removed, decompressed, assembled from TOAST chunks).
    Varlena(&'a [u8]),
    /// A C string without its NUL.
    CString(&'a [u8]),
}

impl Raw<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Raw::Fixed(b) | Raw::Varlena(b) | Raw::CString(b) => b,
        }
    }
}

/// Built-in type OIDs (stable across majors).
pub mod oid {
    #![allow(missing_docs)]
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn undecoded(typ_name: &str, raw: &[u8]) -> Value {
    Value::Undecoded {
        type_name: typ_name.to_string(),
        hex: hex(raw),
    }
}

/// Renders a datum of type `typ`: `Value::Text` for the types printed natively, else
/// `Value::Undecoded`; an error when the bytes are not a valid value of the type.
pub fn render(desc: &RelDesc, typ: &TypeInfo, raw: Raw<'_>) -> Result<Value, String> {
    if typ.typtype == b'e' {
        return Ok(Value::Text {
            text: enum_label(desc, raw.bytes())?,
        });
    }
    if let (Some(elem), Raw::Varlena(b)) = (&typ.elem, raw) {
        return Ok(match array_out(desc, elem, b)? {
            Some(text) => Value::Text { text },
            None => undecoded(&typ.name, b),
        });
    }
    Ok(match scalar_out(typ.oid, raw, desc.pg_major)? {
        Some(text) => Value::Text { text },
        None => undecoded(&typ.name, raw.bytes()),
    })
}

/// Renders the payload of an out-of-line value once assembled ([`super::toast::assemble`]).
pub fn render_payload(desc: &RelDesc, typ: &TypeInfo, payload: &[u8]) -> Result<Value, String> {
    render(desc, typ, Raw::Varlena(payload))
}

fn enum_label(desc: &RelDesc, b: &[u8]) -> Result<String, String> {
    let v = u32::from_le_bytes(fixed::<4>(b)?);
    desc.enums
        .get(&v)
        .cloned()
        .ok_or_else(|| format!("enum value OID {v} not in pg_enum"))
}

fn utf8(b: &[u8]) -> Result<Option<String>, String> {
    // A non-UTF-8 database: leave it undecoded rather than guess the encoding.
    Ok(std::str::from_utf8(b).ok().map(str::to_string))
}

/// The text of a scalar of built-in type `oid`; `None` for a type not printed natively.
pub fn scalar_out(type_oid: u32, raw: Raw<'_>, pg_major: u32) -> Result<Option<String>, String> {
    let b = raw.bytes();
    Ok(Some(match type_oid {
        oid::BOOL => match fixed::<1>(b)?[0] {
            0 => "f".into(),
            1 => "t".into(),
            v => return Err(format!("bool byte {v}")),
        },
        oid::INT2 => i16::from_le_bytes(fixed(b)?).to_string(),
        oid::INT4 => i32::from_le_bytes(fixed(b)?).to_string(),
        oid::INT8 => i64::from_le_bytes(fixed(b)?).to_string(),
        oid::OID => u32::from_le_bytes(fixed(b)?).to_string(),
        oid::FLOAT4 => float_out(f64::from(f32::from_le_bytes(fixed(b)?)), true),
        oid::FLOAT8 => float_out(f64::from_le_bytes(fixed(b)?), false),
        oid::CHAR => {
            let c = fixed::<1>(b)?[0];
            if c == 0 {
                String::new()
            } else if c < 0x80 {
                char::from(c).to_string()
            } else if pg_major >= 15 {
                format!("\\{:03o}", c)
            } else {
                return Ok(None); // PG13/14 print the raw byte: not text
            }
        }
        oid::NAME => {
            let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            match utf8(&b[..n])? {
                Some(s) => s,
                None => return Ok(None),
            }
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::JSON | oid::XML => match utf8(b)? {
            Some(s) => s,
            None => return Ok(None),
        },
        oid::BYTEA => format!("\\x{}", hex(b)),
        oid::UUID => {
            let u: [u8; 16] = fixed(b)?;
            let h = hex(&u);
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        oid::NUMERIC => numeric_out(b)?,
        oid::DATE => date_out(i32::from_le_bytes(fixed(b)?))?,
        oid::TIME => {
            let t = i64::from_le_bytes(fixed(b)?);
            if !(0..=USECS_PER_DAY).contains(&t) {
                return Err(format!("time {t} out of range"));
            }
            time_out(t)
        }
        oid::TIMETZ => {
            let t = i64::from_le_bytes(fixed(&b[..8.min(b.len())])?);
            let z = i32::from_le_bytes(fixed(b.get(8..).unwrap_or_default())?);
            if !(0..=USECS_PER_DAY).contains(&t) || z.unsigned_abs() > 15 * 3600 + 59 * 60 + 59 {
                return Err(format!("timetz ({t}, {z}) out of range"));
            }
            let mut s = time_out(t);
            encode_timezone(&mut s, z);
            s
        }
        oid::TIMESTAMP => timestamp_out(i64::from_le_bytes(fixed(b)?), false)?,
        oid::TIMESTAMPTZ => timestamp_out(i64::from_le_bytes(fixed(b)?), true)?,
        oid::INTERVAL => interval_out(b)?,
        oid::INET => inet_out(b, false)?,
        oid::CIDR => inet_out(b, true)?,
        oid::JSONB => jsonb_out(b)?,
        _ => return Ok(None),
    }))
}

// ------------------------------------------------------------------ arrays

/// `array_out` of an array payload; `None` when the element type is not printed natively.
fn array_out(desc: &RelDesc, elem: &ElemType, b: &[u8]) -> Result<Option<String>, String> {
    // ArrayType: ndim, dataoffset, elemtype, then dims[ndim], lbounds[ndim] (after the
    // 4-byte varlena header, which offsets and alignment count).
    let i32_at = |at: usize| -> Result<i32, String> {
        let c = b.get(at..at + 4).ok_or("array header beyond the value")?;
        Ok(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    };
    let ndim = i32_at(0)?;
    let dataoffset = i32_at(4)?;
    let elemtype = i32_at(8)? as u32;
    if ndim == 0 {
        return Ok(Some("{}".into()));
    }
    if !(1..=6).contains(&ndim) {
        return Err(format!("array with {ndim} dimensions"));
    }
    if elemtype != elem.oid {
        return Err(format!(
            "array of type {elemtype}, the column's element type is {}",
            elem.oid
        ));
    }
    let ndim = ndim as usize;
    let mut dims = Vec::with_capacity(ndim);
    let mut lbounds = Vec::with_capacity(ndim);
    let mut nitems: usize = 1;
    for d in 0..ndim {
        let n = i32_at(12 + 4 * d)?;
        let l = i32_at(12 + 4 * (ndim + d))?;
        let n = usize::try_from(n).map_err(|_| "negative array dimension")?;
        nitems = nitems
            .checked_mul(n)
            .filter(|x| *x <= b.len() * 8 + 1)
            .ok_or("array too large")?;
        dims.push(n);
        lbounds.push(l);
    }
    let hdr_end = 12 + 8 * ndim; // in the payload; +4 with the varlena header
    let (bitmap, data_start) = if dataoffset != 0 {
        let bm_len = nitems.div_ceil(8);
        let bm = b
            .get(hdr_end..hdr_end + bm_len)
            .ok_or("array null bitmap beyond the value")?;
        let ds = usize::try_from(dataoffset).map_err(|_| "negative dataoffset")?;
        (
            Some(bm),
            ds.checked_sub(4)
                .ok_or("array dataoffset inside the header")?,
        )
    } else {
        (None, (hdr_end + 4).next_multiple_of(8) - 4)
    };
    if data_start > b.len() {
        return Err("array data beyond the value".into());
    }
    // Offsets below count from the varlena start (payload offset + 4) for alignment.
    let elem_info = TypeInfo {
        oid: elem.oid,
        name: elem.name.clone(),
        typtype: elem.typtype,
        elem: None,
    };
    let mut items: Vec<Option<String>> = Vec::with_capacity(nitems);
    let mut off = data_start + 4;
    for i in 0..nitems {
        if let Some(bm) = bitmap {
            if bm[i >> 3] & (1 << (i & 7)) == 0 {
                items.push(None);
                continue;
            }
        }
        let align = match elem.align {
            b'c' => 1,
            b's' => 2,
            b'i' => 4,
            b'd' => 8,
            a => return Err(format!("element alignment {a}")),
        };
        off = off.next_multiple_of(align);
        let rest = b.get(off - 4..).ok_or("array element beyond the value")?;
        let (raw, len) = if elem.len == -1 {
            let len = varsize_any(rest)?;
            let v = parse_varlena(&rest[..len])?;
            (Err(v), len)
        } else if elem.len > 0 {
            let n = elem.len as usize;
            (
                Ok(rest.get(..n).ok_or("array element beyond the value")?),
                n,
            )
        } else {
            return Ok(None);
        };
        let value = match raw {
            Ok(f) => render(desc, &elem_info, Raw::Fixed(f))?,
            Err(v) => {
                let p = payload(&v)?;
                render(desc, &elem_info, Raw::Varlena(&p))?
            }
        };
        match value {
            Value::Text { text } => items.push(Some(text)),
            _ => return Ok(None),
        }
        off += len;
    }
    let mut s = String::new();
    if lbounds.iter().any(|l| *l != 1) {
        for (d, l) in dims.iter().zip(&lbounds) {
            let _ = write!(s, "[{}:{}]", l, i64::from(*l) + *d as i64 - 1);
        }
        s.push('=');
    }
    let mut idx = 0usize;
    array_level(&mut s, &dims, &items, &mut idx);
    Ok(Some(s))
}

fn array_level(s: &mut String, dims: &[usize], items: &[Option<String>], idx: &mut usize) {
    s.push('{');
    for i in 0..dims[0] {
        if i > 0 {
            s.push(',');
        }
        if dims.len() > 1 {
            array_level(s, &dims[1..], items, idx);
        } else {
            match items.get(*idx).and_then(Option::as_deref) {
                None => s.push_str("NULL"),
                Some(t) => push_array_item(s, t),
            }
            *idx += 1;
        }
    }
    s.push('}');
}

fn push_array_item(s: &mut String, t: &str) {
    let needs_quote = t.is_empty()
        || t.eq_ignore_ascii_case("NULL")
        || t.bytes().any(|c| {
            matches!(
                c,
                b'"' | b'\\' | b'{' | b'}' | b',' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c
            )
        });
    if !needs_quote {
        s.push_str(t);
        return;
    }
    s.push('"');
    for c in t.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
}

#[cfg(test)]
mod tests;
