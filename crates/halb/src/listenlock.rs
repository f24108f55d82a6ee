//! One daemon per listen address: two halb daemons with different control
//! sockets would both bind a virtual service's address (the proxy's
//! listeners use SO_REUSEPORT, so the kernel lets them) and split its
//! traffic, or fight over the same IPVS service.
//!
//! Each daemon holds an open-file-description lock (`F_OFD_SETLK`) on one
//! byte of one lock file per user, `listen.lock` in the directory of the
//! user's default control socket (`/run/halb` as root), at an offset
//! hashed from the network namespace and the service's key. That costs
//! one descriptor for any number of services; the kernel drops the locks
//! when the daemon exits, however it exits. The kernel already refuses
//! SO_REUSEPORT between users, so a lock file per user is enough.

use anyhow::Context;
use halb_table::ServiceKey;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The locks one daemon holds, by service.
pub struct ListenLocks {
    file: std::fs::File,
    path: PathBuf,
    netns: u64,
    held: HashMap<ServiceKey, i64>,
}

impl std::fmt::Debug for ListenLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenLocks")
            .field("path", &self.path)
            .field("held", &self.held.len())
            .finish()
    }
}

/// The lock file's directory: that of the user's default control socket,
/// whatever `--socket` this daemon was given.
pub fn default_dir() -> PathBuf {
    let sock = halb_config::default_control_socket();
    sock.parent()
        .map_or_else(|| PathBuf::from("/run/halb"), Path::to_path_buf)
}

impl ListenLocks {
    /// Opens (creating it 0600, its directory 0700) `dir/listen.lock`.
    pub fn open(dir: &Path) -> anyhow::Result<ListenLocks> {
        // The same rules as the control socket's directory.
        crate::control::check_socket_dir(&dir.join("listen.lock"), true)?;
        let path = dir.join("listen.lock");
        let file = crate::control::open_lock_file(&path)
            .with_context(|| format!("opening the listen lock file {}", path.display()))?;
        Ok(ListenLocks {
            file,
            path,
            netns: netns(),
            held: HashMap::new(),
        })
    }

    /// Takes the lock of every service in `keys` not held yet. All or
    /// nothing: if another daemon holds one, the ones taken by this call
    /// are let go and the error names the addresses.
    pub fn claim(&mut self, keys: impl IntoIterator<Item = ServiceKey>) -> anyhow::Result<()> {
        let mut taken = Vec::new();
        let mut busy = Vec::new();
        for key in keys {
            if self.held.contains_key(&key) {
                continue;
            }
            let at = offset(self.netns, &key);
            match self.set(at, true) {
                Ok(true) => {
                    self.held.insert(key, at);
                    taken.push(key);
                }
                Ok(false) => busy.push(key.to_string()),
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("locking {key} in {}", self.path.display()))
                }
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        self.release(&taken);
        let shown: Vec<&str> = busy.iter().take(5).map(String::as_str).collect();
        anyhow::bail!(
            "another halb daemon of this user already serves {}{} (it holds their locks in {}): \
             two daemons on one address would split its traffic. Stop the other one, or remove \
             these services from this config",
            shown.join(", "),
            if busy.len() > shown.len() {
                format!(" and {} more", busy.len() - shown.len())
            } else {
                String::new()
            },
            self.path.display()
        )
    }

    /// Lets go of the services not in `keep`.
    pub fn retain(&mut self, keep: &std::collections::HashSet<ServiceKey>) {
        let gone: Vec<ServiceKey> = self
            .held
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        self.release(&gone);
    }

    fn release(&mut self, keys: &[ServiceKey]) {
        for k in keys {
            if let Some(at) = self.held.remove(k) {
                // Another held service may hash to the same byte.
                if !self.held.values().any(|&o| o == at) {
                    let _ = self.set(at, false);
                }
            }
        }
    }

    /// Locks (or unlocks) byte `at`; `Ok(false)` when someone else holds it.
    fn set(&self, at: i64, lock: bool) -> nix::Result<bool> {
        let fl = nix::libc::flock {
            l_type: if lock {
                nix::libc::F_WRLCK as nix::libc::c_short
            } else {
                nix::libc::F_UNLCK as nix::libc::c_short
            },
            l_whence: nix::libc::SEEK_SET as nix::libc::c_short,
            l_start: at,
            l_len: 1,
            l_pid: 0,
        };
        match nix::fcntl::fcntl(self.file.as_fd(), nix::fcntl::FcntlArg::F_OFD_SETLK(&fl)) {
            Ok(_) => Ok(true),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The network namespace's inode: two daemons in two namespaces may serve
/// the same address.
fn netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino())
}

/// A service's byte in the lock file: FNV-1a of the namespace and the
/// key, kept below 2^62 (a valid offset, whatever the length).
fn offset(netns: u64, key: &ServiceKey) -> i64 {
    let text = format!(
        "{netns}|{}|{}|{}",
        key.protocol,
        key.listen,
        key.fwmark.map_or(String::new(), |m| m.to_string())
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::try_from(h >> 2).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: halb_table::Protocol::Tcp,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            fwmark: None,
        }
    }

    #[test]
    fn one_daemon_per_address() {
        let dir = std::env::temp_dir().join(format!("halb-listenlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Two opens are two open file descriptions: two daemons.
        let mut a = ListenLocks::open(&dir).unwrap();
        let mut b = ListenLocks::open(&dir).unwrap();
        a.claim([key(1), key(2)]).unwrap();
        // Again: nothing new to take.
        a.claim([key(1)]).unwrap();
        let e = b.claim([key(3), key(2)]).unwrap_err().to_string();
        assert!(e.contains("already serves tcp 127.0.0.1:2"), "{e}");
        // All or nothing: 3 was let go again.
        assert!(b.held.is_empty());
        a.claim([key(3)]).unwrap();
        // a lets go of 2 and 3 (not in the new config): b may take them.
        a.retain(&[key(1)].into_iter().collect());
        b.claim([key(2), key(3)]).unwrap();
        // Another namespace is another address.
        assert_ne!(offset(1, &key(1)), offset(2, &key(1)));
        drop(a);
        b.claim([key(1)]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
