//! Encoding and decoding of IPVS generic-netlink messages.
//!
//! The netlink and generic-netlink headers, attribute framing and alignment
//! come from `netlink-packet-core` / `netlink-packet-generic`; the IPVS
//! attributes themselves (there is no maintained crate for the IPVS
//! family) are laid out here from `ip_vs.h`.

use crate::consts::*;
use crate::model::*;
use netlink_packet_core::{
    DecodeError, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NlaBuffer,
    NlasIterator, ParseableParametrized, NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One attribute: kind and raw value (nested attributes are pre-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    kind: u16,
    value: Vec<u8>,
}

impl Attr {
    fn bytes(kind: u16, value: impl Into<Vec<u8>>) -> Attr {
        Attr {
            kind,
            value: value.into(),
        }
    }
    fn u16(kind: u16, v: u16) -> Attr {
        Attr::bytes(kind, v.to_ne_bytes())
    }
    fn be16(kind: u16, v: u16) -> Attr {
        Attr::bytes(kind, v.to_be_bytes())
    }
    fn u32(kind: u16, v: u32) -> Attr {
        Attr::bytes(kind, v.to_ne_bytes())
    }
    fn u8(kind: u16, v: u8) -> Attr {
        Attr::bytes(kind, [v])
    }
    fn string(kind: u16, s: &str) -> Attr {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        Attr::bytes(kind, v)
    }
    fn nested(kind: u16, children: &[Attr]) -> Attr {
        let mut v = vec![0u8; children.buffer_len()];
        children.emit(&mut v);
        Attr {
            kind: kind | NLA_F_NESTED,
            value: v,
        }
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        self.value.len()
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.value);
    }
}

/// The IPVS generic-netlink payload: a command and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: u8,
    pub attrs: Vec<Attr>,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = NlasIterator::new(buf)
            .map(|a| a.map(|a| Attr::bytes(a.kind(), a.value())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// What halb asks of the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    NewService(Service),
    SetService(Service),
    DelService(ServiceId),
    /// Dump every service.
    GetServices,
    NewDest(ServiceId, Dest),
    SetDest(ServiceId, Dest),
    DelDest(ServiceId, SocketAddr),
    /// Dump the destinations of one service.
    GetDests(ServiceId),
    SetConfig(Timeouts),
    GetConfig,
    NewDaemon(SyncDaemon),
    DelDaemon(SyncState),
    /// Dump the running sync daemons.
    GetDaemons,
    GetInfo,
}

impl Request {
    /// Whether the kernel answers with a multi-part dump.
    pub fn is_dump(&self) -> bool {
        matches!(
            self,
            Request::GetServices | Request::GetDests(_) | Request::GetDaemons
        )
    }

    fn message(&self) -> IpvsMessage {
        let (cmd, attrs) = match self {
            Request::NewService(s) => (CMD_NEW_SERVICE, vec![service_full(s)]),
            Request::SetService(s) => (CMD_SET_SERVICE, vec![service_full(s)]),
            Request::DelService(id) => (CMD_DEL_SERVICE, vec![service_id(id)]),
            Request::GetServices => (CMD_GET_SERVICE, vec![]),
            Request::NewDest(id, d) => (CMD_NEW_DEST, vec![service_id(id), dest_full(d)]),
            Request::SetDest(id, d) => (CMD_SET_DEST, vec![service_id(id), dest_full(d)]),
            Request::DelDest(id, a) => (CMD_DEL_DEST, vec![service_id(id), dest_id(*a)]),
            Request::GetDests(id) => (CMD_GET_DEST, vec![service_id(id)]),
            Request::SetConfig(t) => (
                CMD_SET_CONFIG,
                vec![
                    Attr::u32(CMD_ATTR_TIMEOUT_TCP, t.tcp),
                    Attr::u32(CMD_ATTR_TIMEOUT_TCP_FIN, t.tcp_fin),
                    Attr::u32(CMD_ATTR_TIMEOUT_UDP, t.udp),
                ],
            ),
            Request::GetConfig => (CMD_GET_CONFIG, vec![]),
            Request::NewDaemon(d) => (CMD_NEW_DAEMON, vec![daemon(d)]),
            Request::DelDaemon(s) => (
                CMD_DEL_DAEMON,
                vec![Attr::nested(
                    CMD_ATTR_DAEMON,
                    &[Attr::u32(DAEMON_ATTR_STATE, s.number())],
                )],
            ),
            Request::GetDaemons => (CMD_GET_DAEMON, vec![]),
            Request::GetInfo => (CMD_GET_INFO, vec![]),
        };
        IpvsMessage { cmd, attrs }
    }

    /// The whole netlink message, ready for `send`.
    pub fn encode(&self, family_id: u16, seq: u32) -> Vec<u8> {
        self.encode_acked(family_id, seq, true)
    }

    /// As [`Request::encode`]; `ack` false leaves `NLM_F_ACK` off a
    /// modifying request, so the kernel answers it only if it fails (how
    /// [`crate::IpvsSocket::execute`] pipelines a batch: the batch's last
    /// request alone asks for an ack).
    pub fn encode_acked(&self, family_id: u16, seq: u32, ack: bool) -> Vec<u8> {
        let mut genl = GenlMessage::from_payload(self.message());
        genl.set_resolved_family_id(family_id);
        let mut header = NetlinkHeader::default();
        header.flags = if self.is_dump() {
            NLM_F_REQUEST | NLM_F_DUMP
        } else if ack {
            NLM_F_REQUEST | NLM_F_ACK
        } else {
            NLM_F_REQUEST
        };
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }
}

/// Address as the kernel's `union nf_inet_addr` (16 bytes, IPv4 first).
fn inet_addr(ip: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b.copy_from_slice(&v6.octets()),
    }
    b
}

