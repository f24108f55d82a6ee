//! The redis, dns, smtp and udp probes on loopback: against a real
//! `redis-server` and a real `dnsmasq` (skipped when not installed, a
//! failure when `CI` is set: .ci/run installs them), against small SMTP
//! servers written here, and against hostile servers (silent, trickling,
//! endless). Servers are started on free ports with every file in a
//! temporary directory and killed by PID on drop. Every wait is bounded.
#![allow(clippy::unwrap_used)]

use halb_health::probe::run;
use halb_health::{
    CheckSpec, DnsSpec, DnsType, InitialState, ProbeOutcome, ProbeSpec, RedisSpec, SmtpSpec, Timing,
};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// Kills the server by PID and removes its directory.
struct Server {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary(names: &[&str], package: &str) -> Option<PathBuf> {
    let found = names.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{package} is not installed; .ci/run must install it"
        );
        eprintln!("{package} not installed; SKIPPED (apt-get install {package} to run it)");
    }
    found
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("halb-health-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port free for both TCP and UDP at the time of the call.
fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn spec(target: SocketAddr, probe: ProbeSpec) -> CheckSpec {
    CheckSpec {
        target,
        probe,
        timing: Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            rise: 1,
            fall: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            initial: InitialState::Down,
        },
    }
}

/// Runs a probe; the outer bound only guards the test itself.
async fn probe(target: SocketAddr, p: ProbeSpec) -> ProbeOutcome {
    let s = spec(target, p);
    tokio::time::timeout(Duration::from_secs(15), run(&s))
        .await
        .expect("the probe did not end by its timeout")
}

/// Probes until up, at most 10 s (the server is starting).
async fn wait_up(target: SocketAddr, p: ProbeSpec, log: &Path) -> ProbeOutcome {
    let mut last = None;
    for _ in 0..50 {
        let o = probe(target, p.clone()).await;
        if o.ok {
            return o;
        }
        last = Some(o);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "server never came up: {last:?}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn start_redis(binary: &Path, password: Option<&str>) -> Server {
    let dir = temp_dir(if password.is_some() {
        "redis-auth"
    } else {
        "redis"
    });
    let port = free_port();
    let mut cmd = Command::new(binary);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(dir.join("log"));
    if let Some(p) = password {
        cmd.args(["--requirepass", p]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server {
        child,
        dir,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn redis(username: Option<&str>, password: Option<&str>) -> ProbeSpec {
    ProbeSpec::Redis(RedisSpec {
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
    })
}

#[tokio::test]
async fn redis_probe_against_redis_server() {
    let Some(bin) = binary(
        &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
        "redis-server",
    ) else {
        return;
    };
    let open = start_redis(&bin, None);
    let o = wait_up(open.addr, redis(None, None), &open.dir.join("log")).await;
    assert_eq!(o.reason, "PONG");

    let locked = start_redis(&bin, Some("s3cret"));
    let o = wait_up(
        locked.addr,
        redis(None, Some("s3cret")),
        &locked.dir.join("log"),
    )
    .await;
    assert!(o.ok);
    let o = probe(locked.addr, redis(None, None)).await;
    assert!(!o.ok && o.reason.starts_with("NOAUTH"), "{o:?}");
    let o = probe(locked.addr, redis(None, Some("wrong"))).await;
    assert!(!o.ok && o.reason.starts_with("AUTH: WRONGPASS"), "{o:?}");
    // ACL form: the default user.
    let o = probe(locked.addr, redis(Some("default"), Some("s3cret"))).await;
    assert!(o.ok, "{o:?}");
    let o = probe(locked.addr, redis(Some("nobody"), Some("s3cret"))).await;
    assert!(!o.ok && o.reason.contains("WRONGPASS"), "{o:?}");

    // Stopped: down.
    let addr = open.addr;
    drop(open);
    let o = probe(addr, redis(None, None)).await;
    assert!(!o.ok, "{o:?}");
}

fn dns(name: &str, t: DnsType) -> ProbeSpec {
    ProbeSpec::Dns(DnsSpec {
        query_name: name.to_owned(),
        query_type: t,
    })
}

#[tokio::test]
async fn dns_probe_against_dnsmasq() {
    let Some(bin) = binary(&["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"], "dnsmasq") else {
        return;
    };
    let dir = temp_dir("dnsmasq");
    let port = free_port();
    let log = dir.join("log");
    let child = Command::new(&bin)
        .args(["--no-daemon", "--port", &port.to_string()])
        .args(["--listen-address", "127.0.0.1", "--bind-interfaces"])
        .args(["--no-resolv", "--no-hosts", "--conf-file=/dev/null"])
        .args(["--address=/halb.test/192.0.2.1", "--address=/nx.test/"])
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--user={}", whoami()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        dir,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let o = wait_up(server.addr, dns("halb.test", DnsType::A), &log).await;
    assert!(o.reason.contains("NOERROR, 1 answers"), "{o:?}");
    let o = probe(server.addr, dns("www.halb.test.", DnsType::A)).await;
    assert!(o.ok, "{o:?}");
    let o = probe(server.addr, dns("nx.test", DnsType::A)).await;
    assert!(!o.ok && o.reason.ends_with("NXDOMAIN"), "{o:?}");
    // Nothing known about the root without upstreams: REFUSED.
    let o = probe(server.addr, ProbeSpec::Dns(DnsSpec::default())).await;
    assert!(!o.ok, "{o:?}");
    // Stopped: port unreachable (or the timeout), down either way.
    let addr = server.addr;
    drop(server);
    let o = probe(addr, dns("halb.test", DnsType::A)).await;
    assert!(!o.ok, "{o:?}");
}

/// The user to run dnsmasq as (it drops to `nobody` otherwise, which
/// works too but needs root).
fn whoami() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "nobody".to_owned())
}

/// A DNS server that answers with a garbage datagram, then a reply with
/// another ID, then nothing: the probe ignores both and ends by its
/// timeout.
#[tokio::test]
async fn dns_probe_ignores_garbage_and_wrong_ids() {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(b"\xff", from).await;
            let mut wrong = buf[..n].to_vec();
            wrong[0] ^= 0xff;
            wrong[2] |= 0x80;
            let _ = s.send_to(&wrong, from).await;
        }
    });
    let o = probe(addr, dns("halb.test", DnsType::A)).await;
    assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
}

