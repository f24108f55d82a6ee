//! The VRRP advertisement on the wire.
//!
//! VRRPv3 (RFC 5798 §5.2), for IPv4 and IPv6:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! |                       IPvX Address(es)                        |
//! ```
//!
//! VRRPv2 (RFC 3768 §5.1), IPv4 only:
//!
//! ```text
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! |   Auth Type   |   Adver Int   |          Checksum             |
//! |                         IP Address(es)                        |
//! |                     Authentication Data (1)                   |
//! |                     Authentication Data (2)                   |
//! ```
//!
//! The codec works on the IP payload; the IP header facts it needs (source,
//! destination, TTL / hop limit) come in an [`IpHeader`]. [`parse`] checks
//! what the packet says about itself (TTL, version, type, length, checksum);
//! [`Expected::check`] checks it against the local virtual router (VRID,
//! version, owner, authentication, the smallest interval halb accepts, v2
//! interval); [`decode`] does both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// IP protocol number of VRRP (RFC 5798 §5.1.1.3, §5.1.2.3).
pub const IP_PROTOCOL: u8 = 112;
/// The only TTL / hop limit VRRP sends and accepts (RFC 5798 §5.1.1.3, §7.1).
pub const TTL: u8 = 255;
/// The IPv4 multicast group of VRRP (RFC 5798 §5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group of VRRP (RFC 5798 §5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The only VRRP message type (RFC 5798 §5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Largest v3 Max Adver Int: 12 bits of centiseconds (RFC 5798 §5.2.7).
pub const MAX_V3_INTERVAL_CS: u16 = 0x0fff;
/// Smallest v3 Max Adver Int accepted, sent or received: 1 cs (10 ms), the
/// smallest `advert_interval` halb's config takes. An advertised 0 would
/// make a backup's Master_Down_Interval about zero (RFC 5798 §6.1).
pub const MIN_V3_INTERVAL_CS: u16 = 1;
/// Smallest v2 Adver Int accepted: 1 s (RFC 3768 §5.3.7), in centiseconds.
pub const MIN_V2_INTERVAL_CS: u16 = 100;
/// Priority of an address owner (RFC 5798 §5.2.4).
pub const PRIORITY_OWNER: u8 = 255;
/// Priority a master sends when it stops (RFC 5798 §5.2.4).
pub const PRIORITY_RELEASE: u8 = 0;
/// The priority of a router under `halb takeover`: the highest a router
/// that does not own the addresses may have.
pub const PRIORITY_TAKEOVER: u8 = 254;

const HEADER_LEN: usize = 8;
const V2_AUTH_LEN: usize = 8;

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in whole seconds, optional PASS auth.
    V2,
    /// RFC 5798: IPv4 and IPv6, interval in centiseconds, no auth.
    V3,
}

impl Version {
    /// The value of the version field.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// The smallest advertisement interval of this version that halb
    /// accepts, in centiseconds: what its config accepts ([`MIN_V3_INTERVAL_CS`],
    /// [`MIN_V2_INTERVAL_CS`]).
    pub fn min_interval_cs(self) -> u16 {
        match self {
            Version::V2 => MIN_V2_INTERVAL_CS,
            Version::V3 => MIN_V3_INTERVAL_CS,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 §5.3.6, RFC 2338 §5.3.6.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Auth Type 0; also the only value for v3.
    None,
    /// Auth Type 1, simple text password: 8 bytes, zero padded.
    Password([u8; 8]),
}

impl Auth {
    /// A PASS password as keepalived builds it: the first 8 bytes, zero
    /// padded.
    pub fn password(text: &str) -> Auth {
        let mut key = [0u8; 8];
        for (k, b) in key.iter_mut().zip(text.as_bytes()) {
            *k = *b;
        }
        Auth::Password(key)
    }

    /// The Auth Type field.
    pub fn type_code(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Password(_) => 1,
        }
    }
}

/// The virtual addresses of an advert: one family per packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// IPv4 addresses.
    V4(Vec<Ipv4Addr>),
    /// IPv6 addresses (v3 only).
    V6(Vec<Ipv6Addr>),
}

