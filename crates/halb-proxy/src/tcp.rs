//! TCP virtual services: accepting, choosing and connecting to a real
//! server (skipping the ones that do not answer), the PROXY header, and
//! the accounting around the relay.

use crate::clock::{duration_ms, ms_of};
use crate::listener::{
    is_out_of_descriptors, is_per_connection, is_resource_exhaustion, start_connect,
};
use crate::proxy_protocol;
use crate::ratelimit::warn_limited;
use crate::registry::{ConnEntry, ConnState, Registry};
use crate::relay::{self, End, Observer, Pending, Sock, SpliceMode};
use crate::service::{Assignment, ServiceConn, ServiceShared};
use crate::sock;
use crate::stats::Shard;
use crate::worker;
use halb_table::Protocol;
use socket2::Socket;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;

/// What every connection of one listener (one service on one worker)
/// shares.
pub(crate) struct TcpCtx {
    pub(crate) svc: Arc<ServiceShared>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) worker: usize,
    pub(crate) splice: SpliceMode,
    /// Turns true when the data plane resets what is left (end of a drain).
    pub(crate) cut: tokio::sync::watch::Receiver<bool>,
    /// Most connections and flows open at once (the descriptor budget).
    pub(crate) budget: Arc<std::sync::atomic::AtomicUsize>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepted in a row before the new connections get to run.
const ACCEPT_BURST: usize = 64;

/// Accept connections until the task is aborted (service removed).
pub(crate) async fn accept_loop(listener: std::net::TcpListener, ctx: TcpCtx) {
    let listener = match sock::register(Socket::from(listener), Interest::READABLE) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(service = %ctx.svc.key, error = %e, "cannot register listener");
            return;
        }
    };
    let ctx = Arc::new(ctx);
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut pause = None;
        let mut burst = 0;
        match listener.readable().await {
            Ok(mut g) => {
                while burst < ACCEPT_BURST {
                    // The descriptor budget: what is left is the reserve
                    // of the control socket, VRRP and the health checks.
                    let open = ctx.registry.len();
                    let most = ctx.budget.load(std::sync::atomic::Ordering::Relaxed);
                    if open >= most {
                        warn_limited!(
                            service = %ctx.svc.key, open, most,
                            "descriptor budget reached: not accepting until connections end (the rest is the control socket's, VRRP's and the health checks' reserve)"
                        );
                        pause = Some(BACKOFF_MIN);
                        break;
                    }
                    let accepted = g.try_io(|l| {
                        l.get_ref()
                            .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                    });
                    match accepted {
                        Ok(Ok((sock, addr))) => {
                            burst += 1;
                            backoff = BACKOFF_MIN;
                            if let Some(peer) = addr.as_socket() {
                                tokio::spawn(connection(sock, peer, ctx.clone()));
                            }
                        }
                        Ok(Err(e)) if is_per_connection(&e) => {}
                        Ok(Err(e)) if is_resource_exhaustion(&e) => {
                            warn_limited!(
                                service = %ctx.svc.key, error = %e,
                                "accept failed, out of resources; pausing accepts for {backoff:?}"
                            );
                            pause = Some(backoff);
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            break;
                        }
                        Ok(Err(e)) => {
                            warn_limited!(service = %ctx.svc.key, error = %e, "accept failed");
                            pause = Some(BACKOFF_MIN);
                            break;
                        }
                        // drained (readiness cleared)
                        Err(_would_block) => break,
                    }
                }
            }
            Err(e) => {
                warn_limited!(service = %ctx.svc.key, error = %e, "listener failed");
                pause = Some(BACKOFF_MIN);
            }
        }
        if let Some(d) = pause {
            tokio::time::sleep(d).await;
        } else if burst >= ACCEPT_BURST {
            // more are waiting (readiness kept): let these run first
            tokio::task::yield_now().await;
        }
    }
}

/// Wait until the connection under way on `stream` is established, within
/// `timeout` (0: the system's own limit).
async fn established(stream: &Sock, timeout: Duration) -> io::Result<()> {
    let wait = async {
        // Writable without an error or hang-up: established. Only a failed
        // attempt costs the getsockopt(SO_ERROR) that says why.
        let g = stream.writable().await?;
        if g.ready().is_write_closed() {
            return Err(stream.get_ref().take_error()?.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::ConnectionRefused, "connection failed")
            }));
        }
        Ok(())
    };
    if timeout.is_zero() {
        return wait.await;
    }
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        )),
    }
}

