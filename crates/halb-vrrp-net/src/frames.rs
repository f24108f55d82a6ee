//! Pure byte builders and parsers: the gratuitous ARP frame, the
//! unsolicited neighbour advertisement, the IPv4 header a raw socket
//! hands back.

use std::net::{Ipv4Addr, Ipv6Addr};

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;

/// A gratuitous ARP request for `vip` from `mac`, broadcast (RFC 5227
/// §3 "ARP Announcement": sender and target protocol address both the
/// VIP), padded to the Ethernet minimum of 60 bytes.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]); // destination: broadcast
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // htype Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // ptype IPv4
    f.push(6);
    f.push(4);
    f.extend_from_slice(&1u16.to_be_bytes()); // request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&vip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&vip.octets());
    f.resize(60, 0);
    f
}

/// An unsolicited neighbour advertisement for `target` (RFC 4861 §4.4,
/// §7.2.6): ICMPv6 type 136, Override set, Solicited clear, with the
/// Target Link-Layer Address option. The checksum is left 0: the kernel
/// fills it for raw ICMPv6 sockets.
pub fn unsolicited_na(mac: [u8; 6], target: Ipv6Addr, router: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.push(136);
    m.push(0);
    m.extend_from_slice(&[0, 0]);
    let mut flags = 0x20u8; // Override
    if router {
        flags |= 0x80;
    }
    m.push(flags);
    m.extend_from_slice(&[0, 0, 0]);
    m.extend_from_slice(&target.octets());
    m.push(2); // Target Link-Layer Address
    m.push(1); // length in units of 8 bytes
    m.extend_from_slice(&mac);
    m
}

/// The IPv4 header facts a raw socket returns in front of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// TTL.
    pub ttl: u8,
    /// Protocol.
    pub protocol: u8,
    /// Header length in bytes.
    pub header_len: usize,
    /// Total length from the header (bounded by the buffer).
    pub total_len: usize,
}

/// Parses the IPv4 header of a datagram read from a raw socket; `None`
/// if it is not a well-formed IPv4 header.
pub fn parse_ipv4(buf: &[u8]) -> Option<Ipv4Header> {
    let first = *buf.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 || buf.len() < header_len {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    // Linux hands raw sockets the header with the total length in host
    // order on some paths; fall back to the buffer length if it does not
    // fit.
    let total_len = if total >= header_len && total <= buf.len() {
        total
    } else {
        buf.len()
    };
    Some(Ipv4Header {
        ttl: buf[8],
        protocol: buf[9],
        src: Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]),
        dst: Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]),
        header_len,
        total_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC: [u8; 6] = [0x02, 0, 0x5e, 0, 1, 51];

    #[test]
    fn garp_layout() {
        let f = garp_frame(MAC, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &[192, 0, 2, 100]);
        assert_eq!(&f[38..42], &[192, 0, 2, 100]);
    }

    #[test]
    fn na_layout() {
        let t: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let m = unsolicited_na(MAC, t, false);
        assert_eq!(m.len(), 32);
        assert_eq!(m[0], 136);
        assert_eq!(m[4], 0x20);
        assert_eq!(&m[8..24], &t.octets());
        assert_eq!(&m[24..26], &[2, 1]);
        assert_eq!(&m[26..32], &MAC);
    }

    #[test]
    fn ipv4_header() {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 255, 112, 0, 0];
        p.extend_from_slice(&[192, 0, 2, 1, 224, 0, 0, 18]);
        p.extend_from_slice(&[0; 20]);
        let h = parse_ipv4(&p).unwrap();
        assert_eq!(h.ttl, 255);
        assert_eq!(h.protocol, 112);
        assert_eq!(h.src, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(h.dst, Ipv4Addr::new(224, 0, 0, 18));
        assert_eq!(h.header_len, 20);
        assert_eq!(h.total_len, 40);
        assert!(parse_ipv4(&p[..19]).is_none());
        assert!(parse_ipv4(&[0x65]).is_none());
    }

    proptest! {
        #[test]
        fn ipv4_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Some(h) = parse_ipv4(&bytes) {
                prop_assert!(h.header_len <= h.total_len);
                prop_assert!(h.total_len <= bytes.len());
            }
        }
    }
}
