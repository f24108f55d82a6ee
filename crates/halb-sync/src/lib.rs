//! Config sync between the directors of a pair (issue 21, item 2),
//! sans-IO.
//!
//! - [`session`]: one connection of the authenticated, encrypted
//!   halb-to-halb channel (HMAC-SHA256 challenge/response with nonces
//!   both ways, then ChaCha20-Poly1305 frames under HKDF session keys).
//! - [`msg`]: the requests and replies inside it (digest, file, push).
//! - [`digest`]: the config's digest (its normal form, without the
//!   director's own keys) and [`digest::keep_local`], what a push writes.
//! - [`tracker`]: when to ask each peer for its digest, and what the
//!   answers mean (in sync, differs since …, unreachable).
//!
//! The sockets are the daemon's (`crates/halb/src/sync.rs`): this crate
//! never reads the clock, a socket or a random source; the shell passes
//! `now` and each connection's nonce.

#![forbid(unsafe_code)]

pub mod digest;
pub mod msg;
pub mod session;
pub mod tracker;

pub use digest::{digest, digest_or_bytes, keep_local, short, NODE_LOCAL};
pub use msg::{Reply, Request};
pub use session::{Error, Event, Role, Session};
pub use tracker::{Action, PeerState, Tracker};
