//! Listening sockets and the options they need.
//!
//! Every worker gets its own listening socket per service, all bound to the
//! same address with `SO_REUSEPORT`, so the kernel spreads new connections
//! (and UDP flows, by 4-tuple hash) over the workers with no shared accept
//! queue. `IP_FREEBIND`/`IPV6_FREEBIND` let a virtual address that is not
//! (yet) on this host be bound, as a VIP that moves with failover is.
//! `TCP_NODELAY` is set on the listener: Linux copies it into every
//! accepted socket, which saves a system call per connection.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

fn base_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(
        Domain::for_address(addr),
        ty.nonblocking().cloexec(),
        Some(proto),
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // An IPv6 service is only IPv6, as in IPVS; `[::]:80` must not take
        // IPv4 connections meant for a `0.0.0.0:80` service.
        s.set_only_v6(true)?;
        s.set_freebind_ipv6(true)?;
    } else {
        s.set_freebind(true)?;
    }
    Ok(s)
}

/// A non-blocking TCP listener on `addr` for one worker.
pub(crate) fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let s = base_socket(addr, Type::STREAM, Protocol::TCP)?;
    s.set_nodelay(true)?;
    s.bind(&SockAddr::from(addr))?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// A non-blocking UDP socket on `addr` for one worker.
pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = base_socket(addr, Type::DGRAM, Protocol::UDP)?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s.into())
}

/// A non-blocking UDP socket connected to a real server, for one flow.
pub(crate) fn connect_udp(real: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(
        Domain::for_address(real),
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    s.connect(&SockAddr::from(real))?;
    Ok(s.into())
}

/// A non-blocking TCP socket with `TCP_NODELAY` and a connection to `real`
/// under way (not yet established: wait for it to become writable).
pub(crate) fn start_connect(real: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(
        Domain::for_address(real),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    s.set_nodelay(true)?;
    match s.connect(&SockAddr::from(real)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(s)
}

/// An accept (or receive) error that means the process or system is out of
/// a resource: back off instead of spinning on a listener that stays
/// readable.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The process (EMFILE) or the system (ENFILE) is out of file
/// descriptors: say so, rather than blame a real server.
pub(crate) fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// An accept error about one connection only (it died before we took
/// it): accept the next.
pub(crate) fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::ECONNRESET
                | libc::EPROTO
                | libc::EPERM
                | libc::EINTR
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;

    #[test]
    fn two_workers_share_a_port_and_nodelay_is_inherited() {
        let a = bind_tcp("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_tcp(addr, 16).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        let c = std::net::TcpStream::connect(addr).unwrap();
        // it is in one of the two accept queues
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let accepted = loop {
            if let Ok((s, _)) = a.accept() {
                break s;
            }
            if let Ok((s, _)) = b.accept() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no connection accepted"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(SockRef::from(&accepted).nodelay().unwrap());
        drop(c);
    }

    #[test]
    fn freebind_binds_an_address_not_on_this_host() {
        // TEST-NET-3, never configured
        let r = bind_tcp("203.0.113.77:0".parse().unwrap(), 16);
        assert!(r.is_ok(), "{r:?}");
        let r = bind_udp("203.0.113.77:0".parse().unwrap());
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn classifies_errors() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENOBUFS
        )));
        assert!(is_per_connection(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
