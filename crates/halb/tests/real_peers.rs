//! Health checks end to end against the servers users run, from Debian
//! packages: the real `halb` binary, its userspace data plane in front of
//! several real nginx (traffic over HTTP, checked over HTTPS with a
//! self-signed certificate), a real redis-server with a password and two
//! real dnsmasq behind a UDP virtual service.
//! Each peer runs in the foreground with every path in a temporary
//! directory and is stopped by PID: stopping one is how a back end
//! "dies", starting it again on the same port is how it comes back.
//!
//! A missing nginx, redis-server or dnsmasq skips with a `SKIPPED` line, and fails
//! when `CI` is set (.ci/run installs them). Every wait is a bounded poll;
//! no timing is asserted.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::{free_port, poll, stop_child, temp_dir, Daemon};

fn binary(candidates: &[&str], package: &str) -> Option<PathBuf> {
    if let Some(p) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: .ci/run must apt-get install {package}",
        candidates[0]
    );
    eprintln!(
        "SKIPPED: {} not found (apt-get install {package})",
        candidates[0]
    );
    None
}

/// Waits (bounded) until `addr` accepts connections.
fn wait_listening(addr: SocketAddr, what: &str, log: &Path) {
    let up = poll(|| TcpStream::connect(addr).ok().map(drop));
    assert!(
        up.is_some(),
        "{what} did not listen on {addr}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

// ------------------------------------------------------------------ nginx

/// One nginx: `GET /` answers its name; `/health` is the static file
/// `www/health` ("OK"), so removing the file makes the check fail (404)
/// while the server keeps serving; HTTP on `addr`, HTTPS (self-signed)
/// on `tls`.
struct Nginx {
    name: &'static str,
    binary: PathBuf,
    dir: PathBuf,
    addr: SocketAddr,
    tls: SocketAddr,
    child: Option<Child>,
}

impl Nginx {
    fn start(binary: &Path, name: &'static str) -> Nginx {
        // Tests run in parallel in one process: one directory per instance.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = temp_dir(&format!(
            "peers-nginx-{name}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/index.html"), format!("{name}\n")).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        let (port, tls_port) = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 128; }}\n\
             http {{\n  access_log off;\n  default_type text/plain;\n  keepalive_timeout 120s;\n  \
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    listen 127.0.0.1:{tls_port} ssl;\n    \
             ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n    \
             root {d}/www;\n    index index.html;\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut n = Nginx {
            name,
            binary: binary.to_owned(),
            dir,
            addr: ([127, 0, 0, 1], port).into(),
            tls: ([127, 0, 0, 1], tls_port).into(),
            child: None,
        };
        n.set_healthy(true);
        n.run();
        n
    }

    /// Starts the process (again), on the same ports.
    fn run(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(&self.binary)
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let log = self.dir.join("error.log");
        wait_listening(self.addr, "nginx", &log);
        wait_listening(self.tls, "nginx (TLS)", &log);
    }

    /// Kills the process: connections to it are refused.
    fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    fn set_healthy(&self, ok: bool) {
        let f = self.dir.join("www/health");
        if ok {
            std::fs::write(f, "OK\n").unwrap();
        } else {
            std::fs::remove_file(f).unwrap();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> Option<PathBuf> {
    binary(
        &["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"],
        "nginx-light",
    )
}

/// An HTTP/1.1 response: status code and body (Content-Length framed).
fn read_response(r: &mut impl BufRead) -> Option<(u16, String)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).trim().to_owned()))
}

/// The nginx that answers one new connection to `vip` (`GET /`), or
/// `None` when nothing answers.
fn who(vip: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(vip).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: halb\r\nConnection: close\r\n\r\n")
        .ok()?;
    let (status, body) = read_response(&mut BufReader::new(s))?;
    (status == 200).then_some(body)
}

/// The nginx names that answer `n` new connections, sorted, deduplicated.
fn spread(vip: SocketAddr, n: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..n).filter_map(|_| who(vip)).collect();
    names.sort();
    names.dedup();
    names
}

/// A web service on `vip` checked over HTTPS (`GET /health`, 200 and
/// "OK", certificate not verified, each real server's TLS port).
fn web_config(
    vip: SocketAddr,
    on_down: &str,
    reals: &[&Nginx],
    fallback: Option<&Nginx>,
) -> String {
    let mut c = format!(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"{vip}\"\nscheduler = \"rr\"\n\
         on_down = \"{on_down}\"\n"
    );
    if let Some(f) = fallback {
        c.push_str(&format!("fallback = \"{}\"\n", f.addr));
    }
    c.push_str(
        "\n  [virtual_service.check]\n  type = \"https\"\n  path = \"/health\"\n  \
         sni = \"localhost\"\n  expect_status = [200]\n  body_contains = \"OK\"\n  \
         interval = \"200ms\"\n  timeout = \"1s\"\n  rise = 2\n  fall = 2\n",
    );
    for r in reals {
        c.push_str(&format!(
            "\n  [[virtual_service.real_server]]\n  address = \"{}\"\n  check = {{ port = {} }}\n",
            r.addr,
            r.tls.port()
        ));
    }
    c
}

