//! `alert` tables: health-check alerts by webhook and e-mail, settable in
//! `[global]` and per virtual service. Each table is checked on its own;
//! then, per service, the two levels are merged key by key (the service's
//! keys win), like `check`.

use super::{At, Cx, Field, Kind, Section, Want};
use crate::diag::Problem;
use crate::values::quote;
use halb_alert::spec::{check_mailbox, parse_host_port};
use halb_alert::{
    AlertSpec, DaemonStatus, EmailSpec, Starttls, StatusSet, WebhookSpec, WebhookUrl,
};
use std::path::PathBuf;
use std::time::Duration;

pub(super) const ALERT_KEYS: &[&str] = &[
    "webhook",
    "webhook_timeout",
    "webhook_retries",
    "webhook_ca_file",
    "email",
    "email_from",
    "email_alert_freq",
    "email_alert_status",
    "smtp",
    "smtp_starttls",
    "smtp_ca_file",
    "smtp_user",
    "smtp_password",
    "smtp_timeout",
    "smtp_retries",
];

const STARTTLS: &[&str] = &["off", "opportunistic", "required"];
const STARTTLS_SYNONYMS: &[(&str, &str)] = &[
    ("no", "off"),
    ("none", "off"),
    ("false", "off"),
    ("disabled", "off"),
    ("yes", "required"),
    ("true", "required"),
    ("always", "required"),
    ("on", "required"),
    ("auto", "opportunistic"),
    ("optional", "opportunistic"),
    ("may", "opportunistic"),
];
const STATUSES: &[&str] = &[
    "all",
    "none",
    "starting",
    "running",
    "stopping",
    "reloading",
];

/// A fix for an unknown alert key: what ldirectord calls it.
pub(super) fn alert_key_hint(k: &str) -> Option<&'static str> {
    let pairs: &[(&[&str], &str)] = &[
        (
            &[
                "emailalert",
                "email_alert",
                "mail",
                "mailto",
                "to",
                "recipients",
            ],
            "did you mean `email`? (ldirectord emailalert)",
        ),
        (
            &[
                "emailalertfrom",
                "email_alert_from",
                "from",
                "sender",
                "mail_from",
            ],
            "did you mean `email_from`? (ldirectord emailalertfrom)",
        ),
        (
            &[
                "emailalertfreq",
                "email_freq",
                "repeat",
                "alert_freq",
                "frequency",
            ],
            "did you mean `email_alert_freq`? (ldirectord emailalertfreq)",
        ),
        (
            &["emailalertstatus", "email_status", "alert_status", "status"],
            "did you mean `email_alert_status`? (ldirectord emailalertstatus)",
        ),
        (
            &[
                "smtp_server",
                "smtp_host",
                "smarthost",
                "relay",
                "mail_server",
                "server",
            ],
            "did you mean `smtp`? smtp = \"mail.example.com:25\"",
        ),
        (
            &["starttls", "tls", "smtp_tls"],
            "did you mean `smtp_starttls`?",
        ),
        (
            &["user", "username", "smtp_username", "login"],
            "did you mean `smtp_user`?",
        ),
        (
            &["password", "pass", "smtp_pass", "secret"],
            "did you mean `smtp_password`?",
        ),
        (
            &["url", "webhook_url", "hook", "http"],
            "did you mean `webhook`? webhook = \"https://hooks.example.com/halb\"",
        ),
        (&["timeout"], "write webhook_timeout or smtp_timeout"),
        (
            &["retries", "retry"],
            "write webhook_retries or smtp_retries",
        ),
    ];
    crate::suggest::hint_for(pairs, k)
}

/// One `alert` table as written; `None` keys inherit from `[global]`.
#[derive(Debug, Clone, Default)]
pub(super) struct Layer {
    webhook: Option<WebhookUrl>,
    webhook_timeout: Option<Duration>,
    webhook_retries: Option<u32>,
    webhook_ca_file: Option<PathBuf>,
    email: Option<Vec<String>>,
    email_from: Option<String>,
    freq: Option<Duration>,
    status: Option<StatusSet>,
    smtp: Option<(String, u16)>,
    starttls: Option<Starttls>,
    ca_file: Option<PathBuf>,
    user: Option<At<String>>,
    password: Option<At<String>>,
    smtp_timeout: Option<Duration>,
    smtp_retries: Option<u32>,
}

