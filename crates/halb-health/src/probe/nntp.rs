//! NNTP (ldirectord `nntp`): the greeting must be 200 (posting allowed)
//! or 201 (no posting); then `QUIT` (sent, its reply not awaited). The
//! greeting is one line bounded by [`super::line::MAX_LINE`].

use super::line::{printable, send, LineReader};
use super::smtp::parse_line;
use crate::engine::ProbeOutcome;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The verdict on a greeting line.
pub fn judge_greeting(line: &[u8]) -> ProbeOutcome {
    match parse_line(line) {
        Some((code @ (200 | 201), true, text)) => {
            ProbeOutcome::up(format!("NNTP {code} {}", printable(text)))
        }
        Some((code, _, text)) => ProbeOutcome::down(format!("greeting {code} {}", printable(text))),
        None => ProbeOutcome::down(format!("not an NNTP greeting: {:?}", printable(line))),
    }
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => exchange(stream).await,
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}

/// The conversation over an open stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> ProbeOutcome {
    let mut r = LineReader::new(stream);
    let verdict = match r.line().await {
        Ok(line) => judge_greeting(&line),
        Err(e) => return ProbeOutcome::down(format!("greeting: {e}")),
    };
    let _ = send(r.get_mut(), b"QUIT\r\n").await;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings() {
        assert!(judge_greeting(b"200 news.example InterNetNews server ready").ok);
        assert!(judge_greeting(b"201 no posting").ok);
        let o = judge_greeting(b"400 service temporarily unavailable");
        assert_eq!(o.reason, "greeting 400 service temporarily unavailable");
        assert!(!judge_greeting(b"502 go away").ok);
        assert!(!judge_greeting(b"200-multi").ok);
        assert!(judge_greeting(b"* OK imap").reason.contains("not an NNTP"));
    }

    proptest::proptest! {
        #[test]
        fn judge_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = judge_greeting(&bytes);
        }
    }
}
