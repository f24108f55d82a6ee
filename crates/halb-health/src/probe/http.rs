//! HTTP and HTTPS checks.
//!
//! A small hand-written HTTP/1.0 request with `Connection: close` rather
//! than hyper's client: a check needs one request per connection, no
//! pooling, no keep-alive and no streaming body, and owning the read loop
//! is what lets it cap the response at [`MAX_RESPONSE`] bytes and stop as
//! soon as the verdict is known (status not accepted; or headers complete
//! when no body check is configured; or the body cap reached). The response
//! head is parsed by `httparse`; `Content-Length`, read-until-close and
//! (for servers that send it anyway) chunked bodies are understood.

use crate::engine::ProbeOutcome;
use crate::spec::{HttpMethod, HttpSpec};
use md5::{Digest as _, Md5};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest response (head and body) read; a larger one fails a body check.
pub const MAX_RESPONSE: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// The request sent for `spec` to `target`.
pub fn request(target: SocketAddr, spec: &HttpSpec) -> String {
    let host = spec.host.clone().unwrap_or_else(|| target.to_string());
    let path = if spec.path.is_empty() {
        "/"
    } else {
        &spec.path
    };
    format!(
        "{} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: halb-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        spec.method.as_str()
    )
}

/// Connects (with TLS when configured), sends the request and judges the
/// response. No timeout of its own: the caller ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &HttpSpec) -> ProbeOutcome {
    let stream = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(format!("connect to {target}: {e}")),
    };
    // Closed with a reset once the verdict is known (as HAProxy's checks
    // do, and as the tcp probe does): the server, which closed first
    // after `Connection: close`, then keeps no TIME_WAIT socket, where a
    // check every second to each of 10,000 real servers would keep
    // 600,000. Best effort: a normal close is still a correct probe.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
    let Some(tls) = &spec.tls else {
        return exchange(stream, target, spec).await;
    };
    let connector = match super::tls::connector(tls) {
        Ok(c) => c,
        Err(e) => return ProbeOutcome::down(e),
    };
    let name = match super::tls::server_name(tls, spec.host.as_deref(), target) {
        Ok(n) => n,
        Err(e) => return ProbeOutcome::down(e),
    };
    match connector.connect(name, stream).await {
        Ok(stream) => exchange(stream, target, spec).await,
        Err(e) => ProbeOutcome::down(format!("TLS handshake: {e}")),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    target: SocketAddr,
    spec: &HttpSpec,
) -> ProbeOutcome {
    send_and_judge(stream, &request(target, spec), spec).await
}

/// One request and its response over `stream`, read at most
/// [`MAX_RESPONSE`] + 1 bytes and judged by [`judge`]. A TLS peer that
/// closes without `close_notify` ends the body like a plain close (many
/// servers do).
pub async fn send_and_judge<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
    spec: &HttpSpec,
) -> ProbeOutcome {
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return ProbeOutcome::down(format!("send request: {e}"));
    }
    if let Err(e) = stream.flush().await {
        return ProbeOutcome::down(format!("send request: {e}"));
    }
    let mut buf = Vec::with_capacity(2048);
    loop {
        let room = (MAX_RESPONSE + 1).saturating_sub(buf.len());
        if room == 0 {
            return ProbeOutcome::down("response exceeds 64 KiB");
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(room));
        }
        // Into the Vec's spare room, never past the cap: no zeroed chunk
        // to fill and copy from.
        let n = match (&mut stream).take(room as u64).read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return ProbeOutcome::down(format!("read response: {e}")),
        };
        if let Some(outcome) = judge(&buf, n == 0, spec) {
            return outcome;
        }
        if n == 0 {
            return ProbeOutcome::down("connection closed mid-response");
        }
    }
}

