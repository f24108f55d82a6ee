//! What `halb --version` says about the build: the commit (from git when
//! the source is a checkout of halb's repository, else `HALB_COMMIT`,
//! which a tarball build may set, else "unknown"), the enabled Cargo
//! features and what the binary holds, the profile, target and rustc.
//! Nothing here can fail the build: every missing piece is "unknown".

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HALB_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // The workspace root: crates/halb/../..
    let root = manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.clone());
    let commit = std::env::var("HALB_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git_commit(&root))
        .unwrap_or_else(|| "unknown (not built from a git checkout; set HALB_COMMIT)".to_owned());
    println!("cargo:rustc-env=HALB_BUILD_COMMIT={commit}");

    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(|f| f.to_lowercase()))
        .collect();
    features.sort();
    let cargo = if features.is_empty() {
        "default".to_owned()
    } else {
        features.join(",")
    };
    println!(
        "cargo:rustc-env=HALB_BUILD_FEATURES={cargo} (data planes: proxy, ipvs; vrrp v2/v3 with hmac; \
         probes: tcp, http, https, mysql, pgsql, redis, dns, smtp, udp, icmp, external; \
         alerts: webhook, smtp; resource agents: ocf, lsb, heartbeat; tls: rustls+ring; \
         systemd notify)"
    );
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=HALB_BUILD_PROFILE={profile}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=HALB_BUILD_TARGET={target}");
    let rustc = std::env::var_os("RUSTC")
        .and_then(|r| run(Command::new(r).arg("--version"), &root))
        .unwrap_or_else(|| "rustc unknown".to_owned());
    println!("cargo:rustc-env=HALB_BUILD_RUSTC={rustc}");
}

/// The checkout's commit (12 hex digits and its date), if `root` is the
/// top of a git work tree: a tarball
/// unpacked inside some other repository does not take that one's commit.
fn git_commit(root: &Path) -> Option<String> {
    let top = run(
        Command::new("git").args(["rev-parse", "--show-toplevel"]),
        root,
    )?;
    let same = match (Path::new(&top).canonicalize(), root.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it names, packed
    // refs; only files that exist (cargo reruns a build script for a
    // missing one every time, and so rebuilds halb).
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(r) = run(
        Command::new("git").args(["symbolic-ref", "-q", "HEAD"]),
        root,
    ) {
        watch.push(r);
    }
    for name in &watch {
        if let Some(p) = run(
            Command::new("git").args(["rev-parse", "--git-path", name]),
            root,
        ) {
            let path = root.join(p);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let hash = run(
        Command::new("git").args(["rev-parse", "--short=12", "HEAD"]),
        root,
    )?;
    let date = run(
        Command::new("git").args(["log", "-1", "--format=%cs", "HEAD"]),
        root,
    )
    .unwrap_or_default();
    Some(if date.is_empty() {
        hash
    } else {
        format!("{hash} ({date})")
    })
}

/// `cmd`'s first line of output, run in `dir`, if it succeeded.
fn run(cmd: &mut Command, dir: &Path) -> Option<String> {
    let out = cmd.current_dir(dir).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let line = s.lines().next()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}
