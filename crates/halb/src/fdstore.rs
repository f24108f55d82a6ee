//! systemd's file-descriptor store (`FileDescriptorStoreMax=` in
//! `halb.service`), so that `systemctl restart halb` refuses no client.
//!
//! The daemon hands systemd a copy of every listening socket of the
//! userspace proxy (`FDSTORE=1` with `FDNAME=`, through `sd-notify`), and
//! takes back those a service stops using at a reload (`FDSTOREREMOVE=1`).
//! On a restart — `systemctl restart`, or `Restart=on-failure` after a
//! crash — systemd keeps the store while the old process stops (its
//! listeners closed, its connections drained) and passes the sockets to the
//! new one (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`). The sockets stay
//! open all along, so the kernel keeps accepting connections into their
//! queues and the new process accepts them: none is refused, as with
//! `halb run --takeover` (handover.rs) but with systemd holding the sockets
//! between the two processes. A full `systemctl stop` empties the store.
//!
//! It is on with `halb run --fd-store` (the unit's `ExecStart`), or when
//! systemd says the store is there (`$FDSTORE`, systemd 254 and later),
//! and only under systemd (`NOTIFY_SOCKET`). Sockets are named by their
//! service's key ([`name`], [`key`]: pure and unit-tested), so a restart
//! with another config still finds the ones it can use; the rest are taken
//! out of the store once the first table is applied.

use halb_table::ServiceKey;
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};

/// The prefix of every name halb gives a socket in the store.
const PREFIX: &str = "halb-listen.";

/// The longest `FDNAME=` systemd accepts.
const NAME_MAX: usize = 255;

/// The store's name for a service's listening sockets: the prefix, then
/// the key as hex-encoded JSON (systemd takes printable ASCII without ':'
/// in a name, and an IPv6 listen address has colons).
pub fn name(key: &ServiceKey) -> Option<String> {
    let json = serde_json::to_vec(key).ok()?;
    let mut s = String::with_capacity(PREFIX.len() + 2 * json.len());
    s.push_str(PREFIX);
    for b in json {
        s.push_str(&format!("{b:02x}"));
    }
    (s.len() <= NAME_MAX).then_some(s)
}

/// The key a store name stands for, or `None` when it is not one of ours
/// (or was mangled).
pub fn key(name: &str) -> Option<ServiceKey> {
    let hex = name.strip_prefix(PREFIX)?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    serde_json::from_slice(&bytes).ok()
}

/// What to tell systemd so that the store holds exactly `running`, the
/// services now listening, given what it holds (`stored`): names to add
/// (with their key) and names to remove.
pub fn plan(
    stored: &BTreeMap<String, ServiceKey>,
    running: &[ServiceKey],
) -> (Vec<(String, ServiceKey)>, Vec<String>) {
    let want: BTreeMap<String, ServiceKey> = running
        .iter()
        .filter_map(|k| Some((name(k)?, *k)))
        .collect();
    let add = want
        .iter()
        .filter(|(n, _)| !stored.contains_key(*n))
        .map(|(n, k)| (n.clone(), *k))
        .collect();
    let remove = stored
        .keys()
        .filter(|n| !want.contains_key(*n))
        .cloned()
        .collect();
    (add, remove)
}

/// The daemon's side of the store.
#[derive(Debug, Default)]
pub struct FdStore {
    enabled: bool,
    /// What systemd holds for us, by name.
    stored: BTreeMap<String, ServiceKey>,
}

