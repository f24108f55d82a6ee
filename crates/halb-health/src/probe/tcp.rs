//! TCP connect: up when the three-way handshake completes.

use crate::engine::ProbeOutcome;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Connects to `target` and closes at once, with a reset (`SO_LINGER` 0,
/// as HAProxy's checks do): a check every second to each of 10,000 real
/// servers would otherwise keep 600,000 sockets in TIME_WAIT on the
/// director, and connect(2) slows down searching among them. No timeout
/// of its own: the caller ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => {
            // Best effort: a normal close is still a correct probe.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            ProbeOutcome::up(format!("connected to {target}"))
        }
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}
