//! `ipclab ls` and `ipclab clean`: what a `kill -9`-ed supervisor leaves is
//! listed with its creator dead and removed, and nothing that is not
//! ipclab's is ever touched.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tests here list and clean the same registry, and compare the
/// machine's objects before and after: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    common::one_at_a_time()
}

fn ipclab(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ipclab {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `ipclab ls --json`, as (kind, name, creator, alive).
fn ls() -> Vec<(String, String, i64, bool)> {
    let v: serde_json::Value = serde_json::from_str(&ipclab(&["ls", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["name"].as_str().unwrap().to_string(),
                o["creator"].as_i64().unwrap(),
                o["alive"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Waits for `what` with a watchdog: a hang becomes a failure naming it.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "watchdog: gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/proc/<pid>/stat` fields after the command name: state, ppid, …
fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(String::from).collect())
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&c| stat(c).is_some_and(|s| s[1] == pid.to_string()))
        .collect()
}

/// CPU ticks (user + system) of `pid`.
fn ticks(pid: u32) -> u64 {
    stat(pid).map_or(0, |s| {
        s[11].parse::<u64>().unwrap_or(0) + s[12].parse::<u64>().unwrap_or(0)
    })
}

fn gone_or_zombie(pid: u32) -> bool {
    stat(pid).is_none_or(|s| s[0] == "Z" || s[0] == "X")
}

/// A cell supervisor (`ipclab __cell`), killed with SIGKILL on drop.
struct Supervisor(Child);

impl Supervisor {
    /// Starts a long pingpong cell of `mechanism`; with `stop`, the
    /// supervisor stops itself once the channel is prepared, before any side.
    fn start(mechanism: &str, stop: bool) -> Supervisor {
        let spec = serde_json::json!({
            "mechanism": mechanism, "pattern": "pingpong",
            "channel": {"size": 4096, "segment_size": null, "segments": 0},
            "placement": "unpinned", "cpus": null, "warmup_ns": 0,
            "duration_ns": 600_000_000_000u64, "iterations": null, "min_iterations": 1,
            "verify": true, "timeout_ns": 600_000_000_000u64,
        });
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipclab"));
        cmd.arg("__cell")
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        if stop {
            cmd.env("IPCLAB_FAULT_STOP_AFTER_PREPARE", "1");
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(spec.to_string().as_bytes()).unwrap();
        drop(stdin);
        Supervisor(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// `kill -9` once stopped (after `prepare`) or, mid-transfer, once both
    /// sides have run a little; then waits until the sides are dead too.
    fn kill_when_ready(mut self, stop: bool) -> u32 {
        let pid = self.pid();
        let mut sides = Vec::new();
        if stop {
            wait_for("the supervisor to stop after prepare", || {
                stat(pid).is_some_and(|s| s[0] == "T")
            });
        } else {
            wait_for("both sides running", || {
                sides = children(pid);
                sides.len() == 2 && sides.iter().all(|&c| ticks(c) >= 2)
            });
        }
        self.0.kill().unwrap();
        self.0.wait().unwrap();
        // The sides die with it (parent-death signal).
        wait_for("the sides to die", || {
            sides.iter().all(|&c| gone_or_zombie(c))
        });
        pid
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn what_a_killed_supervisor_leaves_is_listed_dead_and_cleaned() {
    let _serial = serial();
    let before = common::ipc_objects();
    // Killed after prepare: every kind of object, none yet removed by a side.
    let stopped = [
        ("sysv-shm", &["sysv-shm", "sysv-sem"][..]),
        ("shm-mq", &["sysv-shm", "sysv-msg"]),
        ("sysv-mq", &["sysv-msg"]),
        ("posix-shm-sem", &["posix-shm", "posix-sem"]),
        ("mmap-file", &["dir"]),
        ("fifo", &["dir"]),
        ("iceoryx2", &["iceoryx2"]),
        // Queues are unlinked as soon as made: nothing to leave.
        ("posix-mq", &[]),
        // Anonymous segments: nothing to leave.
        ("shmchan-block", &[]),
    ];
    // Killed mid-transfer: what the sides could not remove early.
    let running = [
        ("sysv-shm", &["sysv-sem"][..]),
        ("sysv-mq", &["sysv-msg"]),
        ("iceoryx2", &["iceoryx2"]),
    ];
    let mut expected = Vec::new();
    for (list, stop) in [(&stopped[..], true), (&running[..], false)] {
        for &(mechanism, kinds) in list {
            let pid = Supervisor::start(mechanism, stop).kill_when_ready(stop);
            expected.push((mechanism, pid, kinds));
        }
    }
    let listed = ls();
    println!("{}", ipclab(&["ls"]));
    for (mechanism, pid, kinds) in &expected {
        let mut found: Vec<&str> = listed
            .iter()
            .filter(|o| o.2 == i64::from(*pid))
            .map(|o| {
                assert!(!o.3, "{mechanism}: {o:?} listed with its creator alive");
                o.0.as_str()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        let mut want = kinds.to_vec();
        want.sort_unstable();
        assert_eq!(
            found, want,
            "{mechanism} (supervisor {pid}) left {listed:?}"
        );
    }
    let cleaned = ipclab(&["clean"]);
    for (mechanism, pid, kinds) in &expected {
        if !kinds.is_empty() {
            assert!(
                cleaned.contains(&format!("(creator {pid}, dead)")),
                "{mechanism}: {cleaned}"
            );
        }
    }
    let pids: Vec<i64> = expected.iter().map(|e| i64::from(e.1)).collect();
    let left: Vec<_> = ls().into_iter().filter(|o| pids.contains(&o.2)).collect();
    assert!(left.is_empty(), "left after clean: {left:?}");
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

/// zenoh's segments in `/dev/shm` (`<u64>.zenoh`).
fn zenoh_segments() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_suffix(".zenoh")
                .is_some_and(|id| id.parse::<u64>().is_ok())
        })
        .collect()
}

/// zenoh makes its shared-memory segments itself, in the sides, under
/// names it picks (`/dev/shm/<u64>.zenoh`): those a `kill -9`-ed
/// supervisor's cell left are listed as its, dead, and removed by
/// `clean`; nothing else is.
#[test]
fn zenoh_segments_of_a_killed_supervisor_are_listed_and_cleaned() {
    let _serial = serial();
    if ipclab_bench::mechanisms::find("zenoh").is_none() {
        eprintln!("skipped: built without the peers feature");
        return;
    }
    let before = common::ipc_objects();
    let segments_before = zenoh_segments();
    let sup = Supervisor::start("zenoh", false);
    let pid = sup.pid();
    // Both sides' pools and the rest: wait until the transfer (4 KiB
    // messages, through zenoh's shared memory) has made some.
    wait_for("zenoh's segments", || {
        zenoh_segments().difference(&segments_before).count() >= 2
    });
    let pid_killed = sup.kill_when_ready(false);
    assert_eq!(pid, pid_killed);
    // Those nobody holds: the cell's, once the last threads of its sides
    // have exited (a side's main thread is a zombie before its other
    // threads let go of their files), not those of a zenoh program
    // running meanwhile.
    let dangling = |name: &String| {
        std::fs::File::open(format!("/dev/shm/{name}")).is_ok_and(|f| {
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
        })
    };
    let mut made: Vec<String> = Vec::new();
    wait_for("the sides to let go of their segments", || {
        made = zenoh_segments()
            .difference(&segments_before)
            .cloned()
            .collect();
        made.iter().all(dangling)
    });
    assert!(!made.is_empty(), "the cell's segments went with it");
    // Listed as the cell's, and dead once its sides are reaped too (the
    // record names them: until then the cell counts as alive).
    let mut listed = Vec::new();
    wait_for("the cell listed dead", || {
        listed = ls().into_iter().filter(|o| o.2 == i64::from(pid)).collect();
        listed.iter().all(|o| !o.3)
    });
    assert!(
        listed.iter().any(|o| o.0 == "zenoh"),
        "supervisor {pid} left {made:?}; ls: {listed:?}"
    );
    for name in &made {
        let id = name.strip_suffix(".zenoh").unwrap();
        assert!(
            listed.iter().any(|o| o.1.contains(id)),
            "{name} not listed: {listed:?}"
        );
    }
    let cleaned = ipclab(&["clean"]);
    assert!(
        cleaned.contains(&format!("(creator {pid}, dead)")),
        "{cleaned}"
    );
    let left: Vec<String> = made
        .iter()
        .filter(|n| std::path::Path::new(&format!("/dev/shm/{n}")).exists())
        .cloned()
        .collect();
    assert!(left.is_empty(), "left after clean: {left:?}\n{cleaned}");
    assert!(ls().iter().all(|o| o.2 != i64::from(pid)));
    assert_eq!(common::new_objects(&before), Vec::<String>::new());
}

/// Objects planted by a test, removed on drop.
#[derive(Default)]
struct Planted {
    segments: Vec<i32>,
    files: Vec<String>,
}

impl Planted {
    fn segment(&mut self, key: libc::key_t) -> i32 {
        // SAFETY: plain system call with integer arguments.
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        self.segments.push(id);
        id
    }

    fn exists(id: i32) -> bool {
        let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::uninit();
        // SAFETY: IPC_STAT fills the writable `shmid_ds`.
        unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) == 0 }
    }

    fn file(&mut self, name: &str) -> String {
        let path = format!("/dev/shm/{name}");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        self.files.push(path.clone());
        path
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        for &id in &self.segments {
            // SAFETY: IPC_RMID reads no buffer.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn hex32() -> String {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A pid that no process has (one that just exited and was reaped).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    c.wait().unwrap();
    c.id()
}

#[test]
fn clean_never_touches_what_is_not_ipclabs() {
    let _serial = serial();
    let mut planted = Planted::default();
    let private = planted.segment(libc::IPC_PRIVATE);
    let registry = ipclab_bench::objects::registry::dir();
    let free_key = |tag: &str| loop {
        let key = 0x1cab_0000 | i32::from_str_radix(&hex32()[..4], 16).unwrap();
        if !registry.join(format!("{tag}-{key:08x}")).exists() {
            return key;
        }
    };
    // A key in ipclab's range but no record.
    let unrecorded = planted.segment(free_key("sysv-shm"));
    // A key in range with a record claiming it for a dead creator: the
    // segment was made by this process, not that one, so it is not ipclab's.
    let key = free_key("sysv-shm");
    let claimed = planted.segment(key);
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&registry);
    let record = registry.join(format!("sysv-shm-{key:08x}"));
    std::fs::write(
        &record,
        format!(
            "kind=sysv-shm\npid={}\ntime=0\nkey={key}\nid={claimed}\n",
            dead_pid()
        ),
    )
    .unwrap();
    let look_alike = planted.file("ipclab-notours");
    let alive_named = planted.file(&format!("ipclab-{}-{}", std::process::id(), hex32()));
    // A real shmchan segment whose creator (this process) is alive.
    let tx = shmchan::Options::new().create_sender().unwrap();
    let shmchan_name = format!("/dev/shm{}", tx.name().unwrap());
    std::mem::forget(tx);
    planted.files.push(shmchan_name.clone());

    let listed = ls();
    let names: Vec<&str> = listed.iter().map(|o| o.1.as_str()).collect();
    assert!(names.contains(&alive_named.as_str()) && names.contains(&shmchan_name.as_str()));
    assert!(!names.contains(&look_alike.as_str()));
    let out = ipclab(&["clean"]);
    for id in [private, unrecorded, claimed] {
        assert!(Planted::exists(id), "segment {id} removed by clean: {out}");
    }
    for f in [&look_alike, &alive_named, &shmchan_name] {
        assert!(
            std::path::Path::new(f).exists(),
            "{f} removed by clean: {out}"
        );
    }
    // The record without its object, of a dead creator, is pruned.
    assert!(!record.exists(), "{out}");

    // --all would take ours whatever their creator, and still nothing else.
    let all = ipclab(&["clean", "--all", "--dry-run"]);
    assert!(
        all.contains(&alive_named) && all.contains(&shmchan_name),
        "{all}"
    );
    for id in [private, unrecorded, claimed] {
        assert!(!all.contains(&format!(" id {id} ")), "{all}");
    }
    assert!(!all.contains(&look_alike), "{all}");
}

#[test]
fn after_clean_ls_lists_nothing_of_a_dead_creator() {
    let _serial = serial();
    ipclab(&["clean"]);
    let listed = ls();
    assert!(listed.iter().all(|o| o.3), "{listed:?}");
    if listed.is_empty() {
        assert!(ipclab(&["ls"]).contains("no IPC objects"));
    }
}