fn service_id_attrs(id: &ServiceId) -> Vec<Attr> {
    match id {
        ServiceId::Inet { protocol, addr } => vec![
            Attr::u16(SVC_ATTR_AF, Family::of(addr.ip()).af()),
            Attr::u16(SVC_ATTR_PROTOCOL, protocol.number()),
            Attr::bytes(SVC_ATTR_ADDR, inet_addr(addr.ip())),
            Attr::be16(SVC_ATTR_PORT, addr.port()),
        ],
        ServiceId::Fwmark { family, mark } => vec![
            Attr::u16(SVC_ATTR_AF, family.af()),
            Attr::u32(SVC_ATTR_FWMARK, *mark),
        ],
    }
}

fn service_id(id: &ServiceId) -> Attr {
    Attr::nested(CMD_ATTR_SERVICE, &service_id_attrs(id))
}

fn flags_bits(f: &ServiceFlags, persistent: bool) -> u32 {
    let mut b = 0;
    if persistent {
        b |= SVC_F_PERSISTENT;
    }
    if f.one_packet {
        b |= SVC_F_ONEPACKET;
    }
    if f.sched_fallback {
        b |= SVC_F_SCHED1;
    }
    if f.sched_port {
        b |= SVC_F_SCHED2;
    }
    if f.sched3 {
        b |= SVC_F_SCHED3;
    }
    b
}

/// Persistence netmask on the wire: an IPv4 mask in network order, an IPv6
/// prefix length as a plain number (what ipvsadm sends).
fn netmask_value(family: Family, prefix: u8) -> [u8; 4] {
    match family {
        Family::V4 => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            mask.to_be_bytes()
        }
        Family::V6 => u32::from(prefix.min(128)).to_ne_bytes(),
    }
}

fn service_full(s: &Service) -> Attr {
    let mut a = service_id_attrs(&s.id);
    a.push(Attr::string(SVC_ATTR_SCHED_NAME, &s.scheduler));
    let mut flags = flags_bits(&s.flags, s.persistence.is_some())
        .to_ne_bytes()
        .to_vec();
    flags.extend_from_slice(&u32::MAX.to_ne_bytes());
    a.push(Attr::bytes(SVC_ATTR_FLAGS, flags));
    a.push(Attr::u32(SVC_ATTR_TIMEOUT, s.persistence.unwrap_or(0)));
    a.push(Attr::bytes(
        SVC_ATTR_NETMASK,
        netmask_value(s.id.family(), s.netmask),
    ));
    Attr::nested(CMD_ATTR_SERVICE, &a)
}

fn dest_id_attrs(addr: SocketAddr) -> Vec<Attr> {
    vec![
        Attr::bytes(DEST_ATTR_ADDR, inet_addr(addr.ip())),
        Attr::be16(DEST_ATTR_PORT, addr.port()),
        Attr::u16(DEST_ATTR_ADDR_FAMILY, Family::of(addr.ip()).af()),
    ]
}

