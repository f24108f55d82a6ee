//! Byte-exact vectors (checksums computed independently with a Python
//! RFC 1071 sum) and property tests.

use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn hdr(src: &str, dst: &str) -> IpHeader {
    IpHeader {
        src: ip(src),
        dst: ip(dst),
        ttl: 255,
    }
}

/// keepalived's `vrrp_instance` of classic-setup.md in VRRPv2: VRID 51,
/// priority 150, advert_int 1, auth PASS "secret", VIP 192.0.2.100.
fn keepalived_v2() -> (Advert, Vec<u8>) {
    let a = Advert {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        auth: Auth::password("secret"),
        addresses: Addresses::V4(vec![Ipv4Addr::new(192, 0, 2, 100)]),
    };
    (a, hex("2133960101014919c00002647365637265740000"))
}

fn v3_v4() -> (Advert, Vec<u8>) {
    let a = Advert {
        version: Version::V3,
        vrid: 51,
        priority: 150,
        interval_cs: 10,
        auth: Auth::None,
        addresses: Addresses::V4(vec![Ipv4Addr::new(192, 0, 2, 100)]),
    };
    (a, hex("31339601000ad3cbc0000264"))
}

fn v3_v6() -> (Advert, Vec<u8>) {
    let a = Advert {
        version: Version::V3,
        vrid: 51,
        priority: 100,
        interval_cs: 100,
        auth: Auth::None,
        addresses: Addresses::V6(vec!["2001:db8::100".parse().unwrap()]),
    };
    (a, hex("3133640100643d8f20010db8000000000000000000000100"))
}

#[test]
fn v2_keepalived_vector() {
    let (a, bytes) = keepalived_v2();
    let h = hdr("192.0.2.1", "224.0.0.18");
    assert_eq!(a.encode(h.src, h.dst).unwrap(), bytes);
    assert_eq!(parse(&bytes, &h).unwrap(), a);
    // v2's checksum does not cover the IP header: any src/dst.
    assert_eq!(parse(&bytes, &hdr("198.51.100.7", "192.0.2.2")).unwrap(), a);
}

/// A VRRPv2 advert captured off a real LAN (tcpdump: "IP 192.168.0.30 >
/// 224.0.0.18: VRRPv2, Advertisement, vrid 1, prio 100, authtype none,
/// intvl 1s, length 20"; the capture gopacket's VRRP test uses): the IP
/// payload, checksum 0xba52 as the router computed it.
#[test]
fn v2_captured_vector() {
    let bytes = hex("210164010001ba52c0a800010000000000000000");
    let h = hdr("192.168.0.30", "224.0.0.18");
    let a = parse(&bytes, &h).unwrap();
    assert_eq!(
        a,
        Advert {
            version: Version::V2,
            vrid: 1,
            priority: 100,
            interval_cs: 100,
            auth: Auth::None,
            addresses: Addresses::V4(vec![Ipv4Addr::new(192, 168, 0, 1)]),
        }
    );
    assert_eq!(a.encode(h.src, h.dst).unwrap(), bytes);
}

#[test]
fn v3_ipv4_vector() {
    let (a, bytes) = v3_v4();
    let h = hdr("192.0.2.1", "224.0.0.18");
    assert_eq!(a.encode(h.src, h.dst).unwrap(), bytes);
    assert_eq!(parse(&bytes, &h).unwrap(), a);
    // The pseudo-header is covered: another source fails.
    assert!(matches!(
        parse(&bytes, &hdr("192.0.2.2", "224.0.0.18")),
        Err(DecodeError::Checksum { .. })
    ));
}

#[test]
fn v3_ipv6_vector() {
    let (a, bytes) = v3_v6();
    let h = hdr("fe80::1", "ff02::12");
    assert_eq!(a.encode(h.src, h.dst).unwrap(), bytes);
    assert_eq!(parse(&bytes, &h).unwrap(), a);
}