fn start(tag: &str, config: &str) -> Daemon {
    Daemon::start_checked(tag, config)
}

fn vip() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
}

#[test]
fn stopped_nginx_leaves_the_pool_and_returns_when_restarted() {
    let Some(bin) = nginx_binary() else { return };
    let (a, mut b, c) = (
        Nginx::start(&bin, "a"),
        Nginx::start(&bin, "b"),
        Nginx::start(&bin, "c"),
    );
    let vip = vip();
    let d = start(
        "peers-stop",
        &web_config(vip, "remove", &[&a, &b, &c], None),
    );
    for n in [&a, &b, &c] {
        let h = d.wait_health(n.addr, "up");
        assert!(
            h["reason"].as_str().unwrap_or_default().contains("200"),
            "{h:#}"
        );
    }
    let all = poll(|| {
        let s = spread(vip, 9);
        (s.len() == 3).then_some(s)
    });
    assert_eq!(all.unwrap(), ["a", "b", "c"]);

    // b's nginx stops: its checks fail, it leaves the table.
    b.stop();
    let h = d.wait_health(b.addr, "down");
    assert!(
        !h["reason"].as_str().unwrap_or_default().is_empty(),
        "{h:#}"
    );
    for _ in 0..12 {
        let got = who(vip);
        assert!(
            matches!(got.as_deref(), Some("a" | "c")),
            "a new connection got {got:?} with b stopped\n{}",
            d.log()
        );
    }
    let text = String::from_utf8(d.list(&[]).stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.contains(&b.addr.to_string()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("Down"), "{text}");

    // Started again: back after `rise` good checks, and given traffic.
    b.run();
    d.wait_health(b.addr, "up");
    let back = poll(|| spread(vip, 9).contains(&"b".to_owned()).then_some(()));
    assert!(
        back.is_some(),
        "b never received traffic again\n{}",
        d.log()
    );
    assert!(
        d.log().contains(&format!("real server {} is down", b.addr)),
        "{}",
        d.log()
    );
}

#[test]
fn quiescent_nginx_keeps_its_keep_alive_connection() {
    let Some(bin) = nginx_binary() else { return };
    let (a, b) = (Nginx::start(&bin, "a"), Nginx::start(&bin, "b"));
    let vip = vip();
    let d = start(
        "peers-quiescent",
        &web_config(vip, "quiescent", &[&a, &b], None),
    );
    d.wait_health(a.addr, "up");
    d.wait_health(b.addr, "up");

    // One HTTP/1.1 keep-alive connection through halb.
    let mut long = TcpStream::connect(vip).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(long.try_clone().unwrap());
    let mut get = || -> String {
        long.write_all(b"GET / HTTP/1.1\r\nHost: halb\r\n\r\n")
            .unwrap();
        let (status, body) = read_response(&mut reader).expect("keep-alive response");
        assert_eq!(status, 200);
        body
    };
    let first = get();
    let (held, other) = if first == "a" { (&a, &b) } else { (&b, &a) };
    assert_eq!(first, held.name);

    // Its health file goes: the check sees 404, the server goes
    // quiescent (weight 0) while nginx keeps serving.
    held.set_healthy(false);
    let h = d.wait_health(held.addr, "down");
    assert!(
        h["reason"].as_str().unwrap_or_default().contains("404"),
        "{h:#}"
    );
    let st = d.status().unwrap();
    let row = st["services"][0]["reals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["addr"] == held.addr.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{st:#}"));
    assert_eq!(row["weight"], 0, "{st:#}");

    // New connections avoid it; the established one still gets answers.
    for _ in 0..8 {
        assert_eq!(who(vip).as_deref(), Some(other.name));
    }
    assert_eq!(get(), held.name);

    // Healthy again: weight back, new connections reach it again.
    held.set_healthy(true);
    d.wait_health(held.addr, "up");
    let back = poll(|| spread(vip, 8).contains(&held.name.to_owned()).then_some(()));
    assert!(back.is_some(), "{} never received traffic again", held.name);
    assert_eq!(get(), held.name);
}

