//! A fuzz target (proptest) of the receiver's parsing of what a hostile
//! sender can write: a real sender fills a real segment (a sealed memfd
//! made by the crate), then the test overwrites the segment through a
//! mapping of its own (header words, indices, sync words, record headers,
//! payload, or every byte), and the receiver is driven with non-blocking
//! and 1 ms receives.
//!
//! One process, no concurrency: the segment is mapped by the sender, the
//! receiver and the test, and the "hostile peer" is the test writing raw
//! bytes between calls, which is all a peer can do to this memory. This
//! checks the reader's parsing of any state the memory can be in; races
//! with a peer writing during a call are `tests/hostile.rs`'s (a second
//! process). Nothing here is a measurement.
//!
//! Checked for every case: no panic, no fault, every call returns (a
//! watchdog aborts the run if one does not), and
//! - every message received from bytes the mutation could not have
//!   changed or exposed is the message that was sent next, byte for byte;
//!   a message the mutation could not have made up is never returned;
//! - if nothing the receiver reads was changed, every sent message is
//!   received, in order, and no call fails with `Corrupt`;
//! - errors stay: after `Corrupt`, `Closed`, `Empty`/`Timeout` (nothing
//!   changes between calls), every later call fails the same way (or with
//!   `TooLarge` for a buffer that is too small), never with a message.
//!
//! Long run: `PROPTEST_CASES=1000000 cargo test --release -p shmchan --test
//! fuzz_consumer`.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;
use rustix::mm::{MapFlags, ProtFlags};
use shmchan::{Error, HEADER_SIZE, Options, Receiver, Sender, Wait};

/// Cases of the short run (`cargo test`); `PROPTEST_CASES` overrides it.
const DEFAULT_CASES: u32 = 2000;
/// The longest any one receive may take before the watchdog aborts.
const WATCHDOG: Duration = Duration::from_secs(60);
/// The timeout of the timed receives.
const CALL: Duration = Duration::from_millis(1);

// Where the words sit (shmchan's `layout.rs`).
const TAIL: usize = 128;
const HEAD: usize = 256;
const WORDS: [(usize, usize); 15] = [
    (0, 8),  // magic
    (8, 4),  // version
    (12, 4), // header size
    (16, 8), // capacity
    (24, 8), // segment size
    (32, 4), // attached[sender]
    (36, 4), // attached[receiver]
    (40, 4), // closed[sender]
    (44, 4), // closed[receiver]
    (TAIL, 8),
    (HEAD, 8),
    (384, 4), // waiting[sender].epoch
    (388, 4), // waiting[sender].wakes
    (512, 4), // waiting[receiver].epoch
    (516, 4), // waiting[receiver].wakes
];
/// Record kinds: Msg, Cont, Pad, Abort.
const KINDS: [u64; 4] = [0x5A11_C401, 0x5A11_C402, 0x5A11_C403, 0x5A11_C404];

/// A message's bytes: all below 0x80, so that no payload can pass for a
/// record header (whose kind has a byte 0xC4).
fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((seq as usize * 31 + i * 7) % 128) as u8)
        .collect()
}

/// Aborts the test binary when one receive has been under way for
/// [`WATCHDOG`]: a hang fails the run instead of stalling it. Only time
/// inside a receive counts (a guard per receive), so other tests of the
/// same binary running long afterwards never trip it.
struct Watch;

/// Milliseconds since `base()` (plus one) when the receive under way
/// began; 0 when none is. Relaxed: the watchdog reads this value alone,
/// nothing else is published through it.
static SINCE: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl Watch {
    fn start() -> Watch {
        static START: Once = Once::new();
        START.call_once(|| {
            std::thread::spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let since = SINCE.load(Ordering::Relaxed);
                    if since != 0 && now_ms().saturating_sub(since) > WATCHDOG.as_millis() as u64 {
                        eprintln!("watchdog: a receive has not returned for {WATCHDOG:?}");
                        std::process::abort();
                    }
                }
            });
        });
        SINCE.store(now_ms(), Ordering::Relaxed);
        Watch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        SINCE.store(0, Ordering::Relaxed);
    }
}

