//! `Loader` (which re-walks only the virtual services whose text changed)
//! accepts and rejects exactly what `parse` (the whole-file walk) does, with
//! the same config or the same errors, over generated configs and edits.
#![allow(clippy::unwrap_used)]

use halb_config::{parse, Loader};
use proptest::prelude::*;
use std::path::Path;

/// `[global]`, or text before the first table.
fn prelude() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("# halb.toml\n".to_owned()),
        Just("[global]\nworkers = 2\n".to_owned()),
        Just("[global]\non_down = \"remove\"\nconnect_timeout = \"2s\"\n".to_owned()),
        Just("[global]\n[global.check]\ntype = \"tcp\"\ninterval = \"2s\"\n".to_owned()),
        Just("[global]\ndata_plane = \"ipvs\"\n".to_owned()),
        // A problem in [global].
        Just("[global]\nworkerz = 2\n".to_owned()),
        // Root keys before any table.
        Just("virtual_service = []\n".to_owned()),
        Just("global.workers = 3\n".to_owned()),
        // A string holding what looks like a service and another table: cut
        // there, the pieces would put the string's end in another piece.
        Just("[global.check]\ntype = \"http\"\nbody_contains = \"\"\"\n[[virtual_service]]\nlisten = \"127.0.0.1:86\"\n[[vrrp_instance]]\n\"\"\"\n".to_owned()),
    ]
}

/// How a service's header is written.
fn header() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => Just("[[virtual_service]]\n"),
        1 => Just("[[virtual_service]] # a comment\n"),
        1 => Just("  [[virtual_service]]\r\n"),
        1 => Just("[[ virtual_service ]]\n"),
        1 => Just("[virtual_service]\n"),
    ]
}

/// The body of one virtual service.
fn body() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        3 => Just(None),
        1 => Just(Some("web")),
        1 => Just(Some("db")),
        1 => Just(Some(" bad ")),
    ];
    let listen = prop_oneof![
        Just("127.0.0.1:80"),
        Just("127.0.0.1:81"),
        Just("127.0.0.1:82"),
        Just("127.0.0.1:83"),
        Just("127.0.0.1:84"),
        Just("[::1]:80"),
        Just("127.0.0.1:99999"),
    ];
    let scheduler = prop_oneof![Just("wlc"), Just("rr"), Just("sh"), Just("roundrobin")];
    let reals = prop::collection::vec((1u8..6, 0i64..4), 0..4);
    let style = 0u8..3;
    let extra = prop_oneof![
        4 => Just(String::new()),
        1 => Just("  [virtual_service.persistence]\n  timeout = \"300s\"\n".to_owned()),
        1 => Just("  [virtual_service.check]\n  type = \"tcp\"\n".to_owned()),
        // A string holding what looks like a service header.
        1 => Just("  [virtual_service.check]\n  type = \"http\"\n  body_contains = \"\"\"\n[[virtual_service]]\nlisten = \"127.0.0.1:85\"\n\"\"\"\n".to_owned()),
        1 => Just("  [virtual_service.check]\n  type = \"http\"\n  body_contains = '''\n[global]\n'''\n".to_owned()),
        // An array whose elements start lines with `[`.
        1 => Just("scheduler_flags = [\n\"port\",\n]\n".to_owned()),
        1 => Just("unknown_key = [\n[1],\n]\n".to_owned()),
        1 => Just("weight = 3\n".to_owned()),
        1 => Just("protocol = \"udp\"\n".to_owned()),
    ];
    (name, listen, scheduler, reals, style, extra).prop_map(
        |(name, listen, scheduler, reals, style, extra)| {
            let mut b = String::new();
            if let Some(n) = name {
                b.push_str(&format!("name = \"{n}\"\n"));
            }
            b.push_str(&format!(
                "listen = \"{listen}\"\nscheduler = \"{scheduler}\"\n"
            ));
            let addr = |host: u8| {
                if listen.starts_with('[') {
                    format!("[::1]:{}", 18080 + u16::from(host))
                } else {
                    format!("127.0.0.{host}:8080")
                }
            };
            match style {
                0 if !reals.is_empty() => {
                    let items: Vec<String> = reals
                        .iter()
                        .map(|(h, w)| format!("{{ address = \"{}\", weight = {w} }}", addr(*h)))
                        .collect();
                    b.push_str(&format!("real_server = [ {} ]\n", items.join(", ")));
                    b.push_str(&extra);
                }
                _ => {
                    b.push_str(&extra);
                    for (h, w) in &reals {
                        b.push_str(&format!(
                            "\n  [[virtual_service.real_server]]\n  address = \"{}\"\n  weight = {w}\n",
                            addr(*h)
                        ));
                    }
                }
            }
            b
        },
    )
}