impl Addresses {
    /// Splits `addrs` by family; `None` when they mix families.
    pub fn from_ip_addrs(addrs: &[IpAddr]) -> Option<Addresses> {
        if addrs.iter().all(IpAddr::is_ipv4) {
            Some(Addresses::V4(
                addrs
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(*a),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
            ))
        } else if addrs.iter().all(IpAddr::is_ipv6) {
            Some(Addresses::V6(
                addrs
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(*a),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
            ))
        } else {
            None
        }
    }

    /// The addresses as [`IpAddr`]s.
    pub fn to_ip_addrs(&self) -> Vec<IpAddr> {
        match self {
            Addresses::V4(v) => v.iter().copied().map(IpAddr::V4).collect(),
            Addresses::V6(v) => v.iter().copied().map(IpAddr::V6).collect(),
        }
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        match self {
            Addresses::V4(v) => v.len(),
            Addresses::V6(v) => v.len(),
        }
    }

    /// No addresses.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// IPv6 addresses.
    pub fn is_ipv6(&self) -> bool {
        matches!(self, Addresses::V6(_))
    }
}

/// A decoded (or to be encoded) ADVERTISEMENT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual Rtr ID (RFC 5798 §5.2.3).
    pub vrid: u8,
    /// Priority (RFC 5798 §5.2.4): 255 owner, 0 master releasing.
    pub priority: u8,
    /// The advertisement interval in centiseconds. v3: Max Adver Int
    /// (12 bits, RFC 5798 §5.2.7). v2: Adver Int is whole seconds
    /// (RFC 3768 §5.3.7), so this is a multiple of 100 up to 25 500.
    pub interval_cs: u16,
    /// v2 authentication; always [`Auth::None`] for v3.
    pub auth: Auth,
    /// The virtual addresses (RFC 5798 §5.2.9).
    pub addresses: Addresses,
}

/// The facts of the IP header the codec needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHeader {
    /// Source address: the sender's primary address.
    pub src: IpAddr,
    /// Destination: the VRRP group or a unicast peer.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// Why [`Advert::encode`] refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// Count IPvX Addr is one byte.
    #[error("{0} addresses: an advert carries at most 255")]
    TooManyAddresses(usize),
    /// VRRPv2 is IPv4 only (RFC 3768 §1).
    #[error("VRRPv2 carries IPv4 addresses only")]
    V2Ipv6,
    /// VRRPv3 has no authentication (RFC 5798 §9).
    #[error("VRRPv3 has no authentication")]
    V3Auth,
    /// The interval does not fit the version's field.
    #[error("interval of {interval_cs} cs cannot be sent in VRRP{version:?}")]
    Interval {
        /// Protocol version.
        version: Version,
        /// The interval.
        interval_cs: u16,
    },
    /// IP header and addresses are of different families.
    #[error("IP header and advertised addresses are of different families")]
    FamilyMismatch,
}

