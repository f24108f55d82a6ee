//! A bare TCP proxy for benchmarking the data plane alone:
//!
//! ```sh
//! cargo run --release -p halb-proxy --example proxy -- \
//!     --listen 127.0.0.1:8080 --real 127.0.0.1:18081 --real 127.0.0.1:18082 \
//!     [--workers 2] [--splice auto|on|off] [--pipe-size BYTES] [--buffer BYTES]
//! ```
//!
//! Several `--listen`/`--real` groups may follow each other: every
//! `--listen` starts a new round-robin service with the `--real`s after it.
//! Runs until killed; prints the stats every 10 s with `--stats`.
#![allow(clippy::unwrap_used)]

use halb_proxy::{ProxyDataPlane, ProxyOptions, SpliceMode};
use halb_table::{DataPlane, Protocol, RealServer, SchedulerKind, Table, VirtualService};
use std::time::Duration;

fn main() {
    let mut opts = ProxyOptions::default();
    let mut table = Table::default();
    let mut stats = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("missing value");
        match a.as_str() {
            "--listen" => {
                let listen = val().parse().expect("--listen ADDR:PORT");
                let n = table.services.len();
                let mut s = VirtualService::new(
                    format!("svc{n}"),
                    listen,
                    Protocol::Tcp,
                    SchedulerKind::Rr,
                );
                s.idle_timeout = Duration::from_secs(900);
                table.services.push(s);
            }
            "--real" => {
                let addr = val().parse().expect("--real ADDR:PORT");
                table
                    .services
                    .last_mut()
                    .expect("--real before --listen")
                    .reals
                    .push(RealServer::new(addr, 1));
            }
            "--workers" => opts.workers = val().parse().unwrap(),
            "--splice" => {
                opts.splice = match val().as_str() {
                    "on" => SpliceMode::On,
                    "off" => SpliceMode::Off,
                    _ => SpliceMode::Auto,
                }
            }
            "--pipe-size" => opts.pipe_size = val().parse().unwrap(),
            "--buffer" => opts.buffer_size = val().parse().unwrap(),
            "--stats" => stats = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let mut plane = ProxyDataPlane::new(opts).unwrap();
    let report = plane.apply(&table);
    for e in &report.errors {
        eprintln!("{e}");
    }
    if !report.is_ok() {
        std::process::exit(1);
    }
    eprintln!("proxy running: {:?}", plane.options());
    loop {
        std::thread::sleep(Duration::from_secs(10));
        if stats {
            for s in plane.stats() {
                eprintln!(
                    "{} conns {} active {} inactive {} in {} out {} cps {:.0} inbps {:.0}",
                    s.name,
                    s.counters.conns,
                    s.counters.active,
                    s.counters.inactive,
                    s.counters.bytes_in,
                    s.counters.bytes_out,
                    s.rates.cps,
                    s.rates.inbps
                );
            }
        }
    }
}
