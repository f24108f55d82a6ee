//! The HTTP API's writes and its event stream (issue 19, item 4): a
//! command needs `http_token` in the config and `Authorization: Bearer
//! TOKEN` on the request (401 without, 403 with a wrong one, 403 when no
//! token is configured); the right one drains a real server as `halb
//! drain` does; `/api/v1/events` sends the status as a server-sent event.
//! Every wait is a bounded poll; every socket is closed.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;

use common::{free_port, poll, temp_dir, Daemon};

const TOKEN: &str = "http-api-test-token-0123456789";

fn start(tag: &str, token: bool) -> (Daemon, SocketAddr, String, String) {
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let real = format!("127.0.0.1:{}", free_port());
    let token = if token {
        format!("http_token = \"{TOKEN}\"\n")
    } else {
        String::new()
    };
    let config = format!(
        "[global]\nhttp_listen = \"{http}\"\n{token}\n[[virtual_service]]\nname = \"web\"\nlisten = \"{listen}\"\nscheduler = \"rr\"\n\n  [[virtual_service.real_server]]\n  address = \"{real}\"\n"
    );
    let d = Daemon::start(&temp_dir(tag), &config);
    (d, http, listen, real)
}

/// One request on a new connection: (status code, whole response).
fn request(http: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "{head}\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn commands_need_the_token_and_then_drain() {
    let (d, http, _listen, real) = start("httpapi", true);
    let drain = format!(r#"{{"cmd":"real","service":"web","real":"{real}","action":"drain"}}"#);
    let (code, text) = request(http, "POST /api/v1/command HTTP/1.1", &drain);
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("Bearer"), "{text}");
    let wrong = "POST /api/v1/command HTTP/1.1\r\nAuthorization: Bearer not-the-token-at-all";
    let (code, text) = request(http, wrong, &drain);
    assert_eq!(code, 403, "{text}");
    // Refused commands change nothing.
    let st = d.status().unwrap();
    assert_eq!(st["overrides"].as_array().map(Vec::len), Some(0), "{st}");
    let right = format!("POST /api/v1/command HTTP/1.1\r\nAuthorization: Bearer {TOKEN}");
    let (code, text) = request(http, &right, &drain);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("drain"), "{text}");
    let st = d.status().unwrap();
    assert_eq!(st["overrides"].as_array().map(Vec::len), Some(1), "{st}");
    // A bad target: 422 with the valid names.
    let bad = r#"{"cmd":"real","service":"nope","real":"127.0.0.1:1","action":"drain"}"#;
    let (code, text) = request(http, &right, bad);
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("web"), "{text}");
    // Not a command here: the hand-over.
    let (code, text) = request(http, &right, r#"{"cmd":"handover"}"#);
    assert_eq!(code, 400, "{text}");
    assert!(d.status().is_some(), "halb stopped");
    assert!(d.log().contains("HTTP command"), "{}", d.log());
}

#[test]
fn without_a_token_the_http_side_is_read_only() {
    let (d, http, _listen, real) = start("httpapi-ro", false);
    let drain = format!(r#"{{"cmd":"real","service":"web","real":"{real}","action":"drain"}}"#);
    let head = format!("POST /api/v1/command HTTP/1.1\r\nAuthorization: Bearer {TOKEN}");
    let (code, text) = request(http, &head, &drain);
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("http_token"), "{text}");
    let st = d.status().unwrap();
    assert_eq!(st["overrides"].as_array().map(Vec::len), Some(0), "{st}");
}

#[test]
fn the_event_stream_sends_the_status() {
    let (_d, http, listen, _real) = start("httpapi-sse", false);
    let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let text = poll(|| {
        let n = s.read(&mut buf).ok()?;
        got.extend_from_slice(&buf[..n]);
        let t = String::from_utf8_lossy(&got).to_string();
        (n == 0 || t.contains("\n\n") && t.contains("event: status")).then_some(t)
    })
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(text.contains("retry: 1000"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let st: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(st["services"][0]["listen"], listen.as_str(), "{st}");
}
