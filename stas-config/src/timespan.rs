//! The time-span syntax of `zeroconf-connections-persistence` (docs/behaviour.md §3.11):
//! upstream's vendored "pytimeparse", reproduced rule for rule.
//!
//! [`parse`] first tries the whole text as a Python `float()`, then the
//! anchored, case-insensitive formats, in this order:
//!
//! * free form `[D days][H hours][M minutes][S seconds]` (each part
//!   optional, numbers `[0-9.]+`, parts optionally followed by `,` or `/`);
//! * `M:SS[.frac]`;
//! * `[D days] H:MM:SS[.frac]`;
//! * `D:HH:MM:SS[.frac]`;
//! * `:SS[.frac]`.
//!
//! The regular expressions are hand-compiled: every unit keyword starts with
//! a letter and every part starts with a digit or `.`, so the longest match
//! of each piece is the only one that can lead to a whole-string match, and
//! no backtracking is needed.

/// Seconds per day, hour, minute, second.
const MULTIPLIERS: [f64; 4] = [86_400.0, 3_600.0, 60.0, 1.0];

/// Unit keywords per part (days, hours, minutes, seconds), longest first
/// so that the first prefix match is the longest one.
const UNITS: [&[&str]; 4] = [
    &["days", "day", "dys", "dy", "d"],
    &["hours", "hour", "hrs", "hr", "h"],
    &["minutes", "minute", "mins", "min", "m"],
    &["seconds", "second", "secs", "sec", "s"],
];

/// Parses a time span into seconds; `None` when the text matches no format.
///
/// Integer versus float results are not distinguished (upstream only shows
/// the difference when printing).
pub fn parse(text: &str) -> Option<f64> {
    if let Some(v) = python_float(text) {
        return Some(v);
    }
    let rest = text.trim_start();
    let negative = rest.starts_with('-');
    let rest = rest.strip_prefix(['+', '-', '|']).unwrap_or(rest);
    // All formats allow surrounding whitespace.
    let body = rest.trim();
    if body.is_empty() {
        return None;
    }
    let parts = free_form(body)
        .or_else(|| min_clock(body))
        .or_else(|| hour_clock(body))
        .or_else(|| day_clock(body))
        .or_else(|| sec_clock(body))?;
    combine(&parts, negative)
}

/// What a format captured: the number text of days, hours, minutes and
/// seconds, each possibly absent.
type Parts<'a> = [Option<&'a str>; 4];

/// Sums the parts exactly like upstream, including its integer/float rules
/// and the odd placement of the sign in the "integer seconds" case.
fn combine(parts: &Parts<'_>, negative: bool) -> Option<f64> {
    let sign = if negative { -1.0 } else { 1.0 };
    let is_int = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    // `[0-9.]+` also matches "1.2.3" or "."; upstream's float() then
    // raises, which we report as no match.
    let number = |v: &str| -> Option<f64> {
        if v.bytes().filter(|&b| b == b'.').count() > 1 || !v.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse::<f64>().ok()
    };
    let present = parts
        .iter()
        .zip(MULTIPLIERS)
        .filter_map(|(p, m)| p.map(|v| (v, m)));
    if parts.iter().flatten().all(|v| is_int(v)) {
        let mut sum = 0.0;
        for (v, m) in present {
            sum += m * number(v)?;
        }
        return Some(sign * sum);
    }
    match parts[3] {
        Some(secs) if !is_int(secs) => {
            let mut sum = 0.0;
            for (v, m) in present {
                sum += m * number(v)?;
            }
            Some(sign * sum)
        }
        secs => {
            // Upstream: sign * int(sum of the other parts) + int(secs).
            let mut sum = 0.0;
            for (v, m) in present.filter(|&(_, m)| m > 1.0) {
                sum += m * number(v)?;
            }
            let secs = match secs {
                Some(s) => number(s)?,
                None => 0.0,
            };
            Some(sign * sum.trunc() + secs)
        }
    }
}

