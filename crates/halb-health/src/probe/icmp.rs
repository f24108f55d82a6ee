//! ICMP echo (ping), IPv4 and IPv6: up when an echo reply with our
//! identifier, sequence number and payload comes back within the timeout.
//!
//! The socket is an unprivileged ICMP datagram socket ("ping socket")
//! when `net.ipv4.ping_group_range` admits our group (the kernel then
//! picks the identifier and only hands us our own replies), else a raw
//! socket, which needs root or CAP_NET_RAW; without either the probe is
//! down saying so. Raw sockets see every ICMP packet of the host, so
//! replies are matched on identifier, sequence and payload; anything
//! else is skipped, at most [`MAX_PACKETS`] packets per probe. Packet
//! building and matching are pure functions, tested below.

use crate::engine::ProbeOutcome;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// Packets read per probe before giving up (raw sockets see all ICMP).
pub const MAX_PACKETS: usize = 1000;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

static SEQUENCE: AtomicU16 = AtomicU16::new(1);

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request. IPv4 carries its checksum; for IPv6 the kernel fills
/// it in (it covers a pseudo-header we do not see).
pub fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `packet` is the reply to our request. `ip_header`: a raw IPv4
/// socket hands us the IP header too. `id`: `None` for ping sockets,
/// whose identifier the kernel rewrites (and matches) itself.
pub fn is_reply(
    packet: &[u8],
    v6: bool,
    ip_header: bool,
    id: Option<u16>,
    seq: u16,
    payload: &[u8],
) -> bool {
    let icmp = if ip_header {
        let Some(&first) = packet.first() else {
            return false;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 {
            return false;
        }
        match packet.get(ihl..) {
            Some(p) => p,
            None => return false,
        }
    } else {
        packet
    };
    let want = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    icmp.len() >= 8
        && icmp[0] == want
        && icmp[1] == 0
        && id.is_none_or(|id| icmp[4..6] == id.to_be_bytes())
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..] == payload
}

/// Opens a ping socket, else a raw one. Returns whether it is raw.
fn open(v6: bool) -> Result<(Socket, bool), String> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let socket = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => (s, false),
        Err(dgram) => match Socket::new(domain, Type::RAW, Some(proto)) {
            Ok(s) => (s, true),
            Err(raw) => {
                return Err(format!(
                    "cannot open an ICMP socket: ping socket: {dgram} (allow our group in \
                     net.ipv4.ping_group_range), raw socket: {raw} (needs root or CAP_NET_RAW)"
                ))
            }
        },
    };
    socket
        .0
        .set_nonblocking(true)
        .map_err(|e| format!("ICMP socket: {e}"))?;
    Ok(socket)
}

/// Pings `ip` once and waits for the reply, for at most `wait`.
pub async fn probe(ip: IpAddr, wait: Duration) -> ProbeOutcome {
    let v6 = ip.is_ipv6();
    let (socket, raw) = match open(v6) {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(e),
    };
    let id = if raw {
        Some((std::process::id() & 0xffff) as u16)
    } else {
        None
    };
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut payload = *b"halb-check-00000";
    payload[11..].copy_from_slice(format!("{:05}", seq % 10_000).as_bytes());
    let request = echo_request(v6, id.unwrap_or(0), seq, &payload);
    // A socket2 ICMP socket as a tokio UdpSocket: safe, and its
    // send_to/recv are the plain datagram calls a ping socket needs.
    let sock = match tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket)) {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(format!("ICMP socket: {e}")),
    };
    if let Err(e) = sock.send_to(&request, SocketAddr::new(ip, 0)).await {
        return ProbeOutcome::down(format!("ping {ip}: {e}"));
    }
    let receive = async {
        let mut buf = [0u8; 1500];
        for _ in 0..MAX_PACKETS {
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) => return ProbeOutcome::down(format!("ping {ip}: {e}")),
            };
            if is_reply(&buf[..n], v6, raw && !v6, id, seq, &payload) {
                return ProbeOutcome::up(format!("echo reply from {ip}"));
            }
        }
        ProbeOutcome::down(format!(
            "ping {ip}: no matching reply in {MAX_PACKETS} packets"
        ))
    };
    match tokio::time::timeout(wait, receive).await {
        Ok(o) => o,
        Err(_) => ProbeOutcome::down(format!("no echo reply from {ip} within {wait:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2, so the
        // checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A packet with its checksum in place sums to zero.
        let p = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
    }

    fn reply_of(req: &[u8], v6: bool) -> Vec<u8> {
        let mut r = req.to_vec();
        r[0] = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
        r
    }

    #[test]
    fn replies_are_matched_on_id_sequence_and_payload() {
        for v6 in [false, true] {
            let req = echo_request(v6, 42, 9, b"halb-check-00009");
            let rep = reply_of(&req, v6);
            assert!(is_reply(&rep, v6, false, Some(42), 9, b"halb-check-00009"));
            assert!(is_reply(&rep, v6, false, None, 9, b"halb-check-00009"));
            assert!(!is_reply(&rep, v6, false, Some(43), 9, b"halb-check-00009"));
            assert!(!is_reply(
                &rep,
                v6,
                false,
                Some(42),
                10,
                b"halb-check-00009"
            ));
            assert!(!is_reply(&rep, v6, false, Some(42), 9, b"halb-check-00010"));
            // Our own request (seen on a raw socket to loopback) is not a reply.
            assert!(!is_reply(&req, v6, false, Some(42), 9, b"halb-check-00009"));
            assert!(!is_reply(&rep[..7], v6, false, None, 9, b""));
        }
        // Raw IPv4: behind a 20-byte IP header.
        let mut ip = vec![0x45; 1];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&reply_of(&echo_request(false, 1, 2, b"x"), false));
        assert!(is_reply(&ip, false, true, Some(1), 2, b"x"));
        assert!(!is_reply(&ip[..10], false, true, Some(1), 2, b"x"));
        assert!(!is_reply(&[], false, true, Some(1), 2, b"x"));
    }

    proptest::proptest! {
        #[test]
        fn matching_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100), v6: bool, hdr: bool) {
            let _ = is_reply(&bytes, v6, hdr, Some(1), 1, b"p");
        }
    }
}
