//! `strftime_now(format)`: the current date and time formatted like Python's
//! `datetime.now().strftime(format)` (glibc `strftime` directives), in UTC.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// A fixed "now" (Unix seconds) for the render running on this thread,
    /// set from [`RenderOptions::now`](super::RenderOptions::now).
    static FIXED_NOW: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Sets the fixed time for renders on this thread until dropped.
pub(crate) struct NowGuard {
    previous: Option<i64>,
}

impl NowGuard {
    pub(crate) fn set(now: Option<i64>) -> Self {
        let previous = FIXED_NOW.with(|c| c.replace(now));
        NowGuard { previous }
    }
}

impl Drop for NowGuard {
    fn drop(&mut self) {
        FIXED_NOW.with(|c| c.set(self.previous));
    }
}

fn now_seconds() -> i64 {
    FIXED_NOW.with(Cell::get).unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// The template function.
pub(crate) fn strftime_now(format: &str) -> String {
    strftime(now_seconds(), format)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A UTC calendar time.
struct Civil {
    year: i64,
    month: u32,   // 1..=12
    day: u32,     // 1..=31
    yday: u32,    // 1..=366
    weekday: u32, // 0 = Sunday
    hour: u32,
    minute: u32,
    second: u32,
}

fn civil(unix: i64) -> Civil {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day + u32::from(leap && month > 2);
    Civil {
        year,
        month,
        day,
        yday,
        weekday: (days + 4).rem_euclid(7) as u32,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
    }
}

/// Formats `unix` (UTC) with glibc `strftime` directives, including the
/// `%-d` (no padding) extension. Unknown directives are copied as they are.
pub(crate) fn strftime(unix: i64, format: &str) -> String {
    let t = civil(unix);
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let num = |n: i64, width: usize| {
            if no_pad {
                n.to_string()
            } else {
                format!("{n:0width$}")
            }
        };
        let hour12 = if t.hour.is_multiple_of(12) {
            12
        } else {
            t.hour % 12
        };
        let piece = match d {
            'Y' => t.year.to_string(),
            'y' => num(t.year.rem_euclid(100), 2),
            'C' => num(t.year.div_euclid(100), 2),
            'm' => num(i64::from(t.month), 2),
            'd' => num(i64::from(t.day), 2),
            'e' if no_pad => t.day.to_string(),
            'e' => format!("{:2}", t.day),
            'j' => num(i64::from(t.yday), 3),
            'H' => num(i64::from(t.hour), 2),
            'I' => num(i64::from(hour12), 2),
            'M' => num(i64::from(t.minute), 2),
            'S' => num(i64::from(t.second), 2),
            'p' => if t.hour < 12 { "AM" } else { "PM" }.to_string(),
            'B' => MONTHS[(t.month - 1) as usize].to_string(),
            'b' | 'h' => MONTHS[(t.month - 1) as usize][..3].to_string(),
            'A' => DAYS[t.weekday as usize].to_string(),
            'a' => DAYS[t.weekday as usize][..3].to_string(),
            'w' => t.weekday.to_string(),
            'u' => (if t.weekday == 0 { 7 } else { t.weekday }).to_string(),
            'F' => format!("{}-{:02}-{:02}", t.year, t.month, t.day),
            'T' => format!("{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
            'R' => format!("{:02}:{:02}", t.hour, t.minute),
            'D' => format!("{:02}/{:02}/{:02}", t.month, t.day, t.year.rem_euclid(100)),
            'Z' => "UTC".to_string(),
            'z' => "+0000".to_string(),
            's' => unix.to_string(),
            'n' => "\n".to_string(),
            't' => "\t".to_string(),
            '%' => "%".to_string(),
            other => {
                let mut s = String::from('%');
                if no_pad {
                    s.push('-');
                }
                s.push(other);
                s
            }
        };
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_glibc() {
        // 2024-07-26 13:25:09 UTC, a Friday, day 208 of a leap year.
        let t = 1_722_000_309;
        assert_eq!(strftime(t, "%d %b %Y"), "26 Jul 2024");
        assert_eq!(strftime(t, "%Y-%m-%dT%H:%M:%S"), "2024-07-26T13:25:09");
        assert_eq!(
            strftime(t, "%A %a %B %j %I%p %-d/%-m %e %%"),
            "Friday Fri July 208 01PM 26/7 26 %"
        );
        assert_eq!(strftime(0, "%F %T %w %u %Q"), "1970-01-01 00:00:00 4 4 %Q");
        assert_eq!(strftime(951_782_400, "%F %j"), "2000-02-29 060");
        assert_eq!(strftime(-86_400, "%F"), "1969-12-31");
    }
}
