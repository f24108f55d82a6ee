//! SIP (ldirectord `sip`): an `OPTIONS` request (RFC 3261 §11) over UDP
//! or TCP. Up on a final response (2xx–6xx, or the configured codes)
//! whose `Call-ID` and `CSeq` are the request's; provisional 1xx
//! responses and messages of other transactions are skipped, at most
//! [`MAX_MESSAGES`] of them. Over UDP the request is retransmitted as
//! timer A does (500 ms, doubling); each datagram is read into one
//! [`super::udp::MAX_DATAGRAM`] buffer. Over TCP the stream is read at
//! most [`MAX_MESSAGE`] bytes per message. The codec ([`request`],
//! [`parse`]) and the verdict ([`judge`]) are pure.

use super::line::printable;
use crate::engine::ProbeOutcome;
use crate::spec::{SipSpec, SipTransport};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Most messages read before the final response (1xx, other transactions).
pub const MAX_MESSAGES: usize = 16;
/// Largest message (head and body) read over TCP.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// RFC 3261 T1: the first UDP retransmission interval.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the longest retransmission interval.
const T2: Duration = Duration::from_secs(4);

/// The identifiers one request carries; a response must echo `call_id`
/// and `cseq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The Via branch, `z9hG4bK` and random hex (RFC 3261 §8.1.1.7).
    pub branch: String,
    pub call_id: String,
    pub cseq: u32,
    /// The From tag.
    pub tag: String,
}

impl Transaction {
    /// Fresh random identifiers.
    pub fn new() -> Self {
        let mut b = [0u8; 20];
        // Best effort: a failed getrandom still gives a well-formed request
        // (the address and the time keep probes apart).
        if getrandom::getrandom(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            b[..16].copy_from_slice(&t.to_le_bytes());
        }
        let hex = super::http::hex;
        Transaction {
            branch: format!("z9hG4bK{}", hex(&b[..8])),
            call_id: format!("{}@halb", hex(&b[8..16])),
            cseq: u32::from_le_bytes([b[16], b[17], b[18], b[19] & 0x7f]).max(1),
            tag: hex(&b[16..20]),
        }
    }
}

impl Default for Transaction {
    fn default() -> Self {
        Transaction::new()
    }
}

/// The `sip:` URI of the Request-URI and To: the configured user (at
/// the target unless it names a domain), else the server itself.
fn uri(target: SocketAddr, spec: &SipSpec) -> String {
    match &spec.username {
        Some(u) if u.contains('@') => format!("sip:{u}"),
        Some(u) => format!("sip:{u}@{target}"),
        None => format!("sip:{target}"),
    }
}

/// The OPTIONS request from `local` to `target`.
pub fn request(target: SocketAddr, local: SocketAddr, spec: &SipSpec, t: &Transaction) -> String {
    let ruri = uri(target, spec);
    let from = match &spec.username {
        Some(_) => ruri.clone(),
        None => format!("sip:halb@{}", SocketAddr::new(local.ip(), 0).ip()),
    };
    let proto = spec.transport.as_str();
    let contact = match spec.transport {
        SipTransport::Udp => format!("sip:halb@{local}"),
        SipTransport::Tcp => format!("sip:halb@{local};transport=tcp"),
    };
    let ip = match local.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    format!(
        "OPTIONS {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/{proto} {ip}:{port};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <{ruri}>\r\n\
         From: <{from}>;tag={tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} OPTIONS\r\n\
         Contact: <{contact}>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: halb-health\r\n\
         Content-Length: 0\r\n\r\n",
        port = local.port(),
        branch = t.branch,
        tag = t.tag,
        call_id = t.call_id,
        cseq = t.cseq,
    )
}

/// What a response says, as far as the verdict needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub call_id: Option<String>,
    /// The CSeq number and method.
    pub cseq: Option<(u32, String)>,
    pub content_length: usize,
    /// Bytes of the head, its blank line included.
    pub head_len: usize,
}

