//! `halb`: the command-line front end and the daemon.
//!
//! `halb run` is the daemon: it loads the config, hands the table to the
//! data plane, serves the control socket and reloads on SIGHUP. The other
//! subcommands are clients of the control socket (`list`, `reload`) or
//! stand alone (`check-config`, `demo`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod agents;
mod api;
mod cli;
mod control;
mod daemon;
mod demo;
mod fdstore;
mod handover;
mod http;
mod import;
mod list;
mod listenlock;
mod logging;
mod metrics;
mod planes;
mod realserver;
mod sync;
mod systemd;
mod vrrp;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