#[test]
fn all_nginx_down_sends_new_connections_to_the_fallback_nginx() {
    let Some(bin) = nginx_binary() else { return };
    let (mut a, mut b) = (Nginx::start(&bin, "a"), Nginx::start(&bin, "b"));
    let sorry = Nginx::start(&bin, "sorry");
    let vip = vip();
    let d = start(
        "peers-fallback",
        &web_config(vip, "remove", &[&a, &b], Some(&sorry)),
    );
    d.wait_health(a.addr, "up");
    d.wait_health(b.addr, "up");
    assert_eq!(poll(|| (spread(vip, 6).len() == 2).then_some(())), Some(()));

    a.stop();
    b.stop();
    d.wait_health(a.addr, "down");
    d.wait_health(b.addr, "down");
    for _ in 0..6 {
        assert_eq!(who(vip).as_deref(), Some("sorry"), "{}", d.log());
    }

    // One real server back: the fallback stops receiving new connections.
    a.run();
    d.wait_health(a.addr, "up");
    let moved = poll(|| (spread(vip, 6) == ["a"]).then_some(()));
    assert!(
        moved.is_some(),
        "traffic did not leave the fallback\n{}",
        d.log()
    );
}

// ------------------------------------------------------------------ peers

/// A peer's command line, given its directory and address.
type CommandLine = dyn Fn(&Path, SocketAddr) -> Command;

/// A peer process on a port of its own, in a directory of its own: `run`
/// starts it (again, on the same port) and waits until it listens, `stop`
/// kills it by PID; dropped, it is stopped and its directory removed.
struct Peer {
    what: &'static str,
    dir: PathBuf,
    addr: SocketAddr,
    command: Box<CommandLine>,
    child: Option<Child>,
}

impl Peer {
    fn start(
        what: &'static str,
        tag: &str,
        command: impl Fn(&Path, SocketAddr) -> Command + 'static,
    ) -> Peer {
        let mut p = Peer {
            what,
            dir: temp_dir(tag),
            addr: ([127, 0, 0, 1], free_port()).into(),
            command: Box::new(command),
            child: None,
        };
        p.run();
        p
    }

    fn run(&mut self) {
        assert!(self.child.is_none());
        let log = self.dir.join("log");
        let child = (self.command)(&self.dir, self.addr)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_listening(self.addr, self.what, &log);
    }

    fn stop(&mut self) {
        stop_child(&mut self.child);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------ redis

const REDIS_PASSWORD: &str = "halb-s3cret";

/// redis-server with a password, nothing saved.
fn redis(binary: &Path) -> Peer {
    let binary = binary.to_owned();
    Peer::start("redis-server", "peers-redis", move |dir, addr| {
        let mut c = Command::new(&binary);
        c.args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--requirepass", REDIS_PASSWORD])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("log"));
        c
    })
}

/// One RESP reply line (`+PONG`, `$5`, `-NOAUTH …`).
fn redis_line(r: &mut impl BufRead) -> String {
    let mut l = String::new();
    let _ = r.read_line(&mut l);
    l.trim_end().to_owned()
}

#[test]
fn redis_behind_halb_checked_with_auth() {
    let Some(bin) = binary(
        &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
        "redis-server",
    ) else {
        return;
    };
    let mut redis = redis(&bin);
    let vip = vip();
    let config = format!(
        "[[virtual_service]]\nname = \"cache\"\nlisten = \"{vip}\"\n\
         check = {{ type = \"redis\", password = \"{REDIS_PASSWORD}\", interval = \"200ms\", \
         timeout = \"1s\", rise = 2, fall = 2 }}\n\
         real_server = [{{ address = \"{}\" }}]\n",
        redis.addr
    );
    let d = start("peers-redis", &config);
    let h = d.wait_health(redis.addr, "up");
    assert_eq!(h["reason"], "PONG", "{h:#}");

    // A client speaks to redis through halb.
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"PING\r\n").unwrap();
    assert!(redis_line(&mut r).starts_with("-NOAUTH"));
    s.write_all(format!("AUTH {REDIS_PASSWORD}\r\nSET k via-halb\r\nGET k\r\n").as_bytes())
        .unwrap();
    assert_eq!(redis_line(&mut r), "+OK");
    assert_eq!(redis_line(&mut r), "+OK");
    assert_eq!(redis_line(&mut r), "$8");
    assert_eq!(redis_line(&mut r), "via-halb");
    drop((s, r));

    // redis stops: down; started again: up after `rise` PONGs.
    redis.stop();
    let h = d.wait_health(redis.addr, "down");
    assert_ne!(h["reason"], "PONG", "{h:#}");
    redis.run();
    let h = d.wait_health(redis.addr, "up");
    assert_eq!(h["reason"], "PONG", "{h:#}");
    let pong = poll(|| {
        let mut s = TcpStream::connect(vip).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.write_all(format!("AUTH {REDIS_PASSWORD}\r\nPING\r\n").as_bytes())
            .ok()?;
        let mut r = BufReader::new(s);
        (redis_line(&mut r) == "+OK" && redis_line(&mut r) == "+PONG").then_some(())
    });
    assert!(
        pong.is_some(),
        "no PONG through halb after restart\n{}",
        d.log()
    );
}

// ---------------------------------------------------------------- dnsmasq

/// What dnsmasq `n` answers for `who.halb.test`.
fn answer(n: u8) -> [u8; 4] {
    [192, 0, 2, n]
}

/// dnsmasq answering `who.halb.test` with [`answer`]`(n)`, nothing
/// upstream. Not root: it runs as us; root: it drops to `nobody` itself.
fn dnsmasq(binary: &Path, n: u8) -> Peer {
    let binary = binary.to_owned();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| "nobody".to_owned(), |u| u.name);
    let [a, b, c, d] = answer(n);
    // dnsmasq serves TCP on its port too, once it is ready: `run` waits
    // for that.
    Peer::start(
        "dnsmasq",
        &format!("peers-dnsmasq-{n}"),
        move |dir, addr| {
            let mut cmd = Command::new(&binary);
            cmd.args(["--no-daemon", "--port", &addr.port().to_string()])
                .args(["--listen-address", "127.0.0.1", "--bind-interfaces"])
                .args(["--no-resolv", "--no-hosts", "--conf-file=/dev/null"])
                .arg(format!("--address=/who.halb.test/{a}.{b}.{c}.{d}"))
                .arg(format!("--pid-file={}", dir.join("pid").display()))
                .arg(format!("--user={user}"));
            cmd
        },
    )
}

