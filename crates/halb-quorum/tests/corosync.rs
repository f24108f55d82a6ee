//! The Corosync shell against the real libraries: without a Corosync to
//! talk to (none runs in this test's network namespace, the host's), the
//! thread reports the connect failure as `Lost`, once per reason, and
//! keeps trying; where one runs, it reports `Connected` and then the
//! current quorum. (The three-director case with real Corosyncs is
//! `scripts/vrrp-system-tests quorum`.)
#![cfg(feature = "corosync")]

use halb_quorum::Event;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn the_shell_reports_what_the_libraries_say() {
    let (tx, rx) = mpsc::channel();
    let _thread = halb_quorum::corosync::spawn(move |ev| tx.send(ev).is_ok()).unwrap();
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no event in 10 s");
    match first {
        Event::Lost { reason } => {
            assert!(reason.starts_with("quorum_initialize: "), "{reason}");
            // The same failure is not reported again every second.
            assert!(
                rx.recv_timeout(Duration::from_millis(2500)).is_err(),
                "a second Lost for the same reason"
            );
        }
        Event::Connected => {
            let next = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("no notification");
            assert!(matches!(next, Event::Notification(_)), "{next:?}");
        }
        other => panic!("first event {other:?}"),
    }
    // Dropping the receiver ends the thread at its next event.
    drop(rx);
}
