//! LDAPv3 (ldirectord `ldap`, `ldaps`): a simple BindRequest (anonymous:
//! empty DN and password), then optionally a base-object SearchRequest of
//! the configured DN (filter `(objectClass=*)`, attribute `1.1`: no
//! attributes, the DN only), then an UnbindRequest (sent, nothing
//! awaited). Over TLS from the first byte for ldaps.
//!
//! The BER subset is hand-written ([`encode_bind`], [`encode_search`],
//! [`frame_len`], [`parse_message`]): the `der` crate in the tree rejects
//! the non-minimal lengths OpenLDAP sends (`0x84` and four bytes), and
//! rasn-ldap or ldap3 bring a code generator or their own tokio
//! connection layer for five message types (see ARCHITECTURE.md).
//! Every message is read whole but bounded by [`MAX_MESSAGE`]; at most
//! [`MAX_MESSAGES`] are read for one search.

use super::line::printable;
use super::tls::connect;
use crate::engine::ProbeOutcome;
use crate::spec::LdapSpec;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Largest LDAP message read (a longer one fails the probe).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Most messages read in answer to the search (entries, references and
/// the SearchResultDone).
pub const MAX_MESSAGES: usize = 16;

const BIND_ID: i64 = 1;
const SEARCH_ID: i64 = 2;
const UNBIND_ID: i64 = 3;

// Tags (one byte: class, constructed bit, number).
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const BOOLEAN: u8 = 0x01;
const BIND_REQUEST: u8 = 0x60;
const BIND_RESPONSE: u8 = 0x61;
const UNBIND_REQUEST: u8 = 0x42;
const SEARCH_REQUEST: u8 = 0x63;
const SEARCH_ENTRY: u8 = 0x64;
const SEARCH_DONE: u8 = 0x65;
const SEARCH_REFERENCE: u8 = 0x73;
const EXTENDED_RESPONSE: u8 = 0x78;
/// `simple [0] OCTET STRING` in a BindRequest.
const SIMPLE_AUTH: u8 = 0x80;
/// `present [7] AttributeDescription` in a Filter.
const FILTER_PRESENT: u8 = 0x87;

/// A decoding failure: what was wrong, for the probe's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BerError(pub String);

impl std::fmt::Display for BerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, BerError> {
    Err(BerError(what.into()))
}

/// Appends a definite BER length (short form, or long form minimal).
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    push_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// A non-negative INTEGER (or ENUMERATED) value, minimal two's complement.
fn int_value(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut i = 0;
    while i < 7
        && ((bytes[i] == 0 && bytes[i + 1] & 0x80 == 0)
            || (bytes[i] == 0xff && bytes[i + 1] & 0x80 != 0))
    {
        i += 1;
    }
    bytes[i..].to_vec()
}

fn message(id: i64, op: &[u8]) -> Vec<u8> {
    let mut body = tlv(INTEGER, &int_value(id));
    body.extend_from_slice(op);
    tlv(SEQUENCE, &body)
}

/// The BindRequest (LDAPv3, simple): `dn` and `password` empty for an
/// anonymous bind.
pub fn encode_bind(id: i64, dn: &str, password: &str) -> Vec<u8> {
    let mut op = tlv(INTEGER, &int_value(3));
    op.extend(tlv(OCTET_STRING, dn.as_bytes()));
    op.extend(tlv(SIMPLE_AUTH, password.as_bytes()));
    message(id, &tlv(BIND_REQUEST, &op))
}

/// The SearchRequest of `base` with a base scope, never dereferencing
/// aliases, size limit 2 (one entry is expected), no time limit, filter
/// `(objectClass=*)` and attribute `1.1` (no attributes: the DN only).
pub fn encode_search(id: i64, base: &str) -> Vec<u8> {
    let mut op = tlv(OCTET_STRING, base.as_bytes());
    op.extend(tlv(ENUMERATED, &[0])); // baseObject
    op.extend(tlv(ENUMERATED, &[0])); // neverDerefAliases
    op.extend(tlv(INTEGER, &int_value(2))); // sizeLimit
    op.extend(tlv(INTEGER, &int_value(0))); // timeLimit
    op.extend(tlv(BOOLEAN, &[0])); // typesOnly
    op.extend(tlv(FILTER_PRESENT, b"objectClass"));
    op.extend(tlv(SEQUENCE, &tlv(OCTET_STRING, b"1.1")));
    message(id, &tlv(SEARCH_REQUEST, &op))
}

/// The UnbindRequest.
pub fn encode_unbind(id: i64) -> Vec<u8> {
    message(id, &[UNBIND_REQUEST, 0])
}

/// The length of the first message in `buf` (header included): `Ok(None)`
/// when more bytes are needed to know, `Err` when it is no LDAP message
/// or longer than [`MAX_MESSAGE`].
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, BerError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    if tag != SEQUENCE {
        return err(format!(
            "not an LDAP message: first byte {tag:#04x}, not a SEQUENCE (0x30)"
        ));
    }
    match header_len(&buf[1..])? {
        None => Ok(None),
        Some((len, n)) => {
            let total = 1 + n + len;
            if total > MAX_MESSAGE {
                err(format!(
                    "LDAP message of {total} bytes, more than {MAX_MESSAGE}"
                ))
            } else {
                Ok(Some(total))
            }
        }
    }
}

