//! The agents shell against real agents: Debian's `resource-agents`
//! (`ocf:heartbeat:Dummy`, its meta-data), a small OCF agent of ours in
//! a temporary OCF root (the environment Pacemaker gives, the exit
//! reason, the deadline), an LSB init script and a heartbeat v1 script
//! written into temporary directories, and a two-member Dummy group
//! driven by the engine and a tokio loop in real time (monitors every
//! 200 ms): starts in order, a removed state file is noticed and the
//! members restarted, stops in reverse, then the group is released.
//!
//! Without `resource-agents` the Dummy tests print SKIPPED, or fail when
//! `CI` is set (.ci/packages lists it).
#![allow(clippy::unwrap_used)]

use halb_resource::agent::Agents;
use halb_resource::{
    Action, Agent, AgentResult, AgentStatus, Engine, EventKind, Follows, GroupSpec, MemberSpec, Op,
    OpId, State,
};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const DUMMY: &str = "/usr/lib/ocf/resource.d/heartbeat/Dummy";

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("halb-resource-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Debian's Dummy agent is there; without it: SKIPPED, or a failure
/// under CI.
fn have_dummy() -> bool {
    if Path::new(DUMMY).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{DUMMY} is missing; CI must install resource-agents (.ci/packages)"
    );
    eprintln!("resource-agents is not installed; SKIPPED (apt-get install resource-agents)");
    false
}

fn agents(tmp: &TempDir) -> Agents {
    Agents {
        rsctmp: tmp.path().join("rsctmp"),
        ..Agents::default()
    }
}

fn dummy(name: &str, state: &Path) -> MemberSpec {
    let mut m = MemberSpec::new(name, Agent::parse("ocf:heartbeat:Dummy").unwrap());
    m.params = vec![("state".into(), state.display().to_string())];
    m.monitor.interval = Duration::from_millis(200);
    m.monitor.timeout = Duration::from_secs(10);
    m.start_timeout = Duration::from_secs(10);
    m.stop_timeout = Duration::from_secs(10);
    m
}

const T: Duration = Duration::from_secs(10);
const I: Duration = Duration::from_millis(200);

#[tokio::test]
async fn dummy_probe_start_monitor_stop() {
    if !have_dummy() {
        return;
    }
    let tmp = TempDir::new("dummy");
    let a = agents(&tmp);
    let state = tmp.path().join("d.state");
    let m = dummy("d", &state);
    let r = a.run(&m, "g", Op::Probe, Duration::ZERO, T).await;
    assert!(r.not_running(), "{r:?}");
    assert_eq!(r.exit_reason, None, "a probe sets no reason");
    let r = a.run(&m, "g", Op::Start, Duration::ZERO, T).await;
    assert!(r.ok(), "{r:?}");
    assert!(state.exists());
    let r = a.run(&m, "g", Op::Monitor, I, T).await;
    assert!(r.running(), "{r:?}");
    let r = a.run(&m, "g", Op::Start, Duration::ZERO, T).await;
    assert!(r.ok(), "starting what runs succeeds: {r:?}");
    let r = a.run(&m, "g", Op::Stop, Duration::ZERO, T).await;
    assert!(r.ok(), "{r:?}");
    assert!(!state.exists());
    let r = a.run(&m, "g", Op::Stop, Duration::ZERO, T).await;
    assert!(r.ok(), "stopping what is stopped succeeds: {r:?}");
    // A recurring monitor (interval > 0) that finds it stopped says why.
    let r = a.run(&m, "g", Op::Monitor, I, T).await;
    assert!(r.not_running(), "{r:?}");
    assert_eq!(
        r.exit_reason.as_deref(),
        Some("No process state file found")
    );
}

