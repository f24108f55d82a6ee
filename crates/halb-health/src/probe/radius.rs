//! RADIUS (RFC 2865; ldirectord `radius`): one Access-Request over UDP
//! with User-Name, User-Password hidden with the shared secret (§5.2),
//! NAS-IP-Address (or NAS-IPv6-Address) of the local end, and a
//! Message-Authenticator (RFC 3579 §3.2, which FreeRADIUS 3.2 asks for
//! since BlastRADIUS), under a random Request Authenticator. A reply is
//! taken only with its Response Authenticator (and Message-Authenticator,
//! when it has one) verified: a forged or wrong-secret reply is down,
//! "response authenticator mismatch". Access-Accept is up; Access-Reject
//! and Access-Challenge are up too unless `require_accept` (the server
//! answered, as ldirectord reads `check_pwd`).
//!
//! The request is sent [`ATTEMPTS`] times (same ID and authenticator, as
//! RFC 2865 §2.5 has retransmissions), the attempts sharing the probe's
//! timeout less a twentieth, so the last one ends with its own reason.
//! Each datagram is read into a fixed 4 KiB buffer (RFC 2865's maximum
//! packet). The packet codec is hand-written: it is three attributes and
//! two MD5s (md-5, hmac), no crate of its size is kept up.

use super::dns::connected;
use super::line::printable;
use crate::engine::ProbeOutcome;
use crate::spec::{RadiusSpec, RADIUS_MAX_PASSWORD};
use hmac::{Hmac, Mac as _};
use md5::{Digest as _, Md5};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Largest RADIUS packet (RFC 2865 §3).
pub const MAX_PACKET: usize = 4096;

/// How many times the request is sent.
pub const ATTEMPTS: u32 = 3;

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCESS_CHALLENGE: u8 = 11;

const USER_NAME: u8 = 1;
const USER_PASSWORD: u8 = 2;
const NAS_IP_ADDRESS: u8 = 4;
const REPLY_MESSAGE: u8 = 18;
const MESSAGE_AUTHENTICATOR: u8 = 80;
const NAS_IPV6_ADDRESS: u8 = 95;

type HmacMd5 = Hmac<Md5>;

/// User-Password hidden per RFC 2865 §5.2: padded with NULs to a multiple
/// of 16 (16 for an empty one), each block XORed with MD5(secret + the
/// previous ciphertext block, the Request Authenticator first). `None`
/// when longer than [`RADIUS_MAX_PASSWORD`].
pub fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Option<Vec<u8>> {
    if password.len() > RADIUS_MAX_PASSWORD {
        return None;
    }
    let padded = password.len().div_ceil(16).max(1) * 16;
    let mut out = password.to_vec();
    out.resize(padded, 0);
    let mut prev: [u8; 16] = *authenticator;
    for block in out.chunks_mut(16) {
        let b = Md5::new()
            .chain_update(secret)
            .chain_update(prev)
            .finalize();
        for (c, k) in block.iter_mut().zip(b.iter()) {
            *c ^= k;
        }
        prev.copy_from_slice(block);
    }
    Some(out)
}

/// The inverse of [`hide_password`] (the server's side; for the tests).
pub fn reveal_password(hidden: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hidden.len());
    let mut prev: &[u8] = authenticator;
    for block in hidden.chunks(16) {
        let b = Md5::new()
            .chain_update(secret)
            .chain_update(prev)
            .finalize();
        out.extend(block.iter().zip(b.iter()).map(|(c, k)| c ^ k));
        prev = block;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    out
}

fn attribute(out: &mut Vec<u8>, kind: u8, value: &[u8]) -> Result<(), String> {
    let len = u8::try_from(value.len() + 2)
        .ok()
        .filter(|_| !value.is_empty())
        .ok_or_else(|| format!("RADIUS attribute {kind}: {} bytes (1..=253)", value.len()))?;
    out.push(kind);
    out.push(len);
    out.extend_from_slice(value);
    Ok(())
}

