//! Messages carried as a run of pieces of at most `chunk` bytes, for queues
//! whose messages have a size limit (System V and POSIX message queues).
//!
//! The sender sends [`split`]'s pieces in order (one empty piece for an
//! empty message); the receiver feeds each piece's kind and length to
//! [`Pieces::take`], which checks the framing: every piece but the last is
//! `chunk` bytes, and an end marker is only valid, and empty, between
//! messages.

use std::io;

use crate::transport::protocol_error;

/// The (offset, length) of each piece of a `len`-byte message.
pub fn split(len: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = len.div_ceil(chunk).max(1);
    (0..count).map(move |i| (i * chunk, (len - i * chunk).min(chunk)))
}

/// What the queue said a received piece is.
pub enum Kind {
    Data,
    End,
    /// A type or priority the protocol does not use.
    Unknown(i64),
}

/// Where a message being received stands.
pub struct Pieces {
    len: usize,
    chunk: usize,
    offset: usize,
}

impl Pieces {
    pub fn new(len: usize, chunk: usize) -> Self {
        Pieces {
            len,
            chunk,
            offset: 0,
        }
    }

    /// Judges a received piece of `n` bytes: `Some(offset)` of data to
    /// check, `None` for the peer's end marker at a message boundary, or an
    /// error for broken framing.
    pub fn take(&mut self, kind: Kind, n: usize) -> io::Result<Option<usize>> {
        let (offset, len) = (self.offset, self.len);
        match kind {
            Kind::End if offset == 0 && n == 0 => Ok(None),
            Kind::End => Err(protocol_error(format!(
                "end marker ({n} bytes) after {offset} of {len} bytes"
            ))),
            Kind::Data => {
                let want = (len - offset).min(self.chunk);
                if n != want {
                    return Err(protocol_error(format!(
                        "a piece of {n} bytes at offset {offset} of {len}, expected {want}"
                    )));
                }
                self.offset += n;
                Ok(Some(offset))
            }
            Kind::Unknown(other) => Err(protocol_error(format!("unknown piece kind {other}"))),
        }
    }

    /// Whether every byte of the message has arrived.
    pub fn done(&self) -> bool {
        self.offset >= self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_message_once() {
        assert_eq!(split(0, 4).collect::<Vec<_>>(), [(0, 0)]);
        assert_eq!(split(4, 4).collect::<Vec<_>>(), [(0, 4)]);
        assert_eq!(split(9, 4).collect::<Vec<_>>(), [(0, 4), (4, 4), (8, 1)]);
    }

    #[test]
    fn framing_is_checked() {
        let mut p = Pieces::new(9, 4);
        assert_eq!(p.take(Kind::Data, 4).unwrap(), Some(0));
        assert!(p.take(Kind::End, 0).is_err(), "end marker mid-message");
        let mut p = Pieces::new(9, 4);
        assert!(p.take(Kind::Data, 3).is_err(), "short piece");
        assert!(Pieces::new(0, 4).take(Kind::End, 0).unwrap().is_none());
        assert!(Pieces::new(0, 4).take(Kind::Unknown(7), 0).is_err());
        let mut p = Pieces::new(0, 4);
        assert_eq!(p.take(Kind::Data, 0).unwrap(), Some(0));
        assert!(p.done());
    }
}
