//! Planted paths: another user's regular file, directory, symlink or FIFO
//! at the registry's name, at a name `ipclab clean` looks at, or inside
//! the registry, is left exactly as it was (file type, owner, mode, inode,
//! symlink target, contents) by a run and by `ipclab clean` (`--all`):
//! ipclab removes only what it made.
//!
//! Runs as root (it plants as uid 65534). Each case runs in a thread of its
//! own with a private mount namespace: a fresh tmpfs on `/dev/shm` and on a
//! scratch directory holding `TMPDIR` and `XDG_RUNTIME_DIR`, so that the
//! registry's fallback name `/dev/shm/ipclab-registry-0` is planted without
//! disturbing anyone, `clean --all` sees only what the test made, and all
//! of it goes with the namespace.
//! (The mechanisms' own names are planted in
//! `crates/ipclab-bench/src/mechanisms/planted_tests.rs`.)

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whose objects the test plants.
const OTHER: u32 = 65534;
const CONTENTS: &str = "planted by someone else\n";
const WATCHDOG: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
}

const KINDS: [Kind; 4] = [Kind::File, Kind::Dir, Kind::Symlink, Kind::Fifo];

/// Everything that must not change about a planted object.
#[derive(Debug, PartialEq)]
struct Snapshot {
    file_type: String,
    uid: u32,
    gid: u32,
    mode: u32,
    dev: u64,
    ino: u64,
    target: Option<PathBuf>,
    contents: Option<String>,
    entries: Option<Vec<String>>,
}

fn snapshot(path: &Path) -> Option<Snapshot> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let ft = meta.file_type();
    let entries = ft.is_dir().then(|| {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    });
    Some(Snapshot {
        file_type: format!("{ft:?}"),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.permissions().mode(),
        dev: meta.dev(),
        ino: meta.ino(),
        target: std::fs::read_link(path).ok(),
        contents: ft.is_file().then(|| std::fs::read_to_string(path).unwrap()),
        entries,
    })
}

/// An object of [`OTHER`]'s at `path` (a symlink points to `target`, an
/// empty directory of theirs), removed on drop, also on failure.
struct Planted {
    path: PathBuf,
    kind: Kind,
    before: Snapshot,
    target_before: Option<(PathBuf, Snapshot)>,
}

impl Planted {
    fn new(path: &Path, kind: Kind, contents: &str) -> Planted {
        let other = Some(rustix::process::Uid::from_raw(OTHER));
        let other_gid = Some(rustix::process::Gid::from_raw(OTHER));
        let chown = |p: &Path| {
            rustix::fs::chownat(
                rustix::fs::CWD,
                p,
                other,
                other_gid,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap()
        };
        let mut target_before = None;
        match kind {
            Kind::File => {
                std::fs::write(path, contents).unwrap();
                std::fs::set_permissions(path, PermissionsExt::from_mode(0o644)).unwrap();
            }
            Kind::Dir => {
                std::fs::create_dir(path).unwrap();
                std::fs::set_permissions(path, PermissionsExt::from_mode(0o777)).unwrap();
            }
            Kind::Symlink => {
                let target = path.with_extension("target");
                std::fs::create_dir(&target).unwrap();
                std::fs::set_permissions(&target, PermissionsExt::from_mode(0o777)).unwrap();
                chown(&target);
                std::os::unix::fs::symlink(&target, path).unwrap();
                target_before = Some((target.clone(), snapshot(&target).unwrap()));
            }
            Kind::Fifo => {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    path,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o666),
                    0,
                )
                .unwrap();
                std::fs::set_permissions(path, PermissionsExt::from_mode(0o666)).unwrap();
            }
        }
        chown(path);
        Planted {
            path: path.to_path_buf(),
            kind,
            before: snapshot(path).unwrap(),
            target_before,
        }
    }

    fn assert_untouched(&self, after: &str) {
        let at = format!(
            "{:?} planted at {}, after {after}",
            self.kind,
            self.path.display()
        );
        assert_eq!(snapshot(&self.path).as_ref(), Some(&self.before), "{at}");
        if let Some((target, before)) = &self.target_before {
            assert_eq!(snapshot(target).as_ref(), Some(before), "{at}: its target");
        }
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.path);
        if let Some((target, _)) = &self.target_before {
            let _ = std::fs::remove_dir(target);
        }
    }
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    println!("skipped: planting another user's objects needs root");
    false
}