/// A small SMTP server: a multi-line greeting; EHLO refused with 502 when
/// `old`, HELO accepted.
async fn smtp_server(old: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220-test.halb ESMTP\r\n220 ready\r\n")
                    .await
                    .unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = match line.split(' ').next().unwrap_or("") {
                        "EHLO" if old => b"502 5.5.1 unrecognized command\r\n",
                        "EHLO" => b"250-test.halb\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                        "HELO" => b"250 test.halb\r\n",
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"500 what\r\n",
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Hostile TCP servers: `mode` 0 accepts and never writes; 1 trickles a
/// banner a byte a second; 2 sends an endless line.
async fn hostile(mode: u8) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                match mode {
                    0 => tokio::time::sleep(Duration::from_secs(60)).await,
                    1 => {
                        for b in b"220 slow banner\r\n+PONG\r\n" {
                            if stream.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    _ => {
                        let junk = [b'x'; 4096];
                        for _ in 0..10_000 {
                            if stream.write_all(&junk).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn smtp_probe() {
    let smtp = ProbeSpec::Smtp(SmtpSpec::default());
    let o = probe(smtp_server(false).await, smtp.clone()).await;
    assert!(o.ok && o.reason.contains("EHLO"), "{o:?}");
    let o = probe(smtp_server(true).await, smtp.clone()).await;
    assert!(o.ok && o.reason.contains("HELO"), "{o:?}");
    // Nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = probe(closed, smtp.clone()).await;
    assert!(!o.ok, "{o:?}");
}

#[tokio::test]
async fn hostile_servers_cannot_stall_line_probes() {
    let silent = hostile(0).await;
    let trickle = hostile(1).await;
    let endless = hostile(2).await;
    for p in [
        ProbeSpec::Smtp(SmtpSpec::default()),
        ProbeSpec::Redis(RedisSpec::default()),
    ] {
        let o = probe(silent, p.clone()).await;
        assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
        let o = probe(trickle, p.clone()).await;
        assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
        let o = probe(endless, p.clone()).await;
        assert!(!o.ok && o.reason.contains("longer than"), "{o:?}");
    }
}
