//! Argument parsing and dispatch.

use crate::{control, daemon, demo, list, realserver};
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for a config that does not validate (nothing was started).
pub const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "halb",
    version,
    about = "High-availability layer-4 load balancer: LVS + ldirectord + keepalived in one program"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the director in the foreground with a config file.
    Run {
        /// The TOML config file.
        #[arg(short, long)]
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
    },
    /// Validate a config file: every error with file, line, column and key.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
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
    /// Ask the running daemon to re-read its config and apply the changes.
    Reload {
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Resource groups: show a member's last operations, clean up fail
    /// counts and bans, restart a member.
    Resource {
        #[command(subcommand)]
        action: ResourceAction,
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
    },
    /// Set a real server's weight at runtime (ipvsadm -e … -w N); it
    /// survives reloads while the real server stays in the config.
    /// SERVICE by name or VIP:port, REAL by address:port.
    Weight {
        service: String,
        real: String,
        weight: u32,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Drain a real server: weight 0, established connections go on, no
    /// new ones (quiescent), until `halb enable`.
    Drain {
        service: String,
        real: String,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Take a real server out of the table (HAProxy's maint) until
    /// `halb enable`.
    Disable {
        service: String,
        real: String,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// End `halb weight`, `drain` or `disable`: back to the configured (or
    /// health-driven) weight.
    Enable {
        service: String,
        real: String,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Give up every VIP (and so every resource group) to the peer and
    /// stay backup until `halb online` (heartbeat's hb_standby).
    Standby {
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Become master now of INSTANCE (with its sync group), or of every
    /// instance: priority 254 until `halb online` (heartbeat's
    /// hb_takeover). Refused for instances that resource groups follow.
    Takeover {
        instance: Option<String>,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// End `halb standby` and `halb takeover`: this director's priority
    /// decides again.
    Online {
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Maintenance mode (Pacemaker's is-managed=false): halb starts,
    /// stops and monitors nothing in GROUP (or every group); the VIPs stay
    /// with VRRP. Leaving it probes the members again.
    Maintenance {
        state: OnOff,
        group: Option<String>,
        #[arg(long)]
        socket: Option<PathBuf>,
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
    /// Control socket of the daemon to ask.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run {
            config,
            socket,
            max_config_size,
            takeover,
        } => daemon::run_file(&config, socket, max_config_size, takeover),
        Command::CheckConfig {
            file,
            max_config_size,
            json,
        } => return check_config(&file, max_config_size, json),
        Command::Import(args) => return crate::import::run(&args),
        Command::List(args) => list::run(&args),
        Command::Reload { socket } => reload(socket),
        Command::Resource { action, socket } => {
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
            command(socket, control::Request::Resource(req))
        }
        Command::Weight {
            service,
            real,
            weight,
            socket,
        } => real_command(socket, service, real, RealAction::Weight(weight)),
        Command::Drain {
            service,
            real,
            socket,
        } => real_command(socket, service, real, RealAction::Drain),
        Command::Disable {
            service,
            real,
            socket,
        } => real_command(socket, service, real, RealAction::Disable),
        Command::Enable {
            service,
            real,
            socket,
        } => real_command(socket, service, real, RealAction::Enable),
        Command::Standby { socket } => command(socket, control::Request::Standby { on: true }),
        Command::Online { socket } => command(socket, control::Request::Standby { on: false }),
        Command::Takeover { instance, socket } => {
            command(socket, control::Request::Takeover { instance })
        }
        Command::Maintenance {
            state,
            group,
            socket,
        } => command(
            socket,
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("halb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HALB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
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
    socket: Option<PathBuf>,
    service: String,
    real: String,
    action: RealAction,
) -> anyhow::Result<ExitCode> {
    command(
        socket,
        control::Request::Real {
            service,
            real,
            action,
        },
    )
}

/// Send an operator command; print what the daemon did.
fn command(socket: Option<PathBuf>, req: control::Request) -> anyhow::Result<ExitCode> {
    let socket = socket.unwrap_or_else(halb_config::default_control_socket);
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

fn reload(socket: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let socket = socket.unwrap_or_else(halb_config::default_control_socket);
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
