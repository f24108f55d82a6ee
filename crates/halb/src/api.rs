//! The HTTP API beyond the read-only GETs of `http.rs`:
//!
//! * `GET /api/v1/events`: server-sent events, one `status` event (the
//!   JSON of `/api/v1/status`) when the page connects and then whenever
//!   it changed, checked once a second; a comment every 15 s keeps the
//!   connection within the idle timeout. A stream ends after
//!   [`STREAM_LIFE`] (below the connection's lifetime) and the browser's
//!   `EventSource` reconnects after `retry`.
//! * `POST /api/v1/command`: the same JSON requests as the control socket
//!   (`{"cmd":"real","service":…,"real":…,"action":"drain"}`,
//!   `{"cmd":"standby","on":true}`, …), answered with the control
//!   socket's JSON response. Refused (403) unless `[global] http_token`
//!   is set and the request carries `Authorization: Bearer TOKEN`
//!   (compared in constant time); a hand-over and the read requests are
//!   refused here (they are GETs or the control socket's own). Each
//!   accepted command is logged with the client's address.

use crate::control::{Asker, Request as ControlRequest, Response as ControlResponse};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::{header, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

/// The body of every HTTP response.
pub type Body = BoxBody<Bytes, Infallible>;

/// How long one event stream lasts (the connection lives 60 s).
pub const STREAM_LIFE: Duration = Duration::from_secs(50);
/// How often the stream looks for a change.
const TICK: Duration = Duration::from_secs(1);
/// A keep-alive comment at least this often.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Largest command body.
const MAX_COMMAND: usize = 64 * 1024;

pub fn full(status: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    full(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// `GET /api/v1/events`.
pub fn events(handler: &Asker) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let reader = handler.reader.clone();
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut last: Option<Vec<u8>> = None;
        let mut last_sent = start;
        if tx
            .send(Bytes::from_static(b"retry: 1000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        while start.elapsed() < STREAM_LIFE {
            let status = reader.fresh_status().await;
            let Ok(json) = serde_json::to_vec(&status) else {
                break;
            };
            let now = tokio::time::Instant::now();
            let frame = if last.as_ref() != Some(&json) {
                let mut f = Vec::with_capacity(json.len() + 24);
                f.extend_from_slice(b"event: status\ndata: ");
                f.extend_from_slice(&json);
                f.extend_from_slice(b"\n\n");
                last = Some(json);
                Some(f)
            } else if now.duration_since(last_sent) >= KEEPALIVE {
                Some(b": keep-alive\n\n".to_vec())
            } else {
                None
            };
            if let Some(f) = frame {
                if tx.send(Bytes::from(f)).await.is_err() {
                    return; // the client went away
                }
                last_sent = now;
            }
            tokio::time::sleep(TICK).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// Whether `got` equals `want`, in time independent of where they differ.
fn same_token(got: &[u8], want: &[u8]) -> bool {
    let mut diff = u8::from(got.len() != want.len());
    for (i, w) in want.iter().enumerate() {
        diff |= got.get(i).copied().unwrap_or(0) ^ w;
    }
    diff == 0
}

/// Why a command is refused, if it is (before its body is read).
pub fn authorize(
    headers: &header::HeaderMap,
    token: Option<&str>,
) -> Result<(), Box<Response<Body>>> {
    let Some(token) = token else {
        return Err(Box::new(text(
            StatusCode::FORBIDDEN,
            "writes are off: set [global] http_token to use the dashboard's buttons and POST /api/v1/command\n",
        )));
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match got {
        Some(g) if same_token(g.trim().as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(Box::new(text(StatusCode::FORBIDDEN, "wrong token\n"))),
        None => {
            let mut r = text(
                StatusCode::UNAUTHORIZED,
                "a command needs Authorization: Bearer TOKEN (the http_token of the config)\n",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            Err(Box::new(r))
        }
    }
}

/// `POST /api/v1/command`.
pub async fn command(
    req: Request<hyper::body::Incoming>,
    handler: &Asker,
    token: Option<&str>,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    if let Err(r) = authorize(req.headers(), token) {
        tracing::warn!(client = ?peer, "HTTP command refused: {}", r.status());
        return *r;
    }
    let body = match Limited::new(req.into_body(), MAX_COMMAND).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("reading the command: {e} (at most {MAX_COMMAND} bytes)\n"),
            )
        }
    };
    let request: ControlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("bad command: {e}\n")),
    };
    if matches!(
        request,
        ControlRequest::Handover | ControlRequest::Status | ControlRequest::Connections
    ) {
        return text(
            StatusCode::BAD_REQUEST,
            "not a command: GET /api/v1/status or /api/v1/connections; a hand-over is the control socket's\n",
        );
    }
    tracing::info!(client = ?peer, "HTTP command: {request:?}");
    let response = handler.ask(request).await;
    let status = match response {
        ControlResponse::Error { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    match serde_json::to_vec(&response) {
        Ok(b) => full(status, "application/json", b),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
    }

    #[test]
    fn commands_need_the_configured_token() {
        let mut h = header::HeaderMap::new();
        assert_eq!(
            authorize(&h, None).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            authorize(&h, Some("0123456789abcdef"))
                .unwrap_err()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Bearer nope-nope-nope-nope"),
        );
        assert_eq!(
            authorize(&h, Some("0123456789abcdef"))
                .unwrap_err()
                .status(),
            StatusCode::FORBIDDEN
        );
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Bearer 0123456789abcdef"),
        );
        assert!(authorize(&h, Some("0123456789abcdef")).is_ok());
    }
}