/// Root tables that may come between or after the services.
fn other() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 51\npriority = 100\nvirtual_ipaddress = [\"192.0.2.100/24\"]\n".to_owned()),
        Just("[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"lo\"\nvirtual_router_id = 52\npriority = 100\nvirtual_ipaddress = [\"192.0.2.101/24\"]\ntrack_service = [\"web\"]\n".to_owned()),
        Just("[global.ipvs]\nforeign = \"keep\"\n".to_owned()),
        // Resource groups: their member tables are root tables of the rest
        // too, cut apart from their group.
        Just("[[resource_group]]\nname = \"web\"\nfollows = \"VI_1\"\n  [[resource_group.member]]\n  name = \"fs\"\n  agent = \"ocf:heartbeat:Filesystem\"\n  [resource_group.member.params]\n  device = \"/dev/loop0\"\n  [[resource_group.member]]\n  name = \"nginx\"\n  agent = \"lsb:nginx\"\n".to_owned()),
        Just("[[resource_group]]\nname = \"db\"\nfollows = \"VI_2\"\nmember = [{ name = \"cache\", agent = \"lsb:memcached\", on_fail = \"stop\" }]\n".to_owned()),
        Just("[unknown_table]\n".to_owned()),
    ]
}

/// One file: a prelude, services, other tables among them.
#[derive(Debug, Clone)]
struct File {
    prelude: String,
    /// (header, body, other table after it)
    services: Vec<(&'static str, String, Option<String>)>,
}

impl File {
    fn text(&self) -> String {
        let mut t = self.prelude.clone();
        for (h, b, o) in &self.services {
            t.push('\n');
            t.push_str(h);
            t.push_str(b);
            if let Some(o) = o {
                t.push('\n');
                t.push_str(o);
            }
        }
        t
    }
}

fn file() -> impl Strategy<Value = File> {
    let svc = (header(), body(), prop::option::weighted(0.15, other()));
    (prelude(), prop::collection::vec(svc, 0..7))
        .prop_map(|(prelude, services)| File { prelude, services })
}

/// An edit of a file: one service changed, added, removed or moved, or the
/// prelude replaced.
#[derive(Debug, Clone)]
enum Edit {
    Body(prop::sample::Index, String),
    Add(prop::sample::Index, &'static str, String),
    Remove(prop::sample::Index),
    Swap(prop::sample::Index, prop::sample::Index),
    Prelude(String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), body()).prop_map(|(i, b)| Edit::Body(i, b)),
        2 => (any::<prop::sample::Index>(), header(), body()).prop_map(|(i, h, b)| Edit::Add(i, h, b)),
        2 => any::<prop::sample::Index>().prop_map(Edit::Remove),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(i, j)| Edit::Swap(i, j)),
        1 => prelude().prop_map(Edit::Prelude),
    ]
}

