//! SMTP: the 220 greeting (multi-line `220-` accepted), `EHLO name`
//! expecting 250, `HELO name` when EHLO gets a 5xx, then `QUIT` (sent, its
//! reply not awaited). Replies are read bounded: at most [`MAX_LINES`]
//! lines of [`super::line::MAX_LINE`] bytes each.

use super::line::{printable, LineReader};
use crate::engine::ProbeOutcome;
use crate::spec::SmtpSpec;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Most lines of one multi-line reply.
pub const MAX_LINES: usize = 64;

/// One reply line: its code, whether it is the last line, its text.
pub fn parse_line(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    let code = line.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Some((code, true, b"")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// Reads one whole reply: its code and the text of its last line.
async fn reply<S: AsyncRead + Unpin>(r: &mut LineReader<S>) -> Result<(u16, String), String> {
    for _ in 0..MAX_LINES {
        let line = r.line().await?;
        let (code, last, text) = parse_line(&line)
            .ok_or_else(|| format!("not an SMTP reply: {:?}", printable(&line)))?;
        if last {
            return Ok((code, printable(text)));
        }
    }
    Err(format!("reply longer than {MAX_LINES} lines"))
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &SmtpSpec) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => exchange(stream, spec).await,
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}

/// The conversation over an open stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    spec: &SmtpSpec,
) -> ProbeOutcome {
    let mut r = LineReader::new(stream);
    match reply(&mut r).await {
        Ok((220, _)) => {}
        Ok((code, text)) => return ProbeOutcome::down(format!("greeting {code} {text}")),
        Err(e) => return ProbeOutcome::down(format!("greeting: {e}")),
    }
    let mut verdict = None;
    for verb in ["EHLO", "HELO"] {
        if let Err(e) = send(r.get_mut(), &format!("{verb} {}\r\n", spec.helo_name)).await {
            return ProbeOutcome::down(e);
        }
        match reply(&mut r).await {
            Ok((250, _)) => {
                verdict = Some(ProbeOutcome::up(format!("SMTP 250 to {verb}")));
                break;
            }
            Ok((code @ 500..=599, text)) if verb == "EHLO" => {
                verdict = Some(ProbeOutcome::down(format!("{verb}: {code} {text}")));
            }
            Ok((code, text)) => {
                verdict = Some(ProbeOutcome::down(format!("{verb}: {code} {text}")));
                break;
            }
            Err(e) => return ProbeOutcome::down(format!("{verb}: {e}")),
        }
    }
    // Polite, not awaited: the verdict is known.
    let _ = send(r.get_mut(), "QUIT\r\n").await;
    verdict.unwrap_or_else(|| ProbeOutcome::down("no reply"))
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, text: &str) -> Result<(), String> {
    s.write_all(text.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    s.flush().await.map_err(|e| format!("send: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_line(b"220 mx ESMTP"),
            Some((220, true, &b"mx ESMTP"[..]))
        );
        assert_eq!(parse_line(b"220-first"), Some((220, false, &b"first"[..])));
        assert_eq!(parse_line(b"250"), Some((250, true, &b""[..])));
        assert_eq!(parse_line(b"25"), None);
        assert_eq!(parse_line(b"2x0 no"), None);
        assert_eq!(parse_line(b"220/x"), None);
    }

    /// A scripted server: answers each command with the next reply.
    async fn script(greeting: &'static [u8], replies: &'static [&'static [u8]]) -> ProbeOutcome {
        let (client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            server.write_all(greeting).await.unwrap();
            let mut buf = [0u8; 256];
            for r in replies {
                if server.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                server.write_all(r).await.unwrap();
            }
            let _ = server.read(&mut buf).await;
        });
        exchange(client, &SmtpSpec::default()).await
    }

    #[tokio::test]
    async fn conversations() {
        let o = script(
            b"220-mx.example\r\n220 ESMTP ready\r\n",
            &[b"250-mx\r\n250 SIZE 1000\r\n"],
        )
        .await;
        assert!(o.ok, "{o:?}");
        let o = script(b"220 old\r\n", &[b"502 what?\r\n", b"250 hi\r\n"]).await;
        assert!(o.ok && o.reason.contains("HELO"), "{o:?}");
        let o = script(b"554 go away\r\n", &[]).await;
        assert_eq!((o.ok, o.reason.as_str()), (false, "greeting 554 go away"));
        let o = script(b"220 ok\r\n", &[b"421 busy\r\n"]).await;
        assert!(!o.ok && o.reason.contains("421"), "{o:?}");
        let o = script(b"SSH-2.0-OpenSSH\r\n", &[]).await;
        assert!(!o.ok && o.reason.contains("not an SMTP reply"), "{o:?}");
    }
}
