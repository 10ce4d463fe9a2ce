//! `ipclab serve` against clients that do not play along: silent and
//! trickling connections, wrong tokens, a cell that asks for an hour, a
//! second run, a client that leaves the channel at once. Each drives the
//! real binary over loopback; the hand-written clients speak the control
//! protocol's JSON lines themselves. Every wait has a watchdog; no test
//! bounds a time from above.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::serve::{Serve, error_lines, kill_group, new_tag, run_ipclab, settled, tagged};
use ipclab_bench::harness::remote::control::{Msg, PROTOCOL};
use ipclab_bench::harness::spec::{CellSpec, Pattern, Placement};
use ipclab_bench::transport::ChannelConfig;

/// Every ipclab command here ends well within this, or the test fails.
const LIMIT: Duration = Duration::from_secs(120);
/// The longest a hand-written client waits for a line before failing the
/// test (a hang guard, far above any answer's time).
const WATCHDOG: Duration = Duration::from_secs(60);
const TOKEN: &str = "hostile-test-token-0123";

/// A hello line of this build, as `ipclab run` sends it.
fn hello(token: &str, run: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({
            "type": "hello",
            "protocol": PROTOCOL,
            "ipclab_version": env!("CARGO_PKG_VERSION"),
            "schema": ipclab_bench::results::SCHEMA,
            "token": token,
            "run": run,
        })
    )
}

fn connect(address: &str) -> TcpStream {
    let s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    s
}

/// The next line from `s`, or a failed test after [`WATCHDOG`].
fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(_) => line,
        Err(e) => panic!("no line from the server within {WATCHDOG:?}: {e}"),
    }
}

/// A tcp cell of 64 B as a client would send it, with its own watchdog.
fn cell(pattern: Pattern, duration_ns: u64, timeout_ns: u64) -> String {
    let spec = CellSpec {
        mechanism: "tcp".into(),
        pattern,
        channel: ChannelConfig {
            size: 64,
            segment_size: None,
            segments: 0,
        },
        placement: Placement::Unpinned,
        pairs: 1,
        cpus: None,
        rate: None,
        warmup_ns: 0,
        duration_ns,
        iterations: None,
        min_iterations: 1,
        verify: true,
        timeout_ns,
    };
    String::from_utf8(
        Msg::Cell {
            spec: Box::new(spec),
        }
        .line(),
    )
    .unwrap()
}