/// Python's `float()`: surrounding whitespace, optional sign, decimal or
/// exponent notation, `_` between digits, `inf`/`infinity`/`nan` in any case.
fn python_float(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let cleaned;
    let t = if t.contains('_') {
        let b = t.as_bytes();
        let ok = b.iter().enumerate().all(|(i, &c)| {
            c != b'_'
                || (i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        });
        if !ok {
            return None;
        }
        cleaned = t.replace('_', "");
        cleaned.as_str()
    } else {
        t
    };
    // Rust's grammar is Python's minus the underscores, except that Rust
    // also takes a few spellings Python rejects; exclude those.
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let lower = unsigned.to_ascii_lowercase();
    let word = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if !word
        && !unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Consumes leading whitespace.
fn skip_ws(s: &str) -> &str {
    s.trim_start()
}

/// `[0-9.]+` at the start of `s`: (number, rest).
fn take_number(s: &str) -> Option<(&str, &str)> {
    let end = s
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(s.len());
    (end > 0).then(|| s.split_at(end))
}

/// `\d{min,max}` at the start of `s` (`max` = `usize::MAX` for `+`).
fn take_digits(s: &str, min: usize, max: usize) -> Option<(&str, &str)> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end < min {
        return None;
    }
    Some(s.split_at(end.min(max)))
}

/// `\d{2}(?:\.\d+)?` at the start of `s`.
fn take_clock_secs(s: &str) -> Option<(&str, &str)> {
    let (two, rest) = take_digits(s, 2, 2)?;
    let mut len = two.len();
    if let Some(after_dot) = rest.strip_prefix('.') {
        if let Some((frac, _)) = take_digits(after_dot, 1, usize::MAX) {
            len += 1 + frac.len();
        }
    }
    Some(s.split_at(len))
}

/// A unit keyword of part `idx` at the start of `s` (case-insensitive).
fn take_unit(s: &str, idx: usize) -> Option<&str> {
    UNITS.get(idx)?.iter().find_map(|u| {
        s.get(..u.len())
            .filter(|head| head.eq_ignore_ascii_case(u))
            .map(|_| &s[u.len()..])
    })
}

/// Which part a unit keyword at the start of `s` belongs to.
fn unit_part(s: &str) -> Option<(usize, &str)> {
    (0..UNITS.len()).find_map(|i| take_unit(s, i).map(|rest| (i, rest)))
}

/// `\s*(?:[,/]\s*)?` after a days/hours/minutes part.
fn skip_separator(s: &str) -> &str {
    let s = skip_ws(s);
    match s.strip_prefix([',', '/']) {
        Some(rest) => skip_ws(rest),
        None => s,
    }
}

/// The optional `D days` prefix shared by the free form and `H:MM:SS`:
/// returns (days, rest) or (None, s) unchanged.
fn take_days_part(s: &str) -> (Option<&str>, &str) {
    if let Some((num, rest)) = take_number(s) {
        if let Some(rest) = take_unit(skip_ws(rest), 0) {
            return (Some(num), skip_separator(rest));
        }
    }
    (None, s)
}

/// `[D days][H hours][M minutes][S seconds]` over the whole (trimmed) text.
fn free_form(mut s: &str) -> Option<Parts<'_>> {
    let mut parts: Parts<'_> = [None; 4];
    let mut next = 0;
    while !s.is_empty() {
        let (num, rest) = take_number(s)?;
        let (idx, rest) = unit_part(skip_ws(rest))?;
        if idx < next {
            return None;
        }
        if let Some(part) = parts.get_mut(idx) {
            *part = Some(num);
        }
        next = idx + 1;
        // No separator may follow the seconds part.
        s = if idx == 3 {
            skip_ws(rest)
        } else {
            skip_separator(rest)
        };
    }
    Some(parts)
}

/// `M:SS[.frac]` with 1–2 digit minutes.
fn min_clock(s: &str) -> Option<Parts<'_>> {
    let (mins, rest) = take_digits(s, 1, 2)?;
    let (secs, rest) = take_clock_secs(rest.strip_prefix(':')?)?;
    rest.is_empty()
        .then_some([None, None, Some(mins), Some(secs)])
}

/// `[D days] H:MM:SS[.frac]`.
fn hour_clock(s: &str) -> Option<Parts<'_>> {
    let (days, s) = take_days_part(s);
    let (hours, rest) = take_digits(s, 1, usize::MAX)?;
    let (mins, rest) = take_digits(rest.strip_prefix(':')?, 2, 2)?;
    let (secs, rest) = take_clock_secs(rest.strip_prefix(':')?)?;
    rest.is_empty()
        .then_some([days, Some(hours), Some(mins), Some(secs)])
}

/// `D:HH:MM:SS[.frac]`.
fn day_clock(s: &str) -> Option<Parts<'_>> {
    let (days, rest) = take_digits(s, 1, usize::MAX)?;
    let (hours, rest) = take_digits(rest.strip_prefix(':')?, 2, 2)?;
    let (mins, rest) = take_digits(rest.strip_prefix(':')?, 2, 2)?;
    let (secs, rest) = take_clock_secs(rest.strip_prefix(':')?)?;
    rest.is_empty()
        .then_some([Some(days), Some(hours), Some(mins), Some(secs)])
}

