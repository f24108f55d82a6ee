//! A reset is passed on as a reset, both ways, every time: a back end's
//! RST must not reach the client as a clean FIN (which would make a cut
//! transfer look complete), nor a client's RST the back end.
//! (Its own test binary: a thousand tries each, sequential.)
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_proxy::SpliceMode;
use halb_table::{DataPlane, SchedulerKind, Table};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

fn reset_on_drop(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// A back end that accepts, reads the request, optionally answers part of
/// it, then resets (closes with `SO_LINGER` 0).
async fn resetting_backend(answer: Option<&'static [u8]>) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut got = 0;
                let mut buf = [0u8; 256];
                while got < REQUEST.len() {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                if let Some(a) = answer {
                    let _ = s.write_all(a).await;
                }
                reset_on_drop(&s);
                drop(s);
            });
        }
    });
    (addr, task)
}

fn proxy_to(real: SocketAddr, mode: SpliceMode) -> (halb_proxy::ProxyDataPlane, SocketAddr) {
    let vip = free_tcp("127.0.0.1");
    let mut p = plane(mode);
    let r = p.apply(&Table {
        services: vec![service("web", vip, SchedulerKind::Rr, &[(real, 1)])],
    });
    assert!(r.is_ok(), "{:?}", r.errors);
    (p, vip)
}

/// One try: what the client sees after its request. `Ok` only for a reset.
async fn client_sees_reset(vip: SocketAddr, answer: Option<&[u8]>) -> Result<(), String> {
    let mut c = TcpStream::connect(vip)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match c.write_all(REQUEST).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
        Err(e) => return Err(format!("write: {e}")),
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf).await {
            Ok(0) => return Err(format!("clean end of stream after {} bytes", got.len())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                // what came before the reset is a prefix of the answer
                let a = answer.unwrap_or(b"");
                return if a.starts_with(&got) {
                    Ok(())
                } else {
                    Err(format!("wrong bytes before the reset: {got:?}"))
                };
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

async fn tries(vip: SocketAddr, answer: Option<&[u8]>, n: usize) {
    let mut failed = Vec::new();
    for _ in 0..n {
        if let Err(e) = step("one try", client_sees_reset(vip, answer)).await {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} tries did not see the reset; first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test]
async fn a_back_end_reset_reaches_the_client_1000_of_1000() {
    bounded(async {
        let (real, _t) = resetting_backend(None).await;
        let (_p, vip) = proxy_to(real, SpliceMode::Auto);
        tries(vip, None, 1000).await;
    })
    .await;
}

#[tokio::test]
async fn a_back_end_reset_after_an_answer_reaches_the_client() {
    bounded(async {
        const ANSWER: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npartial";
        let (real, _t) = resetting_backend(Some(ANSWER)).await;
        let (_p, vip) = proxy_to(real, SpliceMode::Auto);
        tries(vip, Some(ANSWER), 500).await;
    })
    .await;
}

#[tokio::test]
async fn a_back_end_reset_reaches_the_client_when_copying_or_splicing() {
    bounded(async {
        let (real, _t) = resetting_backend(None).await;
        for mode in [SpliceMode::Off, SpliceMode::On] {
            let (_p, vip) = proxy_to(real, mode);
            tries(vip, None, 200).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_reset_reaches_the_back_end_1000_of_1000() {
    bounded(async {
        // The back end reports, per connection, how its stream ended.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let real = l.local_addr().unwrap();
        let (read_tx, mut read_rx) = mpsc::channel::<()>(1);
        let (end_tx, mut end_rx) = mpsc::channel::<Result<(), String>>(1);
        let _t = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                let (read_tx, end_tx) = (read_tx.clone(), end_tx.clone());
                tokio::spawn(async move {
                    let mut got = 0;
                    let mut buf = [0u8; 256];
                    let end = loop {
                        match s.read(&mut buf).await {
                            Ok(0) => break Err(format!("clean end of stream after {got} bytes")),
                            Ok(n) => {
                                got += n;
                                if got >= REQUEST.len() {
                                    let _ = read_tx.send(()).await;
                                }
                            }
                            Err(e) if e.kind() == ErrorKind::ConnectionReset => break Ok(()),
                            Err(e) => break Err(format!("read: {e}")),
                        }
                    };
                    let _ = end_tx.send(end).await;
                });
            }
        });
        let (_p, vip) = proxy_to(real, SpliceMode::Auto);
        let mut failed = Vec::new();
        for _ in 0..1000 {
            let end = step("one try", async {
                let mut c = TcpStream::connect(vip).await.unwrap();
                c.write_all(REQUEST).await.unwrap();
                // the relay is established: the back end has the request
                read_rx.recv().await.unwrap();
                reset_on_drop(&c);
                drop(c);
                end_rx.recv().await.unwrap()
            })
            .await;
            if let Err(e) = end {
                failed.push(e);
            }
        }
        assert!(
            failed.is_empty(),
            "{} of 1000 tries did not reset the back end; first: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
    })
    .await;
}
