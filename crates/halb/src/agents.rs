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
    let config = loader.load(path)?;
    if config.resource_groups.is_empty() {
        return Ok(config);
    }
    // The file parsed: read it again for the places of the agents' errors.
    let src = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: path.to_owned(),
        errors: vec![halb_config::ConfigError::whole_file(
            path,
            format!("cannot read it again: {e}"),
            None,
        )],
    })?;
    check(&src, path, &config)
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
