//! The agents a config's resource groups name, checked on this director
//! (`halb check-config`): each OCF agent's `meta-data` read once and the
//! members' parameters checked against it, LSB and heartbeat scripts found
//! and executable. The errors are halb-config's, at their place in the
//! file ([`halb_config::check_agents`]).

use halb_config::{AgentLookup, Config, ConfigErrors};
use halb_resource::agent::Agents;
use halb_resource::{Agent, MetaData};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Loads `path` with `loader` and, when it parsed, checks its agents
/// ([`check`]): what `halb check-config`, the daemon's start and its
/// reloads accept.
pub fn load(loader: &mut halb_config::Loader, path: &Path) -> Result<Config, ConfigErrors> {
    load_with_text(loader, path).map(|(c, _)| c)
}

/// [`load`], with the text it read (the running config's digest, for
/// `[global.sync]`).
pub fn load_with_text(
    loader: &mut halb_config::Loader,
    path: &Path,
) -> Result<(Config, String), ConfigErrors> {
    let (config, src) = loader.load_with_source(path)?;
    if config.resource_groups.is_empty() {
        return Ok((config, src));
    }
    check(&src, path, &config).map(|c| (c, src))
}

/// Checks the agents of `config` (parsed from `src`, read from `file`)
/// with the system's agent directories; `config` with the OCF agents'
/// meta-data defaults applied ([`halb_config::check_agents`]).
pub fn check(src: &str, file: &Path, config: &Config) -> Result<Config, ConfigErrors> {
    check_with(&Agents::default(), src, file, config)
}

/// [`check`] with agents looked up where `agents` says.
pub fn check_with(
    agents: &Agents,
    src: &str,
    file: &Path,
    config: &Config,
) -> Result<Config, ConfigErrors> {
    let mut ocf: Vec<(String, String)> = Vec::new();
    for m in config.resource_groups.iter().flat_map(|g| &g.members) {
        if let Agent::Ocf { provider, kind } = &m.agent {
            let k = (provider.clone(), kind.clone());
            if !ocf.contains(&k) {
                ocf.push(k);
            }
        }
    }
    let metas = meta_data_all(agents, &ocf);
    halb_config::check_agents(src, file, config, |a| lookup(agents, a, &metas))
}

/// Why an agent's program cannot run, if it cannot.
fn unusable(path: &Path, what: &str, install: &str) -> Option<AgentLookup> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => None,
        Ok(md) if md.is_file() => Some(AgentLookup::Unusable {
            problem: format!("{what} {} is not executable", path.display()),
            fix: format!("chmod +x {}", path.display()),
        }),
        Ok(_) => Some(AgentLookup::Unusable {
            problem: format!("{what} {} is not a file", path.display()),
            fix: install.to_owned(),
        }),
        Err(_) => Some(AgentLookup::Unusable {
            problem: format!("{what} not installed: {} does not exist", path.display()),
            fix: install.to_owned(),
        }),
    }
}

type Metas = HashMap<(String, String), Result<MetaData, String>>;

/// Each OCF agent's meta-data (those whose program runs), read at once.
fn meta_data_all(agents: &Agents, ocf: &[(String, String)]) -> Metas {
    let runnable: Vec<&(String, String)> = ocf
        .iter()
        .filter(|(p, k)| unusable(&ocf_path(agents, p, k), "agent", "").is_none())
        .collect();
    if runnable.is_empty() {
        return Metas::new();
    }
    // On a thread of its own: the daemon's reload calls this from within
    // its runtime, where another one cannot block.
    std::thread::scope(|s| {
        s.spawn(|| meta_data_on_runtime(agents, runnable))
            .join()
            .unwrap_or_default()
    })
}

fn meta_data_on_runtime(agents: &Agents, runnable: Vec<&(String, String)>) -> Metas {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return runnable
                .into_iter()
                .map(|k| (k.clone(), Err(format!("cannot run it: {e}"))))
                .collect()
        }
    };
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (p, k) in runnable {
            let (agents, p, k) = (agents.clone(), p.clone(), k.clone());
            set.spawn(async move {
                let r = agents.meta_data(&p, &k).await.map_err(|e| e.0);
                ((p, k), r)
            });
        }
        let mut out = Metas::new();
        while let Some(done) = set.join_next().await {
            if let Ok((key, r)) = done {
                out.insert(key, r);
            }
        }
        out
    })
}

fn ocf_path(agents: &Agents, provider: &str, kind: &str) -> PathBuf {
    agents.ocf_root.join("resource.d").join(provider).join(kind)
}