/// The test's own mapping of the segment: the hostile peer's pen.
struct Raw {
    ptr: NonNull<u8>,
    len: usize,
}

impl Raw {
    fn new(fd: impl AsFd, len: usize) -> Raw {
        // SAFETY: a new shared mapping at an address the kernel picks;
        // used through raw pointers only.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
            .unwrap()
        };
        Raw {
            ptr: NonNull::new(ptr.cast()).unwrap(),
            len,
        }
    }

    fn get(&self, off: usize) -> u8 {
        assert!(off < self.len);
        // SAFETY: within the mapping; nobody else runs during the read.
        unsafe { self.ptr.as_ptr().add(off).read_volatile() }
    }

    fn set(&self, off: usize, byte: u8) {
        assert!(off < self.len);
        // SAFETY: as in `get`.
        unsafe { self.ptr.as_ptr().add(off).write_volatile(byte) }
    }

    fn word(&self, off: usize, width: usize) -> u64 {
        let mut b = [0u8; 8];
        for (i, byte) in b.iter_mut().enumerate().take(width) {
            *byte = self.get(off + i);
        }
        u64::from_le_bytes(b)
    }

    fn set_word(&self, off: usize, width: usize, value: u64) {
        for (i, byte) in value.to_le_bytes().iter().enumerate().take(width) {
            self.set(off + i, *byte);
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        (0..self.len).map(|i| self.get(i)).collect()
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range; nothing points into it now.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// What the honest sender does before the mutation.
#[derive(Clone, Debug)]
enum Op {
    /// `try_send`: all or nothing.
    Send(usize),
    /// `send_timeout` of 1 ms: may leave part of a message, then an Abort.
    SendTimeout(usize),
    /// `try_loan` and commit: may leave a Pad record.
    Loan(usize),
    /// An honest `try_recv`, checked.
    Recv,
}

/// How a value is changed.
#[derive(Clone, Debug)]
enum Change {
    Random(u64),
    Add(i64),
    Set(u64),
}

/// What the hostile peer overwrites.
#[derive(Clone, Debug)]
enum Mutation {
    /// One of the header's words (`WORDS`).
    Word(usize, Change),
    /// A record header field (0 kind, 1 chunk, 2 total) of the `n`th
    /// record after the receiver's position.
    Record(usize, usize, Change),
    /// A byte anywhere in the data area (offset modulo the capacity).
    Data(usize, u8),
    /// A byte anywhere in the segment.
    Anywhere(usize, u8),
    /// Every byte of the segment, from this seed.
    Everything(u64),
}

#[derive(Clone, Copy, Debug)]
enum Call {
    Try,
    Timed,
    TryInto(usize),
    TimedInto(usize),
    /// The in-place receives (the bytes read where they lie).
    TryInPlace,
    TimedInPlace,
}

#[derive(Clone, Debug)]
struct Case {
    cap: usize,
    ops: Vec<Op>,
    mutations: Vec<Mutation>,
    /// Mutate the header before the receiver attaches (its checks).
    before_open: bool,
    calls: Vec<Call>,
}

fn change() -> impl Strategy<Value = Change> {
    let extremes = prop_oneof![
        Just(0u64),
        Just(1),
        Just(15),
        Just(16),
        Just(17),
        Just(4096),
        Just(4096 + 16),
        Just(8192),
        Just(1 << 33),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) + 1),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(u64::MAX - 15),
        Just(u64::MAX),
        prop::sample::select(KINDS.to_vec()),
    ];
    prop_oneof![
        any::<u64>().prop_map(Change::Random),
        (-4i64..=4).prop_map(Change::Add),
        (-4i64..=4).prop_map(|d| Change::Add(d * 16)),
        extremes.prop_map(Change::Set),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    prop::sample::select(vec![4096usize, 8192]).prop_flat_map(|cap| {
        let len = prop_oneof![0..48usize, 0..cap / 4 + 40, cap / 4..cap];
        let op = prop_oneof![
            5 => len.clone().prop_map(Op::Send),
            1 => len.clone().prop_map(Op::SendTimeout),
            2 => len.prop_map(move |n| Op::Loan(n.min(cap - 16))),
            3 => Just(Op::Recv),
        ];
        let mutation = prop_oneof![
            4 => (0..WORDS.len(), change()).prop_map(|(w, c)| Mutation::Word(w, c)),
            4 => (0..16usize, 0..3usize, change()).prop_map(|(n, f, c)| Mutation::Record(n, f, c)),
            2 => (any::<usize>(), any::<u8>()).prop_map(|(o, b)| Mutation::Data(o, b)),
            1 => (any::<usize>(), any::<u8>()).prop_map(|(o, b)| Mutation::Anywhere(o, b)),
            1 => any::<u64>().prop_map(Mutation::Everything),
        ];
        let buf = prop_oneof![Just(0usize), Just(16), Just(100), Just(cap), Just(4 * cap)];
        let call = prop_oneof![
            3 => Just(Call::Try),
            1 => Just(Call::Timed),
            1 => buf.clone().prop_map(Call::TryInto),
            1 => buf.prop_map(Call::TimedInto),
            2 => Just(Call::TryInPlace),
            1 => Just(Call::TimedInPlace),
        ];
        (
            prop::collection::vec(op, 0..24),
            prop::collection::vec(mutation, 0..4),
            prop::bool::weighted(0.1),
            prop::collection::vec(call, 1..8),
        )
            .prop_map(move |(ops, mutations, before_open, calls)| Case {
                cap,
                ops,
                mutations,
                before_open,
                calls,
            })
    })
}

/// A message the receiver must get, and the ring position its records
/// end at.
struct Sent {
    bytes: Vec<u8>,
    end: u64,
}

/// What the honest phase left in the ring.
struct Honest {
    /// Messages sent and not yet received.
    queue: VecDeque<Sent>,
    /// Lengths of messages whose `send_timeout` failed: part of one may be
    /// in the ring, and a receive into a short buffer may name its length
    /// (`TooLarge`) before it reaches the Abort record.
    aborted: Vec<u64>,
}

/// Runs the honest sender and receiver through `ops`.
fn honest(tx: &mut Sender, rx: &mut Receiver, raw: &Raw, ops: &[Op]) -> Honest {
    let mut queue: VecDeque<Sent> = VecDeque::new();
    let mut aborted = Vec::new();
    let tail = || raw.word(TAIL, 8);
    for (seq, op) in ops.iter().enumerate() {
        let seq = seq as u64;
        let sent = match *op {
            Op::Send(len) => tx.try_send(message(seq, len)).ok().map(|()| len),
            Op::SendTimeout(len) => match tx.send_timeout(message(seq, len), CALL) {
                Ok(()) => Some(len),
                Err(_) => {
                    aborted.push(len as u64);
                    None
                }
            },
            Op::Loan(len) => match tx.try_loan(len) {
                Ok(mut loan) => {
                    loan.copy_from_slice(&message(seq, len));
                    loan.commit();
                    Some(len)
                }
                Err(Error::Full) => None,
                Err(e) => panic!("honest loan: {e}"),
            },
            Op::Recv => {
                let _watch = Watch::start();
                match rx.try_recv() {
                    Ok(got) => assert_eq!(got, queue.pop_front().expect("sent").bytes),
                    Err(Error::Empty) => {}
                    Err(e) => panic!("honest receive: {e}"),
                }
                None
            }
        };
        if let Some(len) = sent {
            let end = tail();
            queue.push_back(Sent {
                bytes: message(seq, len),
                end,
            });
        }
    }
    Honest { queue, aborted }
}

/// A tiny generator for `Mutation::Everything`.
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn changed(old: u64, width: usize, c: &Change) -> u64 {
    match *c {
        Change::Random(r) => r,
        Change::Add(d) => old.wrapping_add(d as u64),
        Change::Set(v) => v,
    }
    .to_le_bytes()
    .iter()
    .take(width)
    .rev()
    .fold(0, |acc, b| acc << 8 | u64::from(*b))
}

/// Starts of the records from `from` up to `to` (the receiver's position
/// and the published tail), as the sender wrote them.
fn records(raw: &Raw, cap: usize, from: u64, to: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos + 16 <= to && out.len() < 64 {
        out.push(pos);
        let chunk = raw.word(HEADER_SIZE + (pos as usize % cap) + 4, 4);
        pos += (16 + chunk).next_multiple_of(16);
    }
    out
}

fn mutate(raw: &Raw, cap: usize, head: u64, tail: u64, mutations: &[Mutation]) {
    let recs = records(raw, cap, head, tail);
    for m in mutations {
        match m {
            Mutation::Word(w, c) => {
                let (off, width) = WORDS[*w];
                raw.set_word(off, width, changed(raw.word(off, width), width, c));
            }
            Mutation::Record(n, field, c) => {
                let Some(&pos) = recs.get(n % recs.len().max(1)) else {
                    continue;
                };
                let (at, width) = [(0, 4), (4, 4), (8, 8)][*field];
                let off = HEADER_SIZE + (pos as usize % cap) + at;
                raw.set_word(off, width, changed(raw.word(off, width), width, c));
            }
            Mutation::Data(o, b) => raw.set(HEADER_SIZE + o % cap, *b),
            Mutation::Anywhere(o, b) => raw.set(o % raw.len, *b),
            Mutation::Everything(seed) => {
                let mut s = seed | 1;
                for i in 0..raw.len {
                    raw.set(i, xorshift(&mut s) as u8);
                }
            }
        }
    }
}

/// What the mutation lets the receiver see, found by comparing the
/// segment before and after it.
struct Exposure {
    /// Messages whose records end at or before this position are intact.
    trusted_until: u64,
    /// Where the receiver's view ends: the old tail or the new one.
    view_end: u64,
    /// Nothing the receiver reads changed.
    inert: bool,
}

fn exposure(before: &[u8], after: &[u8], cap: usize, head: u64) -> Exposure {
    let word = |m: &[u8]| u64::from_le_bytes(m[TAIL..TAIL + 8].try_into().unwrap());
    let (tail, new_tail) = (word(before), word(after));
    let view_end = tail.max(new_tail);
    let mut trusted_until = u64::MAX;
    let cap64 = cap as u64;
    for off in (HEADER_SIZE..before.len()).filter(|&i| before[i] != after[i]) {
        let o = (off - HEADER_SIZE) as u64;
        let pos = head + (o.wrapping_sub(head) & (cap64 - 1));
        if pos < view_end {
            trusted_until = trusted_until.min(pos);
        }
    }
    // A tail moved forward shows bytes past the old one: if any was ever
    // written, they may be records the receiver takes for messages.
    if new_tail > tail {
        let stale = (tail..new_tail.min(tail + cap64))
            .any(|p| before[HEADER_SIZE + (p % cap64) as usize] != 0);
        if stale {
            trusted_until = trusted_until.min(tail);
        }
    }
    Exposure {
        trusted_until,
        view_end,
        inert: trusted_until == u64::MAX && new_tail == tail,
    }
}

/// An error class that must stay once seen (nothing changes between
/// calls).
fn sticky(e: &Error) -> Option<String> {
    match e {
        Error::TooLarge { .. } => None,
        Error::Empty | Error::Timeout => Some("nothing".into()),
        other => Some(other.to_string()),
    }
}

fn receive(rx: &mut Receiver, call: Call) -> Result<Vec<u8>, Error> {
    let _watch = Watch::start();
    match call {
        Call::Try => rx.try_recv(),
        Call::Timed => rx.recv_timeout(CALL),
        Call::TryInto(n) => {
            let mut buf = vec![0; n];
            rx.try_recv_into(&mut buf).map(|len| buf[..len].to_vec())
        }
        Call::TimedInto(n) => {
            let mut buf = vec![0; n];
            rx.recv_into_timeout(&mut buf, CALL)
                .map(|len| buf[..len].to_vec())
        }
        Call::TryInPlace => rx.try_recv_in_place().map(|m| m.to_vec()),
        Call::TimedInPlace => rx.recv_in_place_timeout(CALL).map(|m| m.to_vec()),
    }
}

/// Drives the receiver after the mutation and checks every answer.
fn drive(rx: &mut Receiver, sent: Honest, ex: &Exposure, calls: &[Call]) {
    let Honest { mut queue, aborted } = sent;
    let drain = vec![Call::Try; queue.len() + 2];
    let mut stuck: Option<String> = None;
    let mut lost = false;
    for &call in calls.iter().chain(&drain) {
        let got = receive(rx, call);
        if let Some(class) = &stuck {
            match &got {
                Ok(m) => panic!("a message of {} bytes after '{class}'", m.len()),
                Err(e) => {
                    if let Some(now) = sticky(e) {
                        assert_eq!(&now, class, "the error changed");
                    }
                }
            }
            continue;
        }
        match got {
            Ok(m) if lost => drop(m),
            Ok(m) => match queue.front() {
                Some(next) if next.end <= ex.trusted_until => {
                    assert_eq!(m, next.bytes, "not the message sent next");
                    queue.pop_front();
                }
                None if ex.view_end <= ex.trusted_until => {
                    panic!("a message of {} bytes that was never sent", m.len())
                }
                _ => lost = true,
            },
            Err(Error::TooLarge { len, .. }) => {
                if let Some(next) = queue.front().filter(|n| n.end <= ex.trusted_until) {
                    let known = len == next.bytes.len() as u64 || aborted.contains(&len);
                    assert!(lost || known, "TooLarge names a length never sent: {len}");
                }
            }
            Err(e) => {
                if ex.inert {
                    assert!(
                        queue.is_empty(),
                        "'{e}' with {} messages left and nothing they depend on changed",
                        queue.len()
                    );
                    assert!(!matches!(e, Error::Corrupt(_)), "{e} after an inert change");
                }
                stuck = sticky(&e);
            }
        }
    }
    if ex.inert {
        assert!(queue.is_empty(), "{} messages never received", queue.len());
    }
}

fn run(case: &Case) {
    let opts = Options::new()
        .capacity(case.cap)
        .wait(Wait::Adaptive { spin: 50 });
    let fd: OwnedFd = opts.create_anonymous().unwrap();
    let raw = Raw::new(&fd, HEADER_SIZE + case.cap);
    let mut tx = opts.sender_from_fd(fd.try_clone().unwrap()).unwrap();
    if case.before_open {
        // The receiver's checks of the header: any error, or a receiver.
        mutate(&raw, case.cap, 0, 0, &case.mutations);
        if let Ok(mut rx) = opts.receiver_from_fd(fd) {
            for &call in &case.calls {
                let _ = receive(&mut rx, call);
            }
        }
        return;
    }
    let mut rx = opts.receiver_from_fd(fd).unwrap();
    let sent = honest(&mut tx, &mut rx, &raw, &case.ops);
    let (head, tail) = (raw.word(HEAD, 8), raw.word(TAIL, 8));
    let before = raw.snapshot();
    mutate(&raw, case.cap, head, tail, &case.mutations);
    let ex = exposure(&before, &raw.snapshot(), case.cap, head);
    drive(&mut rx, sent, &ex, &case.calls);
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

proptest! {
    #![proptest_config(Config { cases: cases(), ..Config::default() })]

    /// Failing cases are kept in `proptest-regressions/` and tried first.
    #[test]
    fn fuzz_consumer_with_a_hostile_sender(case in case()) {
        run(&case);
    }
}
