use super::*;
use crate::spec::{Starttls, StatusSet, WebhookUrl};
use proptest::prelude::*;

fn email(repeat: Duration, status: StatusSet) -> EmailSpec {
    EmailSpec {
        to: vec!["ops@example.com".into()],
        from: None,
        smtp_host: "127.0.0.1".into(),
        smtp_port: 25,
        starttls: Starttls::Off,
        ca_file: None,
        auth: None,
        repeat,
        status,
        timeout: Duration::from_secs(5),
        retries: 0,
    }
}

fn webhook() -> WebhookSpec {
    WebhookSpec {
        url: WebhookUrl::parse("http://127.0.0.1:1/h").unwrap(),
        timeout: Duration::from_secs(1),
        retries: 0,
        ca_file: None,
    }
}

fn spec(repeat: Duration, status: StatusSet) -> AlertSpec {
    AlertSpec {
        webhook: Some(webhook()),
        email: Some(email(repeat, status)),
    }
}

fn real() -> SocketAddr {
    "192.0.2.10:80".parse().unwrap()
}

fn tr(from: Health, to: Health) -> Transition {
    Transition {
        service: "web".into(),
        real: real(),
        from,
        to,
        reason: if to == Health::Down {
            "connection refused".into()
        } else {
            "HTTP 200".into()
        },
    }
}

fn kinds(actions: &[Action]) -> Vec<(&'static str, Health, u32)> {
    actions
        .iter()
        .map(|a| {
            let k = match a.sink {
                Sink::Webhook(_) => "webhook",
                Sink::Email(_) => "email",
            };
            (k, states(&a.alert).1, a.alert.repeat)
        })
        .collect()
}

/// A real server's alert: (from, to).
fn states(a: &Alert) -> (Health, Health) {
    match &a.subject {
        Subject::RealServer { from, to, .. } => (*from, *to),
        Subject::Resource { .. }
        | Subject::VrrpPath { .. }
        | Subject::ConfigSync { .. }
        | Subject::Quorum { .. } => {
            panic!("not a real server's alert: {a:?}")
        }
    }
}

/// One transition in, every alert it queued out.
fn transition(p: &mut Policy, t: Transition, now: Instant) -> Vec<Action> {
    p.handle_transition(t, now);
    std::iter::from_fn(|| p.poll_action()).collect()
}

/// One timeout in, every alert it queued out.
fn timeout(p: &mut Policy, now: Instant) -> Vec<Action> {
    p.handle_timeout(now);
    std::iter::from_fn(|| p.poll_action()).collect()
}

#[test]
fn down_up_goes_to_both_sinks_and_repeats_while_down() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut p = Policy::new();
    p.handle_specs([("web".to_owned(), spec(60 * s, StatusSet::ALL))], t0);
    assert_eq!(p.poll_timeout(), None);
    let a = transition(&mut p, tr(Health::Up, Health::Down), t0);
    assert_eq!(
        kinds(&a),
        [("webhook", Health::Down, 0), ("email", Health::Down, 0)]
    );
    assert_eq!(a[0].alert.reason, "connection refused");
    assert_eq!(p.poll_timeout(), Some(t0 + 60 * s));
    assert!(timeout(&mut p, t0 + 59 * s).is_empty());
    let r = timeout(&mut p, t0 + 60 * s);
    assert_eq!(kinds(&r), [("email", Health::Down, 1)]);
    assert_eq!(r[0].alert.down_for, Some(60 * s));
    assert_eq!(states(&r[0].alert).0, Health::Down);
    assert_eq!(p.poll_timeout(), Some(t0 + 120 * s));
    let up = transition(&mut p, tr(Health::Down, Health::Up), t0 + 90 * s);
    assert_eq!(
        kinds(&up),
        [("webhook", Health::Up, 0), ("email", Health::Up, 0)]
    );
    assert_eq!(up[0].alert.down_for, Some(90 * s));
    assert_eq!(p.poll_timeout(), None, "up ends the repeats");
    assert_eq!(p.down_count(), 0);
}