#[tokio::test]
async fn dummy_meta_data() {
    if !have_dummy() {
        return;
    }
    let md = halb_resource::agent::meta_data("heartbeat", "Dummy")
        .await
        .unwrap();
    assert_eq!(md.name, "Dummy");
    let state = md.parameter("state").unwrap();
    assert!(!state.required);
    assert_eq!(state.short, "State file");
    assert!(md.parameter("fake").is_some());
    assert_eq!(md.timeout("start"), Some(Duration::from_secs(20)));
    assert_eq!(md.timeout("monitor"), Some(Duration::from_secs(20)));
    assert_eq!(md.monitor_interval(), Some(Duration::from_secs(10)));
    let e = halb_resource::agent::meta_data("heartbeat", "NoSuchAgent")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("NoSuchAgent"), "{e}");
}

/// Our own OCF agent under a temporary OCF root: it writes its argument
/// and environment down, and fails with a reason, or hangs.
#[tokio::test]
async fn ocf_environment_exit_reason_and_deadline() {
    let tmp = TempDir::new("ocf");
    let root = tmp.path().join("ocf");
    std::fs::create_dir_all(root.join("resource.d/acme")).unwrap();
    let log = tmp.path().join("calls");
    script(
        &root.join("resource.d/acme/Thing"),
        &format!(
            r#"#!/bin/sh
echo "args=$# $1" >> {log}
env | grep -E '^(OCF_|HA_RSCTMP)' | sort >> {log}
case "$1" in
  start) echo "${{OCF_EXIT_REASON_PREFIX}}the disk is gone" >&2; exit 5 ;;
  stop) sleep 30 ;;
  monitor) exit 7 ;;
esac
"#,
            log = log.display()
        ),
    );
    let a = Agents {
        ocf_root: root.clone(),
        rsctmp: tmp.path().join("rsctmp"),
        ..Agents::default()
    };
    let mut m = MemberSpec::new("thing1", Agent::parse("ocf:acme:Thing").unwrap());
    m.params = vec![("device".into(), "/dev/sdz9".into())];
    let r = a
        .run(
            &m,
            "g",
            Op::Monitor,
            Duration::from_secs(10),
            Duration::from_secs(20),
        )
        .await;
    assert!(r.not_running());
    let calls = std::fs::read_to_string(&log).unwrap();
    for line in [
        "args=1 monitor".to_owned(),
        format!("OCF_ROOT={}", root.display()),
        "OCF_RA_VERSION_MAJOR=1".into(),
        "OCF_RA_VERSION_MINOR=1".into(),
        "OCF_RESOURCE_INSTANCE=thing1".into(),
        "OCF_RESOURCE_TYPE=Thing".into(),
        "OCF_RESOURCE_PROVIDER=acme".into(),
        "OCF_RESKEY_device=/dev/sdz9".into(),
        "OCF_RESKEY_CRM_meta_timeout=20000".into(),
        "OCF_RESKEY_CRM_meta_interval=10000".into(),
        "OCF_EXIT_REASON_PREFIX=ocf-exit-reason:".into(),
        "OCF_CHECK_LEVEL=0".into(),
        format!("HA_RSCTMP={}", tmp.path().join("rsctmp").display()),
    ] {
        assert!(calls.lines().any(|l| l == line), "{line} not in\n{calls}");
    }
    std::fs::remove_file(&log).unwrap();
    // A probe is a monitor with interval 0.
    a.run(&m, "g", Op::Probe, Duration::from_secs(10), T).await;
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("args=1 monitor\n"), "{calls}");
    assert!(
        calls.contains("OCF_RESKEY_CRM_meta_interval=0\n"),
        "{calls}"
    );

    let r = a.run(&m, "g", Op::Start, Duration::ZERO, T).await;
    assert_eq!(r.status, AgentStatus::Code(5));
    assert_eq!(r.exit_reason.as_deref(), Some("the disk is gone"));
    assert!(r.stderr.contains("ocf-exit-reason:the disk is gone"));
    assert_eq!(r.code_name(), "not installed");

    let started = Instant::now();
    let r = a
        .run(
            &m,
            "g",
            Op::Stop,
            Duration::ZERO,
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(r.status, AgentStatus::TimedOut(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn lsb_init_script() {
    let tmp = TempDir::new("lsb");
    let state = tmp.path().join("svc.running");
    script(
        &tmp.path().join("svc"),
        &format!(
            r#"#!/bin/sh
S={state}
case "$1" in
  start) touch $S; exit 0 ;;
  stop) rm -f $S; exit 0 ;;
  status) [ -f $S ] && {{ echo "svc is running"; exit 0; }}; echo "svc is not running"; exit 3 ;;
  *) exit 2 ;;
esac
"#,
            state = state.display()
        ),
    );
    let a = Agents {
        init_d: tmp.path().to_owned(),
        ..Agents::default()
    };
    let m = MemberSpec::new("svc", Agent::parse("lsb:svc").unwrap());
    let run = |op| a.run(&m, "g", op, Duration::ZERO, T);
    assert!(run(Op::Probe).await.not_running(), "status 3: not running");
    assert!(run(Op::Start).await.ok());
    assert!(state.exists());
    let r = run(Op::Monitor).await;
    assert!(r.running(), "{r:?}");
    assert_eq!(r.stdout, "svc is running\n");
    assert!(run(Op::Stop).await.ok());
    assert!(run(Op::Stop).await.ok(), "stop of a stopped service");
    assert!(run(Op::Monitor).await.not_running());
    let missing = MemberSpec::new("nope", Agent::parse("lsb:nope").unwrap());
    let r = a.run(&missing, "g", Op::Probe, Duration::ZERO, T).await;
    assert_eq!(r.status, AgentStatus::Code(5), "{r:?}");
    std::fs::write(tmp.path().join("plain"), "#!/bin/sh\nexit 0\n").unwrap();
    let plain = MemberSpec::new("plain", Agent::parse("lsb:plain").unwrap());
    let r = a.run(&plain, "g", Op::Probe, Duration::ZERO, T).await;
    assert_eq!(r.status, AgentStatus::Code(4), "not executable: {r:?}");
    assert!(r.exit_reason.unwrap().ends_with("is not executable"));
}

