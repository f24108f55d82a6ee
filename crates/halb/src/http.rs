//! The read-only HTTP endpoint: a live dashboard at `/` and the JSON API
//! under `/api/v1/` (`status`, `connections`). It serves what the control
//! socket serves; it changes nothing. Off unless `[global] http_listen` is
//! set (the demo sets it to 127.0.0.1:9090).

use crate::control::{Asker, Request as ControlRequest, Response as ControlResponse};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

const DASHBOARD: &str = include_str!("dashboard.html");

pub async fn serve(listener: tokio::net::TcpListener, handler: Asker) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("dashboard accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(route(&req, &handler).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn route(req: &Request<hyper::body::Incoming>, handler: &Asker) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET only\n");
    }
    match req.uri().path() {
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.into()),
        "/api/v1/status" => json(handler.ask(ControlRequest::Status).await),
        "/api/v1/connections" => json(handler.ask(ControlRequest::Connections).await),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try / or /api/v1/status\n",
        ),
    }
}

fn json(r: ControlResponse) -> Response<Full<Bytes>> {
    let (status, body) = match &r {
        ControlResponse::Status(s) => (StatusCode::OK, serde_json::to_vec(s)),
        ControlResponse::Connections { connections } => {
            (StatusCode::OK, serde_json::to_vec(connections))
        }
        other => (StatusCode::INTERNAL_SERVER_ERROR, serde_json::to_vec(other)),
    };
    match body {
        Ok(b) => reply(status, "application/json", b),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn reply(status: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
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
