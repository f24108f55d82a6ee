//! HMAC-SHA256 authentication for halb-to-halb virtual routers.
//!
//! VRRPv3 has no authentication (RFC 5798 §9) and VRRPv2's PASS sends the
//! password in clear. Between halb directors an advert can carry a
//! **trailer** after the VRRP message:
//!
//! ```text
//! | VRRP message (v2 or v3, unchanged) | seq: u64 BE | HMAC-SHA256: 32 bytes |
//! ```
//!
//! The MAC covers the IP source and destination, the VRRP message and
//! `seq`. `seq` is the sender's monotonic counter, started from the wall
//! clock in microseconds so that it keeps growing across restarts; a
//! receiver accepts each sequence number of a source at most once, and
//! only if it is above the highest seen minus `replay_window` (0: strictly
//! increasing). A packet whose MAC does not verify is dropped (`auth`), a
//! replayed one too (`replay`).
//!
//! This is not interoperable with keepalived (which sees a message with
//! trailing bytes and drops it): use it only when every router of the
//! VRID is halb.

use std::collections::HashMap;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// Bytes the trailer adds.
pub const TRAILER_LEN: usize = 8 + 32;

/// Largest replay window.
pub const MAX_REPLAY_WINDOW: u32 = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a packet failed authentication.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HmacError {
    /// Too short to carry a trailer.
    #[error("no HMAC trailer ({0} bytes)")]
    Missing(usize),
    /// The MAC does not verify (wrong key, altered packet).
    #[error("HMAC does not verify")]
    BadMac,
    /// A sequence number already seen, or too old.
    #[error("replayed or too old sequence number {0}")]
    Replay(u64),
}

impl HmacError {
    /// The drop counter's name.
    pub fn reason(&self) -> &'static str {
        match self {
            HmacError::Missing(_) | HmacError::BadMac => "auth",
            HmacError::Replay(_) => "replay",
        }
    }
}

fn mac(key: &[u8], src: IpAddr, dst: IpAddr, msg: &[u8], seq: u64) -> [u8; 32] {
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for a in [src, dst] {
        match a {
            IpAddr::V4(a) => m.update(&a.octets()),
            IpAddr::V6(a) => m.update(&a.octets()),
        }
    }
    m.update(msg);
    m.update(&seq.to_be_bytes());
    m.finalize().into_bytes().into()
}

/// Signs outgoing adverts.
#[derive(Debug, Clone)]
pub struct Signer {
    key: Vec<u8>,
    last: u64,
}

impl Signer {
    /// A signer for `key`.
    pub fn new(key: &[u8]) -> Signer {
        Signer {
            key: key.to_vec(),
            last: 0,
        }
    }

    /// Appends the trailer to `msg` (an encoded advert from `src` to
    /// `dst`). `now_us`: wall-clock microseconds, so the sequence keeps
    /// growing across restarts; it is at least one more than the last.
    pub fn sign(&mut self, msg: &mut Vec<u8>, src: IpAddr, dst: IpAddr, now_us: u64) {
        let seq = now_us.max(self.last.saturating_add(1));
        self.last = seq;
        let m = mac(&self.key, src, dst, msg, seq);
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.extend_from_slice(&m);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    highest: u64,
    /// Bit i: `highest - i` was seen (bit 0 is `highest`).
    bitmap: u64,
}

/// Verifies incoming adverts and remembers sequence numbers per source.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: Vec<u8>,
    window: u32,
    seen: HashMap<IpAddr, Seen>,
}

impl Verifier {
    /// A verifier for `key`; `window` is clamped to
    /// [`MAX_REPLAY_WINDOW`].
    pub fn new(key: &[u8], window: u32) -> Verifier {
        Verifier {
            key: key.to_vec(),
            window: window.min(MAX_REPLAY_WINDOW),
            seen: HashMap::new(),
        }
    }

