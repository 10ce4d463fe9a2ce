//! The bytes every message carries, and their check.
//!
//! A message of `len` bytes is a sequence of little-endian 64-bit words
//! (the last one cut short when `len` is not a multiple of 8):
//!
//! | word | content |
//! |---|---|
//! | 0 | the sequence number; bit 63 set on a reply |
//! | 1 | the check word: a hash of (word 0, `len`) |
//! | i ≥ 2 | `check + i × φ64`, so every byte depends on the sequence number, the length and its own position |
//!
//! The receiver regenerates what the sender must have written and compares
//! every byte. That catches whatever a checksum would (a lost, repeated,
//! reordered, stale, shifted or torn message, a flipped bit) and names the
//! first byte that differs. Messages shorter than 16 bytes carry the first
//! `len` bytes of the header, so a 1-byte message still carries the low
//! byte of its sequence number.

use std::fmt;

const PHI: u64 = 0x9E37_79B9_7F4A_7C15;
const REPLY: u64 = 1 << 63;

/// SplitMix64's finaliser: a cheap, well-mixed hash of one word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which message: its sequence number, direction and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    head: u64,
    check: u64,
    len: usize,
}

impl Payload {
    /// The `seq`-th request of `len` bytes (client to server, or any stream).
    pub fn request(seq: u64, len: usize) -> Self {
        Self::with_head(seq & !REPLY, len)
    }

    /// The reply to the `seq`-th request.
    pub fn reply(seq: u64, len: usize) -> Self {
        Self::with_head(seq | REPLY, len)
    }

    fn with_head(head: u64, len: usize) -> Self {
        Series::new(len).with_head(head)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn word(&self, i: usize) -> u64 {
        match i {
            0 => self.head,
            1 => self.check,
            _ => self.check.wrapping_add((i as u64).wrapping_mul(PHI)),
        }
    }

    #[inline(always)]
    fn byte(&self, offset: usize) -> u8 {
        self.word(offset / 8).to_le_bytes()[offset % 8]
    }

    /// Writes the message bytes `offset .. offset + buf.len()` into `buf`.
    pub fn fill(&self, offset: usize, buf: &mut [u8]) {
        debug_assert!(offset + buf.len() <= self.len);
        let (head, words, _, first_word) = split(offset, buf.len());
        let (head_buf, rest) = buf.split_at_mut(head);
        let (word_buf, tail_buf) = rest.split_at_mut(words * 8);
        for (k, b) in head_buf.iter_mut().enumerate() {
            *b = self.byte(offset + k);
        }
        // Words 0 and 1 are the header; the body is an arithmetic series,
        // which the compiler turns into vector code.
        let mut chunks = word_buf.chunks_exact_mut(8);
        let mut i = first_word;
        while i < 2 {
            match chunks.next() {
                Some(c) => c.copy_from_slice(&self.word(i).to_le_bytes()),
                None => break,
            }
            i += 1;
        }
        let mut value = self.word(i.max(2));
        for c in chunks {
            c.copy_from_slice(&value.to_le_bytes());
            value = value.wrapping_add(PHI);
        }
        let tail_start = offset + head + words * 8;
        for (k, b) in tail_buf.iter_mut().enumerate() {
            *b = self.byte(tail_start + k);
        }
    }

    /// The offset of the first byte of `buf` (holding the message bytes from
    /// `offset` on) that differs from what the sender must have written.
    pub fn find_mismatch(&self, offset: usize, buf: &[u8]) -> Option<usize> {
        if offset + buf.len() > self.len {
            return Some(offset.max(self.len));
        }
        let (head, words, _, first_word) = split(offset, buf.len());
        let bytewise = |from: usize, to: usize| {
            (from..to)
                .find(|&k| buf[k] != self.byte(offset + k))
                .map(|k| offset + k)
        };
        if let Some(at) = bytewise(0, head) {
            return Some(at);
        }
        let word_buf = &buf[head..head + words * 8];
        // The common case is one branch-free pass that ORs the differences
        // of every word, at memory speed (the body is an arithmetic series,
        // which the compiler turns into vector code); only a message that
        // differs somewhere is looked at again, block by block and then
        // byte by byte, to name the first byte that differs.
        if self.words_differ(first_word, word_buf) {
            const BLOCK: usize = 64 * 8;
            for (b, block) in word_buf.chunks(BLOCK).enumerate() {
                if self.words_differ(first_word + b * (BLOCK / 8), block) {
                    let start = head + b * BLOCK;
                    return bytewise(start, start + block.len());
                }
            }
        }
        bytewise(head + words * 8, buf.len())
    }

    /// Whether the whole words in `buf` (word `first` of the message on)
    /// differ anywhere from what the sender must have written.
    #[inline(always)]
    fn words_differ(&self, first: usize, buf: &[u8]) -> bool {
        let mut chunks = buf.chunks_exact(8);
        let load = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let mut diff = 0u64;
        let mut i = first;
        while i < 2 {
            match chunks.next() {
                Some(c) => diff |= load(c) ^ self.word(i),
                None => break,
            }
            i += 1;
        }
        let mut value = self.word(i.max(2));
        for c in chunks {
            diff |= load(c) ^ value;
            value = value.wrapping_add(PHI);
        }
        diff != 0
    }

    /// The byte the sender must have written at `offset`.
    pub fn expected(&self, offset: usize) -> u8 {
        self.byte(offset)
    }
}

/// The payloads of one length, with the hash of the length worked out
/// once: a side makes one and takes each message's [`Payload`] from it,
/// one hash per message instead of two.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    len: usize,
    len_mix: u64,
}

