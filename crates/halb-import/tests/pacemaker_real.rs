//! `halb import pacemaker` against what Pacemaker's own tools print: a
//! cluster is configured with the real crm shell (Debian's crmsh) on an
//! offline CIB file (`CIB_file`, no cluster needed), then read back both as
//! `crm configure show` text and as `cibadmin --query` XML. Both import,
//! pass halb's check, and say the same (the TOML equal but for the origin
//! comments). Under CI the tools must be there (.ci/packages: crmsh,
//! pacemaker-cli-utils, resource-agents).
#![allow(clippy::unwrap_used)]

use halb_import::{check, import, Format, Input, MemorySource, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// The cluster, as an admin types it (crm's short agent names included).
const CLUSTER: &str = "\
primitive fs ocf:heartbeat:Filesystem params device=/dev/drbd0 directory=/srv fstype=ext4 \
op monitor interval=20s timeout=40s op start timeout=60s interval=0 op stop timeout=60s interval=0
primitive vip IPaddr2 params ip=192.0.2.10 cidr_netmask=24 nic=eth0 op monitor interval=10s
primitive web ocf:heartbeat:Dummy op monitor interval=10s timeout=20s on-fail=restart
primitive extra Dummy
group webgroup vip fs web meta migration-threshold=3 failure-timeout=120s
colocation extra-with-web inf: extra webgroup
order web-before-extra Mandatory: webgroup extra
location prefer-node1 webgroup 100: node1
property stonith-enabled=false no-quorum-policy=ignore
rsc_defaults resource-stickiness=100
";

fn without_comments(toml: &str) -> String {
    toml.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn crm_text_and_cib_xml_from_the_real_tools_import_alike() {
    let (Some(crm), Some(cibadmin)) = (tool("crm"), tool("cibadmin")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "crm (crmsh) and cibadmin (pacemaker-cli-utils) are missing: .ci/packages lists them"
        );
        eprintln!("SKIPPED: crmsh and pacemaker-cli-utils are not installed");
        return;
    };
    let dir = std::env::temp_dir().join(format!("halb-import-pcmk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cib = dir.join("cib.xml");
    let empty = Command::new(&cibadmin).arg("--empty").output().unwrap();
    assert!(
        empty.status.success(),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );
    std::fs::write(&cib, &empty.stdout).unwrap();
    let input = dir.join("cluster.crm");
    std::fs::write(&input, CLUSTER).unwrap();
    let run = |args: &[&str], prog: &Path| {
        let out = Command::new("timeout")
            .arg("120")
            .arg(prog)
            .args(args)
            .env("CIB_file", &cib)
            .env("HOME", &dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            prog.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(
        &["-F", "configure", "load", "update", input.to_str().unwrap()],
        &crm,
    );
    let text = run(&["configure", "show"], &crm);
    let xml = run(&["--query"], &cibadmin);
    // crm prints the short names back (`Filesystem` for ocf:heartbeat:…).
    assert!(text.contains("primitive vip IPaddr2"), "{text}");

    let from_text = import(
        Format::Pacemaker,
        &[Input::new("cluster.crm", text.as_str())],
        &MemorySource::default(),
        &Options::default(),
    )
    .unwrap_or_else(|e| panic!("{}\n{text}", e.render()));
    let from_xml = import(
        Format::Pacemaker,
        &[Input::new("cib.xml", xml.as_str())],
        &MemorySource::default(),
        &Options::default(),
    )
    .unwrap_or_else(|e| panic!("{}\n{xml}", e.render()));
    for out in [&from_text, &from_xml] {
        check(&out.toml, "halb.toml").unwrap();
        let t = &out.toml;
        assert!(t.contains("virtual_ipaddress = [\"192.0.2.10/24\"]"), "{t}");
        assert!(t.contains("agent = \"ocf:heartbeat:Filesystem\""), "{t}");
        assert!(
            t.contains("stop_timeout = \"1m\"") || t.contains("stop_timeout = \"60s\""),
            "{t}"
        );
        assert!(t.contains("migration_threshold = 3"), "{t}");
        assert!(
            t.contains("failure_timeout = \"2m\"") || t.contains("failure_timeout = \"120s\""),
            "{t}"
        );
        assert!(t.contains("preempt = false"), "{t}");
        // extra runs with the group, after it.
        assert!(
            t.find("name = \"web\"").unwrap() < t.find("name = \"extra\"").unwrap(),
            "{t}"
        );
        let r = out.report.render();
        assert!(r.contains("stonith-enabled"), "{r}");
        assert!(r.contains("location prefer-node1"), "{r}");
    }
    assert_eq!(
        without_comments(&from_text.toml),
        without_comments(&from_xml.toml)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
