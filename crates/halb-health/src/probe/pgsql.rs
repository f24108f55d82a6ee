//! PostgreSQL: the frontend/backend protocol 3.0, just enough of it for a
//! health check.
//!
//! Without a `username` the probe sends an SSLRequest and is up when the
//! server answers it (`S` or `N`): the postmaster is accepting, and no
//! login is attempted (so nothing is logged as a failed login). With a
//! `username` it sends a StartupMessage (`database` defaults to the user
//! name, as libpq does) and logs in: trust, cleartext password, MD5, or
//! SASL SCRAM-SHA-256 (RFC 5802 / RFC 7677, without channel binding; the
//! server's signature is verified). It is up once the server is
//! ReadyForQuery, after `query` when set succeeded. An ErrorResponse is
//! down with the server's message (`FATAL: password authentication
//! failed for user "app"`).
//!
//! Reads are bounded: a message announcing more than [`MAX_MESSAGE`]
//! bytes fails the probe before anything is allocated, and the whole
//! conversation may read at most [`MAX_TOTAL`] bytes. A SCRAM iteration
//! count above [`MAX_ITERATIONS`] is refused (a hostile server cannot
//! make the probe spin).

use super::line::printable;
use crate::engine::ProbeOutcome;
use crate::spec::SqlSpec;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest message accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest total read in one probe.
pub const MAX_TOTAL: usize = 1024 * 1024;
/// Largest SCRAM iteration count accepted (PostgreSQL uses 4096).
pub const MAX_ITERATIONS: u32 = 100_000;

const SSL_REQUEST: u32 = 80_877_103;
const PROTOCOL_3_0: u32 = 196_608;

type HmacSha256 = Hmac<Sha256>;

/// The StartupMessage.
pub fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (k, v) in [
        ("user", user),
        ("database", database),
        ("application_name", "halb"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = u32::try_from(body.len() + 4)
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&body);
    out
}

/// A typed frontend message: tag, length, body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(
        &u32::try_from(body.len() + 4)
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// `md5` + hex(md5(hex(md5(password + user)) + salt)).
pub fn md5_password(user: &str, password: &str, salt: &[u8]) -> String {
    let inner = hex(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = Md5::digest([inner.as_bytes(), salt].concat());
    format!("md5{}", hex(&outer))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An ErrorResponse or NoticeResponse body: "SEVERITY: message".
pub fn parse_error(body: &[u8]) -> String {
    let mut severity = None;
    let mut msg = None;
    let mut code = None;
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let n = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = printable(&tail[..n]);
        match kind {
            b'S' => severity = Some(value),
            b'M' => msg = Some(value),
            b'C' => code = Some(value),
            _ => {}
        }
        rest = tail.get(n + 1..).unwrap_or_default();
    }
    let mut out = match (severity, msg) {
        (Some(s), Some(m)) => format!("{s}: {m}"),
        (None, Some(m)) => m,
        (_, None) => "error without a message".to_owned(),
    };
    if let Some(c) = code {
        out.push_str(&format!(" (SQLSTATE {c})"));
    }
    out
}

/// One SCRAM-SHA-256 exchange (client side), RFC 5802 / RFC 7677.
#[derive(Debug)]
pub struct Scram {
    client_first_bare: String,
    nonce: String,
    password: Vec<u8>,
    server_signature: Option<Vec<u8>>,
}

impl Scram {
    /// `user` goes in `n=` (PostgreSQL ignores it and sends an empty one).
    pub fn new(user: &str, password: &str, nonce: &str) -> Self {
        Scram {
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_owned(),
            password: password.as_bytes().to_vec(),
            server_signature: None,
        }
    }

    /// client-first-message: no channel binding.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// From server-first-message to client-final-message.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, String> {
        let mut r = None;
        let mut s = None;
        let mut i = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => r = Some(v),
                Some(("s", v)) => s = Some(v),
                Some(("i", v)) => i = Some(v),
                _ => {}
            }
        }
        let (Some(r), Some(s), Some(i)) = (r, s, i) else {
            return Err("malformed SCRAM server-first-message".into());
        };
        if !r.starts_with(&self.nonce) || r.len() == self.nonce.len() {
            return Err("SCRAM server nonce does not extend ours".into());
        }
        let salt = B64.decode(s).map_err(|_| "SCRAM salt is not base64")?;
        let iterations: u32 = i
            .parse()
            .map_err(|_| "SCRAM iteration count is not a number")?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(format!(
                "SCRAM iteration count {iterations} outside 1..={MAX_ITERATIONS}"
            ));
        }
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key")?;
        let stored_key = <Sha256 as sha2::Digest>::digest(&client_key);
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, b"Server Key")?;
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes())?);
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Verifies server-final-message.
    pub fn verify(&self, server_final: &str) -> Result<(), String> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(format!(
                "SCRAM error from the server: {}",
                printable(e.as_bytes())
            ));
        }
        let v = server_final
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or("malformed SCRAM server-final-message")?;
        let got = B64
            .decode(v)
            .map_err(|_| "SCRAM server signature is not base64")?;
        match &self.server_signature {
            Some(sig) if *sig == got => Ok(()),
            _ => Err("SCRAM server signature does not match: not the server we know".into()),
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let mut m = HmacSha256::new_from_slice(key).map_err(|e| format!("hmac: {e}"))?;
    m.update(data);
    Ok(m.finalize().into_bytes().to_vec())
}