/// A length at the start of `buf`: the length and the bytes it took;
/// `Ok(None)` when `buf` ends inside it.
fn header_len(buf: &[u8]) -> Result<Option<(usize, usize)>, BerError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((usize::from(first), 1)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 {
        return err("indefinite BER length (LDAP allows definite lengths only)");
    }
    if n > 4 {
        return err(format!("BER length of {n} bytes"));
    }
    let Some(bytes) = buf.get(1..=n) else {
        return Ok(None);
    };
    let len = bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok(Some((len, 1 + n)))
}

/// A reader over one BER value's contents.
struct Ber<'a>(&'a [u8]);

impl<'a> Ber<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next element: its tag and contents.
    fn next(&mut self) -> Result<(u8, &'a [u8]), BerError> {
        let Some(&tag) = self.0.first() else {
            return err("truncated LDAP message: an element is missing");
        };
        if tag & 0x1f == 0x1f {
            return err(format!("unsupported multi-byte BER tag {tag:#04x}"));
        }
        let Some((len, n)) = header_len(&self.0[1..])? else {
            return err("truncated LDAP message: inside a length");
        };
        let start = 1 + n;
        let Some(value) = self.0.get(start..start.saturating_add(len)) else {
            return err(format!(
                "truncated LDAP message: an element of {len} bytes, {} left",
                self.0.len() - start
            ));
        };
        self.0 = &self.0[start + len..];
        Ok((tag, value))
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<&'a [u8], BerError> {
        let (tag, value) = self.next()?;
        if tag != want {
            return err(format!("{what}: tag {tag:#04x}, expected {want:#04x}"));
        }
        Ok(value)
    }

    fn integer(&mut self, want: u8, what: &str) -> Result<i64, BerError> {
        let v = self.expect(want, what)?;
        if v.is_empty() || v.len() > 8 {
            return err(format!("{what}: an integer of {} bytes", v.len()));
        }
        let init = if v[0] & 0x80 != 0 { -1i64 } else { 0 };
        Ok(v.iter().fold(init, |acc, &b| (acc << 8) | i64::from(b)))
    }
}

/// An LDAPResult: the code, and the server's matched DN and diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapResult {
    pub code: i64,
    pub matched_dn: String,
    pub diagnostic: String,
}

impl LdapResult {
    /// `invalidCredentials (49): <diagnostic>`.
    pub fn describe(&self) -> String {
        let name = result_name(self.code);
        if self.diagnostic.is_empty() {
            format!("{name} ({})", self.code)
        } else {
            format!("{name} ({}): {}", self.code, self.diagnostic)
        }
    }
}

