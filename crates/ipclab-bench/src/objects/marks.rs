//! The mark on every named object: `ipclab-<pid>-<32 hex>`.
//!
//! `<pid>` is the process that created the object (a cell's supervisor),
//! in decimal; `<32 hex>` are 128 random bits from `getrandom`, so that
//! nobody can plant the name first. shmchan's own names have the same
//! shape, `shmchan-<pid>-<32 hex>`. A name of exactly this shape is
//! ipclab's (or shmchan's); `ipclab-notours` or `ipclab-<32 hex>` are not.

use std::io;

/// Every name ipclab gives an object starts with this.
pub const PREFIX: &str = "ipclab-";
/// The prefix of the names shmchan makes up.
pub const SHMCHAN_PREFIX: &str = "shmchan-";

/// Who made a marked name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maker {
    Ipclab,
    Shmchan,
}

/// `n` random bytes as `2n` lowercase hex digits.
pub fn random_hex(n: usize) -> io::Result<String> {
    let mut bits = vec![0u8; n];
    getrandom::fill(&mut bits).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(bits.iter().map(|b| format!("{b:02x}")).collect())
}

/// `ipclab-<our pid>-<32 hex>`: a new marked name.
pub fn random_name() -> io::Result<String> {
    Ok(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        random_hex(16)?
    ))
}

/// A POSIX object name (`shm_open`, `sem_open`, `mq_open`):
/// `/ipclab-<pid>-<32 hex>`.
pub fn random_posix_name() -> io::Result<String> {
    Ok(format!("/{}", random_name()?))
}

/// The maker and creator pid of `name` (without a leading `/`), if it has
/// exactly the shape of a marked name.
pub fn parse(name: &str) -> Option<(Maker, i32)> {
    let (maker, rest) = if let Some(rest) = name.strip_prefix(PREFIX) {
        (Maker::Ipclab, rest)
    } else {
        (Maker::Shmchan, name.strip_prefix(SHMCHAN_PREFIX)?)
    };
    let (pid, hex) = rest.split_once('-')?;
    let digits_only = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    let hex_only = hex.len() == 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !digits_only || !hex_only || pid.starts_with('0') {
        return None;
    }
    let pid: i32 = pid.parse().ok()?;
    Some((maker, pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_names_parse_back_to_our_pid() {
        let (a, b) = (random_name().unwrap(), random_name().unwrap());
        assert_ne!(a, b);
        let pid = std::process::id() as i32;
        assert_eq!(parse(&a), Some((Maker::Ipclab, pid)));
        assert!(random_posix_name().unwrap().starts_with("/ipclab-"));
        let hex = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse(&format!("shmchan-7-{hex}")),
            Some((Maker::Shmchan, 7))
        );
    }

    #[test]
    fn look_alikes_are_not_marked() {
        let hex = "0123456789abcdef0123456789abcdef";
        for name in [
            "ipclab-notours".to_string(),
            format!("ipclab-{hex}"),
            format!("ipclab--{hex}"),
            format!("ipclab-0-{hex}"),
            format!("ipclab-12-{hex}0"),
            format!("ipclab-12-{}", hex.to_uppercase()),
            format!("ipclab-x1-{hex}"),
            format!("ipclab-99999999999-{hex}"),
            format!("sem.ipclab-12-{hex}"),
            format!("iox2_12-{hex}"),
        ] {
            assert_eq!(parse(&name), None, "{name}");
        }
    }
}
