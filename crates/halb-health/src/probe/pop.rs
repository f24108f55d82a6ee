//! POP3 (ldirectord `pop`, `pops`): the `+OK` greeting, over TLS from the
//! first byte for pops; with a user, `USER` and `PASS`, each expecting
//! `+OK`; then `QUIT` (sent, its reply not awaited). Each reply is one
//! line bounded by [`super::line::MAX_LINE`].

use super::line::{printable, send, LineReader};
use super::tls::connect;
use crate::engine::ProbeOutcome;
use crate::spec::MailSpec;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// A status line: `Ok(text)` for `+OK`, `Err(text)` for `-ERR`, `None`
/// for anything else.
pub fn parse_status(line: &[u8]) -> Option<Result<String, String>> {
    let text = |rest: &[u8]| printable(rest.strip_prefix(b" ").unwrap_or(rest));
    if let Some(rest) = line.strip_prefix(b"+OK") {
        Some(Ok(text(rest)))
    } else {
        line.strip_prefix(b"-ERR").map(|rest| Err(text(rest)))
    }
}

/// Connects (TLS for pops) and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &MailSpec) -> ProbeOutcome {
    match connect(target, spec.tls.as_ref()).await {
        Ok(stream) => exchange(stream, spec).await,
        Err(e) => ProbeOutcome::down(e),
    }
}

async fn status<S: AsyncRead + Unpin>(r: &mut LineReader<S>, what: &str) -> Result<String, String> {
    let line = r.line().await.map_err(|e| format!("{what}: {e}"))?;
    match parse_status(&line) {
        Some(Ok(text)) => Ok(text),
        Some(Err(text)) => Err(format!("{what}: -ERR {text}")),
        None => Err(format!("{what}: not a POP3 reply: {:?}", printable(&line))),
    }
}

/// The conversation over an open stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    spec: &MailSpec,
) -> ProbeOutcome {
    let mut r = LineReader::new(stream);
    let verdict = conversation(&mut r, spec).await;
    let _ = send(r.get_mut(), b"QUIT\r\n").await;
    match verdict {
        Ok(o) => o,
        Err(e) => ProbeOutcome::down(e),
    }
}

async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut LineReader<S>,
    spec: &MailSpec,
) -> Result<ProbeOutcome, String> {
    status(r, "greeting").await?;
    let Some(user) = &spec.username else {
        return Ok(ProbeOutcome::up("POP3 greeting +OK"));
    };
    let password = spec.password.as_deref().unwrap_or("");
    if [user.as_str(), password]
        .iter()
        .any(|s| s.contains(['\r', '\n']))
    {
        return Err("the user or password has CR or LF".to_owned());
    }
    send(r.get_mut(), format!("USER {user}\r\n").as_bytes()).await?;
    status(r, "USER").await?;
    send(r.get_mut(), format!("PASS {password}\r\n").as_bytes()).await?;
    status(r, &format!("PASS for {user}")).await?;
    Ok(ProbeOutcome::up(format!("POP3 login {user} +OK")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn statuses() {
        assert_eq!(
            parse_status(b"+OK Dovecot ready."),
            Some(Ok("Dovecot ready.".into()))
        );
        assert_eq!(parse_status(b"+OK"), Some(Ok(String::new())));
        assert_eq!(
            parse_status(b"-ERR [AUTH] Authentication failed."),
            Some(Err("[AUTH] Authentication failed.".into()))
        );
        assert_eq!(parse_status(b"* OK imap"), None);
    }

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
        let spec = MailSpec {
            username: Some("u".into()),
            password: Some("p".into()),
            tls: None,
        };
        exchange(client, &spec).await
    }

    #[tokio::test]
    async fn conversations() {
        let o = script(b"+OK hi\r\n", &[b"+OK\r\n", b"+OK Logged in.\r\n"]).await;
        assert!(o.ok, "{o:?}");
        let o = script(b"+OK hi\r\n", &[b"+OK\r\n", b"-ERR [AUTH] failed.\r\n"]).await;
        assert_eq!(o.reason, "PASS for u: -ERR [AUTH] failed.");
        let o = script(b"* OK imap\r\n", &[]).await;
        assert!(o.reason.contains("not a POP3 reply"), "{o:?}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_status(&bytes);
        }
    }
}
