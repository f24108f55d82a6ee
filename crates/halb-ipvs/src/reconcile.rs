//! Desired table against the kernel's table: the smallest list of
//! operations, never a flush. Pure: no I/O, no clock.
//!
//! * A service in `desired` and not in the kernel is added with its
//!   destinations; one in both is edited only where it differs.
//! * A service in the kernel that halb does not manage is *foreign*: it is
//!   reported and left alone, unless the policy says remove.
//! * A managed service that left `desired` is deleted.
//! * Within a managed service every destination is halb's: extra ones are
//!   deleted, changed ones edited (weight 0 is how quiescence is applied).

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

/// One kernel operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    AddService(Service),
    EditService(Service),
    DelService(ServiceId),
    AddDest(ServiceId, Dest),
    EditDest(ServiceId, Dest),
    DelDest(ServiceId, SocketAddr),
}

impl Op {
    pub fn service(&self) -> ServiceId {
        match self {
            Op::AddService(s) | Op::EditService(s) => s.id,
            Op::DelService(id) | Op::AddDest(id, _) | Op::EditDest(id, _) | Op::DelDest(id, _) => {
                *id
            }
        }
    }
    pub fn dest(&self) -> Option<SocketAddr> {
        match self {
            Op::AddDest(_, d) | Op::EditDest(_, d) => Some(d.addr),
            Op::DelDest(_, a) => Some(*a),
            _ => None,
        }
    }
    pub fn request(&self) -> crate::Request {
        use crate::Request as R;
        match self {
            Op::AddService(s) => R::NewService(s.clone()),
            Op::EditService(s) => R::SetService(s.clone()),
            Op::DelService(id) => R::DelService(*id),
            Op::AddDest(id, d) => R::NewDest(*id, *d),
            Op::EditDest(id, d) => R::SetDest(*id, *d),
            Op::DelDest(id, a) => R::DelDest(*id, *a),
        }
    }
}

fn fmt_id(f: &mut fmt::Formatter<'_>, id: &ServiceId) -> fmt::Result {
    match id {
        ServiceId::Inet { protocol, addr } => {
            let o = match protocol {
                IpvsProtocol::Tcp => "-t",
                IpvsProtocol::Udp => "-u",
                IpvsProtocol::Sctp => "--sctp-service",
            };
            write!(f, "{o} {addr}")
        }
        ServiceId::Fwmark { family, mark } => {
            write!(f, "-f {mark}")?;
            if *family == Family::V6 {
                f.write_str(" -6")?;
            }
            Ok(())
        }
    }
}

/// The service options in ipvsadm's syntax (`-s wlc -b sh-port -p 300`).
pub fn fmt_service_opts(f: &mut fmt::Formatter<'_>, s: &Service) -> fmt::Result {
    write!(f, " -s {}", s.scheduler)?;
    let mut flags = Vec::new();
    let pre = if s.scheduler == "mh" { "mh" } else { "sh" };
    if s.flags.sched_fallback {
        flags.push(format!("{pre}-fallback"));
    }
    if s.flags.sched_port {
        flags.push(format!("{pre}-port"));
    }
    if s.flags.sched3 {
        flags.push("flag-3".to_owned());
    }
    if !flags.is_empty() {
        write!(f, " -b {}", flags.join(","))?;
    }
    if let Some(t) = s.persistence {
        write!(f, " -p {t}")?;
        if s.netmask != s.id.family().max_prefix() {
            write!(f, " -M {}", s.netmask)?;
        }
    }
    if s.flags.one_packet {
        f.write_str(" -o")?;
    }
    Ok(())
}