#[test]
fn v3_reserved_bits_ignored() {
    let (a, mut bytes) = v3_v4();
    // Set the reserved nibble and fix the checksum.
    bytes[4] |= 0xf0;
    let h = hdr("192.0.2.1", "224.0.0.18");
    let c = checksum(Version::V3, h.src, h.dst, &bytes);
    bytes[6..8].copy_from_slice(&c.to_be_bytes());
    assert_eq!(parse(&bytes, &h).unwrap(), a);
}

#[test]
fn receive_checks() {
    let (_, bytes) = keepalived_v2();
    let h = hdr("192.0.2.1", "224.0.0.18");
    let mut bad_ttl = h;
    bad_ttl.ttl = 254;
    assert_eq!(parse(&bytes, &bad_ttl), Err(DecodeError::Ttl(254)));
    assert_eq!(parse(&bytes[..7], &h), Err(DecodeError::Truncated(7)));
    assert!(matches!(
        parse(&bytes[..19], &h),
        Err(DecodeError::Length {
            count: 1,
            len: 19,
            expected: 20
        })
    ));
    let mut b = bytes.clone();
    b[0] = 0x41;
    assert_eq!(parse(&b, &h), Err(DecodeError::UnknownVersion(4)));
    b[0] = 0x22;
    assert_eq!(parse(&b, &h), Err(DecodeError::UnknownType(2)));
    let mut b = bytes.clone();
    b[12] ^= 1;
    assert!(matches!(parse(&b, &h), Err(DecodeError::Checksum { .. })));
    assert_eq!(
        parse(&bytes, &hdr("fe80::1", "ff02::12")),
        Err(DecodeError::Family)
    );

    let good = Expected {
        version: Version::V2,
        vrid: 51,
        local_is_owner: false,
        auth: Auth::password("secret"),
        interval_cs: 100,
        addresses: Vec::new(),
    };
    assert!(decode(&bytes, &h, &good).is_ok());
    // v2: the configured address list must match (RFC 3768 §7.1).
    let sent = parse(&bytes, &h).unwrap().addresses;
    let mut listed = good.clone();
    listed.addresses = sent.to_ip_addrs().into_iter().rev().collect();
    assert!(decode(&bytes, &h, &listed).is_ok(), "same set, any order");
    listed.addresses.push("192.0.2.77".parse().unwrap());
    assert_eq!(
        decode(&bytes, &h, &listed).unwrap_err(),
        DecodeError::AddressList
    );
    // v3 does not drop: the engine counts it ([`Expected::addresses_match`]).
    assert!(!listed.addresses_match(&parse(&bytes, &h).unwrap()));
    let e = |f: fn(&mut Expected)| {
        let mut x = good.clone();
        f(&mut x);
        decode(&bytes, &h, &x).unwrap_err()
    };
    assert_eq!(
        e(|x| x.vrid = 52),
        DecodeError::Vrid {
            expected: 52,
            got: 51
        }
    );
    assert_eq!(
        e(|x| x.version = Version::V3),
        DecodeError::WrongVersion {
            expected: Version::V3,
            got: Version::V2
        }
    );
    assert_eq!(e(|x| x.local_is_owner = true), DecodeError::LocalIsOwner);
    assert_eq!(
        e(|x| x.auth = Auth::password("secreT")),
        DecodeError::AuthFailed
    );
    assert_eq!(
        e(|x| x.auth = Auth::None),
        DecodeError::AuthType {
            expected: 0,
            got: 1
        }
    );
    assert_eq!(
        e(|x| x.interval_cs = 200),
        DecodeError::Interval {
            expected_cs: 200,
            got_cs: 100
        }
    );
    assert_eq!(e(|x| x.vrid = 1).reason(), "vrid");
}

