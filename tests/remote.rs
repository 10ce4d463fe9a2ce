//! Remote mode over loopback: `ipclab serve` in a child process, `ipclab
//! run --remote` to it; the rows, the checks of bad input, and what is
//! left afterwards (nothing but the server, which outlives every client).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::serve::{Serve, error_lines, kill_group, new_tag, run_ipclab, settled};

/// Every ipclab command here ends well within this, or the test fails.
const LIMIT: Duration = Duration::from_secs(120);

/// Tokens (16 characters at least, or `serve` and `run` refuse them).
const SESAME: &str = "sesame-sesame-open";
const KEY: &str = "key-of-this-test-0";
/// A token for where the token is not what is tested.
const ANY: &str = "any-token-0123456789";

fn quick(address: &str, token: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--remote",
        address,
        "--token",
        token,
        "--repeat",
        "1",
        "--warmup",
        "10ms",
        "--duration",
        "30ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout".to_string(), "20s".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn tcp_and_udp_rows_over_loopback_carry_the_remote_and_leave_nothing() {
    let _alone = common::one_at_a_time();
    let tag = new_tag("remote-rows");
    let before = common::ipc_objects();
    let mut serve = Serve::start(&[], "127.0.0.1:0", SESAME, &tag);
    let args = quick(
        &serve.address,
        SESAME,
        &[
            "-m",
            "tcp,udp",
            "-s",
            "64,4K",
            "-p",
            "pingpong,stream",
            "--json",
            "-",
        ],
    );
    let out = run_ipclab(&[], &strs(&args), &tag, LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = run["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{stderr}");
    // The progress lines name the cells as their rows do.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(progress.len(), 8, "{stderr}");
    for line in progress {
        assert!(
            line.contains(" remote: ") && !line.contains("cross-core"),
            "{line}"
        );
    }
    assert!(run["failures"].as_array().unwrap().is_empty());
    for row in rows {
        assert_eq!(row["placement"], "remote", "{row}");
        assert_eq!(row["remote"], serve.address.as_str(), "{row}");
        assert_eq!(row["verified"], true);
        assert_eq!(row["family"], "message-passing");
        assert!(row["iterations"].as_u64().unwrap() > 0, "{row}");
        match row["pattern"].as_str().unwrap() {
            "pingpong" => assert!(row["rtt_ns"]["p50"].as_u64().unwrap() > 0, "{row}"),
            "stream" => {
                // Counted by the server, reported over the control
                // connection.
                assert!(row["throughput"]["messages_per_s"].as_f64().unwrap() > 0.0);
                assert!(row["cpu_ns_per_message"]["server"].as_f64().unwrap() > 0.0);
            }
            p => panic!("pattern {p}"),
        }
    }
    assert!(
        !rows.iter().any(|r| r["family"] == "limit"),
        "no limits remotely"
    );
    assert!(serve.alive(), "the server outlives its client");
    let pid = serve.child.id() as i32;
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new(), "processes left");
    drop(serve);
    assert_eq!(settled(&tag, &[]), Vec::<i32>::new(), "processes left");
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

#[test]
fn bad_flags_are_one_error_line_and_status_2() {
    let tag = new_tag("remote-flags");
    for args in [
        vec!["run", "--remote", "nonsense", "--token", ANY],
        vec!["run", "--remote", "127.0.0.1:0", "--token", ANY],
        vec!["run", "--remote", "127.0.0.1:9"],
        vec!["run", "--token", ANY],
        vec!["run", "--remote", "127.0.0.1:9", "--token", ""],
        vec![
            "run",
            "--remote",
            "127.0.0.1:9",
            "--token",
            ANY,
            "-m",
            "pipe",
        ],
        vec![
            "run",
            "--remote",
            "127.0.0.1:9",
            "--token",
            ANY,
            "-m",
            "tcp",
            "--pairs",
            "2",
        ],
        vec![
            "run",
            "--remote",
            "127.0.0.1:9",
            "--token",
            ANY,
            "-m",
            "tcp",
            "-p",
            "oneshot",
        ],
        vec!["serve", "--listen", "nonsense"],
        vec!["serve", "--listen", "127.0.0.1:0", "--token", "two words"],
        vec!["serve", "--cpu", "99999"],
        // zenoh with shared memory stays on its host; zenoh-tcp crosses.
        #[cfg(feature = "peers")]
        vec![
            "run",
            "--remote",
            "127.0.0.1:9",
            "--token",
            ANY,
            "-m",
            "zenoh",
        ],
    ] {
        let out = run_ipclab(&[], &args, &tag, LIMIT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
    }
    assert_eq!(settled(&tag, &[]), Vec::<i32>::new());
}

/// A server played by the test: answers every connection with `answer`
/// (after reading its first line), or with nothing.
fn fake_server(answer: Option<&'static str>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        let mut held = Vec::new();
        while Instant::now() < end {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut line = String::new();
                    let _ = BufReader::new(&s).read_line(&mut line);
                    if let Some(a) = answer {
                        let _ = (&s).write_all(a.as_bytes());
                        return;
                    }
                    held.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            if answer.is_none() && !held.is_empty() {
                // Keep it open, silent, until the client gives up.
                std::thread::sleep(Duration::from_secs(3));
                return;
            }
        }
    });
    (address, handle)
}

#[test]
fn unreachable_refused_silent_or_foreign_servers_fail_the_run_with_one_line() {
    let tag = new_tag("remote-bad");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let serve = Serve::start(&[], "127.0.0.1:0", "right-token-of-this-test", &tag);
    let welcome_other = r#"{"type":"welcome","protocol":1,"ipclab_version":"0.0.0-other","schema":3}
"#;
    let cases: Vec<(String, &str, &str)> = vec![
        (closed, ANY, "cannot reach the server"),
        (
            serve.address.clone(),
            "wrong-token-of-this-test",
            "wrong token",
        ),
        (fake_server(Some(welcome_other)).0, ANY, "another version"),
        (
            fake_server(Some("HTTP/1.1 400 Bad Request\r\n\r\n")).0,
            ANY,
            "did not answer as an ipclab server",
        ),
        (fake_server(None).0, ANY, "within 1 s"),
    ];
    for (address, token, says) in cases {
        let args = quick(
            &address,
            token,
            &["-m", "tcp", "-p", "pingpong", "--timeout", "1s"],
        );
        let out = run_ipclab(&[], &strs(&args), &tag, LIMIT);
        assert_eq!(out.status.code(), Some(1), "{address}: {out:?}");
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{address}: {out:?}");
        assert!(errors[0].contains(says), "expected '{says}': {}", errors[0]);
    }
    let pid = serve.child.id() as i32;
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new());
}