    /// Checks the trailer of `packet` (as received from `src` to `dst`);
    /// on success returns the VRRP message without it.
    pub fn verify<'a>(
        &mut self,
        packet: &'a [u8],
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<&'a [u8], HmacError> {
        let Some(split) = packet.len().checked_sub(TRAILER_LEN) else {
            return Err(HmacError::Missing(packet.len()));
        };
        let (msg, trailer) = packet.split_at(split);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&trailer[..8]);
        let seq = u64::from_be_bytes(seq_bytes);
        let Ok(mut m) = HmacSha256::new_from_slice(&self.key) else {
            return Err(HmacError::BadMac);
        };
        for a in [src, dst] {
            match a {
                IpAddr::V4(a) => m.update(&a.octets()),
                IpAddr::V6(a) => m.update(&a.octets()),
            }
        }
        m.update(msg);
        m.update(&seq_bytes);
        // verify_slice compares in constant time.
        m.verify_slice(&trailer[8..])
            .map_err(|_| HmacError::BadMac)?;
        let s = self.seen.entry(src).or_default();
        if s.highest == 0 && s.bitmap == 0 {
            *s = Seen {
                highest: seq,
                bitmap: 1,
            };
            return Ok(msg);
        }
        if seq > s.highest {
            let shift = seq - s.highest;
            s.bitmap = if shift >= 64 { 0 } else { s.bitmap << shift };
            s.bitmap |= 1;
            s.highest = seq;
            return Ok(msg);
        }
        let back = s.highest - seq;
        if back >= u64::from(self.window) || back >= 64 || s.bitmap & (1 << back) != 0 {
            return Err(HmacError::Replay(seq));
        }
        s.bitmap |= 1 << back;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const KEY: &[u8] = b"0123456789abcdef-shared";

    #[test]
    fn sign_verify_and_replay() {
        let (src, dst) = (ip("192.0.2.1"), ip("224.0.0.18"));
        let mut s = Signer::new(KEY);
        let mut v = Verifier::new(KEY, 0);
        let mut p1 = vec![0x31, 51, 100, 1, 0, 100, 0, 0, 192, 0, 2, 100];
        let orig = p1.clone();
        s.sign(&mut p1, src, dst, 1_000);
        assert_eq!(p1.len(), orig.len() + TRAILER_LEN);
        assert_eq!(v.verify(&p1, src, dst).unwrap(), &orig[..]);
        // The same packet again: replay.
        assert_eq!(v.verify(&p1, src, dst), Err(HmacError::Replay(1_000)));
        // The clock went back: the sequence still grows.
        let mut p2 = orig.clone();
        s.sign(&mut p2, src, dst, 5);
        assert!(v.verify(&p2, src, dst).is_ok());
        // Wrong key, altered message, other source: bad MAC.
        let mut w = Verifier::new(b"another key of 16+ bytes", 0);
        let mut p3 = orig.clone();
        s.sign(&mut p3, src, dst, 2_000);
        assert_eq!(w.verify(&p3, src, dst), Err(HmacError::BadMac));
        let mut bad = p3.clone();
        bad[2] ^= 1;
        assert_eq!(v.verify(&bad, src, dst), Err(HmacError::BadMac));
        assert_eq!(v.verify(&p3, ip("192.0.2.9"), dst), Err(HmacError::BadMac));
        assert_eq!(v.verify(&p3[..10], src, dst), Err(HmacError::Missing(10)));
        assert_eq!(HmacError::BadMac.reason(), "auth");
    }

    #[test]
    fn restarts_of_either_side() {
        let (src, dst) = (ip("192.0.2.1"), ip("224.0.0.18"));
        let msg = vec![0x31, 51, 100, 1, 0, 100, 0, 0, 192, 0, 2, 100];
        let signed = |s: &mut Signer, t: u64| {
            let mut p = msg.clone();
            s.sign(&mut p, src, dst, t);
            p
        };
        let mut v = Verifier::new(KEY, 0);
        let mut before = Signer::new(KEY);
        let old = signed(&mut before, 1_700_000_000_000_000);
        assert!(v.verify(&old, src, dst).is_ok());
        // The sender restarts (no memory of its last sequence number): the
        // clock has moved on, so its first advert is accepted.
        let mut after = Signer::new(KEY);
        let new = signed(&mut after, 1_700_000_000_100_000);
        assert!(v.verify(&new, src, dst).is_ok());
        // A capture from before the restart is still a replay.
        assert_eq!(
            v.verify(&old, src, dst),
            Err(HmacError::Replay(1_700_000_000_000_000))
        );
        // The receiver restarts: it accepts the next advert and refuses
        // that one's replay.
        let mut v2 = Verifier::new(KEY, 0);
        let next = signed(&mut after, 1_700_000_000_200_000);
        assert!(v2.verify(&next, src, dst).is_ok());
        assert!(v2.verify(&next, src, dst).is_err());
        // A sender whose clock went back across a restart is refused until
        // its clock passes the last accepted number (documented).
        let mut behind = Signer::new(KEY);
        let late = signed(&mut behind, 1_600_000_000_000_000);
        assert!(matches!(
            v2.verify(&late, src, dst),
            Err(HmacError::Replay(_))
        ));
    }

    #[test]
    fn window_accepts_reordering_once() {
        let (src, dst) = (ip("192.0.2.1"), ip("224.0.0.18"));
        let mut s = Signer::new(KEY);
        let pkts: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let mut p = vec![0x31, 51, 100, 1];
                s.sign(&mut p, src, dst, 100 + i);
                p
            })
            .collect();
        let mut strict = Verifier::new(KEY, 0);
        let mut loose = Verifier::new(KEY, 4);
        for v in [&mut strict, &mut loose] {
            assert!(v.verify(&pkts[0], src, dst).is_ok());
            assert!(v.verify(&pkts[2], src, dst).is_ok());
        }
        assert!(strict.verify(&pkts[1], src, dst).is_err());
        assert!(loose.verify(&pkts[1], src, dst).is_ok());
        assert!(loose.verify(&pkts[1], src, dst).is_err());
        assert!(loose.verify(&pkts[3], src, dst).is_ok());
    }

    proptest! {
        #[test]
        fn verify_never_panics_and_rejects_garbage(
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            window in 0u32..100,
        ) {
            let mut v = Verifier::new(KEY, window);
            // Random bytes essentially never carry a valid MAC.
            prop_assert!(v.verify(&bytes, ip("192.0.2.1"), ip("224.0.0.18")).is_err());
        }

        #[test]
        fn any_signed_message_verifies_once(
            msg in proptest::collection::vec(any::<u8>(), 0..80),
            now in any::<u64>(),
            flip in any::<usize>(),
        ) {
            let (src, dst) = (ip("2001:db8::1"), ip("ff02::12"));
            let mut s = Signer::new(KEY);
            let mut p = msg.clone();
            s.sign(&mut p, src, dst, now);
            let mut v = Verifier::new(KEY, 8);
            prop_assert_eq!(v.verify(&p, src, dst).unwrap(), &msg[..]);
            prop_assert!(v.verify(&p, src, dst).is_err());
            let mut q = msg.clone();
            s.sign(&mut q, src, dst, now);
            let i = flip % q.len();
            q[i] ^= 0x80;
            prop_assert!(Verifier::new(KEY, 8).verify(&q, src, dst).is_err());
        }
    }
}
