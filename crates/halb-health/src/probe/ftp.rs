//! FTP (ldirectord `ftp`): the 220 banner, `USER` (331 → `PASS`, or 230
//! at once), then optionally `TYPE I`, `EPSV` (or `PASV` when EPSV is
//! refused) and `RETR` of a file whose first
//! [`SIMPLETCP_MAX_REPLY`] bytes must match a regular expression, then
//! `QUIT` (sent, its reply not awaited). The data connection goes to the
//! control connection's IP address whatever `PASV` says (a server
//! behind NAT, or one that points elsewhere, is not followed). Replies
//! are read bounded: at most [`super::smtp::MAX_LINES`] lines of
//! [`super::line::MAX_LINE`] bytes.

use super::line::{printable, send, LineReader};
use super::smtp::{parse_line, MAX_LINES};
use crate::engine::ProbeOutcome;
use crate::spec::{default_ftp_password, FtpSpec, SIMPLETCP_MAX_REPLY};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::TcpStream;

/// Reads one reply (RFC 959 multi-line: `ddd-` first, text lines, `ddd `
/// last): its code and the text of its first line.
pub async fn reply<S: AsyncRead + Unpin>(r: &mut LineReader<S>) -> Result<(u16, String), String> {
    let first = r.line().await?;
    let (code, last, text) =
        parse_line(&first).ok_or_else(|| format!("not an FTP reply: {:?}", printable(&first)))?;
    let text = printable(text);
    if last {
        return Ok((code, text));
    }
    for _ in 0..MAX_LINES {
        let line = r.line().await?;
        if let Some((c, true, _)) = parse_line(&line) {
            if c == code {
                return Ok((code, text));
            }
        }
    }
    Err(format!("reply longer than {MAX_LINES} lines"))
}

/// The data port of a `229 Entering Extended Passive Mode (|||port|)`
/// reply's text.
pub fn parse_epsv(text: &str) -> Option<u16> {
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    let d = inner.chars().next()?;
    let fields: Vec<&str> = inner.split(d).collect();
    match fields.as_slice() {
        ["", "", "", port, ""] => port.parse().ok().filter(|&p| p != 0),
        _ => None,
    }
}

/// The data port of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`
/// reply's text (the address is ignored).
pub fn parse_pasv(text: &str) -> Option<u16> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let nums: Vec<u16> = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .take(6)
        .map(|n| n.parse::<u16>().ok().filter(|&v| v <= 255))
        .collect::<Option<Vec<u16>>>()?;
    match nums.as_slice() {
        [_, _, _, _, hi, lo] => Some(hi * 256 + lo).filter(|&p| p != 0),
        _ => None,
    }
}

/// The verdict on a retrieved file.
pub fn judge_file(data: &[u8], spec: &FtpSpec, file: &str) -> ProbeOutcome {
    match &spec.expect {
        Some(re) if !re.is_match(data) => ProbeOutcome::down(format!(
            "RETR {file}: content does not match /{}/: {:?}",
            re.as_str(),
            printable(&data[..data.len().min(120)])
        )),
        _ => ProbeOutcome::up(format!("FTP RETR {file}: {} bytes", data.len())),
    }
}

/// This host's name, for ldirectord's default password.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &FtpSpec) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => exchange(stream, target, spec).await,
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}

/// A command and its reply; `Err` is the reason of a failure.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut LineReader<S>,
    text: &str,
    what: &str,
) -> Result<(u16, String), String> {
    send(r.get_mut(), format!("{text}\r\n").as_bytes())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    reply(r).await.map_err(|e| format!("{what}: {e}"))
}

/// The conversation over an open control connection; `target`'s IP is
/// where the data connection goes.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    target: SocketAddr,
    spec: &FtpSpec,
) -> ProbeOutcome {
    let mut r = LineReader::new(stream);
    let verdict = conversation(&mut r, target, spec).await;
    let _ = send(r.get_mut(), b"QUIT\r\n").await;
    match verdict {
        Ok(o) => o,
        Err(e) => ProbeOutcome::down(e),
    }
}

