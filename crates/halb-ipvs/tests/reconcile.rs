//! Data-driven reconciliation cases: every `tests/reconcile/*.case` file
//! gives the kernel's table, the desired one (ipvsadm -S syntax) and the
//! exact operations expected. Each case also checks that the plan, applied
//! to the kernel's table, converges: reconciling again sends nothing.
#![allow(clippy::unwrap_used)]

use halb_ipvs::reconcile::{apply_ops, reconcile, ForeignPolicy};
use halb_ipvs::rules::parse_rules;
use std::collections::{BTreeMap, BTreeSet};

fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            cur = name.trim().to_owned();
            out.entry(cur.clone()).or_default();
        } else if !cur.is_empty() {
            let s = out.get_mut(&cur).unwrap();
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

fn run_case(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let s = sections(&text);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    let current = parse_rules(&get("current"))?;
    let desired = parse_rules(&get("desired"))?;
    let managed: BTreeSet<_> = parse_rules(&get("managed"))?
        .into_iter()
        .map(|e| e.0.id)
        .collect();
    let policy = match get("policy").trim() {
        "" | "keep" => ForeignPolicy::Keep,
        "remove" => ForeignPolicy::Remove,
        o => return Err(format!("unknown policy {o}")),
    };
    let plan = reconcile(&desired, &current, &managed, policy);
    let mut got: Vec<String> = plan.ops.iter().map(|o| o.to_string()).collect();
    got.extend(plan.adopted.iter().map(|id| format!("adopt {id}")));
    got.extend(plan.foreign.iter().map(|id| format!("foreign {id}")));
    let want: Vec<String> = get("expect")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if got != want {
        return Err(format!(
            "expected:\n{}\ngot:\n{}",
            want.join("\n"),
            got.join("\n")
        ));
    }
    // Converges, and a second pass sends nothing.
    let mut table = current.clone();
    apply_ops(&mut table, &plan.ops)?;
    let mut managed2 = managed.clone();
    managed2.extend(desired.iter().map(|e| e.0.id));
    let again = reconcile(&desired, &table, &managed2, policy);
    if !again.ops.is_empty() {
        return Err(format!("second pass not empty: {:?}", again.ops));
    }
    Ok(())
}

#[test]
fn reconcile_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reconcile");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "cases missing in {}", dir.display());
    let mut failures = Vec::new();
    for p in &paths {
        if let Err(e) = run_case(p) {
            failures.push(format!("{}:\n{e}", p.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

mod prop {
    use halb_ipvs::reconcile::{apply_ops, apply_ops_map, reconcile, Entry, ForeignPolicy, Op};
    use halb_ipvs::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn entry() -> impl Strategy<Value = Entry> {
        (
            0u8..6,
            prop::sample::select(vec!["rr", "wlc", "sh", "mh"]),
            proptest::option::of(1u32..1000),
            prop::collection::vec((0u8..6, 0u32..4, 0u8..3), 0..5),
        )
            .prop_map(|(port, sched, pers, dests)| {
                let id = ServiceId::Inet {
                    protocol: IpvsProtocol::Tcp,
                    addr: ([192, 0, 2, 10], 8000 + u16::from(port)).into(),
                };
                let mut s = Service::new(id, sched);
                s.persistence = pers;
                let fwd = [FwdMethod::Route, FwdMethod::Masq, FwdMethod::Tunnel];
                let d = dests
                    .into_iter()
                    .map(|(h, w, f)| Dest::new(([198, 51, 100, h], 80).into(), fwd[f as usize], w))
                    .collect();
                (s, d)
            })
    }

    fn table() -> impl Strategy<Value = Vec<Entry>> {
        prop::collection::vec(entry(), 0..5).prop_map(|v| {
            let mut seen = BTreeSet::new();
            v.into_iter()
                .filter(|e| seen.insert(e.0.id))
                .map(|(s, d)| {
                    let mut seen = BTreeSet::new();
                    (s, d.into_iter().filter(|d| seen.insert(d.addr)).collect())
                })
                .collect()
        })
    }

    proptest! {
        /// Whatever the kernel holds, the plan applies cleanly, converges
        /// (a second pass sends nothing), never touches a foreign service
        /// under "keep", and never deletes a service it then re-adds.
        #[test]
        fn plans_converge_and_spare_foreign(desired in table(), current in table(), managed_mask in any::<u8>()) {
            let managed: BTreeSet<ServiceId> = current
                .iter()
                .enumerate()
                .filter(|(i, _)| managed_mask & (1 << i) != 0)
                .map(|(_, e)| e.0.id)
                .collect();
            let plan = reconcile(&desired, &current, &managed, ForeignPolicy::Keep);
            let mut t = current.clone();
            apply_ops(&mut t, &plan.ops).map_err(TestCaseError::fail)?;
            // The data plane's model of the kernel (a map, updated by the
            // accepted operations) ends where the kernel does.
            let mut model: std::collections::BTreeMap<ServiceId, Entry> =
                current.iter().map(|e| (e.0.id, e.clone())).collect();
            apply_ops_map(&mut model, &plan.ops);
            let mut sorted = t.clone();
            sorted.sort_by_key(|e| e.0.id);
            prop_assert_eq!(model.into_values().collect::<Vec<_>>(), sorted);
            let mut managed2 = managed.clone();
            managed2.extend(desired.iter().map(|e| e.0.id));
            let again = reconcile(&desired, &t, &managed2, ForeignPolicy::Keep);
            prop_assert!(again.ops.is_empty(), "{:?}", again.ops);
            for id in &plan.foreign {
                prop_assert!(!plan.ops.iter().any(|o| o.service() == *id));
                let before = current.iter().find(|e| e.0.id == *id);
                let after = t.iter().find(|e| e.0.id == *id);
                prop_assert_eq!(before, after);
            }
            let deleted: BTreeSet<_> = plan.ops.iter().filter_map(|o| match o { Op::DelService(id) => Some(*id), _ => None }).collect();
            prop_assert!(!plan.ops.iter().any(|o| matches!(o, Op::AddService(s) if deleted.contains(&s.id))));
        }
    }
}