/// Judges the response read so far (`eof`: the peer closed). `None`: more
/// bytes are needed. Never needs more than [`MAX_RESPONSE`] bytes: at
/// `MAX_RESPONSE + 1` it decides.
pub fn judge(buf: &[u8], eof: bool, spec: &HttpSpec) -> Option<ProbeOutcome> {
    let over = buf.len() > MAX_RESPONSE;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if over => {
            return Some(ProbeOutcome::down("response head exceeds 64 KiB"))
        }
        Ok(httparse::Status::Partial) if eof => {
            return Some(ProbeOutcome::down(if buf.is_empty() {
                "connection closed without a response".to_string()
            } else {
                "connection closed mid-head".to_string()
            }))
        }
        Ok(httparse::Status::Partial) => return None,
        Err(e) => return Some(ProbeOutcome::down(format!("malformed response: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    if !spec.status_ok(status) {
        return Some(ProbeOutcome::down(format!("HTTP {status}")));
    }
    let needs_body =
        spec.body_contains.is_some() || spec.body_md5.is_some() || spec.body_regex.is_some();
    if !needs_body || spec.method == HttpMethod::Head {
        return Some(ProbeOutcome::up(format!("HTTP {status}")));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let raw = &buf[head_len..];
    let body: Vec<u8> = if chunked {
        match dechunk(raw) {
            Ok(Some(body)) => body,
            Ok(None) if over => return Some(ProbeOutcome::down("response exceeds 64 KiB")),
            Ok(None) if eof => return Some(ProbeOutcome::down("connection closed mid-body")),
            Ok(None) => return None,
            Err(()) => return Some(ProbeOutcome::down("malformed chunked body")),
        }
    } else if let Some(length) = length {
        if head_len.saturating_add(length) > MAX_RESPONSE {
            return Some(ProbeOutcome::down(format!(
                "body of {length} bytes exceeds 64 KiB"
            )));
        }
        if raw.len() < length {
            return if eof {
                Some(ProbeOutcome::down("connection closed mid-body"))
            } else {
                None
            };
        }
        raw[..length].to_vec()
    } else if over {
        return Some(ProbeOutcome::down("response exceeds 64 KiB"));
    } else if eof {
        raw.to_vec()
    } else {
        return None;
    };
    if let Some(needle) = &spec.body_contains {
        if !contains(&body, needle.as_bytes()) {
            return Some(ProbeOutcome::down(format!(
                "HTTP {status}: body lacks {needle:?}"
            )));
        }
    }
    if let Some(re) = &spec.body_regex {
        if !re.is_match(&body) {
            return Some(ProbeOutcome::down(format!(
                "HTTP {status}: body does not match /{}/",
                re.as_str()
            )));
        }
    }
    if let Some(expected) = &spec.body_md5 {
        let got: [u8; 16] = Md5::digest(&body).into();
        if got != *expected {
            return Some(ProbeOutcome::down(format!(
                "HTTP {status}: body MD5 {} (expected {})",
                hex(&got),
                hex(expected)
            )));
        }
    }
    Some(ProbeOutcome::up(format!("HTTP {status}")))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Lower-case hex, as `genhash` prints digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a hex MD5 digest (as `genhash` prints it).
pub fn parse_md5(hex: &str) -> Option<[u8; 16]> {
    let hex = hex.trim();
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Decodes a chunked body: `Ok(None)` while incomplete.
fn dechunk(mut raw: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return if raw.len() > 64 { Err(()) } else { Ok(None) };
        };
        let line = std::str::from_utf8(&raw[..eol]).map_err(|_| ())?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| ())?;
        raw = &raw[eol + 2..];
        if size == 0 {
            // Trailers are not needed for the verdict.
            return Ok(Some(body));
        }
        if raw.len() < size.saturating_add(2) {
            return Ok(None);
        }
        body.extend_from_slice(&raw[..size]);
        if &raw[size..size + 2] != b"\r\n" {
            return Err(());
        }
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HttpSpec {
        HttpSpec::get("/health")
    }

    #[test]
    fn request_line_and_host() {
        let target: SocketAddr = "[::1]:8080".parse().unwrap();
        let mut s = spec();
        assert!(request(target, &s).starts_with("GET /health HTTP/1.0\r\nHost: [::1]:8080\r\n"));
        s.method = HttpMethod::Head;
        s.host = Some("www.example.com".into());
        let r = request(target, &s);
        assert!(r.starts_with("HEAD /health HTTP/1.0\r\nHost: www.example.com\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn status_decides_without_body_checks() {
        let s = spec();
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\n", false, &s), None);
        assert!(judge(b"HTTP/1.1 200 OK\r\n\r\n", false, &s).unwrap().ok);
        let down = judge(b"HTTP/1.1 500 Oops\r\n\r\n", false, &s).unwrap();
        assert_eq!((down.ok, down.reason.as_str()), (false, "HTTP 500"));
        assert!(!judge(b"", true, &s).unwrap().ok);
        assert!(!judge(b"SSH-2.0-OpenSSH\r\n", false, &s).unwrap().ok);
    }

    #[test]
    fn body_substring_and_md5() {
        let mut s = spec();
        s.body_contains = Some("OK".into());
        let resp = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nall OK";
        assert_eq!(judge(&resp[..resp.len() - 1], false, &s), None);
        assert!(judge(resp, false, &s).unwrap().ok);
        assert!(!judge(b"HTTP/1.0 200 OK\r\n\r\nnope", true, &s).unwrap().ok);
        assert_eq!(judge(b"HTTP/1.0 200 OK\r\n\r\nnope", false, &s), None);
        // md5("all OK")
        let digest: [u8; 16] = Md5::digest(b"all OK").into();
        s.body_md5 = Some(digest);
        assert!(judge(resp, false, &s).unwrap().ok);
        s.body_md5 = parse_md5("d41d8cd98f00b204e9800998ecf8427e"); // md5("")
        let bad = judge(resp, false, &s).unwrap();
        assert!(
            !bad.ok && bad.reason.contains(&hex(&digest)),
            "{}",
            bad.reason
        );
        assert_eq!(parse_md5("zz"), None);
    }

    #[test]
    fn body_regex() {
        let mut s = spec();
        s.body_regex = Some(crate::spec::BodyRegex::new(r"status:\s*(ok|degraded)").unwrap());
        let good = b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nstatus:   ok\r\n";
        assert!(judge(good, false, &s).unwrap().ok);
        let bad = judge(b"HTTP/1.0 200 OK\r\n\r\nstatus: failed", true, &s).unwrap();
        assert!(
            !bad.ok && bad.reason.contains("does not match"),
            "{}",
            bad.reason
        );
        // A HEAD check never reads a body: the regex is not applied.
        s.method = HttpMethod::Head;
        assert!(judge(b"HTTP/1.0 200 OK\r\n\r\n", false, &s).unwrap().ok);
        assert!(crate::spec::BodyRegex::new("(").is_err());
    }

    #[test]
    fn chunked_body() {
        let mut s = spec();
        s.body_contains = Some("hello world".into());
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert!(judge(resp, false, &s).unwrap().ok);
        assert_eq!(judge(&resp[..60], false, &s), None);
        assert!(
            !judge(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
                &s
            )
            .unwrap()
            .ok
        );
    }

    #[test]
    fn oversized_responses_fail() {
        let mut s = spec();
        s.body_contains = Some("x".into());
        let head = b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n";
        assert!(!judge(head, false, &s).unwrap().ok);
        let mut endless = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        endless.resize(MAX_RESPONSE + 1, b'a');
        let o = judge(&endless, false, &s).unwrap();
        assert!(!o.ok && o.reason.contains("64 KiB"));
        let mut head = b"HTTP/1.0 200 OK\r\nX: ".to_vec();
        head.resize(MAX_RESPONSE + 1, b'a');
        assert!(!judge(&head, false, &s).unwrap().ok);
    }

    proptest::proptest! {
        #[test]
        fn judge_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512), eof: bool) {
            let mut s = spec();
            s.body_contains = Some("OK".into());
            let mut buf = b"HTTP/1.1 200 OK\r\n".to_vec();
            buf.extend_from_slice(&bytes);
            let _ = judge(&buf, eof, &s);
            let _ = judge(&bytes, eof, &s);
        }
    }
}
