//! Redis: `AUTH` (when a password is set; `AUTH username password` for an
//! ACL user), then `PING`; up on `+PONG`. Replies are single RESP lines,
//! read bounded by [`super::line::MAX_LINE`].

use super::line::{printable, LineReader};
use crate::engine::ProbeOutcome;
use crate::spec::RedisSpec;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A RESP array of bulk strings.
pub fn command(words: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
        out.extend_from_slice(w);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &RedisSpec) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => exchange(stream, spec).await,
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}

/// The conversation over an open stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    spec: &RedisSpec,
) -> ProbeOutcome {
    let mut r = LineReader::new(stream);
    if let Some(password) = &spec.password {
        let mut words: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &spec.username {
            words.push(user.as_bytes());
        }
        words.push(password.as_bytes());
        if let Err(e) = send(r.get_mut(), &command(&words)).await {
            return ProbeOutcome::down(e);
        }
        match r.line().await {
            Ok(line) if line.starts_with(b"+") => {}
            Ok(line) if line.starts_with(b"-") => {
                return ProbeOutcome::down(format!("AUTH: {}", printable(&line[1..])))
            }
            Ok(line) => {
                return ProbeOutcome::down(format!("AUTH: unexpected reply {:?}", printable(&line)))
            }
            Err(e) => return ProbeOutcome::down(format!("AUTH: {e}")),
        }
    }
    if let Err(e) = send(r.get_mut(), &command(&[b"PING"])).await {
        return ProbeOutcome::down(e);
    }
    judge_ping(r.line().await)
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> Result<(), String> {
    s.write_all(bytes).await.map_err(|e| format!("send: {e}"))?;
    s.flush().await.map_err(|e| format!("send: {e}"))
}

/// The verdict on the reply to `PING`.
pub fn judge_ping(reply: Result<Vec<u8>, String>) -> ProbeOutcome {
    match reply {
        Ok(line) if line == b"+PONG" => ProbeOutcome::up("PONG"),
        // `-NOAUTH Authentication required.`, `-LOADING …`, `-MASTERDOWN …`
        Ok(line) if line.starts_with(b"-") => ProbeOutcome::down(printable(&line[1..])),
        Ok(line) => ProbeOutcome::down(format!("unexpected reply {:?}", printable(&line))),
        Err(e) => ProbeOutcome::down(format!("PING: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_encoding() {
        assert_eq!(command(&[b"PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            command(&[b"AUTH", b"u", b"p w"]),
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$3\r\np w\r\n"
        );
    }

    #[test]
    fn ping_replies() {
        assert!(judge_ping(Ok(b"+PONG".to_vec())).ok);
        let o = judge_ping(Ok(b"-NOAUTH Authentication required.".to_vec()));
        assert_eq!(
            (o.ok, o.reason.as_str()),
            (false, "NOAUTH Authentication required.")
        );
        assert!(!judge_ping(Ok(b"$4".to_vec())).ok);
        assert!(!judge_ping(Err("connection closed".into())).ok);
    }

    #[tokio::test]
    async fn auth_refused_is_down_with_the_reason() {
        let (client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            let mut buf = [0u8; 256];
            let _ = server.read(&mut buf).await;
            let _ = server
                .write_all(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                .await;
        });
        let spec = RedisSpec {
            username: Some("app".into()),
            password: Some("nope".into()),
        };
        let o = exchange(client, &spec).await;
        assert!(!o.ok && o.reason.starts_with("AUTH: WRONGPASS"), "{o:?}");
    }
}