/// Parses a response head from the start of `buf`. `Ok(None)`: the head
/// is not complete yet. A request (a server's own OPTIONS, say) or
/// anything not a SIP/2.0 status line is an error.
pub fn parse(buf: &[u8]) -> Result<Option<Response>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if !buf.is_empty() && !b"SIP/2.0 ".starts_with(&buf[..buf.len().min(8)]) {
            return Err(format!("not a SIP response: {:?}", printable(first(buf))));
        }
        return Ok(None);
    };
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status = lines.next().unwrap_or(b"");
    let rest = status
        .strip_prefix(b"SIP/2.0 ")
        .ok_or_else(|| format!("not a SIP response: {:?}", printable(status)))?;
    let code = rest
        .get(..3)
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .filter(|_| matches!(rest.get(3), None | Some(b' ')))
        .map(|c| c.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
        .ok_or_else(|| format!("bad SIP status line: {:?}", printable(status)))?;
    let reason = printable(rest.get(4..).unwrap_or(b""));
    let mut r = Response {
        code,
        reason,
        call_id: None,
        cseq: None,
        content_length: 0,
        head_len: end + 4,
    };
    // Folded lines (leading space or tab) continue a header: only the
    // first line of a header matters to the verdict, so they are skipped.
    for line in lines.filter(|l| !l.starts_with(b" ") && !l.starts_with(b"\t")) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!("bad SIP header: {:?}", printable(line)));
        };
        let name = String::from_utf8_lossy(&line[..colon])
            .trim()
            .to_ascii_lowercase();
        let value = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_owned();
        match name.as_str() {
            "call-id" | "i" => r.call_id = Some(value),
            "cseq" => {
                let mut it = value.split_whitespace();
                r.cseq = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .zip(it.next().map(str::to_owned));
            }
            "content-length" | "l" => {
                r.content_length = value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {:?}", printable(value.as_bytes())))?;
            }
            _ => {}
        }
    }
    Ok(Some(r))
}

fn first(buf: &[u8]) -> &[u8] {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    &buf[..end.min(80)]
}

/// The verdict on one response: `None` to keep reading (a 1xx, or a
/// response of another transaction).
pub fn judge(r: &Response, t: &Transaction, spec: &SipSpec) -> Option<ProbeOutcome> {
    let ours = r.call_id.as_deref() == Some(t.call_id.as_str())
        && r.cseq
            .as_ref()
            .is_some_and(|(n, m)| *n == t.cseq && m.eq_ignore_ascii_case("OPTIONS"));
    if !ours || (100..=199).contains(&r.code) {
        return None;
    }
    let line = format!("SIP {} {}", r.code, r.reason);
    Some(if !(200..=699).contains(&r.code) {
        ProbeOutcome::down(format!("bad status: {line}"))
    } else if spec.status_ok(r.code) {
        ProbeOutcome::up(line)
    } else {
        ProbeOutcome::down(line)
    })
}

/// Why a message was skipped, for the reason when none is final.
fn skipped(r: &Response, t: &Transaction) -> String {
    if r.call_id.as_deref() != Some(t.call_id.as_str()) {
        format!("SIP {} of another Call-ID", r.code)
    } else if r.cseq.as_ref().map(|c| c.0) != Some(t.cseq) {
        format!("SIP {} of another CSeq", r.code)
    } else {
        format!("SIP {} {}", r.code, r.reason)
    }
}

/// Sends OPTIONS and judges. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &SipSpec) -> ProbeOutcome {
    let t = Transaction::new();
    match spec.transport {
        SipTransport::Udp => udp(target, spec, &t).await,
        SipTransport::Tcp => match TcpStream::connect(target).await {
            Ok(stream) => {
                let local = stream
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::new(target.ip(), 0));
                exchange(stream, request(target, local, spec, &t), &t, spec).await
            }
            Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
        },
    }
}