/// The protocol operations a probe reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    BindResponse(LdapResult),
    SearchEntry {
        dn: String,
    },
    SearchReference,
    SearchDone(LdapResult),
    /// An ExtendedResponse: with message ID 0, the Notice of Disconnection.
    Extended(LdapResult),
    /// Any other operation, by its tag.
    Other(u8),
}

/// One decoded LDAPMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub op: Op,
}

fn result(body: &[u8]) -> Result<LdapResult, BerError> {
    let mut r = Ber(body);
    let code = r.integer(ENUMERATED, "resultCode")?;
    let matched_dn = printable(r.expect(OCTET_STRING, "matchedDN")?);
    let diagnostic = printable(r.expect(OCTET_STRING, "diagnosticMessage")?);
    Ok(LdapResult {
        code,
        matched_dn,
        diagnostic,
    })
}

/// Decodes one whole message (as [`frame_len`] delimits it). Controls and
/// trailing fields (referrals, server SASL credentials, attributes) are
/// ignored.
pub fn parse_message(buf: &[u8]) -> Result<Message, BerError> {
    let mut outer = Ber(buf);
    let body = outer.expect(SEQUENCE, "LDAPMessage")?;
    if !outer.is_empty() {
        return err("bytes after the LDAPMessage");
    }
    let mut m = Ber(body);
    let id = m.integer(INTEGER, "messageID")?;
    let (tag, value) = m.next()?;
    let op = match tag {
        BIND_RESPONSE => Op::BindResponse(result(value)?),
        SEARCH_DONE => Op::SearchDone(result(value)?),
        EXTENDED_RESPONSE => Op::Extended(result(value)?),
        SEARCH_ENTRY => {
            let dn = Ber(value).expect(OCTET_STRING, "objectName")?;
            Op::SearchEntry {
                dn: String::from_utf8_lossy(dn).into_owned(),
            }
        }
        SEARCH_REFERENCE => Op::SearchReference,
        other => Op::Other(other),
    };
    Ok(Message { id, op })
}

/// The name of an LDAP resultCode (RFC 4511 §4.1.9).
pub fn result_name(code: i64) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "resultCode",
    }
}

/// The verdict on the bind's reply: `Ok` on success, else the reason.
pub fn judge_bind(msg: &Message, who: &str) -> Result<(), String> {
    match &msg.op {
        Op::BindResponse(r) if msg.id == BIND_ID && r.code == 0 => Ok(()),
        Op::BindResponse(r) if msg.id == BIND_ID => Err(format!("bind {who}: {}", r.describe())),
        Op::Extended(r) if msg.id == 0 => Err(format!(
            "bind {who}: the server disconnects: {}",
            r.describe()
        )),
        _ => Err(format!(
            "bind {who}: unexpected reply (message {} {:?})",
            msg.id, msg.op
        )),
    }
}

/// The search's state while its replies come in.
#[derive(Debug, Default)]
pub struct SearchReplies {
    pub dns: Vec<String>,
}

impl SearchReplies {
    /// Takes one reply: `Ok(None)` to read on, `Ok(Some(result))` at the
    /// SearchResultDone, `Err` for anything else.
    pub fn take(&mut self, msg: Message) -> Result<Option<LdapResult>, String> {
        match msg.op {
            Op::SearchEntry { dn } if msg.id == SEARCH_ID => {
                self.dns.push(dn);
                Ok(None)
            }
            Op::SearchReference if msg.id == SEARCH_ID => Ok(None),
            Op::SearchDone(r) if msg.id == SEARCH_ID => Ok(Some(r)),
            Op::Extended(r) if msg.id == 0 => {
                Err(format!("the server disconnects: {}", r.describe()))
            }
            op => Err(format!("unexpected reply (message {} {op:?})", msg.id)),
        }
    }
}

