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
    let rules = "-A -f 7 -s rr\n-a -f 7 -r 198.51.100.4:0 -g -w 1\n";
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
