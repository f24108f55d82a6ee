//! Deterministic simulations of VRRP routers on one LAN, in virtual time.
//!
//! Timings are asserted exactly where the RFC fixes them (there is no
//! clock noise in virtual time): takeover at Master_Down_Interval after the
//! last advert heard, at Skew_Time after a priority-0 release, and so on.
#![allow(clippy::unwrap_used)]

mod sim;

use std::net::IpAddr;
use std::time::Duration;

use halb_vrrp::{Auth, Config, State, Version};
use sim::Net;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[derive(Clone, Copy, Debug)]
enum Flavour {
    /// VRRPv3 over IPv4 with this interval.
    V3(Duration),
    /// VRRPv3 over IPv6, 100 ms.
    V3Ipv6,
    /// VRRPv2 with PASS authentication, 1 s.
    V2Pass,
}

/// Routers 0, 1, 2 … with these priorities; primary addresses ascend.
fn configs(flavour: Flavour, prios: &[u8]) -> Vec<Config> {
    prios
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let mut c = match flavour {
                Flavour::V3Ipv6 => Config::new(
                    51,
                    p,
                    ip(&format!("fe80::{}", i + 1)),
                    vec![ip("2001:db8::100")],
                ),
                _ => Config::new(
                    51,
                    p,
                    ip(&format!("192.0.2.{}", i + 1)),
                    vec![ip("192.0.2.100")],
                ),
            };
            match flavour {
                Flavour::V3(d) => c.advert_interval = d,
                Flavour::V3Ipv6 => c.advert_interval = ms(100),
                Flavour::V2Pass => {
                    c.version = Version::V2;
                    c.auth = Auth::password("secret");
                }
            }
            c
        })
        .collect()
}

fn interval(flavour: Flavour) -> Duration {
    match flavour {
        Flavour::V3(d) => d,
        Flavour::V3Ipv6 => ms(100),
        Flavour::V2Pass => secs(1),
    }
}

/// Election at start, the master dies, it comes back and preempts.
fn election_failover_failback(flavour: Flavour, delay: Duration) {
    let mut net = Net::new(configs(flavour, &[150, 100, 50]), 1);
    net.delay = delay;
    let t0 = net.t0;
    net.start_all();
    let mdi0 = net.nodes[0].router.master_down_interval();
    let mdi1 = net.nodes[1].router.master_down_interval();
    assert!(mdi0 < mdi1, "higher priority, shorter skew");

    // Election: the highest priority is the only master, at exactly its
    // Master_Down_Interval; the others never were.
    net.run_for(mdi0 * 3);
    assert_eq!(net.became_master(0, t0), [t0 + mdi0]);
    assert!(net.became_master(1, t0).is_empty());
    assert!(net.became_master(2, t0).is_empty());
    assert_eq!(net.masters(), [0]);
    assert!(net.nodes[0].holds_addresses);
    assert!(net.episodes.is_empty());

    // The master dies: router 1 takes over Master_Down_Interval after the
    // last advert it heard, so within Master_Down_Interval of the death.
    let t_kill = net.now;
    net.kill(0);
    net.run_for(mdi1 * 2);
    let heard = net.nodes[1].last_heard.unwrap();
    let took = net.became_master(1, t_kill);
    assert_eq!(took, [heard + mdi1]);
    assert!(took[0] <= t_kill + mdi1);
    assert!(net.became_master(2, t0).is_empty());
    assert_eq!(net.masters(), [1]);

    // It comes back (preempt on): master after its own
    // Master_Down_Interval, router 1 steps down when it hears it.
    let t_back = net.now;
    net.restart(0);
    net.run_for(mdi0 * 3);
    assert_eq!(net.became_master(0, t_back), [t_back + mdi0]);
    assert_eq!(net.left_master(1, t_back), [t_back + mdi0 + delay]);
    assert_eq!(net.masters(), [0]);
    assert!(!net.nodes[1].holds_addresses);
    // Two masters only for the one-way delay.
    assert_eq!(net.episodes.len(), 1);
    assert_eq!(net.episodes[0].end - net.episodes[0].start, delay);
}

#[test]
fn v3_one_second() {
    election_failover_failback(Flavour::V3(secs(1)), ms(1));
}

