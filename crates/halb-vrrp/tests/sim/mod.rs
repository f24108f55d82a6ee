//! A deterministic, virtual-time LAN of VRRP routers.
//!
//! Every advert goes through the real codec (encode with the sender's
//! primary address as source and the VRRP group as destination, decode
//! against the receiver's [`Router::expected`]). Time only moves when the
//! next event (a packet arrival or a router deadline) is due, so ten
//! virtual minutes take milliseconds. Loss and jitter come from a seeded
//! splitmix64 generator: a seed reproduces a run exactly.
//!
//! Routers whose configs have [`Config::extra_paths`] are joined by that
//! many more links besides the LAN (path 0): each advert goes out on every
//! path, from the sender's address there, and a path can be cut, in one
//! direction or both, or made lossy on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use halb_vrrp::packet::{self, IpHeader, MULTICAST_V4, MULTICAST_V6, TTL};
use halb_vrrp::{Action, Config, PathState, Reason, Router, State};

/// splitmix64: small, seeded, good enough for loss decisions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..=max`.
    pub fn duration(&mut self, max: Duration) -> Duration {
        let n = max.as_nanos() as u64;
        if n == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.next_u64() % (n + 1))
        }
    }
}

pub struct Node {
    pub config: Config,
    pub router: Router,
    /// The process runs (a dead node neither sends, receives nor fires).
    pub alive: bool,
    /// Last time this node accepted an advert.
    pub last_heard: Option<Instant>,
    /// Virtual addresses configured.
    pub holds_addresses: bool,
    /// Gratuitous ARP bursts sent.
    pub garps: u32,
}

struct InFlight {
    from: usize,
    to: usize,
    path: usize,
    bytes: Vec<u8>,
}

/// Two or more masters at once.
#[derive(Debug, Clone)]
pub struct Episode {
    pub start: Instant,
    pub end: Instant,
    /// Adverts lost between two nodes that were both master.
    pub lost_between_masters: u32,
}

pub struct Net {
    pub t0: Instant,
    pub now: Instant,
    pub nodes: Vec<Node>,
    in_flight: BTreeMap<(Instant, u64), InFlight>,
    seq: u64,
    rng: Rng,
    pub loss: f64,
    pub delay: Duration,
    pub jitter: Duration,
    segment: Vec<u32>,
    pub lost: u64,
    /// Every lost advert: when it was sent, from, to.
    pub losses: Vec<(Instant, usize, usize)>,
    pub rejected: u64,
    pub history: Vec<(Instant, usize, State, State, Reason)>,
    pub episodes: Vec<Episode>,
    current: Option<Episode>,
    /// Paths between the nodes (1: the LAN only).
    pub paths: usize,
    /// (path, from, to): adverts from `from` never reach `to` over it.
    cut: BTreeSet<(usize, usize, usize)>,
    /// (path, from, to): loss over it instead of [`Net::loss`].
    pub path_loss: BTreeMap<(usize, usize, usize), f64>,
    /// Every path change: when, node, path, from, to.
    pub path_history: Vec<(Instant, usize, usize, PathState, PathState)>,
}

impl Net {
    pub fn new(configs: Vec<Config>, seed: u64) -> Net {
        let t0 = Instant::now();
        let nodes: Vec<Node> = configs
            .into_iter()
            .map(|c| Node {
                router: Router::new(c.clone()).unwrap(),
                config: c,
                alive: true,
                last_heard: None,
                holds_addresses: false,
                garps: 0,
            })
            .collect();
        let n = nodes.len();
        let paths = 1 + nodes.first().map_or(0, |n| n.config.extra_paths.len());
        Net {
            paths,
            cut: BTreeSet::new(),
            path_loss: BTreeMap::new(),
            path_history: Vec::new(),
            t0,
            now: t0,
            nodes,
            in_flight: BTreeMap::new(),
            seq: 0,
            rng: Rng::new(seed),
            loss: 0.0,
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            segment: vec![0; n],
            lost: 0,
            losses: Vec::new(),
            rejected: 0,
            history: Vec::new(),
            episodes: Vec::new(),
            current: None,
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.nodes[i].router.start(self.now);
            self.flush(i);
        }
        self.observe();
    }

