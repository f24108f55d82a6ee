//! ldirectord and heartbeat imports: Debian's sample files (copied into
//! tests/data from the `ldirectord` 1:4.12.0-2 and `heartbeat`
//! 1:3.0.6-13 packages, so the tests do not need the packages) import
//! with no error, pass halb's config check, and their report and TOML
//! are snapshots. Then cases of our own: tabs and spaces, unindented
//! per-virtual keys, names, ranges, bad input (positioned, never a
//! panic), and mutated samples (proptest).
#![allow(clippy::unwrap_used)]

use halb_import::{import, Format, Imported, Input, MemorySource, Options, Report, Severity};
use proptest::prelude::*;

const LD_SAMPLE: &str = include_str!("data/ldirectord/ldirectord.cf");
const LD_ALL: &str = include_str!("data/ldirectord/ldirectord.cf.all");
const HOSTS: &str = include_str!("data/ldirectord/hosts");
const HA_CF: &str = include_str!("data/heartbeat/ha.cf");
const HARESOURCES: &str = include_str!("data/heartbeat/haresources");
const AUTHKEYS: &str = include_str!("data/heartbeat/authkeys");

fn run(
    format: Format,
    inputs: &[(&str, &str)],
    src: &MemorySource,
    opts: &Options,
) -> Result<Imported, Report> {
    let inputs: Vec<Input> = inputs.iter().map(|(n, t)| Input::new(*n, *t)).collect();
    import(format, &inputs, src, opts)
}

fn checked(out: &Imported) {
    if let Err(e) = halb_import::check(&out.toml, "imported.toml") {
        panic!("halb rejects the import:\n{}\n{}", e.render(), out.toml);
    }
}

fn ld(text: &str) -> Result<Imported, Report> {
    run(
        Format::Ldirectord,
        &[("ldirectord.cf", text)],
        &MemorySource::default(),
        &Options::default(),
    )
}

#[test]
fn debian_ldirectord_sample() {
    let out = ld(LD_SAMPLE).unwrap();
    checked(&out);
    insta::assert_snapshot!("ldirectord.cf.report", out.report.render());
    insta::assert_snapshot!("ldirectord.cf.toml", out.toml);
}

#[test]
fn debian_ldirectord_sample_every_block_uncommented() {
    let src = MemorySource::default().with("/test/hosts", HOSTS);
    let opts = Options {
        hosts_file: Some("/test/hosts".into()),
        ..Options::default()
    };
    let out = run(
        Format::Ldirectord,
        &[("ldirectord.cf.all", LD_ALL)],
        &src,
        &opts,
    )
    .unwrap();
    checked(&out);
    let cfg = halb_import::check(&out.toml, "x.toml").unwrap();
    assert_eq!(cfg.services.len(), 20);
    insta::assert_snapshot!("ldirectord.cf.all.report", out.report.render());
    insta::assert_snapshot!("ldirectord.cf.all.toml", out.toml);
    // No service halb cannot check was given a weaker check.
    for s in ["sip", "oracle"] {
        assert!(
            out.report
                .render()
                .contains(&format!("halb has no {s} probe yet")),
            "{s}"
        );
    }
    // Those halb has a probe for (issue 23) get it, with their settings.
    for t in ["ftp", "imap", "pop", "nntp", "submission", "ldap", "radius"] {
        assert!(
            out.toml.contains(&format!("type = \"{t}\"")),
            "{t}: {}",
            out.toml
        );
    }
    assert!(
        out.toml.contains("retrieve = \"welcome.msg\""),
        "{}",
        out.toml
    );
    // ldap: request (less its "/") is the base searched, receive matches
    // the DN; radius: the secret and the login.
    for line in [
        "search_base = \"dc=upmc, dc=fr\"",
        "expect_regex = \"dc=upmc, dc=fr\"",
        "secret = \"somesecret\"",
        "username = \"readuser\"",
    ] {
        assert!(out.toml.contains(line), "{line}: {}", out.toml);
    }
    // halb-config builds both probes from the imported file.
    let probes: Vec<String> = cfg
        .checks
        .iter()
        .map(|c| format!("{:?}", c.spec.probe))
        .collect();
    assert!(probes.iter().any(|p| p.starts_with("Ldap(")), "{probes:?}");
    assert!(
        probes
            .iter()
            .any(|p| p.starts_with("Radius(") && p.contains("readuser")),
        "{probes:?}"
    );
}

