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
//!
//! Flows are capped, per service (`udp_max_flows`, over all its workers)
//! and for the whole data plane ([`GlobalFlows`], a share of the
//! descriptor limit), since each holds a socket. A new client at a cap
//! evicts the flow idle the longest: of its own service, and of another
//! service only when its own has none (a flood against one service churns
//! that service's flows, not the others'). Each table keeps its flows in
//! an LRU index keyed by the last activity seen when the entry was made;
//! an entry whose flow has been active since is moved back when it comes
//! up (amortized, so forwarding a datagram costs no index update).
//!
//! One socket per flow: a flow's replies are told apart by the address
//! and port the real server answers, so a socket connected to a real
//! server can carry one client's flow only (see ARCHITECTURE.md).

use crate::clock::{duration_ms, now_ms};
use crate::listener::{connect_udp, is_out_of_descriptors};
use crate::ratelimit::warn_limited;
use crate::registry::{instant_of_ms, ConnEntry, ConnState, Registered, Registry};
use crate::service::{Assignment, ServiceConn, ServiceShared};
use crate::stats::Metered;
use crate::worker::with_scratch;
use halb_table::Protocol;
use socket2::{SockAddr, SockRef};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicU64, AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

/// The shortest flow lifetime honoured (a 0 timeout would forget a flow
/// before its reply).
const MIN_TIMEOUT: Duration = Duration::from_millis(10);

/// Evictions one new flow may cause before it is refused (a lowered cap
/// is enforced at once by the apply; this only bounds races).
const EVICT_TRIES: usize = 4;

pub(crate) struct UdpCtx {
    pub(crate) svc: Arc<ServiceShared>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) global: Arc<GlobalFlows>,
    pub(crate) worker: usize,
}

/// Flow tables and a flow count, with their cap.
pub(crate) struct FlowSet {
    /// Flows whose socket is open (in the tables, being created, or
    /// evicted and not yet dropped by their task): what the cap bounds,
    /// so that it bounds the descriptors.
    count: AtomicUsize,
    /// Of `count`, flows evicted whose socket is not closed yet.
    closing: AtomicUsize,
    max: AtomicUsize,
    tables: Mutex<Vec<Weak<FlowTable>>>,
}

impl FlowSet {
    pub(crate) fn new(max: usize) -> Self {
        FlowSet {
            count: AtomicUsize::new(0),
            closing: AtomicUsize::new(0),
            max: AtomicUsize::new(max.max(1)),
            tables: Mutex::new(Vec::new()),
        }
    }

    /// Flows in the tables (evicted ones whose socket is still closing
    /// are not counted).
    pub(crate) fn count(&self) -> usize {
        self.count
            .load(SeqCst)
            .saturating_sub(self.closing.load(SeqCst))
    }

    fn over(&self) -> bool {
        self.count() > self.max.load(SeqCst)
    }

    /// So many evicted flows wait for their sockets to close (a flood)
    /// that a new flow must wait too: the descriptors stay within the cap
    /// plus an eighth (at least 16).
    fn choked(&self) -> bool {
        let max = self.max.load(SeqCst);
        self.closing.load(SeqCst) > (max / 8).max(16)
    }

    fn add(&self, table: &Arc<FlowTable>) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|w| w.strong_count() > 0);
        t.push(Arc::downgrade(table));
    }

    fn live(&self) -> Vec<Arc<FlowTable>> {
        let t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().filter_map(Weak::upgrade).collect()
    }

    /// Evict the flow idle the longest among these tables. False: none.
    fn evict_oldest(&self) -> bool {
        let oldest = self
            .live()
            .into_iter()
            .filter_map(|t| t.oldest().map(|k| (k, t)))
            .min_by_key(|(k, _)| *k);
        match oldest {
            Some((_, t)) => t.evict_oldest(),
            None => false,
        }
    }

    /// A new cap: flows over it are evicted now, oldest idle first.
    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max.max(1), SeqCst);
        while self.over() {
            if !self.evict_oldest() {
                break;
            }
        }
    }
}

/// The UDP flows of the whole data plane.
pub(crate) type GlobalFlows = FlowSet;

/// The UDP flows of one service, and their evictions.
pub(crate) struct ServiceFlows {
    pub(crate) set: FlowSet,
    pub(crate) evicted: AtomicU64,
}

impl ServiceFlows {
    pub(crate) fn new(max: u32) -> Self {
        ServiceFlows {
            set: FlowSet::new(usize::try_from(max).unwrap_or(usize::MAX)),
            evicted: AtomicU64::new(0),
        }
    }
}

