//! VRRP as a pure state machine: no sockets, no clock.
//!
//! * [`packet`]: the advertisement codec, VRRPv3 (RFC 5798 §5, IPv4 and
//!   IPv6) and VRRPv2 (RFC 3768 §5, IPv4, PASS authentication), with the
//!   receive checks of RFC 5798 §7.1 / RFC 3768 §7.1 as typed errors so a
//!   shell can count every drop reason.
//! * [`router`]: one virtual router instance, the state machine of
//!   RFC 5798 §6.4 (Initialize, Backup, Master) plus keepalived's Fault
//!   state, fed adverts, link events and `now`, emitting [`Action`]s and
//!   its next deadline.
//! * [`sync_group`]: keepalived's sync groups: instances that move together.
//! * [`hmac_auth`]: halb-to-halb HMAC-SHA256 trailer with anti-replay
//!   (not keepalived compatible).
//!
//! The network shell (raw socket, rtnetlink, gratuitous ARP) drives a
//! [`Router`] like this: call [`Router::start`], then on every received
//! packet [`packet::decode`] it against [`Router::expected`] and give the
//! result to [`Router::handle_advert`]; when [`Router::poll_timeout`] is
//! reached call [`Router::handle_timeout`]; after every input drain
//! [`Router::poll_action`]. With redundant paths (halb to halb) it sends
//! each advert on every path and gives each received one to
//! [`Router::handle_advert_on`] with its path.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod hmac_auth;
pub mod packet;
pub mod router;
pub mod sync_group;

pub use packet::{Addresses, Advert, Auth, DecodeError, EncodeError, Expected, IpHeader, Version};
pub use router::{Action, Config, ConfigError, Gratuitous, PathState, Reason, Router, State};
pub use sync_group::SyncGroup;
