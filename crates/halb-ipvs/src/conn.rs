//! The kernel's connection table, from `/proc/net/ip_vs_conn`.
//!
//! ```text
//! Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//! TCP C0000201 9C40 C000020A 0050 C6336401 0050 ESTABLISHED     899
//! ```
//! IPv4 addresses are 8 hex digits; IPv6 ones are printed in full
//! colon form.

use halb_table::{ConnectionInfo, Protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fn addr(ip: &str, port: &str) -> Option<SocketAddr> {
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if ip.len() == 8 && !ip.contains(':') {
        IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?))
    } else {
        IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?)
    };
    Some(SocketAddr::new(ip, port))
}

/// Parse the whole file; lines that do not parse are skipped.
pub fn parse_conn_table(text: &str) -> Vec<ConnectionInfo> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 {
                return None;
            }
            let protocol = match f[0] {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => return None,
            };
            let expires: u64 = f[8].parse().ok()?;
            Some(ConnectionInfo {
                protocol,
                client: addr(f[1], f[2])?,
                virtual_addr: addr(f[3], f[4])?,
                real: addr(f[5], f[6])?,
                state: f[7].to_owned(),
                age_ms: 0,
                expires_ms: expires.saturating_mul(1000),
                bytes_in: 0,
                bytes_out: 0,
            })
        })
        .collect()
}

/// Read the kernel's table; empty when the file is missing (no IPVS).
pub fn read_conn_table() -> Vec<ConnectionInfo> {
    std::fs::read_to_string("/proc/net/ip_vs_conn")
        .map(|t| parse_conn_table(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_lines() {
        let t = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP C0000201 9C40 C000020A 0050 C6336401 0050 ESTABLISHED     899\n\
UDP C0000201 A000 C000020A 0035 C6336402 0035 UDP             299\n\
TCP 2001:0db8:0000:0000:0000:0000:0000:0001 9C40 2001:0db8:0000:0000:0000:0000:0000:0010 0050 2001:0db8:0000:0000:0000:0000:0000:0064 0050 FIN_WAIT         60\n\
garbage line\n";
        let c = parse_conn_table(t);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].client, "192.0.2.1:40000".parse().unwrap());
        assert_eq!(c[0].virtual_addr, "192.0.2.10:80".parse().unwrap());
        assert_eq!(c[0].real, "198.51.100.1:80".parse().unwrap());
        assert_eq!(c[0].state, "ESTABLISHED");
        assert_eq!(c[0].expires_ms, 899_000);
        assert_eq!(c[1].protocol, Protocol::Udp);
        assert_eq!(c[2].real, "[2001:db8::64]:80".parse().unwrap());
        assert_eq!(c[2].state, "FIN_WAIT");
    }
}
