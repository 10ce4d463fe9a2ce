//! Removing ipclab's objects whose creator is dead (or all of them).

use std::io;
use std::path::Path;

use super::listing::{self, Found, Removal};
use super::marks;
use super::owned;
use super::registry;
use super::sysv;
use super::zenoh_shm;

/// What `clean` did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Cleaned {
    /// One line per object removed.
    pub removed: Vec<String>,
    /// Objects kept because their creator is alive.
    pub kept: usize,
    /// Registry files without an object, removed.
    pub records: usize,
    /// One line per object that could not be removed.
    pub errors: Vec<String>,
}

/// Removes every object of ours whose creator is dead, or every object of
/// ours with `all`; then the registry files left without an object by a
/// dead creator. Nothing else is ever touched: only what [`listing::list`]
/// recognises, re-checked just before removal.
pub fn clean(all: bool, dry_run: bool) -> io::Result<Cleaned> {
    let listing = listing::list()?;
    let mut done = Cleaned::default();
    for found in &listing.objects {
        if found.alive && !all {
            done.kept += 1;
            continue;
        }
        let line = describe(found);
        if dry_run {
            done.removed.push(line);
            continue;
        }
        match remove(found) {
            Ok(()) => done.removed.push(line),
            Err(e) => done.errors.push(format!("{line}: {e}")),
        }
    }
    for stale in listing.stale.iter().filter(|s| !s.alive) {
        if !dry_run && let Err(e) = stale.record.remove() {
            done.errors.push(e.to_string());
            continue;
        }
        done.records += 1;
    }
    if !dry_run {
        registry::tidy();
    }
    Ok(done)
}

/// `kind name [id N] (creator PID, alive|dead)`.
pub fn describe(f: &Found) -> String {
    let id = f.id.map_or(String::new(), |id| format!(" id {id}"));
    let state = if f.alive { "alive" } else { "dead" };
    format!("{} {}{id} (creator {}, {state})", f.kind, f.name, f.pid)
}

/// Removes one object, then its record. Each removal re-checks that the
/// name still leads to the object listed, ours ([`owned`]): anything else
/// found there meanwhile is left alone.
fn remove(f: &Found) -> io::Result<()> {
    match &f.removal {
        Removal::File(path, id) => owned::remove_if(path, *id, false)?,
        Removal::Tree(path, id) => owned::remove_tree_if(path, *id)?,
        Removal::PosixMq(name) => {
            // Only while the name is still a queue of ours.
            if let Some(q) = listing::open_our_queue(name)? {
                let _ = nix::mqueue::mq_close(q);
                match nix::mqueue::mq_unlink(name.as_str()) {
                    Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Removal::Sysv {
            kind,
            id,
            key,
            cuid,
            cpid,
        } => sysv::remove_checked(*kind, *id, *key, *cuid, *cpid)?,
        Removal::Iceoryx2 { root, prefix } => {
            // Only a root named like ours, `ipclab-<32 hex>`, and a
            // directory of ours closed to others; only files of ours.
            let name = root.file_name().unwrap_or_default().to_string_lossy();
            let named_ours = name
                .strip_prefix(marks::PREFIX)
                .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            match std::fs::symlink_metadata(root) {
                Ok(meta) if named_ours => {
                    owned::remove_tree_if(root, owned::Identity::from_metadata(&meta))?
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            owned::remove_files_starting_with(Path::new("/dev/shm"), prefix)?;
        }
        Removal::Zenoh(segments) => {
            // Every one that nobody holds; the record stays while any is
            // left (held again since it was listed: a live process's).
            let mut held = 0;
            for (name, id) in segments {
                if !zenoh_shm::remove_if_dangling(name, *id)? {
                    held += 1;
                }
            }
            if held > 0 {
                return Err(io::Error::other(format!(
                    "{held} segment(s) held by a live process, left"
                )));
            }
        }
    }
    match &f.record {
        Some(record) => record.remove(),
        None => Ok(()),
    }
}
