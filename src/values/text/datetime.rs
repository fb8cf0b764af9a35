//! Dates, times, timestamps and intervals as PostgreSQL prints them (DateStyle ISO, TimeZone UTC).

use std::fmt::Write as _;

use super::number::fixed;

pub(super) const USECS_PER_DAY: i64 = 86_400_000_000;
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;

/// `j2date`: a Julian day to (year, month, day).
pub(super) fn j2date(jd: i64) -> Result<(i64, u32, u32), String> {
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

pub(super) fn push_date(s: &mut String, year: i64, month: u32, day: u32) {
    let y = if year > 0 { year } else { -(year - 1) };
    let _ = write!(s, "{y:04}-{month:02}-{day:02}");
}

pub(super) fn date_out(d: i32) -> Result<String, String> {
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
pub(super) fn push_seconds(s: &mut String, sec: i64, fsec: i64) {
    let _ = write!(s, "{:02}", sec.unsigned_abs());
    if fsec != 0 {
        let f = format!("{:06}", fsec.unsigned_abs());
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
}

pub(super) fn time_out(t: i64) -> String {
    let mut s = String::with_capacity(15);
    let (h, rem) = (t / 3_600_000_000, t % 3_600_000_000);
    let (m, rem) = (rem / 60_000_000, rem % 60_000_000);
    let _ = write!(s, "{h:02}:{m:02}:");
    push_seconds(&mut s, rem / 1_000_000, rem % 1_000_000);
    s
}

/// `EncodeTimezone` (ISO): `+HH`, `+HH:MM` or `+HH:MM:SS`; `tz` is seconds west of UTC.
pub(super) fn encode_timezone(s: &mut String, tz: i32) {
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
pub(super) fn timestamp_out(ts: i64, tz: bool) -> Result<String, String> {
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
pub(super) fn interval_out(b: &[u8]) -> Result<String, String> {
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