/// Who failed while connecting.
enum ConnectError {
    /// The real server (refused, timed out), or this host (out of
    /// descriptors).
    Real(io::Error),
    /// The client: its reset, read with its first bytes and reported only
    /// once, is passed on as a reset.
    Client(io::Error),
}

/// Connect to `real`. With `read_first`, first take what that client has
/// already sent into `first`; if there is something, send it at once: on a
/// nearby real server the handshake is usually done by the time connect(2)
/// returns, and a successful send proves the connection established
/// without waiting for epoll to say so (as HAProxy does). What went out is
/// consumed from `first`.
async fn connect(
    real: SocketAddr,
    timeout: Duration,
    read_first: Option<&Sock>,
    first: &mut Option<Pending>,
) -> Result<Sock, ConnectError> {
    let stream = sock::register_stream(start_connect(real).map_err(ConnectError::Real)?)
        .map_err(ConnectError::Real)?;
    if let Some(client) = read_first {
        if first.is_none() {
            match first_bytes(client) {
                Ok(p) => *first = p,
                Err(e) => {
                    relay::abort(&stream);
                    return Err(ConnectError::Client(e));
                }
            }
        }
    }
    if let Some(p) = first.as_mut() {
        match relay::send_now(&stream, &p.buf[p.start..p.end]) {
            Ok(n) => {
                p.start += n;
                return Ok(stream);
            }
            // still connecting
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOTCONN) => {}
            Err(e) => return Err(ConnectError::Real(e)),
        }
    }
    established(&stream, timeout)
        .await
        .map_err(ConnectError::Real)?;
    Ok(stream)
}

/// The client's first bytes if they are already there (they usually are:
/// a client sends its request as soon as its connect returns). An error
/// (a reset) is returned: a later read would not see it again.
fn first_bytes(client: &Sock) -> io::Result<Option<Pending>> {
    let mut buf = worker::take_buffer();
    match relay::recv_now(client, &mut buf) {
        Ok(n) if n > 0 => Ok(Some(Pending {
            buf,
            start: 0,
            end: n,
        })),
        // nothing yet, or end of stream: the relay will see it
        Ok(_) => {
            worker::put_buffer(buf);
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            worker::put_buffer(buf);
            Ok(None)
        }
        Err(e) => {
            worker::put_buffer(buf);
            Err(e)
        }
    }
}

/// Accounting while the relay runs.
struct Accounting<'a> {
    entry: &'a ConnEntry,
    svc: &'a Shard,
    real: Option<&'a Shard>,
    assignment: &'a mut Assignment,
    conn: &'a mut ServiceConn,
}

impl Observer for Accounting<'_> {
    #[inline]
    fn transferred(&mut self, up: u64, down: u64, now: Instant) {
        self.entry.add_in(up);
        self.entry.add_out(down);
        self.entry.touch(ms_of(now));
        self.svc.bytes_in(up);
        self.svc.bytes_out(down);
        if let Some(r) = self.real {
            r.bytes_in(up);
            r.bytes_out(down);
        }
    }

    fn half_closed(&mut self) {
        self.entry.set_state(ConnState::FinWait);
        self.assignment.set_active(false);
        self.conn.set_active(false);
    }
}

/// One client connection, from accept to close.
async fn connection(client: Socket, peer: SocketAddr, ctx: Arc<TcpCtx>) {
    let listen = ctx.svc.key.listen;
    let vaddr = if listen.ip().is_unspecified() {
        client
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(listen)
    } else {
        listen
    };
    let client = match sock::register_stream(client) {
        Ok(c) => c,
        Err(e) => {
            warn_limited!(service = %ctx.svc.key, error = %e, "cannot register a connection");
            return;
        }
    };
    // Shutdown: at the end of the drain, what is still open is reset, so
    // that the client knows its transfer is incomplete.
    let mut cut = ctx.cut.clone();
    tokio::select! {
        biased;
        () = serve(&client, peer, vaddr, &ctx) => {}
        _ = cut.wait_for(|cut| *cut) => relay::abort(&client),
    }
}