#[tokio::test]
async fn heartbeat_v1_script() {
    let tmp = TempDir::new("hb");
    let state = tmp.path().join("ip.state");
    // heartbeat's IPaddr-style script: arguments first, then the action;
    // status on stdout, exit code meaningless.
    script(
        &tmp.path().join("FakeIP"),
        &format!(
            r#"#!/bin/sh
S={state}
case "$2" in
  start) echo "$1" > $S; exit 0 ;;
  stop) rm -f $S; exit 0 ;;
  status) if [ -f $S ]; then echo "running"; else echo "stopped"; fi; exit 1 ;;
  *) exit 2 ;;
esac
"#,
            state = state.display()
        ),
    );
    let a = Agents {
        heartbeat_dirs: vec![tmp.path().join("absent"), tmp.path().to_owned()],
        ..Agents::default()
    };
    let m = MemberSpec::new(
        "ip",
        Agent::parse("heartbeat:FakeIP::192.0.2.10/24").unwrap(),
    );
    let run = |op| a.run(&m, "g", op, Duration::ZERO, T);
    assert!(run(Op::Probe).await.not_running(), "\"stopped\" on stdout");
    assert!(run(Op::Start).await.ok());
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "192.0.2.10/24\n");
    assert!(
        run(Op::Monitor).await.running(),
        "\"running\", exit 1 ignored"
    );
    assert!(run(Op::Stop).await.ok());
    assert!(run(Op::Monitor).await.not_running());
}

/// The engine and a tokio loop running real agents, as the daemon will.
struct Loop {
    engine: Engine,
    agents: Agents,
    calls: JoinSet<(OpId, AgentResult)>,
    /// Every action so far.
    log: Vec<Action>,
}

impl Loop {
    fn new(engine: Engine, agents: Agents) -> Loop {
        Loop {
            engine,
            agents,
            calls: JoinSet::new(),
            log: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            if let Some(call) = self.agents.call(&a) {
                self.calls.spawn(call);
            }
            if let Action::Event(e) = &a {
                eprintln!("{e}");
            }
            self.log.push(a);
        }
    }