/// An interval halb would refuse in its own config (v3 Max Adver Int 0,
/// v2 Adver Int 0) is dropped with its own reason, whatever else the
/// advert says; the smallest accepted one passes.
#[test]
fn interval_below_the_smallest_is_dropped() {
    let h = hdr("192.0.2.1", "224.0.0.18");
    // v3: Max Adver Int 0 from a higher-priority "master".
    let (mut a, _) = v3_v4();
    a.priority = 254;
    a.interval_cs = 0;
    let bytes = a.encode(h.src, h.dst).unwrap();
    assert_eq!(
        parse(&bytes, &h).unwrap().interval_cs,
        0,
        "the codec reads it"
    );
    let v3 = Expected {
        version: Version::V3,
        vrid: 51,
        local_is_owner: false,
        auth: Auth::None,
        interval_cs: 100,
        addresses: Vec::new(),
    };
    let e = decode(&bytes, &h, &v3).unwrap_err();
    assert_eq!(
        e,
        DecodeError::IntervalTooShort {
            min_cs: MIN_V3_INTERVAL_CS,
            got_cs: 0
        }
    );
    assert_eq!(e.reason(), "interval_too_short");
    // Only the reserved nibble set: still 0.
    let mut b = bytes.clone();
    b[4] |= 0xf0;
    let c = checksum(Version::V3, h.src, h.dst, &b);
    b[6..8].copy_from_slice(&c.to_be_bytes());
    assert!(matches!(
        decode(&b, &h, &v3),
        Err(DecodeError::IntervalTooShort { got_cs: 0, .. })
    ));
    // 10 ms, the smallest halb's config takes, is accepted (v3 does not
    // compare the interval with its own).
    a.interval_cs = MIN_V3_INTERVAL_CS;
    let bytes = a.encode(h.src, h.dst).unwrap();
    assert_eq!(decode(&bytes, &h, &v3).unwrap().interval_cs, 1);
    // IPv6 likewise.
    let (mut a6, _) = v3_v6();
    a6.interval_cs = 0;
    let h6 = hdr("fe80::1", "ff02::12");
    let bytes = a6.encode(h6.src, h6.dst).unwrap();
    assert_eq!(
        decode(&bytes, &h6, &v3).unwrap_err().reason(),
        "interval_too_short"
    );

    // v2: Adver Int 0 gets the same reason, not the `interval` mismatch.
    let (mut a, _) = keepalived_v2();
    a.interval_cs = 0;
    let bytes = a.encode(h.src, h.dst).unwrap();
    let v2 = Expected {
        version: Version::V2,
        vrid: 51,
        local_is_owner: false,
        auth: Auth::password("secret"),
        interval_cs: 100,
        addresses: Vec::new(),
    };
    assert_eq!(
        decode(&bytes, &h, &v2).unwrap_err(),
        DecodeError::IntervalTooShort {
            min_cs: MIN_V2_INTERVAL_CS,
            got_cs: 0
        }
    );
    // The RFC's checks before it still come first: VRID, owner.
    let mut other = v3.clone();
    other.vrid = 52;
    let (mut a, _) = v3_v4();
    a.interval_cs = 0;
    let bytes = a.encode(h.src, h.dst).unwrap();
    assert_eq!(decode(&bytes, &h, &other).unwrap_err().reason(), "vrid");
    other.vrid = 51;
    other.local_is_owner = true;
    assert_eq!(
        decode(&bytes, &h, &other).unwrap_err(),
        DecodeError::LocalIsOwner
    );
}

#[test]
fn v2_unknown_auth_type() {
    let (_, mut b) = keepalived_v2();
    b[4] = 2; // IP Authentication Header: not supported.
    let h = hdr("192.0.2.1", "224.0.0.18");
    let c = checksum(Version::V2, h.src, h.dst, &b);
    b[6..8].copy_from_slice(&c.to_be_bytes());
    assert_eq!(parse(&b, &h), Err(DecodeError::UnknownAuthType(2)));
}

