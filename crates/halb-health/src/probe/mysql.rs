//! MySQL / MariaDB: the client/server protocol, just enough of it for a
//! health check.
//!
//! Without a `username` the probe reads the server's greeting (handshake
//! v10) and is up when one arrives; an error packet instead ("Host … is
//! blocked", "Too many connections") is down with its message. With a
//! `username` it logs in (`mysql_native_password`, or
//! `caching_sha2_password` when the server's cache has the user: the
//! fast-auth path), opening `database` when set, then runs `query` when
//! set (ldirectord `request = "SELECT 1"`): up only if all of that
//! succeeds. `caching_sha2_password` full authentication (no cached
//! entry for the user, e.g. after a server restart) asks the server for
//! its RSA public key and sends the password encrypted with it (RSA-OAEP,
//! as `mysql --get-server-public-key` does): the key is not verified, so
//! a man in the middle could learn the check user's password; give that
//! user no rights beyond the check.
//!
//! Reads are bounded: a packet header announcing more than
//! [`MAX_PACKET`] bytes fails the probe before anything is allocated, and
//! a query's result may total at most [`MAX_RESULT`] bytes.

use super::line::printable;
use crate::engine::ProbeOutcome;
use crate::spec::SqlSpec;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest packet accepted (handshake, OK, error, a column or row of a
/// health query).
pub const MAX_PACKET: usize = 64 * 1024;
/// Largest total size of a query's result.
pub const MAX_RESULT: usize = 1024 * 1024;

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;

/// The server's greeting, as much of it as the probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub version: String,
    pub capabilities: u32,
    /// The 20-byte nonce ("auth-plugin-data").
    pub scramble: Vec<u8>,
    /// The server's default authentication plugin.
    pub plugin: String,
}

/// An error packet: `ERROR 1045 (28000): Access denied …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub state: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            Some(s) => write!(f, "{} (ERROR {} ({s}))", self.message, self.code),
            None => write!(f, "{} (ERROR {})", self.message, self.code),
        }
    }
}

/// Parses an error packet (first byte 0xff).
pub fn parse_error(p: &[u8]) -> Option<ServerError> {
    if p.first() != Some(&0xff) || p.len() < 3 {
        return None;
    }
    let code = u16::from_le_bytes([p[1], p[2]]);
    let rest = &p[3..];
    let (state, msg) = match rest.split_first() {
        Some((b'#', tail)) if tail.len() >= 5 => (Some(printable(&tail[..5])), &tail[5..]),
        _ => (None, rest),
    };
    Some(ServerError {
        code,
        state,
        message: printable(msg),
    })
}

/// Reads a NUL-terminated string at `*at`, advancing past the NUL.
fn cstr<'a>(p: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let rest = p.get(*at..)?;
    let n = rest.iter().position(|&b| b == 0)?;
    *at += n + 1;
    Some(&rest[..n])
}

/// Parses the initial handshake packet (protocol 10). An error packet in
/// its place is returned as `Err`.
pub fn parse_greeting(p: &[u8]) -> Result<Greeting, String> {
    if let Some(e) = parse_error(p) {
        return Err(format!("server refused the connection: {e}"));
    }
    match p.first() {
        Some(10) => {}
        Some(v) => return Err(format!("not a MySQL handshake (protocol version {v})")),
        None => return Err("empty handshake packet".into()),
    }
    let mut at = 1;
    let version = cstr(p, &mut at).ok_or("truncated handshake (server version)")?;
    let version = printable(version);
    // Connection id (4), auth-plugin-data part 1 (8), filler (1).
    let part1 = p
        .get(at + 4..at + 12)
        .ok_or("truncated handshake (scramble)")?;
    let mut scramble = part1.to_vec();
    at += 13;
    let low = p
        .get(at..at + 2)
        .ok_or("truncated handshake (capabilities)")?;
    let mut capabilities = u32::from(u16::from_le_bytes([low[0], low[1]]));
    at += 2;
    let mut plugin = String::from("mysql_native_password");
    // Charset (1), status (2), capabilities high (2), data length (1),
    // reserved (10).
    if let Some(ext) = p.get(at..at + 16) {
        capabilities |= u32::from(u16::from_le_bytes([ext[3], ext[4]])) << 16;
        let data_len = usize::from(ext[5]);
        at += 16;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let n = data_len.saturating_sub(8).max(13);
            let part2 = p
                .get(at..at + n)
                .ok_or("truncated handshake (scramble 2)")?;
            // The last byte is a NUL terminator.
            let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
            scramble.extend_from_slice(part2);
            at += n;
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            let name = cstr(p, &mut at).or_else(|| p.get(at..)).unwrap_or_default();
            if !name.is_empty() {
                plugin = String::from_utf8_lossy(name).into_owned();
            }
        }
    }
    Ok(Greeting {
        version,
        capabilities,
        scramble,
        plugin,
    })
}