#[test]
fn v3_ten_milliseconds() {
    election_failover_failback(Flavour::V3(ms(10)), Duration::from_micros(100));
}

#[test]
fn v3_ipv6() {
    election_failover_failback(Flavour::V3Ipv6, Duration::from_micros(300));
}

#[test]
fn v2_with_password() {
    election_failover_failback(Flavour::V2Pass, ms(1));
}

#[test]
fn wrong_password_is_not_heard() {
    let mut cfgs = configs(Flavour::V2Pass, &[150, 100]);
    cfgs[1].auth = Auth::password("other");
    let mut net = Net::new(cfgs, 1);
    net.start_all();
    net.run_for(secs(10));
    // Neither hears the other: both master, every advert rejected.
    assert_eq!(net.masters(), [0, 1]);
    assert!(net.rejected > 10);
}

#[test]
fn no_failback_without_preempt() {
    let mut cfgs = configs(Flavour::V3(secs(1)), &[150, 100]);
    cfgs[0].preempt = false;
    let mut net = Net::new(cfgs, 1);
    net.start_all();
    net.run_for(secs(10));
    assert_eq!(net.masters(), [0]);
    net.kill(0);
    net.run_for(secs(10));
    assert_eq!(net.masters(), [1]);
    let t_back = net.now;
    net.restart(0);
    net.run_for(secs(60));
    assert_eq!(net.masters(), [1]);
    assert!(net.became_master(0, t_back).is_empty());
    assert_eq!(net.nodes[0].router.state(), State::Backup);
}

#[test]
fn preempt_delay_defers_failback() {
    let mut cfgs = configs(Flavour::V3(secs(1)), &[150, 100]);
    cfgs[0].preempt_delay = secs(20);
    let mut net = Net::new(cfgs, 1);
    net.start_all();
    // At start nobody is master: the delay does not hold the election.
    net.run_for(secs(10));
    assert_eq!(net.masters(), [0]);
    net.kill(0);
    net.run_for(secs(10));
    let t_back = net.now;
    net.restart(0);
    net.run_for(secs(19));
    assert_eq!(net.masters(), [1]);
    net.run_for(secs(10));
    assert_eq!(net.masters(), [0]);
    let took = net.became_master(0, t_back)[0];
    assert!(took >= t_back + secs(20) && took <= t_back + secs(25));
}

#[test]
fn priority_zero_release_takes_over_within_skew() {
    let mut net = Net::new(configs(Flavour::V3(secs(1)), &[150, 100, 50]), 1);
    let t0 = net.t0;
    net.start_all();
    net.run_for(secs(10));
    let skew1 = net.nodes[1].router.skew_time();
    let t = net.now;
    net.shutdown(0);
    assert!(!net.nodes[0].holds_addresses);
    assert_eq!(net.nodes[0].router.state(), State::Initialize);
    net.run_for(secs(10));
    assert_eq!(net.became_master(1, t), [t + net.delay + skew1]);
    assert!(net.became_master(2, t0).is_empty());
    assert_eq!(net.masters(), [1]);
}

/// Partition: both sides elect a master; heal: exactly one remains within
/// one advert interval (plus the one-way delay).
fn split_brain(prios: &[u8], winner: usize, flavour: Flavour) {
    let mut net = Net::new(configs(flavour, prios), 1);
    let iv = interval(flavour);
    net.start_all();
    net.run_for(iv * 10);
    assert_eq!(net.masters().len(), 1);
    net.partition(&[&[0], &[1]]);
    net.run_for(iv * 10);
    assert_eq!(net.masters(), [0, 1]);
    let h = net.now;
    let garps = net.nodes[winner].garps;
    net.heal();
    net.run_for(iv + net.delay);
    assert_eq!(net.masters(), [winner]);
    let loser = 1 - winner;
    assert_eq!(net.left_master(loser, h).len(), 1);
    assert!(!net.nodes[loser].holds_addresses);
    // If the winner heard the loser's advert, it re-announced.
    if net.nodes[winner].last_heard.is_some_and(|t| t > h) {
        assert!(net.nodes[winner].garps > garps);
    }
    net.run_for(iv * 30);
    assert_eq!(net.masters(), [winner]);
    assert!(net.left_master(winner, h).is_empty());
}

