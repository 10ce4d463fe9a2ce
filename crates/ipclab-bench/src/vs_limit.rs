//! `vs_limit`: how many times its matching limit a row costs, the limit
//! measured in the same run on the same placement (see
//! `mechanisms::limits`). 1 is at the floor; 3 is three times the floor.
//!
//! The matching limit of a row:
//!
//! - **pingpong, SIZE bytes**: the hand-over floor plus the payload floor.
//!   The hand-over floor is the p50 of `limit-spin` for a mechanism whose
//!   waiting side polls (`Row::polls`), of `limit-futex` for one that
//!   sleeps. The payload floor is what moving SIZE bytes each way adds to a
//!   spinning round trip: the p50 of `limit-copy` pingpong at SIZE minus
//!   that of `limit-spin` (never below 0; 0 for size 0). So a polling row
//!   is matched with `limit-copy` itself, and a sleeping one with a futex
//!   round trip that also writes and reads the payload both ways.
//! - **stream, SIZE bytes**: the throughput of `limit-copy` stream at SIZE,
//!   over the row's (messages per second, so size 0 works too).
//! - **oneshot**: none (`null`): fork, exec and set-up dominate, and no
//!   limit measures them.
//!
//! A row whose limit was not measured (`--no-limits`, a failed limit
//! cell) gets `null`.
//!
//! `vs_bare`, beside it: a pingpong row's p50 over the p50 of `limit-bare`
//! at the same size and condition, the bare hand-off (the minimal C
//! ping-pong's protocol, measured by the same harness). `limit-copy`'s
//! `vs_bare` is the cost of carrying a message through ipclab's own floor
//! rather than the bare loop; a spinning row's, how far it is from the
//! hand-off the hardware allows. `null` off pingpong, on `same-core`, and
//! when `limit-bare` was not measured.
//!
//! On `same-core`, two spinners hand over once per scheduler time slice,
//! so `limit-spin` and `limit-copy` are no floors there: a sleeping
//! pingpong row is matched with `limit-futex` alone, and every other row
//! gets `null`.

use crate::mechanisms::limits::{BARE, COPY, FUTEX, SPIN};
use std::borrow::Borrow;

use crate::results::Row;

/// The limit row `name` of `pattern` at `size` in `condition` (placement,
/// pairs, offered rate: a limit under the same load), if measured.
fn limit<'a, R: Borrow<Row>>(
    rows: &'a [R],
    name: &str,
    pattern: &str,
    size: usize,
    condition: &str,
) -> Option<&'a Row> {
    rows.iter().map(Borrow::borrow).find(|r| {
        r.mechanism == name && r.pattern == pattern && r.size == size && r.condition() == condition
    })
}

/// The p50 of a limit row; none from a limit that could not sustain the
/// offered rate (its round trips queued behind each other: no floor).
fn p50(row: Option<&Row>) -> Option<f64> {
    row.filter(|r| r.sustained != Some(false))
        .and_then(|r| r.rtt_ns)
        .map(|s| s.p50 as f64)
}

/// The figure of `row`'s matching limit, in the row's own unit: round-trip
/// nanoseconds (pingpong) or messages per second (stream).
pub fn matching_limit<R: Borrow<Row>>(rows: &[R], row: &Row) -> Option<f64> {
    let condition = row.condition();
    let at = |name: &str, size: usize| limit(rows, name, &row.pattern, size, &condition);
    if row.placement == "same-core" {
        // Two spinners on one CPU hand over once per scheduler time slice:
        // limit-spin and limit-copy measure the slice there, a floor of
        // nothing. Only a sleeping round trip has one: limit-futex.
        return match (row.pattern.as_str(), row.polls) {
            ("pingpong", false) => p50(at(FUTEX, 0)),
            _ => None,
        };
    }
    match row.pattern.as_str() {
        "pingpong" => {
            let spin = p50(at(SPIN, 0));
            let handover = if row.polls { spin } else { p50(at(FUTEX, 0)) }?;
            let payload = match (row.size, spin, p50(at(COPY, row.size))) {
                (0, _, _) => 0.0,
                (_, Some(spin), Some(copy)) => (copy - spin).max(0.0),
                _ => 0.0,
            };
            Some(handover + payload)
        }
        "stream" => at(COPY, row.size)
            .and_then(|r| r.throughput)
            .map(|t| t.messages_per_s),
        _ => None,
    }
}

/// `row`'s figure over its matching limit's (see the module comment).
pub fn vs_limit<R: Borrow<Row>>(rows: &[R], row: &Row) -> Option<f64> {
    if row.sustained == Some(false) {
        // Its p50 is queueing, not a cost per round trip.
        return None;
    }
    let floor = matching_limit(rows, row)?;
    let ratio = match row.pattern.as_str() {
        "pingpong" => row.rtt_ns.map(|s| s.p50 as f64)? / floor,
        "stream" => floor / row.throughput.map(|t| t.messages_per_s)?,
        _ => return None,
    };
    ratio.is_finite().then_some(ratio)
}

