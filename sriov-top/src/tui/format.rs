//! Numbers as short text for narrow columns.

/// A rate or count with an SI suffix in at most 6 characters: `999`,
/// `12.3k`, `999.9k`, `1.2M`, `3.4G`.
pub fn si(v: f64) -> String {
    let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
    if v < 999.5 {
        format!("{v:.0}")
    } else if v < 999_950.0 {
        format!("{:.1}k", v / 1e3)
    } else if v < 999_950_000.0 {
        format!("{:.1}M", v / 1e6)
    } else if v < 999_950_000_000.0 {
        format!("{:.1}G", v / 1e9)
    } else {
        format!("{:.1}T", v / 1e12)
    }
}

/// [`si`], or `-` when unknown.
pub fn si_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), si)
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// A duration in ns as `812 ns`, `1.9 µs`, `41.2 ms`, `1.20 s`.
pub fn ns(v: u64) -> String {
    let f = v as f64;
    if v < 1_000 {
        format!("{v} ns")
    } else if v < 1_000_000 {
        format!("{:.1} µs", f / 1e3)
    } else if v < 1_000_000_000 {
        format!("{:.1} ms", f / 1e6)
    } else {
        format!("{:.2} s", f / 1e9)
    }
}

/// Seconds since the start of the stream: `+12.345s`.
pub fn rel_time(ts_ns: u64, first_ns: u64) -> String {
    let d = ts_ns.saturating_sub(first_ns);
    format!(
        "+{}.{:03}s",
        d / 1_000_000_000,
        (d % 1_000_000_000) / 1_000_000
    )
}

/// `1 VF`, `3 VFs`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `on`, `off` or `-` (`+`, `-`, `?` when `short`).
pub fn flag(v: Option<bool>, short: bool) -> &'static str {
    match (v, short) {
        (Some(true), false) => "on",
        (Some(false), false) => "off",
        (None, false) => "-",
        (Some(true), true) => "+",
        (Some(false), true) => "-",
        (None, true) => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_fits_six_columns() {
        for (v, s) in [
            (0.0, "0"),
            (999.0, "999"),
            (999.6, "1.0k"),
            (12_345.0, "12.3k"),
            (999_000.0, "999.0k"),
            (1_234_567.0, "1.2M"),
            (3.4e9, "3.4G"),
            (-5.0, "0"),
            (f64::NAN, "0"),
        ] {
            assert_eq!(si(v), s, "{v}");
            assert!(si(v).len() <= 6);
        }
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(ns(812), "812 ns");
        assert_eq!(ns(1_900), "1.9 µs");
        assert_eq!(ns(41_200_331), "41.2 ms");
        assert_eq!(ns(1_200_000_000), "1.20 s");
        assert_eq!(rel_time(3_500_000_000, 1_000_000_000), "+2.500s");
        assert_eq!(rel_time(1, 5), "+0.000s");
        assert_eq!(mib(3 << 20), "3.0");
    }
}