#[test]
fn zero_freq_never_repeats_and_unknown_services_are_silent() {
    let t0 = Instant::now();
    let mut p = Policy::new();
    p.handle_specs(
        [("web".to_owned(), spec(Duration::ZERO, StatusSet::ALL))],
        t0,
    );
    transition(&mut p, tr(Health::Up, Health::Down), t0);
    assert_eq!(p.poll_timeout(), None);
    assert!(timeout(&mut p, t0 + Duration::from_secs(3600)).is_empty());
    let mut other = tr(Health::Up, Health::Down);
    other.service = "db".into();
    assert!(transition(&mut p, other, t0).is_empty());
}

#[test]
fn status_filter_applies_to_mail_not_webhook() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut p = Policy::new();
    let only_running = StatusSet::NONE.with(DaemonStatus::Running);
    p.handle_specs([("web".to_owned(), spec(10 * s, only_running))], t0);
    p.handle_status(DaemonStatus::Starting, Some(t0 + 5 * s));
    assert_eq!(p.status(t0), DaemonStatus::Starting);
    let a = transition(&mut p, tr(Health::Up, Health::Down), t0);
    assert_eq!(kinds(&a), [("webhook", Health::Down, 0)]);
    assert_eq!(a[0].alert.status, DaemonStatus::Starting);
    assert_eq!(p.poll_timeout(), Some(t0 + 5 * s), "end of starting");
    assert!(timeout(&mut p, t0 + 5 * s).is_empty());
    assert_eq!(p.status(t0 + 5 * s), DaemonStatus::Running);
    // The repeat falls in `running`: mailed.
    assert_eq!(
        kinds(&timeout(&mut p, t0 + 10 * s)),
        [("email", Health::Down, 1)]
    );
    // Stopping is filtered out, repeats included.
    p.handle_status(DaemonStatus::Stopping, None);
    assert!(timeout(&mut p, t0 + 20 * s).is_empty());
    let up = transition(&mut p, tr(Health::Down, Health::Up), t0 + 21 * s);
    assert_eq!(kinds(&up), [("webhook", Health::Up, 0)]);
}

#[test]
fn reload_keeps_down_servers_and_reschedules() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut p = Policy::new();
    p.handle_specs(
        [("web".to_owned(), spec(Duration::ZERO, StatusSet::ALL))],
        t0,
    );
    transition(&mut p, tr(Health::Up, Health::Down), t0);
    assert_eq!(p.poll_timeout(), None);
    // Now with repeats every 30s: the first is due 30s after it went down.
    p.handle_specs(
        [("web".to_owned(), spec(30 * s, StatusSet::ALL))],
        t0 + 10 * s,
    );
    assert_eq!(p.poll_timeout(), Some(t0 + 30 * s));
    // A shorter period whose first repeat is already past: at once.
    p.handle_specs(
        [("web".to_owned(), spec(5 * s, StatusSet::ALL))],
        t0 + 10 * s,
    );
    assert_eq!(p.poll_timeout(), Some(t0 + 10 * s));
    // The real server leaves the config: forgotten.
    p.retain(|_, _| false);
    assert_eq!(p.poll_timeout(), None);
    assert_eq!(p.down_count(), 0);
}

#[test]
fn no_email_only_webhook() {
    let t0 = Instant::now();
    let mut p = Policy::new();
    let only_hook = AlertSpec {
        webhook: Some(webhook()),
        email: None,
    };
    p.handle_specs([("web".to_owned(), only_hook)], t0);
    let a = transition(&mut p, tr(Health::Up, Health::Down), t0);
    assert_eq!(kinds(&a), [("webhook", Health::Down, 0)]);
    assert_eq!(p.poll_timeout(), None);
}

fn status_set() -> impl Strategy<Value = StatusSet> {
    (0u8..16).prop_map(|bits| {
        DaemonStatus::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .fold(StatusSet::NONE, |s, (_, d)| s.with(d))
    })
}

