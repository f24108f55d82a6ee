//! Argument parsing and dispatch.

use crate::{control, daemon, demo, list, logging, realserver};
use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status for a config that does not validate (nothing was started).
pub const EXIT_CONFIG: u8 = 2;

/// The config `run`, `check-config` and `reload` read without `-c`.
pub const DEFAULT_CONFIG: &str = "/etc/halb/halb.toml";

/// `halb --version`: the version, the commit it was built from (build.rs:
/// git, else `HALB_COMMIT`, else unknown) and what the build holds.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("HALB_BUILD_COMMIT"),
    "\nfeatures: ",
    env!("HALB_BUILD_FEATURES"),
    "\nprofile: ",
    env!("HALB_BUILD_PROFILE"),
    ", target ",
    env!("HALB_BUILD_TARGET"),
    ", ",
    env!("HALB_BUILD_RUSTC"),
);

#[derive(Parser)]
#[command(
    name = "halb",
    version,
    long_version = LONG_VERSION,
    about = "High-availability layer-4 load balancer: LVS + ldirectord + keepalived in one program",
    after_long_help = "Files: /etc/halb/halb.toml (the config run, check-config and reload \
read without -c), /run/halb/halb.sock (the control socket, as root), \
/usr/share/doc/halb/ (configuration.md, operations.md, examples/). \
Exit status: 0 ok, 1 failure, 2 a config that does not validate."
)]
pub struct Cli {
    /// Log level: error, warn, info, debug, trace, or directives such as
    /// `info,halb_vrrp_net=debug` (default: $HALB_LOG, else info).
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format on stderr: text, or json (one object a line). Under
    /// systemd (stderr is the journal) each line starts with its syslog
    /// priority (<3> error … <7> debug), which journald ranks it by.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

/// Where a client finds the daemon: `--socket`, else the `control_socket`
/// of `-c/--config` (or of /etc/halb/halb.toml when it exists and loads),
/// else the default socket.
#[derive(Args, Clone, Default)]
pub struct Target {
    /// Control socket of the daemon to ask.
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// The config whose `control_socket` to ask (default /etc/halb/halb.toml,
    /// if it exists).
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the director in the foreground with a config file.
    Run {
        /// The TOML config file.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Control socket, overriding the config's `control_socket`.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Largest config file read, at start and at each reload
        /// (bytes, or with KiB, MiB, GiB).
        #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
        max_config_size: u64,
        /// Seamless restart: take the listening sockets over from the
        /// daemon running on the control socket (which then stops
        /// accepting and drains), so that no client is refused. Without
        /// it, a second daemon on the same socket is refused.
        #[arg(long)]
        takeover: bool,
        /// Keep the listening sockets in systemd's file-descriptor store
        /// (`FileDescriptorStoreMax=` in the unit), so that `systemctl
        /// restart` and a restart after a crash refuse no client. Only
        /// under systemd (NOTIFY_SOCKET); on by itself where systemd sets
        /// $FDSTORE (systemd 254 and later).
        #[arg(long)]
        fd_store: bool,
    },
    /// Validate a config file: every error with file, line, column and key.
    CheckConfig {
        /// The TOML config file (default /etc/halb/halb.toml).
        #[arg(value_name = "FILE", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// The TOML config file, as for `run`.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Largest config file read (bytes, or with KiB, MiB, GiB).
        #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
        max_config_size: u64,
        /// Print the effective config as JSON (every default filled in,
        /// names resolved, secrets shown as "<redacted>") instead of the
        /// summary.
        #[arg(long)]
        json: bool,
    },
    /// Turn another tool's config into halb TOML: `halb import keepalived
    /// /etc/keepalived/keepalived.conf -o halb.toml`. The report (stderr)
    /// names everything that did not carry over. Exit 0 (warnings
    /// only), 1 (--strict and something unmapped), 2 (a parse error, or
    /// output halb would reject: nothing written).
    Import(crate::import::ImportArgs),
    /// List virtual services and real servers like `ipvsadm -L -n`.
    List(ListArgs),
    /// Ask the running daemon to re-read its config and apply the changes
    /// (the daemon re-reads the file it runs; `-c` only says which
    /// config's control socket to ask).
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Resource groups: show a member's last operations, clean up fail
    /// counts and bans, restart a member.
    Resource {
        #[command(subcommand)]
        action: ResourceAction,
        #[command(flatten)]
        target: Target,
    },
    /// Set a real server's weight at runtime (ipvsadm -e … -w N); it
    /// survives reloads while the real server stays in the config.
    /// SERVICE by name or VIP:port, REAL by address:port.
    Weight {
        service: String,
        real: String,
        weight: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Drain a real server: weight 0, established connections go on, no
    /// new ones (quiescent), until `halb enable`.
    Drain {
        service: String,
        real: String,
        #[command(flatten)]
        target: Target,
    },
    /// Take a real server out of the table (HAProxy's maint) until
    /// `halb enable`.
    Disable {
        service: String,
        real: String,
        #[command(flatten)]
        target: Target,
    },
    /// End `halb weight`, `drain` or `disable`: back to the configured (or
    /// health-driven) weight.
    Enable {
        service: String,
        real: String,
        #[command(flatten)]
        target: Target,
    },
    /// Give up every VIP (and so every resource group) to the peer and
    /// stay backup until `halb online` (heartbeat's hb_standby).
    Standby {
        #[command(flatten)]
        target: Target,
    },
    /// Become master now of INSTANCE (with its sync group), or of every
    /// instance: priority 254 until `halb online` (heartbeat's
    /// hb_takeover). Resource groups start once the old master stopped
    /// them.
    Takeover {
        instance: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// End `halb standby` and `halb takeover`: this director's priority
    /// decides again.
    Online {
        #[command(flatten)]
        target: Target,
    },
    /// End every runtime override: the real servers' (weight, drain,
    /// disable), standby and takeover.
    Reset {
        #[command(flatten)]
        target: Target,
    },
    /// Maintenance mode (Pacemaker's is-managed=false): halb starts,
    /// stops and monitors nothing in GROUP (or every group); the VIPs stay
    /// with VRRP. Leaving it probes the members again.
    Maintenance {
        state: OnOff,
        group: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Run a self-contained demo on loopback: three HTTP back ends and a
    /// weighted round-robin virtual service on 127.0.0.1:8080.
    Demo {
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Prepare this machine as a direct-routing real server: `up` puts each
    /// VIP on lo (/32 or /128) and sets arp_ignore=1 / arp_announce=2 on
    /// all and lo; `down` removes them and restores the recorded values.
    Realserver {
        /// up or down.
        #[arg(value_enum)]
        action: RealserverAction,
        /// The VIPs (192.0.2.100, 192.0.2.100/32, 2001:db8::100).
        #[arg(required = true, value_name = "VIP")]
        vips: Vec<String>,
        /// Where the original ARP settings are recorded.
        #[arg(long, default_value = realserver::DEFAULT_STATE)]
        state: PathBuf,
    },
    /// The config shared with the peer director ([global.sync]): `halb
    /// config diff [PEER]` shows what differs, `halb config push [PEER]`
    /// sends this director's file (the peer checks it and reloads only if
    /// it is valid). Over the authenticated, encrypted sync channel.
    Config(crate::sync::ConfigArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish,
    /// elvish, powershell) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (halb.8 and halb-COMMAND.8) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum RealserverAction {
    Up,
    Down,
}

#[derive(Args)]
pub struct ListArgs {
    /// Counters: connections, packets and bytes (like `ipvsadm --stats`).
    #[arg(long, group = "view")]
    pub stats: bool,
    /// Smoothed rates per second (like `ipvsadm --rate`).
    #[arg(long, group = "view")]
    pub rate: bool,
    /// The connection table (like `ipvsadm -L -n -c`).
    #[arg(short = 'c', long, group = "view")]
    pub connections: bool,
    /// The kernel's IPVS timeouts (like `ipvsadm -L --timeout`; read from
    /// the kernel, root).
    #[arg(long, group = "view")]
    pub timeout: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Numeric output: accepted and ignored (halb never resolves names,
    /// as `ipvsadm -n`).
    #[arg(short = 'n', long)]
    pub numeric: bool,
    /// List: accepted and ignored (`halb list -L -n` as `ipvsadm -L -n`).
    #[arg(short = 'L', long = "list")]
    pub list: bool,
    /// Control socket of the daemon to ask.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The config whose `control_socket` to ask (no `-c` here: it is
    /// ipvsadm's `-c`, the connections).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match logging::filter(cli.log_level.as_deref()) {
        Ok(f) => logging::init(cli.log_format, f),
        Err(e) => {
            eprintln!("halb: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let result = match cli.command {
        Command::Run {
            config,
            socket,
            max_config_size,
            takeover,
            fd_store,
        } => daemon::run_file(&config, socket, max_config_size, takeover, fd_store),
        Command::CheckConfig {
            file,
            config,
            max_config_size,
            json,
        } => {
            let file = file
                .or(config)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            return check_config(&file, max_config_size, json);
        }
        Command::Import(args) => return crate::import::run(&args),
        Command::Config(args) => return crate::sync::run_cli(&args),
        Command::List(args) => list::run(&args),
        Command::Reload { target } => reload(&target),
        Command::Resource { action, target } => {
            let req = match action {
                ResourceAction::Show { group, member } => {
                    control::ResourceRequest::Show { group, member }
                }
                ResourceAction::Cleanup { group, member } => {
                    control::ResourceRequest::Cleanup { group, member }
                }
                ResourceAction::Restart { group, member } => {
                    control::ResourceRequest::Restart { group, member }
                }
            };
            command(&target, control::Request::Resource(req))
        }
        Command::Weight {
            service,
            real,
            weight,
            target,
        } => real_command(&target, service, real, RealAction::Weight(weight)),
        Command::Drain {
            service,
            real,
            target,
        } => real_command(&target, service, real, RealAction::Drain),
        Command::Disable {
            service,
            real,
            target,
        } => real_command(&target, service, real, RealAction::Disable),
        Command::Enable {
            service,
            real,
            target,
        } => real_command(&target, service, real, RealAction::Enable),
        Command::Standby { target } => command(&target, control::Request::Standby { on: true }),
        Command::Online { target } => command(&target, control::Request::Standby { on: false }),
        Command::Reset { target } => command(&target, control::Request::Reset),
        Command::Takeover { instance, target } => {
            command(&target, control::Request::Takeover { instance })
        }
        Command::Maintenance {
            state,
            group,
            target,
        } => command(
            &target,
            control::Request::Resource(control::ResourceRequest::Maintenance {
                group,
                on: matches!(state, OnOff::On),
            }),
        ),
        Command::Demo { socket } => demo::run(socket),
        Command::Realserver {
            action,
            vips,
            state,
        } => realserver::run(matches!(action, RealserverAction::Up), &vips, Some(state)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "halb", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man_pages(&dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("halb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status for a usage error (clap's own).
const EXIT_USAGE: u8 = 2;

/// The control socket a client asks (see [`Target`]).
pub fn socket_for(socket: Option<&Path>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s.to_path_buf());
    }
    if let Some(file) = config {
        return match halb_config::load(file) {
            Ok(c) => Ok(c.global.control_socket),
            Err(errors) => Err(anyhow::anyhow!(
                "{}halb: {} does not validate: its control_socket is not known (give --socket)",
                errors.render(),
                file.display()
            )),
        };
    }
    // The installed config, when there is one a client can read: an
    // operator need not repeat its control_socket. Any trouble with it
    // (unreadable, invalid) falls back on the default socket, where the
    // daemon (of a reload, say) answers with the errors itself.
    let default = Path::new(DEFAULT_CONFIG);
    if default.exists() {
        if let Ok(c) = halb_config::load(default) {
            return Ok(c.global.control_socket);
        }
    }
    Ok(halb_config::default_control_socket())
}

/// `halb man DIR`: halb.8, and halb-COMMAND.8 for each command.
fn man_pages(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // No `halb help` page: each command has its own.
    let cmd = Cli::command().disable_help_subcommand(true);
    let write = |name: &str, cmd: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.8"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .section("8")
            .manual("halb")
            .source(format!("halb {}", env!("CARGO_PKG_VERSION")))
            .render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))
    };
    let mut n = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("halb-{}", sub.get_name());
        write(
            &name,
            sub.clone()
                .name(name.clone())
                .bin_name(format!("halb {}", sub.get_name()))
                .version(env!("CARGO_PKG_VERSION")),
        )?;
        n += 1;
    }
    write("halb", cmd)?;
    println!("{} man pages written to {}", n + 1, dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `65536`, `64KiB`, `64MiB`, `1GiB` (K, M, G and KB, MB, GB mean the
/// same powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write 65536, 64KiB, 64MiB or 1GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown unit in {s:?}: use KiB, MiB or GiB")),
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn check_config(file: &std::path::Path, max_size: u64, json: bool) -> ExitCode {
    let loaded = crate::agents::load(&mut halb_config::Loader::with_max_size(max_size), file);
    match loaded {
        Ok(cfg) if json => match serde_json::to_string_pretty(&cfg) {
            Ok(text) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                match writeln!(out, "{text}").and_then(|()| out.flush()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::FAILURE,
                }
            }
            Err(e) => {
                eprintln!("halb: cannot show the config as JSON: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(cfg) => {
            let reals: usize = cfg.services.iter().map(|s| s.reals.len()).sum();
            let groups = match cfg.resource_groups.len() {
                0 => String::new(),
                n => {
                    let members: usize = cfg.resource_groups.iter().map(|g| g.members.len()).sum();
                    format!(", {n} resource groups of {members} members, their agents checked")
                }
            };
            println!(
                "{}: ok ({} virtual services, {} real servers, {} health checks{groups})",
                file.display(),
                cfg.services.len(),
                reals,
                cfg.checks.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{}", errors.render());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[derive(Subcommand)]
enum ResourceAction {
    /// A member's last operations (exit codes, reasons, the agent's output).
    Show { group: String, member: String },
    /// Clear fail counts and bans and probe again (a healthy member is
    /// not restarted); every group without GROUP.
    Cleanup {
        group: Option<String>,
        member: Option<String>,
    },
    /// Stop and start MEMBER (and the members after it, in order).
    Restart { group: String, member: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

use halb_director::overrides::RealAction;

fn real_command(
    target: &Target,
    service: String,
    real: String,
    action: RealAction,
) -> anyhow::Result<ExitCode> {
    command(
        target,
        control::Request::Real {
            service,
            real,
            action,
        },
    )
}

/// Send an operator command; print what the daemon did.
fn command(target: &Target, req: control::Request) -> anyhow::Result<ExitCode> {
    let socket = socket_for(target.socket.as_deref(), target.config.as_deref())?;
    match control::request(&socket, &req)
        .with_context(|| format!("asking the daemon at {}", socket.display()))?
    {
        control::Response::Done { message } => {
            print!("{message}");
            if !message.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        control::Response::Error { message } => {
            eprintln!("halb: {message}");
            Ok(ExitCode::FAILURE)
        }
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}

fn reload(target: &Target) -> anyhow::Result<ExitCode> {
    let socket = match socket_for(target.socket.as_deref(), target.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    match control::request(&socket, &control::Request::Reload)
        .with_context(|| format!("asking the daemon at {}", socket.display()))?
    {
        control::Response::Reloaded { summary } => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        control::Response::Rejected { message } => {
            eprint!("{message}");
            Ok(ExitCode::from(EXIT_CONFIG))
        }
        control::Response::Error { message } => {
            eprintln!("halb: {message}");
            Ok(ExitCode::FAILURE)
        }
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