#[test]
fn ldap_and_radius_map_as_ldirectord_reads_them() {
    let text = "virtual=192.0.2.1:636\n\treal=198.51.100.1:636 masq\n\tservice=ldaps\n\tlogin=\"cn=mon,dc=example,dc=org\"\n\tpasswd=\"pw\"\n\
virtual=192.0.2.1:389\n\treal=198.51.100.1:389 masq \"ou=a,dc=example,dc=org\", \"^ou=a\"\n\tlogin=\"cn=mon\"\n\
virtual=192.0.2.1:1812\n\treal=198.51.100.1:1812 masq\n\tprotocol=udp\n";
    let out = ld(text).unwrap();
    checked(&out);
    let report = out.report.render();
    // ldaps with both: a simple bind, the root DSE searched.
    assert!(
        out.toml.contains(
            "type = \"ldaps\"\nbind_dn = \"cn=mon,dc=example,dc=org\"\npassword = \"pw\""
        ),
        "{}",
        out.toml
    );
    // The port picks ldap; a login without passwd binds anonymously.
    assert!(
        report.contains("ldirectord binds anonymously here"),
        "{report}"
    );
    assert!(
        out.toml
            .contains("search_base = \"ou=a,dc=example,dc=org\"\nexpect_regex = \"^ou=a\""),
        "{}",
        out.toml
    );
    // radius without a secret: left out, said so.
    assert!(report.contains("without a secret"), "{report}");
    assert!(!out.toml.contains("type = \"radius\""), "{}", out.toml);
}

#[test]
fn tabs_and_spaces_mixed() {
    // A tab is four columns; two spaces then a tab is six: all in the block.
    let text = "checktimeout=3\nvirtual=192.0.2.1:80\n\treal=198.51.100.1:80 masq\n    real=198.51.100.2:80 masq 3\n  \treal=198.51.100.3:80 masq\n\t  service=http\n\trequest=\"health\"\n\treceive=\"OK\"\n";
    let out = ld(text).unwrap();
    checked(&out);
    let cfg = halb_import::check(&out.toml, "x.toml").unwrap();
    assert_eq!(cfg.services[0].reals.len(), 3);
    assert!(out.toml.contains("path = \"/health\""), "{}", out.toml);
    assert!(out.toml.contains("timeout = \"3s\""), "{}", out.toml);
    // Three spaces are not enough: the block ends, the line is refused.
    let e = ld("virtual=192.0.2.1:80\n\treal=198.51.100.1:80 masq\n   real=198.51.100.2:80 masq\n")
        .unwrap_err();
    assert!(
        e.render()
            .contains("ldirectord.cf:3:4: error: real: a per-virtual directive indented by fewer than 4 columns"),
        "{e}"
    );
}