impl Series {
    pub fn new(len: usize) -> Series {
        Series {
            len,
            len_mix: mix(len as u64),
        }
    }

    /// [`Payload::request`] of this length.
    #[inline]
    pub fn request(&self, seq: u64) -> Payload {
        self.with_head(seq & !REPLY)
    }

    /// [`Payload::reply`] of this length.
    #[inline]
    pub fn reply(&self, seq: u64) -> Payload {
        self.with_head(seq | REPLY)
    }

    #[inline]
    fn with_head(&self, head: u64) -> Payload {
        Payload {
            head,
            check: mix(head ^ self.len_mix),
            len: self.len,
        }
    }
}

/// Splits a chunk at `offset` of `len` bytes into unaligned head bytes, whole
/// 8-byte words, and tail bytes; also returns the index of the first word.
fn split(offset: usize, len: usize) -> (usize, usize, usize, usize) {
    let head = ((8 - offset % 8) % 8).min(len);
    let words = (len - head) / 8;
    let tail = len - head - words * 8;
    (head, words, tail, (offset + head) / 8)
}

/// The first difference found in a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub offset: usize,
    pub expected: u8,
    pub got: u8,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.offset == usize::MAX {
            write!(
                f,
                "the chunks handed to the check did not cover the message exactly"
            )
        } else {
            write!(
                f,
                "byte {} is {:#04x}, expected {:#04x}",
                self.offset, self.got, self.expected
            )
        }
    }
}

/// Checks one received message chunk by chunk, as [`crate::transport::Check`]
/// hands them over, and remembers the first difference.
pub struct Verifier {
    payload: Payload,
    next: usize,
    mismatch: Option<Mismatch>,
}

impl Verifier {
    pub fn new(payload: Payload) -> Self {
        Verifier {
            payload,
            next: 0,
            mismatch: None,
        }
    }

    /// Looks at the chunk at `offset`; chunks must come in order.
    pub fn check(&mut self, offset: usize, chunk: &[u8]) {
        if self.mismatch.is_some() {
            return;
        }
        if offset != self.next {
            self.mismatch = Some(Mismatch {
                offset: usize::MAX,
                expected: 0,
                got: 0,
            });
            return;
        }
        self.next = offset + chunk.len();
        if let Some(at) = self.payload.find_mismatch(offset, chunk) {
            let got = chunk.get(at - offset).copied().unwrap_or(0);
            self.mismatch = Some(Mismatch {
                offset: at,
                expected: self.payload.expected(at),
                got,
            });
        }
    }

    /// The verdict once the message is complete.
    pub fn finish(self) -> Result<(), Mismatch> {
        match self.mismatch {
            Some(m) => Err(m),
            None if self.next != self.payload.len => Err(Mismatch {
                offset: usize::MAX,
                expected: 0,
                got: 0,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(p: &Payload) -> Vec<u8> {
        let mut v = vec![0; p.len()];
        p.fill(0, &mut v);
        v
    }

    #[test]
    fn chunked_fill_equals_whole_fill() {
        for len in [0, 1, 7, 8, 12, 15, 16, 17, 100, 4095, 4097, 10_000] {
            let p = Payload::request(42, len);
            let all = whole(&p);
            for chunk in [1, 3, 8, 13, 4096] {
                let mut v = vec![0; len];
                for (k, c) in v.chunks_mut(chunk).enumerate() {
                    p.fill(k * chunk, c);
                }
                assert_eq!(v, all, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn header_carries_sequence_number() {
        let v = whole(&Payload::reply(0x0102_0304, 16));
        assert_eq!(
            u64::from_le_bytes(v[..8].try_into().unwrap()),
            0x0102_0304 | REPLY
        );
        assert_eq!(whole(&Payload::request(0x1ff, 1)), vec![0xff]);
    }

    #[test]
    fn every_flipped_byte_is_found() {
        let len = 1000;
        let p = Payload::request(7, len);
        let good = whole(&p);
        assert_eq!(p.find_mismatch(0, &good), None);
        for at in 0..len {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let mut v = Verifier::new(p);
            for (k, c) in bad.chunks(97).enumerate() {
                v.check(k * 97, c);
            }
            assert_eq!(v.finish().unwrap_err().offset, at);
        }
    }

    #[test]
    fn a_series_makes_the_same_payloads() {
        for len in [0, 1, 64, 4097] {
            let series = Series::new(len);
            for seq in [0, 1, 99, u64::MAX >> 1] {
                assert_eq!(series.request(seq), Payload::request(seq, len));
                assert_eq!(series.reply(seq), Payload::reply(seq, len));
            }
        }
    }

    #[test]
    fn another_message_does_not_pass() {
        let len = 64;
        let sent = whole(&Payload::request(5, len));
        for other in [
            Payload::request(6, len),
            Payload::reply(5, len),
            Payload::request(5, 65),
        ] {
            assert!(other.find_mismatch(0, &sent).is_some(), "{other:?}");
        }
    }

    #[test]
    fn missing_or_repeated_chunks_are_errors() {
        let p = Payload::request(1, 100);
        let all = whole(&p);
        let mut short = Verifier::new(p);
        short.check(0, &all[..50]);
        assert!(short.finish().is_err());
        let mut twice = Verifier::new(p);
        twice.check(0, &all[..50]);
        twice.check(0, &all[..50]);
        assert!(twice.finish().is_err());
    }
}
