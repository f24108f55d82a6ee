//! UDP virtual services: a flow table per listener (one per worker; the
//! kernel's `SO_REUSEPORT` hash keeps a client on one worker).
//!
//! The first datagram from a client address creates a flow: the scheduler
//! picks a real server and the flow gets its own socket connected to it.
//! Datagrams from the client go out through that socket; what the real
//! server sends back is relayed to the client from the listening socket,
//! so replies come from the virtual address. A flow with no datagram
//! either way for `udp_timeout` is forgotten (IPVS's UDP timeout), and so
//! are all flows of a removed service.

use crate::clock::{duration_ms, now_ms};
use crate::listener::{connect_udp, is_resource_exhaustion};
use crate::ratelimit::warn_limited;
use crate::registry::{instant_of_ms, ConnEntry, ConnState, Registered, Registry};
use crate::service::{Assignment, ServiceConn, ServiceShared};
use crate::stats::Metered;
use crate::worker::with_scratch;
use halb_table::Protocol;
use socket2::{SockAddr, SockRef};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

/// The shortest flow lifetime honoured (a 0 timeout would forget a flow
/// before its reply).
const MIN_TIMEOUT: Duration = Duration::from_millis(10);

pub(crate) struct UdpCtx {
    pub(crate) svc: Arc<ServiceShared>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) worker: usize,
}

struct Flow {
    client: SocketAddr,
    /// Connected to the real server.
    sock: UdpSocket,
    real: Option<Arc<Metered>>,
    reg: Registered,
}

struct Slot {
    flow: Arc<Flow>,
    task: AbortHandle,
}

#[derive(Default)]
struct FlowTable {
    flows: Mutex<HashMap<SocketAddr, Slot>>,
}

impl FlowTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        self.flows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Owned by the listener task: when it ends (service removed, data plane
/// stopped), every flow ends with it.
struct AbortFlows(Arc<FlowTable>);

impl Drop for AbortFlows {
    fn drop(&mut self) {
        let flows: Vec<Slot> = self.0.lock().drain().map(|(_, s)| s).collect();
        for s in flows {
            s.task.abort();
        }
    }
}

/// Receive from clients until the task is aborted.
pub(crate) async fn serve(sock: std::net::UdpSocket, ctx: UdpCtx) {
    let sock = match UdpSocket::from_std(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(service = %ctx.svc.key, error = %e, "cannot register UDP socket");
            return;
        }
    };
    let ctx = Arc::new(ctx);
    let table = Arc::new(FlowTable::default());
    let _abort = AbortFlows(table.clone());
    let mut buf = vec![0u8; 65536].into_boxed_slice();
    let w = ctx.worker;
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                warn_limited!(service = %ctx.svc.key, error = %e, "UDP receive failed");
                if is_resource_exhaustion(&e) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let existing = table.lock().get(&client).map(|s| s.flow.clone());
        let flow = match existing {
            Some(f) => f,
            None => match new_flow(client, &sock, &table, &ctx) {
                Some(f) => f,
                None => continue,
            },
        };
        let data = &buf[..n];
        let entry = flow.reg.entry();
        entry.touch(now_ms());
        // Straight to the socket, not through tokio's write readiness (a
        // new flow's socket has none yet): a UDP send does not wait.
        let out = SockRef::from(&flow.sock);
        let sent = match out.send(data) {
            // an ICMP error from an earlier datagram is reported once: retry
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => out.send(data),
            r => r,
        };
        match sent {
            Ok(_) => {
                entry.add_in(n as u64);
                ctx.svc.metered.shard(w).packet_in(n as u64);
                if let Some(r) = &flow.real {
                    r.shard(w).packet_in(n as u64);
                }
            }
            // full socket buffer: dropped, as the network would
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!(client = %client, error = %e, "UDP send to real server failed")
            }
        }
    }
}

