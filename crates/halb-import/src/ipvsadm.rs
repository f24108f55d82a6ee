//! `ipvsadm -S` (`ipvsadm-save`) output: `-A` service lines and `-a`
//! real-server lines, read by `halb_ipvs::rules`. Every service becomes a
//! `data_plane = "ipvs"` virtual service; the table is the same, the
//! health checks are new (an ipvsadm table has none).

use crate::emit::{self, Emitter};
use crate::report::{Advice, Pos, Report};
use crate::{Input, Options, Source};
use halb_ipvs::{Family, FwdMethod, IpvsProtocol, ServiceId, TunnelType};

pub(crate) fn import(
    inputs: &[Input],
    _source: &dyn Source,
    _opts: &Options,
    out: &mut Emitter,
    report: &mut Report,
) {
    for input in inputs {
        import_one(input, out, report);
    }
}

/// The line each service was defined on (for the comments).
fn service_line(text: &str, id: &ServiceId) -> usize {
    let want = match id {
        ServiceId::Inet { protocol, addr } => {
            let flag = match protocol {
                IpvsProtocol::Tcp => "-t",
                IpvsProtocol::Udp => "-u",
                _ => "--sctp-service",
            };
            vec![flag.to_owned(), addr.to_string()]
        }
        ServiceId::Fwmark { mark, .. } => vec!["-f".to_owned(), mark.to_string()],
    };
    for (n, line) in text.lines().enumerate() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        // ipvsadm takes its options in any order: `-s rr -A -t …` adds too.
        if toks.iter().any(|t| *t == "-A" || *t == "-E")
            && toks.windows(2).any(|w| w[0] == want[0] && w[1] == want[1])
        {
            return n + 1;
        }
    }
    // Not found (cannot happen for a parsed service): the file's start.
    1
}

/// The column of what an error message quotes (`bad address "x"`,
/// `unknown option -q`), else of the line's first character.
fn error_col(line: &str, msg: &str) -> usize {
    let quoted = msg.split('"').nth(1).filter(|q| !q.is_empty());
    let last = msg.rsplit(' ').next().filter(|t| t.starts_with('-'));
    let first = line.len() - line.trim_start().len();
    let at = quoted.or(last).and_then(|t| line.find(t)).unwrap_or(first);
    line[..at].chars().count() + 1
}

fn import_one(input: &Input, out: &mut Emitter, report: &mut Report) {
    let (entries, errors) = halb_ipvs::rules::parse_rules_all(&input.text);
    let lines: Vec<&str> = input.text.lines().collect();
    for (n, msg) in &errors {
        let line = lines.get(n.saturating_sub(1)).copied().unwrap_or("");
        let pos = Pos::new(&input.name, *n, error_col(line, msg));
        let fix = if msg.contains("bad address") {
            "ipvsadm -S prints names unless told not to: save with `ipvsadm -S -n`"
        } else if msg.contains("before its service") {
            "put the service's -A line before its -a lines"
        } else {
            "this line is not of `ipvsadm -S -n` output: fix or remove it"
        };
        report.error(&pos, "", msg.clone(), Advice::Fix(fix.to_owned()));
    }
    if entries.is_empty() && errors.is_empty() {
        report.note(
            &Pos::file(&input.name),
            "",
            "no services in this file",
            Advice::None,
        );
    }
    for (svc, dests) in entries {
        let line = service_line(&input.text, &svc.id);
        let pos = Pos::new(&input.name, line, 1);
        let what = match svc.id {
            ServiceId::Inet { protocol, addr } => format!("{} {addr}", proto_name(protocol)),
            ServiceId::Fwmark { mark, .. } => format!("fwmark {mark}"),
        };
        let mut t = emit::table(&pos, &format!("ipvsadm service {what}"));
        emit::set_str(&mut t, "data_plane", "ipvs");
        let v6 = match svc.id {
            ServiceId::Inet { protocol, addr } => {
                emit::set_str(&mut t, "listen", addr.to_string());
                emit::set_str(&mut t, "protocol", proto_name(protocol));
                addr.is_ipv6()
            }
            ServiceId::Fwmark { family, mark } => {
                emit::set_int(&mut t, "fwmark", i64::from(mark));
                family == Family::V6
            }
        };
        if !SCHEDULERS.contains(&svc.scheduler.as_str()) {
            report.error(
                &pos,
                "-s",
                format!("unknown scheduler {:?}", svc.scheduler),
                Advice::Fix(format!("one of {}", SCHEDULERS.join(", "))),
            );
            continue;
        }
        emit::set_str(&mut t, "scheduler", &svc.scheduler);
        let mut flags = Vec::new();
        if svc.flags.sched_fallback {
            flags.push("fallback");
        }
        if svc.flags.sched_port {
            flags.push("port");
        }
        if !flags.is_empty() {
            emit::set_str_array(&mut t, "scheduler_flags", &flags);
        }
        if svc.flags.sched3 {
            report.unmapped(
                &pos,
                "-b flag-3",
                "the scheduler's third flag",
                Advice::NotSupported,
            );
        }
        if svc.flags.one_packet {
            emit::set_bool(&mut t, "one_packet", true);
        }
        if let Some(timeout) = svc.persistence {
            let mut p = toml_edit::Table::new();
            emit::set_str(
                &mut p,
                "timeout",
                emit::duration_ms(u64::from(timeout) * 1000),
            );
            if v6 {
                emit::set_int(&mut p, "prefix_v6", i64::from(svc.netmask));
            } else {
                emit::set_int(&mut p, "netmask", i64::from(svc.netmask));
            }
            emit::set_sub_table(&mut t, "persistence", p);
        }
        for d in dests {
            if d.addr.port() == 0 && !matches!(svc.id, ServiceId::Fwmark { .. }) {
                report.unmapped(
                    &pos,
                    &format!("-r {}", d.addr),
                    "a real server of port 0 in a service of one port",
                    Advice::Fix("give the real server's port (left out)".to_owned()),
                );
                continue;
            }
            if let ServiceId::Inet { addr, .. } = svc.id {
                if addr == d.addr {
                    report.unmapped(
                        &pos,
                        &format!("-r {}", d.addr),
                        "a real server that is the service's own address",
                        Advice::Fix(
                            "halb refuses a service that loops into itself: left out".to_owned(),
                        ),
                    );
                    continue;
                }
            }
            let mut r = toml_edit::Table::new();
            emit::set_str(&mut r, "address", d.addr.to_string());
            emit::set_int(&mut r, "weight", i64::from(d.weight));
            let fwd = match d.fwd {
                FwdMethod::Masq => "masq",
                FwdMethod::Tunnel => "tunnel",
                _ => "route",
            };
            emit::set_str(&mut r, "forward", fwd);
            if d.fwd == FwdMethod::Tunnel && d.tunnel != TunnelType::Ipip {
                let ty = match d.tunnel {
                    TunnelType::Gue => "gue",
                    _ => "gre",
                };
                emit::set_str(&mut r, "tunnel_type", ty);
                if d.tunnel_port != 0 {
                    emit::set_int(&mut r, "tunnel_port", i64::from(d.tunnel_port));
                }
            }
            if d.upper_threshold != 0 {
                emit::set_int(&mut r, "upper_threshold", i64::from(d.upper_threshold));
            }
            if d.lower_threshold != 0 {
                emit::set_int(&mut r, "lower_threshold", i64::from(d.lower_threshold));
            }
            emit::push_real_server(&mut t, r);
        }
        out.virtual_service(t);
    }
}

