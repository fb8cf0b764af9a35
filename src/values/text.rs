//! Datums as the text PostgreSQL's output functions print, natively, with the settings the
//! tool pins (TimeZone UTC, DateStyle ISO, IntervalStyle postgres, extra_float_digits 1,
//! bytea_output hex). Types not listed here come back undecoded, never guessed.

use std::fmt::Write as _;

use serde::Serialize;

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

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("{} bytes where {N} were expected", b.len()))
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

// ------------------------------------------------------------------ floats

/// `float4out`/`float8out` with extra_float_digits = 1 (the default since PG12): the shortest
/// text that reads back exactly, fixed-point when the decimal exponent is in [-4, 6) (float4)
/// or [-4, 15) (float8), else `d.ddde+XX`.
pub fn float_out(v: f64, is_float4: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust prints the shortest round-trip digits, as Ryu does.
    let sci = if is_float4 {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    let (neg, sci) = match sci.strip_prefix('-') {
        Some(s) => (true, s),
        None => (false, sci.as_str()),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let limit = if is_float4 { 6 } else { 15 };
    let mut s = String::with_capacity(digits.len() + 8);
    if neg {
        s.push('-');
    }
    if (-4..limit).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(&digits);
                s.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        } else {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            s.push_str(&digits);
        }
    } else {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        let _ = write!(
            s,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
    s
}

// ------------------------------------------------------------------ numeric

/// `numeric_out` of a numeric's varlena payload (short or long header, NaN, ±Infinity).
pub fn numeric_out(b: &[u8]) -> Result<String, String> {
    let h = u16::from_le_bytes(fixed(b.get(..2).ok_or("numeric without header")?)?);
    let (neg, weight, dscale, digits_at) = match h & 0xC000 {
        0xC000 => {
            return match h & 0xF000 {
                0xC000 => Ok("NaN".into()),
                0xD000 => Ok("Infinity".into()),
                0xF000 => Ok("-Infinity".into()),
                _ => Err(format!("numeric special header {h:#06x}")),
            }
        }
        0x8000 => {
            // NumericShort
            let w = if h & 0x0040 != 0 {
                (!0x3F_i32) | i32::from(h & 0x3F)
            } else {
                i32::from(h & 0x3F)
            };
            (h & 0x2000 != 0, w, i32::from((h & 0x1F80) >> 7), 2)
        }
        sign => {
            let w = i16::from_le_bytes(fixed(b.get(2..4).ok_or("numeric without weight")?)?);
            (sign == 0x4000, i32::from(w), i32::from(h & 0x3FFF), 4)
        }
    };
    let body = &b[digits_at..];
    if body.len() % 2 != 0 {
        return Err("numeric digits of odd length".into());
    }
    let digits: Vec<i32> = body
        .chunks_exact(2)
        .map(|c| i32::from(i16::from_le_bytes([c[0], c[1]])))
        .collect();
    if digits.iter().any(|d| !(0..10000).contains(d)) {
        return Err("numeric digit out of range".into());
    }
    if digits.len() > 10_000 || weight.abs() > 100_000 {
        return Err("numeric out of range".into());
    }
    let digit = |i: i32| -> i32 {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        }
    };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for d in 0..=weight {
            if d == 0 {
                let _ = write!(s, "{}", digit(d));
            } else {
                let _ = write!(s, "{:04}", digit(d));
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut frac = String::new();
        let mut d = weight + 1;
        while (frac.len() as i32) < dscale {
            let _ = write!(frac, "{:04}", digit(d));
            d += 1;
        }
        frac.truncate(dscale as usize);
        s.push_str(&frac);
    }
    Ok(s)
}

// ------------------------------------------------------------------ date and time

const USECS_PER_DAY: i64 = 86_400_000_000;
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;

/// `j2date`: a Julian day to (year, month, day).
fn j2date(jd: i64) -> Result<(i64, u32, u32), String> {
    if !(0..=i64::from(i32::MAX)).contains(&jd) {
        return Err(format!("julian day {jd} out of range"));
    }
    let mut julian = jd as u64 + 32044;
    let mut quad = julian / 146_097;
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146_097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = y as i64 - 4800;
    let quad = julian * 2141 / 65536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    Ok((year, month as u32, day as u32))
}

fn push_date(s: &mut String, year: i64, month: u32, day: u32) {
    let y = if year > 0 { year } else { -(year - 1) };
    let _ = write!(s, "{y:04}-{month:02}-{day:02}");
}

fn date_out(d: i32) -> Result<String, String> {
    match d {
        i32::MIN => return Ok("-infinity".into()),
        i32::MAX => return Ok("infinity".into()),
        _ => {}
    }
    let (y, m, day) = j2date(i64::from(d) + POSTGRES_EPOCH_JDATE)?;
    let mut s = String::with_capacity(13);
    push_date(&mut s, y, m, day);
    if y <= 0 {
        s.push_str(" BC");
    }
    Ok(s)
}

/// `AppendSeconds` with precision 6 and zero fill: `SS` or `SS.ffffff` without trailing zeros.
fn push_seconds(s: &mut String, sec: i64, fsec: i64) {
    let _ = write!(s, "{:02}", sec.unsigned_abs());
    if fsec != 0 {
        let f = format!("{:06}", fsec.unsigned_abs());
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
}

fn time_out(t: i64) -> String {
    let mut s = String::with_capacity(15);
    let (h, rem) = (t / 3_600_000_000, t % 3_600_000_000);
    let (m, rem) = (rem / 60_000_000, rem % 60_000_000);
    let _ = write!(s, "{h:02}:{m:02}:");
    push_seconds(&mut s, rem / 1_000_000, rem % 1_000_000);
    s
}

/// `EncodeTimezone` (ISO): `+HH`, `+HH:MM` or `+HH:MM:SS`; `tz` is seconds west of UTC.
fn encode_timezone(s: &mut String, tz: i32) {
    let mut sec = tz.unsigned_abs();
    let mut min = sec / 60;
    sec -= min * 60;
    let hour = min / 60;
    min -= hour * 60;
    s.push(if tz <= 0 { '+' } else { '-' });
    if sec != 0 {
        let _ = write!(s, "{hour:02}:{min:02}:{sec:02}");
    } else if min != 0 {
        let _ = write!(s, "{hour:02}:{min:02}");
    } else {
        let _ = write!(s, "{hour:02}");
    }
}

/// `timestamp_out` / `timestamptz_out` (in UTC: `+00`).
fn timestamp_out(ts: i64, tz: bool) -> Result<String, String> {
    match ts {
        i64::MIN => return Ok("-infinity".into()),
        i64::MAX => return Ok("infinity".into()),
        _ => {}
    }
    let mut date = ts / USECS_PER_DAY;
    let mut time = ts % USECS_PER_DAY;
    if time < 0 {
        time += USECS_PER_DAY;
        date -= 1;
    }
    let (y, m, d) = j2date(date + POSTGRES_EPOCH_JDATE)?;
    let mut s = String::with_capacity(32);
    push_date(&mut s, y, m, d);
    s.push(' ');
    s.push_str(&time_out(time));
    if tz {
        s.push_str("+00");
    }
    if y <= 0 {
        s.push_str(" BC");
    }
    Ok(s)
}

/// `interval_out` with IntervalStyle postgres.
fn interval_out(b: &[u8]) -> Result<String, String> {
    let b: [u8; 16] = fixed(b)?;
    let time = i64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
    let day = i32::from_le_bytes(b[8..12].try_into().unwrap_or_default());
    let month = i32::from_le_bytes(b[12..16].try_into().unwrap_or_default());
    // PG17+: infinite intervals.
    if time == i64::MIN && day == i32::MIN && month == i32::MIN {
        return Ok("-infinity".into());
    }
    if time == i64::MAX && day == i32::MAX && month == i32::MAX {
        return Ok("infinity".into());
    }
    let (year, mon) = (month / 12, month % 12);
    let hour = time / 3_600_000_000;
    let rem = time - hour * 3_600_000_000;
    let min = rem / 60_000_000;
    let rem = rem - min * 60_000_000;
    let sec = rem / 1_000_000;
    let fsec = rem - sec * 1_000_000;
    let mut s = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    for (value, unit) in [
        (i64::from(year), "year"),
        (i64::from(mon), "mon"),
        (i64::from(day), "day"),
    ] {
        if value == 0 {
            continue;
        }
        let _ = write!(
            s,
            "{}{}{value} {unit}{}",
            if is_zero { "" } else { " " },
            if is_before && value > 0 { "+" } else { "" },
            if value != 1 { "s" } else { "" }
        );
        is_before = value < 0;
        is_zero = false;
    }
    if is_zero || hour != 0 || min != 0 || sec != 0 || fsec != 0 {
        let minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;
        let _ = write!(
            s,
            "{}{}{:02}:{:02}:",
            if is_zero { "" } else { " " },
            if minus {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            },
            hour.unsigned_abs(),
            min.unsigned_abs()
        );
        push_seconds(&mut s, sec, fsec);
    }
    Ok(s)
}

// ------------------------------------------------------------------ inet, cidr

fn inet_out(b: &[u8], cidr: bool) -> Result<String, String> {
    let (family, bits) = match b {
        [f, bits, ..] => (*f, *bits),
        _ => return Err("inet shorter than its header".into()),
    };
    let addr = &b[2..];
    let mut s = String::new();
    let max_bits = match (family, addr.len()) {
        (2, 4) => {
            let _ = write!(s, "{}.{}.{}.{}", addr[0], addr[1], addr[2], addr[3]);
            32
        }
        (3, 16) => {
            ipv6_out(&mut s, addr);
            128
        }
        _ => {
            return Err(format!(
                "inet family {family} with {} address bytes",
                addr.len()
            ))
        }
    };
    if bits > max_bits {
        return Err(format!("inet mask length {bits}"));
    }
    if bits != max_bits || cidr {
        let _ = write!(s, "/{bits}");
    }
    Ok(s)
}

/// `inet_net_ntop_ipv6`: the longest run (first if tied) of two or more zero words becomes
/// `::`; an IPv4-compatible or -mapped address ends in dotted quad.
fn ipv6_out(s: &mut String, a: &[u8]) {
    let words: Vec<u16> = a
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut best, mut cur): ((i32, i32), (i32, i32)) = ((-1, 0), (-1, 0));
    for (i, w) in words.iter().enumerate() {
        let i = i as i32;
        if *w == 0 {
            if cur.0 == -1 {
                cur = (i, 1);
            } else {
                cur.1 += 1;
            }
        } else if cur.0 != -1 {
            if best.0 == -1 || cur.1 > best.1 {
                best = cur;
            }
            cur.0 = -1;
        }
    }
    if cur.0 != -1 && (best.0 == -1 || cur.1 > best.1) {
        best = cur;
    }
    if best.0 != -1 && best.1 < 2 {
        best.0 = -1;
    }
    for (i, w) in words.iter().enumerate() {
        let i = i as i32;
        if best.0 != -1 && i >= best.0 && i < best.0 + best.1 {
            if i == best.0 {
                s.push(':');
            }
            continue;
        }
        if i != 0 {
            s.push(':');
        }
        if i == 6 && best.0 == 0 && (best.1 == 6 || (best.1 == 5 && words[5] == 0xffff)) {
            let _ = write!(s, "{}.{}.{}.{}", a[12], a[13], a[14], a[15]);
            break;
        }
        let _ = write!(s, "{w:x}");
    }
    if best.0 != -1 && best.0 + best.1 == 8 {
        s.push(':');
    }
}

// ------------------------------------------------------------------ jsonb

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

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    let c = b
        .get(at..at + 4)
        .ok_or_else(|| format!("jsonb: 4 bytes at {at} beyond its {} bytes", b.len()))?;
    Ok(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

fn jsonb_container(b: &[u8], at: usize, s: &mut String, depth: usize) -> Result<(), String> {
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

fn jsonb_value(
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
fn escape_json(s: &mut String, t: &str) {
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
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgresql() {
        assert_eq!(float_out(1e15, false), "1e+15");
        assert_eq!(float_out(1e14, false), "100000000000000");
        assert_eq!(float_out(0.1, false), "0.1");
        assert_eq!(float_out(1e-5, false), "1e-05");
        assert_eq!(float_out(0.0001, false), "0.0001");
        assert_eq!(float_out(-1.5e300, false), "-1.5e+300");
        assert_eq!(float_out(f64::from(1e6_f32), true), "1e+06");
        assert_eq!(float_out(f64::from(123456.0_f32), true), "123456");
        assert_eq!(float_out(-0.0, false), "-0");
    }

    #[test]
    fn dates() {
        assert_eq!(date_out(0).unwrap(), "2000-01-01");
        assert_eq!(date_out(-10_957).unwrap(), "1970-01-01");
        assert_eq!(date_out(-730_119).unwrap(), "0001-01-01");
        assert_eq!(date_out(-730_120).unwrap(), "0001-12-31 BC");
        assert_eq!(
            timestamp_out(-1, true).unwrap(),
            "1999-12-31 23:59:59.999999+00"
        );
        assert!(date_out(-2_000_000_000).is_err());
    }

    #[test]
    fn intervals() {
        let iv = |t: i64, d: i32, m: i32| {
            let mut b = t.to_le_bytes().to_vec();
            b.extend(d.to_le_bytes());
            b.extend(m.to_le_bytes());
            interval_out(&b).unwrap()
        };
        assert_eq!(iv(0, 0, 0), "00:00:00");
        assert_eq!(
            iv(3_600_000_000 * 2, -1, 14),
            "1 year 2 mons -1 days +02:00:00"
        );
        assert_eq!(iv(-1_500_000, 0, 0), "-00:00:01.5");
    }

    #[test]
    fn inet() {
        assert_eq!(inet_out(&[2, 32, 10, 0, 0, 1], false).unwrap(), "10.0.0.1");
        assert_eq!(inet_out(&[2, 8, 10, 0, 0, 0], true).unwrap(), "10.0.0.0/8");
        let mut v6 = vec![3, 128];
        v6.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(inet_out(&v6, false).unwrap(), "2001:db8::1");
        let mut m = vec![3, 128];
        m.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
        assert_eq!(inet_out(&m, false).unwrap(), "::ffff:1.2.3.4");
        assert!(inet_out(&[2, 33, 1, 2, 3, 4], false).is_err());
        assert!(inet_out(&[9], false).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for b in [
            &[][..],
            &[0xff; 3],
            &[0x00, 0x80, 1],
            &[0, 0, 0, 0x20, 0xff, 0xff, 0xff, 0x7f],
        ] {
            let _ = jsonb_out(b);
            let _ = numeric_out(b);
            let _ = interval_out(b);
        }
        assert!(jsonb_out(&[1, 0, 0, 0x20, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
