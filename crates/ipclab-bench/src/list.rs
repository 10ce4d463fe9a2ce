//! `ipclab list`: every mechanism, how it synchronises, and this machine's
//! limits that shape it.

use crate::mechanisms::REGISTRY;
use crate::mechanisms::limits::LIMITS;
use crate::transport::HostileSender;

pub fn render() -> String {
    let mut out = String::new();
    // The limits last: every run measures them beside what it was given.
    for t in REGISTRY.iter().chain(LIMITS) {
        let info = t.info();
        out.push_str(&format!(
            "{:<22} {:<16} {}\n{:<22} sync: {}\n",
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
            "{:<22} copies per message: {copies} ({})\n",
            "", info.copies.why
        ));
        match t.hostile_sender() {
            Some(HostileSender::Safe(why)) => {
                out.push_str(&format!("{:<22} hostile sender: safe ({why})\n", ""))
            }
            Some(HostileSender::Trusted(why)) => out.push_str(&format!(
                "{:<22} hostile sender: TRUSTED, not safe ({why})\n",
                ""
            )),
            None => {}
        }
        if let Err(why) = t.available() {
            out.push_str(&format!("{:<22} NOT AVAILABLE here: {why}\n", ""));
        }
        for l in t.limits() {
            out.push_str(&format!("{:<22} {}: {}\n", "", l.name, l.value));
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

    /// Every shmchan row says whether it is safe with a hostile sender:
    /// the copying ones are, the in-place ones trust their sender.
    #[test]
    fn shmchan_rows_say_whether_a_hostile_sender_is_safe() {
        for t in REGISTRY
            .iter()
            .filter(|t| t.info().name.starts_with("shmchan"))
        {
            let name = t.info().name;
            match t.hostile_sender() {
                Some(HostileSender::Safe(_)) => assert!(!name.contains("loan"), "{name}"),
                Some(HostileSender::Trusted(_)) => assert!(name.contains("loan"), "{name}"),
                None => panic!("{name} does not say"),
            }
        }
        let out = render();
        assert!(out.contains("hostile sender: safe") && out.contains("hostile sender: TRUSTED"));
    }
}
