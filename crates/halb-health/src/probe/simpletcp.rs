//! `simpletcp` (ldirectord): connect (TLS optional), write the configured
//! bytes, read the reply into a buffer of at most
//! [`SIMPLETCP_MAX_REPLY`] bytes and match it against the regular
//! expression. The verdict ([`judge`]) is a pure function of the bytes
//! read so far: it decides as soon as the expression matches, when the
//! peer closes, or when the bound is reached; a server that trickles or
//! never stops is cut at the bound or by the caller's timeout.

use super::line::printable;
use super::tls::{connect, Stream};
use crate::engine::ProbeOutcome;
use crate::spec::{SimpleTcpSpec, SIMPLETCP_MAX_REPLY};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Judges the reply read so far (`eof`: the peer closed). `None`: read on.
pub fn judge(reply: &[u8], eof: bool, spec: &SimpleTcpSpec) -> Option<ProbeOutcome> {
    match &spec.expect {
        None if !reply.is_empty() => Some(ProbeOutcome::up(format!(
            "replied {:?}",
            printable(&reply[..reply.len().min(64)])
        ))),
        None if eof => Some(ProbeOutcome::up("closed cleanly after the send")),
        None => None,
        Some(re) if re.is_match(reply) => {
            Some(ProbeOutcome::up(format!("reply matches /{}/", re.as_str())))
        }
        Some(re) if eof || reply.len() >= SIMPLETCP_MAX_REPLY => {
            let why = if eof {
                if reply.is_empty() {
                    "connection closed without a reply".to_owned()
                } else {
                    format!("reply does not match /{}/", re.as_str())
                }
            } else {
                format!(
                    "no match for /{}/ in the first {SIMPLETCP_MAX_REPLY} bytes",
                    re.as_str()
                )
            };
            if reply.is_empty() {
                Some(ProbeOutcome::down(why))
            } else {
                Some(ProbeOutcome::down(format!(
                    "{why}: {:?}",
                    printable(&reply[..reply.len().min(120)])
                )))
            }
        }
        Some(_) => None,
    }
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &SimpleTcpSpec) -> ProbeOutcome {
    match connect(target, spec.tls.as_ref()).await {
        Ok(stream) => exchange(stream, spec).await,
        Err(e) => ProbeOutcome::down(e),
    }
}

/// The send and the bounded read over an open stream.
pub async fn exchange(mut stream: Box<dyn Stream>, spec: &SimpleTcpSpec) -> ProbeOutcome {
    if !spec.send.is_empty() {
        if let Err(e) = stream.write_all(&spec.send).await {
            return ProbeOutcome::down(format!("send: {e}"));
        }
        if let Err(e) = stream.flush().await {
            return ProbeOutcome::down(format!("send: {e}"));
        }
    }
    let mut buf = Vec::with_capacity(1024);
    loop {
        let room = SIMPLETCP_MAX_REPLY.saturating_sub(buf.len());
        let n = match (&mut stream).take(room as u64).read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return ProbeOutcome::down(format!("read: {e}")),
        };
        if let Some(outcome) = judge(&buf, n == 0, spec) {
            let _ = stream.shutdown().await;
            return outcome;
        }
        if n == 0 {
            return ProbeOutcome::down("connection closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BodyRegex;

    fn spec(re: Option<&str>) -> SimpleTcpSpec {
        SimpleTcpSpec {
            send: b"PING\r\n".to_vec(),
            expect: re.map(|r| BodyRegex::new(r).unwrap()),
            tls: None,
        }
    }

    #[test]
    fn verdicts() {
        let s = spec(Some("^\\+PONG"));
        assert!(judge(b"+PONG\r\n", false, &s).unwrap().ok);
        assert!(judge(b"+PO", false, &s).is_none());
        let o = judge(b"-ERR no\r\n", true, &s).unwrap();
        assert!(!o.ok && o.reason.contains("does not match"), "{o:?}");
        let o = judge(b"", true, &s).unwrap();
        assert_eq!(o.reason, "connection closed without a reply");
        let big = vec![b'x'; SIMPLETCP_MAX_REPLY];
        let o = judge(&big, false, &s).unwrap();
        assert!(!o.ok && o.reason.contains("first 16384 bytes"), "{o:?}");
        let any = spec(None);
        assert!(judge(b"x", false, &any).unwrap().ok);
        assert!(judge(b"", false, &any).is_none());
        assert!(judge(b"", true, &any).unwrap().ok);
    }

    async fn against(server_says: &'static [u8], close: bool, s: &SimpleTcpSpec) -> ProbeOutcome {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            let _ = server.read(&mut b).await;
            let _ = server.write_all(server_says).await;
            if !close {
                std::future::pending::<()>().await;
            }
        });
        exchange(Box::new(client), s).await
    }

    #[tokio::test]
    async fn conversations() {
        let s = spec(Some("PONG"));
        assert!(against(b"+PONG\r\n", false, &s).await.ok);
        assert!(!against(b"nope", true, &s).await.ok);
        let r = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            against(b"nope", false, &s),
        )
        .await;
        assert!(
            r.is_err(),
            "a silent server is left to the caller's timeout"
        );
    }

    proptest::proptest! {
        #[test]
        fn judge_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048), eof: bool) {
            let _ = judge(&bytes, eof, &spec(Some("^OK")));
            let _ = judge(&bytes, eof, &spec(None));
        }
    }
}
