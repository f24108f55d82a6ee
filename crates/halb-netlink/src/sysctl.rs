//! The few `/proc/sys` knobs direct routing and VRRP need
//! (`net.ipv4.conf.<if>.arp_ignore`, `arp_announce`, ...), read, set and
//! restored.
//!
//! A [`Saved`] remembers the first value it saw for each knob it set, so
//! [`Saved::restore`] puts the machine back as it found it, whatever was
//! set in between.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A sysctl that could not be read or written.
#[derive(Debug, Error)]
pub enum SysctlError {
    /// An interface name that cannot be a path component.
    #[error("{0:?} is not an interface name")]
    BadInterface(String),
    /// The read or write failed.
    #[error("{path}: {source}")]
    Io {
        /// The file under /proc/sys.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

const ROOT: &str = "/proc/sys";

fn check_iface(iface: &str) -> Result<(), SysctlError> {
    if iface.is_empty()
        || iface.len() > 15
        || iface == "."
        || iface == ".."
        || iface.contains('/')
        || iface.contains('\0')
    {
        return Err(SysctlError::BadInterface(iface.to_owned()));
    }
    Ok(())
}

/// `/proc/sys/net/ipv4/conf/<iface>/<key>` (`iface` may be `all` or
/// `default`).
pub fn ipv4_conf(iface: &str, key: &str) -> Result<PathBuf, SysctlError> {
    check_iface(iface)?;
    Ok(Path::new(ROOT).join("net/ipv4/conf").join(iface).join(key))
}

/// `/proc/sys/net/ipv6/conf/<iface>/<key>`.
pub fn ipv6_conf(iface: &str, key: &str) -> Result<PathBuf, SysctlError> {
    check_iface(iface)?;
    Ok(Path::new(ROOT).join("net/ipv6/conf").join(iface).join(key))
}

/// Reads a knob, trimmed.
pub fn read(path: &Path) -> Result<String, SysctlError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| SysctlError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Writes a knob.
pub fn write(path: &Path, value: &str) -> Result<(), SysctlError> {
    std::fs::write(path, format!("{value}\n")).map_err(|source| SysctlError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Knobs set, with the values to put back.
#[derive(Debug, Default)]
pub struct Saved {
    entries: Vec<(PathBuf, String)>,
}

impl Saved {
    /// Nothing saved yet.
    pub fn new() -> Saved {
        Saved::default()
    }

    /// Sets `path` to `value`, remembering the value it had the first
    /// time this `Saved` touched it. Writing the value it already has is
    /// skipped (but still remembered, so restore is a no-op for it).
    pub fn set(&mut self, path: &Path, value: &str) -> Result<(), SysctlError> {
        let old = read(path)?;
        if !self.entries.iter().any(|(p, _)| p == path) {
            self.entries.push((path.to_owned(), old.clone()));
        }
        if old != value {
            write(path, value)?;
        }
        Ok(())
    }

    /// Whether nothing was set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The knobs touched and their original values.
    pub fn entries(&self) -> &[(PathBuf, String)] {
        &self.entries
    }

    /// Puts every knob back, last set first; returns the failures.
    pub fn restore(&mut self) -> Vec<SysctlError> {
        let mut errors = Vec::new();
        while let Some((path, value)) = self.entries.pop() {
            if let Err(e) = write(&path, &value) {
                errors.push(e);
            }
        }
        errors
    }
}

/// The direct-routing ARP settings for an interface that must not answer
/// ARP for addresses on other interfaces (a VIP on `lo`):
/// `arp_ignore=1`, `arp_announce=2` on `iface` and on `all` (the kernel
/// uses the maximum of the two).
pub fn direct_routing_arp(saved: &mut Saved, iface: &str) -> Result<(), SysctlError> {
    for i in ["all", iface] {
        saved.set(&ipv4_conf(i, "arp_ignore")?, "1")?;
        saved.set(&ipv4_conf(i, "arp_announce")?, "2")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            ipv4_conf("eth0", "arp_ignore").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/eth0/arp_ignore")
        );
        assert_eq!(
            ipv6_conf("all", "forwarding").unwrap(),
            Path::new("/proc/sys/net/ipv6/conf/all/forwarding")
        );
        for bad in ["", "..", "a/b", "sixteen-chars-xx"] {
            assert!(ipv4_conf(bad, "arp_ignore").is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_loopback_knob() {
        let v = read(&ipv4_conf("lo", "arp_ignore").unwrap()).unwrap();
        assert!(v.parse::<u32>().is_ok(), "{v}");
    }

    #[test]
    fn saved_restores_first_value() {
        let dir = std::env::temp_dir().join(format!("halb-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("knob");
        std::fs::write(&f, "0\n").unwrap();
        let mut s = Saved::new();
        s.set(&f, "1").unwrap();
        assert_eq!(read(&f).unwrap(), "1");
        s.set(&f, "2").unwrap();
        assert_eq!(read(&f).unwrap(), "2");
        assert_eq!(s.entries().len(), 1);
        assert!(s.restore().is_empty());
        assert_eq!(read(&f).unwrap(), "0");
        assert!(s.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
