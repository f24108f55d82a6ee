//! The thin shell: one generic-netlink socket talking to the IPVS family.

use crate::codec::{decode_replies, encode_family_request, MalformedReply, Reply, Request};
use crate::model::*;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr as NlAddr};
use std::io;

/// Errors talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The generic-netlink family "IPVS" is not registered.
    #[error(
        "this kernel has no IPVS (generic netlink family \"IPVS\" not found): load it with `modprobe ip_vs`, or set data_plane = \"proxy\" for the services that use it"
    )]
    NotAvailable,
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Malformed(#[from] MalformedReply),
    /// The kernel refused a request.
    #[error("kernel refused: {}", errno_text(*errno))]
    Kernel { errno: i32 },
}

/// The kernel's message for an IPVS errno (as ipvsadm words them).
pub fn errno_text(errno: i32) -> String {
    let e = errno.abs();
    let what = match e {
        1 => "operation not permitted (halb needs CAP_NET_ADMIN)",
        2 => "no such service or destination (or unknown scheduler module)",
        3 => "no such service",
        17 => "already exists",
        22 => "invalid argument",
        95 => "not supported by this kernel",
        97 => "address family not supported",
        _ => "",
    };
    if what.is_empty() {
        io::Error::from_raw_os_error(e).to_string()
    } else {
        format!("{what} (errno {e})")
    }
}

/// A connected generic-netlink socket with the IPVS family resolved.
pub struct IpvsSocket {
    sock: Socket,
    family: u16,
    seq: u32,
}

impl IpvsSocket {
    /// Open the socket and look the family up. [`IpvsError::NotAvailable`]
    /// when the kernel has no IPVS.
    pub fn open() -> Result<Self, IpvsError> {
        let mut sock = Socket::new(NETLINK_GENERIC)?;
        sock.bind_auto()?;
        sock.connect(&NlAddr::new(0, 0))?;
        let _ = sock.set_ext_ack(true);
        let mut s = IpvsSocket {
            sock,
            family: 0,
            seq: 1,
        };
        let seq = s.next_seq();
        s.sock.send(&encode_family_request(seq), 0)?;
        let mut family = None;
        loop {
            let (buf, _) = s.sock.recv_from_full()?;
            for r in decode_replies(&buf)? {
                match r {
                    Reply::FamilyId(id) => family = Some(id),
                    Reply::Error { errno: -2, .. } => return Err(IpvsError::NotAvailable),
                    Reply::Error { errno, .. } => return Err(IpvsError::Kernel { errno }),
                    Reply::Ack { .. } | Reply::Done { .. } => {
                        return family
                            .map(|f| {
                                s.family = f;
                                s
                            })
                            .ok_or(IpvsError::NotAvailable)
                    }
                    _ => {}
                }
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Send one request and collect its replies (until the ack, or the
    /// end of the dump).
    pub fn request(&mut self, req: &Request) -> Result<Vec<Reply>, IpvsError> {
        let seq = self.next_seq();
        self.sock.send(&req.encode(self.family, seq), 0)?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full()?;
            for r in decode_replies(&buf)? {
                match r {
                    Reply::Ack { seq: s } | Reply::Done { seq: s } if s == seq => return Ok(out),
                    Reply::Error { seq: s, errno } if s == seq => {
                        return Err(IpvsError::Kernel { errno })
                    }
                    Reply::Ack { .. } | Reply::Done { .. } | Reply::Error { .. } => {}
                    other => out.push(other),
                }
            }
        }
    }

    /// Send many modifying requests, pipelined (a batch per `send`), and
    /// return one result per request, in order.
    pub fn execute(&mut self, reqs: &[Request]) -> Vec<Result<(), IpvsError>> {
        const BATCH: usize = 16 * 1024;
        let mut results: Vec<Result<(), IpvsError>> = Vec::with_capacity(reqs.len());
        let mut i = 0;
        while i < reqs.len() {
            let mut buf = Vec::new();
            let first_seq = self.seq.wrapping_add(1);
            let start = i;
            while i < reqs.len() && (buf.is_empty() || buf.len() < BATCH) {
                let seq = self.next_seq();
                buf.extend_from_slice(&reqs[i].encode(self.family, seq));
                i += 1;
            }
            let n = i - start;
            let mut got: Vec<Option<Result<(), IpvsError>>> = (0..n).map(|_| None).collect();
            if let Err(e) = self.sock.send(&buf, 0) {
                let kind = e.kind();
                for _ in 0..n {
                    results.push(Err(IpvsError::Io(io::Error::new(kind, e.to_string()))));
                }
                continue;
            }
            let mut left = n;
            while left > 0 {
                let replies = match self.sock.recv_from_full() {
                    Ok((b, _)) => decode_replies(&b),
                    Err(e) => {
                        let kind = e.kind();
                        for g in got.iter_mut().filter(|g| g.is_none()) {
                            *g = Some(Err(IpvsError::Io(io::Error::new(kind, e.to_string()))));
                        }
                        break;
                    }
                };
                let replies = match replies {
                    Ok(r) => r,
                    Err(e) => {
                        for g in got.iter_mut().filter(|g| g.is_none()) {
                            *g = Some(Err(IpvsError::Malformed(MalformedReply(e.0.clone()))));
                        }
                        break;
                    }
                };
                for r in replies {
                    let (seq, res) = match r {
                        Reply::Ack { seq } => (seq, Ok(())),
                        Reply::Error { seq, errno } => (seq, Err(IpvsError::Kernel { errno })),
                        _ => continue,
                    };
                    let idx = seq.wrapping_sub(first_seq) as usize;
                    if let Some(slot) = got.get_mut(idx) {
                        if slot.is_none() {
                            *slot = Some(res);
                            left -= 1;
                        }
                    }
                }
            }
            results.extend(got.into_iter().map(|g| g.unwrap_or(Ok(()))));
        }
        results
    }

    pub fn services(&mut self) -> Result<Vec<ServiceInfo>, IpvsError> {
        Ok(self
            .request(&Request::GetServices)?
            .into_iter()
            .filter_map(|r| match r {
                Reply::Service(s) => Some(s),
                _ => None,
            })
            .collect())
    }

    pub fn dests(&mut self, id: &ServiceId) -> Result<Vec<DestInfo>, IpvsError> {
        Ok(self
            .request(&Request::GetDests(*id))?
            .into_iter()
            .filter_map(|r| match r {
                Reply::Dest(d) => Some(d),
                _ => None,
            })
            .collect())
    }

    /// The whole table: every service with its destinations.
    pub fn table(&mut self) -> Result<Vec<(ServiceInfo, Vec<DestInfo>)>, IpvsError> {
        let services = self.services()?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let d = self.dests(&s.service.id)?;
            out.push((s, d));
        }
        Ok(out)
    }

    pub fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        Ok(self
            .request(&Request::GetConfig)?
            .into_iter()
            .find_map(|r| match r {
                Reply::Config(t) => Some(t),
                _ => None,
            })
            .unwrap_or_default())
    }

    pub fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError> {
        Ok(self
            .request(&Request::GetDaemons)?
            .into_iter()
            .filter_map(|r| match r {
                Reply::Daemon(d) => Some(d),
                _ => None,
            })
            .collect())
    }

    pub fn info(&mut self) -> Result<Option<Info>, IpvsError> {
        Ok(self
            .request(&Request::GetInfo)?
            .into_iter()
            .find_map(|r| match r {
                Reply::Info(i) => Some(i),
                _ => None,
            }))
    }
}