/// Says hello (welcomed), sends `cell`, and returns the connection with
/// what the server answered the cell.
fn start_cell(address: &str, run: &str, cell: &str) -> (BufReader<TcpStream>, String) {
    let s = connect(address);
    (&s).write_all(hello(TOKEN, run).as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let welcome = line(&mut reader);
    assert!(welcome.contains("\"welcome\""), "{welcome}");
    reader.get_ref().write_all(cell.as_bytes()).unwrap();
    let ready = line(&mut reader);
    (reader, ready)
}

/// `ipclab run --remote` of one short tcp pingpong cell.
fn honest_run(serve: &Serve, tag: &str, timeout: &str) -> std::process::Output {
    run_ipclab(
        &[],
        &[
            "run",
            "--remote",
            &serve.address,
            "--token",
            TOKEN,
            "-m",
            "tcp",
            "-p",
            "pingpong",
            "-s",
            "64",
            "--repeat",
            "1",
            "--warmup",
            "10ms",
            "--duration",
            "30ms",
            "--timeout",
            timeout,
        ],
        tag,
        LIMIT,
    )
}

/// Waits (at most [`WATCHDOG`]) for a log line of `serve` containing
/// `says`; returns the lines logged meanwhile.
fn logged(serve: &Serve, says: &str) -> Vec<String> {
    let end = Instant::now() + WATCHDOG;
    let mut log = Vec::new();
    while Instant::now() < end {
        log.extend(serve.log());
        if log.iter().any(|l| l.contains(says)) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("serve did not log '{says}' within {WATCHDOG:?}: {log:#?}");
}

#[test]
fn silent_and_trickling_connections_do_not_hold_an_honest_run() {
    let tag = new_tag("serve-slowloris");
    let mut serve = Serve::start(&[], "127.0.0.1:0", TOKEN, &tag);
    // Four that say nothing, one that sends a byte a second and never a
    // whole line: before, each held the server for 10 s in turn.
    let silent: Vec<TcpStream> = (0..4).map(|_| connect(&serve.address)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let slow = {
        let (address, done) = (serve.address.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let s = connect(&address);
            for _ in 0..120 {
                if done.load(Ordering::Relaxed) || (&s).write_all(b"{").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let out = honest_run(&serve, &tag, "20s");
    done.store(true, Ordering::Relaxed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The silent ones are told why they are dropped, at the hello deadline
    // (the smaller of --timeout, 60 s here, and 10 s).
    let mut reader = BufReader::new(silent.into_iter().next().unwrap());
    let answer = line(&mut reader);
    assert!(
        answer.contains("refused") && answer.contains("no hello within 10 s"),
        "{answer}"
    );
    slow.join().unwrap();
    assert!(serve.alive());
    let pid = serve.child.id() as i32;
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new(), "processes left");
}

#[test]
fn a_cell_asking_for_an_hour_or_forever_ends_at_the_servers_limit() {
    let tag = new_tag("serve-hour");
    let serve = Serve::start_with(&[], "127.0.0.1:0", TOKEN, &tag, &["--timeout", "3s"]);
    // An hour's watchdog, then the client goes: the side waits in accept
    // for a client that never comes, until the server's limit.
    let hour = 3_600_000_000_000;
    let (reader, ready) = start_cell(&serve.address, "hour", &cell(Pattern::Pingpong, hour, hour));
    assert!(ready.contains("\"ready\""), "{ready}");
    drop(reader);
    let log = logged(&serve, "timed out after");
    let ended = log.iter().find(|l| l.contains("timed out after")).unwrap();
    assert!(
        ended.contains("timed out after 3 s") && ended.contains("serve --timeout"),
        "{ended}"
    );
    // u64::MAX: no wrap to a watchdog in the past (or a panic); the
    // failure comes back on the connection, from the server's limit.
    let (mut reader, ready) = start_cell(
        &serve.address,
        "hour",
        &cell(Pattern::Pingpong, u64::MAX, u64::MAX),
    );
    assert!(ready.contains("\"ready\""), "{ready}");
    let failed = line(&mut reader);
    assert!(
        failed.contains("\"failed\"") && failed.contains("timed out after 3 s"),
        "{failed}"
    );
    let pid = serve.child.id() as i32;
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new(), "processes left");
}

#[test]
fn a_token_shorter_than_16_characters_is_refused() {
    let tag = new_tag("serve-short-token");
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0", "--token", "abc"],
        vec![
            "run",
            "--remote",
            "127.0.0.1:9",
            "--token",
            "abc",
            "-m",
            "tcp",
        ],
    ] {
        let out = run_ipclab(&[], &args, &tag, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error:") && stderr.contains("too short"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(settled(&tag, &[]), Vec::<i32>::new());
}

/// The wait a wrong-token refusal announces: `... checked X s after ...`.
fn announced(refusal: &str) -> Duration {
    let secs = refusal
        .split("checked ")
        .nth(1)
        .and_then(|rest| rest.split(" s after").next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no announced wait in {refusal}"));
    Duration::from_secs_f64(secs)
}

#[test]
fn wrong_tokens_from_one_address_wait_longer_and_longer() {
    let tag = new_tag("serve-guess");
    let serve = Serve::start(&[], "127.0.0.1:0", TOKEN, &tag);
    let mut previous: Option<(Instant, Duration)> = None;
    let tries = 6;
    for n in 1..=tries {
        let s = connect(&serve.address);
        let sent = Instant::now();
        (&s).write_all(hello("guess-guess-guess-0", "g").as_bytes())
            .unwrap();
        let refusal = line(&mut BufReader::new(s));
        let answered = Instant::now();
        assert!(
            refusal.contains("refused") && refusal.contains(&format!("wrong token ({n} in a row")),
            "try {n}: {refusal}"
        );
        // Nothing about the server to an unauthenticated client.
        for secret in ["ipclab_version", "protocol", "schema", TOKEN] {
            assert!(!refusal.contains(secret), "{secret} in {refusal}");
        }
        let wait = announced(&refusal);
        if let Some((before, waited)) = previous {
            // The server checks a try no earlier than the previous one's
            // announced wait after it: a lower bound only, which no load
            // can break (the previous try reached it after `before`).
            assert!(
                answered.duration_since(before) >= waited,
                "try {n} answered {:?} after the previous was sent, which announced {waited:?}",
                answered.duration_since(before)
            );
            assert_eq!(wait, waited * 2, "the wait doubles: {refusal}");
        }
        previous = Some((sent, wait));
    }
    // The right token is let in, after the wait too.
    let (before, waited) = previous.unwrap();
    let s = connect(&serve.address);
    (&s).write_all(hello(TOKEN, "g").as_bytes()).unwrap();
    let welcome = line(&mut BufReader::new(s));
    assert!(welcome.contains("\"welcome\""), "{welcome}");
    assert!(Instant::now().duration_since(before) >= waited);
    // One log line per doubling of the count, not one per try.
    let log = serve.log();
    let lines = log.iter().filter(|l| l.contains("wrong token")).count();
    assert!(
        (1..tries).contains(&lines),
        "{lines} lines for {tries} tries: {log:#?}"
    );
}

#[test]
fn another_run_is_told_busy_while_a_run_goes_on() {
    let tag = new_tag("serve-busy");
    let serve = Serve::start(&[], "127.0.0.1:0", TOKEN, &tag);
    use std::os::unix::process::CommandExt;
    let mut first = std::process::Command::new(common::serve::exe())
        .args([
            "run",
            "--remote",
            &serve.address,
            "--token",
            TOKEN,
            "-m",
            "tcp",
            "-p",
            "stream",
            "-s",
            "4K",
            "--repeat",
            "1",
            "--warmup",
            "10ms",
            "--duration",
            "300s",
            "--timeout",
            "300s",
        ])
        .env(common::serve::TAG, &tag)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Until its cell runs: the run, its cell's supervisor and side, and
    // at least the server's side.
    let pid = serve.child.id() as i32;
    let end = Instant::now() + Duration::from_secs(30);
    while tagged(&tag).iter().filter(|&&p| p != pid).count() < 4 {
        assert!(Instant::now() < end, "the first run's cell never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let out = honest_run(&serve, &tag, "30s");
    let still = first.try_wait().unwrap().is_none();
    kill_group(first.id() as i32);
    first.wait().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let errors = error_lines(&out);
    assert!(
        errors.len() == 1 && errors[0].contains("busy"),
        "{errors:?}"
    );
    assert!(still, "the answer came while the first run was going on");
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new(), "processes left");
}

#[test]
fn a_client_that_leaves_the_channel_at_once_fails_its_cell() {
    let tag = new_tag("serve-leaves");
    let serve = Serve::start(&[], "127.0.0.1:0", TOKEN, &tag);
    let (mut reader, ready) = start_cell(
        &serve.address,
        "leaves",
        &cell(Pattern::Pingpong, 100_000_000, 30_000_000_000),
    );
    let reach: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let address = reach["reach"]["address"].as_str().unwrap().to_string();
    drop(TcpStream::connect(address).unwrap());
    let answer = line(&mut reader);
    assert!(
        answer.contains("\"failed\"") && answer.contains("measured 0 round trips"),
        "{answer}"
    );
    let log = logged(&serve, "FAILED");
    assert!(!log.iter().any(|l| l.ends_with(": done")), "{log:#?}");
    let pid = serve.child.id() as i32;
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new(), "processes left");
}

#[test]
fn past_64_connections_without_a_hello_the_oldest_is_closed() {
    let tag = new_tag("serve-cap");
    let serve = Serve::start(&[], "127.0.0.1:0", TOKEN, &tag);
    let oldest = connect(&serve.address);
    // Accepted in order: the oldest is in before the others connect.
    std::thread::sleep(Duration::from_millis(300));
    let others: Vec<TcpStream> = (0..64).map(|_| connect(&serve.address)).collect();
    let answer = line(&mut BufReader::new(oldest));
    assert!(
        answer.contains("refused") && answer.contains("the oldest is closed"),
        "{answer}"
    );
    // The 64 newer ones still wait for their hello: an honest one is let in.
    let s = others.into_iter().last().unwrap();
    (&s).write_all(hello(TOKEN, "cap").as_bytes()).unwrap();
    let welcome = line(&mut BufReader::new(s));
    assert!(welcome.contains("\"welcome\""), "{welcome}");
    let pid = serve.child.id() as i32;
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new(), "processes left");
}
