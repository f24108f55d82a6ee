//! Random provider histories against an outside model of the rules:
//! give up at once, hold only after `settle` of unbroken quorum, never
//! two actions of one kind in a row, and one restart per quorate spell at
//! most (a flapping membership does not flap the groups).

use halb_quorum::{Action, Event, Notification, Settings, Tracker, Votes};
use proptest::prelude::*;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Step {
    Connected,
    Note {
        quorate: bool,
        members: u8,
    },
    Lost,
    /// Time passes: the shell wakes at the deadline if there is one
    /// before it, then at the end.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Connected),
        6 => (any::<bool>(), 1u8..=5).prop_map(|(quorate, members)| Step::Note { quorate, members }),
        1 => Just(Step::Lost),
        4 => (0u64..5000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn follows_the_rules(settle_ms in 0u64..3000, steps in prop::collection::vec(step(), 1..80)) {
        let settle = Duration::from_millis(settle_ms);
        let t0 = Instant::now();
        let mut now = t0;
        let mut t = Tracker::new(Settings { settle, ..Settings::corosync() }, t0);
        // The model: quorate (connected, last notification quorate) since.
        let mut since: Option<Instant> = None;
        let mut held = false;
        let mut spells_settled = 0u32;
        let mut holds = 0u32;
        for s in steps {
            let before = t.may_hold();
            match s {
                Step::Connected => {
                    since = None;
                    t.handle_event(Event::Connected, now);
                }
                Step::Note { quorate, members } => {
                    if quorate {
                        since.get_or_insert(now);
                    } else {
                        since = None;
                    }
                    let n = u32::from(members);
                    t.handle_event(Event::Notification(Notification {
                        quorate,
                        ring: None,
                        members: (1..=n).collect(),
                        votes: Some(Votes { have: n, expected: 5, needed: 3 }),
                    }), now);
                }
                Step::Lost => {
                    since = None;
                    t.handle_event(Event::Lost { reason: "gone".into() }, now);
                }
                Step::Wait(ms) => {
                    let end = now + Duration::from_millis(ms);
                    if let Some(d) = t.poll_timeout() {
                        prop_assert!(d >= now);
                        if d <= end {
                            t.handle_timeout(d);

                        }
                    }
                    now = end;
                    t.handle_timeout(now);
                }
            }
            t.check_invariants().map_err(TestCaseError::fail)?;
            let settled = since.is_some_and(|s| now.duration_since(s) >= settle);
            // Holding exactly when quorum held unbroken for the settle time.
            prop_assert_eq!(t.may_hold(), settled);
            if settled && !held {
                spells_settled += 1;
            }
            held = settled;
            // The actions of this step: they alternate and end in the state.
            let mut last = before;
            while let Some(a) = t.poll_action() {
                let hold = matches!(a, Action::MayHold { .. });
                prop_assert_ne!(hold, last, "two actions of one kind in a row");
                if hold {
                    holds += 1;
                }
                last = hold;
            }
            prop_assert_eq!(last, t.may_hold());
            // A deadline is pending exactly while quorate and settling.
            prop_assert_eq!(t.poll_timeout().is_some(), since.is_some() && !settled);
        }
        // One MayHold per quorate spell that lasted the settle time.
        prop_assert_eq!(holds, spells_settled);
    }
}