async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut LineReader<S>,
    target: SocketAddr,
    spec: &FtpSpec,
) -> Result<ProbeOutcome, String> {
    match reply(r).await.map_err(|e| format!("banner: {e}"))? {
        (220, _) => {}
        (code, text) => return Err(format!("banner {code} {text}")),
    }
    let user = &spec.username;
    match command(r, &format!("USER {user}"), "USER").await? {
        (230, _) => {}
        (331 | 332, _) => {
            let password = spec
                .password
                .clone()
                .unwrap_or_else(|| default_ftp_password(&hostname()));
            match command(r, &format!("PASS {password}"), "PASS").await? {
                (230 | 202, _) => {}
                (code, text) => return Err(format!("login as {user}: {code} {text}")),
            }
        }
        (code, text) => return Err(format!("USER {user}: {code} {text}")),
    }
    let Some(file) = &spec.retrieve else {
        return Ok(ProbeOutcome::up(format!("FTP logged in as {user}")));
    };
    match command(r, "TYPE I", "TYPE").await? {
        (200, _) => {}
        (code, text) => return Err(format!("TYPE I: {code} {text}")),
    }
    let port = match command(r, "EPSV", "EPSV").await? {
        (229, text) => parse_epsv(&text).ok_or_else(|| format!("EPSV: bad reply {text:?}"))?,
        (500..=599, _) if target.is_ipv4() => match command(r, "PASV", "PASV").await? {
            (227, text) => parse_pasv(&text).ok_or_else(|| format!("PASV: bad reply {text:?}"))?,
            (code, text) => return Err(format!("PASV: {code} {text}")),
        },
        (code, text) => return Err(format!("EPSV: {code} {text}")),
    };
    let data_addr = SocketAddr::new(target.ip(), port);
    let mut data = TcpStream::connect(data_addr)
        .await
        .map_err(|e| format!("data connection to {data_addr}: {e}"))?;
    match command(r, &format!("RETR {file}"), "RETR").await? {
        (125 | 150, _) => {}
        (code, text) => return Err(format!("RETR {file}: {code} {text}")),
    }
    let mut buf = Vec::with_capacity(1024);
    loop {
        let room = SIMPLETCP_MAX_REPLY.saturating_sub(buf.len());
        if room == 0 {
            // Enough to judge; the rest is not read.
            break;
        }
        match (&mut data).take(room as u64).read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("RETR {file}: data: {e}")),
        }
    }
    let complete = buf.len() < SIMPLETCP_MAX_REPLY;
    drop(data);
    if complete {
        match reply(r).await.map_err(|e| format!("RETR {file}: {e}"))? {
            (226 | 250, _) => {}
            (code, text) => return Err(format!("RETR {file}: {code} {text}")),
        }
    }
    Ok(judge_file(&buf, spec, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BodyRegex;
    use tokio::io::AsyncWriteExt as _;

    #[test]
    fn passive_replies() {
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||40123|)"),
            Some(40123)
        );
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (!!!21!)"),
            Some(21)
        );
        assert_eq!(parse_epsv("(|||0|)"), None);
        assert_eq!(parse_epsv("(|||x|)"), None);
        assert_eq!(parse_epsv("no parens"), None);
        assert_eq!(
            parse_pasv("Entering Passive Mode (127,0,0,1,156,64)."),
            Some(156 * 256 + 64)
        );
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,300,64)"), None);
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1)"), None);
    }

    #[test]
    fn file_verdict() {
        let spec = FtpSpec {
            expect: Some(BodyRegex::new("^hello").unwrap()),
            ..FtpSpec::default()
        };
        assert!(judge_file(b"hello world", &spec, "f").ok);
        let o = judge_file(b"bye", &spec, "f");
        assert!(!o.ok && o.reason.contains("does not match"), "{o:?}");
        assert!(judge_file(b"", &FtpSpec::default(), "f").ok);
    }

    /// A scripted server: a greeting, then one reply per command.
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
        let target = SocketAddr::from(([127, 0, 0, 1], 21));
        exchange(client, target, &FtpSpec::default()).await
    }

    #[tokio::test]
    async fn conversations() {
        let o = script(
            b"220-Welcome\r\nfree text\r\n220 ready\r\n",
            &[b"331 password\r\n", b"230 in\r\n"],
        )
        .await;
        assert!(o.ok, "{o:?}");
        let o = script(b"220 hi\r\n", &[b"331 pw\r\n", b"530 Login incorrect.\r\n"]).await;
        assert_eq!(o.reason, "login as anonymous: 530 Login incorrect.");
        let o = script(b"421 too many\r\n", &[]).await;
        assert_eq!(o.reason, "banner 421 too many");
        let o = script(b"SSH-2.0-x\r\n", &[]).await;
        assert!(o.reason.contains("not an FTP reply"), "{o:?}");
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,200}") {
            let _ = parse_epsv(&s);
            let _ = parse_pasv(&s);
        }
    }
}