fn fmt_dest_opts(f: &mut fmt::Formatter<'_>, d: &Dest) -> fmt::Result {
    let m = match d.fwd {
        FwdMethod::Route | FwdMethod::Local | FwdMethod::Bypass => "-g",
        FwdMethod::Masq => "-m",
        FwdMethod::Tunnel => "-i",
    };
    write!(f, " -r {} {m} -w {}", d.addr, d.weight)?;
    if d.upper_threshold != 0 {
        write!(f, " -x {}", d.upper_threshold)?;
    }
    if d.lower_threshold != 0 {
        write!(f, " -y {}", d.lower_threshold)?;
    }
    if d.fwd == FwdMethod::Tunnel && d.tunnel != TunnelType::Ipip {
        let t = match d.tunnel {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        };
        write!(f, " --tun-type {t}")?;
        if d.tunnel == TunnelType::Gue {
            write!(f, " --tun-port {}", d.tunnel_port)?;
        }
        match d.tunnel_flags {
            1 => f.write_str(" --tun-csum")?,
            2 => f.write_str(" --tun-remcsum")?,
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Display for Op {
    /// As the equivalent ipvsadm command line (without `ipvsadm`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService(s) => {
                f.write_str("-A ")?;
                fmt_id(f, &s.id)?;
                fmt_service_opts(f, s)
            }
            Op::EditService(s) => {
                f.write_str("-E ")?;
                fmt_id(f, &s.id)?;
                fmt_service_opts(f, s)
            }
            Op::DelService(id) => {
                f.write_str("-D ")?;
                fmt_id(f, id)
            }
            Op::AddDest(id, d) => {
                f.write_str("-a ")?;
                fmt_id(f, id)?;
                fmt_dest_opts(f, d)
            }
            Op::EditDest(id, d) => {
                f.write_str("-e ")?;
                fmt_id(f, id)?;
                fmt_dest_opts(f, d)
            }
            Op::DelDest(id, a) => {
                f.write_str("-d ")?;
                fmt_id(f, id)?;
                write!(f, " -r {a}")
            }
        }
    }
}

/// What to do with services in the kernel that halb does not manage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForeignPolicy {
    /// Report them, leave them alone.
    #[default]
    Keep,
    /// Delete them.
    Remove,
}

/// One service with its destinations.
pub type Entry = (Service, Vec<Dest>);

/// The outcome of a reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// Desired services that already existed in the kernel and were not
    /// managed yet: from now on they are halb's.
    pub adopted: Vec<ServiceId>,
    /// Services in the kernel that halb does not manage.
    pub foreign: Vec<ServiceId>,
}

fn same_dest(a: &Dest, b: &Dest) -> bool {
    let tun = a.fwd != FwdMethod::Tunnel
        || (a.tunnel == b.tunnel
            && (a.tunnel != TunnelType::Gue || a.tunnel_port == b.tunnel_port)
            && a.tunnel_flags == b.tunnel_flags);
    a.addr == b.addr
        && a.fwd == b.fwd
        && a.weight == b.weight
        && a.upper_threshold == b.upper_threshold
        && a.lower_threshold == b.lower_threshold
        && tun
}

/// Compute the operations that turn `current` into `desired`.
///
/// `managed` are the services halb owned before this call (added or
/// adopted earlier); a service of `current` that is neither desired nor
/// managed is foreign.
pub fn reconcile(
    desired: &[Entry],
    current: &[Entry],
    managed: &BTreeSet<ServiceId>,
    foreign: ForeignPolicy,
) -> Plan {
    let cur: BTreeMap<ServiceId, &Entry> = current.iter().map(|e| (e.0.id, e)).collect();
    let want: BTreeMap<ServiceId, &Entry> = desired.iter().map(|e| (e.0.id, e)).collect();
    let mut plan = Plan::default();

    // Deletions first: a removed service frees its addresses before new
    // ones arrive.
    for (id, _) in cur.iter() {
        if want.contains_key(id) {
            continue;
        }
        if managed.contains(id) {
            plan.ops.push(Op::DelService(*id));
        } else {
            plan.foreign.push(*id);
            if foreign == ForeignPolicy::Remove {
                plan.ops.push(Op::DelService(*id));
            }
        }
    }

    for (svc, dests) in desired {
        let id = svc.id;
        let Some((csvc, cdests)) = cur.get(&id).map(|e| (&e.0, &e.1)) else {
            plan.ops.push(Op::AddService(svc.clone()));
            for d in dedup(dests) {
                plan.ops.push(Op::AddDest(id, *d));
            }
            continue;
        };
        if !managed.contains(&id) {
            plan.adopted.push(id);
        }
        if !svc.same_settings(csvc) {
            plan.ops.push(Op::EditService(svc.clone()));
        }
        let cmap: BTreeMap<SocketAddr, &Dest> = cdests.iter().map(|d| (d.addr, d)).collect();
        let wset: BTreeSet<SocketAddr> = dests.iter().map(|d| d.addr).collect();
        for d in cdests {
            if !wset.contains(&d.addr) {
                plan.ops.push(Op::DelDest(id, d.addr));
            }
        }
        for d in dedup(dests) {
            match cmap.get(&d.addr) {
                None => plan.ops.push(Op::AddDest(id, *d)),
                Some(c) if !same_dest(d, c) => plan.ops.push(Op::EditDest(id, *d)),
                Some(_) => {}
            }
        }
    }
    plan
}