/// `:SS[.frac]`.
fn sec_clock(s: &str) -> Option<Parts<'_>> {
    let (secs, rest) = take_clock_secs(s.strip_prefix(':')?)?;
    rest.is_empty().then_some([None, None, None, Some(secs)])
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn check(input: &str, expected: Option<f64>) {
        let got = parse(input);
        match (got, expected) {
            (Some(g), Some(e)) => assert!(
                g == e || (g.is_nan() && e.is_nan()),
                "{input:?}: got {g}, expected {e}"
            ),
            (g, e) => assert_eq!(g, e, "{input:?}"),
        }
    }

    #[test]
    fn upstream_test_vectors() {
        for (input, expected) in [
            ("1", Some(1.0)),
            ("1s", Some(1.0)),
            ("1 sec", Some(1.0)),
            ("1 second", Some(1.0)),
            ("1 seconds", Some(1.0)),
            ("1:01", Some(61.0)),
            ("1 day", Some(86400.0)),
            ("1 hour", Some(3600.0)),
            ("1 min", Some(60.0)),
            ("0.5", Some(0.5)),
            ("-1", Some(-1.0)),
            (":22", Some(22.0)),
            ("1 minute, 24 secs", Some(84.0)),
            ("1.2 minutes", Some(72.0)),
            ("1.2 seconds", Some(1.2)),
            ("- 1 minute", Some(-60.0)),
            ("+ 1 minute", Some(60.0)),
            ("blah", None),
        ] {
            check(input, expected);
        }
    }

    #[test]
    fn additional_vectors() {
        for (input, expected) in [
            ("72hours", Some(259200.0)),
            ("72 hours", Some(259200.0)),
            ("3 days 5 hours", Some(277200.0)),
            ("5days", Some(432000.0)),
            ("3d5h", Some(277200.0)),
            ("1h30m", Some(5400.0)),
            ("2 hrs", Some(7200.0)),
            ("2hr", Some(7200.0)),
            ("10 seconds", Some(10.0)),
            ("1m24s", Some(84.0)),
            ("90m", Some(5400.0)),
            ("1:02:03", Some(3723.0)),
            ("1 day 1:02:03", Some(90123.0)),
            ("1:02:03:04", Some(93784.0)),
            ("1:00:00.5", Some(3600.5)),
            ("1d/2h", Some(93600.0)),
            ("1d, 2h", Some(93600.0)),
            ("1.5d", Some(129600.0)),
            ("3 dys", Some(259200.0)),
            ("10 mins", Some(600.0)),
            ("1H", Some(3600.0)),
            ("1D", Some(86400.0)),
            ("2 DAYS", Some(172800.0)),
            ("01:02", Some(62.0)),
            ("1:2", None),
            ("0", Some(0.0)),
            ("1e3", Some(1000.0)),
            ("-72hours", Some(-259200.0)),
            ("+3d", Some(259200.0)),
            ("", None),
            ("   ", None),
            ("1 week", None),
            ("inf", Some(f64::INFINITY)),
            ("nan", Some(f64::NAN)),
        ] {
            check(input, expected);
        }
    }

    #[test]
    fn upstream_quirks() {
        // The sign applies only to the truncated non-seconds part when the
        // seconds are an integer.
        check("-1.5 min 30 s", Some(-60.0));
        check("|1 min", Some(60.0));
        check("1.5 min 1.5 s", Some(91.5));
        check("-1.5 min 1.5 s", Some(-91.5));
        // Truncation of the non-seconds part.
        check("0.01 min", Some(0.0));
        // Separators: never after the seconds, at most one between parts.
        check("1s,", None);
        check("1d,,2h", None);
        check("1d , 2h", Some(93600.0));
        // Order is fixed.
        check("1h 1d", None);
        check("1d1d", None);
        // Numbers upstream's float() would choke on.
        check("1.2.3 s", None);
        check(". s", None);
        // Python float() spellings.
        check(" 1_000 ", Some(1000.0));
        check("1__0", None);
        check("-inf", Some(f64::NEG_INFINITY));
        check("Infinity", Some(f64::INFINITY));
        check(".5", Some(0.5));
        check("0x10", None);
        // Clock forms.
        check("1 day, 1:02:03", Some(90123.0));
        check("123:45", None);
        check("1:02:03.25", Some(3723.25));
        check(":5", None);
        check("1:02:3", None);
        check("  1 Hours  ", Some(3600.0));
        check("1 ms", None);
    }
}