#[test]
fn unindented_per_virtual_keys_are_errors_unless_folded() {
    let text = "virtual=192.0.2.1:80\nreal=198.51.100.1:80 gate\nreal=198.51.100.2:80 gate\nservice=http\nquiescent=yes\n";
    let e = ld(text).unwrap_err();
    let r = e.render();
    assert!(r.contains("ldirectord.cf:2:1: error: real: a per-virtual directive unindented: ldirectord ends the virtual= block of line 1"), "{r}");
    assert!(r.contains("--fold-unindented"), "{r}");
    assert_eq!(e.findings.len(), 3, "{r}");
    let opts = Options {
        fold_unindented: true,
        ..Options::default()
    };
    let out = run(
        Format::Ldirectord,
        &[("ldirectord.cf", text)],
        &MemorySource::default(),
        &opts,
    )
    .unwrap();
    checked(&out);
    let r = out.report.render();
    assert!(
        r.contains("ldirectord.cf:2:1: note: real: a per-virtual directive unindented"),
        "{r}"
    );
    // quiescent is a global too: folded into the block only when asked.
    assert!(
        r.contains("ldirectord.cf:5:1: note: quiescent: unindented right after"),
        "{r}"
    );
    assert!(out.toml.contains("on_down = \"quiescent\""));
    let cfg = halb_import::check(&out.toml, "x.toml").unwrap();
    assert_eq!(cfg.services[0].reals.len(), 2);
    // Not folded: quiescent is a global (as ldirectord reads it), noted.
    let out = ld("virtual=192.0.2.1:80\n\treal=198.51.100.1:80 gate\nquiescent=yes\n").unwrap();
    assert!(out
        .report
        .render()
        .contains("ldirectord.cf:3:1: note: quiescent: unindented right after the virtual= block of line 1: ldirectord reads it as a global"));
    assert!(out.toml.contains("on_down = \"quiescent\""));
}

#[test]
fn a_blank_line_ends_the_block() {
    let e =
        ld("virtual=192.0.2.1:80\n\treal=198.51.100.1:80 gate\n\n\treal=198.51.100.2:80 gate\n")
            .unwrap_err();
    assert!(e
        .render()
        .contains("ldirectord.cf:4:2: error: real: a per-virtual directive after a blank line that ended the virtual= block"));
}

#[test]
fn names_resolve_through_hosts_and_services() {
    let src = MemorySource::default()
        .with(
            "/other/hosts",
            "192.0.2.10 www.example.com www\n198.51.100.7 web7\n198.51.100.9 web9\n",
        )
        .with("/other/services", "http 80/tcp www\nhttps 443/tcp\n");
    let opts = Options {
        hosts_file: Some("/other/hosts".into()),
        services_file: Some("/other/services".into()),
        ..Options::default()
    };
    let text = "virtual=www:http\n\treal=web7->web9:https masq 2\n\tchecktype=connect\n";
    let out = run(Format::Ldirectord, &[("ld.cf", text)], &src, &opts).unwrap();
    checked(&out);
    assert!(
        out.toml.contains(
            "# www is 192.0.2.10 (/other/hosts), http is port 80\nlisten = \"192.0.2.10:80\""
        ),
        "{}",
        out.toml
    );
    assert!(out.toml.contains("# web7 is 198.51.100.7, web9 is 198.51.100.9, https is port 443\naddress = \"198.51.100.8:443\""), "{}", out.toml);
    let cfg = halb_import::check(&out.toml, "x.toml").unwrap();
    assert_eq!(cfg.services[0].reals.len(), 3);
    // A name that is not in the file: an error that says where to add it.
    let e = run(
        Format::Ldirectord,
        &[("ld.cf", "virtual=nope:80\n\treal=web7:80 gate\n")],
        &src,
        &opts,
    )
    .unwrap_err();
    assert!(
        e.render().contains(
            "ld.cf:1:1: error: virtual=nope:80: cannot resolve \"nope\": it is not in /other/hosts"
        ),
        "{e}"
    );
}