fn hmac_md5(secret: &[u8], packet: &[u8]) -> [u8; 16] {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = match HmacMd5::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0; 16],
    };
    mac.update(packet);
    mac.finalize().into_bytes().into()
}

/// The Access-Request: User-Name, User-Password, NAS-IP-Address (or
/// NAS-IPv6-Address) and Message-Authenticator. `Err` when a value does
/// not fit (an empty or over-long user, an over-long password).
pub fn encode_request(
    id: u8,
    authenticator: &[u8; 16],
    spec: &RadiusSpec,
    nas: IpAddr,
) -> Result<Vec<u8>, String> {
    let secret = spec.secret.as_bytes();
    let mut p = vec![ACCESS_REQUEST, id, 0, 0];
    p.extend_from_slice(authenticator);
    attribute(&mut p, USER_NAME, spec.username.as_bytes())?;
    let password = spec.password.as_deref().unwrap_or("").as_bytes();
    let hidden = hide_password(password, secret, authenticator)
        .ok_or_else(|| format!("the password is longer than {RADIUS_MAX_PASSWORD} bytes"))?;
    attribute(&mut p, USER_PASSWORD, &hidden)?;
    match nas {
        IpAddr::V4(a) => attribute(&mut p, NAS_IP_ADDRESS, &a.octets())?,
        IpAddr::V6(a) => attribute(&mut p, NAS_IPV6_ADDRESS, &a.octets())?,
    }
    let ma_at = p.len() + 2;
    attribute(&mut p, MESSAGE_AUTHENTICATOR, &[0; 16])?;
    let len = u16::try_from(p.len()).map_err(|_| "RADIUS request too long".to_owned())?;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    let mac = hmac_md5(secret, &p);
    p[ma_at..ma_at + 16].copy_from_slice(&mac);
    Ok(p)
}

/// A verified reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u8,
    /// The Reply-Message attributes, joined.
    pub message: String,
}

/// Why a datagram is not the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Another request's ID (a late reply): ignored, the wait goes on.
    OtherId(u8),
    /// The reply to this request, but not a valid one: the probe is down.
    Bad(String),
}

