//! IMAP (ldirectord `imap`, `imaps`): the greeting `* OK` (or `* PREAUTH`),
//! over TLS from the first byte for imaps; with a user, `a1 LOGIN` with
//! quoted strings, expecting `a1 OK`; then `a2 LOGOUT` (sent, its reply
//! not awaited). Untagged lines before a tagged reply are skipped, at most
//! [`super::smtp::MAX_LINES`] of them, each bounded by
//! [`super::line::MAX_LINE`].

use super::line::{printable, send, LineReader};
use super::smtp::MAX_LINES;
use super::tls::connect;
use crate::engine::ProbeOutcome;
use crate::spec::MailSpec;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// The state of a greeting or a tagged reply: `OK`, `NO`, `BAD`,
/// `PREAUTH`, `BYE`, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok(String),
    PreAuth(String),
    No(String),
    Bad(String),
    Bye(String),
}

/// One response line: `Some((tag, status))` for a status response (`*`
/// for untagged), `None` for any other line (data, or garbage).
pub fn parse_line(line: &[u8]) -> Option<(&[u8], Status)> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let (tag, rest) = (&line[..sp], &line[sp + 1..]);
    if tag.is_empty() {
        return None;
    }
    let word_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let word = rest[..word_end].to_ascii_uppercase();
    let text = printable(rest.get(word_end + 1..).unwrap_or(b""));
    let status = match word.as_slice() {
        b"OK" => Status::Ok(text),
        b"PREAUTH" => Status::PreAuth(text),
        b"NO" => Status::No(text),
        b"BAD" => Status::Bad(text),
        b"BYE" => Status::Bye(text),
        _ => return None,
    };
    Some((tag, status))
}

/// An IMAP quoted string: `"` and `\` escaped. `None` for CR, LF or NUL,
/// which a quoted string cannot carry.
pub fn quoted(s: &str) -> Option<String> {
    if s.contains(['\r', '\n', '\0']) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// Connects (TLS for imaps) and checks. No timeout of its own: the
/// caller ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &MailSpec) -> ProbeOutcome {
    match connect(target, spec.tls.as_ref()).await {
        Ok(stream) => exchange(stream, spec).await,
        Err(e) => ProbeOutcome::down(e),
    }
}

/// The tagged reply to `tag`, skipping untagged lines (a `* BYE` ends it).
async fn tagged<S: AsyncRead + Unpin>(r: &mut LineReader<S>, tag: &[u8]) -> Result<Status, String> {
    for _ in 0..MAX_LINES {
        let line = r.line().await?;
        match parse_line(&line) {
            Some((t, status)) if t == tag => return Ok(status),
            Some((b"*", Status::Bye(text))) => return Err(format!("BYE {text}")),
            _ => {}
        }
    }
    Err(format!("no tagged reply within {MAX_LINES} lines"))
}

/// The conversation over an open stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    spec: &MailSpec,
) -> ProbeOutcome {
    let mut r = LineReader::new(stream);
    let greeting = match r.line().await {
        Ok(line) => line,
        Err(e) => return ProbeOutcome::down(format!("greeting: {e}")),
    };
    let preauth = match parse_line(&greeting) {
        Some((b"*", Status::Ok(_))) => false,
        Some((b"*", Status::PreAuth(_))) => true,
        Some((b"*", Status::Bye(text))) => {
            return ProbeOutcome::down(format!("greeting BYE {text}"))
        }
        _ => {
            return ProbeOutcome::down(format!("not an IMAP greeting: {:?}", printable(&greeting)))
        }
    };
    let verdict = match (&spec.username, preauth) {
        (Some(user), false) => login(&mut r, user, spec.password.as_deref().unwrap_or("")).await,
        (Some(_), true) => ProbeOutcome::up("IMAP PREAUTH greeting"),
        (None, _) => ProbeOutcome::up("IMAP greeting OK"),
    };
    let _ = send(r.get_mut(), b"a2 LOGOUT\r\n").await;
    verdict
}

async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut LineReader<S>,
    user: &str,
    password: &str,
) -> ProbeOutcome {
    let (Some(u), Some(p)) = (quoted(user), quoted(password)) else {
        return ProbeOutcome::down("LOGIN: the user or password has CR, LF or NUL");
    };
    if let Err(e) = send(r.get_mut(), format!("a1 LOGIN {u} {p}\r\n").as_bytes()).await {
        return ProbeOutcome::down(format!("LOGIN: {e}"));
    }
    match tagged(r, b"a1").await {
        Ok(Status::Ok(_)) => ProbeOutcome::up(format!("IMAP LOGIN {user} OK")),
        Ok(Status::No(text) | Status::Bad(text)) => {
            ProbeOutcome::down(format!("LOGIN {user}: {text}"))
        }
        Ok(other) => ProbeOutcome::down(format!("LOGIN {user}: unexpected {other:?}")),
        Err(e) => ProbeOutcome::down(format!("LOGIN {user}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn lines() {
        assert_eq!(
            parse_line(b"* OK [CAPABILITY IMAP4rev1] Dovecot ready."),
            Some((
                &b"*"[..],
                Status::Ok("[CAPABILITY IMAP4rev1] Dovecot ready.".into())
            ))
        );
        assert_eq!(
            parse_line(b"a1 no [AUTHENTICATIONFAILED] x"),
            Some((&b"a1"[..], Status::No("[AUTHENTICATIONFAILED] x".into())))
        );
        assert_eq!(
            parse_line(b"* BYE"),
            Some((&b"*"[..], Status::Bye(String::new())))
        );
        assert_eq!(parse_line(b"* 3 EXISTS"), None);
        assert_eq!(parse_line(b"garbage"), None);
        assert_eq!(parse_line(b" OK"), None);
        assert_eq!(quoted("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted("a\r\nb"), None);
    }

    async fn script(
        greeting: &'static [u8],
        replies: &'static [&'static [u8]],
        spec: MailSpec,
    ) -> ProbeOutcome {
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
        exchange(client, &spec).await
    }

    #[tokio::test]
    async fn conversations() {
        let user = MailSpec {
            username: Some("u".into()),
            password: Some("p".into()),
            tls: None,
        };
        let o = script(b"* OK ready\r\n", &[], MailSpec::default()).await;
        assert!(o.ok, "{o:?}");
        let o = script(
            b"* OK ready\r\n",
            &[b"* CAPABILITY IMAP4rev1\r\na1 OK Logged in\r\n"],
            user.clone(),
        )
        .await;
        assert!(o.ok, "{o:?}");
        let o = script(
            b"* OK ready\r\n",
            &[b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"],
            user.clone(),
        )
        .await;
        assert_eq!(
            o.reason,
            "LOGIN u: [AUTHENTICATIONFAILED] Authentication failed."
        );
        let o = script(b"* BYE shutting down\r\n", &[], MailSpec::default()).await;
        assert_eq!(o.reason, "greeting BYE shutting down");
        let o = script(b"+OK pop3\r\n", &[], MailSpec::default()).await;
        assert!(o.reason.contains("not an IMAP greeting"), "{o:?}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_line(&bytes);
        }
    }
}