fn dest_id(addr: SocketAddr) -> Attr {
    Attr::nested(CMD_ATTR_DEST, &dest_id_attrs(addr))
}

fn dest_full(d: &Dest) -> Attr {
    let mut a = dest_id_attrs(d.addr);
    a.push(Attr::u32(DEST_ATTR_FWD_METHOD, d.fwd.number()));
    a.push(Attr::u32(DEST_ATTR_WEIGHT, d.weight));
    a.push(Attr::u32(DEST_ATTR_U_THRESH, d.upper_threshold));
    a.push(Attr::u32(DEST_ATTR_L_THRESH, d.lower_threshold));
    // Old kernels reject unknown attributes in strict mode only; send the
    // tunnel attributes only when they say something beyond plain IPIP.
    if d.fwd == FwdMethod::Tunnel && d.tunnel != TunnelType::Ipip {
        a.push(Attr::u8(DEST_ATTR_TUN_TYPE, d.tunnel.number()));
        a.push(Attr::be16(DEST_ATTR_TUN_PORT, d.tunnel_port));
        a.push(Attr::u16(DEST_ATTR_TUN_FLAGS, d.tunnel_flags));
    }
    Attr::nested(CMD_ATTR_DEST, &a)
}

fn daemon(d: &SyncDaemon) -> Attr {
    let mut a = vec![
        Attr::u32(DAEMON_ATTR_STATE, d.state.number()),
        Attr::string(DAEMON_ATTR_MCAST_IFN, &d.interface),
        Attr::u32(DAEMON_ATTR_SYNC_ID, d.sync_id),
    ];
    if let Some(l) = d.max_len {
        a.push(Attr::u16(DAEMON_ATTR_SYNC_MAXLEN, l));
    }
    match d.group {
        Some(IpAddr::V4(g)) => a.push(Attr::bytes(DAEMON_ATTR_MCAST_GROUP, g.octets())),
        Some(IpAddr::V6(g)) => a.push(Attr::bytes(DAEMON_ATTR_MCAST_GROUP6, g.octets())),
        None => {}
    }
    if let Some(p) = d.port {
        a.push(Attr::u16(DAEMON_ATTR_MCAST_PORT, p));
    }
    if let Some(t) = d.ttl {
        a.push(Attr::u8(DAEMON_ATTR_MCAST_TTL, t));
    }
    Attr::nested(CMD_ATTR_DAEMON, &a)
}

/// The family-id lookup sent to the generic-netlink controller.
pub fn encode_family_request(seq: u32) -> Vec<u8> {
    let genl = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.to_owned())],
    });
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// What comes back from the kernel, one per netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `NLMSG_ERROR` with code 0.
    Ack {
        seq: u32,
    },
    /// `NLMSG_ERROR` with a (negative) errno.
    Error {
        seq: u32,
        errno: i32,
    },
    /// End of a dump.
    Done {
        seq: u32,
    },
    Service(ServiceInfo),
    Dest(DestInfo),
    Config(Timeouts),
    Daemon(SyncDaemon),
    Info(Info),
    /// The controller's answer to the family lookup.
    FamilyId(u16),
    /// A message we do not use (or one whose attributes we could not read).
    Other,
}

/// Why a reply could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed netlink message from the kernel: {0}")]
pub struct MalformedReply(pub String);

fn bad(s: impl Into<String>) -> MalformedReply {
    MalformedReply(s.into())
}

/// Split a receive buffer into netlink messages and decode each one.
/// Never panics, whatever the bytes.
pub fn decode_replies(buf: &[u8]) -> Result<Vec<Reply>, MalformedReply> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < 16 || len > rest.len() {
            return Err(bad(format!(
                "message length {len} with {} bytes left",
                rest.len()
            )));
        }
        let msg_type = u16::from_ne_bytes([rest[4], rest[5]]);
        out.push(decode_one(&rest[..len], msg_type)?);
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    Ok(out)
}

const GENL_ID_CTRL: u16 = 0x10;

