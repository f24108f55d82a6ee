//! Registering TCP sockets with the worker's reactor: the one module with
//! `unsafe` code, one line of it.
//!
//! Why not `tokio::net::TcpStream`: the relay needs what `AsyncFd` reports
//! and `TcpStream` keeps to itself, the peer's FIN (`EPOLLRDHUP`) together
//! with readability. Knowing that a draining read was the last one saves
//! the read that would only return the end of stream, and lets the last
//! bytes leave with `MSG_MORE` so the FIN goes out in the same segment
//! (HAProxy does the same). On short connections that is one system call
//! and one or two packets fewer per connection.
//!
//! Why `unsafe`: since tokio 1.53.3 registering a raw descriptor is
//! `AsyncFd::register`, an `unsafe fn` (the safe `AsyncFd::new` is
//! deprecated as unsound), because tokio cannot check that the object keeps
//! that descriptor open and unchanged while registered. We register only
//! `socket2::Socket`s, which own their descriptor; see the SAFETY comment.
#![allow(unsafe_code)]

use socket2::Socket;
use std::io;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Register `sock` with the current worker's reactor.
pub(crate) fn register(sock: Socket, interest: Interest) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `AsyncFd::register_with_interest` needs the descriptor that
    // `sock.as_raw_fd()` returns to be open and to stay the same open file
    // description until the `AsyncFd` is dropped or unwrapped. A
    // `socket2::Socket` wraps an `OwnedFd`: it returns the same descriptor
    // on every call and closes it only when dropped, and the `AsyncFd` takes
    // ownership of the socket, so the socket (and its descriptor) lives
    // exactly as long as the registration. Nothing in this crate swaps the
    // socket out through `AsyncFd::get_mut` or closes the descriptor behind
    // its back (`shutdown(2)` and `setsockopt(2)` do not close it).
    let registered = unsafe { AsyncFd::register_with_interest(sock, interest) };
    registered.map_err(io::Error::from)
}

/// Register a connected (or connecting) socket for reading and writing.
pub(crate) fn register_stream(sock: Socket) -> io::Result<AsyncFd<Socket>> {
    register(sock, Interest::READABLE | Interest::WRITABLE)
}