fn lookup(agents: &Agents, agent: &Agent, metas: &Metas) -> AgentLookup {
    match agent {
        Agent::Ocf { provider, kind } => {
            let path = ocf_path(agents, provider, kind);
            let install = format!(
                "install the package that provides it (Debian: resource-agents for the \
                 heartbeat provider), or check the provider and type (the agents there: \
                 ls {})",
                agents.ocf_root.join("resource.d").display()
            );
            if let Some(u) = unusable(&path, "agent", &install) {
                return u;
            }
            match metas.get(&(provider.clone(), kind.clone())) {
                Some(Ok(md)) => AgentLookup::Ocf(md.clone()),
                Some(Err(e)) => AgentLookup::Unusable {
                    problem: format!("its meta-data cannot be read: {e}"),
                    fix: format!("run `{} meta-data` to see why", path.display()),
                },
                None => AgentLookup::Unusable {
                    problem: "its meta-data was not read".to_owned(),
                    fix: format!("run `{} meta-data` to see why", path.display()),
                },
            }
        }
        Agent::Lsb(name) => {
            let path = agents.init_d.join(name);
            let install = format!(
                "install the package with the init script, or check the name (ls {})",
                agents.init_d.display()
            );
            unusable(&path, "init script", &install).unwrap_or(AgentLookup::Found)
        }
        Agent::Heartbeat { name, .. } => {
            let dirs: Vec<String> = agents
                .heartbeat_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            match agents.program(agent) {
                Some(path) => unusable(&path, "heartbeat script", "").unwrap_or(AgentLookup::Found),
                None => AgentLookup::Unusable {
                    problem: format!(
                        "heartbeat script not installed: no {name} in {}",
                        dirs.join(" or ")
                    ),
                    fix: "install it (Debian: the heartbeat package has /etc/ha.d/resource.d), \
                          or check the name"
                        .to_owned(),
                },
            }
        }
        // The unit name was checked with the config; whether the unit is
        // loaded is systemd's to say when it starts it.
        Agent::Systemd(_) => AgentLookup::Found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent tree in a new directory: an OCF agent with meta-data, one
    /// not executable, an init script, a heartbeat script.
    fn tree(tag: &str) -> (PathBuf, Agents) {
        let dir = std::env::temp_dir().join(format!("halb-agents-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ocf = dir.join("ocf/resource.d/test");
        let (init, hb) = (dir.join("init.d"), dir.join("resource.d"));
        for d in [&ocf, &init, &hb] {
            std::fs::create_dir_all(d).unwrap();
        }
        let write = |p: PathBuf, text: &str, mode: u32| {
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write(
            ocf.join("Thing"),
            "#!/bin/sh\ncat <<'X'\n<?xml version=\"1.0\"?>\n<resource-agent name=\"Thing\">\n<parameters>\n<parameter name=\"path\" required=\"1\"><shortdesc>where</shortdesc><content type=\"string\"/></parameter>\n</parameters>\n<actions><action name=\"start\" timeout=\"45s\"/></actions>\n</resource-agent>\nX\n",
            0o755,
        );
        write(ocf.join("Plain"), "#!/bin/sh\n", 0o644);
        write(init.join("svc"), "#!/bin/sh\n", 0o755);
        write(init.join("noexec"), "#!/bin/sh\n", 0o644);
        write(hb.join("Hb"), "#!/bin/sh\n", 0o755);
        let agents = Agents {
            ocf_root: dir.join("ocf"),
            init_d: init,
            heartbeat_dirs: vec![hb],
            ..Agents::default()
        };
        (dir, agents)
    }

    const SRC: &str = r#"[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 150
virtual_ipaddress = ["192.0.2.100/24"]

[[resource_group]]
name = "g"
follows = "VI_1"
member = [
  { name = "a", agent = "ocf:test:Thing", params = { path = "/x" } },
  { name = "b", agent = "lsb:svc" },
  { name = "c", agent = "heartbeat:Hb::1" },
  { name = "d", agent = "systemd:nginx" },
]
"#;

    #[test]
    fn installed_agents_pass_and_take_their_hints() {
        let (dir, agents) = tree("ok");
        let file = Path::new("halb.toml");
        let config = halb_config::parse(SRC, file).unwrap();
        let got = check_with(&agents, SRC, file, &config).unwrap();
        let m = &got.resource_groups[0].members;
        assert_eq!(m[0].start_timeout, std::time::Duration::from_secs(45));
        assert_eq!(m[1..], config.resource_groups[0].members[1..]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn agents_not_executable_or_missing_are_errors_at_their_line() {
        let (dir, agents) = tree("bad");
        let src = SRC
            .replace(
                "ocf:test:Thing\", params = { path = \"/x\" }",
                "ocf:test:Plain\"",
            )
            .replace("lsb:svc", "lsb:noexec")
            .replace("heartbeat:Hb::1", "heartbeat:Gone");
        let file = Path::new("halb.toml");
        let config = halb_config::parse(&src, file).unwrap();
        let e = check_with(&agents, &src, file, &config).unwrap_err();
        let lines: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(lines.len(), 3, "{}", e.render());
        assert_eq!(lines[0].0, 12);
        assert!(lines[0].1.contains("Plain is not executable"), "{lines:?}");
        assert_eq!(lines[1].0, 13);
        assert!(lines[1].1.contains("noexec is not executable"), "{lines:?}");
        assert_eq!(lines[2].0, 14);
        assert!(
            lines[2]
                .1
                .contains("heartbeat script not installed: no Gone in"),
            "{lines:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