fn mount_tmpfs(at: &Path) -> std::io::Result<()> {
    let (fs, dir) = (
        CString::new("tmpfs").unwrap(),
        CString::new(at.as_os_str().as_encoded_bytes()).unwrap(),
    );
    let opts = CString::new("mode=1777").unwrap();
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            fs.as_ptr(),
            dir.as_ptr(),
            fs.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The scratch directory (its own tmpfs), removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `case` in a new thread with a private mount namespace: a fresh
/// `/dev/shm`, and a fresh tmpfs on a scratch directory (passed in),
/// mode 0700; all of it goes when the thread ends. `None` (and a printed
/// reason) if namespaces are not available.
fn in_private_namespace(case: impl FnOnce(&Path) + Send + 'static) -> Option<()> {
    let hex: String = (0..8).map(|_| format!("{:02x}", rand_byte())).collect();
    let scratch = Scratch(std::env::temp_dir().join(format!("planted-paths-test-{hex}")));
    std::fs::create_dir(&scratch.0).unwrap();
    let root = scratch.0.clone();
    let joined = std::thread::spawn(move || {
        // SAFETY: unshare takes flags only; CLONE_NEWNS affects this thread
        // (and its future children) alone.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNS): {}",
                std::io::Error::last_os_error()
            ));
        }
        let slash = CString::new("/").unwrap();
        // SAFETY: NUL-terminated path; null type, source and data are allowed for a propagation change.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(format!(
                "making / private: {}",
                std::io::Error::last_os_error()
            ));
        }
        mount_tmpfs(Path::new("/dev/shm")).map_err(|e| format!("tmpfs on /dev/shm: {e}"))?;
        mount_tmpfs(&root).map_err(|e| format!("tmpfs on {}: {e}", root.display()))?;
        std::fs::set_permissions(&root, PermissionsExt::from_mode(0o700)).unwrap();
        case(&root);
        Ok(())
    })
    .join();
    match joined {
        Ok(Ok(())) => Some(()),
        Ok(Err(why)) => {
            println!("skipped: no private mount namespace ({why})");
            None
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut b).unwrap();
    b[0]
}

fn hex(n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rand_byte())).collect()
}

/// `ipclab ARGS` with `XDG_RUNTIME_DIR` as given (`None`: unset) and
/// `TMPDIR` in the scratch directory; killed after [`WATCHDOG`]. A panic
/// (status 101) fails the test; any other status is the caller's.
fn ipclab(root: &Path, xdg: Option<&Path>, args: &[&str]) -> Output {
    let tmp = root.join("tmp");
    let _ = std::fs::create_dir(&tmp);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipclab"));
    cmd.args(args)
        .current_dir(root)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match xdg {
        Some(x) => cmd.env("XDG_RUNTIME_DIR", x),
        None => cmd.env_remove("XDG_RUNTIME_DIR"),
    };
    let mut child = cmd.spawn().unwrap();
    let end = Instant::now() + WATCHDOG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: ipclab {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(101),
        "ipclab {args:?} panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const RUN: &[&str] = &[
    "run",
    "-m",
    "sysv-mq",
    "-p",
    "pingpong",
    "-s",
    "64",
    "--iterations",
    "10",
    "--no-limits",
];

/// The registry's name (`$XDG_RUNTIME_DIR/ipclab-registry`, or without
/// it `/dev/shm/ipclab-registry-<uid>`) taken by another user: a run that
/// needs the registry fails with the name in its error, and neither it
/// nor `ipclab clean` (`--all`) removes or changes what is there.
#[test]
fn a_planted_registry_is_left_alone() {
    if !is_root() {
        return;
    }
    in_private_namespace(|root| {
        let xdg = root.join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        for (xdg, registry) in [
            (None, PathBuf::from("/dev/shm/ipclab-registry-0")),
            (Some(xdg.as_path()), xdg.join("ipclab-registry")),
        ] {
            for kind in KINDS {
                let planted = Planted::new(&registry, kind, "");
                let out = ipclab(root, xdg, RUN);
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{kind:?}: {text}");
                assert!(
                    text.contains(&*registry.to_string_lossy()),
                    "{kind:?}: {text}"
                );
                planted.assert_untouched(&format!("a run (XDG_RUNTIME_DIR {xdg:?})"));
                for args in [&["clean"][..], &["clean", "--all"], &["ls"]] {
                    ipclab(root, xdg, args);
                    planted.assert_untouched(&format!("ipclab {args:?} (XDG_RUNTIME_DIR {xdg:?})"));
                }
            }
        }
    });
}

/// A pid that no process has (one that just exited and was reaped).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    c.wait().unwrap();
    c.id()
}

