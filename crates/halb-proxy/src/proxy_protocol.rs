//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`), versions 1
//! (text) and 2 (binary), which tells a real server the client's address
//! and the address it connected to, sent before any client byte.

use halb_table::ProxyProtocol;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The v2 signature (section 2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Transport of the proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Datagram,
}

/// Both addresses in one family: IPv4 if both are IPv4 (or IPv4-mapped),
/// otherwise IPv6 with the IPv4 one mapped (as HAProxy does).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (s, d) = (canon(src), canon(dst));
    match (s.ip(), d.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (s, d),
        _ => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
                IpAddr::V6(_) => a,
            };
            (v6(s), v6(d))
        }
    }
}

/// The version 1 line: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
pub fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(src, dst);
    let fam = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {fam} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// The version 2 header, command PROXY, no TLVs.
pub fn v2(src: SocketAddr, dst: SocketAddr, transport: Transport) -> Vec<u8> {
    let (s, d) = same_family(src, dst);
    let proto: u8 = match transport {
        Transport::Stream => 0x1,
        Transport::Datagram => 0x2,
    };
    let mut h = Vec::with_capacity(16 + 36);
    h.extend_from_slice(&V2_SIGNATURE);
    h.push(0x21); // version 2, command PROXY
    match (s.ip(), d.ip()) {
        (IpAddr::V4(sa), IpAddr::V4(da)) => {
            h.push(0x10 | proto); // AF_INET
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&sa.octets());
            h.extend_from_slice(&da.octets());
        }
        (sip, dip) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            let (sa, da): (Ipv6Addr, Ipv6Addr) = (v6(sip), v6(dip));
            h.push(0x20 | proto); // AF_INET6
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&sa.octets());
            h.extend_from_slice(&da.octets());
        }
    }
    h.extend_from_slice(&s.port().to_be_bytes());
    h.extend_from_slice(&d.port().to_be_bytes());
    h
}

/// The header a TCP connection from `client` to `virtual_addr` gets.
pub fn header(version: ProxyProtocol, client: SocketAddr, virtual_addr: SocketAddr) -> Vec<u8> {
    match version {
        ProxyProtocol::V1 => v1(client, virtual_addr),
        ProxyProtocol::V2 => v2(client, virtual_addr, Transport::Stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_tcp4() {
        assert_eq!(
            v1(sa("192.168.0.1:56324"), sa("192.168.0.11:443")),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        // the spec's longest TCP4 line, 56 bytes
        let worst = v1(sa("255.255.255.255:65535"), sa("255.255.255.255:65535"));
        assert_eq!(
            worst,
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
        );
        assert_eq!(worst.len(), 56);
    }

    #[test]
    fn v1_tcp6() {
        assert_eq!(
            v1(sa("[2001:db8::1]:1234"), sa("[2001:db8::2]:80")),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n"
        );
        // the spec's longest line, 104 bytes
        let f = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        let worst = v1(sa(f), sa(f));
        let ff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        assert_eq!(
            worst,
            format!("PROXY TCP6 {ff} {ff} 65535 65535\r\n").as_bytes()
        );
        assert_eq!(worst.len(), 104);
    }

    #[test]
    fn v1_mixed_families_become_tcp6() {
        assert_eq!(
            v1(sa("10.0.0.1:5000"), sa("[2001:db8::2]:80")),
            b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 5000 80\r\n"
        );
        // IPv4-mapped on both sides is plain IPv4
        assert_eq!(
            v1(sa("[::ffff:10.0.0.1]:5000"), sa("[::ffff:10.0.0.2]:80")),
            b"PROXY TCP4 10.0.0.1 10.0.0.2 5000 80\r\n"
        );
    }

    #[test]
    fn v2_tcp4() {
        let h = v2(
            sa("192.168.0.1:56324"),
            sa("192.168.0.11:443"),
            Transport::Stream,
        );
        let expected: Vec<u8> = vec![
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // sig
            0x21, // v2, PROXY
            0x11, // AF_INET, STREAM
            0x00, 0x0C, // 12 bytes of addresses
            192, 168, 0, 1, // src
            192, 168, 0, 11, // dst
            0xDC, 0x04, // 56324
            0x01, 0xBB, // 443
        ];
        assert_eq!(h, expected);
        assert_eq!(h.len(), 16 + 12);
    }

    #[test]
    fn v2_tcp6() {
        let h = v2(
            sa("[2001:db8::1]:1234"),
            sa("[2001:db8::2]:80"),
            Transport::Stream,
        );
        let mut expected: Vec<u8> = vec![
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21,
            0x21, // AF_INET6, STREAM
            0x00, 0x24, // 36
        ];
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(&[0x04, 0xD2, 0x00, 0x50]);
        assert_eq!(h, expected);
        assert_eq!(h.len(), 16 + 36);
    }

    #[test]
    fn v2_udp_families() {
        let h = v2(sa("10.0.0.1:53"), sa("10.0.0.2:53"), Transport::Datagram);
        assert_eq!(h[13], 0x12);
        let h = v2(sa("[::1]:53"), sa("[::2]:53"), Transport::Datagram);
        assert_eq!(h[13], 0x22);
        // mixed: IPv6 with the IPv4 address mapped
        let h = v2(sa("10.0.0.1:1"), sa("[::2]:2"), Transport::Stream);
        assert_eq!(h[13], 0x21);
        assert_eq!(
            &h[16..32],
            &"::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn header_picks_the_version() {
        let c = sa("1.2.3.4:5");
        let v = sa("6.7.8.9:10");
        assert_eq!(header(ProxyProtocol::V1, c, v), v1(c, v));
        assert_eq!(header(ProxyProtocol::V2, c, v), v2(c, v, Transport::Stream));
    }
}