fn decode_one(msg: &[u8], msg_type: u16) -> Result<Reply, MalformedReply> {
    if msg_type == GENL_ID_CTRL {
        let m = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(msg)
            .map_err(|e| bad(e.to_string()))?;
        return Ok(match m.payload {
            NetlinkPayload::InnerMessage(g) => g
                .payload
                .nlas
                .iter()
                .find_map(|a| match a {
                    GenlCtrlAttrs::FamilyId(id) => Some(Reply::FamilyId(*id)),
                    _ => None,
                })
                .unwrap_or(Reply::Other),
            other => control_reply(m.header.sequence_number, other),
        });
    }
    let m = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(msg)
        .map_err(|e| bad(e.to_string()))?;
    let seq = m.header.sequence_number;
    match m.payload {
        NetlinkPayload::InnerMessage(g) => decode_ipvs(&g.payload),
        other => Ok(control_reply(seq, other)),
    }
}

fn control_reply<T>(seq: u32, p: NetlinkPayload<T>) -> Reply {
    match p {
        NetlinkPayload::Error(e) => match e.code {
            None => Reply::Ack { seq },
            Some(c) => Reply::Error {
                seq,
                errno: c.get(),
            },
        },
        NetlinkPayload::Done(_) => Reply::Done { seq },
        _ => Reply::Other,
    }
}

/// Attributes by kind, last one wins (kernel order).
struct Attrs<'a>(Vec<(u16, &'a [u8])>);

impl<'a> Attrs<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, MalformedReply> {
        let mut v = Vec::new();
        for a in NlasIterator::new(buf) {
            let a: NlaBuffer<&'a [u8]> = a.map_err(|e| bad(e.to_string()))?;
            let kind = a.kind() & !NLA_F_NESTED & 0x3fff;
            let len = a.value_length();
            let inner = a.into_inner();
            let value = inner
                .get(4..4 + len)
                .ok_or_else(|| bad("short attribute"))?;
            v.push((kind, value));
        }
        Ok(Attrs(v))
    }
    fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| *v)
    }
    fn need(&self, kind: u16, what: &str) -> Result<&'a [u8], MalformedReply> {
        self.get(kind)
            .ok_or_else(|| bad(format!("missing attribute {what}")))
    }
    fn u8(&self, kind: u16) -> Option<u8> {
        self.get(kind).and_then(|v| v.first().copied())
    }
    fn u16(&self, kind: u16) -> Option<u16> {
        self.get(kind)
            .and_then(|v| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)))
    }
    fn be16(&self, kind: u16) -> Option<u16> {
        self.get(kind)
            .and_then(|v| Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?)))
    }
    fn u32(&self, kind: u16) -> Option<u32> {
        self.get(kind)
            .and_then(|v| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)))
    }
    fn u64(&self, kind: u16) -> Option<u64> {
        self.get(kind)
            .and_then(|v| Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)))
    }
    fn string(&self, kind: u16) -> Option<String> {
        self.get(kind).map(|v| {
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        })
    }
}

fn ip_of(family: Family, v: &[u8]) -> Result<IpAddr, MalformedReply> {
    match family {
        Family::V4 => {
            let b: [u8; 4] = v
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad("short IPv4 address"))?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        Family::V6 => {
            let b: [u8; 16] = v
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad("short IPv6 address"))?;
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
    }
}

fn decode_ipvs(m: &IpvsMessage) -> Result<Reply, MalformedReply> {
    let mut top = Vec::new();
    for a in &m.attrs {
        top.push((a.kind & !NLA_F_NESTED & 0x3fff, a.value.as_slice()));
    }
    let top = Attrs(top);
    match m.cmd {
        CMD_NEW_SERVICE => {
            let s = Attrs::parse(top.need(CMD_ATTR_SERVICE, "service")?)?;
            Ok(Reply::Service(decode_service(&s)?))
        }
        CMD_NEW_DEST => {
            let d = Attrs::parse(top.need(CMD_ATTR_DEST, "destination")?)?;
            Ok(Reply::Dest(decode_dest(&d)?))
        }
        CMD_SET_CONFIG => Ok(Reply::Config(Timeouts {
            tcp: top.u32(CMD_ATTR_TIMEOUT_TCP).unwrap_or(0),
            tcp_fin: top.u32(CMD_ATTR_TIMEOUT_TCP_FIN).unwrap_or(0),
            udp: top.u32(CMD_ATTR_TIMEOUT_UDP).unwrap_or(0),
        })),
        CMD_NEW_DAEMON => {
            let d = Attrs::parse(top.need(CMD_ATTR_DAEMON, "daemon")?)?;
            Ok(Reply::Daemon(decode_daemon(&d)?))
        }
        CMD_SET_INFO => Ok(Reply::Info(Info {
            version: top.u32(INFO_ATTR_VERSION).unwrap_or(0),
            conn_tab_size: top.u32(INFO_ATTR_CONN_TAB_SIZE).unwrap_or(0),
        })),
        _ => Ok(Reply::Other),
    }
}

