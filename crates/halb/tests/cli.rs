//! End-to-end tests of the `halb` binary, as a user runs it: config
//! checking, `run` + `list` + `reload` against real TCP back ends on
//! loopback, signals, and `demo`.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, Daemon, HALB};

fn halb(args: &[&str]) -> Output {
    Command::new(HALB).args(args).output().unwrap()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("halb-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A back end that answers each line with `name`, and echoes lines that
/// start with `echo `, so a long-lived connection can be probed.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    let reply = match line.strip_prefix("echo ") {
                        Some(rest) => format!("{name} {rest}\n"),
                        None => format!("{name}\n"),
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn ask(vip: SocketAddr, line: &str) -> String {
    let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut out = String::new();
    r.read_line(&mut out).unwrap();
    out.trim().to_string()
}

fn config(port: u16, reals: &[(SocketAddr, u32)]) -> String {
    let mut c = format!(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\nscheduler = \"wrr\"\n"
    );
    for (a, w) in reals {
        c.push_str(&format!(
            "\n  [[virtual_service.real_server]]\n  address = \"{a}\"\n  weight = {w}\n"
        ));
    }
    c
}

#[test]
fn check_config_accepts_every_example() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = halb(&["check-config", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 1, "no examples in {}", dir.display());
    let out = halb(&[
        "check-config",
        dir.join("health-http.toml").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 real servers, 3 health checks"), "{text}");
}

#[test]
fn check_config_reports_every_error_and_exits_2() {
    let dir = tempdir("check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nscheduler = \"wrrr\"\n\n  [[virtual_service.real_server]]\n  address = \"127.0.0.1:81\"\n  weight = 70000\n",
    )
    .unwrap();
    let out = halb(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("scheduler"), "{err}");
    assert!(err.contains("bad.toml:7:"), "{err}");
    assert!(err.contains("weight"), "{err}");

    let good = dir.join("good.toml");
    std::fs::write(&good, config(8080, &[("127.0.0.1:81".parse().unwrap(), 1)])).unwrap();
    let out = halb(&["check-config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");

    // `run` with a bad config starts nothing and says so.
    let out = halb(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_list_reload_and_stop() {
    let dir = tempdir("run");
    let (a, b, c) = (backend("a"), backend("b"), backend("c"));
    let port = free_port();
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = dir.join("halb.toml");
    std::fs::write(&cfg, config(port, &[(a, 1), (b, 1), (c, 0)])).unwrap();
    let mut d = Daemon::start_file(&dir, &cfg);
    let socket = d.socket.clone();

    // The control socket is owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // c has weight 0: only a and b answer, alternately.
    let mut seen: Vec<String> = (0..4).map(|_| ask(vip, "hi")).collect();
    seen.sort();
    assert_eq!(seen, ["a", "a", "b", "b"]);

    // A long-lived connection stays up across reloads.
    let mut long = TcpStream::connect(vip).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut long_r = BufReader::new(long.try_clone().unwrap());
    let mut line = String::new();
    long.write_all(b"echo 1\n").unwrap();
    long_r.read_line(&mut line).unwrap();
    let long_backend = line.split_whitespace().next().unwrap().to_string();

    let out = d.list(&[]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains(&format!("TCP  {vip} wrr")), "{table}");
    assert!(table.contains(&format!("-> {c}")), "{table}");
    let json: serde_json::Value = serde_json::from_slice(&d.list(&["--json"]).stdout).unwrap();
    assert_eq!(json["services"][0]["reals"].as_array().unwrap().len(), 3);
    assert!(json["services"][0]["counters"]["conns"].as_u64().unwrap() >= 5);
    let conns = String::from_utf8(d.list(&["--connections"]).stdout).unwrap();
    assert!(conns.contains("ESTABLISHED"), "{conns}");
    let stats = String::from_utf8(d.list(&["--stats"]).stdout).unwrap();
    assert!(stats.contains("InBytes"), "{stats}");

    // Reload: drain a and b, bring c in. New connections go to c only,
    // the long-lived one keeps flowing.
    std::fs::write(&cfg, config(port, &[(a, 0), (b, 0), (c, 5)])).unwrap();
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains(&format!("real server {c} weight 0 -> 5")),
        "{summary}"
    );
    for _ in 0..3 {
        assert_eq!(ask(vip, "hi"), "c");
    }
    line.clear();
    long.write_all(b"echo 2\n").unwrap();
    long_r.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("{long_backend} 2"));

    // A bad config is rejected with its errors; the running one stays.
    std::fs::write(&cfg, "[[virtual_service]]\nlisten = 12\n").unwrap();
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("halb.toml:2:"), "{err}");
    assert_eq!(ask(vip, "hi"), "c");

    // SIGHUP reloads too.
    std::fs::write(&cfg, config(port, &[(a, 3), (b, 0), (c, 0)])).unwrap();
    d.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = String::from_utf8(d.list(&[]).stdout).unwrap();
        if t.lines()
            .any(|l| l.contains(&a.to_string()) && l.contains(" 3 "))
        {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload:\n{t}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ask(vip, "hi"), "a");

    // SIGTERM: clean exit, control socket removed.
    drop(long_r);
    drop(long);
    d.signal("-TERM");
    assert!(d.wait_exit().success());
    assert!(!socket.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_without_daemon_says_how_to_fix() {
    let out = halb(&["list", "--socket", "/nonexistent/halb.sock"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("is `halb run` or `halb demo` running?"),
        "{err}"
    );
}

fn http_get(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.rsplit("\r\n\r\n").next().unwrap().trim().to_string()
}

fn http_raw(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn demo_spreads_by_weight_and_stops_on_ctrl_c() {
    let dir = tempdir("demo");
    let socket = dir.join("demo.sock");
    let child = Command::new(HALB)
        .args(["demo", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut d = Daemon::attach(child, &dir, Path::new("(embedded demo)"), &socket);

    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..12 {
        *counts.entry(http_get("127.0.0.1:8080")).or_insert(0) += 1;
    }
    let counts: Vec<_> = counts.into_iter().collect();
    assert_eq!(
        counts,
        [
            ("backend-1".to_string(), 2),
            ("backend-2".to_string(), 4),
            ("backend-3".to_string(), 6)
        ]
    );
    let table = String::from_utf8(d.list(&[]).stdout).unwrap();
    assert!(table.contains("TCP  127.0.0.1:8080 wrr"), "{table}");

    // The dashboard and its JSON API.
    let page = http_raw("127.0.0.1:9090", "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("/api/v1/status"), "{page}");
    let api = http_raw("127.0.0.1:9090", "/api/v1/status");
    let body = api.split("\r\n\r\n").nth(1).unwrap();
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["services"][0]["listen"], "127.0.0.1:8080");
    assert_eq!(status["services"][0]["counters"]["conns"], 12);
    assert!(http_raw("127.0.0.1:9090", "/nope").starts_with("HTTP/1.1 404"));

    d.signal("-INT");
    assert!(d.wait_exit().success());
    let mut banner = String::new();
    d.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut banner)
        .unwrap();
    assert!(
        banner.contains("curl -s http://127.0.0.1:8080/"),
        "{banner}"
    );
    assert!(TcpStream::connect("127.0.0.1:8080").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- Package and CLI conventions (issue 19 item 6) ----

/// `-c/--config` on every command that reads a config: `run -c`,
/// `check-config -c`, and the clients, which ask the `control_socket` the
/// file names (`list` takes `--config` only: its `-c` is ipvsadm's
/// connections).
#[test]
fn config_flag_finds_the_control_socket() {
    let dir = tempdir("dash-c");
    let socket = dir.join("ctl.sock");
    let port = free_port();
    let real = backend("a");
    let file = dir.join("halb.toml");
    std::fs::write(
        &file,
        format!(
            "[global]\ncontrol_socket = \"{}\"\n\n{}",
            socket.display(),
            config(port, &[(real, 1)])
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    assert!(halb(&["check-config", "-c", f]).status.success());
    assert!(halb(&["check-config", "--config", f]).status.success());
    // A file and -c both: refused.
    assert!(!halb(&["check-config", f, "-c", f]).status.success());

    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    let child = Command::new(HALB)
        .args(["run", "-c", f])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = Daemon::attach(child, &dir, &file, &socket);
    // No --socket: the config's control_socket.
    let out = halb(&["reload", "-c", f]);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
    assert!(String::from_utf8_lossy(&out.stdout).contains("reloaded"));
    let out = halb(&["list", "--config", f]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains(&format!("127.0.0.1:{port}")), "{table}");
    // ipvsadm habits: -L and -n are accepted and change nothing.
    let out = halb(&["list", "-L", "-n", "--config", f]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), table);
    let out = halb(&["list", "-Ln", "-c", "--config", f]);
    assert!(out.status.success(), "list -Ln -c (connections): {out:?}");
    // Operator commands take -c too.
    let out = halb(&["weight", "-c", f, "web", &real.to_string(), "3"]);
    assert!(out.status.success(), "{out:?}");
    let out = halb(&["enable", "--config", f, "web", &real.to_string()]);
    assert!(out.status.success(), "{out:?}");

    // A config that does not validate: the client cannot know its socket,
    // says so, and exits 2 (as the daemon's rejection would).
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[global]\ncontrol_socket = 7\n").unwrap();
    let out = halb(&["reload", "-c", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:"), "{err}");
    assert!(err.contains("give --socket"), "{err}");

    d.signal("-TERM");
    assert!(d.wait_exit().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// /etc/halb/halb.toml is the default config of run, check-config and
/// reload (the test does not write /etc: it checks the name used).
#[test]
fn default_config_is_etc_halb() {
    for cmd in ["run", "check-config", "reload"] {
        let out = halb(&[cmd, "--help"]);
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains("/etc/halb/halb.toml"),
            "{cmd} --help:\n{help}"
        );
    }
    // Without a file: that one is read (ok if installed, else its error).
    let out = halb(&["check-config"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("/etc/halb/halb.toml"), "{all}");
    if !std::path::Path::new("/etc/halb/halb.toml").exists() {
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(all.contains("cannot read the file"), "{all}");
    }
}

#[test]
fn version_names_the_commit_and_the_build() {
    let out = halb(&["--version"]);
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with(&format!("halb {}\n", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let commit = v
        .lines()
        .find_map(|l| l.strip_prefix("commit: "))
        .unwrap_or_else(|| panic!("no commit line: {v}"));
    let first = commit.split_whitespace().next().unwrap_or_default();
    assert!(
        first == "unknown" || (first.len() == 12 && first.chars().all(|c| c.is_ascii_hexdigit())),
        "{v}"
    );
    // Built from this repository's checkout: its commit (CI builds one).
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(g) = git {
        // (Built where git refused the checkout, "dubious ownership" say,
        // build.rs said unknown: nothing to compare.)
        if g.status.success() && std::env::var_os("HALB_COMMIT").is_none() && first != "unknown" {
            let head = String::from_utf8_lossy(&g.stdout).trim().to_owned();
            // The binary may predate the last commit (no rebuild since):
            // it names a commit of this history either way.
            let known = Command::new("git")
                .args(["cat-file", "-e", &format!("{first}^{{commit}}")])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                known,
                "commit {first} is not in this repository (HEAD {head}): {v}"
            );
        }
    }
    assert!(v.contains("\nfeatures: "), "{v}");
    assert!(v.contains("ipvs") && v.contains("rustls"), "{v}");
    assert!(v.contains("\nprofile: "), "{v}");
    // -V stays the one-line form.
    let short = String::from_utf8(halb(&["-V"]).stdout).unwrap();
    assert_eq!(short.trim(), format!("halb {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = halb(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in ["check-config", "reload", "drain", "completions"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // The bash script parses.
    let dir = tempdir("completions");
    let f = dir.join("halb.bash");
    std::fs::write(&f, halb(&["completions", "bash"]).stdout).unwrap();
    let st = Command::new("bash").arg("-n").arg(&f).status().unwrap();
    assert!(st.success());
    assert!(!halb(&["completions", "tcsh"]).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn man_pages_for_halb_and_each_command() {
    let dir = tempdir("man");
    let out = halb(&["man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(halb(&["--help"]).stdout).unwrap();
    assert!(!help.contains("\n  man "), "`man` is hidden: {help}");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "halb.8",
        "halb-run.8",
        "halb-check-config.8",
        "halb-list.8",
        "halb-reload.8",
        "halb-completions.8",
    ] {
        assert!(pages.iter().any(|p| p == want), "{want} missing: {pages:?}");
    }
    assert!(
        !pages
            .iter()
            .any(|p| p == "halb-man.8" || p == "halb-help.8"),
        "{pages:?}"
    );
    for p in &pages {
        let text = std::fs::read_to_string(dir.join(p)).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH "),
            "{p} is not roff"
        );
    }
    let main = std::fs::read_to_string(dir.join("halb.8")).unwrap();
    assert!(
        main.contains(".TH halb 8"),
        "{}",
        &main[..main.len().min(400)]
    );
    let list = std::fs::read_to_string(dir.join("halb-list.8")).unwrap();
    assert!(list.contains("numeric"), "list -n documented");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// dist/halb.toml, the package's /etc/halb/halb.toml: valid as shipped
/// (it runs nothing), and its commented example valid once uncommented.
#[test]
fn shipped_config_and_its_example_validate() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/halb.toml");
    let out = halb(&["check-config", shipped]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 virtual services"));
    let text = std::fs::read_to_string(shipped).unwrap();
    let start = text.find("# [[virtual_service]]").unwrap();
    let example: String = text[start..]
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .or_else(|| l.strip_prefix('#'))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempdir("shipped");
    let f = dir.join("example.toml");
    std::fs::write(&f, example).unwrap();
    let out = halb(&["check-config", f.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 virtual services"));
    std::fs::remove_dir_all(&dir).unwrap();
}