#[test]
fn ranges_weights_thresholds_and_per_real_checks() {
    let text = "virtual=192.0.2.1:80\n\treal=198.51.100.1->198.51.100.4:80 masq 5 \"/a.html\", \"A\" l:10 u:20\n\treal=198.51.100.9:8080 gate\n\treal=198.51.100.10 masq\n\tservice=http\n\tchecktype=negotiate\n\tvirtualhost=www.example.com\n";
    let out = ld(text).unwrap();
    checked(&out);
    let cfg = halb_import::check(&out.toml, "x.toml").unwrap();
    let s = &cfg.services[0];
    assert_eq!(s.reals.len(), 6);
    assert!(
        out.toml
            .contains("upper_threshold = 20\nlower_threshold = 10"),
        "{}",
        out.toml
    );
    assert!(
        out.toml.contains("path = \"/a.html\"\nbody_regex = \"A\""),
        "{}",
        out.toml
    );
    // gate gets the virtual port, as ldirectord sets it; a masq real
    // without a port too (ipvsadm).
    assert!(out.toml.contains("address = \"198.51.100.9:80\""));
    assert!(out.toml.contains("address = \"198.51.100.10:80\""));
    let r = out.report.render();
    assert!(
        r.contains("ldirectord.cf:3:2: note: real: port 8080 with gate"),
        "{r}"
    );
    insta::assert_snapshot!("ldirectord.ranges.toml", out.toml);
}

#[test]
fn bad_input_is_positioned() {
    let text = "checktimeout=x\nfoo=1\nvirtual=192.0.2.1:80\n\treal=198.51.100.1:80 bogus\n\treal=198.51.100.5->198.51.100.1:80 gate\n\trequest=index.html\n\tchecktype=sometimes\n\tautoreload=yes\nvirtual=[2001:db8::1]:80\nvirtual=1.2.3.4\n";
    let e = ld(text).unwrap_err();
    insta::assert_snapshot!("ldirectord.bad.report", e.render());
    for f in &e.findings {
        assert!(f.line > 0 && f.col > 0, "{f}");
        assert_eq!(f.severity, Severity::Error);
    }
}

#[test]
fn one_service_file_as_in_etc_ha_d_conf() {
    let text = "virtual=192.0.2.5:3306\n\treal=10.0.0.1:3306 gate\n\treal=10.0.0.2:3306 gate\n\tlogin=\"hc\"\n\tpasswd=\"pw\"\n\tdatabase=\"app\"\n\trequest=\"SELECT 1\"\n\tquiescent=yes\n";
    let out = run(
        Format::Ldirectord,
        &[("/etc/ha.d/conf/db", text)],
        &MemorySource::default(),
        &Options::default(),
    )
    .unwrap();
    checked(&out);
    assert!(out.toml.contains("type = \"mysql\"\nusername = \"hc\"\npassword = \"pw\"\ndatabase = \"app\"\nquery = \"SELECT 1\""), "{}", out.toml);
    assert!(
        out.toml.contains("timeout = \"30s\""),
        "negotiatetimeout default"
    );
}

#[test]
fn debian_heartbeat_samples() {
    let out = run(
        Format::Heartbeat,
        &[
            ("ha.cf", HA_CF),
            ("haresources", HARESOURCES),
            ("authkeys", AUTHKEYS),
        ],
        &MemorySource::default(),
        &Options::default(),
    )
    .unwrap();
    checked(&out);
    insta::assert_snapshot!("heartbeat.samples.report", out.report.render());
    insta::assert_snapshot!("heartbeat.samples.toml", out.toml);
}

/// Debian's samples with their example lines uncommented: two nodes, an
/// ldirectord resource, a filesystem and services.
const HA_CF_PAIR: &str = "logfacility local0\nkeepalive 2\ndeadtime 30\nwarntime 10\ninitdead 120\nudpport 694\nbcast eth0\nucast eth1 10.0.0.2\nauto_failback on\nnode ken3\nnode kathy\nping 10.10.10.254\nrespawn hacluster /usr/lib/heartbeat/ipfail\nbaud 19200\nserial /dev/ttyS0\ncrm off\n";
const HARESOURCES_PAIR: &str = "ken3 135.9.216.110 IPaddr2::135.9.216.111/24/eth0 httpd \\\n   ldirectord::ldirectord.cf\nkathy IPaddr::135.9.216.3/28/eth1/135.9.216.12 drbddisk::r0 Filesystem::/dev/drbd0::/data1::ext3 MailTo::root@example.com\n";
const AUTHKEYS_PAIR: &str =
    "auth 2\n1 crc\n2 sha1 a-heartbeat-secret-of-some-length\n3 md5 Hello!\n";