proptest! {
    /// Driven at its own deadlines, the policy mails the k-th repeat
    /// exactly k·freq after the real server went down, as long as it stays
    /// down; none once it is up; and a mail only in an allowed status.
    #[test]
    fn repeats_are_periodic_and_filtered(
        freq_s in 1u32..100,
        down_at in 0u32..1000,
        up_after in 0u32..2000,
        statuses in status_set(),
        status_i in 0usize..4,
    ) {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let freq = freq_s * s;
        let status = DaemonStatus::ALL[status_i];
        let mut p = Policy::new();
        p.handle_specs([("web".to_owned(), spec(freq, statuses))], t0);
        p.handle_status(status, None);
        let down = t0 + down_at * s;
        let first = transition(&mut p, tr(Health::Up, Health::Down), down);
        let mails = first.iter().filter(|a| matches!(a.sink, Sink::Email(_))).count();
        prop_assert_eq!(mails, usize::from(statuses.contains(status)));
        prop_assert_eq!(first.iter().filter(|a| matches!(a.sink, Sink::Webhook(_))).count(), 1);
        let up = down + up_after * s;
        let mut repeats = Vec::new();
        let mut steps = 0;
        while let Some(t) = p.poll_timeout() {
            steps += 1;
            prop_assert!(steps < 10_000, "bounded");
            if t >= up {
                break;
            }
            prop_assert!(t > down);
            for a in timeout(&mut p, t) {
                prop_assert!(matches!(a.sink, Sink::Email(_)));
                prop_assert_eq!(a.alert.down_for, Some(t - down));
                repeats.push((a.alert.repeat, t));
            }
        }
        let expected: Vec<(u32, Instant)> = if statuses.contains(status) {
            (1..)
                .map(|k: u32| (k, down + freq * k))
                .take_while(|(_, t)| *t < up)
                .collect()
        } else {
            Vec::new()
        };
        prop_assert_eq!(repeats, expected);
        let last = transition(&mut p, tr(Health::Down, Health::Up), up);
        prop_assert_eq!(last.len(), 1 + usize::from(statuses.contains(status)));
        prop_assert_eq!(p.poll_timeout(), None);
    }
}

fn rt(group: &str, member: Option<&str>, event: ResourceAlert) -> ResourceTransition {
    ResourceTransition {
        group: group.into(),
        member: member.map(str::to_owned),
        event,
        reason: format!("resource group {group}: {}", event.as_str()),
    }
}

#[test]
fn resource_events_go_to_their_groups_sinks_under_the_status_filter() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut p = Policy::new();
    // Only the group "web" has alerts; mail only while running.
    p.handle_resource_specs([(
        "web".to_owned(),
        spec(60 * s, StatusSet::NONE.with(DaemonStatus::Running)),
    )]);
    p.handle_status(DaemonStatus::Starting, Some(t0 + 10 * s));
    p.handle_resource(rt("db", Some("mysql"), ResourceAlert::Failed), t0);
    assert!(p.poll_action().is_none(), "db has no alert settings");
    p.handle_resource(rt("web", Some("nginx"), ResourceAlert::Failed), t0);
    let a: Vec<Action> = std::iter::from_fn(|| p.poll_action()).collect();
    assert_eq!(a.len(), 1, "starting: the webhook only, {a:?}");
    assert!(matches!(a[0].sink, Sink::Webhook(_)));
    assert_eq!(
        a[0].alert.subject,
        Subject::Resource {
            group: "web".into(),
            member: Some("nginx".into()),
            event: ResourceAlert::Failed
        }
    );
    p.handle_timeout(t0 + 10 * s);
    p.handle_resource(rt("web", None, ResourceAlert::GivenUp), t0 + 10 * s);
    let a: Vec<Action> = std::iter::from_fn(|| p.poll_action()).collect();
    assert_eq!(a.len(), 2, "running: both sinks, {a:?}");
    assert!(matches!(a[1].sink, Sink::Email(_)));
    assert_eq!(a[1].alert.status, DaemonStatus::Running);
    // Resource alerts are never repeated.
    assert_eq!(p.poll_timeout(), None);
    p.check_invariants();
}
