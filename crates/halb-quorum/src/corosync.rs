//! The Corosync 3 shell: one thread that tracks Corosync's quorum through
//! rust-corosync (the corosync project's binding) and reports [`Event`]s
//! to a sink. It decides nothing: the [`Tracker`](crate::Tracker) does.
//!
//! - `quorum::initialize` with a model-1 notification callback, then
//!   `trackstart(CS_TRACK_CHANGES)`: Corosync sends the current state at
//!   once, then every change (quorate, ring id, members).
//! - Each notification's votes come from votequorum (`get_info` of each
//!   member: its votes, the expected votes and the quorum), so `halb
//!   list` can say "no quorum (corosync: 1 of 3 votes)". Without
//!   votequorum the event carries the members only.
//! - `dispatch(CS_DISPATCH_BLOCKING)` runs the callbacks on this thread
//!   until the connection breaks (Corosync stopped or restarted); that is
//!   reported as [`Event::Lost`], and the thread connects again every
//!   [`RETRY`]. A connect that fails is reported the same way (once per
//!   reason, not every second).
//!
//! The callbacks rust-corosync takes are plain `fn`s: they reach the sink
//! through a thread-local, set on this thread only. No `unsafe` here.

use crate::{Event, Notification, Ring, Votes};
use rust_corosync::{quorum, votequorum, DispatchFlags, NodeId, TrackFlags};
use std::cell::RefCell;
use std::time::Duration;

/// How long the thread waits before connecting again.
pub const RETRY: Duration = Duration::from_secs(1);

type Sink = Box<dyn FnMut(Event) -> bool + Send>;

thread_local! {
    /// The sink and whether it still wants events (false: the receiver
    /// is gone and the thread ends).
    static SINK: RefCell<Option<(Sink, bool)>> = const { RefCell::new(None) };
    /// The votequorum connection the notification callback asks.
    static VOTES: RefCell<Option<votequorum::Handle>> = const { RefCell::new(None) };
}

/// Starts the tracking thread. `sink` gets every event; when it returns
/// false (its receiver is gone) the thread ends at the next event.
pub fn spawn(
    sink: impl FnMut(Event) -> bool + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("halb-corosync".into())
        .spawn(move || run(Box::new(sink)))
}

fn send(ev: Event) -> bool {
    SINK.with(|s| match s.borrow_mut().as_mut() {
        Some((sink, alive)) => {
            if *alive {
                *alive = sink(ev);
            }
            *alive
        }
        None => false,
    })
}

fn alive() -> bool {
    SINK.with(|s| s.borrow().as_ref().is_some_and(|(_, a)| *a))
}

fn run(sink: Sink) {
    SINK.with(|s| *s.borrow_mut() = Some((sink, true)));
    let mut last_failure: Option<String> = None;
    while alive() {
        match session() {
            Ok(reason) | Err(reason) => {
                if last_failure.as_deref() != Some(reason.as_str())
                    && !send(Event::Lost {
                        reason: reason.clone(),
                    })
                {
                    break;
                }
                last_failure = Some(reason);
            }
        }
        std::thread::sleep(RETRY);
    }
}

/// One connection: returns why it ended.
fn session() -> Result<String, String> {
    let model = quorum::ModelData::ModelV1(quorum::Model1Data {
        flags: quorum::Model1Flags::None,
        quorum_notification_fn: Some(on_quorum),
        nodelist_notification_fn: None,
    });
    let (handle, _kind) =
        quorum::initialize(&model, 0).map_err(|e| format!("quorum_initialize: {e}"))?;
    // Votes are a nicety: without votequorum the members are counted.
    let callbacks = votequorum::Callbacks {
        quorum_notification_fn: None,
        nodelist_notification_fn: None,
        expectedvotes_notification_fn: None,
    };
    VOTES.with(|v| *v.borrow_mut() = votequorum::initialize(&callbacks).ok());
    if !send(Event::Connected) {
        return Ok("halb is stopping".into());
    }
    let r = quorum::trackstart(&handle, TrackFlags::Changes)
        .map_err(|e| format!("quorum_trackstart: {e}"))
        .and_then(|()| {
            quorum::dispatch(&handle, DispatchFlags::Blocking)
                .map_err(|e| format!("corosync connection lost ({e})"))
        });
    VOTES.with(|v| *v.borrow_mut() = None);
    drop(handle);
    match r {
        Ok(()) => Ok("corosync connection closed".into()),
        Err(e) => Err(e),
    }
}

fn on_quorum(_h: &quorum::Handle, quorate: bool, ring: quorum::RingId, members: Vec<NodeId>) {
    let members: Vec<u32> = members.into_iter().map(u32::from).collect();
    let votes = VOTES.with(|v| v.borrow().as_ref().and_then(|h| votes_of(h, &members)));
    send(Event::Notification(Notification {
        quorate,
        ring: Some(Ring {
            node: u32::from(ring.nodeid),
            seq: ring.seq,
        }),
        members,
        votes,
    }));
}

/// The partition's votes: each member's, and the cluster's expected
/// votes and quorum as votequorum holds them.
fn votes_of(h: &votequorum::Handle, members: &[u32]) -> Option<Votes> {
    let mut have = 0u32;
    let mut expected = 0u32;
    let mut needed = 0u32;
    for &m in members {
        let info = votequorum::get_info(h, NodeId::from(m)).ok()?;
        have = have.saturating_add(info.node_votes);
        expected = expected.max(info.highest_expected);
        needed = needed.max(info.quorum);
    }
    (!members.is_empty()).then_some(Votes {
        have,
        expected,
        needed,
    })
}