/// The verdict on a finished search: a success code, exactly one entry
/// (as ldirectord's `count == 1`), its DN matching `spec.expect`.
pub fn judge_search(
    base: &str,
    done: &LdapResult,
    dns: &[String],
    spec: &LdapSpec,
) -> ProbeOutcome {
    let shown = if base.is_empty() { "(root DSE)" } else { base };
    if done.code != 0 {
        return ProbeOutcome::down(format!("search {shown}: {}", done.describe()));
    }
    let [dn] = dns else {
        return ProbeOutcome::down(format!("search {shown}: {} entries, expected 1", dns.len()));
    };
    match &spec.expect {
        Some(re) if !re.is_match(dn.as_bytes()) => ProbeOutcome::down(format!(
            "search {shown}: DN {:?} does not match /{}/",
            printable(dn.as_bytes()),
            re.as_str()
        )),
        _ => ProbeOutcome::up(format!("LDAP bind and search {shown} OK")),
    }
}

/// Reads whole LDAP messages, each bounded by [`MAX_MESSAGE`].
#[derive(Debug)]
pub struct MessageReader<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> MessageReader<S> {
    pub fn new(stream: S) -> Self {
        MessageReader {
            stream,
            buf: Vec::with_capacity(512),
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The next message, decoded; `Err` on close, a read error, garbage or
    /// an over-long message.
    pub async fn message(&mut self) -> Result<Message, String> {
        loop {
            if let Some(len) = frame_len(&self.buf).map_err(|e| e.0)? {
                if self.buf.len() >= len {
                    let frame: Vec<u8> = self.buf.drain(..len).collect();
                    return parse_message(&frame).map_err(|e| e.0);
                }
            }
            let mut chunk = [0u8; 2048];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    "connection closed".to_owned()
                } else {
                    "connection closed mid-message".to_owned()
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Connects (TLS for ldaps) and checks. No timeout of its own: the caller
/// ([`super::run`]) bounds it.
pub async fn probe(target: SocketAddr, spec: &LdapSpec) -> ProbeOutcome {
    match connect(target, spec.tls.as_ref()).await {
        Ok(stream) => exchange(stream, spec).await,
        Err(e) => ProbeOutcome::down(e),
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8], what: &str) -> Result<(), String> {
    s.write_all(bytes)
        .await
        .map_err(|e| format!("{what}: send: {e}"))?;
    s.flush().await.map_err(|e| format!("{what}: send: {e}"))
}

/// The conversation over an open stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    spec: &LdapSpec,
) -> ProbeOutcome {
    let mut r = MessageReader::new(stream);
    let verdict = conversation(&mut r, spec).await;
    let _ = send(r.get_mut(), &encode_unbind(UNBIND_ID), "unbind").await;
    let _ = r.get_mut().shutdown().await;
    verdict.unwrap_or_else(ProbeOutcome::down)
}

async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut MessageReader<S>,
    spec: &LdapSpec,
) -> Result<ProbeOutcome, String> {
    let dn = spec.bind_dn.as_deref().unwrap_or("");
    let who = if dn.is_empty() { "(anonymous)" } else { dn };
    let password = spec.password.as_deref().unwrap_or("");
    send(r.get_mut(), &encode_bind(BIND_ID, dn, password), "bind").await?;
    let reply = r.message().await.map_err(|e| format!("bind {who}: {e}"))?;
    judge_bind(&reply, who)?;
    let Some(base) = &spec.search_base else {
        return Ok(ProbeOutcome::up(format!("LDAP bind {who} OK")));
    };
    let shown = if base.is_empty() { "(root DSE)" } else { base };
    send(r.get_mut(), &encode_search(SEARCH_ID, base), "search").await?;
    let mut replies = SearchReplies::default();
    for _ in 0..MAX_MESSAGES {
        let msg = r
            .message()
            .await
            .map_err(|e| format!("search {shown}: {e}"))?;
        if let Some(done) = replies
            .take(msg)
            .map_err(|e| format!("search {shown}: {e}"))?
        {
            return Ok(judge_search(base, &done, &replies.dns, spec));
        }
    }
    Err(format!(
        "search {shown}: no SearchResultDone within {MAX_MESSAGES} messages"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BodyRegex;

    fn result_op(tag: u8, code: u8, diag: &str) -> Vec<u8> {
        let mut v = tlv(ENUMERATED, &[code]);
        v.extend(tlv(OCTET_STRING, b""));
        v.extend(tlv(OCTET_STRING, diag.as_bytes()));
        tlv(tag, &v)
    }

    /// A message as OpenLDAP frames it: 4-byte long-form lengths.
    fn openldap(id: u8, op: &[u8]) -> Vec<u8> {
        let mut body = vec![INTEGER, 1, id];
        body.extend_from_slice(op);
        let mut out = vec![SEQUENCE, 0x84];
        out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn encodings() {
        // ldapsearch -x's anonymous bind, byte for byte.
        assert_eq!(
            encode_bind(1, "", ""),
            [0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00]
        );
        assert_eq!(encode_unbind(3), [0x30, 0x05, 0x02, 0x01, 0x03, 0x42, 0x00]);
        assert_eq!(int_value(0), [0]);
        assert_eq!(int_value(128), [0, 128]);
        assert_eq!(int_value(-1), [0xff]);
        let long = "x".repeat(300);
        let m = encode_bind(1, &long, "p");
        assert_eq!(frame_len(&m).unwrap(), Some(m.len()));
        assert_eq!(&m[..2], [0x30, 0x82]);
        let s = encode_search(2, "dc=example,dc=org");
        assert_eq!(frame_len(&s).unwrap(), Some(s.len()));
    }

    #[test]
    fn decodings() {
        let m = openldap(1, &result_op(BIND_RESPONSE, 0, ""));
        assert_eq!(frame_len(&m).unwrap(), Some(m.len()));
        assert_eq!(frame_len(&m[..3]).unwrap(), None);
        let msg = parse_message(&m).unwrap();
        assert!(judge_bind(&msg, "x").is_ok());
        let m = openldap(1, &result_op(BIND_RESPONSE, 49, ""));
        assert_eq!(
            judge_bind(&parse_message(&m).unwrap(), "cn=a").unwrap_err(),
            "bind cn=a: invalidCredentials (49)"
        );
        let m = openldap(0, &result_op(EXTENDED_RESPONSE, 52, "shutting down"));
        assert!(judge_bind(&parse_message(&m).unwrap(), "x")
            .unwrap_err()
            .contains("disconnects: unavailable (52): shutting down"));
        assert!(frame_len(b"\x00garbage")
            .unwrap_err()
            .0
            .contains("not an LDAP"));
        assert!(frame_len(&[0x30, 0x80])
            .unwrap_err()
            .0
            .contains("indefinite"));
        assert!(frame_len(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff])
            .unwrap_err()
            .0
            .contains("more than"));
        assert!(parse_message(&[0x30, 0x03, 0x02, 0x01]).is_err());
    }

    #[test]
    fn searches() {
        let spec = LdapSpec {
            search_base: Some("dc=example,dc=org".into()),
            expect: Some(BodyRegex::new("^dc=example").unwrap()),
            ..LdapSpec::default()
        };
        let mut s = SearchReplies::default();
        let entry = openldap(
            2,
            &tlv(SEARCH_ENTRY, &{
                let mut v = tlv(OCTET_STRING, b"dc=example,dc=org");
                v.extend(tlv(SEQUENCE, b""));
                v
            }),
        );
        assert_eq!(s.take(parse_message(&entry).unwrap()).unwrap(), None);
        let done = s
            .take(parse_message(&openldap(2, &result_op(SEARCH_DONE, 0, ""))).unwrap())
            .unwrap()
            .unwrap();
        assert!(judge_search("dc=example,dc=org", &done, &s.dns, &spec).ok);
        let other = LdapSpec {
            expect: Some(BodyRegex::new("^ou=").unwrap()),
            ..spec.clone()
        };
        let o = judge_search("dc=example,dc=org", &done, &s.dns, &other);
        assert!(o.reason.contains("does not match /^ou=/"), "{o:?}");
        let o = judge_search("x", &done, &[], &spec);
        assert_eq!(o.reason, "search x: 0 entries, expected 1");
        let missing = LdapResult {
            code: 32,
            matched_dn: String::new(),
            diagnostic: String::new(),
        };
        let o = judge_search("", &missing, &[], &spec);
        assert_eq!(o.reason, "search (root DSE): noSuchObject (32)");
        let mut s = SearchReplies::default();
        let stray = parse_message(&openldap(1, &result_op(BIND_RESPONSE, 0, ""))).unwrap();
        assert!(s.take(stray).is_err());
    }

    #[tokio::test]
    async fn reader_bounds_and_closes() {
        let mut two = openldap(1, &result_op(BIND_RESPONSE, 0, ""));
        two.extend(openldap(2, &result_op(SEARCH_DONE, 0, "")));
        let mut r = MessageReader::new(&two[..]);
        assert_eq!(r.message().await.unwrap().id, 1);
        assert_eq!(r.message().await.unwrap().id, 2);
        assert_eq!(r.message().await.unwrap_err(), "connection closed");
        let cut = &two[..5];
        let mut r = MessageReader::new(cut);
        assert_eq!(
            r.message().await.unwrap_err(),
            "connection closed mid-message"
        );
        let huge = [0x30u8, 0x83, 0x10, 0x00, 0x00];
        let mut r = MessageReader::new(&huge[..]);
        assert!(r.message().await.unwrap_err().contains("more than"));
    }

    /// A server that announces a long message and streams it without end:
    /// the reader stops at the announced length (under the bound) and
    /// judges it; a conversation with a mute or garbage server ends.
    #[tokio::test]
    async fn hostile_streams_end() {
        use tokio::io::AsyncWriteExt as _;
        let (client, mut server) = tokio::io::duplex(8192);
        tokio::spawn(async move {
            let _ = server
                .write_all(&[0x30, 0x84, 0x00, 0x00, 0xea, 0x60])
                .await;
            let zeros = [0u8; 4096];
            while server.write_all(&zeros).await.is_ok() {}
        });
        let o = exchange(client, &LdapSpec::root_dse()).await;
        assert!(
            !o.ok && o.reason.starts_with("bind (anonymous): messageID"),
            "{o:?}"
        );
        let (client, mut server) = tokio::io::duplex(8192);
        tokio::spawn(async move {
            let _ = server.write_all(b"220 smtp.example ESMTP\r\n").await;
        });
        let o = exchange(client, &LdapSpec::default()).await;
        assert!(
            o.reason.contains("not an LDAP message: first byte 0x32"),
            "{o:?}"
        );
        // A bind answered, then search entries without end.
        let (client, mut server) = tokio::io::duplex(8192);
        tokio::spawn(async move {
            let _ = server
                .write_all(&openldap(1, &result_op(BIND_RESPONSE, 0, "")))
                .await;
            let entry = openldap(2, &tlv(SEARCH_ENTRY, &tlv(OCTET_STRING, b"dc=x")));
            while server.write_all(&entry).await.is_ok() {}
        });
        let o = exchange(client, &LdapSpec::root_dse()).await;
        assert_eq!(
            o.reason,
            format!("search (root DSE): no SearchResultDone within {MAX_MESSAGES} messages")
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = frame_len(&bytes);
            let _ = parse_message(&bytes);
            if let Ok(m) = parse_message(&bytes) {
                let _ = judge_bind(&m, "x");
                let _ = SearchReplies::default().take(m);
            }
        }

        #[test]
        fn framed_messages_decode(id in 0i64..i64::MAX, dn in "[ -~]{0,300}", pw in "[ -~]{0,40}") {
            let m = encode_bind(id, &dn, &pw);
            proptest::prop_assert_eq!(frame_len(&m).unwrap(), Some(m.len()));
            // A bind request decodes as a message with its ID and an
            // operation this client does not read.
            let msg = parse_message(&m).unwrap();
            proptest::prop_assert_eq!(msg.id, id);
            proptest::prop_assert_eq!(msg.op, Op::Other(BIND_REQUEST));
        }
    }
}
