//! HTTP proxy (ldirectord `http_proxy`): the real server is a forward
//! proxy. `GET http://origin/path HTTP/1.1` (the absolute URL of the
//! check, as ldirectord's LWP sends it through the proxy) with
//! `Host: origin`; the response is read and judged by the http probe
//! ([`super::http::send_and_judge`]: status, `body_regex` and the other
//! body checks, at most [`super::http::MAX_RESPONSE`] bytes). A proxy
//! whose origin is down answers 502/503/504, which is down.

use crate::engine::ProbeOutcome;
use crate::spec::{proxy_url_authority, HttpSpec};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The request sent to the proxy; `Err` when `spec.path` is not an
/// absolute `http://` URL (the config refuses those).
pub fn request(spec: &HttpSpec) -> Result<String, String> {
    let authority = proxy_url_authority(&spec.path)?;
    let host = spec.host.as_deref().unwrap_or(authority);
    Ok(format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: halb-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        spec.method.as_str(),
        spec.path
    ))
}

/// Connects to the proxy, sends the request and judges the response.
/// No timeout of its own: the caller ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &HttpSpec) -> ProbeOutcome {
    let req = match request(spec) {
        Ok(r) => r,
        Err(e) => return ProbeOutcome::down(e),
    };
    let stream = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(format!("connect to proxy {target}: {e}")),
    };
    let o = super::http::send_and_judge(stream, &req, spec).await;
    ProbeOutcome {
        reason: format!("{} (proxy, {})", o.reason, spec.path),
        ..o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_request_line() {
        let spec = HttpSpec::get("http://origin.example:8080/health?x=1");
        let r = request(&spec).unwrap();
        assert!(
            r.starts_with(
                "GET http://origin.example:8080/health?x=1 HTTP/1.1\r\nHost: origin.example:8080\r\n"
            ),
            "{r}"
        );
        assert!(r.ends_with("Connection: close\r\n\r\n"));
        assert!(request(&HttpSpec::get("/health")).is_err());
        assert!(request(&HttpSpec::get("https://x/")).is_err());
    }
}
