//! `/proc/net/ip_vs` as a cheap change detector for a reload.
//!
//! The netlink read-back of a table needs one dump per virtual service
//! (the kernel has no "all destinations" dump): 10,000 round trips for
//! 10,000 services, which made every reload cost the whole table. The
//! proc file lists every service with its destinations' forwarding method
//! and weight in one read. A reload therefore dumps the services over
//! netlink (one dump: scheduler, flags, persistence of all of them) and
//! reads this file; only the services whose destinations the file shows
//! differently from halb's model of the kernel are dumped again. What the
//! file does not show (thresholds, tunnel type, port and flags of a
//! destination) is not re-checked at a reload; it is at start and after
//! any refused operation (a full read).
//!
//! Format (net/netfilter/ipvs/ip_vs_ctl.c, `ip_vs_info_seq_show`), after
//! three header lines:
//!
//! ```text
//! TCP  C0000264:0050 wlc
//!   -> C6336415:0050      Masq    1      0          0
//! UDP  [2001:0db8:0000:0000:0000:0000:0000:0100]:0035 rr ops
//! FWM  00000007 sh persistent 600 FFFFFFFF
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::model::{Dest, FwdMethod, IpvsProtocol, ServiceId};

/// How the proc file names a service: firewall-mark services do not say
/// their address family there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcKey {
    Inet {
        protocol: IpvsProtocol,
        addr: SocketAddr,
    },
    Fwmark(u32),
}

impl From<&ServiceId> for ProcKey {
    fn from(id: &ServiceId) -> Self {
        match *id {
            ServiceId::Inet { protocol, addr } => ProcKey::Inet { protocol, addr },
            ServiceId::Fwmark { mark, .. } => ProcKey::Fwmark(mark),
        }
    }
}

/// What the file shows of one destination: forwarding method (as the
/// kernel names it) and weight.
pub type ProcDests = BTreeMap<SocketAddr, (&'static str, u32)>;

/// The proc view of destinations halb's model holds, to compare.
pub fn project(dests: &[Dest]) -> ProcDests {
    dests
        .iter()
        .map(|d| {
            // ip_vs_fwd_name: anything else (bypass) prints as Masq.
            let name = match d.fwd {
                FwdMethod::Local => "Local",
                FwdMethod::Tunnel => "Tunnel",
                FwdMethod::Route => "Route",
                FwdMethod::Masq | FwdMethod::Bypass => "Masq",
            };
            (d.addr, (name, d.weight))
        })
        .collect()
}

/// Every service in the file with its destinations, in file order. A
/// key may appear twice (an IPv4 and an IPv6 service with one mark).
pub fn parse(text: &str) -> Result<Vec<(ProcKey, ProcDests)>, String> {
    let mut out: Vec<(ProcKey, ProcDests)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("/proc/net/ip_vs line {}: {what}: {line:?}", n + 1);
        if n < 3 || line.trim().is_empty() {
            continue; // the three header lines
        }
        let mut words = line.split_whitespace();
        let first = words.next().ok_or_else(|| bad("empty"))?;
        if first == "->" {
            let addr = words
                .next()
                .and_then(addr)
                .ok_or_else(|| bad("destination address"))?;
            let fwd = match words.next() {
                Some("Masq") => "Masq",
                Some("Local") => "Local",
                Some("Tunnel") => "Tunnel",
                Some("Route") => "Route",
                _ => return Err(bad("forwarding method")),
            };
            let weight = words
                .next()
                .and_then(|w| w.parse::<i64>().ok())
                .ok_or_else(|| bad("weight"))?;
            let weight = u32::try_from(weight).unwrap_or(0);
            let (_, dests) = out
                .last_mut()
                .ok_or_else(|| bad("destination before a service"))?;
            dests.insert(addr, (fwd, weight));
            continue;
        }
        let key = match first {
            "FWM" => {
                let m = words.next().ok_or_else(|| bad("mark"))?;
                ProcKey::Fwmark(u32::from_str_radix(m, 16).map_err(|_| bad("mark"))?)
            }
            p => {
                let protocol = match p {
                    "TCP" => IpvsProtocol::Tcp,
                    "UDP" => IpvsProtocol::Udp,
                    "SCTP" => IpvsProtocol::Sctp,
                    _ => return Err(bad("protocol")),
                };
                let addr = words
                    .next()
                    .and_then(addr)
                    .ok_or_else(|| bad("service address"))?;
                ProcKey::Inet { protocol, addr }
            }
        };
        out.push((key, ProcDests::new()));
    }
    Ok(out)
}

