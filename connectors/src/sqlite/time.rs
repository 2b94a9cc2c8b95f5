//! SQLite time values read as SQLite's own date and time functions read
//! them.
//!
//! A column declared `DATE`, `DATETIME` or `TIMESTAMP` holds whatever was
//! written to it. Spar reads every value that SQLite's `datetime(x,
//! 'auto')` reads, to the same instant:
//!
//! - text `YYYY-MM-DD` (a leading `-` for years before 1), optionally
//!   followed by any run of spaces and `T`s and a time;
//! - a time `HH:MM`, `HH:MM:SS` or `HH:MM:SS.F…` (any number of fraction
//!   digits), alone (on 2000-01-01) or after a date, optionally followed
//!   by `Z` or an offset `±HH:MM` (converted to UTC);
//! - `24:00` as midnight of the next day, and days past the end of their
//!   month carried into the next (`2023-02-31` is 2023-03-03), as SQLite's
//!   Julian day arithmetic does;
//! - a number (INTEGER, REAL or their text): a Julian day number from 0 to
//!   5373484.5 (exclusive), otherwise seconds since 1970 (SQLite's `auto`
//!   modifier).
//!
//! SQLite keeps milliseconds; Spar keeps the microseconds the text holds
//! (digits after the sixth are dropped). Dates must lie between
//! -4713-11-24 12:00 (Julian day 0) and 9999-12-31. Anything else (other
//! text, `now`, a BLOB) is not a time value: the reader reports it.

use chrono::{Duration, NaiveDate};
use rusqlite::types::ValueRef;

/// Milliseconds from Julian day 0 to 1970-01-01.
const JD_UNIX_EPOCH_MS: i64 = 210_866_760_000_000;
/// The last millisecond SQLite accepts: 9999-12-31 23:59:59.999.
const JD_MAX_MS: i64 = 464_269_060_799_999;

