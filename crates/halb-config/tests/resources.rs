//! `[[resource_group]]`: the model, the errors, and the agent checks.
#![allow(clippy::unwrap_used)]

use halb_config::{check_agents, parse, AgentLookup, ConfigErrors};
use halb_resource::{Agent, Follows, GroupSpec, MemberSpec, MetaData, OnFail, OpSpec, Parameter};
use insta::assert_snapshot;
use std::path::Path;
use std::time::Duration;

fn errors(src: &str) -> ConfigErrors {
    match parse(src, Path::new("halb.toml")) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e,
    }
}

fn check(e: &ConfigErrors, src: &str) {
    let lines = src.split('\n').count();
    for err in e {
        assert!(err.line >= 1 && err.line <= lines, "{err:?}");
        assert!(err.column >= 1 && err.end_column > err.column, "{err:?}");
        assert!(err.expected.is_some() && err.fix.is_some(), "{err:?}");
    }
}

fn render(src: &str) -> String {
    let e = errors(src);
    check(&e, src);
    e.render()
}

const VRRP: &str = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_ipaddress = ["192.0.2.100/24"]

[[vrrp_instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 52
priority = 150
virtual_ipaddress = ["192.0.2.101/24"]

[[vrrp_sync_group]]
name = "G1"
instances = ["VI_2"]
"#;

const FULL: &str = r#"
[[resource_group]]
name = "web"
follows = "VI_1"
migration_threshold = 3
failure_timeout = "60s"
start_failure_is_fatal = false
managed = false

  [[resource_group.member]]
  name = "web-fs"
  agent = "ocf:heartbeat:Filesystem"
  params = { device = "/dev/loop0", directory = "/mnt/shared", fstype = "ext4", force_unmount = true, run_fsck = 0 }
  monitor = { interval = "20s", timeout = "40s" }
  start_timeout = "60s"
  stop_timeout = "90s"
  on_fail = "block"

  [[resource_group.member]]
  name = "nginx"
  agent = "lsb:nginx"
  start_on_fail = "stop"
  stop_on_fail = "block"

[[resource_group]]
name = "db"
follows = "G1"

  [[resource_group.member]]
  name = "db-vip"
  agent = "heartbeat:IPaddr2::192.0.2.101/24"
  monitor = { interval = 0 }
  on_fail = "standby"

  [[resource_group.member]]
  name = "cache"
  agent = "systemd:memcached"

  [resource_group.member.params]
"#;

#[test]
fn a_full_example_gives_the_exact_groups() {
    // The last member's empty [params] table: no parameters, but a
    // systemd agent takes none: an error. Without it, the full example.
    let src = format!(
        "{VRRP}{}",
        FULL.replace("\n  [resource_group.member.params]\n", "")
    );
    let c = parse(&src, Path::new("halb.toml")).unwrap();
    let mut fs = MemberSpec::new(
        "web-fs",
        Agent::Ocf {
            provider: "heartbeat".into(),
            kind: "Filesystem".into(),
        },
    );
    fs.params = [
        ("device", "/dev/loop0"),
        ("directory", "/mnt/shared"),
        ("fstype", "ext4"),
        ("force_unmount", "true"),
        ("run_fsck", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    fs.monitor = OpSpec {
        interval: Duration::from_secs(20),
        timeout: Duration::from_secs(40),
    };
    fs.start_timeout = Duration::from_secs(60);
    fs.stop_timeout = Duration::from_secs(90);
    fs.on_fail = OnFail::Block;
    let mut nginx = MemberSpec::new("nginx", Agent::Lsb("nginx".into()));
    nginx.start_on_fail = Some(OnFail::Stop);
    let mut web = GroupSpec::new("web", Follows::Instance("VI_1".into()), vec![fs, nginx]);
    web.migration_threshold = 3;
    web.failure_timeout = Some(Duration::from_secs(60));
    web.start_failure_is_fatal = false;
    web.managed = false;
    let mut vip = MemberSpec::new(
        "db-vip",
        Agent::Heartbeat {
            name: "IPaddr2".into(),
            args: vec!["192.0.2.101/24".into()],
        },
    );
    vip.monitor.interval = Duration::ZERO;
    vip.on_fail = OnFail::Standby;
    let cache = MemberSpec::new("cache", Agent::Systemd("memcached".into()));
    let db = GroupSpec::new("db", Follows::SyncGroup("G1".into()), vec![vip, cache]);
    assert_eq!(c.resource_groups, vec![web, db]);
}

#[test]
fn params_on_a_non_ocf_agent_are_an_error() {
    let src = format!("{VRRP}{FULL}");
    let e = errors(&src);
    check(&e, &src);
    assert_eq!(e.len(), 1, "{}", e.render());
    let err = e.iter().next().unwrap();
    assert_eq!(err.key, "resource_group[1].member[1].params");
    assert!(
        err.message.contains("systemd agents take no params"),
        "{err:?}"
    );
}

#[test]
fn resource_group_errors() {
    let src = format!(
        "{VRRP}{}",
        r#"
[[resource_group]]
name = "web"
follows = "VI_3"
migration_treshold = 3
failure_timeout = "0s"

  [[resource_group.member]]
  name = "fs"
  agent = "ocf:Filesystem"
  params = { device = "/dev/loop0", options = ["ro"], weird-name = "x" }
  monitor = { interval = "10s", timeout = "500ms" }
  start_timeout = 0
  on_fail = "fence-it"

  [[resource_group.member]]
  name = "nginx"
  agent = "upstart:nginx"
  on_fail = "restrat"

  [[resource_group.member]]
  name = "unit"
  agent = "systemd:my@unit!.service"

[[resource_group]]
name = "web"
follows = "G1"

  [[resource_group.member]]
  name = "fs"
  agent = "lsb:/etc/init.d/nginx"

[[resource_group]]
name = "empty"
follows = "VI_1"

[[resource_group]]
follows = "G2"
  [[resource_group.member]]
  agent = "heartbeat:IPaddr2"
  params = { ip = "192.0.2.100" }

[[resource_group]]
name = "none"
follows = "VI_1"
member = []
"#
    );
    assert_snapshot!(render(&src));
}

#[test]
fn a_name_used_by_an_instance_and_a_sync_group_is_ambiguous() {
    let src = format!(
        "{VRRP}{}",
        r#"
[[vrrp_sync_group]]
name = "VI_1"
instances = ["VI_1"]

[[resource_group]]
name = "web"
follows = "VI_1"
  [[resource_group.member]]
  name = "fs"
  agent = "lsb:nginx"
"#
    );
    let e = errors(&src);
    check(&e, &src);
    let all = e.render();
    assert!(
        all.contains("names both a vrrp_instance and a vrrp_sync_group"),
        "{all}"
    );
}

#[test]
fn following_an_instance_of_a_sync_group_is_allowed() {
    let src = format!(
        "{VRRP}{}",
        r#"
[[resource_group]]
name = "web"
follows = "VI_2"
  [[resource_group.member]]
  name = "fs"
  agent = "lsb:nginx"
"#
    );
    let c = parse(&src, Path::new("halb.toml")).unwrap();
    assert_eq!(
        c.resource_groups[0].follows,
        Follows::Instance("VI_2".into())
    );
}

fn param(name: &str, required: bool, short: &str) -> Parameter {
    Parameter {
        name: name.into(),
        required,
        short: short.into(),
        ..Parameter::default()
    }
}

#[test]
fn agent_checks_are_positioned_and_asked_once_per_agent() {
    let src = format!(
        "{VRRP}{}",
        r#"
[[resource_group]]
name = "web"
follows = "VI_1"
  [[resource_group.member]]
  name = "dummy"
  agent = "ocf:heartbeat:Dummy"
  params = { state = "/run/x", fake = "y", sate = "z" }
  [[resource_group.member]]
  name = "fs"
  agent = "ocf:heartbeat:Filesystem"
  params = { directory = "/mnt" }
  [[resource_group.member]]
  name = "fs2"
  agent = "ocf:heartbeat:Filesystem"
  [resource_group.member.params]
  device = "/dev/sdb"
  directory = "/mnt2"
  [[resource_group.member]]
  name = "web"
  agent = "lsb:nginx"
  [[resource_group.member]]
  name = "gone"
  agent = "ocf:heartbeat:Nope"
"#
    );
    let c = parse(&src, Path::new("halb.toml")).unwrap();
    let mut asked = Vec::new();
    let e = check_agents(&src, Path::new("halb.toml"), &c, |a| {
        asked.push(a.to_string());
        match a.to_string().as_str() {
            "ocf:heartbeat:Dummy" => AgentLookup::Ocf(MetaData {
                name: "Dummy".into(),
                parameters: vec![
                    param("state", false, "State file"),
                    param(
                        "fake",
                        false,
                        "Fake attribute that can be changed to cause a reload",
                    ),
                ],
                actions: Vec::new(),
            }),
            "ocf:heartbeat:Filesystem" => AgentLookup::Ocf(MetaData {
                name: "Filesystem".into(),
                parameters: vec![
                    param("device", true, "block device"),
                    param("directory", true, "mount point"),
                    param("fstype", false, "filesystem type"),
                ],
                actions: Vec::new(),
            }),
            "ocf:heartbeat:Nope" => AgentLookup::Unusable {
                problem: "agent not installed: /usr/lib/ocf/resource.d/heartbeat/Nope".into(),
                fix: "install resource-agents".into(),
            },
            _ => AgentLookup::Found,
        }
    })
    .unwrap_err();
    asked.sort();
    assert_eq!(
        asked,
        [
            "lsb:nginx",
            "ocf:heartbeat:Dummy",
            "ocf:heartbeat:Filesystem",
            "ocf:heartbeat:Nope"
        ]
    );
    check(&e, &src);
    assert_snapshot!(e.render());
}

#[test]
fn the_loader_walks_resource_groups_as_the_rest() {
    let svc = |port: u16| {
        format!("\n[[virtual_service]]\nlisten = \"127.0.0.1:{port}\"\n  [[virtual_service.real_server]]\n  address = \"127.0.0.2:{port}\"\n")
    };
    let groups = "\n[[resource_group]]\nname = \"web\"\nfollows = \"VI_1\"\n  [[resource_group.member]]\n  name = \"nginx\"\n  agent = \"lsb:nginx\"\n";
    let member =
        "\n[[resource_group.member]]\nname = \"fs\"\nagent = \"ocf:heartbeat:Filesystem\"\n";
    // A member after a service: still its group's, in the rest.
    let src = format!("{VRRP}{}{groups}{}{member}{}", svc(80), svc(81), svc(82));
    let mut loader = halb_config::Loader::default();
    let c = loader.parse(&src, Path::new("halb.toml")).unwrap();
    assert!(!loader.stats().whole, "{:?}", loader.stats());
    assert_eq!(c, parse(&src, Path::new("halb.toml")).unwrap());
    let names: Vec<&str> = c.resource_groups[0]
        .members
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["nginx", "fs"]);
}

#[test]
fn docs_resource_group_example_parses() {
    let doc = include_str!("../../../docs/configuration.md");
    let from = doc.find("## Resource groups").unwrap();
    let start = from + doc[from..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let c = parse(&doc[start..end], Path::new("doc.toml")).unwrap();
    let g = &c.resource_groups[0];
    assert_eq!(g.follows, Follows::Instance("VI_1".into()));
    assert_eq!(g.migration_threshold, 3);
    assert_eq!(g.failure_timeout, Some(Duration::from_secs(60)));
    let names: Vec<&str> = g.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["web-fs", "web-nginx", "web-mail"]);
    assert_eq!(g.members[0].params.len(), 3);
    assert_eq!(
        g.members[2].agent,
        Agent::Heartbeat {
            name: "MailTo".into(),
            args: vec!["root@example.com".into()]
        }
    );
}

#[test]
fn the_meta_data_hints_fill_what_a_member_does_not_write() {
    let src = format!(
        "{VRRP}{}",
        r#"
[[resource_group]]
name = "web"
follows = "VI_1"
  [[resource_group.member]]
  name = "fs"
  agent = "ocf:heartbeat:Filesystem"
  params = { device = "/dev/sdb", directory = "/mnt" }
  [[resource_group.member]]
  name = "fs2"
  agent = "ocf:heartbeat:Filesystem"
  params = { device = "/dev/sdc", directory = "/mnt2" }
  start_timeout = "90s"
  monitor = { interval = "5s" }
  [[resource_group.member]]
  name = "web"
  agent = "lsb:nginx"
"#
    );
    let c = parse(&src, Path::new("halb.toml")).unwrap();
    let hint = |name: &str, timeout: u64, interval: u64| halb_resource::metadata::ActionHint {
        name: name.into(),
        timeout: Some(Duration::from_secs(timeout)),
        interval: Some(Duration::from_secs(interval)),
        depth: None,
    };
    let got = check_agents(&src, Path::new("halb.toml"), &c, |a| match a {
        Agent::Ocf { .. } => AgentLookup::Ocf(MetaData {
            name: "Filesystem".into(),
            parameters: vec![
                param("device", true, "block device"),
                param("directory", true, "mount point"),
            ],
            actions: vec![
                hint("start", 60, 0),
                hint("stop", 70, 0),
                hint("monitor", 40, 20),
            ],
        }),
        _ => AgentLookup::Found,
    })
    .unwrap();
    let m = &got.resource_groups[0].members;
    assert_eq!(
        (m[0].start_timeout, m[0].stop_timeout, m[0].monitor),
        (
            Duration::from_secs(60),
            Duration::from_secs(70),
            OpSpec {
                interval: Duration::from_secs(20),
                timeout: Duration::from_secs(40)
            }
        )
    );
    assert_eq!(
        (m[1].start_timeout, m[1].stop_timeout, m[1].monitor),
        (
            Duration::from_secs(90),
            Duration::from_secs(70),
            OpSpec {
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(40)
            }
        )
    );
    // Not OCF: Pacemaker's defaults.
    assert_eq!(m[2], c.resource_groups[0].members[2]);
}

#[test]
fn on_fail_per_operation_errors_are_positioned() {
    let src = format!(
        "{VRRP}{}",
        r#"
[[resource_group]]
name = "web"
follows = "VI_1"

  [[resource_group.member]]
  name = "fs"
  agent = "lsb:fs"
  on_fail = "fence"
  start_on_fail = "ignore"
  stop_on_fail = "ignore"

  [[resource_group.member]]
  name = "nginx"
  agent = "lsb:nginx"
  on_fail = "move"
  start_on_fail = "migrate"
  stop_on_fail = 1
"#
    );
    let e = errors(&src);
    check(&e, &src);
    let got: Vec<(String, usize, usize)> = e
        .iter()
        .map(|x| (x.key.clone(), x.line, x.column))
        .collect();
    let base = VRRP.lines().count();
    let k = |i: usize, key: &str| format!("resource_group[0].member[{i}].{key}");
    assert_eq!(
        got,
        [
            (k(0, "on_fail"), base + 9, 13),
            (k(0, "start_on_fail"), base + 10, 19),
            (k(0, "stop_on_fail"), base + 11, 18),
            (k(1, "start_on_fail"), base + 17, 19),
            (k(1, "stop_on_fail"), base + 18, 18),
        ],
        "{}",
        e.render()
    );
    let all: Vec<_> = e.iter().collect();
    assert!(all[0].message.contains("does not fence"), "{:?}", all[0]);
    assert!(all[0].fix.as_deref().unwrap().contains("\"standby\""));
    assert!(
        all[1].message.contains("unknown start_on_fail \"ignore\""),
        "{:?}",
        all[1]
    );
    assert!(all[2]
        .expected
        .as_deref()
        .unwrap()
        .contains("never started elsewhere"));
    assert_eq!(all[3].fix.as_deref(), Some("did you mean \"move\"?"));
}
