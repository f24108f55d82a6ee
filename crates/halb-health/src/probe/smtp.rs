//! SMTP: the 220 greeting (multi-line `220-` accepted), `EHLO name`
//! expecting 250, `HELO name` when EHLO gets a 5xx, then `QUIT` (sent, its
//! reply not awaited). Submission (ldirectord `submission`, port 587):
//! when the EHLO reply offers `STARTTLS`, `STARTTLS` expecting 220, the
//! TLS handshake, and `EHLO` again expecting 250. Replies are read bounded: at most [`MAX_LINES`]
//! lines of [`super::line::MAX_LINE`] bytes each.

use super::line::{printable, LineReader};
use crate::engine::ProbeOutcome;
use crate::spec::SmtpSpec;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
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

/// One whole reply: its code, the text of its last line, and whether a
/// line offers `STARTTLS` (an EHLO keyword).
struct Reply {
    code: u16,
    text: String,
    starttls: bool,
}

/// Reads one whole reply.
async fn reply<S: AsyncRead + Unpin>(r: &mut LineReader<S>) -> Result<Reply, String> {
    let mut starttls = false;
    for _ in 0..MAX_LINES {
        let line = r.line().await?;
        let (code, last, text) = parse_line(&line)
            .ok_or_else(|| format!("not an SMTP reply: {:?}", printable(&line)))?;
        starttls |= offers_starttls(text);
        if last {
            return Ok(Reply {
                code,
                text: printable(text),
                starttls,
            });
        }
    }
    Err(format!("reply longer than {MAX_LINES} lines"))
}

/// Whether an EHLO reply line's text is the `STARTTLS` keyword.
pub fn offers_starttls(text: &[u8]) -> bool {
    let word = text.split(|&b| b == b' ').next().unwrap_or(b"");
    word.eq_ignore_ascii_case(b"STARTTLS")
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &SmtpSpec) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => exchange(stream, target, spec).await,
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}

/// The conversation over an open stream; `target` names the server for
/// a STARTTLS handshake without a configured name.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    target: SocketAddr,
    spec: &SmtpSpec,
) -> ProbeOutcome {
    let mut r = LineReader::new(stream);
    match reply(&mut r).await {
        Ok(Reply { code: 220, .. }) => {}
        Ok(Reply { code, text, .. }) => {
            return ProbeOutcome::down(format!("greeting {code} {text}"))
        }
        Err(e) => return ProbeOutcome::down(format!("greeting: {e}")),
    }
    let (verdict, offered) = hello(&mut r, spec).await;
    let Some(tls) = spec.starttls.as_ref().filter(|_| verdict.ok && offered) else {
        // Polite, not awaited: the verdict is known.
        let _ = send(r.get_mut(), "QUIT\r\n").await;
        return verdict;
    };
    if let Err(e) = send(r.get_mut(), "STARTTLS\r\n").await {
        return ProbeOutcome::down(e);
    }
    match reply(&mut r).await {
        Ok(Reply { code: 220, .. }) => {}
        Ok(Reply { code, text, .. }) => {
            return ProbeOutcome::down(format!("STARTTLS: {code} {text}"))
        }
        Err(e) => return ProbeOutcome::down(format!("STARTTLS: {e}")),
    }
    let plain = match r.into_inner() {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(e),
    };
    let stream = match super::tls::upgrade(plain, tls, target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(format!("STARTTLS: {e}")),
    };
    let mut r = LineReader::new(stream);
    let (verdict, _) = hello(
        &mut r,
        &SmtpSpec {
            starttls: None,
            ..spec.clone()
        },
    )
    .await;
    let _ = send(r.get_mut(), "QUIT\r\n").await;
    if verdict.ok {
        ProbeOutcome::up(format!("{} after STARTTLS", verdict.reason))
    } else {
        ProbeOutcome::down(format!("after STARTTLS: {}", verdict.reason))
    }
}

/// `EHLO` (then `HELO` when EHLO gets a 5xx): the verdict, and whether
/// the EHLO reply offered STARTTLS.
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut LineReader<S>,
    spec: &SmtpSpec,
) -> (ProbeOutcome, bool) {
    let mut verdict = ProbeOutcome::down("no reply");
    for verb in ["EHLO", "HELO"] {
        if let Err(e) = send(r.get_mut(), &format!("{verb} {}\r\n", spec.helo_name)).await {
            return (ProbeOutcome::down(e), false);
        }
        match reply(r).await {
            Ok(Reply {
                code: 250,
                starttls,
                ..
            }) => return (ProbeOutcome::up(format!("SMTP 250 to {verb}")), starttls),
            Ok(Reply {
                code: code @ 500..=599,
                text,
                ..
            }) if verb == "EHLO" => {
                verdict = ProbeOutcome::down(format!("{verb}: {code} {text}"));
            }
            Ok(Reply { code, text, .. }) => {
                return (ProbeOutcome::down(format!("{verb}: {code} {text}")), false)
            }
            Err(e) => return (ProbeOutcome::down(format!("{verb}: {e}")), false),
        }
    }
    (verdict, false)
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, text: &str) -> Result<(), String> {
    super::line::send(s, text.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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
        assert!(offers_starttls(b"STARTTLS"));
        assert!(offers_starttls(b"starttls"));
        assert!(!offers_starttls(b"SIZE 1000"));
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
        exchange(
            client,
            SocketAddr::from(([127, 0, 0, 1], 25)),
            &SmtpSpec::default(),
        )
        .await
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