struct Conn<S> {
    stream: S,
    read: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("send: {e}"))?;
        self.stream.flush().await.map_err(|e| format!("send: {e}"))
    }

    /// One backend message: (tag, body).
    async fn recv(&mut self) -> Result<(u8, Vec<u8>), String> {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head).await.map_err(closed_or)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Err(format!(
                "server sent a message of {len} bytes (limit {MAX_MESSAGE})"
            ));
        }
        self.read += len + 1;
        if self.read > MAX_TOTAL {
            return Err(format!("server sent more than {MAX_TOTAL} bytes"));
        }
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).await.map_err(closed_or)?;
        Ok((head[0], body))
    }
}

fn closed_or(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "connection closed by the server".to_owned()
    } else {
        format!("read: {e}")
    }
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &SqlSpec) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => match exchange(stream, spec, &nonce()).await {
            Ok(reason) => ProbeOutcome::up(reason),
            Err(reason) => ProbeOutcome::down(reason),
        },
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}

/// 18 random bytes, base64: the SCRAM client nonce.
fn nonce() -> String {
    let mut b = [0u8; 18];
    if getrandom::getrandom(&mut b).is_err() {
        // No entropy source: a time-derived nonce still differs per probe.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b[..16].copy_from_slice(&t.to_le_bytes());
    }
    B64.encode(b)
}

