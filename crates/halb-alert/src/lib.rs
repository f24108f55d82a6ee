//! Health-check alerts (issue 3 item 4): when a real server changes state,
//! tell people, as ldirectord's `emailalert` does, and by webhook.
//!
//! - [`spec`]: what an alert configuration is ([`AlertSpec`]: a webhook,
//!   e-mail through an SMTP server, repeat interval, status filter).
//! - [`policy`]: the sans-IO [`Policy`]: transitions and `now` in, "send
//!   this alert there" actions and the next deadline out (repeats).
//! - [`sender`]: the tokio shell that delivers actions (hyper webhook,
//!   lettre SMTP) from a bounded queue with timeouts and bounded retries.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod policy;
pub mod sender;
pub mod spec;

pub use policy::{Action, Alert, Policy, Sink, State, Transition};
pub use sender::{director_name, AlertStats, Sender};
pub use spec::{AlertSpec, DaemonStatus, EmailSpec, Starttls, StatusSet, WebhookSpec, WebhookUrl};
