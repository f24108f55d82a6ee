//! Reading the `ipvsadm -S` (save/restore) syntax into entries: the
//! language of the data-driven reconciliation tests, and of operators'
//! existing rule files. Only the options that describe the table.

use crate::model::*;
use crate::reconcile::Entry;
use std::net::SocketAddr;

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("bad address {s:?}"))
}

/// Parse lines like `-A -t 192.0.2.1:80 -s rr` and
/// `-a -t 192.0.2.1:80 -r 198.51.100.1:80 -g -w 1`. Blank lines and
/// `#` comments are skipped.
pub fn parse_rules(text: &str) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_line(line, &mut out).map_err(|e| format!("line {}: {e}: {line}", n + 1))?;
    }
    Ok(out)
}

/// [`parse_rules`] that goes on past a bad line: the entries of the good
/// lines, and each bad line's number (1-based) with what is wrong with it
/// (for `halb import ipvsadm`, which reports every error).
pub fn parse_rules_all(text: &str) -> (Vec<Entry>, Vec<(usize, String)>) {
    let mut out: Vec<Entry> = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Err(e) = parse_line(line, &mut out) {
            errors.push((n + 1, e));
        }
    }
    (out, errors)
}

fn parse_line(line: &str, out: &mut Vec<Entry>) -> Result<(), String> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let mut cmd = "";
    let mut id: Option<ServiceId> = None;
    let mut fw_mark: Option<u32> = None;
    let mut v6 = false;
    let mut sched = "wlc".to_owned();
    let mut flags = ServiceFlags::default();
    let mut persistence = None;
    let mut netmask = None;
    let mut real: Option<SocketAddr> = None;
    let mut fwd = FwdMethod::Route;
    let mut weight = 1;
    let (mut ux, mut ly) = (0, 0);
    let mut tunnel = TunnelType::Ipip;
    let mut tport = 0;
    let mut i = 0;
    let next = |i: &mut usize| -> Result<&str, String> {
        *i += 1;
        toks.get(*i)
            .copied()
            .ok_or_else(|| "missing value".to_owned())
    };
    let num =
        |s: &str| -> Result<u32, String> { s.parse().map_err(|_| format!("bad number {s:?}")) };
    while i < toks.len() {
        match toks[i] {
            c @ ("-A" | "-E" | "-a" | "-e") => cmd = c,
            "-t" => {
                id = Some(ServiceId::Inet {
                    protocol: IpvsProtocol::Tcp,
                    addr: parse_addr(next(&mut i)?)?,
                })
            }
            "-u" => {
                id = Some(ServiceId::Inet {
                    protocol: IpvsProtocol::Udp,
                    addr: parse_addr(next(&mut i)?)?,
                })
            }
            "--sctp-service" => {
                id = Some(ServiceId::Inet {
                    protocol: IpvsProtocol::Sctp,
                    addr: parse_addr(next(&mut i)?)?,
                })
            }
            "-f" => fw_mark = Some(num(next(&mut i)?)?),
            "-6" => v6 = true,
            "-s" => sched = next(&mut i)?.to_owned(),
            "-b" => {
                for f in next(&mut i)?.split(',') {
                    match f {
                        "sh-fallback" | "mh-fallback" => flags.sched_fallback = true,
                        "sh-port" | "mh-port" => flags.sched_port = true,
                        "flag-3" => flags.sched3 = true,
                        o => return Err(format!("unknown flag {o}")),
                    }
                }
            }
            "-p" => {
                let t = match toks.get(i + 1).and_then(|t| t.parse().ok()) {
                    Some(t) => {
                        i += 1;
                        t
                    }
                    None => 300,
                };
                persistence = Some(t);
            }
            "-M" => {
                let m = next(&mut i)?;
                netmask = Some(match m.parse::<std::net::Ipv4Addr>() {
                    Ok(a) => u32::from(a).count_ones() as u8,
                    Err(_) => num(m)? as u8,
                });
            }
            "-o" => flags.one_packet = true,
            "-r" => real = Some(parse_addr(next(&mut i)?)?),
            "-g" => fwd = FwdMethod::Route,
            "-m" => fwd = FwdMethod::Masq,
            "-i" => fwd = FwdMethod::Tunnel,
            "-w" => weight = num(next(&mut i)?)?,
            "-x" => ux = num(next(&mut i)?)?,
            "-y" => ly = num(next(&mut i)?)?,
            "--tun-type" => {
                tunnel = match next(&mut i)? {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    o => return Err(format!("unknown tunnel type {o}")),
                }
            }
            "--tun-port" => tport = num(next(&mut i)?)? as u16,
            o => return Err(format!("unknown option {o}")),
        }
        i += 1;
    }
    let id = match (id, fw_mark) {
        (Some(id), None) => id,
        (None, Some(mark)) => ServiceId::Fwmark {
            family: if v6 { Family::V6 } else { Family::V4 },
            mark,
        },
        _ => return Err("need exactly one of -t, -u, --sctp-service, -f".into()),
    };
    match cmd {
        "-A" | "-E" => {
            let mut s = Service::new(id, sched);
            s.flags = flags;
            s.persistence = persistence;
            if let Some(m) = netmask {
                s.netmask = m;
            }
            match out.iter_mut().find(|e| e.0.id == id) {
                Some(e) => e.0 = s,
                None => out.push((s, Vec::new())),
            }
        }
        "-a" | "-e" => {
            let addr = real.ok_or("missing -r")?;
            let mut d = Dest::new(addr, fwd, weight);
            d.upper_threshold = ux;
            d.lower_threshold = ly;
            d.tunnel = tunnel;
            d.tunnel_port = tport;
            let e = out
                .iter_mut()
                .find(|e| e.0.id == id)
                .ok_or("destination before its service")?;
            match e.1.iter_mut().find(|x| x.addr == addr) {
                Some(x) => *x = d,
                None => e.1.push(d),
            }
        }
        _ => return Err("need one of -A -E -a -e".into()),
    }
    Ok(())
}