/// Why a received packet is dropped: one variant per counter
/// (RFC 5798 §7.1, RFC 3768 §7.1). [`DecodeError::reason`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// TTL / hop limit is not 255: the packet was routed.
    #[error("TTL/hop limit {0}, must be 255")]
    Ttl(u8),
    /// Shorter than the fixed header.
    #[error("{0} bytes: shorter than the VRRP header")]
    Truncated(usize),
    /// Version field is neither 2 nor 3.
    #[error("unknown VRRP version {0}")]
    UnknownVersion(u8),
    /// Type is not ADVERTISEMENT.
    #[error("unknown VRRP type {0}")]
    UnknownType(u8),
    /// The packet's version is not the one configured.
    #[error("VRRP{got:?} packet, VRRP{expected:?} configured")]
    WrongVersion {
        /// Configured.
        expected: Version,
        /// Received.
        got: Version,
    },
    /// VRRPv2 over IPv6, or an IP header mixing families.
    #[error("address family not allowed for this VRRP version")]
    Family,
    /// Length does not match Count IPvX Addr.
    #[error("{len} bytes, {count} addresses need {expected}")]
    Length {
        /// Count IPvX Addr.
        count: u8,
        /// Received length.
        len: usize,
        /// Length the count implies.
        expected: usize,
    },
    /// Checksum mismatch.
    #[error("checksum {got:#06x}, computed {computed:#06x}")]
    Checksum {
        /// In the packet.
        got: u16,
        /// Computed here.
        computed: u16,
    },
    /// Auth Type other than 0 and 1 (2 = IP AH is not supported).
    #[error("unsupported auth type {0}")]
    UnknownAuthType(u8),
    /// Virtual Rtr ID not configured here.
    #[error("VRID {got}, expected {expected}")]
    Vrid {
        /// Configured.
        expected: u8,
        /// Received.
        got: u8,
    },
    /// The local router is the address owner: it discards all adverts
    /// (RFC 5798 §7.1).
    #[error("local router is the address owner")]
    LocalIsOwner,
    /// v2 Auth Type differs from the configured one (RFC 3768 §7.1).
    #[error("auth type {got}, expected {expected}")]
    AuthType {
        /// Configured.
        expected: u8,
        /// Received.
        got: u8,
    },
    /// v2 password differs.
    #[error("authentication failed")]
    AuthFailed,
    /// v2 Adver Interval differs from the configured one (RFC 3768 §7.1).
    #[error("advert interval {got_cs} cs, configured {expected_cs} cs")]
    Interval {
        /// Configured.
        expected_cs: u16,
        /// Received.
        got_cs: u16,
    },
    /// v2: the advert's address list differs from the configured one and
    /// it is not from the address owner (RFC 3768 §7.1: drop).
    #[error("the advert's addresses differ from the configured virtual addresses")]
    AddressList,
    /// The advertisement interval is below what halb accepts in its own
    /// config (v3: Max Adver Int 0; v2: Adver Int 0). Accepted, it would
    /// make the backup's Master_Down_Interval about zero, so that one
    /// hostile advert makes it take over at once and flap the VIP. Dropped,
    /// in the spirit of the receive checks of RFC 5798 §7.1.
    #[error("advert interval {got_cs} cs, below the smallest accepted ({min_cs} cs)")]
    IntervalTooShort {
        /// The smallest accepted.
        min_cs: u16,
        /// Received.
        got_cs: u16,
    },
}

impl DecodeError {
    /// A stable name for a drop counter.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Ttl(_) => "ttl",
            DecodeError::Truncated(_) => "truncated",
            DecodeError::UnknownVersion(_) => "unknown_version",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::WrongVersion { .. } => "wrong_version",
            DecodeError::Family => "address_family",
            DecodeError::Length { .. } => "length",
            DecodeError::Checksum { .. } => "checksum",
            DecodeError::UnknownAuthType(_) => "unknown_auth_type",
            DecodeError::Vrid { .. } => "vrid",
            DecodeError::LocalIsOwner => "local_is_owner",
            DecodeError::AuthType { .. } => "auth_type",
            DecodeError::AuthFailed => "auth_failed",
            DecodeError::Interval { .. } => "interval",
            DecodeError::AddressList => "address_list",
            DecodeError::IntervalTooShort { .. } => "interval_too_short",
        }
    }
}

/// What the local virtual router accepts (RFC 5798 §7.1, RFC 3768 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Configured version.
    pub version: Version,
    /// Configured VRID.
    pub vrid: u8,
    /// The local router is the address owner (priority 255).
    pub local_is_owner: bool,
    /// v2: configured authentication.
    pub auth: Auth,
    /// v2: configured Adver Int, in centiseconds.
    pub interval_cs: u16,
    /// The configured virtual addresses (empty: not checked).
    pub addresses: Vec<IpAddr>,
}

impl Expected {
    /// The checks against local configuration, in the RFC's order, plus
    /// one of halb's own: an interval below [`Version::min_interval_cs`]
    /// (Max Adver Int 0, Adver Int 0) is dropped as
    /// [`DecodeError::IntervalTooShort`] (after the owner check in v3,
    /// before the interval comparison in v2).
    pub fn check(&self, advert: &Advert) -> Result<(), DecodeError> {
        if advert.version != self.version {
            return Err(DecodeError::WrongVersion {
                expected: self.version,
                got: advert.version,
            });
        }
        if advert.vrid != self.vrid {
            return Err(DecodeError::Vrid {
                expected: self.vrid,
                got: advert.vrid,
            });
        }
        if self.local_is_owner {
            return Err(DecodeError::LocalIsOwner);
        }
        if self.version == Version::V3 {
            // Not an RFC 5798 §7.1 check, but in its spirit: an interval
            // halb would refuse in its own config is not believed.
            Self::check_min_interval(advert)?;
        }
        if self.version == Version::V2 {
            // RFC 3768 §7.1: auth type must match; for type 1 the
            // password too. RFC 2338 §5.3.6.1 (simple text password).
            if advert.auth.type_code() != self.auth.type_code() {
                return Err(DecodeError::AuthType {
                    expected: self.auth.type_code(),
                    got: advert.auth.type_code(),
                });
            }
            if advert.auth != self.auth {
                return Err(DecodeError::AuthFailed);
            }
            if advert.priority != PRIORITY_OWNER && !self.addresses_match(advert) {
                return Err(DecodeError::AddressList);
            }
            Self::check_min_interval(advert)?;
            if advert.interval_cs != self.interval_cs {
                return Err(DecodeError::Interval {
                    expected_cs: self.interval_cs,
                    got_cs: advert.interval_cs,
                });
            }
        }
        Ok(())
    }
}

