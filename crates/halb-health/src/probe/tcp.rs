//! TCP connect: up when the three-way handshake completes.

use crate::engine::ProbeOutcome;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Connects to `target` and closes at once. No timeout of its own: the
/// caller ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(_) => ProbeOutcome::up(format!("connected to {target}")),
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}