/// Asks `who.halb.test A` through `vip` from a new socket (so a new UDP
/// flow, scheduled afresh): the A record's address, or `None`.
fn who_dns(vip: SocketAddr) -> Option<[u8; 4]> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut q = vec![0x4a, 0x17, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["who", "halb", "test"] {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    s.send_to(&q, vip).ok()?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).ok()?;
    let r = &buf[..n];
    // Same ID, a response, NOERROR, one answer; the A record ends the
    // datagram (no authority or additional records from dnsmasq here).
    let ok = n >= q.len() + 16
        && r[..2] == q[..2]
        && r[2] & 0x80 != 0
        && r[3] & 0x0f == 0
        && r[6..8] == [0, 1];
    ok.then(|| [r[n - 4], r[n - 3], r[n - 2], r[n - 1]])
}

/// The answers to `n` queries through `vip`, sorted, deduplicated.
fn dns_spread(vip: SocketAddr, n: usize) -> Vec<[u8; 4]> {
    let mut got: Vec<[u8; 4]> = (0..n).filter_map(|_| who_dns(vip)).collect();
    got.sort_unstable();
    got.dedup();
    got
}

#[test]
fn stopped_dnsmasq_leaves_the_udp_pool_and_returns_when_restarted() {
    let Some(bin) = binary(&["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"], "dnsmasq") else {
        return;
    };
    let (a, mut b) = (dnsmasq(&bin, 1), dnsmasq(&bin, 2));
    let vip = vip();
    let config = format!(
        "[[virtual_service]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"{vip}\"\n\
         scheduler = \"rr\"\n\
         check = {{ type = \"dns\", query_name = \"who.halb.test\", query_type = \"A\", \
         interval = \"200ms\", timeout = \"1s\", rise = 2, fall = 2 }}\n\
         real_server = [{{ address = \"{}\" }}, {{ address = \"{}\" }}]\n",
        a.addr, b.addr
    );
    let d = start("peers-dns", &config);
    for s in [&a, &b] {
        let h = d.wait_health(s.addr, "up");
        assert!(
            h["reason"].as_str().unwrap_or_default().contains("NOERROR"),
            "{h:#}"
        );
    }
    let both = poll(|| {
        let s = dns_spread(vip, 8);
        (s.len() == 2).then_some(s)
    });
    assert_eq!(both.unwrap(), [answer(1), answer(2)], "{}", d.log());

    // b's dnsmasq stops: its queries get port unreachable, it goes down,
    // and every new flow is answered by a.
    b.stop();
    let h = d.wait_health(b.addr, "down");
    assert!(
        !h["reason"].as_str().unwrap_or_default().contains("NOERROR"),
        "{h:#}"
    );
    for _ in 0..8 {
        let got = who_dns(vip);
        assert_eq!(got, Some(answer(1)), "with b stopped\n{}", d.log());
    }

    // Started again on its port: up after `rise` answers, and queried.
    b.run();
    d.wait_health(b.addr, "up");
    let back = poll(|| dns_spread(vip, 8).contains(&answer(2)).then_some(()));
    assert!(back.is_some(), "b never answered again\n{}", d.log());
    assert!(
        d.log().contains(&format!("real server {} is down", b.addr)),
        "{}",
        d.log()
    );
}