#[test]
fn the_server_refuses_garbage_and_survives_a_client_killed_mid_run() {
    let _alone = common::one_at_a_time();
    let tag = new_tag("remote-survive");
    let before = common::ipc_objects();
    let mut serve = Serve::start(&[], "127.0.0.1:0", KEY, &tag);
    // Garbage, then a hello of another version: refused, the server goes on.
    for (send, says) in [
        ("\u{1}\u{2}garbage that is no JSON\n", "garbage"),
        (
            "{\"type\":\"hello\",\"protocol\":99,\"ipclab_version\":\"9\",\"schema\":3,\"token\":\"key-of-this-test-0\",\"run\":\"r\"}\n",
            "another version",
        ),
    ] {
        let s = TcpStream::connect(&serve.address).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&s).write_all(send.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert!(line.contains("refused") && line.contains(says), "{line}");
    }
    // Garbage after a good hello: answered with a failure naming it.
    let hello = format!(
        "{{\"type\":\"hello\",\"protocol\":{},\"ipclab_version\":\"{}\",\"schema\":{},\"token\":\"{KEY}\",\"run\":\"g\"}}\n",
        ipclab_bench::harness::remote::control::PROTOCOL,
        env!("CARGO_PKG_VERSION"),
        ipclab_bench::results::SCHEMA
    );
    for (then, says) in [
        ("not json at all\n", Some("garbage")),
        ("{\"type\":\"done\"}\n", None),
    ] {
        let s = TcpStream::connect(&serve.address).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&s).write_all(hello.as_bytes()).unwrap();
        (&s).write_all(then.as_bytes()).unwrap();
        let mut lines = BufReader::new(&s).lines();
        let welcome = lines.next().unwrap().unwrap();
        assert!(welcome.contains("welcome"), "{welcome}");
        if let Some(says) = says {
            let failed = lines.next().unwrap().unwrap();
            assert!(
                failed.contains("failed") && failed.contains(says),
                "{failed}"
            );
        }
    }
    assert!(serve.alive());

    // A client killed (its whole process group) in the middle of a long cell.
    use std::os::unix::process::CommandExt;
    let args = quick(
        &serve.address,
        KEY,
        &["-m", "tcp", "-p", "stream", "-s", "4K"],
    );
    let mut args = args;
    args.retain(|a| a != "30ms");
    let pos = args.iter().position(|a| a == "--duration").unwrap();
    args.insert(pos + 1, "60s".into());
    let mut victim = std::process::Command::new(common::serve::exe())
        .args(&args)
        .env(common::serve::TAG, &tag)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Until the server has a side running for it.
    let pid = serve.child.id() as i32;
    let end = Instant::now() + Duration::from_secs(30);
    while common::serve::tagged(&tag)
        .iter()
        .filter(|&&p| p != pid)
        .count()
        < 4
    {
        assert!(Instant::now() < end, "the cell never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    kill_group(victim.id() as i32);
    victim.wait().unwrap();
    assert!(serve.alive(), "the server outlives a killed client");
    assert_eq!(
        settled(&tag, &[pid]),
        Vec::<i32>::new(),
        "its side ended too"
    );

    // The next run: refused as busy while the dead run's hold lasts, then served.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let args = quick(
            &serve.address,
            KEY,
            &["-m", "tcp", "-p", "pingpong", "-s", "64"],
        );
        let out = run_ipclab(&[], &strs(&args), &tag, LIMIT);
        if out.status.success() {
            break;
        }
        let errors = error_lines(&out);
        assert!(errors.len() == 1 && errors[0].contains("busy"), "{out:?}");
        assert!(Instant::now() < end, "still busy after 30 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = serve.log();
    assert!(
        log.iter().any(|l| l.contains("tcp stream 4 KiB")),
        "the killed cell is logged: {log:?}"
    );
    assert_eq!(settled(&tag, &[pid]), Vec::<i32>::new());
    drop(serve);
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

#[test]
fn a_server_that_dies_mid_run_fails_the_run_with_one_line() {
    let tag = new_tag("remote-dies");
    let mut serve = Serve::start(&[], "127.0.0.1:0", ANY, &tag);
    let mut args = quick(
        &serve.address,
        ANY,
        &["-m", "tcp", "-p", "stream", "-s", "4K"],
    );
    let pos = args.iter().position(|a| a == "--duration").unwrap();
    args[pos + 1] = "60s".into();
    let address = serve.address.clone();
    let killer_tag = tag.clone();
    let server_pid = serve.child.id() as i32;
    let killer = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(30);
        while common::serve::tagged(&killer_tag)
            .iter()
            .filter(|&&p| p != server_pid)
            .count()
            < 4
            && Instant::now() < end
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(server_pid).unwrap(),
            rustix::process::Signal::KILL,
        );
    });
    let out = run_ipclab(&[], &strs(&args), &tag, LIMIT);
    killer.join().unwrap();
    assert!(!serve.alive());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(errors[0].contains(&address), "{}", errors[0]);
    assert_eq!(settled(&tag, &[]), Vec::<i32>::new(), "processes left");
}
