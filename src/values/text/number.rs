//! Numbers as PostgreSQL prints them (float4/float8, numeric), and fixed-width reads.

use std::fmt::Write as _;

pub(super) fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("{} bytes where {N} were expected", b.len()))
}

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