/// The conversation over an open stream: `Ok` (up) or `Err` (down).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    spec: &SqlSpec,
    client_nonce: &str,
) -> Result<String, String> {
    let mut c = Conn { stream, read: 0 };
    let Some(user) = &spec.username else {
        let mut req = 8u32.to_be_bytes().to_vec();
        req.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        c.send(&req).await?;
        let mut answer = [0u8; 1];
        c.stream.read_exact(&mut answer).await.map_err(closed_or)?;
        return match answer[0] {
            b'S' | b'N' => Ok("PostgreSQL answered".to_owned()),
            b'E' => Err("PostgreSQL refused the SSLRequest".to_owned()),
            other => Err(format!("not a PostgreSQL answer (byte {other:#04x})")),
        };
    };
    let password = spec.password.as_deref().unwrap_or("");
    let database = spec.database.as_deref().unwrap_or(user);
    c.send(&startup(user, database)).await?;
    let mut scram: Option<Scram> = None;
    let mut verified = false;
    // Authentication.
    loop {
        let (tag, body) = c.recv().await?;
        match tag {
            b'E' => return Err(format!("login failed: {}", parse_error(&body))),
            b'R' => {}
            b'N' => continue,
            other => {
                return Err(format!(
                    "unexpected message {:?} during login",
                    other as char
                ))
            }
        }
        let code = be32(&body).ok_or("malformed authentication request")?;
        let data = body.get(4..).unwrap_or_default();
        match code {
            0 if scram.is_some() && !verified => {
                return Err("server skipped the SCRAM server signature".into())
            }
            0 => break,
            3 => {
                let mut p = password.as_bytes().to_vec();
                p.push(0);
                c.send(&message(b'p', &p)).await?;
            }
            5 => {
                let salt = data.get(..4).ok_or("malformed MD5 request")?;
                let mut p = md5_password(user, password, salt).into_bytes();
                p.push(0);
                c.send(&message(b'p', &p)).await?;
            }
            10 => {
                let offered = data
                    .split(|&b| b == 0)
                    .any(|m| m == b"SCRAM-SHA-256");
                if !offered {
                    return Err("server offers no SASL mechanism we know (SCRAM-SHA-256)".into());
                }
                let s = Scram::new("", password, client_nonce);
                let first = s.client_first();
                let mut p = b"SCRAM-SHA-256\0".to_vec();
                p.extend_from_slice(&u32::try_from(first.len()).unwrap_or(0).to_be_bytes());
                p.extend_from_slice(first.as_bytes());
                c.send(&message(b'p', &p)).await?;
                scram = Some(s);
            }
            11 => {
                let s = scram.as_mut().ok_or("SASL continue before SASL start")?;
                let server_first = std::str::from_utf8(data).map_err(|_| "SCRAM message is not UTF-8")?;
                let fin = s.client_final(server_first)?;
                c.send(&message(b'p', fin.as_bytes())).await?;
            }
            12 => {
                let s = scram.as_ref().ok_or("SASL final before SASL start")?;
                let server_final = std::str::from_utf8(data).map_err(|_| "SCRAM message is not UTF-8")?;
                s.verify(server_final)?;
                verified = true;
            }
            other => {
                return Err(format!(
                    "authentication method {other} is not supported (trust, password, md5, scram-sha-256)"
                ))
            }
        }
    }
    // Parameters and key data until ReadyForQuery.
    loop {
        let (tag, body) = c.recv().await?;
        match tag {
            b'Z' => break,
            b'E' => return Err(format!("login failed: {}", parse_error(&body))),
            _ => {}
        }
    }
    let mut reason = format!("logged in as {user}");
    if let Some(q) = &spec.query {
        let mut body = q.as_bytes().to_vec();
        body.push(0);
        c.send(&message(b'Q', &body)).await?;
        let mut rows = 0u64;
        let mut error = None;
        loop {
            let (tag, body) = c.recv().await?;
            match tag {
                b'D' => rows += 1,
                b'E' => error = Some(parse_error(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        if let Some(e) = error {
            return Err(format!("query: {e}"));
        }
        reason = format!(
            "query returned {rows} row{}",
            if rows == 1 { "" } else { "s" }
        );
    }
    let _ = c.send(&message(b'X', &[])).await;
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn scram_sha_256_rfc7677_vector() {
        let mut s = Scram::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = s
            .client_final(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                 s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(s.verify("v=AAAA").is_err());
        assert!(s
            .verify("e=invalid-proof")
            .unwrap_err()
            .contains("invalid-proof"));
    }

    #[test]
    fn scram_refuses_bad_server_first() {
        let mut s = Scram::new("", "pw", "abc");
        assert!(s.client_final("r=xyz1,s=AAAA,i=4096").is_err()); // foreign nonce
        assert!(s.client_final("r=abc,s=AAAA,i=4096").is_err()); // not extended
        assert!(s.client_final("r=abcd,s=AAAA,i=999999999").is_err());
        assert!(s.client_final("r=abcd,s=!!,i=4096").is_err());
        assert!(s.client_final("garbage").is_err());
    }

    #[test]
    fn md5_password_matches_libpq() {
        // concat('md5', md5(md5('pw' || 'u') || salt)), computed by hand:
        // md5("pwu") = "…", then with the salt 0x01020304.
        let got = md5_password("u", "pw", &[1, 2, 3, 4]);
        let inner = hex(&Md5::digest(b"pwu"));
        let outer = hex(&Md5::digest(
            [inner.as_bytes(), &[1u8, 2, 3, 4][..]].concat(),
        ));
        assert_eq!(got, format!("md5{outer}"));
        assert_eq!(got.len(), 35);
    }

    #[test]
    fn error_fields() {
        let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"app\"\0\0";
        assert_eq!(
            parse_error(body),
            "FATAL: password authentication failed for user \"app\" (SQLSTATE 28P01)"
        );
        assert_eq!(parse_error(b""), "error without a message");
    }

    #[test]
    fn startup_layout() {
        let s = startup("app", "appdb");
        assert_eq!(be32(&s).unwrap() as usize, s.len());
        assert_eq!(be32(&s[4..]).unwrap(), PROTOCOL_3_0);
        assert!(s.ends_with(b"application_name\0halb\0\0"));
    }

    #[tokio::test]
    async fn a_huge_length_is_refused_without_allocating() {
        let (client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let _ = server.read(&mut buf).await;
            let _ = server.write_all(&[b'R', 0x7f, 0xff, 0xff, 0xff]).await;
            let _ = server.read(&mut buf).await;
        });
        let spec = SqlSpec {
            username: Some("app".into()),
            ..SqlSpec::default()
        };
        let e = exchange(client, &spec, "n").await.unwrap_err();
        assert!(e.contains("2147483647 bytes"), "{e}");
    }

    /// A server that asks for SCRAM, then says AuthenticationOk without
    /// proving it knows the password: refused.
    #[tokio::test]
    async fn scram_without_server_signature_is_refused() {
        let (client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let r = |code: u32, data: &[u8]| {
                let mut body = code.to_be_bytes().to_vec();
                body.extend_from_slice(data);
                message(b'R', &body)
            };
            let mut buf = [0u8; 512];
            let _ = server.read(&mut buf).await; // StartupMessage
            let _ = server.write_all(&r(10, b"SCRAM-SHA-256\0\0")).await;
            let _ = server.read(&mut buf).await; // SASLInitialResponse
            let _ = server.write_all(&r(0, b"")).await;
            let _ = server.read(&mut buf).await;
        });
        let spec = SqlSpec {
            username: Some("app".into()),
            password: Some("pw".into()),
            ..SqlSpec::default()
        };
        let e = exchange(client, &spec, "nonce").await.unwrap_err();
        assert!(e.contains("skipped the SCRAM server signature"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn error_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_error(&bytes);
        }
    }
}