impl Layer {
    fn over(&self, lower: &Layer) -> Layer {
        macro_rules! pick {
            ($($f:ident),*) => { Layer { $($f: self.$f.clone().or_else(|| lower.$f.clone()),)* } };
        }
        pick!(
            webhook,
            webhook_timeout,
            webhook_retries,
            webhook_ca_file,
            email,
            email_from,
            freq,
            status,
            smtp,
            starttls,
            ca_file,
            user,
            password,
            smtp_timeout,
            smtp_retries
        )
    }
}

impl Cx<'_> {
    /// An `alert` table (standard or inline) at one level.
    pub(super) fn alert_table(&mut self, f: &Field) -> Layer {
        let w = Want {
            short: "a table",
            expected:
                "an alert table: alert = { email = \"ops@example.com\" } or a [… .alert] table",
            example: "",
        };
        let fix = "write alert = { webhook = \"http://127.0.0.1:8000/halb\" }".to_owned();
        let Some(node) = self.table(f, &w, Some(fix)) else {
            return Layer::default();
        };
        self.check_keys(&node, Section::Alert);
        let mut l = Layer::default();
        let field = |cx: &Self, k: &str| cx.field(&node, k);

        if let Some(f) = field(self, "webhook") {
            l.webhook = self.webhook(&f);
        }
        if let Some(f) = field(self, "webhook_timeout") {
            l.webhook_timeout = self.duration(
                &f,
                Duration::from_millis(1),
                "an HTTP request needs time: use e.g. \"5s\"",
            );
        }
        if let Some(f) = field(self, "webhook_retries") {
            l.webhook_retries = self.retries(&f);
        }
        if let Some(f) = field(self, "webhook_ca_file") {
            l.webhook_ca_file = self.file_path(&f, "\"/etc/ssl/certs/my-ca.pem\"");
        }
        if let Some(f) = field(self, "email") {
            l.email = self.recipients(&f);
        }
        if let Some(f) = field(self, "email_from") {
            let w = Want {
                short: "a string",
                expected: "an e-mail address: the sender of alert mails",
                example: "\"halb@lb1.example.com\"",
            };
            if let Some(s) = self.string(&f, &w) {
                l.email_from = self.mailbox(&f, s).then(|| s.to_owned());
            }
        }
        if let Some(f) = field(self, "email_alert_freq") {
            l.freq = self.duration(&f, Duration::ZERO, "");
        }
        if let Some(f) = field(self, "email_alert_status") {
            l.status = self.statuses_of(&f);
        }
        if let Some(f) = field(self, "smtp") {
            let w = Want {
                short: "a string",
                expected: "the SMTP server: \"HOST:PORT\" (a host name or IP; port 25 if omitted)",
                example: "\"127.0.0.1:25\"",
            };
            if let Some(s) = self.string(&f, &w) {
                match parse_host_port(s, 25) {
                    Ok(hp) => l.smtp = Some(hp),
                    Err(e) => self.push(
                        Problem::new(
                            f.span.clone(),
                            f.path.clone(),
                            format!("smtp {}: {e}", quote(s)),
                        )
                        .expected(w.expected)
                        .fix("write smtp = \"mail.example.com:25\" or \"[2001:db8::25]:587\""),
                    ),
                }
            }
        }
        if let Some(f) = field(self, "smtp_starttls") {
            l.starttls = match self.choice(&f, "smtp_starttls mode", STARTTLS, STARTTLS_SYNONYMS) {
                Some("off") => Some(Starttls::Off),
                Some("opportunistic") => Some(Starttls::Opportunistic),
                Some("required") => Some(Starttls::Required),
                _ => None,
            };
        }
        if let Some(f) = field(self, "smtp_ca_file") {
            l.ca_file = self.file_path(&f, "\"/etc/ssl/certs/my-ca.pem\"");
        }
        for (key, slot) in [
            ("smtp_user", &mut l.user),
            ("smtp_password", &mut l.password),
        ] {
            if let Some(f) = field(self, key) {
                let w = Want {
                    short: "a string",
                    expected: "a non-empty string (SMTP AUTH)",
                    example: "\"halb\"",
                };
                if let Some(s) = self.string(&f, &w) {
                    if s.is_empty() {
                        self.push(
                            Problem::new(f.span.clone(), f.path.clone(), format!("{key} is empty"))
                                .expected(w.expected)
                                .fix(format!("give the {key}, or remove it for no AUTH")),
                        );
                    } else {
                        *slot = Some(At {
                            v: s.to_owned(),
                            span: f.span.clone(),
                            path: f.path.clone(),
                        });
                    }
                }
            }
        }
        if let Some(f) = field(self, "smtp_timeout") {
            l.smtp_timeout = self.duration(
                &f,
                Duration::from_millis(1),
                "an SMTP session needs time: use e.g. \"30s\"",
            );
        }
        if let Some(f) = field(self, "smtp_retries") {
            l.smtp_retries = self.retries(&f);
        }
        l
    }

    /// The alert settings of a service: its table over the global one.
    pub(super) fn resolve_alert(&mut self, global: &Layer, service: &Layer) -> AlertSpec {
        let m = service.over(global);
        let webhook = m.webhook.clone().map(|url| WebhookSpec {
            url,
            timeout: m.webhook_timeout.unwrap_or(Duration::from_secs(5)),
            retries: m.webhook_retries.unwrap_or(3),
            ca_file: m.webhook_ca_file.clone(),
        });
        let auth = match (&m.user, &m.password) {
            (Some(u), Some(p)) => Some((u.v.clone(), p.v.clone())),
            (Some(one), None) | (None, Some(one)) => {
                let (has, lacks) = if m.user.is_some() {
                    ("smtp_user", "smtp_password")
                } else {
                    ("smtp_password", "smtp_user")
                };
                let message = format!("{has} without {lacks}");
                if self.once.insert((one.span.start, message.clone())) {
                    self.push(
                        Problem::new(one.span.clone(), one.path.clone(), message)
                            .expected(
                                "smtp_user and smtp_password together (SMTP AUTH), or neither",
                            )
                            .fix(format!("add {lacks}, or remove {has}")),
                    );
                }
                None
            }
            (None, None) => None,
        };
        let email = m.email.clone().map(|to| {
            let (smtp_host, smtp_port) = m.smtp.clone().unwrap_or(("127.0.0.1".to_owned(), 25));
            EmailSpec {
                to,
                from: m.email_from.clone(),
                smtp_host,
                smtp_port,
                starttls: m.starttls.unwrap_or(Starttls::Off),
                ca_file: m.ca_file.clone(),
                auth,
                repeat: m.freq.unwrap_or(Duration::ZERO),
                status: m.status.unwrap_or_default(),
                timeout: m.smtp_timeout.unwrap_or(Duration::from_secs(30)),
                retries: m.smtp_retries.unwrap_or(2),
            }
        });
        AlertSpec { webhook, email }
    }

    fn webhook(&mut self, f: &Field) -> Option<WebhookUrl> {
        let w = Want {
            short: "a string",
            expected: "an http:// or https:// URL that receives a JSON POST per alert",
            example: "\"https://hooks.example.com/halb\"",
        };
        let s = self.string(f, &w)?;
        match WebhookUrl::parse(s) {
            Ok(u) => Some(u),
            Err(e) => {
                self.push(
                    Problem::new(f.span.clone(), f.path.clone(), format!("webhook {}: {e}", quote(s)))
                        .expected(w.expected)
                        .fix("write webhook = \"http://192.0.2.5:8000/halb\" or \"https://hooks.example.com/halb\""),
                );
                None
            }
        }
    }

    fn retries(&mut self, f: &Field) -> Option<u32> {
        let w = Want {
            short: "an integer",
            expected: "an integer 0..10: attempts after a failed one",
            example: "3",
        };
        let v = self.int_range(f, &w, (0, 10), "use 0 (one attempt) to 10")?;
        u32::try_from(v).ok()
    }

    /// Reports a bad address on `f`; true when `s` is good.
    fn mailbox(&mut self, f: &Field, s: &str) -> bool {
        match check_mailbox(s) {
            Ok(()) => true,
            Err(e) => {
                self.push(
                    Problem::new(
                        f.span.clone(),
                        f.path.clone(),
                        format!("{} is not an e-mail address: {e}", quote(s)),
                    )
                    .expected("an e-mail address: \"ops@example.com\" or \"Ops <ops@example.com>\"")
                    .fix(format!("write {} = \"ops@example.com\"", f.name)),
                );
                false
            }
        }
    }

    /// `email`: one address or an array of them.
    fn recipients(&mut self, f: &Field) -> Option<Vec<String>> {
        let w = Want {
            short: "a string or an array of strings",
            expected:
                "the recipients: \"ops@example.com\" or [\"a@example.com\", \"b@example.com\"]",
            example: "\"ops@example.com\"",
        };
        match f.kind {
            Kind::Str(s) => {
                // ldirectord's emailalert takes a comma-separated list.
                let mut out = Vec::new();
                let mut ok = true;
                for part in s.split(',').map(str::trim) {
                    ok &= self.mailbox(f, part);
                    out.push(part.to_owned());
                }
                ok.then_some(out)
            }
            Kind::Array(a) => {
                if a.is_empty() {
                    self.push(
                        Problem::new(f.span.clone(), f.path.clone(), "email has no recipients")
                            .expected(w.expected)
                            .fix("give at least one address, or remove `email` for no mail"),
                    );
                    return None;
                }
                let mut out = Vec::new();
                let mut ok = true;
                for (i, v) in a.iter().enumerate() {
                    let e = self.element(f, i, v);
                    match self.string(&e, &w) {
                        Some(s) if self.mailbox(&e, s) => out.push(s.to_owned()),
                        _ => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.type_error(f, &w, None);
                None
            }
        }
    }

    /// `email_alert_status`: "all", "none", a status, a comma-separated
    /// list (ldirectord) or an array of statuses.
    fn statuses_of(&mut self, f: &Field) -> Option<StatusSet> {
        let items: Vec<(Field, String)> = match f.kind {
            Kind::Str(s) => s
                .split(',')
                .map(|p| {
                    let e = Field {
                        name: f.name,
                        kind: f.kind,
                        path: f.path.clone(),
                        key_span: f.key_span.clone(),
                        span: f.span.clone(),
                    };
                    (e, p.trim().to_owned())
                })
                .collect(),
            Kind::Array(a) => {
                let mut v = Vec::new();
                for (i, x) in a.iter().enumerate() {
                    let e = self.element(f, i, x);
                    let w = Want {
                        short: "a string",
                        expected: "a daemon status",
                        example: "\"running\"",
                    };
                    if let Some(s) = self.string(&e, &w) {
                        v.push((e, s.to_owned()));
                    } else {
                        return None;
                    }
                }
                v
            }
            _ => {
                let w = Want {
                    short: "a string or an array",
                    expected:
                        "\"all\", \"none\", or statuses: starting, running, stopping, reloading",
                    example: "\"all\"",
                };
                self.type_error(f, &w, None);
                return None;
            }
        };
        let mut set = StatusSet::NONE;
        let mut ok = true;
        let many = items.len() > 1;
        for (e, s) in items {
            let probe = Field {
                kind: Kind::Str(&s),
                ..e
            };
            match self.choice(&probe, "daemon status", STATUSES, &[]) {
                Some("all") if !many => set = StatusSet::ALL,
                Some("none") if !many => set = StatusSet::NONE,
                Some(x @ ("all" | "none")) => {
                    self.push(
                        Problem::new(probe.span.clone(), probe.path.clone(), format!("\"{x}\" in a list of statuses"))
                            .expected("\"all\" or \"none\" alone, or a list of starting, running, stopping, reloading")
                            .fix(format!("write email_alert_status = \"{x}\" alone")),
                    );
                    ok = false;
                }
                Some(x) => {
                    if let Some(d) = DaemonStatus::from_name(x) {
                        set = set.with(d);
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(set)
    }
}
