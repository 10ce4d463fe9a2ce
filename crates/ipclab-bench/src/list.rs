//! `ipclab list`: every mechanism, how it synchronises, and this machine's
//! limits that shape it.

use crate::mechanisms::REGISTRY;
use crate::mechanisms::limits::LIMITS;

pub fn render() -> String {
    let mut out = String::new();
    // The limits last: every run measures them beside what it was given.
    for t in REGISTRY.iter().chain(LIMITS) {
        let info = t.info();
        out.push_str(&format!(
            "{:<18} {:<16} {}\n{:<18} sync: {}\n",
            info.name,
            info.family.as_str(),
            info.summary,
            "",
            info.sync
        ));
        let copies = info
            .copies
            .count
            .map_or("uncertain".to_string(), |n| n.to_string());
        out.push_str(&format!(
            "{:<18} copies per message: {copies} ({})\n",
            "", info.copies.why
        ));
        if let Err(why) = t.available() {
            out.push_str(&format!("{:<18} NOT AVAILABLE here: {why}\n", ""));
        }
        for l in t.limits() {
            out.push_str(&format!("{:<18} {}: {}\n", "", l.name, l.value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Family;

    /// Every mechanism says how often it copies the payload and where; the
    /// kernel's message passing copies at least in and out.
    #[test]
    fn every_mechanism_counts_its_copies() {
        for t in REGISTRY.iter().chain(LIMITS) {
            let info = t.info();
            assert!(!info.copies.why.is_empty(), "{}", info.name);
            if info.family == Family::MessagePassing {
                assert!(
                    info.copies.count.is_none_or(|n| n >= 1),
                    "{}: {:?}",
                    info.name,
                    info.copies
                );
            }
        }
        assert!(render().contains("copies per message: 2 (into the kernel"));
    }
}