#[test]
fn heartbeat_pair_with_ldirectord_and_resources() {
    let ld = "checktimeout=3\nvirtual=135.9.216.110:80\n\treal=10.0.0.11:80 gate\n\treal=10.0.0.12:80 gate\n\tservice=http\n\trequest=\"index.html\"\n\treceive=\"Test Page\"\n";
    let src = MemorySource::default().with("/etc/ha.d/ldirectord.cf", ld);
    for node in ["ken3", "kathy"] {
        let opts = Options {
            node: Some(node.into()),
            ..Options::default()
        };
        let out = run(
            Format::Heartbeat,
            &[
                ("/etc/ha.d/ha.cf", HA_CF_PAIR),
                ("/etc/ha.d/haresources", HARESOURCES_PAIR),
                ("/etc/ha.d/authkeys", AUTHKEYS_PAIR),
            ],
            &src,
            &opts,
        )
        .unwrap();
        checked(&out);
        let cfg = halb_import::check(&out.toml, "x.toml").unwrap();
        assert_eq!(cfg.vrrp_instances.len(), 2);
        assert_eq!(cfg.resource_groups.len(), 2);
        assert_eq!(cfg.services.len(), 1);
        insta::assert_snapshot!(format!("heartbeat.pair.{node}.report"), out.report.render());
        insta::assert_snapshot!(format!("heartbeat.pair.{node}.toml"), out.toml);
    }
}

#[test]
fn heartbeat_files_are_told_apart_by_content() {
    // Named otherwise, given in another order.
    let out = run(
        Format::Heartbeat,
        &[
            ("keys", AUTHKEYS_PAIR),
            ("res", HARESOURCES_PAIR),
            ("cf", HA_CF_PAIR),
        ],
        &MemorySource::default().with(
            "/etc/ha.d/ldirectord.cf",
            "virtual=135.9.216.110:80\n\treal=10.0.0.11:80 gate\n",
        ),
        &Options::default(),
    )
    .unwrap();
    checked(&out);
    assert!(out.toml.contains("virtual_ipaddress"));
}

#[test]
fn heartbeat_bad_input_is_positioned() {
    let e = run(
        Format::Heartbeat,
        &[
            (
                "ha.cf",
                "node a b\nkeepalive soon\ndeadtime 10\nauto_failback maybe\n",
            ),
            ("haresources", "c 10.0.0.300\na IPaddr::\n"),
            ("authkeys", "auth 4\n1 rot13 x\n"),
        ],
        &MemorySource::default(),
        &Options::default(),
    )
    .unwrap_err();
    insta::assert_snapshot!("heartbeat.bad.report", e.render());
    for f in &e.findings {
        assert!(f.line > 0 && f.col > 0, "{f}");
    }
}

