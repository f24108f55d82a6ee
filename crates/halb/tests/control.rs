//! The control socket under attack and misuse, end to end: a second
//! instance is refused before it binds anything, two daemons never share
//! a listen address, clients give up on a daemon that does not answer,
//! and the socket's directory must be its user's alone.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{free_port, poll, poll_for, temp_dir, Daemon, HALB};

/// A back end that echoes each line.
fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    if w.write_all(format!("{line}\n").as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn config(port: u16, real: SocketAddr) -> String {
    format!(
        "[[virtual_service]]\nlisten = \"127.0.0.1:{port}\"\n\
         [[virtual_service.real_server]]\naddress = \"{real}\"\n"
    )
}

/// One line through an open connection, and its echo.
fn echo(s: &mut BufReader<TcpStream>, line: &str) -> String {
    s.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_line(&mut out).unwrap();
    out.trim().to_owned()
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    BufReader::new(s)
}

/// `halb run` with `config` in `dir` (a second instance), to its end:
/// it must not run.
fn run_to_end(dir: &Path, config: &str, socket: &Path) -> Output {
    let file = dir.join("second.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(HALB)
        .args(["run", "--config"])
        .arg(&file)
        .arg("--socket")
        .arg(socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = poll_for(Duration::from_secs(20), || child.try_wait().unwrap());
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(done.is_some(), "the second instance kept running: {out:?}");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_second_instance_is_refused_before_it_binds_anything() {
    let real = echo_backend();
    let port = free_port();
    let d = Daemon::start(&temp_dir("second"), &config(port, real));
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut long = connect(vip);
    assert_eq!(echo(&mut long, "before"), "before");

    // Same socket, another port that the test holds (without
    // SO_REUSEPORT): had the second instance bound its listeners first,
    // it would fail on that port; it must fail on the socket.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = held.local_addr().unwrap().port();
    let out = run_to_end(&d.dir, &config(other, real), &d.socket);
    assert!(!out.status.success(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("another halb daemon is already running with the control socket"),
        "{err}"
    );
    assert!(
        !err.contains(&format!("127.0.0.1:{other}")),
        "it got as far as the port: {err}"
    );

    // Same socket, same config: refused, and the first daemon's
    // connections (established and new) are untouched.
    let out = run_to_end(&d.dir, &config(port, real), &d.socket);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("another halb daemon"),
        "{}",
        stderr(&out)
    );
    assert_eq!(echo(&mut long, "after"), "after");
    for i in 0..20 {
        let mut s = connect(vip);
        assert_eq!(echo(&mut s, &format!("new {i}")), format!("new {i}"));
    }
    // The first daemon still answers on its socket.
    assert!(d.list(&[]).status.success(), "{}", d.log());
}

#[test]
fn two_daemons_never_share_a_listen_address() {
    let real = echo_backend();
    let port = free_port();
    let d = Daemon::start(&temp_dir("shared-a"), &config(port, real));
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut long = connect(vip);
    assert_eq!(echo(&mut long, "one"), "one");

    // Another control socket, the same address: refused.
    let dir = temp_dir("shared-b");
    let out = run_to_end(&dir, &config(port, real), &dir.join("halb.sock"));
    assert!(!out.status.success(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("already serves tcp 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        !dir.join("halb.sock").exists(),
        "its socket was left behind"
    );
    assert_eq!(echo(&mut long, "two"), "two");

    // A reload that adds an address another daemon serves is refused
    // too, and the running config stays.
    let port2 = free_port();
    let other = temp_dir("shared-c");
    let d2 = Daemon::start(&other, &config(port2, real));
    std::fs::write(
        &d.file,
        format!("{}\n{}", config(port, real), config(port2, real)),
    )
    .unwrap();
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains(&format!("already serves tcp 127.0.0.1:{port2}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(echo(&mut long, "three"), "three");
    drop(d2);
    // Once the other one stopped, the same reload goes through.
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}\n{}", d.log());
}

/// SIGCONTs the daemon when the test ends, however it ends.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn clients_give_up_on_a_daemon_that_does_not_answer() {
    let real = echo_backend();
    let d = Daemon::start(&temp_dir("stopped"), &config(free_port(), real));
    d.signal("-STOP");
    let _cont = Continue(d.child.id());
    for args in [&["list"][..], &["list", "-c"]] {
        let mut child = Command::new(HALB)
            .args(args)
            .arg("--socket")
            .arg(&d.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let done = poll_for(Duration::from_secs(60), || child.try_wait().unwrap());
        if done.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(done.is_some(), "halb {args:?} waited for ever: {out:?}");
        assert!(!out.status.success(), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains("did not answer within"), "{err}");
        assert!(err.contains(&d.socket.display().to_string()), "{err}");
    }
    d.signal("-CONT");
    // Back to normal once it runs again.
    let ok = poll_for(Duration::from_secs(20), || {
        d.list(&[]).status.success().then_some(())
    });
    assert!(ok.is_some(), "{}", d.log());
}

#[test]
fn the_socket_directory_is_the_users_alone() {
    let real = echo_backend();
    // Missing: created 0700.
    let base = temp_dir("sockdir");
    let dir = base.join("new");
    let socket = dir.join("halb.sock");
    let file = base.join("halb.toml");
    std::fs::write(&file, config(free_port(), real)).unwrap();
    let child = Command::new(HALB)
        .args(["run", "--config"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(base.join("halb.log")).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon::attach(child, &base, &file, &socket);
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    // Made writable by others behind its back: clients refuse it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = d.list(&[]);
    assert!(!out.status.success(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("writable by its group and others (mode 0777)") && err.contains("chmod go-w"),
        "{err}"
    );
    let out = d.ctl(&["reload"]);
    assert!(
        !out.status.success() && stderr(&out).contains("writable by"),
        "{out:?}"
    );
    let mut d = d;
    d.signal("-TERM");
    assert!(d.wait_exit().success(), "{}", d.log());
    assert!(!socket.exists(), "the daemon left its socket");

    // And the daemon refuses to bind there.
    let out = run_to_end(&base, &config(free_port(), real), &socket);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("refusing the control socket directory"),
        "{out:?}"
    );
    assert!(!socket.exists());
}

/// The control socket keeps a descriptor in reserve: with every other one
/// taken (idle dashboard connections up to a low RLIMIT_NOFILE), `halb
/// list` is still answered.
#[test]
fn halb_list_answers_while_the_daemon_is_out_of_descriptors() {
    let dir = temp_dir("emfile-control");
    let port = free_port();
    let http = free_port();
    let real = echo_backend();
    let file = dir.join("halb.toml");
    std::fs::write(
        &file,
        format!(
            "[global]\nhttp_listen = \"127.0.0.1:{http}\"\n\n{}",
            config(port, real)
        ),
    )
    .unwrap();
    let socket = dir.join("halb.sock");
    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    // 200 descriptors at most (soft and hard): fewer than the dashboard's
    // connection cap, so idle dashboard clients can use them all up.
    let child = Command::new("prlimit")
        .args(["--nofile=200:200", "--"])
        .arg(common::HALB)
        .args(["run", "--config"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let d = Daemon::attach(child, &dir, &file, &socket);
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", http)) {
            idle.push(s);
        }
    }
    // The daemon has hit its limit (the log says so) ...
    let out_of_fds = poll(|| d.log().contains("out of file descriptors").then_some(()));
    assert!(out_of_fds.is_some(), "{}", d.log());
    // ... and answers its operator all the same, more than once.
    for _ in 0..3 {
        let out = d.list(&[]);
        assert!(out.status.success(), "{out:?}\n{}", d.log());
    }
    // From the control socket's own reserve, not because the dashboard
    // closed its idle clients in the meantime.
    let log = d.log();
    assert!(log.contains("a client served from the reserve"), "{log}");
    drop(idle);
}

/// `control_socket_group`: members of the group use `halb list` without
/// root; others are refused by the socket's mode (root only: it needs
/// another user).
#[test]
fn an_operators_group_may_use_the_control_socket() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs this as root");
        println!("SKIPPED: needs root to act as another user");
        return;
    }
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    for (group, works) in [(Some("nogroup"), true), (None, false)] {
        let dir = temp_dir("group");
        let port = free_port();
        let real = echo_backend();
        let extra = group.map_or(String::new(), |g| {
            format!("[global]\ncontrol_socket_group = \"{g}\"\n\n")
        });
        let d = Daemon::start(&dir, &format!("{extra}{}", config(port, real)));
        let out = Command::new("setpriv")
            .args(nobody)
            .args([HALB, "list", "--socket"])
            .arg(&d.socket)
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            works,
            "group {group:?}: {out:?}\n{}",
            d.log()
        );
    }
}

/// `control_socket_read_group` beside `control_socket_group`: members of
/// the read group may `halb list` but not change anything (refused with
/// the group they need), members of the operators' group may do both,
/// others neither; a hand-over is refused to all but root. Root only (it
/// acts as other users: uid 65534 with primary group nogroup, users or
/// daemon).
#[test]
fn read_and_write_commands_go_to_separate_groups() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs this as root");
        println!("SKIPPED: needs root to act as another user");
        return;
    }
    let dir = temp_dir("rwgroups");
    let port = free_port();
    let real = echo_backend();
    let extra =
        "[global]\ncontrol_socket_group = \"nogroup\"\ncontrol_socket_read_group = \"users\"\n\n";
    let d = Daemon::start(&dir, &format!("{extra}{}", config(port, real)));
    let as_user = |gid: &str, args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", &format!("--regid={gid}"), "--clear-groups"])
            .arg(HALB)
            .args(args)
            .arg("--socket")
            .arg(&d.socket)
            .output()
            .unwrap()
    };
    let real = real.to_string();
    let service = format!("127.0.0.1:{port}");
    let drain = ["drain", service.as_str(), real.as_str()];
    let enable = ["enable", service.as_str(), real.as_str()];
    // The read group (users, gid 100): list yes, drain no.
    let out = as_user("users", &["list"]);
    assert!(
        out.status.success(),
        "read group list: {out:?}\n{}",
        d.log()
    );
    let out = as_user("users", &drain);
    assert!(!out.status.success(), "read group drained: {out:?}");
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("needs group nogroup (control_socket_group)") && err.contains("may only read"),
        "{err}"
    );
    // The operators' group: both.
    let out = as_user("nogroup", &drain);
    assert!(
        out.status.success(),
        "operators' drain: {out:?}\n{}",
        d.log()
    );
    let out = as_user("nogroup", &enable);
    assert!(out.status.success(), "operators' enable: {out:?}");
    // Another group (daemon): neither, told which groups.
    let out = as_user("daemon", &["list"]);
    assert!(!out.status.success(), "outsider listed: {out:?}");
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("in neither group users"), "{err}");
    // A hand-over (the listening sockets, and the daemon ends) is for
    // root and the daemon's user alone, even to the operators' group.
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                  s.sendall(b'{\"cmd\":\"handover\"}\\n')\nprint(s.recv(4096).decode())";
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=nogroup",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(&d.socket)
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains("permission denied: a hand-over"), "{out:?}");
    assert!(
        d.status().is_some(),
        "the daemon ended after a refused hand-over"
    );
    // The refusals are logged with the uid.
    assert!(d.log().contains("control request refused"), "{}", d.log());
}