#[test]
fn split_brain_heals_to_higher_priority() {
    split_brain(&[150, 100], 0, Flavour::V3(secs(1)));
    split_brain(&[100, 150], 1, Flavour::V3(secs(1)));
    split_brain(&[150, 100], 0, Flavour::V3(ms(10)));
}

#[test]
fn split_brain_tie_goes_to_higher_primary_address() {
    split_brain(&[100, 100], 1, Flavour::V3(secs(1)));
    split_brain(&[100, 100], 1, Flavour::V3(ms(10)));
    split_brain(&[100, 100], 1, Flavour::V3Ipv6);
}

#[test]
fn tracking_delta_causes_preemption() {
    let mut net = Net::new(configs(Flavour::V3(secs(1)), &[150, 100]), 1);
    net.start_all();
    net.run_for(secs(10));
    assert_eq!(net.masters(), [0]);
    let mdi1 = net.nodes[1].router.master_down_interval();
    // 150 - 60 = 90 < 100: the backup preempts within its
    // Master_Down_Interval plus one advert interval.
    let t = net.now;
    net.set_priority_delta(0, -60);
    net.run_for(mdi1 + secs(1) + ms(2));
    assert_eq!(net.masters(), [1]);
    assert!(net.became_master(1, t)[0] <= t + mdi1 + secs(1) + ms(1));
    // Back to 150: router 0 preempts.
    let mdi0 = net.nodes[0].router.master_down_interval();
    let t = net.now;
    net.set_priority_delta(0, 0);
    net.run_for(mdi0 + secs(1) + ms(2));
    assert_eq!(net.masters(), [0]);
    assert!(net.became_master(0, t)[0] <= t + mdi0 + secs(1) + ms(1));
    // A backup whose priority rises above the master's preempts too.
    net.set_priority_delta(1, 100);
    let t2 = net.now;
    net.run_for(secs(10));
    assert_eq!(net.masters(), [1]);
    assert!(net.became_master(1, t2)[0] <= t2 + net.nodes[1].router.master_down_interval() + ms(1));
}

#[test]
fn link_down_is_fault_and_link_up_rejoins() {
    let mut net = Net::new(configs(Flavour::V3(ms(100)), &[150, 100]), 1);
    net.start_all();
    net.run_for(secs(2));
    assert_eq!(net.masters(), [0]);
    net.link_down(0);
    assert_eq!(net.nodes[0].router.state(), State::Fault);
    assert!(!net.nodes[0].holds_addresses);
    net.run_for(secs(1));
    assert_eq!(net.masters(), [1]);
    net.link_up(0);
    assert_eq!(net.nodes[0].router.state(), State::Backup);
    net.run_for(secs(1));
    assert_eq!(net.masters(), [0]);
}

/// 10 % random loss, three routers: the highest priority, once master,
/// never loses mastership; a spurious master (a backup that missed three
/// adverts in a row) lasts at most one advert interval plus one per advert
/// of the real master lost to it meanwhile (plus delay and jitter).
fn lossy(flavour: Flavour, seeds: std::ops::Range<u64>, run: Duration) -> (usize, usize) {
    let iv = interval(flavour);
    let (mut stints, mut within_one) = (0, 0);
    for seed in seeds {
        let mut net = Net::new(configs(flavour, &[150, 100, 50]), seed);
        net.loss = 0.10;
        net.delay = iv / 100;
        net.jitter = iv / 50;
        let t0 = net.t0;
        net.start_all();
        net.run_for(run);
        assert_eq!(net.became_master(0, t0).len(), 1, "seed {seed}");
        assert!(net.left_master(0, t0).is_empty(), "seed {seed}");
        assert!(net.masters().contains(&0));
        let slack = net.delay + net.jitter;
        for j in 1..3 {
            let up = net.became_master(j, t0);
            let down = net.left_master(j, t0);
            for (k, &start) in up.iter().enumerate() {
                let end = down.get(k).copied().unwrap_or(net.now);
                let lost = net
                    .losses
                    .iter()
                    .filter(|(t, from, to)| *from == 0 && *to == j && *t >= start && *t <= end)
                    .count() as u32;
                let d = end - start;
                assert!(
                    d <= iv * (1 + lost) + slack,
                    "seed {seed}: router {j} master for {d:?} with {lost} adverts lost"
                );
                stints += 1;
                if d <= iv + slack {
                    within_one += 1;
                }
            }
        }
    }
    (stints, within_one)
}

