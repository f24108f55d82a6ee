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