fn new_flow(
    client: SocketAddr,
    listener: &Arc<UdpSocket>,
    table: &Arc<FlowTable>,
    ctx: &Arc<UdpCtx>,
) -> Option<Arc<Flow>> {
    let w = ctx.worker;
    let vaddr = ctx.svc.key.listen;
    let mut tried: Vec<SocketAddr> = Vec::new();
    loop {
        let Some((assignment, cfg)) = ctx.svc.schedule(client, vaddr, &tried, w) else {
            warn_limited!(service = %ctx.svc.key, client = %client, "no real server available, datagram dropped");
            return None;
        };
        let real = assignment.addr();
        let sock = match connect_udp(real).and_then(UdpSocket::from_std) {
            Ok(s) => s,
            Err(e) => {
                warn_limited!(service = %cfg.name, real = %real, error = %e, "cannot open a UDP flow to real server");
                tried.push(real);
                drop(assignment);
                if tried.len() >= cfg.connect_attempts.max(1) as usize {
                    return None;
                }
                continue;
            }
        };
        let timeout = cfg.udp_timeout.max(MIN_TIMEOUT);
        let reg = ctx.registry.register(
            w,
            ConnEntry::new(
                Protocol::Udp,
                client,
                vaddr,
                ConnState::Udp,
                duration_ms(timeout),
            ),
        );
        reg.entry().set_real(real);
        let flow = Arc::new(Flow {
            client,
            sock,
            real: assignment.real_metered(),
            reg,
        });
        let conn = ServiceConn::new(ctx.svc.clone(), w);
        let task = tokio::spawn(flow_task(
            flow.clone(),
            listener.clone(),
            table.clone(),
            ctx.clone(),
            timeout,
            assignment,
            conn,
        ));
        table.lock().insert(
            client,
            Slot {
                flow: flow.clone(),
                task: task.abort_handle(),
            },
        );
        return Some(flow);
    }
}

/// Takes the flow out of the table when its task ends.
struct RemoveOnDrop {
    table: Arc<FlowTable>,
    flow: Arc<Flow>,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let mut t = self.table.lock();
        if t.get(&self.flow.client)
            .is_some_and(|s| Arc::ptr_eq(&s.flow, &self.flow))
        {
            t.remove(&self.flow.client);
        }
    }
}

/// Relay replies to the client until the flow expires. Holds the flow's
/// place in the pool (`_assignment`) and the service counters (`_conn`).
async fn flow_task(
    flow: Arc<Flow>,
    listener: Arc<UdpSocket>,
    table: Arc<FlowTable>,
    ctx: Arc<UdpCtx>,
    timeout: Duration,
    _assignment: Assignment,
    _conn: ServiceConn,
) {
    let _remove = RemoveOnDrop {
        table: table.clone(),
        flow: flow.clone(),
    };
    let w = ctx.worker;
    let timeout_ms = duration_ms(timeout);
    let entry = flow.reg.entry();
    let client = SockAddr::from(flow.client);
    let sleep = tokio::time::sleep(timeout);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            r = flow.sock.readable() => {
                if let Err(e) = r {
                    tracing::debug!(client = %flow.client, error = %e, "UDP flow socket failed");
                    return;
                }
                loop {
                    let got = with_scratch(|buf| {
                        let n = flow.sock.try_recv(buf)?;
                        // a full socket buffer towards the client drops it
                        let _ = SockRef::from(&*listener).send_to(&buf[..n], &client);
                        Ok::<usize, io::Error>(n)
                    });
                    match got {
                        Ok(n) => {
                            entry.touch(now_ms());
                            entry.add_out(n as u64);
                            ctx.svc.metered.shard(w).packet_out(n as u64);
                            if let Some(r) = &flow.real {
                                r.shard(w).packet_out(n as u64);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // ICMP port unreachable and the like (reported once
                        // each): the real server is down; the flow lives on
                        // until it expires
                        Err(e) if matches!(
                            e.raw_os_error(),
                            Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH)
                        ) => {}
                        Err(e) => {
                            tracing::debug!(client = %flow.client, error = %e, "UDP flow socket failed");
                            return;
                        }
                    }
                }
            }
            () = &mut sleep => {
                let deadline = entry.last_ms().saturating_add(timeout_ms);
                if now_ms() >= deadline {
                    // Decide under the table lock so a datagram being
                    // forwarded right now is not lost with the flow.
                    let mut t = table.lock();
                    if now_ms() >= entry.last_ms().saturating_add(timeout_ms) {
                        if t.get(&flow.client).is_some_and(|s| Arc::ptr_eq(&s.flow, &flow)) {
                            t.remove(&flow.client);
                        }
                        return;
                    }
                }
                sleep.as_mut().reset(instant_of_ms(deadline).into());
            }
        }
    }
}
