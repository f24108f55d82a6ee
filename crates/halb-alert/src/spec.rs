//! What an alert configuration is: where alerts go (a webhook URL, e-mail
//! recipients through an SMTP server) and when (ldirectord's
//! `emailalertfreq` and `emailalertstatus`). Built by `halb-config`.

use std::fmt;
use std::time::Duration;

/// The daemon's own state, as ldirectord's `emailalertstatus` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DaemonStatus {
    /// The first probe round after the daemon started.
    Starting,
    /// Normal operation.
    Running,
    /// The daemon is shutting down.
    Stopping,
    /// The first probe round after a reload.
    Reloading,
}

impl DaemonStatus {
    pub const ALL: [DaemonStatus; 4] = [
        DaemonStatus::Starting,
        DaemonStatus::Running,
        DaemonStatus::Stopping,
        DaemonStatus::Reloading,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DaemonStatus::Starting => "starting",
            DaemonStatus::Running => "running",
            DaemonStatus::Stopping => "stopping",
            DaemonStatus::Reloading => "reloading",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    fn bit(self) -> u8 {
        match self {
            DaemonStatus::Starting => 1,
            DaemonStatus::Running => 2,
            DaemonStatus::Stopping => 4,
            DaemonStatus::Reloading => 8,
        }
    }
}

impl fmt::Display for DaemonStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The daemon statuses in which e-mail alerts are sent
/// (`emailalertstatus`); `all` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct StatusSet(u8);

impl StatusSet {
    pub const ALL: StatusSet = StatusSet(15);
    pub const NONE: StatusSet = StatusSet(0);

    pub fn with(self, s: DaemonStatus) -> Self {
        StatusSet(self.0 | s.bit())
    }

    pub fn contains(self, s: DaemonStatus) -> bool {
        self.0 & s.bit() != 0
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet::ALL
    }
}

/// `http://host:port/path` or `https://…`, checked by [`WebhookUrl::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct WebhookUrl {
    pub https: bool,
    /// A host name or an IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WebhookUrl {
    /// Parses an absolute http or https URL; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else {
            return Err("the URL does not start with http:// or https://".into());
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if authority.contains('@') {
            return Err("user:password@ in the URL is not supported".into());
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the path contains spaces or control characters".into());
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or("an IPv6 host without its closing ]")?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("[{h}] is not an IPv6 address"));
            }
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None if after.is_empty() => default_port,
                None => return Err(format!("unexpected {after:?} after the IPv6 address")),
            };
            (h.to_owned(), port)
        } else {
            let (h, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(p)?),
                None => (authority, default_port),
            };
            (h.to_owned(), port)
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
        {
            return Err(format!("{host:?} is not a host name or IP address"));
        }
        Ok(WebhookUrl {
            https,
            host,
            port,
            path,
        })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// Checks an e-mail address (`ops@example.com` or
/// `Ops <ops@example.com>`) without lettre (`src/mailbox.rs`): what it
/// accepts, the mailer's lettre parses too.
pub fn check_mailbox(s: &str) -> Result<(), String> {
    crate::mailbox::check(s).map_err(str::to_owned)
}

/// `host:port`, `host` (port 25), `[v6]:port`: an SMTP server.
pub fn parse_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or("an IPv6 address without its closing ]")?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("[{h}] is not an IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(p) => (h, parse_port(p)?),
            None if after.is_empty() => (h, default_port),
            None => return Err(format!("unexpected {after:?} after the IPv6 address")),
        }
    } else if s.matches(':').count() > 1 {
        return Err("write an IPv6 address in brackets: \"[2001:db8::25]:25\"".into());
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (s, default_port),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
    {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok((host.to_owned(), port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?} is not a port 1..65535")),
        Ok(n) => Ok(n),
    }
}

/// Where webhook alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct WebhookSpec {
    pub url: WebhookUrl,
    /// One attempt (connect, request, response head).
    pub timeout: Duration,
    /// Attempts after the first failed one.
    pub retries: u32,
    /// PEM trust anchors for `https://` instead of the bundled roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// STARTTLS towards the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum Starttls {
    /// Plain SMTP.
    Off,
    /// STARTTLS when the server offers it (an attacker can strip it).
    #[default]
    Opportunistic,
    /// STARTTLS or no mail.
    Required,
}

