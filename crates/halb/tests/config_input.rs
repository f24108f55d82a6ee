//! What `halb check-config` and `halb run` read: regular files only, of
//! a bounded size, refused at once otherwise; and what their errors
//! quote: a cut line, never a secret.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::{halb_to_end, temp_dir};

/// `halb ARGS`, which must end by itself within a bound.
fn halb(args: &[&std::ffi::OsStr]) -> Output {
    halb_to_end(args, Duration::from_secs(20))
}

fn check_config(file: &std::path::Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["check-config".as_ref()];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    args.push(file.as_os_str());
    halb(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn special_files_are_refused_at_once() {
    let dir = temp_dir("special");
    let fifo = dir.join("halb.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for (file, what) in [
        (fifo.as_path(), "a FIFO (named pipe), not a regular file"),
        (
            std::path::Path::new("/dev/zero"),
            "a character device, not a regular file",
        ),
        (dir.as_path(), "a directory, not a regular file"),
    ] {
        let out = check_config(file, &[]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = stderr(&out);
        assert!(
            err.contains(what) && err.contains(&file.display().to_string()),
            "{err}"
        );
        // The daemon refuses the same, and starts nothing.
        let out = halb(&[
            "run".as_ref(),
            "--config".as_ref(),
            file.as_os_str(),
            "--socket".as_ref(),
            dir.join("halb.sock").as_os_str(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(stderr(&out).contains(what), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("nothing was started"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn size_is_bounded() {
    let dir = temp_dir("size");
    let file = dir.join("halb.toml");
    let mut text = String::from("[global]\nworkers = 1\n");
    text.push_str(&"# padding\n".repeat(200));
    std::fs::write(&file, &text).unwrap();
    let out = check_config(&file, &["--max-config-size", "1KiB"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("bytes, larger than the limit of 1 KiB (1024 bytes)"),
        "{err}"
    );
    assert!(err.contains("--max-config-size"), "{err}");
    // Under the default 64 MiB it is fine.
    let out = check_config(&file, &[]);
    assert!(out.status.success(), "{out:?}");
    let out = check_config(&file, &["--max-config-size", "lots"]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn errors_quote_a_cut_line_and_never_a_secret() {
    let dir = temp_dir("secret");
    let file = dir.join("halb.toml");
    let long = "x".repeat(200_000);
    let text = format!(
        "[global.alert]\nsmtp_password = \"hunter2-very-secret\"\nsmtp_user = 5\n\n\
         [[virtual_service]]\nlisten = \"127.0.0.1:80\"\nname = \"{long}\" \n\
         scheduler = \"wrrr\" # {long}\n\
         [[virtual_service.real_server]]\naddress = \"127.0.0.1:81\"\n\
         check = {{ type = \"redis\", password = \"redis-secret-pw\", bogus = 1 }}\n\
         [[vrrp_instance]]\ninterface = \"lo\"\nvrid = 1\npriority = 100\n\
         vips = [\"192.0.2.1/24\"]\nversion = 2\nauth = {{ type = \"pas\", password = \"vrrpsecr\" }}\n"
    );
    std::fs::write(&file, &text).unwrap();
    let out = check_config(&file, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    for secret in ["hunter2", "redis-secret", "vrrpsecr"] {
        assert!(!err.contains(secret), "{secret} quoted:\n{err}");
    }
    assert!(err.contains("password = ***"), "{err}");
    assert!(err.contains("unknown scheduler"), "{err}");
    // The long line is cut around the column, with marks: every quoted
    // source line (` N | text`) stays readable. (An `expected:` list may be
    // long; it is halb's own text, not the input's.)
    let widest = err
        .lines()
        .filter(|l| {
            l.trim_start()
                .split_once(" | ")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(widest < 200, "a quoted line of {widest} characters:\n{err}");
    assert!(err.contains("scheduler = \"wrrr\" # xxx"), "{err}");
    assert!(err.contains('…'), "{err}");
    assert!(err.len() < 10_000, "{} bytes of errors", err.len());
}