struct Flow {
    client: SocketAddr,
    /// Connected to the real server.
    sock: UdpSocket,
    real: Option<Arc<Metered>>,
    reg: Registered,
    /// Its place under the caps, given back when the socket closes.
    place: Place,
}

/// A flow's place under its service's and the plane's caps: reserved by
/// [`admit`], given back when the flow (and its socket) is dropped, not
/// when it leaves the table — an evicted flow's socket closes only when
/// the runtime drops its aborted task, and the caps bound descriptors.
struct Place {
    svc: Arc<ServiceShared>,
    global: Arc<GlobalFlows>,
    evicted: std::sync::atomic::AtomicBool,
}

impl Place {
    fn evict(&self) {
        if !self.evicted.swap(true, SeqCst) {
            self.svc.udp.set.closing.fetch_add(1, SeqCst);
            self.global.closing.fetch_add(1, SeqCst);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.evicted.load(SeqCst) {
            self.svc.udp.set.closing.fetch_sub(1, SeqCst);
            self.global.closing.fetch_sub(1, SeqCst);
        }
        self.svc.udp.set.count.fetch_sub(1, SeqCst);
        self.global.count.fetch_sub(1, SeqCst);
    }
}

struct Slot {
    flow: Arc<Flow>,
    task: AbortHandle,
    /// Its key in the LRU index.
    key: (u64, u64),
}

#[derive(Default)]
struct Inner {
    flows: HashMap<SocketAddr, Slot>,
    /// (last activity when indexed, id) -> client; every slot has exactly
    /// its `key` here.
    lru: BTreeMap<(u64, u64), SocketAddr>,
}

impl Inner {
    fn take(&mut self, client: &SocketAddr) -> Option<Slot> {
        let slot = self.flows.remove(client)?;
        self.lru.remove(&slot.key);
        Some(slot)
    }

    /// The key of the flow idle the longest, moving back the entries of
    /// flows active since they were indexed.
    fn oldest(&mut self) -> Option<(u64, u64)> {
        loop {
            let (&key, &client) = self.lru.first_key_value()?;
            let Some(slot) = self.flows.get_mut(&client) else {
                // cannot happen (the index follows the map); heal it
                self.lru.remove(&key);
                continue;
            };
            let last = slot.flow.reg.entry().last_ms();
            if last <= key.0 {
                return Some(key);
            }
            self.lru.remove(&key);
            slot.key = (last, key.1);
            self.lru.insert(slot.key, client);
        }
    }
}

/// The flows of one listener (one service on one worker).
struct FlowTable {
    inner: Mutex<Inner>,
    svc: Arc<ServiceShared>,
    global: Arc<GlobalFlows>,
}

impl FlowTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn released(&self, n: usize) {
        if n > 0 {
            self.svc.udp.set.count.fetch_sub(n, SeqCst);
            self.global.count.fetch_sub(n, SeqCst);
        }
    }

    fn get(&self, client: &SocketAddr) -> Option<Arc<Flow>> {
        self.lock().flows.get(client).map(|s| s.flow.clone())
    }

    /// Insert a flow whose place was reserved ([`admit`]).
    fn insert(&self, flow: Arc<Flow>, task: AbortHandle) {
        // One sequence for every table, so that flows of one millisecond
        // compare in the order they came across workers too.
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let mut t = self.lock();
        let key = (flow.reg.entry().last_ms(), id);
        let client = flow.client;
        t.lru.insert(key, client);
        let old = t.flows.insert(client, Slot { flow, task, key });
        if let Some(old) = &old {
            // cannot happen (one listener task creates flows); keep counts right
            t.lru.remove(&old.key);
        }
        drop(t);
        if let Some(old) = old {
            old.flow.place.evict();
            old.task.abort();
        }
    }

    /// Take `flow` out if it is still the client's.
    fn remove(&self, flow: &Arc<Flow>) {
        let mut t = self.lock();
        let mine = t
            .flows
            .get(&flow.client)
            .is_some_and(|s| Arc::ptr_eq(&s.flow, flow));
        if mine {
            t.take(&flow.client);
        }
    }

    /// Take `flow` out if it has been idle for `timeout_ms` (decided under
    /// the lock, so a datagram being forwarded right now is not lost with
    /// it). True: the flow is over.
    fn expire(&self, flow: &Arc<Flow>, timeout_ms: u64) -> bool {
        let mut t = self.lock();
        if now_ms() < flow.reg.entry().last_ms().saturating_add(timeout_ms) {
            return false;
        }
        let mine = t
            .flows
            .get(&flow.client)
            .is_some_and(|s| Arc::ptr_eq(&s.flow, flow));
        if mine {
            t.take(&flow.client);
        }
        true
    }