impl Edit {
    fn apply(&self, f: &mut File) {
        let n = f.services.len();
        match self {
            Edit::Body(i, b) if n > 0 => f.services[i.index(n)].1 = b.clone(),
            Edit::Add(i, h, b) => f.services.insert(i.index(n + 1), (h, b.clone(), None)),
            Edit::Remove(i) if n > 0 => {
                f.services.remove(i.index(n));
            }
            Edit::Swap(i, j) if n > 0 => f.services.swap(i.index(n), j.index(n)),
            Edit::Prelude(p) => f.prelude = p.clone(),
            _ => {}
        }
    }
}

/// The loader's answer equals the whole-file walk's.
fn same(loader: &mut Loader, text: &str) -> Result<(), TestCaseError> {
    let file = Path::new("halb.toml");
    let whole = parse(text, file);
    let got = loader.parse(text, file);
    match (&whole, &got) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "config differs for\n{}", text),
        (Err(a), Err(b)) => prop_assert_eq!(a.render(), b.render(), "errors differ for\n{}", text),
        _ => prop_assert!(
            false,
            "accepted by one and not the other ({:?} / {:?}; {:?}) for\n{}",
            whole.as_ref().map(|_| "ok").map_err(|e| e.render()),
            got.as_ref().map(|_| "ok").map_err(|e| e.render()),
            loader.stats(),
            text
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn loader_agrees_with_the_whole_walk(start in file(), edits in prop::collection::vec(edit(), 1..6)) {
        let mut loader = Loader::default();
        let mut f = start;
        same(&mut loader, &f.text())?;
        for e in &edits {
            e.apply(&mut f);
            same(&mut loader, &f.text())?;
        }
    }
}

/// A config of `n` services; service `changed` gets weight 7.
fn services(n: usize, changed: Option<usize>) -> String {
    let mut t = String::from("[global]\nworkers = 1\n");
    for i in 0..n {
        let w = if Some(i) == changed { 7 } else { 1 };
        t.push_str(&format!(
            "\n[[virtual_service]]\nlisten = \"127.0.0.1:{}\"\nreal_server = [ {{ address = \"127.0.0.2:80\", weight = {w} }} ]\n",
            10000 + i
        ));
    }
    t.push_str("\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 51\npriority = 100\nvirtual_ipaddress = [\"192.0.2.100/24\"]\n");
    t
}

#[test]
fn a_reload_walks_only_the_changed_service() {
    let file = Path::new("halb.toml");
    let mut loader = Loader::default();
    let first = loader.parse(&services(300, None), file).unwrap();
    let s = loader.stats();
    assert_eq!((s.pieces, s.reused, s.whole), (300, 0, false));
    assert_eq!(first, parse(&services(300, None), file).unwrap());

    let text = services(300, Some(123));
    let second = loader.parse(&text, file).unwrap();
    let s = loader.stats();
    assert_eq!((s.pieces, s.reused, s.whole), (300, 299, false));
    assert_eq!(second, parse(&text, file).unwrap());
    assert_eq!(second.services[123].reals[0].weight, 7);
    assert_eq!(second.vrrp_instances.len(), 1);

    // A changed [global] re-walks every service (they inherit from it).
    let text = text.replace("workers = 1", "workers = 2");
    let third = loader.parse(&text, file).unwrap();
    assert_eq!(loader.stats().reused, 0);
    assert_eq!(third, parse(&text, file).unwrap());
}

#[test]
fn a_rejected_config_gives_the_whole_walk_errors_and_keeps_the_cache() {
    let file = Path::new("halb.toml");
    let mut loader = Loader::default();
    loader.parse(&services(50, None), file).unwrap();
    // Two services with one listen address: found across pieces.
    let dup = services(50, None).replace("127.0.0.1:10007", "127.0.0.1:10003");
    let e = loader.parse(&dup, file).unwrap_err();
    assert!(loader.stats().whole);
    assert_eq!(e.render(), parse(&dup, file).unwrap_err().render());
    assert!(e.render().contains("halb.toml:33:"), "{}", e.render());
    // The pieces of the last good load are still there.
    loader.parse(&services(50, Some(1)), file).unwrap();
    assert_eq!(loader.stats().reused, 49);
}