/// A secret as `"<redacted>"`, `None` as null.
fn redacted<T, S: serde::Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("<redacted>"),
        None => s.serialize_none(),
    }
}

/// Where e-mail alerts go, and when. Its `Debug` never shows the
/// password.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct EmailSpec {
    /// Recipients (`emailalert`).
    pub to: Vec<String>,
    /// Sender (`emailalertfrom`); `None`: `halb@<director host name>`.
    pub from: Option<String>,
    /// SMTP server host (name or IP) and port.
    pub smtp_host: String,
    pub smtp_port: u16,
    pub starttls: Starttls,
    /// PEM trust anchors for STARTTLS instead of the bundled roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// AUTH user and password.
    #[serde(serialize_with = "redacted")]
    pub auth: Option<(String, String)>,
    /// Repeat the "down" mail every this long while the real server stays
    /// down (`emailalertfreq`); zero: no repeat.
    pub repeat: Duration,
    /// Daemon statuses in which mails are sent (`emailalertstatus`).
    pub status: StatusSet,
    /// One attempt (the whole SMTP session).
    pub timeout: Duration,
    /// Attempts after the first failed one.
    pub retries: u32,
}

impl fmt::Debug for EmailSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSpec")
            .field("to", &self.to)
            .field("from", &self.from)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("starttls", &self.starttls)
            .field("ca_file", &self.ca_file)
            .field("auth_user", &self.auth.as_ref().map(|(u, _)| u))
            .field("repeat", &self.repeat)
            .field("status", &self.status)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The alert settings of one virtual service (its own keys over the
/// global ones). Both sinks absent: no alerts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct AlertSpec {
    pub webhook: Option<WebhookSpec>,
    pub email: Option<EmailSpec>,
}

impl AlertSpec {
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.email.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = WebhookUrl::parse("http://127.0.0.1:8080/hook?x=1").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 8080, "/hook?x=1")
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/hook?x=1");
        let u = WebhookUrl::parse("https://hooks.example.com").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        assert_eq!(u.authority(), "hooks.example.com");
        let u = WebhookUrl::parse("http://[2001:db8::1]:81/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 81));
        assert_eq!(u.authority(), "[2001:db8::1]:81");
        for bad in [
            "ftp://x/",
            "http://",
            "http://:80/",
            "http://a:0/",
            "http://a:x/",
            "http://u:p@a/",
            "http://[::1/",
            "http://a b/",
            "http://a/b c",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_and_mailboxes() {
        assert_eq!(
            parse_host_port("mail.example.com", 25).unwrap(),
            ("mail.example.com".to_owned(), 25)
        );
        assert_eq!(
            parse_host_port("[::1]:2525", 25).unwrap(),
            ("::1".to_owned(), 2525)
        );
        for bad in ["", ":25", "a:0", "::1", "[::1", "a b:25"] {
            assert!(parse_host_port(bad, 25).is_err(), "{bad}");
        }
        assert!(check_mailbox("ops@example.com").is_ok());
        assert!(check_mailbox("Ops <ops@example.com>").is_ok());
        assert!(check_mailbox("ops").is_err());
    }

    #[test]
    fn status_sets() {
        let s = StatusSet::NONE.with(DaemonStatus::Running);
        assert!(s.contains(DaemonStatus::Running));
        assert!(!s.contains(DaemonStatus::Starting));
        for d in DaemonStatus::ALL {
            assert!(StatusSet::ALL.contains(d));
            assert!(!StatusSet::NONE.contains(d));
            assert_eq!(DaemonStatus::from_name(d.as_str()), Some(d));
        }
    }
}
