//! Byte-exact encoding of every request (hex snapshots, checked against
//! ip_vs.h by hand once and frozen), decoding of kernel-shaped replies, and
//! a property: decoding arbitrary bytes never panics.
#![allow(clippy::unwrap_used)]

use halb_ipvs::codec::{decode_replies, encode_family_request, encode_reply, Reply, Request};
use halb_ipvs::*;
use proptest::prelude::*;
use std::fmt::Write;

const FAMILY: u16 = 0x1c;

fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in b.chunks(16).enumerate() {
        let _ = write!(s, "{:04x}:", i * 16);
        for c in chunk {
            let _ = write!(s, " {c:02x}");
        }
        s.push('\n');
    }
    s
}

fn web() -> ServiceId {
    ServiceId::Inet {
        protocol: IpvsProtocol::Tcp,
        addr: "192.0.2.10:80".parse().unwrap(),
    }
}

fn persistent_sh() -> Service {
    let mut s = Service::new(web(), "sh");
    s.flags.sched_fallback = true;
    s.flags.sched_port = true;
    s.persistence = Some(300);
    s.netmask = 24;
    s
}

fn requests() -> Vec<(&'static str, Request)> {
    let v6 = ServiceId::Inet {
        protocol: IpvsProtocol::Udp,
        addr: "[2001:db8::10]:53".parse().unwrap(),
    };
    let mut udp6 = Service::new(v6, "rr");
    udp6.flags.one_packet = true;
    let fwm = ServiceId::Fwmark {
        family: Family::V4,
        mark: 7,
    };
    let sctp = ServiceId::Inet {
        protocol: IpvsProtocol::Sctp,
        addr: "192.0.2.10:3868".parse().unwrap(),
    };
    let mut d = Dest::new("198.51.100.1:80".parse().unwrap(), FwdMethod::Route, 3);
    d.upper_threshold = 1000;
    d.lower_threshold = 800;
    let mut gue = Dest::new("198.51.100.2:80".parse().unwrap(), FwdMethod::Tunnel, 1);
    gue.tunnel = TunnelType::Gue;
    gue.tunnel_port = 6080;
    vec![
        (
            "new_service_tcp4_sh_persistent",
            Request::NewService(persistent_sh()),
        ),
        ("new_service_udp6_onepacket", Request::NewService(udp6)),
        (
            "new_service_fwmark",
            Request::NewService(Service::new(fwm, "wlc")),
        ),
        (
            "new_service_sctp_mh",
            Request::NewService(Service::new(sctp, "mh")),
        ),
        (
            "set_service",
            Request::SetService(Service::new(web(), "wrr")),
        ),
        ("del_service", Request::DelService(web())),
        ("get_services", Request::GetServices),
        ("new_dest_route", Request::NewDest(web(), d)),
        (
            "new_dest_masq",
            Request::NewDest(
                web(),
                Dest::new("198.51.100.3:8080".parse().unwrap(), FwdMethod::Masq, 1),
            ),
        ),
        ("new_dest_tunnel_gue", Request::NewDest(web(), gue)),
        (
            "set_dest_quiescent",
            Request::SetDest(
                web(),
                Dest::new("198.51.100.1:80".parse().unwrap(), FwdMethod::Route, 0),
            ),
        ),
        (
            "del_dest",
            Request::DelDest(web(), "198.51.100.1:80".parse().unwrap()),
        ),
        ("get_dests", Request::GetDests(web())),
        (
            "set_config",
            Request::SetConfig(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            }),
        ),
        ("get_config", Request::GetConfig),
        (
            "new_daemon_master",
            Request::NewDaemon(SyncDaemon {
                state: SyncState::Master,
                interface: "eth0".into(),
                sync_id: 51,
                group: Some("224.0.0.81".parse().unwrap()),
                port: Some(8848),
                ttl: Some(1),
                max_len: None,
            }),
        ),
        ("del_daemon_backup", Request::DelDaemon(SyncState::Backup)),
        ("get_daemons", Request::GetDaemons),
        ("get_info", Request::GetInfo),
    ]
}

#[test]
fn requests_encode_byte_exact() {
    let mut all = String::new();
    for (name, req) in requests() {
        let _ = writeln!(all, "## {name}: {req:?}");
        all.push_str(&hex(&req.encode(FAMILY, 42)));
        all.push('\n');
    }
    all.push_str("## family lookup\n");
    all.push_str(&hex(&encode_family_request(1)));
    insta::assert_snapshot!(all);
}

#[test]
fn header_fields_are_where_the_kernel_reads_them() {
    let b = Request::DelService(web()).encode(FAMILY, 42);
    // nlmsghdr: len, type = family id, flags = REQUEST|ACK, seq 42.
    assert_eq!(
        u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
        b.len()
    );
    assert_eq!(u16::from_ne_bytes([b[4], b[5]]), FAMILY);
    assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 0x1 | 0x4);
    assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 42);
    // genlmsghdr: cmd DEL_SERVICE (3), version 1.
    assert_eq!((b[16], b[17]), (3, 1));
    // Port in network order inside the nested service attribute.
    let dump = Request::GetServices.encode(FAMILY, 1);
    assert_eq!(u16::from_ne_bytes([dump[6], dump[7]]), 0x1 | 0x300);
}