/// Another user's objects at every name `ipclab clean` looks at, shaped
/// like ipclab's and of a dead creator (in `/dev/shm`, the temporary
/// directory, `$XDG_RUNTIME_DIR`; an iceoryx2 record's root and files), and
/// inside the registry (records and a writer's leftover of a dead creator):
/// `clean` and `clean --all` leave them all alone, while removing the one
/// object of ours planted beside them.
#[test]
fn clean_leaves_other_users_objects_alone() {
    if !is_root() {
        return;
    }
    in_private_namespace(|root| {
        let xdg = root.join("xdg");
        let tmp = root.join("tmp");
        std::fs::create_dir(&xdg).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let registry = xdg.join("ipclab-registry");
        std::fs::create_dir(&registry).unwrap();
        std::fs::set_permissions(&registry, PermissionsExt::from_mode(0o700)).unwrap();
        let dead = dead_pid();
        let marked = |prefix: &str| format!("{prefix}-{dead}-{}", hex(16));
        let shm = Path::new("/dev/shm");
        for kind in KINDS {
            let iox_root = tmp.join(format!("ipclab-{}", hex(16)));
            let iox_prefix = format!("iox2_{}_", hex(8));
            let record = format!(
                "kind=iceoryx2\npid={dead}\ntime=0\nroot={}\nprefix={iox_prefix}\n",
                iox_root.display()
            );
            // One of ours, of a dead creator: clean must remove it.
            let ours = shm.join(marked("ipclab"));
            std::fs::write(&ours, "ours").unwrap();
            let record_of_ours = registry.join(format!("iceoryx2-{}", hex(8)));
            std::fs::write(&record_of_ours, &record).unwrap();
            let sysv_record = format!("kind=sysv-shm\npid={dead}\ntime=0\nkey={}\n", 0x1cab_0001);
            let planted = [
                Planted::new(&shm.join(marked("ipclab")), kind, CONTENTS),
                Planted::new(
                    &shm.join(format!("sem.{}", marked("ipclab"))),
                    kind,
                    CONTENTS,
                ),
                Planted::new(&shm.join(marked("shmchan")), kind, CONTENTS),
                Planted::new(&tmp.join(marked("ipclab")), kind, CONTENTS),
                Planted::new(&xdg.join(marked("ipclab")), kind, CONTENTS),
                Planted::new(&iox_root, kind, CONTENTS),
                Planted::new(&shm.join(format!("{iox_prefix}x")), kind, CONTENTS),
                Planted::new(&registry.join("sysv-shm-1cab0001"), kind, &sysv_record),
                Planted::new(
                    &registry.join(format!("iceoryx2-{}", hex(8))),
                    kind,
                    &record,
                ),
                Planted::new(
                    &registry.join(format!("tmp-{dead}-{}", hex(8))),
                    kind,
                    CONTENTS,
                ),
            ];
            for args in [&["clean"][..], &["clean", "--all"]] {
                let out = ipclab(root, Some(&xdg), args);
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                for p in &planted {
                    p.assert_untouched(&format!("ipclab {args:?}: {text}"));
                }
                assert!(!ours.exists(), "{kind:?}: ours not cleaned: {text}");
            }
            // Our record's root and files were someone else's: the record
            // stays, for nothing of ours may be left.
            let _ = std::fs::remove_file(&record_of_ours);
        }
    });
}
