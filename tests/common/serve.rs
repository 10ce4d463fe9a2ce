//! `ipclab serve` in a child process for the remote tests, and what they
//! check after it: every process of a test carries a tag in its
//! environment, so that one left behind is found by it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The environment variable that tags a test's processes.
pub const TAG: &str = "IPCLAB_TEST_TAG";

/// A tag no other test uses.
pub fn new_tag(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        ipclab_bench::harness::remote::control::random_hex()
    )
}

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_ipclab")
}

/// A running `ipclab serve`, killed (and reaped) however the test ends.
pub struct Serve {
    pub child: Child,
    /// `ADDR:PORT` it listens on.
    pub address: String,
    pub token: String,
    /// What it logged on standard error, read by a thread.
    log: mpsc::Receiver<String>,
}

impl Serve {
    /// Starts `prefix... ipclab serve --listen LISTEN --token TOKEN` and
    /// waits (at most 30 s) for its `listening on` line.
    pub fn start(prefix: &[&str], listen: &str, token: &str, tag: &str) -> Serve {
        Serve::start_with(prefix, listen, token, tag, &[])
    }

    /// [`Serve::start`] with more flags of `serve` (`--timeout 3s`).
    pub fn start_with(
        prefix: &[&str],
        listen: &str,
        token: &str,
        tag: &str,
        extra: &[&str],
    ) -> Serve {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend([exe(), "serve", "--listen", listen, "--token", token]);
        argv.extend(extra);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .env(TAG, tag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting ipclab serve");
        let (tx, first) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let (tx, log) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = match first.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ipclab serve said nothing within 30 s");
            }
        };
        let address = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line of serve: {line:?}"))
            .to_string();
        Serve {
            child,
            address,
            token: token.to_string(),
            log,
        }
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Its log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SIGTERM: it stops its cell and exits; SIGKILL if it does not.
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        );
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `prefix... ipclab ARGS` tagged, killing it (its whole process
/// group) if it has not ended within `limit`: a hang fails the test.
pub fn run_ipclab(prefix: &[&str], args: &[&str], tag: &str, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.push(exe());
    argv.extend(args);
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .env(TAG, tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("starting ipclab");
    let pid = child.id() as i32;
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match done.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            kill_group(pid);
            let out = done.recv().unwrap().unwrap();
            panic!(
                "ipclab {args:?} did not end within {limit:?} (killed); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// SIGKILL to process group `pgid`.
pub fn kill_group(pgid: i32) {
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(pgid).unwrap(),
        rustix::process::Signal::KILL,
    );
}

/// The pids of running processes whose environment carries `tag`.
pub fn tagged(tag: &str) -> Vec<i32> {
    let needle = format!("{TAG}={tag}");
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            // A zombie has given up its environment already; a process
            // still exiting may show it for a moment.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let running = state
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|s| s != "Z" && s != "X");
            if running {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Waits (at most 10 s) until no process but `except` carries `tag`;
/// returns the ones left.
pub fn settled(tag: &str, except: &[i32]) -> Vec<i32> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<i32> = tagged(tag)
            .into_iter()
            .filter(|p| !except.contains(p))
            .collect();
        if left.is_empty() || Instant::now() > end {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of `stderr` that start with `error:`.
pub fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_string)
        .collect()
}