    /// Runs until `done` holds for the log, at most `limit`.
    async fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&[Action]) -> bool) {
        let end = Instant::now() + limit;
        loop {
            self.drain();
            if done(&self.log) {
                return;
            }
            assert!(
                Instant::now() < end,
                "{what}: not within {limit:?}: {:#?}",
                self.log
            );
            let wake = self.engine.poll_timeout().unwrap_or(end).min(end);
            tokio::select! {
                Some(r) = self.calls.join_next() => {
                    let (id, result) = r.unwrap();
                    self.engine.handle_result(id, result, Instant::now());
                }
                _ = tokio::time::sleep_until(wake.into()) => self.engine.handle_timeout(Instant::now()),
            }
        }
    }
}

/// "member kind" of every event in the log.
fn events(log: &[Action]) -> Vec<String> {
    log.iter()
        .filter_map(|a| match a {
            Action::Event(e) => {
                let k = match e.kind {
                    EventKind::Started { .. } => "started",
                    EventKind::Restarted { .. } => "restarted",
                    EventKind::Stopped { .. } => "stopped",
                    EventKind::Failed { .. } => "failed",
                    _ => return None,
                };
                Some(format!("{} {k}", e.member.as_deref().unwrap_or("-")))
            }
            _ => None,
        })
        .collect()
}

fn count(log: &[Action], what: &str) -> usize {
    events(log).iter().filter(|e| *e == what).count()
}

#[tokio::test]
async fn a_dummy_group_driven_by_the_engine() {
    if !have_dummy() {
        return;
    }
    let tmp = TempDir::new("group");
    let fs_state = tmp.path().join("fs.state");
    let web_state = tmp.path().join("web.state");
    let group = GroupSpec::new(
        "web",
        Follows::Instance("vi_1".into()),
        vec![dummy("fs", &fs_state), dummy("web", &web_state)],
    );
    let mut l = Loop::new(Engine::new(vec![group]), agents(&tmp));
    let now = Instant::now();
    l.engine.handle_start(now);
    l.engine.handle_role("vi_1", true, now);
    l.until("both started", Duration::from_secs(20), |log| {
        count(log, "web started") == 1
    })
    .await;
    assert_eq!(events(&l.log), ["fs started", "web started"]);
    assert!(fs_state.exists() && web_state.exists());
    assert_eq!(l.engine.status(Instant::now())[0].state, State::Started);

    // The first member's state file goes: its monitor notices, the later
    // member is stopped first, then both start again, in order.
    std::fs::remove_file(&fs_state).unwrap();
    let seen = l.log.len();
    l.until("restarted", Duration::from_secs(20), |log| {
        count(&log[seen..], "web restarted") == 1
    })
    .await;
    assert_eq!(
        events(&l.log[seen..]),
        [
            "fs failed",
            "web stopped",
            "fs stopped",
            "fs restarted",
            "web restarted"
        ]
    );
    let st = &l.engine.status(Instant::now())[0];
    assert_eq!(st.members[0].fail_count, 1);
    let f = st.members[0].last_failure.as_ref().unwrap();
    assert_eq!((f.op, f.exit_code), (Op::Monitor, Some(7)));
    assert_eq!(
        f.exit_reason.as_deref(),
        Some("No process state file found")
    );
    assert!(fs_state.exists() && web_state.exists());

    // Monitors keep running (several rounds at 200 ms, nothing restarted).
    let seen = l.log.len();
    let monitors = |log: &[Action]| {
        log.iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Run {
                        op: Op::Monitor,
                        ..
                    }
                )
            })
            .count()
    };
    l.until("monitors", Duration::from_secs(20), |log| {
        monitors(&log[seen..]) >= 6
    })
    .await;
    assert!(
        events(&l.log[seen..]).is_empty(),
        "{:?}",
        events(&l.log[seen..])
    );

    // The role goes: stopped in reverse, then released.
    l.engine.handle_role("vi_1", false, Instant::now());
    let seen = l.log.len();
    l.until("released", Duration::from_secs(20), |log| {
        log.iter()
            .any(|a| matches!(a, Action::GroupReleased { .. }))
    })
    .await;
    assert_eq!(events(&l.log[seen..]), ["web stopped", "fs stopped"]);
    assert!(!fs_state.exists() && !web_state.exists());
    assert_eq!(l.engine.status(Instant::now())[0].state, State::Stopped);
}