#[test]
fn encode_refusals() {
    let (mut a, _) = keepalived_v2();
    let (s, d) = (ip("192.0.2.1"), ip("224.0.0.18"));
    a.interval_cs = 150;
    assert!(matches!(a.encode(s, d), Err(EncodeError::Interval { .. })));
    let (mut a, _) = v3_v4();
    a.auth = Auth::password("x");
    assert_eq!(a.encode(s, d), Err(EncodeError::V3Auth));
    a.auth = Auth::None;
    a.interval_cs = 4096;
    assert!(matches!(a.encode(s, d), Err(EncodeError::Interval { .. })));
    a.interval_cs = 100;
    assert_eq!(
        a.encode(ip("fe80::1"), ip("ff02::12")),
        Err(EncodeError::FamilyMismatch)
    );
    a.addresses = Addresses::V4(vec![Ipv4Addr::LOCALHOST; 256]);
    assert_eq!(a.encode(s, d), Err(EncodeError::TooManyAddresses(256)));
}

fn arb_advert() -> impl Strategy<Value = (Advert, IpHeader)> {
    let v4 = (
        any::<u8>(),
        any::<u8>(),
        0u16..=255,
        prop::option::of(any::<[u8; 8]>()),
        prop::collection::vec(any::<[u8; 4]>(), 0..20),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<bool>(),
        0u16..=MAX_V3_INTERVAL_CS,
    )
        .prop_map(|(vrid, priority, secs, pass, addrs, s, d, v2, cs)| {
            let addresses = Addresses::V4(addrs.into_iter().map(Ipv4Addr::from).collect());
            let a = if v2 {
                Advert {
                    version: Version::V2,
                    vrid,
                    priority,
                    interval_cs: secs * 100,
                    auth: pass.map_or(Auth::None, Auth::Password),
                    addresses,
                }
            } else {
                Advert {
                    version: Version::V3,
                    vrid,
                    priority,
                    interval_cs: cs,
                    auth: Auth::None,
                    addresses,
                }
            };
            let h = IpHeader {
                src: IpAddr::from(s),
                dst: IpAddr::from(d),
                ttl: 255,
            };
            (a, h)
        });
    let v6 = (
        any::<u8>(),
        any::<u8>(),
        0u16..=MAX_V3_INTERVAL_CS,
        prop::collection::vec(any::<[u8; 16]>(), 0..10),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
    )
        .prop_map(|(vrid, priority, cs, addrs, s, d)| {
            (
                Advert {
                    version: Version::V3,
                    vrid,
                    priority,
                    interval_cs: cs,
                    auth: Auth::None,
                    addresses: Addresses::V6(addrs.into_iter().map(Ipv6Addr::from).collect()),
                },
                IpHeader {
                    src: IpAddr::from(s),
                    dst: IpAddr::from(d),
                    ttl: 255,
                },
            )
        });
    prop_oneof![v4, v6]
}

proptest! {
    #[test]
    fn roundtrip((a, h) in arb_advert()) {
        let bytes = a.encode(h.src, h.dst).unwrap();
        prop_assert_eq!(bytes.len(), a.encoded_len());
        prop_assert_eq!(parse(&bytes, &h).unwrap(), a);
    }

    #[test]
    fn single_bit_flip_is_caught((a, h) in arb_advert(), bit in any::<usize>()) {
        let mut bytes = a.encode(h.src, h.dst).unwrap();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(parse(&bytes, &h).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        s in any::<[u8; 16]>(),
        d in any::<[u8; 16]>(),
        v6 in any::<bool>(),
        ttl in prop_oneof![Just(255u8), any::<u8>()],
    ) {
        let (src, dst) = if v6 {
            (IpAddr::from(s), IpAddr::from(d))
        } else {
            (IpAddr::from([s[0], s[1], s[2], s[3]]), IpAddr::from([d[0], d[1], d[2], d[3]]))
        };
        let h = IpHeader { src, dst, ttl };
        if let Ok(a) = parse(&bytes, &h) {
            // Whatever parses (a checksum matched by chance) re-encodes.
            prop_assert_eq!(a.encoded_len(), bytes.len());
            prop_assert!(a.encode(h.src, h.dst).is_ok());
        }
    }

    #[test]
    fn mutated_valid_packets_never_panic((a, h) in arb_advert(), pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let mut bytes = a.encode(h.src, h.dst).unwrap();
        let p = pos % bytes.len();
        bytes[p] = val;
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = parse(&bytes, &h);
    }
}