fn decode_stats(a: &Attrs<'_>, stats: u16, stats64: u16) -> Result<Stats, MalformedReply> {
    if let Some(b) = a.get(stats64) {
        let s = Attrs::parse(b)?;
        let g = |k| s.u64(k).unwrap_or(0);
        return Ok(Stats {
            conns: g(STATS_ATTR_CONNS),
            inpkts: g(STATS_ATTR_INPKTS),
            outpkts: g(STATS_ATTR_OUTPKTS),
            inbytes: g(STATS_ATTR_INBYTES),
            outbytes: g(STATS_ATTR_OUTBYTES),
            cps: g(STATS_ATTR_CPS),
            inpps: g(STATS_ATTR_INPPS),
            outpps: g(STATS_ATTR_OUTPPS),
            inbps: g(STATS_ATTR_INBPS),
            outbps: g(STATS_ATTR_OUTBPS),
        });
    }
    if let Some(b) = a.get(stats) {
        let s = Attrs::parse(b)?;
        let g = |k| u64::from(s.u32(k).unwrap_or(0));
        let g64 = |k| s.u64(k).unwrap_or(0);
        return Ok(Stats {
            conns: g(STATS_ATTR_CONNS),
            inpkts: g(STATS_ATTR_INPKTS),
            outpkts: g(STATS_ATTR_OUTPKTS),
            inbytes: g64(STATS_ATTR_INBYTES),
            outbytes: g64(STATS_ATTR_OUTBYTES),
            cps: g(STATS_ATTR_CPS),
            inpps: g(STATS_ATTR_INPPS),
            outpps: g(STATS_ATTR_OUTPPS),
            inbps: g(STATS_ATTR_INBPS),
            outbps: g(STATS_ATTR_OUTBPS),
        });
    }
    Ok(Stats::default())
}

fn decode_service(a: &Attrs<'_>) -> Result<ServiceInfo, MalformedReply> {
    let af = a
        .u16(SVC_ATTR_AF)
        .ok_or_else(|| bad("service without family"))?;
    let family = Family::from_af(af).ok_or_else(|| bad(format!("unknown family {af}")))?;
    let id = match a.u32(SVC_ATTR_FWMARK).filter(|m| *m != 0) {
        Some(mark) => ServiceId::Fwmark { family, mark },
        None => {
            let p = a.u16(SVC_ATTR_PROTOCOL).unwrap_or(0);
            let protocol =
                IpvsProtocol::from_number(p).ok_or_else(|| bad(format!("unknown protocol {p}")))?;
            let ip = ip_of(family, a.need(SVC_ATTR_ADDR, "service address")?)?;
            let port = a.be16(SVC_ATTR_PORT).unwrap_or(0);
            ServiceId::Inet {
                protocol,
                addr: SocketAddr::new(ip, port),
            }
        }
    };
    let bits = a.u32(SVC_ATTR_FLAGS).unwrap_or(0);
    let persistent = bits & SVC_F_PERSISTENT != 0;
    let netmask = match (family, a.get(SVC_ATTR_NETMASK)) {
        (Family::V4, Some(v)) if v.len() >= 4 => {
            u32::from_be_bytes([v[0], v[1], v[2], v[3]]).count_ones() as u8
        }
        (Family::V6, _) => a.u32(SVC_ATTR_NETMASK).unwrap_or(128).min(128) as u8,
        _ => 32,
    };
    Ok(ServiceInfo {
        service: Service {
            id,
            scheduler: a.string(SVC_ATTR_SCHED_NAME).unwrap_or_default(),
            flags: ServiceFlags {
                one_packet: bits & SVC_F_ONEPACKET != 0,
                sched_fallback: bits & SVC_F_SCHED1 != 0,
                sched_port: bits & SVC_F_SCHED2 != 0,
                sched3: bits & SVC_F_SCHED3 != 0,
            },
            persistence: persistent.then(|| a.u32(SVC_ATTR_TIMEOUT).unwrap_or(0)),
            netmask,
        },
        stats: decode_stats(a, SVC_ATTR_STATS, SVC_ATTR_STATS64)?,
    })
}

