//! The e-mail addresses the config accepts for `email` and `email_from`,
//! checked without lettre (the config crate must not depend on the SMTP
//! shell). The grammar is a small, deliberately narrow one of our own:
//!
//! - `user@domain`, or `Name <user@domain>` where the name is plain words
//!   (dots allowed: `J. Doe`) or one quoted string (`"Doe, Jane"`);
//! - `user` and `domain` are dot-separated runs of RFC 5322 atom characters
//!   (and non-ASCII), checked by `email_address`; the domain may be an IP
//!   address or internationalised (through `idna`).
//!
//! Everything it accepts, lettre's `Mailbox` parser (used by the sender)
//! accepts too; the tests under feature `sender` hold that. Lettre's parser
//! has no domain literals, so `user@[192.0.2.1]` is refused here as well
//! (`user@192.0.2.1` is fine).

use email_address::EmailAddress;
use std::net::IpAddr;

/// The messages are lettre's `AddressError` texts.
pub(crate) const INVALID_INPUT: &str = "Invalid input";
const INVALID_USER: &str = "Invalid email user";
const INVALID_DOMAIN: &str = "Invalid email domain";

/// `Ok` when `s` is one address as described in the module docs.
pub(crate) fn check(s: &str) -> Result<(), &'static str> {
    let s = s.trim();
    let addr = match s.strip_suffix('>') {
        Some(rest) => {
            let (name, addr) = rest.rsplit_once('<').ok_or(INVALID_INPUT)?;
            if !name_ok(name.trim_end()) {
                return Err(INVALID_INPUT);
            }
            addr
        }
        None => s,
    };
    let (user, domain) = addr.split_once('@').ok_or(INVALID_INPUT)?;
    if !dot_atom(user) || !dot_atom(domain) {
        return Err(INVALID_INPUT);
    }
    if !EmailAddress::is_valid_local_part(user) {
        return Err(INVALID_USER);
    }
    let ascii_ok = |d: &str| EmailAddress::is_valid_domain(d) || d.parse::<IpAddr>().is_ok();
    if ascii_ok(domain) || idna::domain_to_ascii(domain).is_ok_and(|d| ascii_ok(&d)) {
        Ok(())
    } else {
        Err(INVALID_DOMAIN)
    }
}

/// RFC 5322 `atext`, plus any non-ASCII character (RFC 6532).
fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Non-empty runs of `atext` joined by single dots.
fn dot_atom(s: &str) -> bool {
    s.split('.')
        .all(|run| !run.is_empty() && run.chars().all(atext))
}

/// A display name: nothing, one quoted string, or words of `atext` and dots
/// separated by blanks, starting with a word.
fn name_ok(name: &str) -> bool {
    let Some(quoted) = name.strip_prefix('"') else {
        return name.is_empty()
            || (name.starts_with(atext)
                && name
                    .chars()
                    .all(|c| atext(c) || matches!(c, '.' | ' ' | '\t')));
    };
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().is_empty(),
            '\\' if chars
                .next()
                .is_some_and(|e| e == '\t' || e == ' ' || e.is_ascii_graphic()) => {}
            ' ' | '\t' => {}
            c if c.is_ascii_graphic() && c != '\\' || !c.is_ascii() => {}
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests;
