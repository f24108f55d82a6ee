//! DNS over UDP: one query (`RD` set, class IN) with an ID derived from
//! the clock and a counter; up when a reply with the same ID, `QR` set and
//! RCODE NOERROR arrives (any answer count). Datagrams with another ID or
//! that are not replies are ignored; a reply with another RCODE is down
//! with its name (`NXDOMAIN`, `SERVFAIL`, `REFUSED`, …). Each datagram is
//! read into a fixed 4 KiB buffer.

use crate::engine::ProbeOutcome;
use crate::spec::DnsSpec;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

/// Largest datagram read; longer ones are truncated (the header decides).
pub const MAX_DATAGRAM: usize = 4096;

pub use crate::spec::encode_name;

/// A query message.
pub fn encode_query(id: u16, spec: &DnsSpec) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // AN, NS, AR
    out.extend_from_slice(&encode_name(&spec.query_name)?);
    out.extend_from_slice(&spec.query_type.code().to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(out)
}

/// What a datagram says about the query `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Not the reply to this query (short, another ID, not a response).
    Ignore,
    /// The reply: its RCODE and answer count.
    Answer { rcode: u8, answers: u16 },
}

/// Decodes the header of a datagram; never panics.
pub fn decode(datagram: &[u8], id: u16) -> Reply {
    let Some(h) = datagram.get(..12) else {
        return Reply::Ignore;
    };
    let qr = h[2] & 0x80 != 0;
    if u16::from_be_bytes([h[0], h[1]]) != id || !qr {
        return Reply::Ignore;
    }
    Reply::Answer {
        rcode: h[3] & 0x0f,
        answers: u16::from_be_bytes([h[6], h[7]]),
    }
}

/// RCODE names (RFC 1035, 2136).
pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".to_owned(),
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        n => format!("RCODE {n}"),
    }
}

/// A query ID that differs from one probe to the next: the clock's
/// nanoseconds mixed with a counter (not secret: the socket is connected,
/// so only the target's replies are read anyway).
pub fn query_id() -> u16 {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = nanos ^ (nanos >> 16) ^ std::process::id();
    (mixed as u16).wrapping_add(COUNTER.fetch_add(0x9e37, Ordering::Relaxed))
}

/// A UDP socket of `target`'s family, connected to it.
pub async fn connected(target: SocketAddr) -> Result<UdpSocket, String> {
    let local: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    socket
        .connect(target)
        .await
        .map_err(|e| format!("connect to {target}: {e}"))?;
    Ok(socket)
}

/// Sends the query and waits for its reply. No timeout of its own: the
/// caller ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &DnsSpec) -> ProbeOutcome {
    let id = query_id();
    let query = match encode_query(id, spec) {
        Ok(q) => q,
        Err(e) => return ProbeOutcome::down(e),
    };
    let socket = match connected(target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(e),
    };
    if let Err(e) = socket.send(&query).await {
        return ProbeOutcome::down(format!("send to {target}: {e}"));
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let what = format!("{} {}", spec.query_name, spec.query_type.as_str());
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return ProbeOutcome::down(format!("{target}: port unreachable"))
            }
            Err(e) => return ProbeOutcome::down(format!("recv from {target}: {e}")),
        };
        match decode(&buf[..n.min(buf.len())], id) {
            Reply::Ignore => continue,
            Reply::Answer { rcode: 0, answers } => {
                return ProbeOutcome::up(format!("{what}: NOERROR, {answers} answers"))
            }
            Reply::Answer { rcode, .. } => {
                return ProbeOutcome::down(format!("{what}: {}", rcode_name(rcode)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DnsType;

    #[test]
    fn names() {
        assert_eq!(encode_name(".").unwrap(), [0]);
        assert_eq!(encode_name("").unwrap(), [0]);
        assert_eq!(
            encode_name("halb.test.").unwrap(),
            b"\x04halb\x04test\x00".to_vec()
        );
        assert_eq!(
            encode_name("halb.test").unwrap(),
            encode_name("halb.test.").unwrap()
        );
        assert!(encode_name("a..b").is_err());
        assert!(encode_name(&"a".repeat(64)).is_err());
        assert!(encode_name(&vec!["a".repeat(63); 5].join(".")).is_err());
        assert!(encode_name("bücher.example").is_err());
    }

    #[test]
    fn query_wire_format() {
        let spec = DnsSpec {
            query_name: "example.com".into(),
            query_type: DnsType::Aaaa,
        };
        let q = encode_query(0xbeef, &spec).unwrap();
        let mut expected = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x07example\x03com\x00");
        expected.extend_from_slice(&[0, 28, 0, 1]);
        assert_eq!(q, expected);
        let root = encode_query(1, &DnsSpec::default()).unwrap();
        assert_eq!(&root[12..], &[0, 0, 6, 0, 1]);
    }

    #[test]
    fn replies() {
        let mut r = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        assert_eq!(
            decode(&r, 0x1234),
            Reply::Answer {
                rcode: 0,
                answers: 2
            }
        );
        assert_eq!(decode(&r, 0x1235), Reply::Ignore);
        assert_eq!(decode(&r[..11], 0x1234), Reply::Ignore);
        r[3] = 0x83;
        assert_eq!(
            decode(&r, 0x1234),
            Reply::Answer {
                rcode: 3,
                answers: 2
            }
        );
        assert_eq!(rcode_name(3), "NXDOMAIN");
        r[2] = 0x01; // a query, not a reply
        assert_eq!(decode(&r, 0x1234), Reply::Ignore);
    }

    #[test]
    fn ids_vary() {
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| query_id()).collect();
        assert!(ids.len() > 32);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), id: u16) {
            let _ = decode(&bytes, id);
            let mut with_id = id.to_be_bytes().to_vec();
            with_id.extend_from_slice(&bytes);
            let _ = decode(&with_id, id);
        }

        #[test]
        fn encode_name_never_panics(name in ".{0,300}") {
            if let Ok(wire) = encode_name(&name) {
                proptest::prop_assert!(wire.len() <= 255);
            }
        }
    }
}
