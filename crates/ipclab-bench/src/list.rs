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
        if let Err(why) = t.available() {
            out.push_str(&format!("{:<18} NOT AVAILABLE here: {why}\n", ""));
        }
        for l in t.limits() {
            out.push_str(&format!("{:<18} {}: {}\n", "", l.name, l.value));
        }
    }
    out
}
