//! The messages inside the channel's frames (JSON): one request, one
//! reply, per connection.

use serde::{Deserialize, Serialize};

/// What a director asks its peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The digest of the peer's running config.
    Digest { from: String },
    /// The peer's config file as it is on disk (`halb config diff`).
    File { from: String },
    /// This director's file, to check and apply as a reload
    /// (`halb config push`).
    Push { from: String, text: String },
}

/// What the peer answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    Digest {
        name: String,
        digest: String,
    },
    File {
        name: String,
        path: String,
        text: String,
    },
    /// The push was checked: `applied` (and reloaded) or refused with
    /// check-config's errors (file:line:col), the running config kept.
    Pushed {
        name: String,
        applied: bool,
        message: String,
    },
    /// The request could not be served.
    Error {
        message: String,
    },
}

/// Encodes a message for [`crate::Session::send`].
pub fn encode<T: Serialize>(m: &T) -> Vec<u8> {
    serde_json::to_vec(m).unwrap_or_default()
}

/// Decodes a received message; `None` for anything that is not one.
pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Option<T> {
    serde_json::from_slice(b).ok()
}
