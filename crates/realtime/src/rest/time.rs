//! ISO 8601 timestamps as the device API writes them (`2024-05-01T12:00:00.000+02:00`),
//! to and from unix milliseconds. Dates before 1970 are refused: no device reports them.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `ms` as `YYYY-MM-DDTHH:MM:SS.mmm+00:00` (an offset, not `Z`, which older ISO parsers
/// such as Python's before 3.11 do not read).
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000
    )
}

/// Reads `YYYY-MM-DD`, optionally followed by `THH:MM[:SS[.fraction]]` and `Z` or an
/// offset `±HH:MM`/`±HHMM`. A space where the offset's `+` belongs is read as `+`: an
/// unescaped `+` in a query string arrives as a space.
pub fn parse_ms(text: &str) -> Option<i64> {
    let b = text.trim_start().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let mut i = 10;
    if matches!(b.get(i), Some(b'T') | Some(b't')) {
        let (hour, minute) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || hour > 23 || minute > 59 {
            return None;
        }
        ms += hour * 3_600_000 + minute * 60_000;
        i += 6;
        if b.get(i) == Some(&b':') {
            let second = num(i + 1, 2)?;
            if second > 60 {
                return None;
            }
            ms += second.min(59) * 1_000;
            i += 3;
            if matches!(b.get(i), Some(b'.') | Some(b',')) {
                i += 1;
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                let mut frac = 0;
                for (k, digit) in b[start..i].iter().take(3).enumerate() {
                    frac += i64::from(digit - b'0') * [100, 10, 1][k];
                }
                ms += frac;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-' | b' ')) => {
                let hours = num(i + 1, 2)?;
                let colon = usize::from(b.get(i + 3) == Some(&b':'));
                let minutes = num(i + 3 + colon, 2)?;
                if i + 5 + colon != b.len() || hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = hours * 3_600_000 + minutes * 60_000;
                ms += if *sign == b'-' { offset } else { -offset };
            }
            _ => return None,
        }
    } else if i != b.len() {
        return None;
    }
    (ms >= 0).then_some(ms)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_offsets_apply() {
        assert_eq!(parse_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000+00:00");
        let t = parse_ms("2024-02-29T23:59:58.123+00:00").unwrap();
        assert_eq!(format_ms(t), "2024-02-29T23:59:58.123+00:00");
        assert_eq!(parse_ms(&format_ms(t)), Some(t));
        assert_eq!(parse_ms("2024-02-29T23:59:58.123456Z"), Some(t));
        assert_eq!(parse_ms("2024-03-01T01:59:58.123+02:00"), Some(t));
        assert_eq!(parse_ms("2024-03-01T01:59:58.123 0200"), Some(t));
        assert_eq!(parse_ms("2024-02-29T22:59:58.123-01:00"), Some(t));
        assert_eq!(parse_ms("2024-03-01"), Some(t + 1_877), "midnight");
        assert_eq!(parse_ms("2024-03-01T00:00"), parse_ms("2024-03-01"));
        for bad in [
            "",
            "2024",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T25:00",
            "2024-01-01T10:00:00+",
            "2024-01-01T10:00:00Zx",
            "2024-01-01x",
            "1969-12-31",
            "2024-01-01T10:00:00.",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad:?}");
        }
    }
}