    fn oldest(&self) -> Option<(u64, u64)> {
        self.lock().oldest()
    }

    /// Evict this table's flow idle the longest: out of the table now, its
    /// task aborted (its socket closes as the task is dropped).
    fn evict_oldest(&self) -> bool {
        let slot = {
            let mut t = self.lock();
            let Some(key) = t.oldest() else {
                return false;
            };
            let Some(client) = t.lru.get(&key).copied() else {
                return false;
            };
            t.take(&client)
        };
        let Some(slot) = slot else { return false };
        slot.flow.place.evict();
        slot.task.abort();
        self.svc.udp.evicted.fetch_add(1, SeqCst);
        tracing::debug!(service = %self.svc.key, client = %slot.flow.client, "UDP flow evicted (udp_max_flows)");
        warn_limited!(
            service = %self.svc.key,
            "UDP flows at their cap (udp_max_flows): the flows idle the longest are evicted for new clients"
        );
        true
    }

    /// Every flow out (the listener ended).
    fn clear(&self) {
        let slots: Vec<Slot> = {
            let mut t = self.lock();
            t.lru.clear();
            t.flows.drain().map(|(_, s)| s).collect()
        };
        for s in &slots {
            s.task.abort();
        }
    }
}

/// Reserve a place for one more flow of `ctx`'s service, evicting the
/// flows idle the longest at a cap. False: no place (the datagram is
/// dropped).
fn admit(ctx: &UdpCtx) -> bool {
    let svc = &ctx.svc.udp.set;
    let global = &*ctx.global;
    svc.count.fetch_add(1, SeqCst);
    global.count.fetch_add(1, SeqCst);
    for _ in 0..EVICT_TRIES {
        let svc_over = svc.over();
        let global_over = global.over();
        if !svc_over && !global_over {
            return true;
        }
        // A flood: the sockets of evicted flows are not closed yet, and
        // evicting more would only open more: the datagram is dropped.
        if svc.choked() || global.choked() {
            break;
        }
        // the service's own flows first, whichever cap it is
        let evicted = svc.evict_oldest() || (global_over && global.evict_oldest());
        if !evicted {
            break;
        }
    }
    if !svc.over() && !global.over() {
        return true;
    }
    if svc.choked() || global.choked() {
        warn_limited!(
            service = %ctx.svc.key,
            "UDP flood: udp_max_flows reached and {} evicted flows still closing; new flows wait (datagram dropped)",
            global.closing.load(SeqCst)
        );
    }
    svc.count.fetch_sub(1, SeqCst);
    global.count.fetch_sub(1, SeqCst);
    false
}

/// Owned by the listener task: when it ends (service removed, data plane
/// stopped), every flow ends with it.
struct AbortFlows(Arc<FlowTable>);

impl Drop for AbortFlows {
    fn drop(&mut self) {
        self.0.clear();
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
    let table = Arc::new(FlowTable {
        inner: Mutex::new(Inner::default()),
        svc: ctx.svc.clone(),
        global: ctx.global.clone(),
    });
    ctx.svc.udp.set.add(&table);
    ctx.global.add(&table);
    let _abort = AbortFlows(table.clone());
    let mut buf = vec![0u8; 65536].into_boxed_slice();
    let w = ctx.worker;
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                warn_limited!(service = %ctx.svc.key, error = %e, "UDP receive failed");
                if crate::listener::is_resource_exhaustion(&e) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let existing = table.get(&client);
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
    if !admit(ctx) {
        warn_limited!(service = %ctx.svc.key, client = %client, "UDP flow table full (udp_max_flows) and no flow to evict, datagram dropped");
        return None;
    }
    let flow = open_flow(client, listener, table, ctx);
    if flow.is_none() {
        // the place reserved by admit
        table.released(1);
    }
    flow
}

fn open_flow(
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
            Err(e) if is_out_of_descriptors(&e) => {
                // not the real server's fault: no other one is tried
                warn_limited!(
                    service = %cfg.name, client = %client, error = %e,
                    "out of file descriptors: cannot open a UDP flow, datagram dropped"
                );
                return None;
            }
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
            place: Place {
                svc: ctx.svc.clone(),
                global: ctx.global.clone(),
                evicted: std::sync::atomic::AtomicBool::new(false),
            },
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
        table.insert(flow.clone(), task.abort_handle());
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
        self.table.remove(&self.flow);
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
                if now_ms() >= deadline && table.expire(&flow, timeout_ms) {
                    return;
                }
                sleep.as_mut().reset(instant_of_ms(deadline).into());
            }
        }
    }
}
