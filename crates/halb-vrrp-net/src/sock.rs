//! Sockets: raw IP protocol 112 (VRRP), AF_PACKET for gratuitous ARP,
//! raw ICMPv6 for unsolicited neighbour advertisements.
//!
//! Each instance has two VRRP sockets: a sending one bound to its primary
//! address (so the kernel writes that source, which the v3 checksum's
//! pseudo-header covers), and an unbound receiving one that joined the
//! VRRP group on the interface (a bound raw socket would only see packets
//! addressed to its own address).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use halb_vrrp::packet::{IpHeader, IP_PROTOCOL, MULTICAST_V4, MULTICAST_V6, TTL};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::frames;

/// The sockets of one instance.
#[derive(Debug)]
pub struct VrrpSockets {
    send: Socket,
    recv: AsyncFd<Socket>,
    v6: bool,
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl VrrpSockets {
    /// Opens and configures the sockets on `iface` (index `ifindex`) for
    /// `primary`'s family; `multicast`: join the VRRP group.
    pub fn open(iface: &str, ifindex: u32, primary: IpAddr, multicast: bool) -> io::Result<Self> {
        let proto = Some(Protocol::from(i32::from(IP_PROTOCOL)));
        match primary {
            IpAddr::V4(p) => {
                let send = Socket::new(Domain::IPV4, Type::RAW, proto)?;
                send.bind_device(Some(iface.as_bytes()))?;
                // The primary may not be configured yet (unicast_source).
                send.set_freebind(true)?;
                send.bind(&SockAddr::from(SocketAddrV4::new(p, 0)))?;
                send.set_ttl(u32::from(TTL))?;
                send.set_multicast_ttl_v4(u32::from(TTL))?;
                send.set_multicast_if_v4(&p)?;
                send.set_multicast_loop_v4(false)?;
                send.set_recv_buffer_size(1)?;
                send.set_nonblocking(true)?;
                let recv = Socket::new(Domain::IPV4, Type::RAW, proto)?;
                recv.bind_device(Some(iface.as_bytes()))?;
                if multicast {
                    recv.join_multicast_v4_n(
                        &MULTICAST_V4,
                        &InterfaceIndexOrAddress::Index(ifindex),
                    )?;
                }
                recv.set_nonblocking(true)?;
                Ok(VrrpSockets {
                    send,
                    recv: async_fd(recv)?,
                    v6: false,
                })
            }
            IpAddr::V6(p) => {
                let scope = if is_link_local(&p) { ifindex } else { 0 };
                let send = Socket::new(Domain::IPV6, Type::RAW, proto)?;
                send.bind_device(Some(iface.as_bytes()))?;
                // A link-local address is tentative for a second or two
                // after the link comes up (DAD).
                send.set_freebind_ipv6(true)?;
                send.bind(&SockAddr::from(SocketAddrV6::new(p, 0, 0, scope)))?;
                send.set_unicast_hops_v6(u32::from(TTL))?;
                send.set_multicast_hops_v6(u32::from(TTL))?;
                send.set_multicast_if_v6(ifindex)?;
                send.set_multicast_loop_v6(false)?;
                send.set_recv_buffer_size(1)?;
                send.set_nonblocking(true)?;
                let recv = Socket::new(Domain::IPV6, Type::RAW, proto)?;
                recv.bind_device(Some(iface.as_bytes()))?;
                if multicast {
                    recv.join_multicast_v6(&MULTICAST_V6, ifindex)?;
                }
                setsockopt(&recv, sockopt::Ipv6RecvPacketInfo, &true).map_err(io_err)?;
                setsockopt(&recv, sockopt::Ipv6RecvHopLimit, &true).map_err(io_err)?;
                recv.set_nonblocking(true)?;
                Ok(VrrpSockets {
                    send,
                    recv: async_fd(recv)?,
                    v6: true,
                })
            }
        }
    }

    /// Sends one encoded advert to `dst`.
    pub fn send(&self, bytes: &[u8], dst: IpAddr, ifindex: u32) -> io::Result<()> {
        let addr = match dst {
            IpAddr::V4(a) => SockAddr::from(SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => {
                let scope = if is_link_local(&a) || a.is_multicast() {
                    ifindex
                } else {
                    0
                };
                SockAddr::from(SocketAddrV6::new(a, 0, 0, scope))
            }
        };
        self.send.send_to(bytes, &addr).map(|_| ())
    }

    /// Receives one packet: the IP facts and the VRRP payload.
    pub async fn recv(&self, buf: &mut Vec<u8>) -> io::Result<(IpHeader, std::ops::Range<usize>)> {
        loop {
            let mut guard = self.recv.readable().await?;
            let res = guard.try_io(|fd| {
                if self.v6 {
                    recv_v6(fd.get_ref(), buf)
                } else {
                    recv_v4(fd.get_ref(), buf)
                }
            });
            match res {
                Ok(Ok(Some(x))) => return Ok(x),
                Ok(Ok(None)) => continue, // not a usable packet
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv_v4(
    s: &Socket,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(IpHeader, std::ops::Range<usize>)>> {
    use std::io::Read;
    buf.resize(2048, 0);
    // A raw socket is a datagram socket: one read, one packet, the IPv4
    // header in front.
    let mut r: &Socket = s;
    let n = r.read(&mut buf[..])?;
    let Some(h) = frames::parse_ipv4(&buf[..n]) else {
        return Ok(None);
    };
    Ok(Some((
        IpHeader {
            src: IpAddr::V4(h.src),
            dst: IpAddr::V4(h.dst),
            ttl: h.ttl,
        },
        h.header_len..h.total_len,
    )))
}

fn recv_v6(
    s: &Socket,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(IpHeader, std::ops::Range<usize>)>> {
    buf.resize(2048, 0);
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let (n, src, dst, hops) = {
        let mut iov = [IoSliceMut::new(&mut buf[..])];
        let msg =
            recvmsg::<SockaddrIn6>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
                .map_err(io_err)?;
        let mut dst = None;
        let mut hops = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                    }
                    ControlMessageOwned::Ipv6HopLimit(h) => hops = u8::try_from(h).ok(),
                    _ => {}
                }
            }
        }
        (msg.bytes, msg.address.map(|a| a.ip()), dst, hops)
    };
    let (Some(src), Some(dst), Some(ttl)) = (src, dst, hops) else {
        return Ok(None);
    };
    Ok(Some((
        IpHeader {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            ttl,
        },
        0..n,
    )))
}

/// `AsyncFd::new` is deprecated in favour of the `unsafe` `register`
/// because it cannot prove the fd stays open; a `socket2::Socket` owns its
/// fd and the `AsyncFd` owns the `Socket`, so the fd outlives the
/// registration.
#[allow(deprecated)]
fn async_fd(s: Socket) -> io::Result<AsyncFd<Socket>> {
    AsyncFd::new(s)
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Sends gratuitous ARPs (AF_PACKET) and unsolicited neighbour
/// advertisements (raw ICMPv6, hop limit 255) on one interface.
#[derive(Debug)]
pub struct Announcer {
    packet: Option<Socket>,
    icmp6: Option<Socket>,
    ifindex: u32,
    mac: [u8; 6],
}

impl Announcer {
    /// Opens what `v4`/`v6` addresses need on `iface`.
    pub fn open(
        iface: &str,
        ifindex: u32,
        mac: [u8; 6],
        v4: bool,
        v6: bool,
    ) -> io::Result<Announcer> {
        let packet = if v4 {
            // Protocol 0: send only, the socket receives nothing.
            let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
            s.set_nonblocking(true)?;
            Some(s)
        } else {
            None
        };
        let icmp6 = if v6 {
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
            s.bind_device(Some(iface.as_bytes()))?;
            s.set_multicast_hops_v6(255)?;
            s.set_unicast_hops_v6(255)?;
            s.set_multicast_if_v6(ifindex)?;
            s.set_nonblocking(true)?;
            Some(s)
        } else {
            None
        };
        Ok(Announcer {
            packet,
            icmp6,
            ifindex,
            mac,
        })
    }

    /// One announcement for `addr`.
    pub fn announce(&self, addr: IpAddr) -> io::Result<()> {
        match addr {
            IpAddr::V4(a) => {
                let Some(s) = &self.packet else {
                    return Ok(());
                };
                let frame = frames::garp_frame(self.mac, a);
                let to = packet_addr(self.ifindex, frames::ETH_P_ARP)?;
                s.send_to(&frame, &to).map(|_| ())
            }
            IpAddr::V6(a) => {
                let Some(s) = &self.icmp6 else {
                    return Ok(());
                };
                let msg = frames::unsolicited_na(self.mac, a, false);
                let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                let to = SockAddr::from(SocketAddr::V6(SocketAddrV6::new(
                    all_nodes,
                    0,
                    0,
                    self.ifindex,
                )));
                s.send_to(&msg, &to).map(|_| ())
            }
        }
    }
}

/// A `sockaddr_ll` for broadcast on `ifindex`.
fn packet_addr(ifindex: u32, protocol: u16) -> io::Result<SockAddr> {
    let ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: i32::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    };
    // SAFETY: try_init hands a zeroed sockaddr_storage, large and aligned
    // enough for any address; we write one sockaddr_ll (smaller than
    // sockaddr_storage) at its start and report exactly that length.
    #[allow(unsafe_code)]
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            std::ptr::write(storage.cast::<libc::sockaddr_ll>(), ll);
            *len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            Ok(())
        })
    }?;
    Ok(addr)
}

/// The IPv4 group, for callers choosing a destination.
pub const GROUP_V4: Ipv4Addr = MULTICAST_V4;
