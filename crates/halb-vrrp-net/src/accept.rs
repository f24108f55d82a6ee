//! Accept_Mode off (`accept = false`, keepalived `no_accept`): a master
//! that is not the address owner holds the VIPs (it answers ARP and
//! neighbour solicitations for them, so traffic converges on it) but
//! drops every packet addressed to them (RFC 5798 §6.1, §6.4.3).
//!
//! The drop is an nftables table of our own, `inet halb_vrrp`, with one
//! input chain listing the blocked addresses. It is written whole (delete
//! and re-create in one `nft -f -` transaction, so the kernel swaps it
//! atomically) each time the set changes, deleted when the set empties,
//! at start (a crashed run's leftover) and at exit. Why `nft` and not
//! netlink: nftables' netlink API is a bytecode VM with no maintained
//! pure-Rust encoder (the crates wrap the C libnftnl); a state change
//! is rare, and `nft` is in every Debian install that uses nftables. Its
//! absence is reported once, and the VIP still moves (failover matters
//! more than the drop).
//!
//! Which addresses are blocked is derived from the instances' states
//! (`Engine::blocked`); this module only renders and applies.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The table's name, in family `inet`.
pub const TABLE: &str = "halb_vrrp";

/// The `nft -f -` script that makes the table hold exactly `blocked`
/// (nothing, the table gone, when empty). Creating the table first
/// makes the delete valid when there is none.
pub fn script(blocked: &BTreeSet<IpAddr>) -> String {
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if blocked.is_empty() {
        return s;
    }
    let list = |v6: bool| -> String {
        blocked
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (v4, v6) = (list(false), list(true));
    s.push_str(&format!(
        "table inet {TABLE} {{\n  chain input {{\n    \
         type filter hook input priority filter - 10; policy accept;\n"
    ));
    if !v4.is_empty() {
        s.push_str(&format!("    ip daddr {{ {v4} }} drop\n"));
    }
    if !v6.is_empty() {
        // Neighbour discovery for the VIP must still work (its
        // unreachability detection is unicast to the address).
        s.push_str(&format!(
            "    ip6 daddr {{ {v6} }} icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept\n    \
             ip6 daddr {{ {v6} }} drop\n"
        ));
    }
    s.push_str("  }\n}\n");
    s
}

/// Runs `nft -f -` with `script` on stdin.
async fn apply(script: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run nft ({e}): apt-get install nftables"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| "nft did not finish within 10 s".to_owned())?
        .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The applier: a task that keeps the table equal to the latest set sent
/// (intermediate sets are skipped), so the VRRP loop never waits for
/// `nft`. Dropping the sender (see [`NoAccept::close`]) removes the table.
pub struct NoAccept {
    tx: Option<watch::Sender<BTreeSet<IpAddr>>>,
    task: Option<JoinHandle<()>>,
}

impl NoAccept {
    /// Starts the applier (on the current runtime); with `clean_start`
    /// it first removes a table a crashed run left, if any.
    pub fn start(clean_start: bool) -> NoAccept {
        let (tx, mut rx) = watch::channel(BTreeSet::new());
        let task = tokio::spawn(async move {
            let mut applied: Option<BTreeSet<IpAddr>> = None;
            let mut warned = false;
            // Only a delete: nothing is created when there is no table.
            if clean_start && apply(&format!("delete table inet {TABLE}\n")).await.is_ok() {
                tracing::info!("removed the accept = false table a previous run left");
                applied = Some(BTreeSet::new());
            }
            loop {
                let closed = rx.changed().await.is_err();
                let want = if closed {
                    BTreeSet::new()
                } else {
                    rx.borrow_and_update().clone()
                };
                if applied.as_ref() != Some(&want) && !(closed && applied.is_none()) {
                    match apply(&script(&want)).await {
                        Ok(()) => {
                            if want.is_empty() {
                                tracing::info!("accept = false: no VIP blocked");
                            } else {
                                tracing::info!(vips = ?want, "accept = false: packets to these VIPs are dropped");
                            }
                            applied = Some(want);
                        }
                        Err(e) if !warned || !want.is_empty() => {
                            warned = true;
                            tracing::error!(error = %e, "accept = false not enforced: packets to the VIPs are accepted");
                        }
                        Err(_) => {}
                    }
                }
                if closed {
                    return;
                }
            }
        });
        NoAccept {
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// Asks for exactly `blocked` to be dropped (no-op when unchanged).
    pub fn set(&self, blocked: BTreeSet<IpAddr>) {
        if let Some(tx) = &self.tx {
            tx.send_if_modified(|cur| {
                if *cur == blocked {
                    false
                } else {
                    *cur = blocked;
                    true
                }
            });
        }
    }

    /// Removes the table and waits for that (at most 10 s).
    pub async fn close(&mut self) {
        self.tx = None;
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_set_deletes_the_table() {
        assert_eq!(
            script(&BTreeSet::new()),
            "table inet halb_vrrp\ndelete table inet halb_vrrp\n"
        );
    }

    #[test]
    fn both_families() {
        let set: BTreeSet<IpAddr> = ["192.0.2.100", "192.0.2.101", "2001:db8::100"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let s = script(&set);
        assert!(
            s.contains("ip daddr { 192.0.2.100, 192.0.2.101 } drop"),
            "{s}"
        );
        assert!(s.contains("ip6 daddr { 2001:db8::100 } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"), "{s}");
        assert!(s.contains("ip6 daddr { 2001:db8::100 } drop"), "{s}");
        assert!(s.starts_with("table inet halb_vrrp\ndelete table inet halb_vrrp\n"));
    }

    #[test]
    fn v4_only_has_no_v6_rule() {
        let set: BTreeSet<IpAddr> = std::iter::once("198.51.100.7".parse().unwrap()).collect();
        assert!(!script(&set).contains("ip6"));
    }
}
