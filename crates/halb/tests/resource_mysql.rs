//! `examples/mysql-shared-disk.toml` for real (issue 17): MariaDB (Debian's
//! mariadb-server) on a "shared disk" (an ext4 image on a loop device)
//! through Debian's own `ocf:heartbeat:Filesystem` and `ocf:heartbeat:mysql`,
//! run by a halb director in its own network namespace (root) that is
//! VRRP master. The example's file is used with only its device, paths,
//! interface and port replaced, and without its memcached member. The
//! group starts (mount, then mysqld on the disk's data directory); a row
//! is written; mysqld is killed with SIGKILL → the monitor finds it not
//! running → restarted in place, and the row is still there; SIGTERM stops
//! mysqld, then unmounts, in reverse. The system's own MariaDB service is
//! not used (and need not run): this mysqld has its own datadir, socket,
//! pid file and port under a temporary directory. Every wait is bounded.
//!
//! Without root, resource-agents, mariadb-server, e2fsprogs or losetup:
//! SKIPPED, or a failure when `CI` is set.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, poll_for, temp_dir, Daemon, HALB};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const NEEDS: &[&str] = &[
    "/usr/lib/ocf/resource.d/heartbeat/mysql",
    "/usr/lib/ocf/resource.d/heartbeat/Filesystem",
    "/usr/sbin/mysqld",
    "/usr/bin/mariadb-install-db",
    "/usr/bin/mysql",
    "/sbin/mkfs.ext4",
    "/sbin/losetup",
];

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(o.status.success(), "{cmd} {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Everything the test set up, undone on drop (also on failure): halb's
/// mysqld by its PID, the namespace, the loop device.
struct Lab {
    ns: String,
    loopdev: String,
    pidfile: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            let _ = run("kill", &["-KILL", &pid.to_string()]);
        }
        let _ = run("ip", &["netns", "del", &self.ns]);
        // The mount lived in halb's mount namespace (ip netns exec): gone
        // with it, so the loop device can go.
        for _ in 0..50 {
            if run("losetup", &["-d", &self.loopdev]).status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn sql(sock: &Path, q: &str) -> Option<String> {
    let o = run(
        "mysql",
        &[
            "-S",
            sock.to_str().unwrap(),
            "-u",
            "root",
            "-N",
            "-B",
            "-e",
            q,
        ],
    );
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

fn group(d: &Daemon) -> Option<serde_json::Value> {
    d.status()?.get("resources")?.get(0).cloned()
}

fn wait_group(d: &Daemon, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    poll_for(Duration::from_secs(90), || group(d).filter(|g| f(g)))
        .unwrap_or_else(|| panic!("{what}: {:?}\n{}", group(d), d.log()))
}

#[test]
fn the_mysql_example_starts_is_restarted_in_place_and_stops() {
    let root = nix::unistd::geteuid().is_root();
    let missing: Vec<_> = NEEDS.iter().filter(|p| !Path::new(p).exists()).collect();
    if !root || !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with resource-agents, mariadb-server, e2fsprogs: missing {missing:?}"
        );
        println!("SKIPPED: needs root and {missing:?}");
        return;
    }
    let dir = temp_dir("mysql");
    let (mnt, rundir) = (dir.join("mnt"), dir.join("run"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&rundir).unwrap();
    ok("chown", &["mysql:mysql", rundir.to_str().unwrap()]);
    // The shared disk: an ext4 image on a loop device, its database made
    // once as the example says (in a mount namespace of its own).
    let img = dir.join("disk.img");
    ok("truncate", &["-s", "256M", img.to_str().unwrap()]);
    ok("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()]);
    let loopdev = ok("losetup", &["--find", "--show", img.to_str().unwrap()]);
    let ns = format!("hrs-my-{}", std::process::id());
    let lab = Lab {
        ns: ns.clone(),
        loopdev: loopdev.clone(),
        pidfile: rundir.join("mysqld.pid"),
    };
    let port = free_port();
    let prepare = format!(
        "mount {loopdev} {m} && mkdir {m}/data && chown mysql:mysql {m}/data && \
         printf '[mysqld]\\nbind-address = 127.0.0.1\\nport = {port}\\ninnodb_log_file_size = 8M\\n' > {m}/my.cnf && \
         mariadb-install-db --user=mysql --datadir={m}/data --skip-test-db > {d}/install.log 2>&1; \
         rc=$?; umount {m}; exit $rc",
        m = mnt.display(),
        d = dir.display(),
    );
    ok(
        "unshare",
        &["-m", "--propagation", "private", "sh", "-c", &prepare],
    );

    ok("ip", &["netns", "add", &ns]);
    for args in [
        &["link", "add", "d0", "type", "veth", "peer", "name", "d1"][..],
        &["link", "set", "d1", "up"],
        &["addr", "add", "192.0.2.1/24", "dev", "d0"],
        &["link", "set", "d0", "up"],
        &["link", "set", "lo", "up"],
    ] {
        let mut a = vec!["-n", ns.as_str()];
        a.extend_from_slice(args);
        ok("ip", &a);
    }

    // The example, with this machine's device, paths and interface.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/mysql-shared-disk.toml"
    ))
    .unwrap();
    // Without its memcached member: this director shares the host's /run,
    // where the init script's pid file would be the host's own memcached
    // (scripts/resource-system-tests mysql runs the whole group, each
    // director with its own /run).
    let cache = example
        .find("  # A cache beside the database")
        .expect("the example's memcached member");
    let example = &example[..cache];
    let config = example
        .replace("/dev/disk/by-id/wwn-0x600a0b80005ad8bb", &loopdev)
        .replace("/srv/mysql", mnt.to_str().unwrap())
        .replace("/run/mysqld-ha", rundir.to_str().unwrap())
        .replace("interface = \"eth0\"", "interface = \"d0\"")
        .replace(
            "name = \"db-",
            &format!("name = \"hrs{}-", std::process::id()),
        );
    assert_ne!(config, example);
    let file = dir.join("halb.toml");
    std::fs::write(&file, &config).unwrap();
    let check = run(HALB, &["check-config", file.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");

    let socket = dir.join("halb.sock");
    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns, HALB, "run", "--config"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = Daemon::attach(child, &dir, &file, &socket);

    // Master: the disk is mounted, mysqld runs on it.
    let g = wait_group(&d, "started", |g| g["state"] == "started");
    assert_eq!(g["active"], true, "{g}");
    let sock = rundir.join("mysqld.sock");
    let written = sql(
        &sock,
        "CREATE DATABASE hrs; CREATE TABLE hrs.t (a INT); INSERT INTO hrs.t VALUES (42); SELECT a FROM hrs.t",
    );
    assert_eq!(written.as_deref(), Some("42"), "{}", d.log());
    // Over TCP on loopback too (inside the director's namespace).
    let tcp = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns,
            "mysql",
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "root",
            "-N",
            "-B",
            "-e",
            "SELECT 1",
        ],
    );
    // root is socket-authenticated: a TCP login is refused by MariaDB,
    // which proves the server answers on the port.
    let tcp_text = String::from_utf8_lossy(&tcp.stderr);
    assert!(
        tcp.status.success() || tcp_text.contains("Access denied"),
        "{tcp:?}"
    );

    // mysqld dies: the monitor notices, it is restarted in place (the
    // disk stays mounted), and the row is still there.
    let pid = std::fs::read_to_string(&lab.pidfile).unwrap();
    let pid = pid.trim().to_owned();
    ok("kill", &["-KILL", &pid]);
    let g = wait_group(&d, "mysql restarted", |g| {
        g["state"] == "started" && g["members"][1]["fail_count"] == 1
    });
    assert_eq!(
        g["members"][0]["fail_count"], 0,
        "the disk was not touched: {g}"
    );
    assert_eq!(g["members"][1]["last_failure"]["op"], "monitor", "{g}");
    let again = poll_for(Duration::from_secs(30), || {
        sql(&sock, "SELECT a FROM hrs.t").filter(|s| s == "42")
    });
    assert!(again.is_some(), "{}", d.log());
    let new_pid = std::fs::read_to_string(&lab.pidfile).unwrap();
    assert_ne!(new_pid.trim(), pid, "a new mysqld");
    let log = d.log();
    assert!(log.contains("restarted"), "{log}");

    // SIGTERM: mysqld stopped, then the disk unmounted, then the exit.
    d.signal("-TERM");
    let st = poll_for(Duration::from_secs(120), || d.child.try_wait().unwrap());
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", d.log());
    let log = d.log();
    let pid = std::process::id();
    let sm = log.find(&format!("member hrs{pid}-mysql: stopped"));
    let sf = log.find(&format!("member hrs{pid}-fs: stopped"));
    assert!(
        matches!((sm, sf), (Some(a), Some(b)) if a < b),
        "not stopped mysql then fs:\n{log}"
    );
    assert!(sql(&sock, "SELECT 1").is_none(), "mysqld still answers");
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
}