/// A registered client connection: schedule, connect, relay.
async fn serve(client: &Sock, peer: SocketAddr, vaddr: SocketAddr, ctx: &TcpCtx) {
    let w = ctx.worker;
    let mut conn = ServiceConn::new(ctx.svc.clone(), w);
    let Some((mut assignment, cfg)) = ctx.svc.schedule(peer, vaddr, &[], w) else {
        warn_limited!(service = %ctx.svc.key, client = %peer, "no real server available, connection reset");
        relay::abort(client);
        return;
    };
    let idle = (!cfg.idle_timeout.is_zero()).then_some(cfg.idle_timeout);
    let reg = ctx.registry.register(
        w,
        ConnEntry::new(
            Protocol::Tcp,
            peer,
            vaddr,
            ConnState::Connecting,
            duration_ms(cfg.idle_timeout),
        ),
    );
    let entry = reg.entry();

    // Connect, trying the next real server when one does not answer. The
    // PROXY header must go first, so no early client bytes then.
    let attempts = cfg.connect_attempts.max(1);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut first = None;
    let server = loop {
        let real = assignment.addr();
        entry.set_real(real);
        let read_first = (tried.is_empty() && cfg.proxy_protocol.is_none()).then_some(client);
        match connect(real, cfg.connect_timeout, read_first, &mut first).await {
            Ok(s) => {
                if !assignment.is_fallback() {
                    ctx.svc.connect_succeeded(real);
                }
                break s;
            }
            Err(ConnectError::Client(e)) => {
                tracing::debug!(client = %peer, error = %e, "client failed before its real server answered");
                relay::abort(client);
                return;
            }
            Err(ConnectError::Real(e)) if is_out_of_descriptors(&e) => {
                // not the real server's fault: no other one is tried
                warn_limited!(
                    service = %cfg.name, client = %peer, error = %e,
                    "out of file descriptors: cannot connect to a real server, connection reset"
                );
                relay::abort(client);
                return;
            }
            Err(ConnectError::Real(e)) => {
                if !assignment.is_fallback() {
                    ctx.svc.connect_failed(real, Instant::now());
                }
                warn_limited!(
                    service = %cfg.name, real = %real, client = %peer, error = %e,
                    "cannot connect to real server, trying another"
                );
                tried.push(real);
                // closes the failed attempt in the pool
                drop(assignment);
                // Given up: the client is reset, as the real server's
                // refusal would have reset it without the proxy.
                if tried.len() >= attempts as usize {
                    relay::abort(client);
                    return;
                }
                match ctx.svc.schedule(peer, vaddr, &tried, w) {
                    Some((a, _)) => assignment = a,
                    None => {
                        relay::abort(client);
                        return;
                    }
                }
            }
        }
    };
    assignment.set_active(true);
    conn.set_active(true);
    entry.set_state(ConnState::Established);

    if let Some(version) = cfg.proxy_protocol {
        let header = proxy_protocol::header(version, peer, vaddr);
        if let Err(e) = relay::write_all(&server, &header).await {
            tracing::debug!(real = %assignment.addr(), error = %e, "sending the PROXY header failed");
            relay::abort(client);
            relay::abort(&server);
            return;
        }
    }

    let real = assignment.real_metered();
    let mut acc = Accounting {
        entry,
        svc: ctx.svc.metered.shard(w),
        real: real.as_deref().map(|m| m.shard(w)),
        assignment: &mut assignment,
        conn: &mut conn,
    };
    if let Some(p) = &first {
        if p.start > 0 {
            acc.transferred(p.start as u64, 0, Instant::now());
        }
    }
    let end = relay::relay(client, &server, ctx.splice, idle, first, &mut acc).await;
    match end {
        End::Closed => {}
        End::Idle => {
            tracing::debug!(client = %peer, real = %acc.assignment.addr(), "idle timeout")
        }
        End::Error(e) => {
            tracing::debug!(client = %peer, real = %acc.assignment.addr(), error = %e, "connection aborted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use halb_table::{SchedulerKind, VirtualService};

    /// An idle connection's memory is mostly this future (plus tokio's two
    /// I/O registrations and the table entry): keep an eye on it.
    #[tokio::test]
    async fn connection_future_stays_small() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = Socket::from(std::net::TcpStream::connect(addr).unwrap());
        let svc = VirtualService::new("x", addr, Protocol::Tcp, SchedulerKind::Rr);
        let ctx = Arc::new(TcpCtx {
            svc: Arc::new(ServiceShared::new(&svc, 1)),
            registry: Arc::new(Registry::new(1)),
            worker: 0,
            splice: SpliceMode::Auto,
            cut: tokio::sync::watch::channel(false).1,
            budget: Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
        });
        let f = connection(c, addr, ctx);
        let size = std::mem::size_of_val(&f);
        assert!(size <= 1536, "connection future is {size} bytes");
    }
}