/// `mysql_native_password`: SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))).
/// An empty password is sent as an empty response.
pub fn native_scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password` fast path:
/// SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce).
pub fn sha2_scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// The auth response for `plugin`, or `Err` naming an unsupported one.
fn auth_response(plugin: &str, password: &[u8], nonce: &[u8]) -> Result<Vec<u8>, String> {
    // The nonce of an auth switch ends with a NUL; the scramble is 20 bytes.
    let nonce = nonce.get(..20).unwrap_or(nonce);
    match plugin {
        "mysql_native_password" => Ok(native_scramble(password, nonce)),
        "caching_sha2_password" => Ok(sha2_scramble(password, nonce)),
        other => Err(format!(
            "authentication plugin {} is not supported (mysql_native_password, caching_sha2_password)",
            printable(other.as_bytes())
        )),
    }
}

/// `caching_sha2_password` full authentication without TLS: the
/// password, NUL-terminated, XORed with the nonce (cyclically), encrypted
/// with the server's RSA public key (PEM, SPKI or PKCS#1) using OAEP with
/// SHA-1, as the MySQL client does.
pub fn rsa_encrypt_password(pem: &[u8], password: &[u8], nonce: &[u8]) -> Result<Vec<u8>, String> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::pkcs8::DecodePublicKey as _;
    let pem = std::str::from_utf8(pem)
        .map_err(|_| "the server's RSA public key is not text")?
        .trim_end_matches('\0')
        .trim();
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("the server's RSA public key: {e}"))?;
    if nonce.is_empty() {
        return Err("empty nonce".into());
    }
    let mut msg = password.to_vec();
    msg.push(0);
    for (i, b) in msg.iter_mut().enumerate() {
        *b ^= nonce[i % nonce.len()];
    }
    key.encrypt(&mut rsa::rand_core::OsRng, rsa::Oaep::new::<Sha1>(), &msg)
        .map_err(|e| format!("RSA encryption of the password: {e}"))
}

/// The HandshakeResponse41 payload.
pub fn login_packet(g: &Greeting, spec: &SqlSpec, user: &str) -> Result<Vec<u8>, String> {
    let password = spec.password.as_deref().unwrap_or("").as_bytes();
    let auth = auth_response(&g.plugin, password, &g.scramble).or_else(|_| {
        // Unknown default plugin: offer native; the server may switch.
        auth_response("mysql_native_password", password, &g.scramble)
    })?;
    let plugin = if g.plugin == "caching_sha2_password" {
        "caching_sha2_password"
    } else {
        "mysql_native_password"
    };
    let mut caps = CLIENT_LONG_PASSWORD
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH;
    if spec.database.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    let needed = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
    if g.capabilities & needed != needed {
        return Err(format!(
            "server {} lacks protocol 4.1 authentication",
            g.version
        ));
    }
    caps &= g.capabilities | CLIENT_CONNECT_WITH_DB;
    let mut out = Vec::with_capacity(64 + user.len());
    out.extend_from_slice(&caps.to_le_bytes());
    out.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet 16 MiB
    out.push(45); // utf8mb4_general_ci
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.push(u8::try_from(auth.len()).map_err(|_| "auth response too long")?);
    out.extend_from_slice(&auth);
    if let Some(db) = &spec.database {
        out.extend_from_slice(db.as_bytes());
        out.push(0);
    }
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        out.extend_from_slice(plugin.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// Packet framing over a stream: 3-byte length, sequence id, payload.
struct Conn<S> {
    stream: S,
    seq: u8,
    /// Bytes read since the last [`Conn::reset_budget`].
    read: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn read_packet(&mut self) -> Result<Vec<u8>, String> {
        let mut head = [0u8; 4];
        self.stream
            .read_exact(&mut head)
            .await
            .map_err(|e| closed_or(e, "read"))?;
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        if len > MAX_PACKET {
            return Err(format!(
                "server sent a packet of {len} bytes (limit {MAX_PACKET})"
            ));
        }
        self.read += len + 4;
        if self.read > MAX_RESULT {
            return Err(format!("server sent more than {MAX_RESULT} bytes"));
        }
        self.seq = head[3].wrapping_add(1);
        let mut p = vec![0u8; len];
        self.stream
            .read_exact(&mut p)
            .await
            .map_err(|e| closed_or(e, "read"))?;
        Ok(p)
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), String> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&n| n < 1 << 24)
            .ok_or("packet too long")?;
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&len.to_le_bytes()[..3]);
        out.push(self.seq);
        out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("send: {e}"))?;
        self.stream.flush().await.map_err(|e| format!("send: {e}"))
    }
}

fn closed_or(e: std::io::Error, what: &str) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "connection closed by the server".to_owned()
    } else {
        format!("{what}: {e}")
    }
}

/// Connects and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &SqlSpec) -> ProbeOutcome {
    match TcpStream::connect(target).await {
        Ok(stream) => match exchange(stream, spec).await {
            Ok(reason) => ProbeOutcome::up(reason),
            Err(reason) => ProbeOutcome::down(reason),
        },
        Err(e) => ProbeOutcome::down(format!("connect to {target}: {e}")),
    }
}

/// The conversation over an open stream: `Ok` (up) or `Err` (down),
/// with the reason.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    spec: &SqlSpec,
) -> Result<String, String> {
    let mut c = Conn {
        stream,
        seq: 0,
        read: 0,
    };
    let g = parse_greeting(&c.read_packet().await?)?;
    let Some(user) = &spec.username else {
        return Ok(format!("greeting from {}", g.version));
    };
    let login = login_packet(&g, spec, user)?;
    c.write_packet(&login).await?;
    let password = spec.password.as_deref().unwrap_or("").as_bytes();
    let mut switched = false;
    // The nonce the current plugin works with.
    let mut nonce = g.scramble.clone();
    let mut awaiting_key = false;
    loop {
        let p = c.read_packet().await?;
        match p.first() {
            Some(0x00) => break,
            Some(0xff) => {
                let e = parse_error(&p).ok_or("malformed error packet")?;
                return Err(format!("login failed: {e}"));
            }
            // Auth switch request: plugin name, then its nonce.
            Some(0xfe) if !switched => {
                switched = true;
                let mut at = 1;
                let name = cstr(&p, &mut at).ok_or("malformed auth switch request")?;
                let name = String::from_utf8_lossy(name).into_owned();
                let data = p.get(at..).unwrap_or_default();
                let resp = auth_response(&name, password, data)?;
                nonce = data.get(..20).unwrap_or(data).to_vec();
                c.write_packet(&resp).await?;
            }
            // The server's RSA public key, which we asked for.
            Some(0x01) if awaiting_key => {
                awaiting_key = false;
                let blob = rsa_encrypt_password(&p[1..], password, &nonce)?;
                c.write_packet(&blob).await?;
            }
            // caching_sha2_password: 3 = fast auth succeeded (an OK
            // follows), 4 = full authentication required.
            Some(0x01) => match p.get(1) {
                Some(3) => {}
                // Full authentication: ask for the public key.
                Some(4) => {
                    awaiting_key = true;
                    c.write_packet(&[0x02]).await?;
                }
                _ => return Err("unexpected auth data from the server".to_owned()),
            },
            _ => return Err("unexpected packet during login".to_owned()),
        }
    }
    let mut reason = format!("logged in as {user} ({})", g.version);
    if let Some(q) = &spec.query {
        c.seq = 0;
        c.read = 0;
        let mut cmd = Vec::with_capacity(q.len() + 1);
        cmd.push(0x03); // COM_QUERY
        cmd.extend_from_slice(q.as_bytes());
        c.write_packet(&cmd).await?;
        reason = query_result(&mut c)
            .await
            .map_err(|e| format!("query: {e}"))?;
    }
    c.seq = 0;
    let _ = c.write_packet(&[0x01]).await; // COM_QUIT; its fate does not matter
    Ok(reason)
}

/// Reads a COM_QUERY response to its end.
async fn query_result<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<S>,
) -> Result<String, String> {
    let p = c.read_packet().await?;
    match p.first() {
        Some(0x00) => return Ok("query OK".into()),
        Some(0xff) => return Err(parse_error(&p).ok_or("malformed error packet")?.to_string()),
        Some(0xfb) => return Err("server asked for a local file".into()),
        None => return Err("empty response".into()),
        _ => {}
    }
    // A result set: column definitions, EOF, rows, EOF (or an error).
    let mut eofs = 0;
    let mut rows = 0u64;
    loop {
        let p = c.read_packet().await?;
        match p.first() {
            Some(0xfe) if p.len() < 9 => {
                eofs += 1;
                if eofs == 2 {
                    return Ok(format!(
                        "query returned {rows} row{}",
                        if rows == 1 { "" } else { "s" }
                    ));
                }
            }
            Some(0xff) => return Err(parse_error(&p).ok_or("malformed error packet")?.to_string()),
            _ if eofs == 1 => rows += 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// A vector captured from MySQL 8 (Boost.MySQL's test suite,
    /// `test_handshake_csha2p_hash_password`: password "hola").
    #[test]
    fn caching_sha2_scramble_known_vector() {
        let nonce = [
            0x3e, 0x3b, 0x04, 0x55, 0x04, 0x70, 0x16, 0x3a, 0x4c, 0x15, 0x35, 0x03, 0x15, 0x76,
            0x73, 0x22, 0x46, 0x08, 0x18, 0x01,
        ];
        let expected = [
            0xa1, 0xc1, 0xe1, 0xe9, 0x1b, 0xb6, 0x54, 0x4b, 0xa7, 0x37, 0x4b, 0x9c, 0x56, 0x6d,
            0x69, 0x3e, 0x06, 0xca, 0x07, 0x02, 0x98, 0xac, 0xd1, 0x06, 0x18, 0xc6, 0x90, 0x38,
            0x9d, 0x88, 0xe1, 0x20,
        ];
        assert_eq!(sha2_scramble(b"hola", &nonce), expected);
        assert!(sha2_scramble(b"", &nonce).is_empty());
    }

    /// mysql_native_password: checked against the definition (the
    /// server stores SHA1(SHA1(pw)) and recovers SHA1(pw) from the reply).
    #[test]
    fn native_scramble_round_trips_like_the_server() {
        let nonce = b"abcdefghij0123456789";
        let reply = native_scramble(b"s3cret", nonce);
        let stored = Sha1::digest(Sha1::digest(b"s3cret"));
        let mut h = Sha1::new();
        h.update(nonce);
        h.update(stored);
        let mix = h.finalize();
        let stage1: Vec<u8> = reply.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(hex(&Sha1::digest(&stage1)), hex(&stored));
        assert!(native_scramble(b"", nonce).is_empty());
    }

    fn greeting_bytes(plugin: &str) -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"10.11.6-MariaDB\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"12345678");
        p.push(0);
        let caps: u32 = 0xf7fe | CLIENT_PLUGIN_AUTH | 0x10_0000;
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"abcdefghijkl\0");
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        p
    }

    #[test]
    fn parses_a_greeting() {
        let g = parse_greeting(&greeting_bytes("mysql_native_password")).unwrap();
        assert_eq!(g.version, "10.11.6-MariaDB");
        assert_eq!(g.scramble, b"12345678abcdefghijkl");
        assert_eq!(g.plugin, "mysql_native_password");
        let err = b"\xff\x69\x04Host '10.0.0.1' is blocked";
        let e = parse_greeting(err).unwrap_err();
        assert!(e.contains("is blocked") && e.contains("1129"), "{e}");
        assert!(parse_greeting(b"\x09abc").is_err());
        // Every truncation is an error, never a panic.
        let full = greeting_bytes("caching_sha2_password");
        for n in 0..full.len() {
            let _ = parse_greeting(&full[..n]);
        }
    }

    #[test]
    fn error_packets() {
        let e = parse_error(b"\xff\x15\x04#28000Access denied for user 'a'@'localhost'").unwrap();
        assert_eq!(e.code, 1045);
        assert_eq!(e.state.as_deref(), Some("28000"));
        assert_eq!(
            e.to_string(),
            "Access denied for user 'a'@'localhost' (ERROR 1045 (28000))"
        );
        assert_eq!(parse_error(b"\x00"), None);
    }

    #[tokio::test]
    async fn a_huge_length_is_refused_without_allocating() {
        let (client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            // 16 MiB - 1 announced, nothing sent.
            let _ = server.write_all(&[0xff, 0xff, 0xff, 0x00]).await;
            let mut buf = [0u8; 16];
            let _ = server.read(&mut buf).await;
        });
        let e = exchange(client, &SqlSpec::default()).await.unwrap_err();
        assert!(e.contains("16777215 bytes"), "{e}");
    }

    #[tokio::test]
    async fn greeting_only_without_a_user() {
        let (client, mut server) = tokio::io::duplex(1024);
        let g = greeting_bytes("mysql_native_password");
        tokio::spawn(async move {
            let mut out = (g.len() as u32).to_le_bytes()[..3].to_vec();
            out.push(0);
            out.extend_from_slice(&g);
            let _ = server.write_all(&out).await;
            let mut buf = [0u8; 16];
            let _ = server.read(&mut buf).await;
        });
        let r = exchange(client, &SqlSpec::default()).await.unwrap();
        assert_eq!(r, "greeting from 10.11.6-MariaDB");
    }

    /// A scripted server: sends the greeting, then answers each client
    /// packet with the next group of `replies` (payloads), recording what
    /// the client sent.
    async fn scripted(
        greeting: Vec<u8>,
        replies: Vec<Vec<Vec<u8>>>,
        spec: SqlSpec,
    ) -> (Result<String, String>, Vec<Vec<u8>>) {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(async move {
            let frame = |seq: u8, p: &[u8]| {
                let mut out = (p.len() as u32).to_le_bytes()[..3].to_vec();
                out.push(seq);
                out.extend_from_slice(p);
                out
            };
            server.write_all(&frame(0, &greeting)).await.unwrap();
            let mut seen = Vec::new();
            for reply in replies {
                let mut head = [0u8; 4];
                if server.read_exact(&mut head).await.is_err() {
                    break;
                }
                let len = usize::from(head[0]) | usize::from(head[1]) << 8;
                let mut p = vec![0u8; len];
                server.read_exact(&mut p).await.unwrap();
                seen.push(p);
                for (i, r) in reply.iter().enumerate() {
                    let seq = head[3] + 1 + i as u8;
                    server.write_all(&frame(seq, r)).await.unwrap();
                }
            }
            seen
        });
        let r = exchange(client, &spec).await;
        (r, task.await.unwrap())
    }

    fn login(user: &str, pw: &str) -> SqlSpec {
        SqlSpec {
            username: Some(user.into()),
            password: Some(pw.into()),
            ..SqlSpec::default()
        }
    }

    #[tokio::test]
    async fn auth_switch_to_native_password() {
        // The server's default is caching_sha2; it switches us to native
        // with a new nonce (ending with a NUL).
        let mut switch = b"\xfemysql_native_password\0".to_vec();
        switch.extend_from_slice(b"ABCDEFGHIJKLMNOPQRST\0");
        let (r, seen) = scripted(
            greeting_bytes("caching_sha2_password"),
            vec![vec![switch], vec![vec![0, 0, 0, 2, 0, 0, 0]]],
            login("app", "pw"),
        )
        .await;
        assert!(r.unwrap().starts_with("logged in as app"));
        // First the sha2 scramble of the greeting's nonce, then the
        // native scramble of the switch's nonce.
        assert!(seen[0].ends_with(b"caching_sha2_password\0"));
        assert_eq!(seen[1], native_scramble(b"pw", b"ABCDEFGHIJKLMNOPQRST"));
    }

    #[tokio::test]
    async fn caching_sha2_fast_and_full_auth() {
        // Fast auth: 0x01 0x03, then OK, with no client packet between.
        let (r, seen) = scripted(
            greeting_bytes("caching_sha2_password"),
            vec![vec![vec![0x01, 0x03], vec![0, 0, 0, 2, 0, 0, 0]]],
            login("app", "hola"),
        )
        .await;
        assert!(r.unwrap().starts_with("logged in as app"));
        let g = parse_greeting(&greeting_bytes("caching_sha2_password")).unwrap();
        let auth = sha2_scramble(b"hola", &g.scramble);
        assert!(seen[0].windows(auth.len()).any(|w| w == auth.as_slice()));
    }

    /// A throwaway 1024-bit key (made with `openssl genrsa 1024`) for the
    /// full-authentication test; the server side decrypts with it.
    const TEST_KEY: &str = include_str!("testdata/rsa-1024.pem");

    #[tokio::test]
    async fn caching_sha2_full_auth_with_the_servers_public_key() {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::pkcs8::EncodePublicKey as _;
        let private = rsa::RsaPrivateKey::from_pkcs1_pem(TEST_KEY).unwrap();
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        let mut key_packet = vec![0x01];
        key_packet.extend_from_slice(public_pem.as_bytes());
        let (r, seen) = scripted(
            greeting_bytes("caching_sha2_password"),
            vec![
                vec![vec![0x01, 0x04]],
                vec![key_packet],
                vec![vec![0, 0, 0, 2, 0, 0, 0]],
            ],
            login("app", "s3cret"),
        )
        .await;
        assert!(r.unwrap().starts_with("logged in as app"));
        assert_eq!(seen[1], [0x02], "asks for the public key");
        let plain = private.decrypt(rsa::Oaep::new::<Sha1>(), &seen[2]).unwrap();
        let nonce = b"12345678abcdefghijkl";
        let expected: Vec<u8> = b"s3cret\0"
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ nonce[i % nonce.len()])
            .collect();
        assert_eq!(plain, expected);
        assert!(rsa_encrypt_password(b"not a key", b"pw", nonce).is_err());
    }

    #[tokio::test]
    async fn unsupported_plugin_is_named() {
        let mut switch = b"\xfeclient_ed25519\0".to_vec();
        switch.extend_from_slice(&[7; 32]);
        let (r, _) = scripted(
            greeting_bytes("mysql_native_password"),
            vec![vec![switch]],
            login("app", "pw"),
        )
        .await;
        let e = r.unwrap_err();
        assert!(
            e.contains("client_ed25519") && e.contains("not supported"),
            "{e}"
        );
    }

    proptest::proptest! {
        #[test]
        fn greeting_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_greeting(&bytes);
            let _ = parse_error(&bytes);
        }
    }
}