#[test]
fn ten_percent_loss_one_second_ten_minutes() {
    let (stints, within_one) = lossy(Flavour::V3(secs(1)), 0..32, secs(600));
    eprintln!("1 s: {stints} spurious masters, {within_one} within one interval");
    assert!(stints > 0, "10 % loss should cause some");
    assert!(within_one * 10 >= stints * 7);
}

#[test]
fn ten_percent_loss_ten_milliseconds() {
    let (stints, within_one) = lossy(Flavour::V3(ms(10)), 0..4, secs(120));
    eprintln!("10 ms: {stints} spurious masters, {within_one} within one interval");
    assert!(within_one * 10 >= stints * 7);
}

#[test]
fn runs_are_reproducible() {
    let run = |seed| {
        let mut net = Net::new(configs(Flavour::V3(ms(100)), &[150, 100, 50]), seed);
        net.loss = 0.2;
        net.start_all();
        net.run_for(secs(60));
        net.history
            .iter()
            .map(|(t, n, _, to, _)| (*t - net.t0, *n, *to))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// Two routers (150, 100), v3 1 s, joined by the LAN (path 0) and a
/// dedicated link (path 1, 198.51.100.0/24), HMAC-style halb-to-halb.
fn two_paths() -> Net {
    let mut cs = configs(Flavour::V3(secs(1)), &[150, 100]);
    for (i, c) in cs.iter_mut().enumerate() {
        c.extra_paths = vec![ip(&format!("198.51.100.{}", i + 1))];
    }
    let mut net = Net::new(cs, 7);
    net.start_all();
    let mdi = net.nodes[0].router.master_down_interval();
    net.run_for(mdi * 3);
    assert_eq!(net.masters(), [0]);
    net
}

use halb_vrrp::PathState::{Alive, Dead, Unknown};

#[test]
fn both_paths_alive_on_the_backup_unknown_on_the_master() {
    let net = two_paths();
    assert_eq!(net.path_states(1), [Alive, Alive]);
    assert_eq!(net.path_states(0), [Unknown, Unknown]);
}

/// One of two paths cut (either one): no takeover, the backup reports it
/// dead Master_Down_Interval after the last advert over it; healed, alive
/// at the next advert.
#[test]
fn one_path_cut_is_reported_dead_without_takeover_and_heals() {
    for path in 0..2 {
        let mut net = two_paths();
        let t_cut = net.now;
        let mdi = net.nodes[1].router.master_down_interval();
        net.cut_path(path);
        net.run_for(mdi * 5);
        assert!(net.became_master(1, t_cut).is_empty(), "path {path}");
        assert_eq!(net.masters(), [0]);
        let mut want = [Alive, Alive];
        want[path] = Dead;
        assert_eq!(net.path_states(1), want, "path {path}");
        let died = net.path_changes(1, t_cut);
        assert_eq!(died.len(), 1, "{died:?}");
        assert_eq!((died[0].1, died[0].2), (path, Dead));
        assert!(died[0].0 <= t_cut + mdi, "dead within Master_Down_Interval");

        let t_heal = net.now;
        net.heal_paths();
        net.run_for(secs(2));
        assert_eq!(net.path_states(1), [Alive, Alive]);
        let healed = net.path_changes(1, t_heal);
        assert_eq!(healed.len(), 1, "{healed:?}");
        assert_eq!((healed[0].1, healed[0].2), (path, Alive));
        assert!(net.became_master(1, t_cut).is_empty());
        assert!(net.episodes.is_empty());
    }
}

/// Both cut: the backup takes over Master_Down_Interval after the last
/// advert it heard, on whichever path, so within Master_Down_Interval.
#[test]
fn both_paths_cut_take_over_within_master_down_interval() {
    let mut net = two_paths();
    let t_cut = net.now;
    let mdi = net.nodes[1].router.master_down_interval();
    let heard = net.nodes[1].last_heard.unwrap();
    net.cut_path(0);
    net.cut_path(1);
    net.run_for(mdi * 2);
    let took = net.became_master(1, t_cut);
    assert_eq!(took, [heard + mdi]);
    assert!(took[0] <= t_cut + mdi);
    // A master watches no path.
    assert_eq!(net.path_states(1), [Unknown, Unknown]);
}

/// Cut one after the other: the first is reported dead, the takeover
/// comes Master_Down_Interval after the second went silent.
#[test]
fn second_path_cut_later_takes_over_after_its_silence() {
    let mut net = two_paths();
    let mdi = net.nodes[1].router.master_down_interval();
    let t1 = net.now;
    net.cut_path(1);
    net.run_for(mdi * 2);
    assert_eq!(net.path_states(1), [Alive, Dead]);
    let t2 = net.now;
    net.cut_path(0);
    net.run_for(mdi * 2);
    let took = net.became_master(1, t1);
    assert_eq!(took.len(), 1);
    assert!(took[0] > t2 && took[0] <= t2 + mdi);
}

/// A path that never carried anything since the start is dead too, once
/// the other one has been alive for Master_Down_Interval.
#[test]
fn path_dead_from_the_start_is_reported() {
    let mut cs = configs(Flavour::V3(secs(1)), &[150, 100]);
    for (i, c) in cs.iter_mut().enumerate() {
        c.extra_paths = vec![ip(&format!("198.51.100.{}", i + 1))];
    }
    let mut net = Net::new(cs, 3);
    net.cut_path(1);
    net.start_all();
    let mdi = net.nodes[1].router.master_down_interval();
    net.run_for(mdi * 4);
    assert_eq!(net.masters(), [0]);
    assert_eq!(net.path_states(1), [Alive, Dead]);
}

/// Adverts one way only on a path: master to backup cut on path 1 (the
/// backup hears the LAN only: path 1 dead, no takeover), or on the LAN
/// (the reverse); backup to master cut changes nothing.
#[test]
fn one_way_path_does_not_cause_a_takeover() {
    for (path, from, to) in [(1, 0, 1), (0, 0, 1), (1, 1, 0), (0, 1, 0)] {
        let mut net = two_paths();
        let t = net.now;
        net.cut_one_way(path, from, to);
        net.run_for(secs(30));
        assert!(net.became_master(1, t).is_empty(), "{path} {from}->{to}");
        assert_eq!(net.masters(), [0]);
        let mut want = [Alive, Alive];
        if from == 0 {
            want[path] = Dead;
        }
        assert_eq!(net.path_states(1), want, "{path} {from}->{to}");
    }
}

/// Property over seeds: heavy one-way loss on one path (90 %, master to
/// backup) for ten virtual minutes never causes a takeover while the other
/// path works, nor two masters; the lossy path flaps between alive and
/// dead (reported), the working one stays alive.
#[test]
fn asymmetric_loss_on_one_path_never_takes_over() {
    for seed in 0..40 {
        for path in 0..2 {
            let mut cs = configs(Flavour::V3(ms(100)), &[150, 100]);
            for (i, c) in cs.iter_mut().enumerate() {
                c.extra_paths = vec![ip(&format!("198.51.100.{}", i + 1))];
            }
            let mut net = Net::new(cs, seed);
            net.start_all();
            net.run_for(secs(2));
            assert_eq!(net.masters(), [0]);
            let t = net.now;
            net.path_loss.insert((path, 0, 1), 0.9);
            net.run_for(secs(600));
            assert!(
                net.became_master(1, t).is_empty(),
                "seed {seed} path {path}"
            );
            assert!(net.episodes.is_empty(), "seed {seed} path {path}");
            let changes = net.path_changes(1, t);
            assert!(
                changes.iter().all(|c| c.1 == path),
                "seed {seed}: {changes:?}"
            );
            assert!(
                changes.iter().any(|c| c.2 == Dead),
                "seed {seed} path {path}"
            );
        }
    }
}

/// One path: no path is watched, nothing is said about paths (as before
/// redundant paths existed), under loss and failover alike.
#[test]
fn one_path_says_nothing_about_paths() {
    let mut net = Net::new(configs(Flavour::V3(ms(100)), &[150, 100]), 11);
    net.loss = 0.2;
    net.start_all();
    net.run_for(secs(60));
    net.kill(0);
    net.run_for(secs(5));
    assert!(net.path_history.is_empty());
    assert_eq!(net.path_states(1), [Unknown]);
}
