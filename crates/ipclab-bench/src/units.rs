//! Sizes and durations, as people write and read them.

/// Parses `4096`, `4K`, `4KiB`, `1M`, `2G` (binary multiples). Zero is
/// allowed only as a bare `0` (an empty message).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    if num.is_empty() {
        return Err(format!("'{s}' is not a size (write e.g. 64, 4K, 1M)"));
    }
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("'{s}' is not a size (suffixes: K, M, G)")),
    };
    let n: usize = num.parse().map_err(|_| format!("'{s}' is too large"))?;
    if n == 0 && shift != 0 {
        return Err(format!("'{s}' is zero; write 0 for empty messages"));
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses a duration: `500ms`, `2s`, `1.5s`, `100us`, `1m`.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (write e.g. 500ms, 2s)"))?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" | "" => 1e9,
        "m" | "min" => 60e9,
        _ => return Err(format!("'{s}' has an unknown unit (ns, us, ms, s, m)")),
    };
    let ns = value * scale;
    if !ns.is_finite() || ns > 1e15 {
        return Err(format!("'{s}' is too long"));
    }
    Ok(ns as u64)
}

/// `512 B`, `4 KiB`, `1 MiB`, `4 MiB + 1`: exact, for sizes in tables.
pub fn size(bytes: usize) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        let base = 1usize << shift;
        if bytes >= base {
            let (q, r) = (bytes / base, bytes % base);
            // Exact: `4 MiB+1` is a size of the conformance suite.
            return if r == 0 {
                format!("{q} {unit}")
            } else if r * 1000 < base {
                format!("{q} {unit}+{r}")
            } else {
                format!("{bytes} B")
            };
        }
    }
    format!("{bytes} B")
}

/// `123 ns`, `12.3 µs`, `1.23 ms`, `2.00 s`.
pub fn duration(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", three_figures(value))
}

/// `812 MiB/s`, `3.41 GiB/s`.
pub fn rate(bytes_per_s: f64) -> String {
    let units = ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"];
    let mut v = bytes_per_s;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{} {}", three_figures(v), units[i])
}

/// `1.23 M/s`, `456 k/s`.
pub fn count_rate(per_s: f64) -> String {
    let (v, unit) = if per_s >= 1e6 {
        (per_s / 1e6, "M/s")
    } else if per_s >= 1e3 {
        (per_s / 1e3, "k/s")
    } else {
        (per_s, "/s")
    };
    format!("{} {unit}", three_figures(v))
}

/// An offered rate from the command line: round trips per second with an
/// optional decimal `k` or `M` (`500`, `10k`, `1.5M`), or `max` (closed
/// loop, `None`).
pub fn parse_rate(s: &str) -> Result<Option<f64>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    let (number, scale) = match t.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match t.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (t, 1.0),
        },
    };
    let bad =
        || format!("'{s}' is not a rate (round trips per second, e.g. 500, 10k, 1.5M, or max)");
    let v = number.parse::<f64>().map_err(|_| bad())? * scale;
    if !v.is_finite() {
        return Err(bad());
    }
    if v < 1.0 {
        return Err(format!(
            "--rate {s} is below one round trip per second; give at least 1, or max"
        ));
    }
    if v > 1e9 {
        return Err(format!(
            "--rate {s} is above 1G round trips per second per pair"
        ));
    }
    Ok(Some(v))
}

/// A rate as the command line writes it: `1k/s`, `50k/s`, `2.5M/s`,
/// `300/s`.
pub fn rate_label(per_s: f64) -> String {
    let (v, unit) = if per_s >= 1e6 {
        (per_s / 1e6, "M")
    } else if per_s >= 1e3 {
        (per_s / 1e3, "k")
    } else {
        (per_s, "")
    };
    let v = format!("{v:.3}");
    let v = v.trim_end_matches('0').trim_end_matches('.');
    format!("{v}{unit}/s")
}

fn three_figures(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("max"), Ok(None));
        assert_eq!(parse_rate("1k"), Ok(Some(1000.0)));
        assert_eq!(parse_rate("2.5M"), Ok(Some(2.5e6)));
        assert_eq!(parse_rate(" 300 "), Ok(Some(300.0)));
        for bad in ["0", "abc", "", "-5", "1e999", "0.5", "5G", "nan", "inf"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(rate_label(1000.0), "1k/s");
        assert_eq!(rate_label(50_000.0), "50k/s");
        assert_eq!(rate_label(2.5e6), "2.5M/s");
        assert_eq!(rate_label(300.0), "300/s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("12"), Ok(12));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in [
            "abc",
            "0K",
            "-1",
            "",
            "4X",
            "1.5K",
            "99999999999999999999",
            "17179869184G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration_ns("2"), Ok(2_000_000_000));
        assert!(parse_duration_ns("fast").is_err());
        assert!(parse_duration_ns("-1s").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(duration(123.0), "123 ns");
        assert_eq!(duration(12_345.0), "12.3 µs");
        assert_eq!(duration(1_234_567.0), "1.23 ms");
        assert_eq!(rate(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GiB/s");
        assert_eq!(size(4096), "4 KiB");
        assert_eq!(size((4 << 20) + 1), "4 MiB+1");
        assert_eq!(size(4095), "4095 B");
    }
}