/// `C0000264:0050` or `[2001:0db8:…:0100]:0050` (hex port).
fn addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
        Some(v6) => IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?),
        None if ip.len() == 8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?)),
        None => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Each key's destinations, `None` for a key the file names more than
/// once (the caller must ask netlink for those).
pub fn index(seen: &[(ProcKey, ProcDests)]) -> BTreeMap<ProcKey, Option<&ProcDests>> {
    let mut out: BTreeMap<ProcKey, Option<&ProcDests>> = BTreeMap::new();
    for (k, d) in seen {
        out.entry(*k).and_modify(|v| *v = None).or_insert(Some(d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TunnelType;

    const SAMPLE: &str = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n\
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
TCP  C0000264:0050 wlc \n\
  -> C6336416:0050      Masq    0      0          0         \n\
  -> C6336415:0050      Route   3      12         4         \n\
UDP  C0000264:0035 rr ops \n\
TCP  [2001:0db8:0000:0000:0000:0000:0000:0100]:0050 wlc persistent 60 00000040\n\
  -> [2001:0db8:0001:0000:0000:0000:0000:0022]:0050      Tunnel  1      0          0         \n\
FWM  00000007 sh persistent 600 FFFFFFFF\n\
  -> C6336415:0050      Local   1      0          0         \n";

    #[test]
    fn parses_every_kind_of_service() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!(s.len(), 4);
        let web = ProcKey::Inet {
            protocol: IpvsProtocol::Tcp,
            addr: "192.0.2.100:80".parse().unwrap(),
        };
        assert_eq!(s[0].0, web);
        assert_eq!(
            s[0].1.get(&"198.51.100.21:80".parse().unwrap()),
            Some(&("Route", 3))
        );
        assert_eq!(
            s[0].1.get(&"198.51.100.22:80".parse().unwrap()),
            Some(&("Masq", 0))
        );
        assert!(s[1].1.is_empty());
        assert_eq!(
            s[2].0,
            ProcKey::Inet {
                protocol: IpvsProtocol::Tcp,
                addr: "[2001:db8::100]:80".parse().unwrap()
            }
        );
        assert_eq!(
            s[2].1.get(&"[2001:db8:1::22]:80".parse().unwrap()),
            Some(&("Tunnel", 1))
        );
        assert_eq!(s[3].0, ProcKey::Fwmark(7));
        let twice = format!("{SAMPLE}FWM  00000007 rr\n");
        let seen = parse(&twice).unwrap();
        let idx = index(&seen);
        assert_eq!(idx[&ProcKey::Fwmark(7)], None, "an IPv4 and an IPv6 mark 7");
        assert!(idx[&web].is_some());
    }

    #[test]
    fn model_projection_matches_the_file() {
        let d = |a: &str, fwd, weight| Dest {
            addr: a.parse().unwrap(),
            fwd,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: TunnelType::default(),
            tunnel_port: 0,
            tunnel_flags: 0,
        };
        let model = [
            d("198.51.100.21:80", FwdMethod::Route, 3),
            d("198.51.100.22:80", FwdMethod::Masq, 0),
        ];
        assert_eq!(project(&model), parse(SAMPLE).unwrap()[0].1);
        let changed = [
            d("198.51.100.21:80", FwdMethod::Route, 9),
            d("198.51.100.22:80", FwdMethod::Masq, 0),
        ];
        assert_ne!(project(&changed), parse(SAMPLE).unwrap()[0].1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "h\nh\nh\nXYZ  C0000264:0050 wlc\n",
            "h\nh\nh\n  -> C6336415:0050 Masq 1 0 0\n",
            "h\nh\nh\nTCP  zz:0050 wlc\n",
            "h\nh\nh\nTCP  C0000264:0050 wlc\n  -> C6336415:0050 Warp 1 0 0\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("").unwrap().is_empty());
    }
}
