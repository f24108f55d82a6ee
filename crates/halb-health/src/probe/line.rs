//! Bounded CRLF line reading for the line-based probes (redis, smtp,
//! ftp, imap, pop, nntp), and [`send`] for their commands.

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Longest line accepted (without its line end); a longer one fails the
/// probe.
pub const MAX_LINE: usize = 1024;

/// Reads lines from `stream`, never holding more than [`MAX_LINE`] + 2
/// bytes plus one read's worth.
#[derive(Debug)]
pub struct LineReader<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> LineReader<S> {
    pub fn new(stream: S) -> Self {
        LineReader {
            stream,
            buf: Vec::with_capacity(256),
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream back, for a TLS upgrade (STARTTLS). `Err` when the
    /// server already sent bytes past the last line read: they would be
    /// plaintext injected before the handshake.
    pub fn into_inner(self) -> Result<S, String> {
        if self.buf.is_empty() {
            Ok(self.stream)
        } else {
            Err("data after the reply to STARTTLS".to_owned())
        }
    }

    /// The next line, without `\r\n` (a bare `\n` is accepted too).
    /// `Err` with a reason on close, read error or an over-long line.
    pub async fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > MAX_LINE {
                    return Err(format!("line longer than {MAX_LINE} bytes"));
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE + 1 {
                return Err(format!("line longer than {MAX_LINE} bytes"));
            }
            let mut chunk = [0u8; 512];
            let n = match self.stream.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) => return Err(format!("read: {e}")),
            };
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    "connection closed".to_owned()
                } else {
                    "connection closed mid-line".to_owned()
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Writes `text` and flushes; the error names the step.
pub async fn send<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, text: &[u8]) -> Result<(), String> {
    use tokio::io::AsyncWriteExt as _;
    s.write_all(text).await.map_err(|e| format!("send: {e}"))?;
    s.flush().await.map_err(|e| format!("send: {e}"))
}

/// Server text made safe for a log line: control characters replaced,
/// at most 200 characters.
pub fn printable(bytes: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(200)
        .collect();
    s.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_and_limits() {
        let data: &[u8] = b"+PONG\r\nbare\nlast";
        let mut r = LineReader::new(data);
        assert_eq!(r.line().await.unwrap(), b"+PONG");
        assert_eq!(r.line().await.unwrap(), b"bare");
        assert_eq!(r.line().await.unwrap_err(), "connection closed mid-line");
        let long = vec![b'a'; MAX_LINE * 3];
        let mut r = LineReader::new(&long[..]);
        assert!(r.line().await.unwrap_err().contains("longer"));
        assert_eq!(printable(b"ok\x1b[31m \x07"), "ok?[31m ?");
    }
}