fn replies() -> Vec<(&'static str, Reply)> {
    let stats = Stats {
        conns: 10,
        inpkts: 200,
        outpkts: 150,
        inbytes: 30_000,
        outbytes: 4_000_000,
        cps: 1,
        inpps: 20,
        outpps: 15,
        inbps: 3000,
        outbps: 400_000,
    };
    let mut gre = Dest::new("198.51.100.2:80".parse().unwrap(), FwdMethod::Tunnel, 2);
    gre.tunnel = TunnelType::Gre;
    vec![
        (
            "service",
            Reply::Service(ServiceInfo {
                service: persistent_sh(),
                stats,
            }),
        ),
        (
            "service_fwmark_v6",
            Reply::Service(ServiceInfo {
                service: Service::new(
                    ServiceId::Fwmark {
                        family: Family::V6,
                        mark: 9,
                    },
                    "lblcr",
                ),
                stats: Stats::default(),
            }),
        ),
        (
            "dest",
            Reply::Dest(DestInfo {
                dest: gre,
                active_conns: 4,
                inactive_conns: 7,
                persist_conns: 1,
                stats,
            }),
        ),
        (
            "config",
            Reply::Config(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            }),
        ),
        (
            "daemon",
            Reply::Daemon(SyncDaemon {
                state: SyncState::Backup,
                interface: "eth1".into(),
                sync_id: 3,
                group: Some("224.0.0.81".parse().unwrap()),
                port: Some(8848),
                ttl: Some(1),
                max_len: Some(1472),
            }),
        ),
        (
            "info",
            Reply::Info(Info {
                version: 0x010201,
                conn_tab_size: 4096,
            }),
        ),
    ]
}

#[test]
fn replies_decode_to_what_was_encoded() {
    let mut all = String::new();
    for (name, r) in replies() {
        let bytes = encode_reply(&r, FAMILY, 7);
        let _ = writeln!(all, "## {name}");
        all.push_str(&hex(&bytes));
        all.push('\n');
        let back = decode_replies(&bytes).unwrap();
        assert_eq!(back, vec![r], "{name}");
    }
    insta::assert_snapshot!(all);
}

#[test]
fn ack_error_and_done_decode() {
    // NLMSG_ERROR (2) with errno -EEXIST for seq 5, then NLMSG_DONE (3).
    let mut b = Vec::new();
    let mut err = vec![0u8; 36];
    err[0..4].copy_from_slice(&36u32.to_ne_bytes());
    err[4..6].copy_from_slice(&2u16.to_ne_bytes());
    err[8..12].copy_from_slice(&5u32.to_ne_bytes());
    err[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
    err[20..24].copy_from_slice(&16u32.to_ne_bytes());
    b.extend_from_slice(&err);
    let mut ack = err.clone();
    ack[8..12].copy_from_slice(&6u32.to_ne_bytes());
    ack[16..20].copy_from_slice(&0i32.to_ne_bytes());
    b.extend_from_slice(&ack);
    let mut done = vec![0u8; 20];
    done[0..4].copy_from_slice(&20u32.to_ne_bytes());
    done[4..6].copy_from_slice(&3u16.to_ne_bytes());
    done[8..12].copy_from_slice(&6u32.to_ne_bytes());
    b.extend_from_slice(&done);
    assert_eq!(
        decode_replies(&b).unwrap(),
        vec![
            Reply::Error { seq: 5, errno: -17 },
            Reply::Ack { seq: 6 },
            Reply::Done { seq: 6 }
        ]
    );
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_replies(&b);
    }

    #[test]
    fn decoding_mutated_replies_never_panics(
        which in 0usize..6,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut b = encode_reply(&replies()[which].1, FAMILY, 1);
        for (i, v) in flips {
            let n = b.len();
            b[i % n] = v;
        }
        let _ = decode_replies(&b);
    }

    #[test]
    fn services_round_trip(
        a in any::<[u8; 4]>(), port in any::<u16>(), p in 0u8..3,
        sched in prop::sample::select(vec!["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "mh", "fo", "ovf"]),
        pers in proptest::option::of(1u32..100_000), mask in 0u8..=32,
        one in any::<bool>(), fb in any::<bool>(), sp in any::<bool>(),
    ) {
        let protocol = [IpvsProtocol::Tcp, IpvsProtocol::Udp, IpvsProtocol::Sctp][p as usize];
        let mut s = Service::new(ServiceId::Inet { protocol, addr: (a, port).into() }, sched);
        s.persistence = pers;
        if pers.is_some() { s.netmask = mask; }
        s.flags.one_packet = one;
        s.flags.sched_fallback = fb;
        s.flags.sched_port = sp;
        let r = Reply::Service(ServiceInfo { service: s, stats: Stats::default() });
        prop_assert_eq!(decode_replies(&encode_reply(&r, FAMILY, 1)).unwrap(), vec![r]);
    }
}
