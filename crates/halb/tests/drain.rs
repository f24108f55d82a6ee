//! Graceful stop (issue 16 item 6): on SIGTERM the listeners close at
//! once, established connections get `drain_timeout` to finish, and those
//! still open then are reset, so that a client never takes a cut
//! transfer for a complete one. Every wait is bounded.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, poll, temp_dir, Daemon};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A back end that reads a byte count on a line and sends that many bytes,
/// 4 KiB every 10 ms (400 KiB/s), then closes.
fn slow_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut line = Vec::new();
                let mut b = [0u8; 1];
                while s.read(&mut b).is_ok_and(|n| n == 1) && b[0] != b'\n' {
                    line.push(b[0]);
                }
                let total: usize = String::from_utf8_lossy(&line).trim().parse().unwrap_or(0);
                let chunk = [b'x'; 4096];
                let mut sent = 0;
                while sent < total {
                    let n = chunk.len().min(total - sent);
                    if s.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    sent += n;
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
        }
    });
    addr
}

/// Starts a download of `total` bytes through `vip`; the reader thread
/// returns what it got and how the stream ended.
fn download(
    vip: SocketAddr,
    total: usize,
) -> std::thread::JoinHandle<(usize, Result<(), ErrorKind>)> {
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("{total}\n").as_bytes()).unwrap();
    std::thread::spawn(move || {
        let mut got = 0;
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, Ok(())),
                Ok(n) => got += n,
                Err(e) => return (got, Err(e.kind())),
            }
        }
    })
}

#[test]
fn sigterm_drains_then_resets_what_is_left() {
    let dir = temp_dir("drain");
    let port = free_port();
    let real = slow_backend();
    let config = format!(
        "[global]\ndrain_timeout = \"3s\"\n\n\
         [[virtual_service]]\nname = \"dl\"\nlisten = \"127.0.0.1:{port}\"\n\
         \n  [[virtual_service.real_server]]\n  address = \"{real}\"\n"
    );
    let mut d = Daemon::start(&dir, &config);
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    poll(|| TcpStream::connect(vip).ok()).expect("the service answers");
    // About 1 s of transfer (fits the drain), and about 25 s (does not).
    let short_len = 400 * 1024;
    let long_len = 10 * 1024 * 1024;
    let short = download(vip, short_len);
    let long = download(vip, long_len);
    std::thread::sleep(Duration::from_millis(200));

    d.signal("-TERM");
    // New clients are refused at once.
    poll(|| match TcpStream::connect(vip) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
        _ => None,
    })
    .unwrap_or_else(|| panic!("still accepting after SIGTERM:\n{}", d.log()));

    let (got, end) = short.join().unwrap();
    assert_eq!(
        (got, end),
        (short_len, Ok(())),
        "the download that fits the drain\n{}",
        d.log()
    );
    let (got, end) = long.join().unwrap();
    assert!(got < long_len, "{got}");
    assert_eq!(
        end,
        Err(ErrorKind::ConnectionReset),
        "the download cut at the end of the drain after {got} bytes\n{}",
        d.log()
    );
    let st = d.wait_exit();
    assert!(st.success(), "{st:?}\n{}", d.log());
    let log = d.log();
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("drain_timeout (3s) reached"), "{log}");
}
