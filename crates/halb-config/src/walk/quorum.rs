//! `[global.quorum]`: where membership and quorum come from for three
//! directors or more (`provider = "corosync"`), how long regained quorum
//! must hold before groups run again (`settle`), and what a director
//! without quorum does (`no_quorum_policy`, Pacemaker's). Each key is
//! checked here; walk.rs only calls in.

use super::{Cx, Node, Section, Want};
use crate::diag::Problem;
use crate::Global;
use halb_quorum::{NoQuorumPolicy, Provider, Settings, MAX_SETTLE};
use std::time::Duration;

pub(super) const QUORUM_KEYS: &[&str] = &["provider", "settle", "no_quorum_policy"];

const PROVIDER_SYNONYMS: &[(&str, &str)] = &[
    ("corosync3", "corosync"),
    ("votequorum", "corosync"),
    ("corosync-qdevice", "corosync"),
];
const POLICY_SYNONYMS: &[(&str, &str)] = &[
    ("stop-all", "stop"),
    ("demote", "stop"),
    ("freeze", "stop"),
    ("none", "ignore"),
    ("off", "ignore"),
];

impl Cx<'_> {
    /// `[global.quorum]`.
    pub(super) fn quorum_global(&mut self, n: &Node, g: &mut Global) {
        let Some(f) = self.field(n, "quorum") else {
            return;
        };
        let w = Want {
            short: "a table",
            expected: "a [global.quorum] table",
            example: "",
        };
        let Some(node) = self.table(&f, &w, Some("write it as a table: [global.quorum]".into()))
        else {
            return;
        };
        self.check_keys(&node, Section::Quorum);
        let mut s = Settings::corosync();
        match self.field(&node, "provider") {
            Some(pf) => {
                // One provider so far; the choice still names the
                // valid values and catches typos.
                if self
                    .choice(&pf, "quorum provider", &["corosync"], PROVIDER_SYNONYMS)
                    .is_some()
                {
                    s.provider = Provider::Corosync;
                }
            }
            None => self.push(
                Problem::new(
                    f.span.clone(),
                    "global.quorum.provider",
                    "[global.quorum] has no provider".to_owned(),
                )
                .expected("provider = \"corosync\"")
                .fix("add provider = \"corosync\" to [global.quorum] (Corosync 3 runs on every director), or remove the table"),
            ),
        }
        if let Some(sf) = self.field(&node, "settle") {
            if let Some(d) = self.duration(&sf, Duration::ZERO, "") {
                if d > MAX_SETTLE {
                    self.push(
                        Problem::new(
                            sf.span.clone(),
                            sf.path.clone(),
                            format!("settle {} is too long", self.raw(&sf.span)),
                        )
                        .expected("at most \"5m\"")
                        .fix("a few seconds are enough: Corosync reports a membership only after its token and consensus timeouts (the default is \"2s\")"),
                    );
                } else {
                    s.settle = d;
                }
            }
        }
        if let Some(pf) = self.field(&node, "no_quorum_policy") {
            match self.choice(
                &pf,
                "no-quorum policy",
                &["stop", "ignore"],
                POLICY_SYNONYMS,
            ) {
                Some("ignore") => s.no_quorum_policy = NoQuorumPolicy::Ignore,
                Some(_) => s.no_quorum_policy = NoQuorumPolicy::Stop,
                None => {}
            }
        }
        self.quorum_at = Some(f.span.clone());
        g.quorum = Some(s);
    }

    /// `[global.quorum]` gives up VRRP instances (and the resource groups
    /// that follow them): without one it would protect nothing.
    pub(super) fn quorum_check(&mut self, instances: &[super::vrrp::VrrpInstance]) {
        let Some(span) = self.quorum_at.take() else {
            return;
        };
        if !instances.is_empty() {
            return;
        }
        self.push(
            Problem::new(
                span,
                "global.quorum",
                "[global.quorum] but no [[vrrp_instance]]: a director without quorum gives up its VRRP instances and the resource groups that follow them, and this config has none".to_owned(),
            )
            .expected("at least one [[vrrp_instance]] with [global.quorum]")
            .fix("add the [[vrrp_instance]] whose VIPs (and resource groups) move with quorum, or remove [global.quorum]"),
        );
    }
}
