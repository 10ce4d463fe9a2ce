//! Where a cell's processes run: N pairs, each a client and a server with a
//! channel of its own, pinned by the placement.
//!
//! One pair is what ipclab measured first; more pairs are how a run shows
//! contention: 2N processes on the CPUs this process may use, oversubscribed
//! when there are more processes than CPUs. Every placement is defined for
//! any number of pairs:
//!
//! - `cross-core` (alias `spread`): the processes round-robin over the
//!   CPUs, client of pair i on CPU 2i mod n and its server on 2i+1 mod n, so
//!   that with two or more CPUs each pair's sides are on different ones.
//! - `same-core` (alias `packed`): both sides of pair i on CPU i mod n, so
//!   that every hand-over is a context switch, on as few CPUs as the pairs
//!   need.
//! - `unpinned`: the scheduler decides; the CPUs each side ran on are
//!   recorded.
//!
//! The supervisor forks every pair before any is measured, and the pairs
//! start their measured windows together (see `harness::window`).

use super::spec::Placement;

/// The most pairs a cell may run: 512 processes plus the supervisor's.
pub const MAX_PAIRS: usize = 256;

/// The CPUs of each pair, (client, server), for `pairs` pairs on `cpus`
/// (the CPUs a run may use, in order); `None` when unpinned.
pub fn pin(placement: Placement, pairs: usize, cpus: &[usize]) -> Option<Vec<(usize, usize)>> {
    if cpus.is_empty() {
        return None;
    }
    let at = |i: usize| cpus[i % cpus.len()];
    match placement {
        Placement::CrossCore => Some((0..pairs).map(|i| (at(2 * i), at(2 * i + 1))).collect()),
        Placement::SameCore => Some((0..pairs).map(|i| (at(i), at(i))).collect()),
        Placement::Unpinned => None,
    }
}

/// Processes per CPU: the pinned processes over the distinct CPUs they are
/// pinned to, or every process over the `allowed` CPUs when unpinned. Above
/// 1 the run is oversubscribed: some process waits for a CPU whenever all
/// want one.
pub fn oversubscription(pins: Option<&[(usize, usize)]>, pairs: usize, allowed: usize) -> f64 {
    let processes = 2 * pairs;
    let cpus = match pins {
        Some(pins) => {
            let mut used: Vec<usize> = pins.iter().flat_map(|&(c, s)| [c, s]).collect();
            used.sort_unstable();
            used.dedup();
            used.len()
        }
        None => allowed,
    };
    processes as f64 / cpus.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pair_is_the_placement_of_old() {
        assert_eq!(pin(Placement::CrossCore, 1, &[3, 5, 7]), Some(vec![(3, 5)]));
        assert_eq!(pin(Placement::SameCore, 1, &[3, 5, 7]), Some(vec![(3, 3)]));
        assert_eq!(pin(Placement::Unpinned, 1, &[3, 5]), None);
    }

    #[test]
    fn spread_keeps_every_pair_across_cores_and_packed_on_one() {
        let spread = pin(Placement::CrossCore, 4, &[0, 1]).unwrap();
        assert_eq!(spread, vec![(0, 1); 4]);
        let spread = pin(Placement::CrossCore, 3, &[0, 1, 2]).unwrap();
        assert_eq!(spread, vec![(0, 1), (2, 0), (1, 2)]);
        assert!(spread.iter().all(|(c, s)| c != s));
        let packed = pin(Placement::SameCore, 3, &[0, 1]).unwrap();
        assert_eq!(packed, vec![(0, 0), (1, 1), (0, 0)]);
    }

    #[test]
    fn oversubscription_counts_processes_per_cpu_used() {
        let one = pin(Placement::CrossCore, 1, &[0, 1]);
        assert_eq!(oversubscription(one.as_deref(), 1, 2), 1.0);
        let same = pin(Placement::SameCore, 1, &[0, 1]);
        assert_eq!(oversubscription(same.as_deref(), 1, 2), 2.0);
        let eight = pin(Placement::CrossCore, 8, &[0, 1]);
        assert_eq!(oversubscription(eight.as_deref(), 8, 2), 8.0);
        assert_eq!(oversubscription(None, 4, 2), 4.0);
    }
}