/// halb restarted on the master: the probes adopt what runs, nothing is
/// started twice.
#[tokio::test]
async fn a_running_dummy_group_is_adopted() {
    if !have_dummy() {
        return;
    }
    let tmp = TempDir::new("adopt");
    let a_state = tmp.path().join("a.state");
    std::fs::write(&a_state, "").unwrap();
    let b_state = tmp.path().join("b.state");
    std::fs::write(&b_state, "").unwrap();
    let group = GroupSpec::new(
        "g",
        Follows::Instance("vi".into()),
        vec![dummy("a", &a_state), dummy("b", &b_state)],
    );
    let mut l = Loop::new(Engine::new(vec![group]), agents(&tmp));
    let now = Instant::now();
    l.engine.handle_role("vi", true, now);
    l.engine.handle_start(now);
    l.until("adopted", Duration::from_secs(20), |log| {
        log.iter()
            .filter(|a| matches!(a, Action::Event(e) if e.kind == EventKind::Adopted))
            .count()
            == 2
    })
    .await;
    assert!(
        !l.log
            .iter()
            .any(|a| matches!(a, Action::Run { op: Op::Start, .. })),
        "nothing started: {:?}",
        l.log
    );
    assert_eq!(l.engine.status(Instant::now())[0].state, State::Started);
}

/// Every agent Debian ships answers meta-data that parses, with named
/// parameters (what check-config will read).
#[tokio::test]
async fn every_debian_heartbeat_agent_meta_data_parses() {
    if !have_dummy() {
        return;
    }
    let dir = Path::new("/usr/lib/ocf/resource.d/heartbeat");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // .ocf-shellfuncs and the like are libraries, not agents.
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert!(names.len() > 50, "{names:?}");
    let mut bad = Vec::new();
    for n in &names {
        match halb_resource::agent::meta_data("heartbeat", n).await {
            Ok(md) => assert!(md.parameters.iter().all(|p| !p.name.is_empty()), "{n}"),
            Err(e) => bad.push(format!("{n}: {e}")),
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {}:\n{}",
        bad.len(),
        names.len(),
        bad.join("\n")
    );
    let fs = halb_resource::agent::meta_data("heartbeat", "Filesystem")
        .await
        .unwrap();
    for p in ["device", "directory", "fstype"] {
        assert!(fs.parameter(p).unwrap().required, "Filesystem {p}");
    }
    assert_eq!(fs.timeout("start"), Some(Duration::from_secs(60)));
}

const SYSTEMD: &str = "/lib/systemd/systemd";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        == Some("0")
}

/// A real systemd: a user manager (`systemd --user`) in a private mount
/// namespace where `/run/systemd/system` exists (systemd refuses to run
/// as a user manager on a system not booted with systemd, which is what
/// it checks), its units in `XDG_CONFIG_HOME`, its D-Bus (Debian's
/// dbus-user-session: `dbus.socket` at `$XDG_RUNTIME_DIR/bus`, the bus
/// daemon started by systemd on the first connection, and systemd then
/// on it as `org.freedesktop.systemd1`). Killed by PID (SIGTERM: it
/// stops its units and the bus, and exits) on drop.
struct UserSystemd {
    child: std::process::Child,
    socket: PathBuf,
}

