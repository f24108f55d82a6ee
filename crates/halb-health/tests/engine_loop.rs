//! The engine run by its tokio driver with the real probes, against an HTTP
//! back end on loopback that is stopped and restarted; and with a prober
//! that hangs forever. Asserts outcomes; bounded by tokio timeouts.
#![allow(clippy::unwrap_used)]

use halb_health::probe::BoxFuture;
use halb_health::{
    drive, CheckId, CheckSpec, Engine, Event, Health, HttpSpec, InitialState, NetProber,
    ProbeOutcome, ProbeSpec, Prober, Timing,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

async fn backend(addr: SocketAddr) -> JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                    .await;
            });
        }
    })
}

fn timing() -> Timing {
    Timing {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        rise: 2,
        fall: 2,
        delay_before_retry: Duration::from_millis(200),
        warmup: Duration::ZERO,
        initial: InitialState::Down,
    }
}

/// The next `n` transitions (checks sorted), within 10 s.
async fn transitions(
    events: &mut mpsc::UnboundedReceiver<Event>,
    n: usize,
) -> Vec<(CheckId, Health)> {
    let mut got = Vec::new();
    while got.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("a transition within 10 s")
            .expect("driver running");
        if let Event::Transition { check, to, .. } = event {
            got.push((check, to));
        }
    }
    got.sort_by_key(|(c, _)| *c);
    got
}

#[tokio::test]
async fn stop_and_restart_a_backend() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let server = backend(addr).await;
    let mut http = HttpSpec::get("/health");
    http.body_contains = Some("OK".into());
    let spec = CheckSpec {
        target: addr,
        probe: ProbeSpec::Http(http),
        timing: timing(),
    };
    let (updates, updates_rx) = mpsc::channel(4);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(
        Engine::new(),
        Arc::new(NetProber),
        updates_rx,
        events_tx,
    ));
    // Two virtual services using the same real server: one probe.
    updates
        .send(vec![(CheckId(1), spec.clone()), (CheckId(2), spec.clone())])
        .await
        .unwrap();
    let up = vec![(CheckId(1), Health::Up), (CheckId(2), Health::Up)];
    let down = vec![(CheckId(1), Health::Down), (CheckId(2), Health::Down)];
    assert_eq!(transitions(&mut events, 2).await, up);

    server.abort();
    let _ = server.await;
    let stopped = Instant::now();
    assert_eq!(transitions(&mut events, 2).await, down);
    let t = timing();
    eprintln!(
        "detected in {:?} (bound fall × interval + timeout = {:?})",
        stopped.elapsed(),
        t.interval * t.fall + t.timeout
    );

    let server = backend(addr).await;
    assert_eq!(transitions(&mut events, 2).await, up);

    drop(updates);
    let engine = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(engine.probes(), 1);
    let st = engine.status(CheckId(2)).unwrap();
    assert_eq!((st.health, st.transitions), (Health::Up, 3));
    server.abort();
}

/// A prober whose probes never finish.
struct Hang;

impl Prober for Hang {
    fn probe(&self, _spec: Arc<CheckSpec>) -> BoxFuture<ProbeOutcome> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn hung_probes_cannot_stall_the_engine() {
    let mut t = timing();
    t.initial = InitialState::FullyUp;
    let checks: Vec<(CheckId, CheckSpec)> = (0..100u16)
        .map(|i| {
            let spec = CheckSpec {
                target: SocketAddr::from(([127, 0, 0, 1], 20_000 + i)),
                probe: ProbeSpec::Tcp,
                timing: t,
            };
            (CheckId(u64::from(i)), spec)
        })
        .collect();
    let (updates, updates_rx) = mpsc::channel(4);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(Engine::new(), Arc::new(Hang), updates_rx, events_tx));
    updates.send(checks).await.unwrap();
    let got = transitions(&mut events, 100).await;
    assert!(got.iter().all(|(_, h)| *h == Health::Down));
    // Removing the checks stops everything; the driver ends on close.
    updates.send(Vec::new()).await.unwrap();
    drop(updates);
    let engine = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((engine.checks(), engine.in_flight()), (0, 0));
}
