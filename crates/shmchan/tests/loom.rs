//! Runs the loom model tests of the protocol (`src/loom_tests.rs`) from the
//! ordinary test command. They need the whole crate built with
//! `--cfg loom`, so this starts that second build, in its own target folder
//! so that the ordinary build is not invalidated. By hand:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p shmchan --release --lib loom
//! ```

use std::path::Path;
use std::process::Command;

#[test]
fn loom_models_of_the_protocol_pass() {
    if cfg!(loom) {
        return; // Already the loom build: the models run as unit tests.
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/loom");
    let out = Command::new(env!("CARGO"))
        .args(["test", "-p", "shmchan", "--release", "--lib", "loom"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the loom models failed:\n{text}");
    // The models must have run, not been filtered away.
    let ran = text
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<u32>().ok())
        .sum::<u32>();
    assert!(
        ran >= 5,
        "expected the loom models to run, saw {ran} tests:\n{text}"
    );
}