impl UserSystemd {
    fn start(dir: &Path) -> UserSystemd {
        let run = dir.join("run");
        let units = dir.join("config/systemd/user");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&units).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = std::fs::File::create(dir.join("systemd.log")).unwrap();
        let child = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mkdir -p /run/systemd && mount -t tmpfs hrs-systemd /run/systemd && \
                 mkdir /run/systemd/system && exec {SYSTEMD} --user --log-level=info"
            ))
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let socket = run.join("bus");
        let s = UserSystemd { child, socket };
        let end = Instant::now() + Duration::from_secs(20);
        while !s.socket.exists() {
            assert!(
                Instant::now() < end,
                "systemd --user did not start: {}",
                std::fs::read_to_string(dir.join("systemd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn bus(&self) -> halb_resource::systemd::Bus {
        halb_resource::systemd::Bus::Address(format!("unix:path={}", self.socket.display()))
    }
}

impl Drop for UserSystemd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The main PID of a unit's service, from its PID file (the unit writes
/// it), or `None`.
fn main_pid(pidfile: &Path) -> Option<u32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Waits (bounded) for the unit's PID file to name a process other than
/// `old`.
fn wait_pid(pidfile: &Path, old: Option<u32>) -> u32 {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = main_pid(pidfile).filter(|p| Some(*p) != old) {
            return p;
        }
        assert!(Instant::now() < end, "the unit wrote no new PID");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `systemd:` member against a real systemd: start (StartUnit, the job
/// awaited through JobRemoved), monitors (ActiveState), the service's
/// process killed → the monitor finds it not running → restarted in place,
/// then stopped (StopUnit); a unit systemd does not know is "not
/// installed" for a probe.
#[tokio::test]
async fn a_systemd_unit_driven_by_the_engine_against_a_real_systemd() {
    if !is_root() || !Path::new(SYSTEMD).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with systemd installed"
        );
        eprintln!("SKIPPED: needs root and {SYSTEMD}");
        return;
    }
    let tmp = TempDir::new("systemd");
    let pidfile = tmp.path().join("sleep.pid");
    let sd = UserSystemd::start(tmp.path());
    std::fs::write(
        tmp.path().join("config/systemd/user/hrs-sleep.service"),
        format!(
            // `$$$$`: systemd makes it `$$`, sh its PID.
            "[Service]\nExecStart=/bin/sh -c 'echo $$$$ > {}.new; mv {0}.new {0}; exec sleep 1000'\n",
            pidfile.display()
        ),
    )
    .unwrap();
    let agents = Agents {
        systemd_bus: sd.bus(),
        ..Agents::default()
    };
    // A unit systemd does not know: "not installed". The first calls also
    // start the bus (socket activation) and wait for systemd to be on it.
    let none = MemberSpec::new("none", Agent::parse("systemd:hrs-nothing").unwrap());
    let end = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = agents
            .run(
                &none,
                "g",
                Op::Probe,
                Duration::ZERO,
                Duration::from_secs(5),
            )
            .await;
        if r.status == AgentStatus::Code(5) || Instant::now() > end {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, AgentStatus::Code(5), "{r:?}");

    let mut m = MemberSpec::new("sleep", Agent::parse("systemd:hrs-sleep").unwrap());
    m.monitor.interval = Duration::from_millis(200);
    let group = GroupSpec::new("svc", Follows::Instance("vi_1".into()), vec![m]);
    let mut l = Loop::new(Engine::new(vec![group]), agents);
    let now = Instant::now();
    l.engine.handle_start(now);
    l.engine.handle_role("vi_1", true, now);
    l.until("started", Duration::from_secs(30), |log| {
        count(log, "sleep started") == 1
    })
    .await;
    let pid = wait_pid(&pidfile, None);
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    // Its process dies: the monitor sees ActiveState leave "active", the
    // engine restarts it in place.
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    l.until("restarted", Duration::from_secs(30), |log| {
        count(log, "sleep restarted") == 1
    })
    .await;
    assert_eq!(count(&l.log, "sleep failed"), 1, "{:#?}", l.log);
    let again = wait_pid(&pidfile, Some(pid));
    assert_eq!(l.engine.status(Instant::now())[0].state, State::Started);

    // Losing the role stops it.
    l.engine.handle_role("vi_1", false, Instant::now());
    l.until("released", Duration::from_secs(30), |log| {
        log.iter()
            .any(|a| matches!(a, Action::GroupReleased { .. }))
    })
    .await;
    assert_eq!(count(&l.log, "sleep stopped"), 2, "in the restart and now");
    assert!(!Path::new(&format!("/proc/{again}")).exists(), "stopped");
    drop(sd);
}