fn decode_dest(a: &Attrs<'_>) -> Result<DestInfo, MalformedReply> {
    let raw = a.need(DEST_ATTR_ADDR, "destination address")?;
    let family = match a.u16(DEST_ATTR_ADDR_FAMILY) {
        Some(af) => Family::from_af(af).ok_or_else(|| bad(format!("unknown family {af}")))?,
        // Before 4.x the destination shares the service's family; an
        // IPv4 address leaves the last 12 bytes zero.
        None if raw.len() >= 16 && raw[4..16].iter().all(|b| *b == 0) => Family::V4,
        None => Family::V6,
    };
    let ip = ip_of(family, raw)?;
    let port = a.be16(DEST_ATTR_PORT).unwrap_or(0);
    let fwd_n = a.u32(DEST_ATTR_FWD_METHOD).unwrap_or(0);
    let fwd = FwdMethod::from_number(fwd_n)
        .ok_or_else(|| bad(format!("unknown forwarding method {fwd_n}")))?;
    let tunnel = match a.u8(DEST_ATTR_TUN_TYPE) {
        Some(t) => {
            TunnelType::from_number(t).ok_or_else(|| bad(format!("unknown tunnel type {t}")))?
        }
        None => TunnelType::Ipip,
    };
    Ok(DestInfo {
        dest: Dest {
            addr: SocketAddr::new(ip, port),
            fwd,
            weight: a.u32(DEST_ATTR_WEIGHT).unwrap_or(0),
            upper_threshold: a.u32(DEST_ATTR_U_THRESH).unwrap_or(0),
            lower_threshold: a.u32(DEST_ATTR_L_THRESH).unwrap_or(0),
            tunnel,
            tunnel_port: a.be16(DEST_ATTR_TUN_PORT).unwrap_or(0),
            tunnel_flags: a.u16(DEST_ATTR_TUN_FLAGS).unwrap_or(0),
        },
        active_conns: a.u32(DEST_ATTR_ACTIVE_CONNS).unwrap_or(0),
        inactive_conns: a.u32(DEST_ATTR_INACT_CONNS).unwrap_or(0),
        persist_conns: a.u32(DEST_ATTR_PERSIST_CONNS).unwrap_or(0),
        stats: decode_stats(a, DEST_ATTR_STATS, DEST_ATTR_STATS64)?,
    })
}

fn decode_daemon(a: &Attrs<'_>) -> Result<SyncDaemon, MalformedReply> {
    let s = a.u32(DAEMON_ATTR_STATE).unwrap_or(0);
    let state =
        SyncState::from_number(s).ok_or_else(|| bad(format!("unknown daemon state {s}")))?;
    let group = match (
        a.get(DAEMON_ATTR_MCAST_GROUP),
        a.get(DAEMON_ATTR_MCAST_GROUP6),
    ) {
        (_, Some(g6)) if g6.len() >= 16 && g6.iter().any(|b| *b != 0) => {
            Some(ip_of(Family::V6, g6)?)
        }
        (Some(g4), _) if g4.len() >= 4 && g4.iter().any(|b| *b != 0) => {
            Some(ip_of(Family::V4, g4)?)
        }
        _ => None,
    };
    Ok(SyncDaemon {
        state,
        interface: a.string(DAEMON_ATTR_MCAST_IFN).unwrap_or_default(),
        sync_id: a.u32(DAEMON_ATTR_SYNC_ID).unwrap_or(0),
        group,
        port: a.u16(DAEMON_ATTR_MCAST_PORT),
        ttl: a.u8(DAEMON_ATTR_MCAST_TTL),
        max_len: a.u16(DAEMON_ATTR_SYNC_MAXLEN),
    })
}