impl Expected {
    fn check_min_interval(advert: &Advert) -> Result<(), DecodeError> {
        let min_cs = advert.version.min_interval_cs();
        if advert.interval_cs < min_cs {
            return Err(DecodeError::IntervalTooShort {
                min_cs,
                got_cs: advert.interval_cs,
            });
        }
        Ok(())
    }

    /// The advert lists the configured addresses (in any order; true when
    /// none are configured). v3 only logs and counts a mismatch (RFC 5798
    /// §7.1: SHOULD log, MAY indicate); v2 drops it ([`Expected::check`]).
    pub fn addresses_match(&self, advert: &Advert) -> bool {
        if self.addresses.is_empty() {
            return true;
        }
        let mut a = advert.addresses.to_ip_addrs();
        let mut b = self.addresses.clone();
        a.sort_unstable();
        a.dedup();
        b.sort_unstable();
        b.dedup();
        a == b
    }
}

/// One's complement sum of `data` as big-endian 16-bit words (RFC 1071),
/// an odd last byte padded with zero.
fn sum_words(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The checksum of `msg` (its checksum field read as zero).
///
/// v2 (RFC 3768 §5.3.8): over the VRRP message only. v3 (RFC 5798 §5.2.8):
/// over the message and a pseudo-header, the IPv6 one of RFC 2460 §8.1
/// (`src`, `dst`, 32-bit length, next header 112), for IPv4 the RFC 768
/// one (`src`, `dst`, zero, protocol 112, 16-bit length), as keepalived
/// sends it and tcpdump verifies it. Both add up to the same sum.
pub fn checksum(version: Version, src: IpAddr, dst: IpAddr, msg: &[u8]) -> u16 {
    let mut acc = 0u32;
    if version == Version::V3 {
        acc = sum_words(&addr_bytes(src), acc);
        acc = sum_words(&addr_bytes(dst), acc);
        acc += u32::from(IP_PROTOCOL);
        // A VRRP message is at most 8 + 255 * 16 bytes: one word.
        acc += (msg.len() as u32) & 0xffff;
        acc += (msg.len() as u32) >> 16;
    }
    let (head, rest) = msg.split_at(msg.len().min(6));
    acc = sum_words(head, acc);
    if rest.len() >= 2 {
        acc = sum_words(&rest[2..], acc);
    }
    fold(acc)
}

impl Advert {
    /// Length on the wire.
    pub fn encoded_len(&self) -> usize {
        let per = if self.addresses.is_ipv6() { 16 } else { 4 };
        let auth = if self.version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        HEADER_LEN + per * self.addresses.len() + auth
    }

    /// Encodes the advert for an IP packet from `src` to `dst` (the
    /// pseudo-header of the v3 checksum, RFC 5798 §5.2.8).
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EncodeError> {
        let count = self.addresses.len();
        if count > 255 {
            return Err(EncodeError::TooManyAddresses(count));
        }
        if src.is_ipv6() != dst.is_ipv6() || src.is_ipv6() != self.addresses.is_ipv6() {
            return Err(EncodeError::FamilyMismatch);
        }
        let interval_field = match self.version {
            Version::V2 => {
                if self.addresses.is_ipv6() {
                    return Err(EncodeError::V2Ipv6);
                }
                if self.interval_cs % 100 != 0 || self.interval_cs > 25_500 {
                    return Err(EncodeError::Interval {
                        version: self.version,
                        interval_cs: self.interval_cs,
                    });
                }
                [self.auth.type_code(), (self.interval_cs / 100) as u8]
            }
            Version::V3 => {
                if self.auth != Auth::None {
                    return Err(EncodeError::V3Auth);
                }
                if self.interval_cs > MAX_V3_INTERVAL_CS {
                    return Err(EncodeError::Interval {
                        version: self.version,
                        interval_cs: self.interval_cs,
                    });
                }
                self.interval_cs.to_be_bytes()
            }
        };
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(self.version.number() << 4 | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(count as u8);
        out.extend_from_slice(&interval_field);
        out.extend_from_slice(&[0, 0]);
        match &self.addresses {
            Addresses::V4(v) => v.iter().for_each(|a| out.extend_from_slice(&a.octets())),
            Addresses::V6(v) => v.iter().for_each(|a| out.extend_from_slice(&a.octets())),
        }
        if self.version == Version::V2 {
            match &self.auth {
                Auth::None => out.extend_from_slice(&[0; V2_AUTH_LEN]),
                Auth::Password(p) => out.extend_from_slice(p),
            }
        }
        let sum = checksum(self.version, src, dst, &out);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(out)
    }
}

/// Decodes an IP payload and checks what the packet says about itself:
/// TTL / hop limit 255, version, type, length against Count IPvX Addr, the
/// checksum, the auth type (RFC 5798 §7.1, RFC 3768 §7.1). The length must
/// be exact: the checksum covers the whole payload.
pub fn parse(bytes: &[u8], ip: &IpHeader) -> Result<Advert, DecodeError> {
    if ip.ttl != TTL {
        return Err(DecodeError::Ttl(ip.ttl));
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let version = match bytes[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        v => return Err(DecodeError::UnknownVersion(v)),
    };
    let ty = bytes[0] & 0x0f;
    if ty != TYPE_ADVERTISEMENT {
        return Err(DecodeError::UnknownType(ty));
    }
    let v6 = ip.src.is_ipv6();
    if v6 != ip.dst.is_ipv6() || (v6 && version == Version::V2) {
        return Err(DecodeError::Family);
    }
    let count = bytes[3];
    let per = if v6 { 16 } else { 4 };
    let auth_len = if version == Version::V2 {
        V2_AUTH_LEN
    } else {
        0
    };
    let expected = HEADER_LEN + per * usize::from(count) + auth_len;
    if bytes.len() != expected {
        return Err(DecodeError::Length {
            count,
            len: bytes.len(),
            expected,
        });
    }
    let got = u16::from_be_bytes([bytes[6], bytes[7]]);
    let computed = checksum(version, ip.src, ip.dst, bytes);
    if got != computed {
        return Err(DecodeError::Checksum { got, computed });
    }
    let body = &bytes[HEADER_LEN..expected - auth_len];
    let (interval_cs, auth) = match version {
        Version::V2 => {
            let auth = match bytes[4] {
                0 => Auth::None,
                1 => {
                    let mut key = [0u8; 8];
                    key.copy_from_slice(&bytes[expected - V2_AUTH_LEN..]);
                    Auth::Password(key)
                }
                t => return Err(DecodeError::UnknownAuthType(t)),
            };
            (u16::from(bytes[5]) * 100, auth)
        }
        // The 4 reserved bits are ignored on receipt (RFC 5798 §5.2.6).
        Version::V3 => (
            u16::from_be_bytes([bytes[4], bytes[5]]) & MAX_V3_INTERVAL_CS,
            Auth::None,
        ),
    };
    let addresses = if v6 {
        Addresses::V6(
            body.chunks_exact(16)
                .map(|c| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(c);
                    Ipv6Addr::from(o)
                })
                .collect(),
        )
    } else {
        Addresses::V4(
            body.chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .collect(),
        )
    };
    Ok(Advert {
        version,
        vrid: bytes[1],
        priority: bytes[2],
        interval_cs,
        auth,
        addresses,
    })
}

/// [`parse`], then [`Expected::check`]: every receive check of
/// RFC 5798 §7.1 / RFC 3768 §7.1.
pub fn decode(bytes: &[u8], ip: &IpHeader, expected: &Expected) -> Result<Advert, DecodeError> {
    let advert = parse(bytes, ip)?;
    expected.check(&advert)?;
    Ok(advert)
}

#[cfg(test)]
mod tests;
