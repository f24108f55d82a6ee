//! `halb realserver up|down VIP...`: prepares a plain real server for
//! direct routing (the lvsdr init script's job). `up` puts each VIP on `lo`
//! as a /32 (/128) and, for IPv4, sets `arp_ignore=1` / `arp_announce=2` on
//! `all` and `lo` so the server accepts traffic for the VIP without
//! answering ARP for it. The sysctl values found before the first `up` are
//! recorded in a state file; `down` removes the VIPs and, when no VIP it
//! added is left, puts those values back and deletes the file. Both are
//! idempotent.

use anyhow::{bail, Context};
use halb_netlink::sysctl;
use halb_netlink::{Address, Netlink};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Default state file (`--state` overrides it).
pub const DEFAULT_STATE: &str = "/run/halb/realserver.json";

/// What `up` recorded: the VIPs it manages and the sysctl values to put
/// back.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// VIPs on `lo` managed by `halb realserver`.
    pub vips: Vec<IpAddr>,
    /// `/proc/sys` path and the value it had before the first `up`.
    pub sysctls: Vec<(PathBuf, String)>,
}

/// Parses `192.0.2.100`, `192.0.2.100/32`, `2001:db8::1` or
/// `2001:db8::1/128`; every bad argument is reported, in one pass.
pub fn parse_vips(args: &[String]) -> Result<Vec<IpAddr>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for arg in args {
        let (addr, prefix) = match arg.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (arg.as_str(), None),
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            errors.push(format!(
                "{arg:?} is not an IP address (expected e.g. 192.0.2.100 or 2001:db8::100)"
            ));
            continue;
        };
        let host = if ip.is_ipv4() { "32" } else { "128" };
        if let Some(p) = prefix {
            if p != host {
                errors.push(format!(
                    "{arg:?}: a VIP on lo is a single address: write {addr} or {addr}/{host}"
                ));
                continue;
            }
        }
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            errors.push(format!("{arg:?} cannot be a VIP"));
            continue;
        }
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn load_state(path: &Path) -> anyhow::Result<Option<State>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let state: State = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not a halb realserver state file (remove it if it is stale)",
                    path.display()
                )
            })?;
            Ok(Some(state))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_state(path: &Path, state: &State) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(state)?;
    std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Only knobs under net/ipv4/conf are ever restored from the state file.
fn restorable(path: &Path) -> bool {
    path.starts_with("/proc/sys/net/ipv4/conf")
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

/// Runs `halb realserver up|down`.
pub fn run(up: bool, vips: &[String], state_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let vips = match parse_vips(vips) {
        Ok(v) if v.is_empty() => bail!("realserver: give at least one VIP"),
        Ok(v) => v,
        Err(errors) => bail!("realserver: {}", errors.join("; ")),
    };
    let state_path = state_path.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let nl = Netlink::new().context("opening netlink")?;
        let lo = nl
            .link_index("lo")
            .await
            .context("finding the loopback interface")?;
        if up {
            realserver_up(&nl, lo, &vips, &state_path).await
        } else {
            realserver_down(&nl, lo, &vips, &state_path).await
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn realserver_up(
    nl: &Netlink,
    lo: u32,
    vips: &[IpAddr],
    state_path: &Path,
) -> anyhow::Result<()> {
    let mut state = load_state(state_path)?.unwrap_or_default();
    if vips.iter().any(IpAddr::is_ipv4) {
        let mut saved = sysctl::Saved::new();
        let result = sysctl::direct_routing_arp(&mut saved, "lo");
        // the values seen before the *first* up are the ones to restore
        if state.sysctls.is_empty() {
            state.sysctls = saved.entries().to_vec();
        }
        if let Err(e) = result {
            let _ = save_state(state_path, &state);
            return Err(e).context("setting arp_ignore=1 / arp_announce=2 on all and lo");
        }
    }
    for &ip in vips {
        let addr = Address {
            ifindex: lo,
            address: ip,
            prefix_len: host_prefix(ip),
            label: None,
        };
        let change = nl
            .add_address(&addr)
            .await
            .with_context(|| format!("adding {ip}/{} on lo", host_prefix(ip)))?;
        if !state.vips.contains(&ip) {
            state.vips.push(ip);
        }
        let what = match change {
            halb_netlink::Change::Done => "added",
            halb_netlink::Change::AlreadyThere => "already",
        };
        println!("{ip}/{} on lo: {what}", host_prefix(ip));
        save_state(state_path, &state)?;
    }
    save_state(state_path, &state)
}

async fn realserver_down(
    nl: &Netlink,
    lo: u32,
    vips: &[IpAddr],
    state_path: &Path,
) -> anyhow::Result<()> {
    let mut state = load_state(state_path)?;
    for &ip in vips {
        let addr = Address {
            ifindex: lo,
            address: ip,
            prefix_len: host_prefix(ip),
            label: None,
        };
        let change = nl
            .delete_address(&addr)
            .await
            .with_context(|| format!("removing {ip}/{} from lo", host_prefix(ip)))?;
        let what = match change {
            halb_netlink::Change::Done => "removed",
            halb_netlink::Change::AlreadyThere => "was not there",
        };
        println!("{ip}/{} on lo: {what}", host_prefix(ip));
        if let Some(s) = state.as_mut() {
            s.vips.retain(|v| *v != ip);
        }
    }
    let Some(mut state) = state else {
        return Ok(()); // nothing recorded: no sysctl to put back
    };
    if !state.vips.is_empty() {
        println!(
            "ARP settings kept for the VIPs still up: {}",
            state
                .vips
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        return save_state(state_path, &state);
    }
    let mut failures = Vec::new();
    for (path, value) in state.sysctls.iter().rev() {
        if !restorable(path) {
            failures.push(format!("{}: not a knob halb sets, skipped", path.display()));
            continue;
        }
        if let Err(e) = sysctl::write(path, value) {
            failures.push(e.to_string());
        }
    }
    if !failures.is_empty() {
        state.vips.clear();
        save_state(state_path, &state)?;
        bail!("restoring ARP settings: {}", failures.join("; "));
    }
    std::fs::remove_file(state_path)
        .with_context(|| format!("removing {}", state_path.display()))?;
    state.sysctls.clear();
    println!("ARP settings restored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_host_addresses() {
        let v = parse_vips(&args(&["192.0.2.100", "192.0.2.101/32", "2001:db8::1/128"])).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(host_prefix(v[2]), 128);
        // duplicates collapse
        assert_eq!(
            parse_vips(&args(&["192.0.2.1", "192.0.2.1/32"]))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn reports_every_bad_argument() {
        let e = parse_vips(&args(&[
            "nope",
            "192.0.2.100/24",
            "127.0.0.1",
            "2001:db8::1/64",
        ]))
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[1].contains("192.0.2.100/32"), "{}", e[1]);
    }

    #[test]
    fn state_round_trip_and_restorable_paths() {
        let s = State {
            vips: vec!["192.0.2.100".parse().unwrap()],
            sysctls: vec![(
                PathBuf::from("/proc/sys/net/ipv4/conf/all/arp_ignore"),
                "0".into(),
            )],
        };
        let t = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&t).unwrap(), s);
        assert!(restorable(&s.sysctls[0].0));
        assert!(!restorable(Path::new("/etc/passwd")));
        assert!(!restorable(Path::new(
            "/proc/sys/net/ipv4/conf/../../kernel/x"
        )));
    }
}