/// Encode a reply as the kernel would (services, destinations, config):
/// used by tests and the fake kernel to check decoding byte for byte.
pub fn encode_reply(reply: &Reply, family_id: u16, seq: u32) -> Vec<u8> {
    let (cmd, attrs) = match reply {
        Reply::Service(si) => {
            let mut a = match &si.service.id {
                ServiceId::Inet { .. } => service_id_attrs(&si.service.id),
                ServiceId::Fwmark { family, mark } => vec![
                    Attr::u16(SVC_ATTR_AF, family.af()),
                    Attr::u32(SVC_ATTR_FWMARK, *mark),
                ],
            };
            let s = &si.service;
            a.push(Attr::string(SVC_ATTR_SCHED_NAME, &s.scheduler));
            let mut flags = (flags_bits(&s.flags, s.persistence.is_some()) | SVC_F_HASHED)
                .to_ne_bytes()
                .to_vec();
            flags.extend_from_slice(&u32::MAX.to_ne_bytes());
            a.push(Attr::bytes(SVC_ATTR_FLAGS, flags));
            a.push(Attr::u32(SVC_ATTR_TIMEOUT, s.persistence.unwrap_or(0)));
            a.push(Attr::bytes(
                SVC_ATTR_NETMASK,
                netmask_value(s.id.family(), s.netmask),
            ));
            a.push(Attr::nested(SVC_ATTR_STATS64, &stats64(&si.stats)));
            (CMD_NEW_SERVICE, vec![Attr::nested(CMD_ATTR_SERVICE, &a)])
        }
        Reply::Dest(di) => {
            let d = &di.dest;
            let mut a = dest_id_attrs(d.addr);
            a.push(Attr::u32(DEST_ATTR_FWD_METHOD, d.fwd.number()));
            a.push(Attr::u32(DEST_ATTR_WEIGHT, d.weight));
            a.push(Attr::u8(DEST_ATTR_TUN_TYPE, d.tunnel.number()));
            a.push(Attr::be16(DEST_ATTR_TUN_PORT, d.tunnel_port));
            a.push(Attr::u16(DEST_ATTR_TUN_FLAGS, d.tunnel_flags));
            a.push(Attr::u32(DEST_ATTR_U_THRESH, d.upper_threshold));
            a.push(Attr::u32(DEST_ATTR_L_THRESH, d.lower_threshold));
            a.push(Attr::u32(DEST_ATTR_ACTIVE_CONNS, di.active_conns));
            a.push(Attr::u32(DEST_ATTR_INACT_CONNS, di.inactive_conns));
            a.push(Attr::u32(DEST_ATTR_PERSIST_CONNS, di.persist_conns));
            a.push(Attr::nested(DEST_ATTR_STATS64, &stats64(&di.stats)));
            (CMD_NEW_DEST, vec![Attr::nested(CMD_ATTR_DEST, &a)])
        }
        Reply::Config(t) => (
            CMD_SET_CONFIG,
            vec![
                Attr::u32(CMD_ATTR_TIMEOUT_TCP, t.tcp),
                Attr::u32(CMD_ATTR_TIMEOUT_TCP_FIN, t.tcp_fin),
                Attr::u32(CMD_ATTR_TIMEOUT_UDP, t.udp),
            ],
        ),
        Reply::Daemon(d) => (CMD_NEW_DAEMON, vec![daemon(d)]),
        Reply::Info(i) => (
            CMD_SET_INFO,
            vec![
                Attr::u32(INFO_ATTR_VERSION, i.version),
                Attr::u32(INFO_ATTR_CONN_TAB_SIZE, i.conn_tab_size),
            ],
        ),
        _ => (0, vec![]),
    };
    let mut genl = GenlMessage::from_payload(IpvsMessage { cmd, attrs });
    genl.set_resolved_family_id(family_id);
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

fn stats64(s: &Stats) -> Vec<Attr> {
    let u = |k, v: u64| Attr::bytes(k, v.to_ne_bytes());
    vec![
        u(STATS_ATTR_CONNS, s.conns),
        u(STATS_ATTR_INPKTS, s.inpkts),
        u(STATS_ATTR_OUTPKTS, s.outpkts),
        u(STATS_ATTR_INBYTES, s.inbytes),
        u(STATS_ATTR_OUTBYTES, s.outbytes),
        u(STATS_ATTR_CPS, s.cps),
        u(STATS_ATTR_INPPS, s.inpps),
        u(STATS_ATTR_OUTPPS, s.outpps),
        u(STATS_ATTR_INBPS, s.inbps),
        u(STATS_ATTR_OUTBPS, s.outbps),
    ]
}