async fn udp(target: SocketAddr, spec: &SipSpec, t: &Transaction) -> ProbeOutcome {
    let socket = match super::dns::connected(target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(e),
    };
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::new(target.ip(), 0));
    let req = request(target, local, spec, t);
    let unreachable = |e: std::io::Error, what: &str| {
        ProbeOutcome::down(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => format!("{target}: port unreachable"),
            _ => format!("{what} {target}: {e}"),
        })
    };
    if let Err(e) = socket.send(req.as_bytes()).await {
        return unreachable(e, "send to");
    }
    let mut buf = vec![0u8; super::udp::MAX_DATAGRAM];
    let mut wait = T1;
    let mut last = String::from("no final response");
    let mut seen = 0;
    while seen < MAX_MESSAGES {
        let n = match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            Err(_) => {
                // Timer A: the request again, up to T2 apart.
                if let Err(e) = socket.send(req.as_bytes()).await {
                    return unreachable(e, "send to");
                }
                wait = (wait * 2).min(T2);
                continue;
            }
            Ok(Err(e)) => return unreachable(e, "recv from"),
            Ok(Ok(n)) => n,
        };
        seen += 1;
        match parse(&buf[..n.min(buf.len())]) {
            Ok(Some(r)) => {
                if let Some(v) = judge(&r, t, spec) {
                    return v;
                }
                last = skipped(&r, t);
            }
            Ok(None) => last = "a datagram without a complete SIP head".to_owned(),
            Err(e) => last = e,
        }
    }
    ProbeOutcome::down(format!(
        "{MAX_MESSAGES} messages without a final response (last: {last})"
    ))
}

