//! `ipclab ls` output: a table, or JSON.

use super::listing::{Found, Listing};

fn age(f: &Found) -> String {
    match f.age_s {
        None => "?".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

/// One row per object, and a line about registry files without objects.
pub fn table(listing: &Listing) -> String {
    let mut out = String::new();
    if listing.objects.is_empty() {
        out.push_str("no IPC objects of ipclab's or shmchan's\n");
    } else {
        let rows: Vec<[String; 7]> = listing
            .objects
            .iter()
            .map(|f| {
                [
                    f.kind.to_string(),
                    f.name.clone(),
                    f.id.map_or("-".into(), |id| id.to_string()),
                    f.pid.to_string(),
                    if f.alive { "yes" } else { "no" }.to_string(),
                    f.size.clone(),
                    age(f),
                ]
            })
            .collect();
        let head = ["KIND", "NAME", "ID", "CREATOR", "ALIVE", "SIZE", "AGE"].map(String::from);
        let mut width = [0usize; 7];
        for row in std::iter::once(&head).chain(&rows) {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        for row in std::iter::once(&head).chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(width)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
    }
    let stale = listing.stale.iter().filter(|s| !s.alive).count();
    if stale > 0 {
        out.push_str(&format!(
            "{stale} registry record(s) without an object, of dead creators (`ipclab clean` removes them)\n"
        ));
    }
    out
}

/// The listing as a JSON array of objects.
pub fn json(listing: &Listing) -> String {
    let items: Vec<serde_json::Value> = listing
        .objects
        .iter()
        .map(|f| {
            serde_json::json!({
                "kind": f.kind,
                "name": f.name,
                "id": f.id,
                "creator": f.pid,
                "alive": f.alive,
                "size": f.size,
                "age_s": f.age_s,
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("JSON values serialise") + "\n"
}
