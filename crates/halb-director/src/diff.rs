//! What a reload changes, in words for the log and `halb reload`.

use halb_table::{Table, VirtualService};

/// One line per change: services added or removed, and per kept service
/// its scheduler, real servers added or removed and weights changed.
pub fn describe(old: &Table, new: &Table) -> Vec<String> {
    // By key, not by scanning: a reload of 10,000 services must not cost
    // 10,000 x 10,000 comparisons.
    let old_by_key: std::collections::HashMap<_, &VirtualService> =
        old.services.iter().map(|o| (o.key(), o)).collect();
    let new_keys: std::collections::HashSet<_> = new.services.iter().map(|s| s.key()).collect();
    let mut out = Vec::new();
    for s in &new.services {
        match old_by_key.get(&s.key()) {
            None => out.push(format!("added virtual service {} ({})", s.name, s.key())),
            Some(o) => describe_service(o, s, &mut out),
        }
    }
    for o in &old.services {
        if !new_keys.contains(&o.key()) {
            out.push(format!("removed virtual service {} ({})", o.name, o.key()));
        }
    }
    out
}

fn describe_service(o: &VirtualService, s: &VirtualService, out: &mut Vec<String>) {
    let name = &s.name;
    if o.data_plane != s.data_plane {
        out.push(format!(
            "{name}: data plane {} -> {}",
            o.data_plane.name(),
            s.data_plane.name()
        ));
    }
    if o.scheduler != s.scheduler {
        out.push(format!(
            "{name}: scheduler {} -> {}",
            o.scheduler, s.scheduler
        ));
    }
    for r in &s.reals {
        match o.reals.iter().find(|x| x.addr == r.addr) {
            None => out.push(format!(
                "{name}: added real server {} weight {}",
                r.addr, r.weight
            )),
            Some(x) if x.weight != r.weight => out.push(format!(
                "{name}: real server {} weight {} -> {}",
                r.addr, x.weight, r.weight
            )),
            Some(x) if x != r => out.push(format!("{name}: real server {} changed", r.addr)),
            Some(_) => {}
        }
    }
    for x in &o.reals {
        if !s.reals.iter().any(|r| r.addr == x.addr) {
            out.push(format!("{name}: removed real server {}", x.addr));
        }
    }
    let mut o2 = o.clone();
    o2.reals.clone_from(&s.reals);
    o2.scheduler = s.scheduler;
    o2.data_plane = s.data_plane;
    if o2 != *s {
        out.push(format!("{name}: settings changed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halb_table::{Protocol, RealServer, SchedulerKind};

    fn svc(port: u16, weights: &[(u16, u32)]) -> VirtualService {
        let mut s = VirtualService::new(
            format!("s{port}"),
            ([127, 0, 0, 1], port).into(),
            Protocol::Tcp,
            SchedulerKind::Wrr,
        );
        s.reals = weights
            .iter()
            .map(|&(p, w)| RealServer::new(([127, 0, 0, 1], p).into(), w))
            .collect();
        s
    }

    #[test]
    fn describes_every_kind_of_change() {
        let old = Table {
            services: vec![svc(80, &[(1, 1), (2, 2)]), svc(81, &[(1, 1)])],
        };
        let mut changed = svc(80, &[(1, 5), (3, 1)]);
        changed.scheduler = SchedulerKind::Wlc;
        let new = Table {
            services: vec![changed, svc(82, &[(1, 1)])],
        };
        assert_eq!(
            describe(&old, &new),
            vec![
                "s80: scheduler wrr -> wlc",
                "s80: real server 127.0.0.1:1 weight 1 -> 5",
                "s80: added real server 127.0.0.1:3 weight 1",
                "s80: removed real server 127.0.0.1:2",
                "added virtual service s82 (tcp 127.0.0.1:82)",
                "removed virtual service s81 (tcp 127.0.0.1:81)",
            ]
        );
        assert!(describe(&new, &new).is_empty());
    }
}