impl FdStore {
    /// Off unless under systemd and asked for (`--fd-store`, or systemd's
    /// `$FDSTORE` greater than 0).
    pub fn from_env(asked: bool) -> FdStore {
        let notify = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let systemd_says = std::env::var("FDSTORE")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
        FdStore {
            enabled: notify && (asked || systemd_says),
            stored: BTreeMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The sockets systemd passed at start (`LISTEN_FDS`), by service:
    /// those of a previous run of this unit. Taken once; the `LISTEN_*`
    /// variables are removed so no child (agent, hook) sees them, and each
    /// descriptor is close-on-exec. Sockets not named by halb are closed.
    pub fn take_passed(&mut self) -> HashMap<ServiceKey, Vec<OwnedFd>> {
        let mut out: HashMap<ServiceKey, Vec<OwnedFd>> = HashMap::new();
        if !self.enabled {
            return out;
        }
        // LISTEN_FDNAMES: one name per descriptor, colon-separated (which
        // is why names have no colon). `listenfd` checks LISTEN_PID, makes
        // each socket close-on-exec after checking its type, and removes
        // LISTEN_PID and LISTEN_FDS; the names go here.
        let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
            .map(|v| v.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        std::env::remove_var("LISTEN_FDNAMES");
        let mut passed = listenfd::ListenFd::from_env();
        let mut foreign = 0usize;
        for idx in 0..passed.len() {
            let Some((fdname, k)) = names.get(idx).and_then(|n| Some((n, key(n)?))) else {
                foreign += 1;
                continue;
            };
            let taken = match k.protocol {
                halb_table::Protocol::Tcp => {
                    passed.take_tcp_listener(idx).map(|l| l.map(OwnedFd::from))
                }
                halb_table::Protocol::Udp => {
                    passed.take_udp_socket(idx).map(|u| u.map(OwnedFd::from))
                }
                halb_table::Protocol::Sctp => Ok(None),
            };
            match taken {
                Ok(Some(fd)) => {
                    self.stored.insert(fdname.clone(), k);
                    out.entry(k).or_default().push(fd);
                }
                Ok(None) => foreign += 1,
                Err(e) => {
                    foreign += 1;
                    tracing::warn!(service = %k, "a socket systemd passed: {e}");
                }
            }
        }
        let n: usize = out.values().map(Vec::len).sum();
        if n > 0 {
            tracing::info!(
                sockets = n,
                services = out.len(),
                "systemd passed back the listening sockets of the previous run (file-descriptor store)"
            );
        }
        if foreign > 0 {
            tracing::warn!(
                foreign,
                "systemd passed descriptors halb did not store (or of the wrong kind); not used"
            );
        }
        out
    }

    /// Make the store hold the listening sockets of the services running
    /// now (after the first apply and after each reload).
    pub fn sync(&mut self, listeners: std::io::Result<halb_proxy::Listeners>) {
        if !self.enabled {
            return;
        }
        let listeners = match listeners {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("file-descriptor store: copying the listening sockets: {e}");
                return;
            }
        };
        let running: Vec<ServiceKey> = listeners.iter().map(|(k, _)| *k).collect();
        let (add, remove) = plan(&self.stored, &running);
        for n in remove {
            use sd_notify::NotifyState as S;
            match sd_notify::notify(&[S::FdStoreRemove, S::FdName(&n)]) {
                Ok(()) => {
                    self.stored.remove(&n);
                }
                Err(e) => tracing::warn!("file-descriptor store: removing a socket: {e}"),
            }
        }
        let by_key: HashMap<ServiceKey, &Vec<OwnedFd>> =
            listeners.iter().map(|(k, fds)| (*k, fds)).collect();
        for (n, k) in add {
            let Some(fds) = by_key.get(&k) else { continue };
            if fds.is_empty() {
                continue;
            }
            let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
            use sd_notify::NotifyState as S;
            match sd_notify::notify_with_fds(&[S::FdStore, S::FdName(&n)], &borrowed) {
                Ok(()) => {
                    self.stored.insert(n, k);
                }
                Err(e) => {
                    tracing::warn!(service = %k, "file-descriptor store: storing a socket: {e}")
                }
            }
        }
        for k in &running {
            if name(k).is_none() {
                tracing::warn!(service = %k, "file-descriptor store: no name fits this key; not stored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halb_table::Protocol;

    fn k(listen: &str, protocol: Protocol) -> ServiceKey {
        ServiceKey {
            protocol,
            listen: listen.parse().unwrap(),
            fwmark: None,
        }
    }

    #[test]
    fn names_round_trip_and_are_what_systemd_accepts() {
        for key0 in [
            k("127.0.0.1:80", Protocol::Tcp),
            k("[2001:db8::1]:8080", Protocol::Udp),
            k(
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                Protocol::Tcp,
            ),
            ServiceKey {
                fwmark: Some(u32::MAX),
                ..k(
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                    Protocol::Sctp,
                )
            },
        ] {
            let n = name(&key0).unwrap();
            assert!(n.len() <= NAME_MAX, "{n}");
            assert!(n.bytes().all(|b| b.is_ascii_graphic() && b != b':'), "{n}");
            assert_eq!(key(&n), Some(key0));
        }
    }

    #[test]
    fn foreign_or_mangled_names_are_not_keys() {
        assert_eq!(key("stored"), None);
        assert_eq!(key("halb-listen."), None);
        assert_eq!(key("halb-listen.7"), None);
        assert_eq!(key("halb-listen.zz"), None);
        assert_eq!(key("halb-listen.7b7d"), None);
        let n = name(&k("127.0.0.1:80", Protocol::Tcp)).unwrap();
        assert_eq!(key(&n[..n.len() - 2]), None);
    }

    #[test]
    fn the_plan_adds_new_services_and_removes_gone_ones() {
        let a = k("127.0.0.1:80", Protocol::Tcp);
        let b = k("127.0.0.1:81", Protocol::Tcp);
        let c = k("127.0.0.1:53", Protocol::Udp);
        let stored: BTreeMap<String, ServiceKey> =
            [a, b].into_iter().map(|x| (name(&x).unwrap(), x)).collect();
        let (add, remove) = plan(&stored, &[b, c]);
        assert_eq!(add, vec![(name(&c).unwrap(), c)]);
        assert_eq!(remove, vec![name(&a).unwrap()]);
        let (add, remove) = plan(&stored, &[a, b]);
        assert!(add.is_empty() && remove.is_empty());
    }
}
