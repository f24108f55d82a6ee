//! Loopback back ends and clients for the integration tests.
#![allow(clippy::unwrap_used, dead_code)]

use halb_proxy::{ProxyDataPlane, ProxyOptions, SpliceMode};
use halb_table::{Protocol, RealServer, SchedulerKind, VirtualService};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// Every test body runs under this bound.
pub const TEST_BOUND: Duration = Duration::from_secs(60);
/// Any single network step.
pub const STEP: Duration = Duration::from_secs(10);

pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test took too long")
}

pub async fn step<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(STEP, f).await {
        Ok(r) => r,
        Err(_) => panic!("{what}: timed out"),
    }
}

pub fn plane(splice: SpliceMode) -> ProxyDataPlane {
    ProxyDataPlane::new(ProxyOptions {
        workers: 2,
        splice,
        ..ProxyOptions::default()
    })
    .unwrap()
}

/// A free TCP port on `ip` (bound then released).
pub fn free_tcp(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

pub fn free_udp(ip: &str) -> SocketAddr {
    let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
    s.local_addr().unwrap()
}

pub fn service(
    name: &str,
    listen: SocketAddr,
    scheduler: SchedulerKind,
    reals: &[(SocketAddr, u32)],
) -> VirtualService {
    let mut s = VirtualService::new(name, listen, Protocol::Tcp, scheduler);
    s.connect_timeout = Duration::from_secs(2);
    s.reals = reals.iter().map(|&(a, w)| RealServer::new(a, w)).collect();
    s
}

/// A TCP back end: greets every connection with `name\n`, echoes what it
/// gets, and at the client's end of stream writes `bye\n` and closes.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn backend(name: &str, ip: &str) -> Backend {
    backend_with_bye_delay(name, ip, Duration::ZERO).await
}

/// Like [`backend`], waiting `delay` at the client's end of stream before
/// its `bye` (the connection stays half-closed that long).
pub async fn backend_with_bye_delay(name: &str, ip: &str, delay: Duration) -> Backend {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(greet_and_echo(s, n.clone(), delay));
        }
    });
    Backend {
        name: name.to_string(),
        addr,
        task,
    }
}

async fn greet_and_echo(mut s: TcpStream, name: String, bye_delay: Duration) {
    if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 65536];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    tokio::time::sleep(bye_delay).await;
    let _ = s.write_all(b"bye\n").await;
    let _ = s.shutdown().await;
}

/// A back end that reads a PROXY header (v1 line or v2 block), sends it
/// back verbatim and closes.
pub async fn proxy_header_backend() -> Backend {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut b = [0u8; 1];
                loop {
                    if s.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    got.push(b[0]);
                    if got.starts_with(b"PROXY ") && got.ends_with(b"\r\n") {
                        break;
                    }
                    if got.len() >= 16 && got.starts_with(&halb_proxy::proxy_protocol::V2_SIGNATURE)
                    {
                        let len = u16::from_be_bytes([got[14], got[15]]) as usize;
                        if got.len() == 16 + len {
                            break;
                        }
                    }
                    if got.len() > 300 {
                        break;
                    }
                }
                let _ = s.write_all(&got).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Backend {
        name: "recorder".into(),
        addr,
        task,
    }
}

/// A UDP back end answering every datagram with `name:<datagram>`.
pub struct UdpBackend {
    pub name: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn udp_backend(name: &str, ip: &str) -> UdpBackend {
    let s = UdpSocket::bind((ip, 0)).await.unwrap();
    let addr = s.local_addr().unwrap();
    let n = name.to_string();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((len, from)) = s.recv_from(&mut buf).await else {
                continue;
            };
            let mut reply = format!("{n}:").into_bytes();
            reply.extend_from_slice(&buf[..len]);
            let _ = s.send_to(&reply, from).await;
        }
    });
    UdpBackend {
        name: name.to_string(),
        addr,
        task,
    }
}

pub async fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b).await {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            Ok(_) => panic!("end of stream after {:?}", String::from_utf8_lossy(&line)),
            Err(e) => panic!(
                "read failed after {:?}: {e}",
                String::from_utf8_lossy(&line)
            ),
        }
    }
    String::from_utf8(line).unwrap()
}

/// Connect (from `src` if given) and read the back end's name.
pub async fn open_from(src: Option<&str>, vip: SocketAddr) -> (TcpStream, String) {
    step("connect and greeting", async {
        let mut s = match src {
            Some(ip) => {
                let sock = if vip.is_ipv4() {
                    TcpSocket::new_v4().unwrap()
                } else {
                    TcpSocket::new_v6().unwrap()
                };
                sock.bind(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
                sock.connect(vip).await.unwrap()
            }
            None => TcpStream::connect(vip).await.unwrap(),
        };
        let name = read_line(&mut s).await;
        (s, name)
    })
    .await
}

pub async fn open(vip: SocketAddr) -> (TcpStream, String) {
    open_from(None, vip).await
}

/// Open, read the name, close.
pub async fn name_of(vip: SocketAddr) -> String {
    open(vip).await.1
}

/// Write a line and read it back through the proxy.
pub async fn echo(s: &mut TcpStream, line: &str) {
    step("echo", async {
        s.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        assert_eq!(read_line(s).await, line);
    })
    .await
}

/// Count names over `n` sequential connections.
pub async fn distribution(vip: SocketAddr, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for _ in 0..n {
        *m.entry(name_of(vip).await).or_insert(0) += 1;
    }
    m
}

/// Wait until `cond` holds, polling.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    step(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}