/// Checks and decodes a datagram as the reply to the request `id` with
/// `authenticator`: its length, code, Response Authenticator, attributes
/// and Message-Authenticator (when present).
pub fn parse_reply(
    buf: &[u8],
    id: u8,
    authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Reply, Rejected> {
    let bad = |s: String| Err(Rejected::Bad(s));
    if buf.len() < 20 {
        return bad(format!("a {}-byte datagram is no RADIUS packet", buf.len()));
    }
    if buf[1] != id {
        return Err(Rejected::OtherId(buf[1]));
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if !(20..=MAX_PACKET).contains(&len) || len > buf.len() {
        return bad(format!(
            "RADIUS length {len} in a {}-byte datagram",
            buf.len()
        ));
    }
    // Octets past the Length are padding (RFC 2865 §3).
    let packet = &buf[..len];
    let code = packet[0];
    let expected = Md5::new()
        .chain_update(&packet[..4])
        .chain_update(authenticator)
        .chain_update(&packet[20..])
        .chain_update(secret)
        .finalize();
    if expected[..] != packet[4..20] {
        return bad("response authenticator mismatch (is the shared secret right?)".to_owned());
    }
    let mut message = String::new();
    let mut rest = &packet[20..];
    while !rest.is_empty() {
        let (kind, alen) = match rest {
            [k, l, ..] => (*k, usize::from(*l)),
            _ => return bad("a truncated RADIUS attribute".to_owned()),
        };
        if alen < 2 || alen > rest.len() {
            return bad(format!("RADIUS attribute {kind} of length {alen}"));
        }
        let value = &rest[2..alen];
        match kind {
            REPLY_MESSAGE => {
                if !message.is_empty() {
                    message.push(' ');
                }
                message.push_str(&printable(value));
            }
            MESSAGE_AUTHENTICATOR => {
                if value.len() != 16 {
                    return bad(format!("a Message-Authenticator of {} bytes", value.len()));
                }
                let at = len - rest.len() + 2;
                let mut zeroed = packet.to_vec();
                zeroed[4..20].copy_from_slice(authenticator);
                zeroed[at..at + 16].fill(0);
                if hmac_md5(secret, &zeroed)[..] != *value {
                    return bad("Message-Authenticator mismatch".to_owned());
                }
            }
            _ => {}
        }
        rest = &rest[alen..];
    }
    match code {
        ACCESS_ACCEPT | ACCESS_REJECT | ACCESS_CHALLENGE => Ok(Reply { code, message }),
        other => bad(format!("RADIUS code {other} in reply to an Access-Request")),
    }
}

/// The verdict on a verified reply.
pub fn judge(reply: &Reply, spec: &RadiusSpec) -> ProbeOutcome {
    let user = &spec.username;
    let name = match reply.code {
        ACCESS_ACCEPT => "Access-Accept",
        ACCESS_REJECT => "Access-Reject",
        _ => "Access-Challenge",
    };
    let text = if reply.message.is_empty() {
        String::new()
    } else {
        format!(": {}", reply.message)
    };
    if reply.code == ACCESS_ACCEPT {
        ProbeOutcome::up(format!("{name} for {user}{text}"))
    } else if spec.require_accept {
        ProbeOutcome::down(format!("{name} for {user}{text} (require_accept)"))
    } else {
        ProbeOutcome::up(format!("{name} for {user}{text} (the server answers)"))
    }
}

/// Sends and judges. Ends by itself within `timeout - timeout / 20`.
pub async fn probe(target: SocketAddr, spec: &RadiusSpec, timeout: Duration) -> ProbeOutcome {
    let mut random = [0u8; 17];
    if let Err(e) = getrandom::getrandom(&mut random) {
        return ProbeOutcome::down(format!("no random Request Authenticator: {e}"));
    }
    let id = random[0];
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&random[1..]);
    let socket = match connected(target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::down(e),
    };
    let nas = match socket.local_addr() {
        Ok(a) => a.ip(),
        Err(e) => return ProbeOutcome::down(format!("local address: {e}")),
    };
    let request = match encode_request(id, &authenticator, spec, nas) {
        Ok(r) => r,
        Err(e) => return ProbeOutcome::down(e),
    };
    let budget = timeout - timeout / 20;
    let each = budget / ATTEMPTS;
    let unreachable = || ProbeOutcome::down(format!("{target}: port unreachable"));
    let mut buf = vec![0u8; MAX_PACKET];
    for _ in 0..ATTEMPTS {
        if let Err(e) = socket.send(&request).await {
            return match e.kind() {
                std::io::ErrorKind::ConnectionRefused => unreachable(),
                _ => ProbeOutcome::down(format!("send to {target}: {e}")),
            };
        }
        let deadline = tokio::time::Instant::now() + each;
        loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return unreachable()
                }
                Ok(Err(e)) => return ProbeOutcome::down(format!("recv from {target}: {e}")),
            };
            match parse_reply(
                &buf[..n.min(buf.len())],
                id,
                &authenticator,
                spec.secret.as_bytes(),
            ) {
                Ok(reply) => return judge(&reply, spec),
                Err(Rejected::OtherId(_)) => continue,
                Err(Rejected::Bad(reason)) => return ProbeOutcome::down(reason),
            }
        }
    }
    ProbeOutcome::down(format!(
        "no reply to {ATTEMPTS} Access-Requests in {budget:?} (a RADIUS server drops requests from an unknown client or with a wrong secret)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RadiusSpec {
        RadiusSpec {
            password: Some("hc-pass-1".into()),
            ..RadiusSpec::new("testing123")
        }
    }

    /// A reply as a server builds it, with a Message-Authenticator.
    fn reply(code: u8, id: u8, auth: &[u8; 16], secret: &[u8], msg: &str) -> Vec<u8> {
        let mut p = vec![code, id, 0, 0];
        p.extend_from_slice(auth);
        let ma = p.len() + 2;
        attribute(&mut p, MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
        if !msg.is_empty() {
            attribute(&mut p, REPLY_MESSAGE, msg.as_bytes()).unwrap();
        }
        let len = u16::try_from(p.len()).unwrap();
        p[2..4].copy_from_slice(&len.to_be_bytes());
        let mac = hmac_md5(secret, &p);
        p[ma..ma + 16].copy_from_slice(&mac);
        let digest = Md5::new().chain_update(&p).chain_update(secret).finalize();
        p[4..20].copy_from_slice(&digest);
        p
    }

    #[test]
    fn password_hiding() {
        let auth = [7u8; 16];
        // RFC 2865 §5.2 by hand: one block, MD5(secret + RA) XOR padded.
        let h = hide_password(b"abc", b"s", &auth).unwrap();
        let b = Md5::new().chain_update(b"s").chain_update(auth).finalize();
        let mut want = [0u8; 16];
        want[..3].copy_from_slice(b"abc");
        for (w, k) in want.iter_mut().zip(b.iter()) {
            *w ^= k;
        }
        assert_eq!(h, want);
        assert_eq!(hide_password(b"", b"s", &auth).unwrap().len(), 16);
        assert_eq!(hide_password(&[b'x'; 17], b"s", &auth).unwrap().len(), 32);
        assert!(hide_password(&[b'x'; 129], b"s", &auth).is_none());
        let long = b"a password longer than sixteen bytes";
        let h = hide_password(long, b"secret", &auth).unwrap();
        assert_eq!(reveal_password(&h, b"secret", &auth), long);
    }

    #[test]
    fn request_layout() {
        let auth = [1u8; 16];
        let p = encode_request(9, &auth, &spec(), "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(p[0], ACCESS_REQUEST);
        assert_eq!(p[1], 9);
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(&p[4..20], &auth);
        // User-Name "halb", then User-Password (16), NAS-IP, Message-Authenticator.
        assert_eq!(&p[20..26], &[USER_NAME, 6, b'h', b'a', b'l', b'b']);
        assert_eq!(&p[26..28], &[USER_PASSWORD, 18]);
        assert_eq!(
            reveal_password(&p[28..44], b"testing123", &auth),
            b"hc-pass-1"
        );
        assert_eq!(&p[44..50], &[NAS_IP_ADDRESS, 6, 127, 0, 0, 1]);
        assert_eq!(&p[50..52], &[MESSAGE_AUTHENTICATOR, 18]);
        let mut zeroed = p.clone();
        zeroed[52..68].fill(0);
        assert_eq!(hmac_md5(b"testing123", &zeroed)[..], p[52..68]);
        let v6 = encode_request(9, &auth, &spec(), "::1".parse().unwrap()).unwrap();
        assert_eq!(&v6[44..46], &[NAS_IPV6_ADDRESS, 18]);
        let empty_user = RadiusSpec {
            username: String::new(),
            ..spec()
        };
        assert!(encode_request(9, &auth, &empty_user, "::1".parse().unwrap()).is_err());
    }

    #[test]
    fn replies() {
        let auth = [3u8; 16];
        let s = b"testing123";
        let ok = reply(ACCESS_ACCEPT, 5, &auth, s, "welcome");
        let r = parse_reply(&ok, 5, &auth, s).unwrap();
        assert_eq!(
            r,
            Reply {
                code: ACCESS_ACCEPT,
                message: "welcome".into()
            }
        );
        assert_eq!(judge(&r, &spec()).reason, "Access-Accept for halb: welcome");
        // Padding past the Length is ignored.
        let mut padded = ok.clone();
        padded.extend_from_slice(&[0; 5]);
        assert!(parse_reply(&padded, 5, &auth, s).is_ok());
        assert_eq!(parse_reply(&ok, 6, &auth, s), Err(Rejected::OtherId(5)));
        let wrong = parse_reply(&ok, 5, &auth, b"other").unwrap_err();
        assert!(
            matches!(&wrong, Rejected::Bad(m) if m.contains("response authenticator mismatch")),
            "{wrong:?}"
        );
        let reject = reply(ACCESS_REJECT, 5, &auth, s, "");
        let r = parse_reply(&reject, 5, &auth, s).unwrap();
        assert!(judge(&r, &spec()).ok);
        let strict = RadiusSpec {
            require_accept: true,
            ..spec()
        };
        let o = judge(&r, &strict);
        assert!(
            !o.ok && o.reason.starts_with("Access-Reject for halb"),
            "{o:?}"
        );
        // A valid Response Authenticator over a tampered Message-Authenticator.
        let mut forged = reply(ACCESS_ACCEPT, 5, &auth, s, "");
        forged[22] ^= 1;
        let digest = Md5::new()
            .chain_update(&forged[..4])
            .chain_update(auth)
            .chain_update(&forged[20..])
            .chain_update(s)
            .finalize();
        forged[4..20].copy_from_slice(&digest);
        assert_eq!(
            parse_reply(&forged, 5, &auth, s),
            Err(Rejected::Bad("Message-Authenticator mismatch".into()))
        );
        assert!(parse_reply(&ok[..19], 5, &auth, s).is_err());
        assert!(parse_reply(&ok[..ok.len() - 1], 5, &auth, s).is_err());
    }

    #[tokio::test]
    async fn loopback_server_and_silence() {
        use tokio::net::UdpSocket;
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let mut n_req = 0;
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                n_req += 1;
                let mut auth = [0u8; 16];
                auth.copy_from_slice(&buf[4..20]);
                // The first request is dropped (a retransmission is
                // needed), a stale ID is sent, then the reply.
                if n_req == 1 || n < 20 {
                    continue;
                }
                let stale = reply(
                    ACCESS_ACCEPT,
                    buf[1].wrapping_add(1),
                    &auth,
                    b"testing123",
                    "",
                );
                let _ = server.send_to(&stale, from).await;
                let r = reply(ACCESS_REJECT, buf[1], &auth, b"testing123", "no such user");
                let _ = server.send_to(&r, from).await;
            }
        });
        let o = probe(addr, &spec(), Duration::from_secs(3)).await;
        assert_eq!(
            o.reason,
            "Access-Reject for halb: no such user (the server answers)"
        );
        // A server with another secret: its reply does not verify.
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let other_addr = other.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = other.recv_from(&mut buf).await {
                if n < 20 {
                    continue;
                }
                let mut auth = [0u8; 16];
                auth.copy_from_slice(&buf[4..20]);
                let r = reply(ACCESS_ACCEPT, buf[1], &auth, b"not-the-secret", "");
                let _ = other.send_to(&r, from).await;
            }
        });
        let o = probe(other_addr, &spec(), Duration::from_secs(3)).await;
        assert!(
            !o.ok && o.reason.starts_with("response authenticator mismatch"),
            "{o:?}"
        );
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let o = probe(
            silent.local_addr().unwrap(),
            &spec(),
            Duration::from_millis(300),
        )
        .await;
        assert!(
            !o.ok && o.reason.starts_with("no reply to 3 Access-Requests"),
            "{o:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), id: u8) {
            let _ = parse_reply(&bytes, id, &[0; 16], b"s");
        }

        #[test]
        fn hiding_round_trips(pw in proptest::collection::vec(1u8..=255, 0..=128), secret in "[ -~]{1,40}", auth: [u8; 16]) {
            let h = hide_password(&pw, secret.as_bytes(), &auth).unwrap();
            proptest::prop_assert_eq!(h.len() % 16, 0);
            proptest::prop_assert_eq!(reveal_password(&h, secret.as_bytes(), &auth), pw);
        }
    }
}
