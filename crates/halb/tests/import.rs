//! `halb import` as a user runs it: the binary on files and standard
//! input, its output checked by `halb check-config`, its exit statuses
//! (0 with warnings, 1 with --strict and something unmapped, 2 on parse
//! errors, every one positioned, with nothing written).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const HALB: &str = env!("CARGO_BIN_EXE_halb");

fn halb(args: &[&str]) -> Output {
    Command::new(HALB).args(args).output().unwrap()
}

fn halb_stdin(args: &[&str], input: &str) -> Output {
    let mut c = Command::new(HALB)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("halb-import-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const RULES: &str = "-A -t 192.0.2.1:80 -s wrr\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 -m -w 2\n";

#[test]
fn ipvsadm_file_to_checked_toml() {
    let d = tempdir("ipvsadm");
    let rules = d.join("rules");
    std::fs::write(&rules, RULES).unwrap();
    let out = d.join("halb.toml");
    let o = halb(&[
        "import",
        "ipvsadm",
        rules.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote"), "{}", stderr(&o));
    let c = halb(&["check-config", out.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn stdin_auto_format_to_stdout() {
    let o = halb_stdin(&["import", "--format", "auto", "-"], RULES);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let toml = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(toml.contains("forward = \"masq\""), "{toml}");
    assert!(toml.contains("(from <stdin>:1)"), "{toml}");
    assert!(stderr(&o).contains("looks like ipvsadm"), "{}", stderr(&o));
}

#[test]
fn parse_errors_exit_2_positioned_nothing_written() {
    let d = tempdir("bad");
    let out = d.join("halb.toml");
    let o = halb_stdin(
        &["import", "ipvsadm", "-", "-o", out.to_str().unwrap()],
        "-A -t 192.0.2.1:80\n-A -t nowhere -s rr\n-a -t 192.0.2.9:80 -r 198.51.100.1:80\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("<stdin>:2:7: error: bad address"), "{e}");
    assert!(e.contains("<stdin>:3:1: error:"), "{e}");
    assert!(e.contains("nothing was written"), "{e}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn strict_exits_1_on_unmapped() {
    let rules = "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 198.51.100.4:0 -g -w 1\n";
    let o = halb_stdin(&["import", "ipvsadm", "-"], rules);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("<stdin>:1:1: unmapped:"),
        "{}",
        stderr(&o)
    );
    let o = halb_stdin(&["import", "--strict", "ipvsadm", "-"], rules);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn unknown_format_and_missing_file() {
    let o = halb(&["import", "nginx", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown format"), "{}", stderr(&o));
    let o = halb(&["import", "keepalived", "/nonexistent/keepalived.conf"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/keepalived.conf:0:0: error: cannot read the file"),
        "{}",
        stderr(&o)
    );
}

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

/// Debian's keepalived samples; None (SKIPPED) without the package, a
/// failure under CI.
fn keepalived_samples() -> Option<Vec<PathBuf>> {
    let dir = std::path::Path::new(SAMPLES);
    if !dir.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{SAMPLES} is missing: install Debian's keepalived package (.ci/packages)"
        );
        eprintln!("SKIPPED: {SAMPLES} is missing (apt-get install keepalived)");
        return None;
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("keepalived.conf.")
        })
        .collect();
    v.sort();
    Some(v)
}

#[test]
fn every_keepalived_sample_through_the_binary() {
    let Some(samples) = keepalived_samples() else {
        return;
    };
    let d = tempdir("samples");
    for s in samples {
        let out = d.join(format!("{}.toml", s.file_name().unwrap().to_string_lossy()));
        let o = halb(&[
            "import",
            "auto",
            s.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}: {}", s.display(), stderr(&o));
        assert!(
            stderr(&o).contains("looks like keepalived"),
            "{}",
            stderr(&o)
        );
        let c = halb(&["check-config", out.to_str().unwrap()]);
        assert_eq!(c.status.code(), Some(0), "{}: {}", s.display(), stderr(&c));
        let j = halb(&["check-config", "--json", out.to_str().unwrap()]);
        assert_eq!(j.status.code(), Some(0), "{}", stderr(&j));
        let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
        assert!(
            v["services"].is_array() && v["vrrp_instances"].is_array(),
            "{v}"
        );
    }
    // A sample with unmapped items: --strict fails, with the file written.
    let quorum = format!("{SAMPLES}/keepalived.conf.quorum");
    let out = d.join("strict.toml");
    let o = halb(&[
        "import",
        "--strict",
        "keepalived",
        &quorum,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("keepalived.conf.quorum:31:3: unmapped: virtual_server 10.0.1.1 80.quorum"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn check_config_json_fills_defaults_and_redacts() {
    let d = tempdir("json");
    let f = d.join("halb.toml");
    std::fs::write(
        &f,
        "[[virtual_service]]\nlisten = \"127.0.0.1:8080\"\n[[virtual_service.real_server]]\naddress = \"127.0.0.1:18081\"\n\
         [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 9\nversion = 2\n\
         virtual_ipaddress = [\"192.0.2.9/32\"]\nauth = { type = \"pass\", password = \"s3cret\" }\n",
    )
    .unwrap();
    let o = halb(&["check-config", "--json", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["services"][0]["name"], "tcp/127.0.0.1:8080");
    assert_eq!(v["services"][0]["scheduler"], "wlc");
    assert_eq!(v["vrrp_instances"][0]["priority"], 100);
    assert_eq!(v["vrrp_instances"][0]["auth"]["pass"], "<redacted>");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn keepalived_includes_from_disk_with_globs_and_conditionals() {
    let d = tempdir("include");
    std::fs::create_dir_all(d.join("conf.d")).unwrap();
    std::fs::write(d.join("keepalived.conf"), "include conf.d/*.conf\n").unwrap();
    std::fs::write(d.join("conf.d/10-vars.conf"), "$IF=eth0\n").unwrap();
    std::fs::write(
        d.join("conf.d/20-vi.conf"),
        "vrrp_instance VI_1 {\n interface $IF\n virtual_router_id 51\n@lb1 priority 150\n@^lb1 priority 100\n \
         virtual_ipaddress {\n  192.0.2.100/24\n }\n}\n",
    )
    .unwrap();
    let conf = d.join("keepalived.conf");
    let o = halb(&[
        "import",
        "keepalived",
        "--config-id",
        "lb1",
        conf.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let toml = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(toml.contains("interface = \"eth0\""), "{toml}");
    assert!(toml.contains("priority = 150"), "{toml}");
    assert!(toml.contains("conf.d/20-vi.conf:1)"), "{toml}");
    // A missing include is a positioned error, exit 2.
    std::fs::write(d.join("keepalived.conf"), "\ninclude missing/x.conf\n").unwrap();
    let o = halb(&["import", "keepalived", conf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("keepalived.conf:2:1: error: include: cannot read"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ldirectord_with_hosts_file_and_fold_option() {
    let d = tempdir("ldirectord");
    let cf = d.join("ldirectord.cf");
    // `real=` lines pasted without their indentation.
    std::fs::write(
        &cf,
        "checkinterval=5\nvirtual=www:80\nreal=web1:80 masq\nreal=web2:80 masq 2\n\tservice=http\n",
    )
    .unwrap();
    let hosts = d.join("hosts");
    std::fs::write(
        &hosts,
        "192.0.2.10 www\n198.51.100.1 web1\n198.51.100.2 web2\n",
    )
    .unwrap();
    let out = d.join("halb.toml");
    let args = [
        "import",
        "ldirectord",
        cf.to_str().unwrap(),
        "--hosts",
        hosts.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let o = halb(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(":3:1: error: real: a per-virtual directive unindented"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    let mut folded = args.to_vec();
    folded.push("--fold-unindented");
    let o = halb(&folded);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(toml.contains("# www is 192.0.2.10"), "{toml}");
    let c = halb(&["check-config", out.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn heartbeat_files_with_their_ldirectord_config() {
    let d = tempdir("heartbeat");
    std::fs::write(
        d.join("ha.cf"),
        "keepalive 1\ndeadtime 10\nbcast eth0\nauto_failback off\nnode lb1 lb2\n",
    )
    .unwrap();
    std::fs::write(
        d.join("haresources"),
        "lb2 192.0.2.10/24/eth0 ldirectord::ldirectord.cf\n",
    )
    .unwrap();
    std::fs::write(
        d.join("authkeys"),
        "auth 1\n1 sha1 0123456789abcdef-secret\n",
    )
    .unwrap();
    std::fs::write(
        d.join("ldirectord.cf"),
        "virtual=192.0.2.10:80\n\treal=198.51.100.1:80 gate\n\tchecktype=connect\n",
    )
    .unwrap();
    let out = d.join("halb.toml");
    let file = |n: &str| d.join(n).to_str().unwrap().to_owned();
    let o = halb(&[
        "import",
        "heartbeat",
        &file("ha.cf"),
        &file("haresources"),
        &file("authkeys"),
        "--node",
        "lb2",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("takes over after 3 × 2770ms + skew = about 10.00s"),
        "{e}"
    );
    assert!(
        e.contains("1 virtual services, 1 real servers, 1 health checks, 1 VRRP instances"),
        "{e}"
    );
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(toml.contains("priority = 150"), "{toml}");
    let c = halb(&["check-config", out.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    let o = halb(&[
        "import",
        "heartbeat",
        &file("ha.cf"),
        &file("haresources"),
        &file("authkeys"),
        "--node",
        "lb3",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--node lb3 is not a node of ha.cf"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}