/// The IPVS schedulers halb knows (its config refuses others).
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "mh", "fo", "ovf",
];

fn proto_name(p: IpvsProtocol) -> &'static str {
    match p {
        IpvsProtocol::Udp => "udp",
        IpvsProtocol::Sctp => "sctp",
        _ => "tcp",
    }
}

#[cfg(test)]
mod tests {
    use crate::{import, Format, Input, MemorySource, Options};

    fn run(text: &str) -> Result<crate::Imported, crate::Report> {
        import(
            Format::Ipvsadm,
            &[Input::new("rules", text)],
            &MemorySource::default(),
            &Options::default(),
        )
    }

    #[test]
    fn a_saved_table() {
        let text = "-A -t 192.0.2.1:80 -s wrr -p 600 -M 255.255.255.0\n\
                    -a -t 192.0.2.1:80 -r 198.51.100.1:80 -m -w 2 -x 100 -y 50\n\
                    -a -t 192.0.2.1:80 -r 198.51.100.2:80 -g -w 1\n\
                    -A -u 192.0.2.1:53 -s sh -b sh-fallback,sh-port -o\n\
                    -a -u 192.0.2.1:53 -r 198.51.100.3:53 -i -w 1\n\
                    -A -f 7 -s rr\n\
                    -a -f 7 -r 198.51.100.4:0 -g -w 1\n";
        let out = run(text).unwrap();
        let cfg = crate::check(&out.toml, "out.toml")
            .unwrap_or_else(|e| panic!("{}\n{}", e.render(), out.toml));
        assert_eq!(cfg.services.len(), 3);
        insta::assert_snapshot!(out.toml);
        insta::assert_snapshot!(out.report.render());
    }

    #[test]
    fn every_bad_line_positioned() {
        let text = "-A -t 192.0.2.1:80 -s rr\n\
                    -A -t www.example.com:http -s rr\n\
                    -a -t 192.0.2.9:80 -r 198.51.100.1:80\n\
                    -A -t 192.0.2.2:80 -q\n";
        let e = run(text).unwrap_err();
        insta::assert_snapshot!(e.render());
    }
}

#[cfg(test)]
mod props {
    use crate::{import, Format, Input, MemorySource, Options, Severity};
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "-A",
        "-a",
        "-E",
        "-e",
        "-t",
        "-u",
        "-f",
        "-r",
        "-s",
        "-p",
        "-M",
        "-w",
        "-x",
        "-y",
        "-g",
        "-m",
        "-i",
        "-o",
        "-b",
        "-6",
        "--tun-type",
        "--tun-port",
        "192.0.2.1:80",
        "[2001:db8::1]:80",
        "198.51.100.1:0",
        "7",
        "rr",
        "sh-port",
        "gue",
        "x",
        "",
        "#",
    ];

    proptest! {
        #[test]
        fn random_lines_never_panic_and_errors_are_positioned(
            lines in proptest::collection::vec(proptest::collection::vec(0..WORDS.len(), 0..8), 0..12)
        ) {
            let text: String = lines
                .iter()
                .map(|l| l.iter().map(|&i| WORDS[i]).collect::<Vec<_>>().join(" ") + "\n")
                .collect();
            match import(Format::Ipvsadm, &[Input::new("r", text.as_str())], &MemorySource::default(), &Options::default()) {
                Ok(out) => {
                    // What the importer writes, halb accepts.
                    if let Err(e) = crate::check(&out.toml, "x.toml") {
                        prop_assert!(false, "{}\n{}\n{}", text, e.render(), out.toml);
                    }
                }
                Err(e) => {
                    for f in &e.findings {
                        prop_assert_eq!(f.severity, Severity::Error);
                        prop_assert!(f.line >= 1 && f.col >= 1, "{}", f);
                    }
                }
            }
        }
    }
}
