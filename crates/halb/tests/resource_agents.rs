//! `halb check-config` reads the OCF agents' meta-data (Debian's
//! `resource-agents`) and checks the members' parameters against it,
//! and finds every agent a resource group names: all errors in one run,
//! each at its line.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

mod common;

use common::{free_port, halb_to_end, temp_dir, Daemon};

const OCF: &str = "/usr/lib/ocf/resource.d/heartbeat";

/// Debian's agents are here; under CI their absence is a failure, not a
/// skip.
fn have_resource_agents() -> bool {
    let there = Path::new(OCF).join("Dummy").exists() && Path::new(OCF).join("Filesystem").exists();
    if !there {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{OCF}/Dummy and Filesystem missing: apt-get install resource-agents (.ci/packages)"
        );
        eprintln!("skipped: {OCF} has no Dummy or Filesystem (apt-get install resource-agents)");
    }
    there
}

fn check_config(file: &Path) -> Output {
    halb_to_end(
        &["check-config".as_ref(), file.as_os_str()],
        Duration::from_secs(60),
    )
}

/// A VRRP instance and the group "web" following it, with `members`
/// (from line 11 on).
fn group(members: &str) -> String {
    format!(
        r#"[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_ipaddress = ["192.0.2.100/24"]

[[resource_group]]
name = "web"
follows = "VI_1"
{members}"#
    )
}

#[test]
fn unknown_and_missing_parameters_and_missing_agents_in_one_run() {
    if !have_resource_agents() {
        return;
    }
    let dir = temp_dir("resource-agents");
    let file = dir.join("halb.toml");
    let src = group(
        r#"
  [[resource_group.member]]
  name = "dummy"
  agent = "ocf:heartbeat:Dummy"
  params = { state = "/run/halb-test-dummy.state", colour = "blue" }

  [[resource_group.member]]
  name = "fs"
  agent = "ocf:heartbeat:Filesystem"
  params = { directory = "/mnt/shared", fstype = "ext4" }

  [[resource_group.member]]
  name = "gone"
  agent = "ocf:heartbeat:NoSuchAgent"

  [[resource_group.member]]
  name = "init"
  agent = "lsb:halb-no-such-script"

  [[resource_group.member]]
  name = "v1"
  agent = "heartbeat:halb-no-such-script::a"
"#,
    );
    std::fs::write(&file, &src).unwrap();
    let out = check_config(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let f = file.display();
    for want in [
        format!("error: {f}:15:52: resource_group[0].member[0].params.colour: ocf:heartbeat:Dummy has no parameter `colour`"),
        // What Dummy takes, with the short descriptions of its meta-data.
        "= expected: the parameters ocf:heartbeat:Dummy takes:\n        state: ".to_owned(),
        format!("error: {f}:20:3: resource_group[0].member[1].params: ocf:heartbeat:Filesystem requires the parameter `device`"),
        "device (required): ".to_owned(),
        "= fix: add device = \"…\" to params".to_owned(),
        format!("error: {f}:24:11: resource_group[0].member[2].agent: agent not installed: {OCF}/NoSuchAgent does not exist"),
        format!("error: {f}:28:11: resource_group[0].member[3].agent: init script not installed: /etc/init.d/halb-no-such-script does not exist"),
        format!("error: {f}:32:11: resource_group[0].member[4].agent: heartbeat script not installed: no halb-no-such-script in /etc/ha.d/resource.d"),
        format!("halb: 5 errors in {f}"),
    ] {
        assert!(err.contains(&want), "no {want:?} in\n{err}");
    }
}

#[test]
fn a_group_of_installed_agents_with_their_parameters_is_ok() {
    if !have_resource_agents() {
        return;
    }
    let dir = temp_dir("resource-agents-ok");
    let file = dir.join("halb.toml");
    let src = group(
        r#"
  [[resource_group.member]]
  name = "fs"
  agent = "ocf:heartbeat:Filesystem"
  params = { device = "/dev/loop0", directory = "/mnt/shared", fstype = "ext4", force_unmount = true }

  [[resource_group.member]]
  name = "dummy"
  agent = "ocf:heartbeat:Dummy"
"#,
    );
    std::fs::write(&file, &src).unwrap();
    let out = check_config(&file);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("1 resource groups of 2 members, their agents checked"),
        "{out:?}"
    );
}

#[test]
fn the_daemon_refuses_to_start_and_to_reload_with_an_agent_error() {
    if !have_resource_agents() {
        return;
    }
    let bad = group(
        r#"  [[resource_group.member]]
  name = "fs"
  agent = "ocf:heartbeat:Filesystem"
  params = { directory = "/mnt/shared", fstype = "ext4" }
"#,
    );
    let service = format!(
        "[[virtual_service]]\nlisten = \"127.0.0.1:{}\"\n[[virtual_service.real_server]]\naddress = \"127.0.0.1:9\"\n",
        free_port()
    );
    // At start: nothing is started.
    let dir = temp_dir("resource-agents-run");
    let file = dir.join("halb.toml");
    std::fs::write(&file, format!("{service}\n{bad}")).unwrap();
    let sock = dir.join("halb.sock");
    let args = [
        "run".as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
        "--socket".as_ref(),
        sock.as_os_str(),
    ];
    let out = halb_to_end(&args, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ocf:heartbeat:Filesystem requires the parameter `device`")
            && err.contains("nothing was started"),
        "{err}"
    );
    // At a reload: rejected, the running config stays.
    let d = Daemon::start(&temp_dir("resource-agents-reload"), &service);
    std::fs::write(&d.file, format!("{service}\n{bad}")).unwrap();
    let out = d.ctl(&["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        err.contains("requires the parameter `device`") && err.contains("the running config stays"),
        "{err}"
    );
    assert!(d.ctl(&["list"]).status.success());
}