    /// The node stops dead (SIGKILL and link down): no more packets.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        self.observe();
    }

    /// A fresh process on node `i`, started now.
    pub fn restart(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.router = Router::new(n.config.clone()).unwrap();
        n.alive = true;
        n.holds_addresses = false;
        n.router.start(self.now);
        self.flush(i);
        self.observe();
    }

    pub fn shutdown(&mut self, i: usize) {
        self.nodes[i].router.shutdown(self.now);
        self.flush(i);
        self.observe();
    }

    pub fn set_priority_delta(&mut self, i: usize, delta: i32) {
        self.nodes[i].router.set_priority_delta(delta);
    }

    pub fn link_down(&mut self, i: usize) {
        self.nodes[i].router.link_down(self.now);
        self.flush(i);
        self.observe();
    }

    pub fn link_up(&mut self, i: usize) {
        self.nodes[i].router.link_up(self.now);
        self.flush(i);
        self.observe();
    }

    /// Nodes hear each other only within a segment.
    pub fn partition(&mut self, segments: &[&[usize]]) {
        for (s, nodes) in segments.iter().enumerate() {
            for &i in nodes.iter() {
                self.segment[i] = s as u32;
            }
        }
    }

    pub fn heal(&mut self) {
        self.segment.iter_mut().for_each(|s| *s = 0);
    }

    /// Path `path` carries nothing between any two nodes.
    pub fn cut_path(&mut self, path: usize) {
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if a != b {
                    self.cut.insert((path, a, b));
                }
            }
        }
    }

    /// Path `path` no longer carries adverts from `from` to `to` (the
    /// other direction still works).
    pub fn cut_one_way(&mut self, path: usize, from: usize, to: usize) {
        self.cut.insert((path, from, to));
    }

    /// Every path works again.
    pub fn heal_paths(&mut self) {
        self.cut.clear();
    }

    /// Node `i`'s view of its paths.
    pub fn path_states(&self, i: usize) -> Vec<PathState> {
        self.nodes[i].router.paths().map(|(s, _)| s).collect()
    }

    /// Path changes of node `i` from `after` on: (when, path, to).
    pub fn path_changes(&self, i: usize, after: Instant) -> Vec<(Instant, usize, PathState)> {
        self.path_history
            .iter()
            .filter(|(t, n, ..)| *n == i && *t >= after)
            .map(|(t, _, p, _, to)| (*t, *p, *to))
            .collect()
    }

    /// Node `i`'s address on path `path`.
    pub fn address(&self, i: usize, path: usize) -> IpAddr {
        let c = &self.nodes[i].config;
        match path {
            0 => c.primary_address,
            p => c.extra_paths[p - 1],
        }
    }

    /// Alive masters.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].router.state() == State::Master)
            .collect()
    }

    /// Times node `i` became master, from `after` on.
    pub fn became_master(&self, i: usize, after: Instant) -> Vec<Instant> {
        self.history
            .iter()
            .filter(|(t, n, _, to, _)| *n == i && *to == State::Master && *t >= after)
            .map(|(t, ..)| *t)
            .collect()
    }

    /// Times node `i` left master, from `after` on.
    pub fn left_master(&self, i: usize, after: Instant) -> Vec<Instant> {
        self.history
            .iter()
            .filter(|(t, n, from, _, _)| *n == i && *from == State::Master && *t >= after)
            .map(|(t, ..)| *t)
            .collect()
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    pub fn run_until(&mut self, until: Instant) {
        loop {
            let pkt = self.in_flight.keys().next().map(|k| k.0);
            let timer = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].alive)
                .filter_map(|i| self.nodes[i].router.poll_timeout().map(|t| (t, i)))
                .min();
            let next = match (pkt, timer) {
                (Some(p), Some((t, _))) => p.min(t),
                (Some(p), None) => p,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if pkt == Some(next) {
                let Some((_, p)) = self.in_flight.pop_first() else {
                    break;
                };
                self.deliver(p);
            } else if let Some((_, i)) = timer {
                self.nodes[i].router.handle_timeout(self.now);
                self.flush(i);
            }
            self.observe();
        }
        self.now = until;
    }

    fn group(&self, i: usize) -> IpAddr {
        if self.nodes[i].config.primary_address.is_ipv6() {
            IpAddr::V6(MULTICAST_V6)
        } else {
            IpAddr::V4(MULTICAST_V4)
        }
    }

    fn deliver(&mut self, p: InFlight) {
        if !self.nodes[p.to].alive || self.segment[p.from] != self.segment[p.to] {
            return;
        }
        if self.cut.contains(&(p.path, p.from, p.to)) {
            return;
        }
        let h = IpHeader {
            src: self.address(p.from, p.path),
            dst: self.group(p.from),
            ttl: TTL,
        };
        let expected = self.nodes[p.to].router.expected();
        match packet::decode(&p.bytes, &h, &expected) {
            Ok(a) => {
                self.nodes[p.to].last_heard = Some(self.now);
                if p.path == 0 {
                    self.nodes[p.to].router.handle_advert(h.src, &a, self.now);
                } else {
                    self.nodes[p.to]
                        .router
                        .handle_advert_on(p.path, h.src, &a, self.now);
                }
                self.flush(p.to);
            }
            Err(_) => self.rejected += 1,
        }
    }

    fn flush(&mut self, i: usize) {
        // Open a dual-master episode before the new master's first advert.
        self.observe();
        while let Some(a) = self.nodes[i].router.poll_action() {
            match a {
                Action::SendAdvert(ad) => {
                    if !self.nodes[i].alive {
                        continue;
                    }
                    for (path, j) in (0..self.paths)
                        .flat_map(|path| (0..self.nodes.len()).map(move |j| (path, j)))
                    {
                        if j == i || self.segment[i] != self.segment[j] {
                            continue;
                        }
                        let src = self.address(i, path);
                        let bytes = ad.encode(src, self.group(i)).unwrap();
                        let loss = self
                            .path_loss
                            .get(&(path, i, j))
                            .copied()
                            .unwrap_or(self.loss);
                        if self.rng.chance(loss) {
                            self.lost += 1;
                            self.losses.push((self.now, i, j));
                            let both_master = self.nodes[j].router.state() == State::Master
                                && self.nodes[i].router.state() == State::Master;
                            if let (true, Some(e)) = (both_master, self.current.as_mut()) {
                                e.lost_between_masters += 1;
                            }
                            continue;
                        }
                        let at = self.now + self.delay + self.rng.duration(self.jitter);
                        self.seq += 1;
                        self.in_flight.insert(
                            (at, self.seq),
                            InFlight {
                                from: i,
                                to: j,
                                path,
                                bytes,
                            },
                        );
                    }
                }
                Action::AddAddresses { .. } => self.nodes[i].holds_addresses = true,
                Action::RemoveAddresses { .. } => self.nodes[i].holds_addresses = false,
                Action::SendGratuitous { .. } => self.nodes[i].garps += 1,
                Action::PeerReleased => {}
                Action::StateChange { from, to, reason } => {
                    self.history.push((self.now, i, from, to, reason))
                }
                Action::PathChange { path, from, to } => {
                    self.path_history.push((self.now, i, path, from, to))
                }
            }
        }
    }

    fn observe(&mut self) {
        let n = self.masters().len();
        match (n >= 2, self.current.is_some()) {
            (true, false) => {
                self.current = Some(Episode {
                    start: self.now,
                    end: self.now,
                    lost_between_masters: 0,
                })
            }
            (false, true) => {
                if let Some(mut e) = self.current.take() {
                    e.end = self.now;
                    self.episodes.push(e);
                }
            }
            _ => {}
        }
    }
}
