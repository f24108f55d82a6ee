//! Health-check alerts (issue 3 item 4): when a real server changes state,
//! tell people, as ldirectord's `emailalert` does, and by webhook.
//!
//! - [`spec`]: what an alert configuration is ([`AlertSpec`]: a webhook,
//!   e-mail through an SMTP server, repeat interval, status filter).
//! - [`policy`]: the sans-IO [`Policy`]: transitions and `now` in, "send
//!   this alert there" actions and the next deadline out (repeats).
//! - [`sender`]: the tokio shell that delivers actions (hyper webhook,
//!   lettre SMTP) from a bounded queue with timeouts and bounded retries.
//!
//! `sender` (and tokio, hyper, lettre, rustls with it) is behind the
//! default feature `sender`; with `default-features = false` the crate is
//! the sans-IO part only.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod mailbox;
pub mod policy;
#[cfg(feature = "sender")]
pub mod sender;
pub mod spec;

pub use policy::{
    Action, Alert, Health, PathAlert, PathTransition, Policy, QuorumAlert, ResourceAlert,
    ResourceTransition, Sink, Subject, SyncAlert, SyncTransition, Transition,
};
#[cfg(feature = "sender")]
pub use sender::{director_name, AlertStats, Sender};
pub use spec::{AlertSpec, DaemonStatus, EmailSpec, Starttls, StatusSet, WebhookSpec, WebhookUrl};
