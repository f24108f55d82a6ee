//! A kernel without IPVS: the IPVS service is reported once, with the fix,
//! and the proxy service next to it carries traffic. (This host's kernel
//! has no IPVS; the real-kernel tests run under qemu, scripts/ipvs-vm-test.)
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

mod common;

use common::{free_port, poll, temp_dir, Daemon};

fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                for line in BufReader::new(s).lines() {
                    if line.is_err() || w.write_all(format!("{name}\n").as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn proxy_service_runs_and_ipvs_service_is_reported_once() {
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        println!("SKIPPED: this kernel has IPVS; the no-IPVS path cannot be observed here");
        return;
    }
    let dir = temp_dir("ipvs-missing");
    let port = free_port();
    let real = backend("proxied");
    let cfg = format!(
        r#"[[virtual_service]]
name = "web"
listen = "127.0.0.1:{port}"
  [[virtual_service.real_server]]
  address = "{real}"

[[virtual_service]]
name = "kernel-web"
data_plane = "ipvs"
listen = "192.0.2.10:80"
  [[virtual_service.real_server]]
  address = "198.51.100.1:80"
  forward = "route"
"#
    );
    let d = Daemon::start(&dir, &cfg);
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let answer = poll(|| {
        let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"hello\n").ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line)
    })
    .unwrap_or_else(|| panic!("the proxy service never answered:\n{}", d.log()));
    assert_eq!(answer.trim(), "proxied");
    // The daemon runs on, and lists the proxy service.
    let list = d.list(&[]);
    let stderr = d.log();
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains(&format!("127.0.0.1:{port}")), "{listed}");
    let hits: Vec<&str> = stderr.lines().filter(|l| l.contains("no IPVS")).collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one IPVS message, stderr:\n{stderr}"
    );
    let m = hits[0];
    assert!(m.contains("kernel-web"), "{m}");
    assert!(m.contains("modprobe ip_vs"), "{m}");
    assert!(m.contains("data_plane = \"proxy\""), "{m}");
    assert!(!m.contains("\"web\""), "{m}");
}