/// `row`'s p50 over `limit-bare`'s at the same size and condition (see
/// the module comment).
pub fn vs_bare<R: Borrow<Row>>(rows: &[R], row: &Row) -> Option<f64> {
    if row.pattern != "pingpong" || row.placement == "same-core" || row.sustained == Some(false) {
        return None;
    }
    let bare = p50(limit(rows, BARE, "pingpong", row.size, &row.condition()))?;
    let ratio = row.rtt_ns.map(|s| s.p50 as f64)? / bare;
    ratio.is_finite().then_some(ratio)
}

/// Sets `vs_limit` and `vs_bare` on every row from the rows as they are
/// now.
pub fn attach(rows: &mut [Row]) {
    let ratios: Vec<(Option<f64>, Option<f64>)> = rows
        .iter()
        .map(|r| (vs_limit(rows, r), vs_bare(rows, r)))
        .collect();
    for (row, (limit, bare)) in rows.iter_mut().zip(ratios) {
        row.vs_limit = limit;
        row.vs_bare = bare;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::{CpuPerMessage, Cpus, Throughput};
    use crate::stats::Stats;

    /// A row with only the figures the matching looks at.
    pub fn row(
        name: &str,
        family: &str,
        pattern: &str,
        size: usize,
        polls: bool,
        figure: f64,
    ) -> Row {
        let stats = Stats {
            min: figure as u64,
            p50: figure as u64,
            p90: (figure * 1.2) as u64,
            p99: (figure * 2.0) as u64,
            p999: (figure * 3.0) as u64,
            max: (figure * 4.0) as u64,
            mean: figure,
            stddev: 0.0,
        };
        Row {
            mechanism: name.into(),
            family: family.into(),
            sync: "test".into(),
            polls,
            copies_per_message: None,
            copies_why: String::new(),
            pattern: pattern.into(),
            size,
            placement: "cross-core".into(),
            remote: None,
            pairs: 1,
            oversubscription: Some(1.0),
            offered_rate: None,
            achieved_rate: None,
            sustained: None,
            cpus: Cpus {
                client: vec![0],
                server: vec![1],
            },
            iterations: 100,
            verified: true,
            rounds: 1.0,
            setup_ns: 0,
            teardown_ns: 0,
            rtt_ns: (pattern == "pingpong").then_some(stats),
            rtt_cdf: Vec::new(),
            rtt_uncorrected_ns: None,
            round_trips: None,
            pair_throughput: None,
            context_switches_per_message: None,
            throughput: (pattern == "stream").then_some(Throughput {
                bytes_per_s: figure * size as f64,
                messages_per_s: figure,
            }),
            oneshot_ns: (pattern == "oneshot").then_some(stats),
            cpu_ns_per_message: CpuPerMessage {
                client: 0.0,
                server: 0.0,
            },
            vs_limit: None,
            vs_limit_ci95: None,
            vs_bare: None,
            repetitions: Vec::new(),
            ci95: None,
        }
    }

    fn limits() -> Vec<Row> {
        vec![
            row(SPIN, "limit", "pingpong", 0, true, 200.0),
            row(FUTEX, "limit", "pingpong", 0, false, 5000.0),
            row(COPY, "limit", "pingpong", 64, true, 250.0),
            row(COPY, "limit", "pingpong", 4 << 20, true, 1_000_200.0),
            row(COPY, "limit", "stream", 64, true, 4e6),
        ]
    }

    #[test]
    fn pingpong_rows_match_their_way_of_waiting_plus_the_payload() {
        let mut rows = limits();
        rows.push(row(
            "shm-spin",
            "shared-memory",
            "pingpong",
            64,
            true,
            500.0,
        ));
        rows.push(row(
            "pipe",
            "message-passing",
            "pingpong",
            64,
            false,
            15_150.0,
        ));
        rows.push(row(
            "shm-futex",
            "shared-memory",
            "pingpong",
            4 << 20,
            false,
            2_010_000.0,
        ));
        rows.push(row("shm-spin", "shared-memory", "pingpong", 0, true, 300.0));
        attach(&mut rows);
        let ratio = |name: &str, size: usize| {
            rows.iter()
                .find(|r| r.mechanism == name && r.size == size && r.pattern == "pingpong")
                .and_then(|r| r.vs_limit)
                .unwrap()
        };
        // Polling: spin (200) + copy at 64 (250) - spin = 250.
        assert!((ratio("shm-spin", 64) - 2.0).abs() < 1e-9);
        // Sleeping: futex (5000) + the same 50 ns of payload.
        assert!((ratio("pipe", 64) - 3.0).abs() < 1e-9);
        // 4 MiB: futex + (1_000_200 - 200) of payload.
        assert!((ratio("shm-futex", 4 << 20) - 2.0).abs() < 1e-9);
        // Size 0 moves no payload: spin alone.
        assert!((ratio("shm-spin", 0) - 1.5).abs() < 1e-9);
        // The limits against themselves.
        assert!((ratio(SPIN, 0) - 1.0).abs() < 1e-9);
        assert!((ratio(FUTEX, 0) - 1.0).abs() < 1e-9);
        assert!((ratio(COPY, 64) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn stream_rows_match_the_copy_throughput_and_oneshot_nothing() {
        let mut rows = limits();
        rows.push(row("pipe", "message-passing", "stream", 64, false, 1e6));
        rows.push(row("pipe", "message-passing", "oneshot", 64, false, 1e6));
        attach(&mut rows);
        assert_eq!(rows[5].vs_limit, Some(4.0));
        assert_eq!(rows[6].vs_limit, None);
    }

    #[test]
    fn an_unsustained_rate_has_no_ratio_and_sets_no_floor() {
        let open = |mut r: Row, sustained| {
            r.offered_rate = Some(1000.0);
            r.sustained = Some(sustained);
            r
        };
        let limits: Vec<Row> = limits().into_iter().map(|r| open(r, false)).collect();
        let mechanism = open(
            row("pipe", "message-passing", "pingpong", 64, false, 50_000.0),
            true,
        );
        assert_eq!(vs_limit(&limits, &mechanism), None);
        let limits: Vec<Row> = limits.into_iter().map(|r| open(r, true)).collect();
        assert!(vs_limit(&limits, &mechanism).is_some());
        let slow = open(mechanism, false);
        assert_eq!(vs_limit(&limits, &slow), None);
    }

    #[test]
    fn no_limit_measured_means_null_and_placements_do_not_mix() {
        let mut rows = vec![row(
            "shm-spin",
            "shared-memory",
            "pingpong",
            64,
            true,
            500.0,
        )];
        attach(&mut rows);
        assert_eq!(rows[0].vs_limit, None);
        // A spin limit on another placement is not this row's.
        let mut other = row(SPIN, "limit", "pingpong", 0, true, 100.0);
        other.placement = "same-core".into();
        rows.push(other);
        attach(&mut rows);
        assert_eq!(rows[0].vs_limit, None);
        // Without limit-copy at this size, the hand-over floor alone.
        rows.push(row(SPIN, "limit", "pingpong", 0, true, 250.0));
        attach(&mut rows);
        assert_eq!(rows[0].vs_limit, Some(2.0));
    }

    #[test]
    fn same_core_has_only_the_futex_floor() {
        let mut rows: Vec<Row> = limits();
        rows.push(row(
            "pipe",
            "message-passing",
            "pingpong",
            64,
            false,
            6000.0,
        ));
        rows.push(row("shm-spin", "shared-memory", "pingpong", 64, true, 8e6));
        rows.push(row("pipe", "message-passing", "stream", 64, false, 1e6));
        for r in &mut rows {
            r.placement = "same-core".into();
        }
        let ratio = |name: &str, pattern: &str| {
            let r = rows
                .iter()
                .find(|r| r.mechanism == name && r.pattern == pattern)
                .unwrap();
            vs_limit(&rows, r)
        };
        // The futex floor alone, no payload term from spinning rows.
        assert_eq!(ratio("pipe", "pingpong"), Some(6000.0 / 5000.0));
        assert_eq!(ratio(FUTEX, "pingpong"), Some(1.0));
        assert_eq!(ratio("shm-spin", "pingpong"), None);
        assert_eq!(ratio(SPIN, "pingpong"), None);
        assert_eq!(ratio("pipe", "stream"), None);
    }

    #[test]
    fn vs_bare_sets_pingpong_rows_over_the_bare_hand_off_of_their_size() {
        let mut rows = vec![
            row(BARE, "limit", "pingpong", 64, true, 150.0),
            row(COPY, "limit", "pingpong", 64, true, 165.0),
            row("shm-spin", "shared-memory", "pingpong", 64, true, 300.0),
            row("shm-spin", "shared-memory", "pingpong", 4096, true, 900.0),
            row("shm-spin", "shared-memory", "stream", 64, true, 1e6),
        ];
        attach(&mut rows);
        assert_eq!(rows[0].vs_bare, Some(1.0));
        assert!((rows[1].vs_bare.unwrap() - 1.1).abs() < 1e-9);
        assert_eq!(rows[2].vs_bare, Some(2.0));
        // No limit-bare at 4 KiB; a stream has none.
        assert_eq!(rows[3].vs_bare, None);
        assert_eq!(rows[4].vs_bare, None);
        for r in &mut rows {
            r.placement = "same-core".into();
        }
        attach(&mut rows);
        assert!(rows.iter().all(|r| r.vs_bare.is_none()));
    }
}
