//! `ipclab seed`, with tiny counts: the post's figures beside this
//! machine's, every chosen mechanism measured or said to be missing, and
//! nothing left behind.

mod common;

use assert_cmd::Command;
use ipclab_bench::seed::{CHOSEN, SIZES};

#[test]
fn seed_prints_both_tables_and_writes_its_page() {
    let before = common::ipc_objects();
    let dir = std::env::temp_dir().join(format!("ipclab-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::cargo_bin("ipclab")
        .unwrap()
        .args([
            "seed",
            "--runs",
            "2",
            "--warmup",
            "0ms",
            "--duration",
            "20ms",
        ])
        .arg("--report")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let seed_json = std::fs::read_to_string(dir.join("seed.json"));
    let page = std::fs::read_to_string(dir.join("index.html"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The post's figures, and the explanation.
    for figure in ["9 ms", "14 ms", "11 ms", "13 ms", "\"Hello World\" (12 B)"] {
        assert!(text.contains(figure), "no {figure} in:\n{text}");
    }
    assert!(text.contains("What the two tables say"));
    assert!(text.contains("fork two, exit, reap"));
    assert!(text.contains("/dev/urandom takes"));

    // Each chosen mechanism: measured at both sizes, or said to be missing.
    let seed: serde_json::Value = serde_json::from_str(&seed_json.unwrap()).unwrap();
    let (fresh, warm) = (
        seed["fresh"].as_array().unwrap(),
        seed["warm"].as_array().unwrap(),
    );
    for (name, _, _) in CHOSEN {
        if ipclab_bench::mechanisms::find(name).is_some() {
            for size in SIZES {
                let f = fresh
                    .iter()
                    .find(|r| r["mechanism"] == name && r["size"] == size)
                    .unwrap_or_else(|| panic!("no fresh-process figure for {name} at {size}"));
                assert_eq!(f["runs"], 2, "{f}");
                assert!(f["total_ns"]["mean"].as_f64().unwrap() > 0.0);
                assert!(
                    warm.iter().any(|r| r["mechanism"] == name
                        && r["pattern"] == "pingpong"
                        && r["size"] == size
                        && r["verified"] == true),
                    "no pingpong row for {name} at {size}"
                );
            }
        } else {
            assert!(
                text.contains(&format!("{name} (")) && text.contains("not in this build"),
                "{name} is neither measured nor said to be missing:\n{text}"
            );
        }
    }
    assert!(seed["processes_alone_ns"]["p50"].as_u64().unwrap() > 0);

    let page = page.unwrap();
    assert!(page.contains("What the two tables say") && page.contains("14 ms"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}