fn never_panics(
    format: Format,
    inputs: &[(&str, String)],
    src: &MemorySource,
) -> Result<(), TestCaseError> {
    let refs: Vec<(&str, &str)> = inputs.iter().map(|(n, t)| (*n, t.as_str())).collect();
    for fold in [false, true] {
        let opts = Options {
            fold_unindented: fold,
            hosts_file: Some("/test/hosts".into()),
            ..Options::default()
        };
        match run(format, &refs, src, &opts) {
            Ok(out) => {
                if let Err(e) = halb_import::check(&out.toml, "imported.toml") {
                    prop_assert!(false, "{}\n{:?}", e.render(), inputs);
                }
            }
            Err(e) => {
                prop_assert!(!e.findings.is_empty());
                for f in &e.findings {
                    prop_assert!(f.severity == Severity::Error);
                    prop_assert!(!f.file.is_empty());
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn mutated_ldirectord_samples_never_panic(
        pick in 0usize..3,
        ops in proptest::collection::vec((0usize..100_000, any::<u8>()), 1..8),
    ) {
        let text = [LD_SAMPLE, LD_ALL, "virtual=192.0.2.1:80\n\treal=198.51.100.1->198.51.100.3:80 masq 2 \"/x\", \"y\" l:1 u:5\n\tchecktype=negotiate\n"][pick];
        let src = MemorySource::default().with("/test/hosts", HOSTS);
        never_panics(Format::Ldirectord, &[("ldirectord.cf", halb_import::mutate(text, &ops, b"#=\t\"#:> \n9-"))], &src)?;
    }

    #[test]
    fn mutated_heartbeat_files_never_panic(
        pick in 0usize..3,
        ops in proptest::collection::vec((0usize..100_000, any::<u8>()), 1..8),
    ) {
        let mut files = vec![
            ("/etc/ha.d/ha.cf", HA_CF_PAIR.to_owned()),
            ("/etc/ha.d/haresources", HARESOURCES_PAIR.to_owned()),
            ("/etc/ha.d/authkeys", AUTHKEYS_PAIR.to_owned()),
        ];
        files[pick].1 = halb_import::mutate(&files[pick].1, &ops, b"#=\t\"#:> \n9-");
        let src = MemorySource::default().with("/etc/ha.d/ldirectord.cf", LD_SAMPLE);
        never_panics(Format::Heartbeat, &files, &src)?;
    }
}

#[test]
fn heartbeat_ucast_only_becomes_unicast_peers_and_short_keys_are_reported() {
    let out = run(
        Format::Heartbeat,
        &[
            (
                "ha.cf",
                "keepalive 500ms\nucast eth1 192.0.2.2\nnode a\nnode b\nauto_failback off\n",
            ),
            (
                "haresources",
                "b IPaddr2::192.0.2.100/24 apache::/etc/apache2/apache2.conf\n",
            ),
            ("authkeys", "auth 3\n3 md5 Hello!\n"),
        ],
        &MemorySource::default(),
        &Options::default(),
    )
    .unwrap();
    checked(&out);
    assert!(out.toml.contains("interface = \"eth1\""), "{}", out.toml);
    assert!(
        out.toml.contains("unicast_peers = [\"192.0.2.2\"]"),
        "{}",
        out.toml
    );
    assert!(
        out.toml.contains("priority = 100"),
        "node a is this one, b preferred"
    );
    assert!(out.toml.contains("preempt = false"));
    assert!(out.toml.contains("advert_interval = \"500ms\""));
    assert!(out
        .toml
        .contains("agent = \"heartbeat:apache::/etc/apache2/apache2.conf\""));
    let r = out.report.render();
    assert!(r.contains("authkeys:2:3: unmapped: md5: heartbeat signs its packets with HMAC-MD5 and a key of 6 bytes"), "{r}");
    assert!(!out.toml.contains("auth ="));
}

#[test]
fn a_blocks_own_quiescent_is_read_not_reported_unused() {
    // As real ldirectord does in the IPVS VM (scripts/ipvs-vm/cases/
    // import-ldirectord-masq.sh): the block's quiescent overrides the global.
    let out = ld("quiescent=no\nvirtual=192.0.2.1:80\n\treal=198.51.100.1:80 masq\n\tchecktype=connect\n\tquiescent=yes\nvirtual=192.0.2.1:81\n\treal=198.51.100.1:81 masq\n\tchecktype=connect\n").unwrap();
    checked(&out);
    let r = out.report.render();
    assert!(!r.contains("quiescent"), "{r}");
    let first = out
        .toml
        .find("on_down = \"quiescent\"")
        .expect("the block's quiescent=yes");
    let second = out
        .toml
        .find("on_down = \"remove\"")
        .expect("the global quiescent=no");
    assert!(first < second, "{}", out.toml);
}
