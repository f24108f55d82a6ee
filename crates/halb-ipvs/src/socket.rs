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
    /// One receive buffer for every datagram (no peek, no allocation per
    /// reply): the kernel's IPVS replies fit in a page, dumps in
    /// `NLMSG_GOODSIZE`.
    buf: Vec<u8>,
}

/// Receive buffer: larger than any datagram the IPVS family sends.
const RECV_BUF: usize = 64 * 1024;
/// Requests per pipelined batch. Only failures are answered (and the
/// batch's last request), so the socket's receive queue must hold one
/// error per request of a batch: 128 small errors fit in the 1 MiB asked
/// for below and in the kernel's default of about 208 KiB.
const BATCH_REQUESTS: usize = 128;
/// Receive queue asked for (the kernel caps it at `rmem_max`).
const RCVBUF: usize = 1 << 20;

impl IpvsSocket {
    /// Open the socket and look the family up. [`IpvsError::NotAvailable`]
    /// when the kernel has no IPVS.
    pub fn open() -> Result<Self, IpvsError> {
        let mut sock = Socket::new(NETLINK_GENERIC)?;
        sock.bind_auto()?;
        sock.connect(&NlAddr::new(0, 0))?;
        let _ = sock.set_ext_ack(true);
        // Errors without the request echoed back: smaller, and the request
        // is known by its sequence number.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_rx_buf_sz(RCVBUF);
        let mut s = IpvsSocket {
            sock,
            family: 0,
            seq: 1,
            buf: Vec::with_capacity(RECV_BUF),
        };
        let seq = s.next_seq();
        s.sock.send(&encode_family_request(seq), 0)?;
        let mut family = None;
        loop {
            for r in s.recv()? {
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

    /// One datagram, decoded. A datagram larger than the buffer (which the
    /// kernel's IPVS family never sends) is an error, not a panic.
    fn recv(&mut self) -> Result<Vec<Reply>, IpvsError> {
        self.buf.clear();
        // MSG_TRUNC: `recv` returns the datagram's real length, so one
        // larger than the buffer is noticed.
        let n = self.sock.recv(&mut self.buf, libc::MSG_TRUNC)?;
        if n > self.buf.len() {
            return Err(IpvsError::Malformed(MalformedReply(format!(
                "a {n}-byte netlink datagram does not fit the {RECV_BUF}-byte buffer"
            ))));
        }
        Ok(decode_replies(&self.buf)?)
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
            for r in self.recv()? {
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

    /// Send many modifying requests, pipelined, and return one result per
    /// request, in order.
    ///
    /// A batch of up to [`BATCH_REQUESTS`] requests goes out in one `send`;
    /// only its last request asks for an ack, so the kernel answers just the
    /// failures and that last one. The kernel handles a socket's requests in
    /// order, so once the last one's answer is in, every failure of the batch
    /// has been received: the requests with no answer succeeded. One send and
    /// one receive per batch instead of a receive per request.
    pub fn execute(&mut self, reqs: &[Request]) -> Vec<Result<(), IpvsError>> {
        let mut results: Vec<Result<(), IpvsError>> = Vec::with_capacity(reqs.len());
        let mut wire = Vec::new();
        for chunk in reqs.chunks(BATCH_REQUESTS) {
            wire.clear();
            let first_seq = self.seq.wrapping_add(1);
            for (k, r) in chunk.iter().enumerate() {
                let seq = self.next_seq();
                wire.extend_from_slice(&r.encode_acked(self.family, seq, k + 1 == chunk.len()));
            }
            let last_seq = self.seq;
            let mut got: Vec<Option<Result<(), IpvsError>>> =
                (0..chunk.len()).map(|_| None).collect();
            if let Err(e) = self.sock.send(&wire, 0) {
                let kind = e.kind();
                for _ in chunk {
                    results.push(Err(IpvsError::Io(io::Error::new(kind, e.to_string()))));
                }
                continue;
            }
            let mut done = false;
            while !done {
                let replies = match self.recv() {
                    Ok(r) => r,
                    Err(e) => {
                        // Lost track of this batch (ENOBUFS: more failures
                        // than the receive queue holds): what was not
                        // answered is unknown, reported as failed.
                        let text = e.to_string();
                        for g in got.iter_mut().filter(|g| g.is_none()) {
                            *g = Some(Err(IpvsError::Io(io::Error::other(format!(
                                "result unknown: {text}"
                            )))));
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
                        }
                    }
                    if seq == last_seq {
                        done = true;
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
