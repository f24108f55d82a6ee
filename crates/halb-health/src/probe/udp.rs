//! UDP: send a payload on a connected socket. With `expect_reply`, up
//! only when a datagram comes back (containing `reply_contains` when
//! set); without, up unless the kernel reports ICMP port unreachable
//! (a connected socket's `recv` fails with `ConnectionRefused`) within
//! [`quiet_wait`] of sending, as keepalived's `UDP_CHECK` without
//! `require_reply`. Each datagram is read into a fixed 64 KiB buffer.

use super::dns::connected;
use super::http::hex;
use crate::engine::ProbeOutcome;
use crate::spec::UdpSpec;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest datagram read.
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// How long a check without `expect_reply` listens for an ICMP error:
/// half its timeout, at most 1 s, so it always ends before the timeout.
pub fn quiet_wait(timeout: Duration) -> Duration {
    (timeout / 2).min(Duration::from_secs(1))
}

/// Sends and judges. Ends by itself within [`quiet_wait`] when no reply
/// is expected; otherwise the caller ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &UdpSpec, timeout: Duration) -> ProbeOutcome {
    let socket = match connected(target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(e),
    };
    if let Err(e) = socket.send(&spec.payload).await {
        return ProbeOutcome::down(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => format!("{target}: port unreachable"),
            _ => format!("send to {target}: {e}"),
        });
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let received = if spec.expect_reply {
        socket.recv(&mut buf).await
    } else {
        match tokio::time::timeout(quiet_wait(timeout), socket.recv(&mut buf)).await {
            Ok(r) => r,
            Err(_) => return ProbeOutcome::up("sent; no ICMP error"),
        }
    };
    match received {
        Ok(n) => judge(&buf[..n.min(buf.len())], spec),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeOutcome::down(format!("{target}: port unreachable"))
        }
        Err(e) => ProbeOutcome::down(format!("recv from {target}: {e}")),
    }
}

/// The verdict on a reply.
pub fn judge(reply: &[u8], spec: &UdpSpec) -> ProbeOutcome {
    match &spec.reply_contains {
        Some(needle)
            if !needle.is_empty() && !reply.windows(needle.len()).any(|w| w == &needle[..]) =>
        {
            let shown = if reply.len() > 32 {
                &reply[..32]
            } else {
                reply
            };
            ProbeOutcome::down(format!(
                "reply of {} bytes lacks {:?} (starts {})",
                reply.len(),
                String::from_utf8_lossy(needle),
                hex(shown)
            ))
        }
        _ => ProbeOutcome::up(format!("reply of {} bytes", reply.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    fn spec(expect_reply: bool, contains: Option<&str>) -> UdpSpec {
        UdpSpec {
            payload: b"ping".to_vec(),
            expect_reply,
            reply_contains: contains.map(|s| s.as_bytes().to_vec()),
        }
    }

    #[test]
    fn judging() {
        assert!(judge(b"", &spec(true, None)).ok);
        assert!(judge(b"xx pong xx", &spec(true, Some("pong"))).ok);
        assert!(!judge(b"nope", &spec(true, Some("pong"))).ok);
        assert_eq!(quiet_wait(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            quiet_wait(Duration::from_millis(200)),
            Duration::from_millis(100)
        );
    }

    /// An echo server on loopback; returns its address.
    async fn echo() -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let mut reply = b"pong:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.send_to(&reply, from).await;
            }
        });
        addr
    }

    /// A port nothing listens on (bound, then closed).
    fn closed_port() -> SocketAddr {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    }

    async fn bounded(target: SocketAddr, spec: UdpSpec) -> ProbeOutcome {
        let t = Duration::from_secs(2);
        tokio::time::timeout(Duration::from_secs(10), probe(target, &spec, t))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn loopback() {
        let addr = echo().await;
        let o = bounded(addr, spec(true, Some("pong:ping"))).await;
        assert!(o.ok, "{o:?}");
        let o = bounded(addr, spec(true, Some("other"))).await;
        assert!(!o.ok, "{o:?}");
        let o = bounded(addr, spec(false, None)).await;
        assert!(o.ok, "{o:?}");
        let closed = closed_port();
        let o = bounded(closed, spec(false, None)).await;
        assert!(!o.ok && o.reason.contains("unreachable"), "{o:?}");
        let o = bounded(closed, spec(true, None)).await;
        assert!(!o.ok && o.reason.contains("unreachable"), "{o:?}");
    }
}