/// The request and its responses over a stream (TCP, or a test's pipe).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    req: String,
    t: &Transaction,
    spec: &SipSpec,
) -> ProbeOutcome {
    if let Err(e) = stream.write_all(req.as_bytes()).await {
        return ProbeOutcome::down(format!("send: {e}"));
    }
    if let Err(e) = stream.flush().await {
        return ProbeOutcome::down(format!("send: {e}"));
    }
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    for _ in 0..MAX_MESSAGES {
        let r = loop {
            match parse(&buf) {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(e) => return ProbeOutcome::down(e),
            }
            let room = MAX_MESSAGE.saturating_sub(buf.len());
            if room == 0 {
                return ProbeOutcome::down(format!("SIP head exceeds {MAX_MESSAGE} bytes"));
            }
            match (&mut stream).take(room as u64).read_buf(&mut buf).await {
                Ok(0) => {
                    return ProbeOutcome::down(if buf.is_empty() {
                        "connection closed without a response"
                    } else {
                        "connection closed mid-response"
                    })
                }
                Ok(_) => {}
                Err(e) => return ProbeOutcome::down(format!("read: {e}")),
            }
        };
        if let Some(v) = judge(&r, t, spec) {
            return v;
        }
        // Skip this message, body included, before the next one.
        let total = r.head_len.saturating_add(r.content_length);
        if total > MAX_MESSAGE {
            return ProbeOutcome::down(format!("SIP message exceeds {MAX_MESSAGE} bytes"));
        }
        while buf.len() < total {
            let room = total - buf.len();
            match (&mut stream).take(room as u64).read_buf(&mut buf).await {
                Ok(0) => return ProbeOutcome::down("connection closed mid-message"),
                Ok(_) => {}
                Err(e) => return ProbeOutcome::down(format!("read: {e}")),
            }
        }
        buf.drain(..total);
    }
    ProbeOutcome::down(format!("{MAX_MESSAGES} messages without a final response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Transaction {
        Transaction {
            branch: "z9hG4bK0011".into(),
            call_id: "abcd@halb".into(),
            cseq: 42,
            tag: "77".into(),
        }
    }

    fn resp(code: &str, call_id: &str, cseq: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 {code}\r\nVia: SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK0011\r\n\
             i: {call_id}\r\nCSeq: {cseq}\r\nl: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn request_has_every_mandatory_header() {
        let target: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let local: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let r = request(target, local, &SipSpec::default(), &t());
        assert!(
            r.starts_with("OPTIONS sip:192.0.2.10:5060 SIP/2.0\r\n"),
            "{r}"
        );
        for h in [
            "Via: SIP/2.0/UDP 192.0.2.1:40000;branch=z9hG4bK0011;rport\r\n",
            "Max-Forwards: 70\r\n",
            "To: <sip:192.0.2.10:5060>\r\n",
            "From: <sip:halb@192.0.2.1>;tag=77\r\n",
            "Call-ID: abcd@halb\r\n",
            "CSeq: 42 OPTIONS\r\n",
            "Contact: <sip:halb@192.0.2.1:40000>\r\n",
        ] {
            assert!(r.contains(h), "{h} in {r}");
        }
        assert!(r.ends_with("Content-Length: 0\r\n\r\n"));
        let spec = SipSpec {
            transport: SipTransport::Tcp,
            username: Some("ldirectord@lb1".into()),
            ..SipSpec::default()
        };
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        let l6: SocketAddr = "[2001:db8::2]:4000".parse().unwrap();
        let r = request(v6, l6, &spec, &t());
        assert!(
            r.starts_with("OPTIONS sip:ldirectord@lb1 SIP/2.0\r\n"),
            "{r}"
        );
        assert!(r.contains("Via: SIP/2.0/TCP [2001:db8::2]:4000;"), "{r}");
        assert!(r.contains("From: <sip:ldirectord@lb1>;tag=77"), "{r}");
        assert!(r.contains(";transport=tcp>"), "{r}");
        let user = SipSpec {
            username: Some("probe".into()),
            ..SipSpec::default()
        };
        assert!(
            request(target, local, &user, &t()).starts_with("OPTIONS sip:probe@192.0.2.10:5060 ")
        );
        let a = Transaction::new();
        let b = Transaction::new();
        assert!(a.branch.starts_with("z9hG4bK") && a.call_id != b.call_id);
    }

    #[test]
    fn verdicts() {
        let s = SipSpec::default();
        let judge_bytes = |b: &[u8], s: &SipSpec| judge(&parse(b).unwrap().unwrap(), &t(), s);
        let o = judge_bytes(&resp("200 OK", "abcd@halb", "42 OPTIONS"), &s).unwrap();
        assert_eq!((o.ok, o.reason.as_str()), (true, "SIP 200 OK"));
        // Any final response means the server is alive.
        assert!(
            judge_bytes(&resp("404 Not Found", "abcd@halb", "42 OPTIONS"), &s)
                .unwrap()
                .ok
        );
        assert!(
            judge_bytes(&resp("603 Decline", "abcd@halb", "42 OPTIONS"), &s)
                .unwrap()
                .ok
        );
        // 1xx and other transactions are skipped.
        assert_eq!(
            judge_bytes(&resp("100 Trying", "abcd@halb", "42 OPTIONS"), &s),
            None
        );
        assert_eq!(
            judge_bytes(&resp("200 OK", "other@x", "42 OPTIONS"), &s),
            None
        );
        assert_eq!(
            judge_bytes(&resp("200 OK", "abcd@halb", "43 OPTIONS"), &s),
            None
        );
        assert_eq!(
            judge_bytes(&resp("200 OK", "abcd@halb", "42 INVITE"), &s),
            None
        );
        // Narrowed to ldirectord's 200.
        let strict = SipSpec {
            expect_status: vec![200..=200],
            ..SipSpec::default()
        };
        let o = judge_bytes(
            &resp("483 Too Many Hops", "abcd@halb", "42 OPTIONS"),
            &strict,
        )
        .unwrap();
        assert_eq!((o.ok, o.reason.as_str()), (false, "SIP 483 Too Many Hops"));
        let o = judge_bytes(&resp("700 Odd", "abcd@halb", "42 OPTIONS"), &s).unwrap();
        assert!(!o.ok && o.reason.contains("bad status"), "{o:?}");
    }

    #[test]
    fn parsing() {
        assert_eq!(parse(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n"), Ok(None));
        assert_eq!(parse(b"SIP/2"), Ok(None));
        assert!(parse(b"HTTP/1.1 200 OK\r\n")
            .unwrap_err()
            .contains("not a SIP"));
        assert!(parse(b"OPTIONS sip:x SIP/2.0\r\n\r\n").is_err());
        assert!(parse(b"SIP/2.0 2000 OK\r\n\r\n").is_err());
        assert!(parse(b"SIP/2.0 200 OK\r\nno colon\r\n\r\n").is_err());
        assert!(parse(b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        let r = parse(b"SIP/2.0 200\r\nCALL-ID:  y \r\nSubject: a\r\n b\r\ncseq: 9 options\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(r.code, 200);
        assert_eq!(r.call_id.as_deref(), Some("y"));
        assert_eq!(r.cseq, Some((9, "options".into())));
        assert_eq!((r.content_length, r.head_len), (5, 81));
    }

    /// A scripted TCP peer: the probe reads past 1xx and bodies.
    #[tokio::test]
    async fn stream_skips_provisional_and_bodies() {
        let run = |reply: Vec<u8>| async move {
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let mut b = [0u8; 2048];
                let _ = server.read(&mut b).await;
                let _ = server.write_all(&reply).await;
            });
            exchange(
                client,
                "OPTIONS x SIP/2.0\r\n\r\n".into(),
                &t(),
                &SipSpec::default(),
            )
            .await
        };
        let mut two = resp("100 Trying", "abcd@halb", "42 OPTIONS");
        two.extend(
            b"SIP/2.0 200 OK\r\nCall-ID: other\r\nCSeq: 42 OPTIONS\r\nContent-Length: 3\r\n\r\nabc",
        );
        two.extend(resp("486 Busy Here", "abcd@halb", "42 OPTIONS"));
        let o = run(two).await;
        assert_eq!((o.ok, o.reason.as_str()), (true, "SIP 486 Busy Here"));
        let o = run(resp("180 Ringing", "abcd@halb", "42 OPTIONS")).await;
        assert!(!o.ok && o.reason.contains("closed"), "{o:?}");
        let o = run(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()).await;
        assert!(!o.ok && o.reason.contains("not a SIP response"), "{o:?}");
        let o = run(vec![b'S'; MAX_MESSAGE * 2]).await;
        assert!(!o.ok, "{o:?}");
        let mut endless = b"SIP/2.0 200 OK\r\nX: ".to_vec();
        endless.resize(MAX_MESSAGE * 2, b'a');
        let o = run(endless).await;
        assert!(!o.ok && o.reason.contains("exceeds"), "{o:?}");
    }

    /// Hostile UDP peers: endless 1xx, garbage, and a reply to another
    /// transaction never make the probe wait past its bound of messages.
    #[tokio::test]
    async fn udp_hostile_peers_end() {
        for kind in 0..3u8 {
            let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let target = server.local_addr().unwrap();
            tokio::spawn(async move {
                let mut b = vec![0u8; 65536];
                let Ok((n, from)) = server.recv_from(&mut b).await else {
                    return;
                };
                let req = String::from_utf8_lossy(&b[..n]).into_owned();
                let header = |name: &str| {
                    req.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or("")
                        .trim()
                        .to_owned()
                };
                let (call_id, cseq) = (header("Call-ID:"), header("CSeq:"));
                for _ in 0..MAX_MESSAGES + 4 {
                    let msg = match kind {
                        0 => format!(
                            "SIP/2.0 100 Trying\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n\r\n"
                        ),
                        1 => "\x00\x01garbage".to_owned(),
                        _ => {
                            format!("SIP/2.0 200 OK\r\nCall-ID: x{call_id}\r\nCSeq: {cseq}\r\n\r\n")
                        }
                    };
                    let _ = server.send_to(msg.as_bytes(), from).await;
                }
            });
            let o =
                tokio::time::timeout(Duration::from_secs(10), probe(target, &SipSpec::default()))
                    .await
                    .unwrap();
            assert!(
                !o.ok && o.reason.contains("without a final response"),
                "{kind}: {o:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_and_judge_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut with_head = b"SIP/2.0 200 OK\r\n".to_vec();
            with_head.extend_from_slice(&bytes);
            for b in [&bytes, &with_head] {
                if let Ok(Some(r)) = parse(b) {
                    let _ = judge(&r, &t(), &SipSpec::default());
                    proptest::prop_assert!(r.head_len <= b.len());
                }
            }
        }
    }
}