/// First occurrence of each destination address wins.
fn dedup(dests: &[Dest]) -> impl Iterator<Item = &Dest> {
    let mut seen = BTreeSet::new();
    dests.iter().filter(move |d| seen.insert(d.addr))
}

/// Accepted operations applied to a model of the kernel's table keyed by
/// service, as the kernel applies them (what [`crate::IpvsDataPlane`] keeps
/// between applies instead of reading the kernel back). Proportional to
/// the operations, not to the table.
pub fn apply_ops_map(k: &mut BTreeMap<ServiceId, Entry>, ops: &[Op]) {
    for op in ops {
        match op {
            Op::AddService(s) => {
                k.insert(s.id, (s.clone(), Vec::new()));
            }
            Op::EditService(s) => {
                if let Some(e) = k.get_mut(&s.id) {
                    e.0 = s.clone();
                }
            }
            Op::DelService(id) => {
                k.remove(id);
            }
            Op::AddDest(id, d) => {
                if let Some(e) = k.get_mut(id) {
                    e.1.push(*d);
                }
            }
            Op::EditDest(id, d) => {
                if let Some(x) = k
                    .get_mut(id)
                    .and_then(|e| e.1.iter_mut().find(|x| x.addr == d.addr))
                {
                    *x = *d;
                }
            }
            Op::DelDest(id, a) => {
                if let Some(e) = k.get_mut(id) {
                    e.1.retain(|x| x.addr != *a);
                }
            }
        }
    }
}

/// Apply operations to a table in memory, as the kernel would (used by the
/// fake kernel in tests, and to check that a plan converges).
pub fn apply_ops(table: &mut Vec<Entry>, ops: &[Op]) -> Result<(), String> {
    for op in ops {
        let id = op.service();
        let pos = table.iter().position(|e| e.0.id == id);
        match (op, pos) {
            (Op::AddService(s), None) => table.push((s.clone(), Vec::new())),
            (Op::AddService(_), Some(_)) => return Err(format!("{op}: exists")),
            (Op::EditService(s), Some(i)) => table[i].0 = s.clone(),
            (Op::DelService(_), Some(i)) => {
                table.remove(i);
            }
            (Op::AddDest(_, d), Some(i)) => {
                if table[i].1.iter().any(|x| x.addr == d.addr) {
                    return Err(format!("{op}: exists"));
                }
                table[i].1.push(*d)
            }
            (Op::EditDest(_, d), Some(i)) => match table[i].1.iter_mut().find(|x| x.addr == d.addr)
            {
                Some(x) => *x = *d,
                None => return Err(format!("{op}: no such destination")),
            },
            (Op::DelDest(_, a), Some(i)) => {
                let before = table[i].1.len();
                table[i].1.retain(|x| x.addr != *a);
                if table[i].1.len() == before {
                    return Err(format!("{op}: no such destination"));
                }
            }
            (_, None) => return Err(format!("{op}: no such service")),
        }
    }
    Ok(())
}