/// The instant (microseconds since 1970-01-01 UTC) SQLite reads from
/// `value`, or `None` if SQLite reads none.
pub(crate) fn time_value(value: ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Integer(i) => number(i as f64),
        ValueRef::Real(r) => number(r),
        ValueRef::Text(t) => text(std::str::from_utf8(t).ok()?),
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

/// The day (days since 1970-01-01) of the instant SQLite reads from
/// `value`, as SQLite's `date(x, 'auto')` gives it.
pub(crate) fn date_value(value: ValueRef<'_>) -> Option<i32> {
    let micros = time_value(value)?;
    i32::try_from(micros.div_euclid(86_400_000_000)).ok()
}

/// A Julian day number or a unix time, by its magnitude.
fn number(r: f64) -> Option<i64> {
    let ms = if (0.0..5_373_484.5).contains(&r) {
        (r * 86_400_000.0 + 0.5) as i64
    } else if (-210_866_760_000.0..=253_402_300_799.0).contains(&r) {
        (r * 1000.0 + JD_UNIX_EPOCH_MS as f64 + 0.5) as i64
    } else {
        return None;
    };
    from_julian_ms(ms)
}

fn from_julian_ms(ms: i64) -> Option<i64> {
    (0..=JD_MAX_MS)
        .contains(&ms)
        .then(|| (ms - JD_UNIX_EPOCH_MS) * 1000)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn text(s: &str) -> Option<i64> {
    if let Some(v) = date_time(s) {
        return v;
    }
    if let Some(time) = clock(s.as_bytes()) {
        let base = NaiveDate::from_ymd_opt(2000, 1, 1)?;
        return instant(base, time);
    }
    // A number, with spaces around it allowed as SQLite's parser allows
    // them; not `inf`, `nan` or hexadecimal, which SQLite does not read.
    let t = s.trim_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let numeric = !t.is_empty()
        && t.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && t.bytes().any(|c| c.is_ascii_digit());
    if !numeric {
        return None;
    }
    number(t.parse().ok()?)
}

/// `YYYY-MM-DD[ time]`: `None` when `s` is not of that form, `Some(None)`
/// when it is but names no instant SQLite accepts.
fn date_time(s: &str) -> Option<Option<i64>> {
    let b = s.as_bytes();
    let (negative, b) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2).filter(|m| (1..=12).contains(m))?;
    let day = digits(b, 8, 2).filter(|d| (1..=31).contains(d))?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let mut rest = &b[10..];
    while let Some((c, tail)) = rest.split_first() {
        if !is_space(*c) && *c != b'T' {
            break;
        }
        rest = tail;
    }
    let time = if rest.is_empty() {
        Clock::MIDNIGHT
    } else {
        clock(rest)?
    };
    let year = if negative { -year } else { year };
    if !(-4713..=9999).contains(&year) {
        return Some(None);
    }
    // Days past the end of the month carry into the next one.
    let first = NaiveDate::from_ymd_opt(year, month as u32, 1)?;
    let date = first.checked_add_signed(Duration::days(i64::from(day - 1)))?;
    Some(instant(date, time))
}

/// A time of day with its offset from UTC.
#[derive(Debug, Clone, Copy)]
struct Clock {
    hour: i64,
    minute: i64,
    /// Seconds and their fraction, in microseconds.
    micros: i64,
    /// Minutes east of UTC.
    offset: i64,
}

impl Clock {
    const MIDNIGHT: Self = Self {
        hour: 0,
        minute: 0,
        micros: 0,
        offset: 0,
    };
}

/// `date` at `time`, in microseconds since 1970 (within SQLite's range).
fn instant(date: NaiveDate, time: Clock) -> Option<i64> {
    let days = date
        .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    let micros = days * 86_400_000_000
        + (time.hour * 3600 + time.minute * 60 - time.offset * 60) * 1_000_000
        + time.micros;
    let ms = micros.div_euclid(1000) + JD_UNIX_EPOCH_MS;
    (0..=JD_MAX_MS).contains(&ms).then_some(micros)
}

/// `HH:MM[:SS[.F…]][ ][Z|±HH:MM][ ]` and nothing after it.
fn clock(b: &[u8]) -> Option<Clock> {
    let hour = digits(b, 0, 2).filter(|h| *h <= 24)?;
    (b.get(2) == Some(&b':')).then_some(())?;
    let minute = digits(b, 3, 2).filter(|m| *m <= 59)?;
    let mut rest = &b[5..];
    let mut micros = 0_i64;
    if let Some((b':', tail)) = rest.split_first() {
        let second = digits(tail, 0, 2).filter(|s| *s <= 59)?;
        micros = i64::from(second) * 1_000_000;
        rest = &tail[2..];
        if rest.first() == Some(&b'.') && rest.get(1).is_some_and(u8::is_ascii_digit) {
            rest = &rest[1..];
            let mut scale = 100_000;
            while let Some((c, tail)) = rest.split_first().filter(|(c, _)| c.is_ascii_digit()) {
                micros += i64::from(c - b'0') * scale;
                scale /= 10;
                rest = tail;
            }
        }
    }
    if hour == 24 && (minute != 0 || micros != 0) {
        return None;
    }
    let offset = zone(rest)?;
    Some(Clock {
        hour: i64::from(hour),
        minute: i64::from(minute),
        micros,
        offset,
    })
}

/// What may follow a time: spaces, then `Z` or `±HH:MM` or nothing, then
/// spaces. The offset in minutes east of UTC.
fn zone(b: &[u8]) -> Option<i64> {
    fn skip(mut b: &[u8]) -> &[u8] {
        while b.first().is_some_and(|c| is_space(*c)) {
            b = &b[1..];
        }
        b
    }
    let b = skip(b);
    let (offset, rest) = match b.first() {
        None => return Some(0),
        Some(b'Z' | b'z') => (0, &b[1..]),
        Some(sign @ (b'+' | b'-')) => {
            let hours = digits(b, 1, 2).filter(|h| *h <= 14)?;
            (b.get(3) == Some(&b':')).then_some(())?;
            let minutes = digits(b, 4, 2).filter(|m| *m <= 59)?;
            let offset = i64::from(hours * 60 + minutes);
            (if *sign == b'-' { -offset } else { offset }, &b[6..])
        }
        Some(_) => return None,
    };
    skip(rest).is_empty().then_some(offset)
}

/// The number written by the `n` ASCII digits at `at`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i32> {
    let part = b.get(at..at + n)?;
    part.iter().try_fold(0_i32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value SQLite's own `unixepoch(x, 'auto', 'subsec')` reads,
    /// Spar reads to the same millisecond; every value it does not, Spar
    /// refuses. (`now`, which SQLite reads as the time of the query, is
    /// refused too: a stored `now` is not a time.)
    #[test]
    fn instants_match_sqlites_own_functions() -> rusqlite::Result<()> {
        let db = rusqlite::Connection::open_in_memory()?;
        let texts = [
            "2024-01-01",
            "2024-02-29 13:45",
            "2024-02-29T13:45:07",
            "2024-02-29 T T13:45:07.5",
            "2024-02-29 13:45:07.123",
            "2024-02-29 13:45:07.123Z",
            "2024-02-29 13:45:07.123 +05:30",
            "2024-02-29 13:45-14:00",
            "2024-02-29 13:45z  ",
            "2024-12-31 24:00",
            "2023-02-31",
            "2023-02-29 10:00",
            "24:00",
            "07:30:15",
            "07:30 +01:00",
            "-0044-03-15",
            "0000-01-01",
            "-4713-11-24 12:00",
            "-4713-11-24 11:59",
            "9999-12-31 23:59:59.999",
            "9999-12-31 23:59 -01:00",
            "  2460000.5 ",
            "2460000",
            "1e6",
            "1700000000",
            "-1700000000",
            " 2024-01-01",
            "2024-01-01 garbage",
            "2024-1-01",
            "10000-01-01",
            "2024-13-01",
            "2024-01-00",
            "2024-01-01 25:00",
            "2024-01-01 12:60",
            "2024-01-01 12:00:60",
            "2024-01-01 24:00:01",
            "2024-01-01z",
            "2024-01-01 12:00 +15:00",
            "2024-01-01 12:00 - 01:00",
            "12:00 +01",
            "inf",
            "NaN",
            "0x10",
            "",
            "5373484.5",
            "253402300800",
        ];
        let mut values: Vec<rusqlite::types::Value> = texts
            .iter()
            .map(|t| rusqlite::types::Value::Text(t.to_string()))
            .collect();
        for n in [
            0_i64,
            2_440_588,
            5_373_484,
            1_700_000_000,
            -86_400,
            99_999_999_999,
        ] {
            values.push(rusqlite::types::Value::Integer(n));
        }
        for r in [2_460_000.25, 0.5, 1_700_000_000.125, -0.5, 5_373_484.4] {
            values.push(rusqlite::types::Value::Real(r));
        }
        let mut checked = 0;
        for value in &values {
            let sqlite: Option<i64> = db.query_row(
                "SELECT CAST(round(unixepoch(?1, 'auto', 'subsec') * 1000) AS INTEGER)",
                [value],
                |r| r.get(0),
            )?;
            let spar =
                time_value(rusqlite::types::ValueRef::from(value)).map(|us| us.div_euclid(1000));
            assert_eq!(spar, sqlite, "{value:?}");
            if sqlite.is_some() {
                checked += 1;
            }
        }
        assert!(checked > 25, "only {checked} values were times");
        Ok(())
    }

    #[test]
    fn microseconds_are_kept_and_dates_follow_the_instant() {
        let t = |s: &str| time_value(ValueRef::Text(s.as_bytes()));
        assert_eq!(t("1970-01-01 00:00:00.1234567"), Some(123_456));
        assert_eq!(t("1970-01-01T00:00:01.000001Z"), Some(1_000_001));
        let d = |s: &str| date_value(ValueRef::Text(s.as_bytes()));
        assert_eq!(d("1970-01-02 23:00 -05:00"), Some(2));
        assert_eq!(d("1969-12-31 23:59:59.999999"), Some(-1));
        assert_eq!(d("now"), None);
    }
}
