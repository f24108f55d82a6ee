//! The e-mail address grammar of lettre 0.11 (`Mailbox: FromStr`), without
//! lettre: the config crate checks `email` and `email_from` with it and must
//! not depend on the SMTP shell (tokio, rustls). The parsers are lettre's
//! (`src/message/mailbox/parsers`, MIT licence), written with the same nom
//! and `email_address`/`idna` checks, so an address the config accepts is
//! one the sender's `parse::<lettre::message::Mailbox>()` accepts; the test
//! `agrees_with_lettre` (feature `sender`) holds the two together.

use nom::{
    branch::alt,
    bytes::complete::take_while,
    character::complete::{char, one_of, satisfy},
    combinator::{eof, map, opt, recognize},
    multi::{fold_many0, many0, many1},
    sequence::{delimited, pair, preceded, separated_pair},
    IResult, Parser,
};
use std::net::IpAddr;

/// lettre's `AddressError` texts, so that messages stay as they were.
pub(crate) const INVALID_INPUT: &str = "Invalid input";
const INVALID_USER: &str = "Invalid email user";
const INVALID_DOMAIN: &str = "Invalid email domain";

/// `Ok` when lettre would parse `s` as a `Mailbox`, else lettre's message.
pub(crate) fn check(s: &str) -> Result<(), &'static str> {
    let (_, (_name, (user, domain))) = mailbox(s).map_err(|_| INVALID_INPUT)?;
    if !email_address::EmailAddress::is_valid_local_part(&user) {
        return Err(INVALID_USER);
    }
    check_domain_ascii(&domain).or_else(|()| {
        idna::domain_to_ascii(&domain)
            .map_err(|_| ())
            .and_then(|d| check_domain_ascii(&d))
            .map_err(|()| INVALID_DOMAIN)
    })
}

fn check_domain_ascii(domain: &str) -> Result<(), ()> {
    if email_address::EmailAddress::is_valid_domain(domain) {
        return Ok(());
    }
    let ip = domain
        .strip_prefix('[')
        .and_then(|ip| ip.strip_suffix(']'))
        .unwrap_or(domain);
    ip.parse::<IpAddr>().map(|_| ()).map_err(|_| ())
}

type Mailbox = (Option<String>, (String, String));

// RFC 2234 core rules.
fn wsp(input: &str) -> IResult<&str, char> {
    alt((char(' '), char('\t'))).parse(input)
}

// RFC 5336: UTF8-non-ascii.
fn utf8_non_ascii(input: &str) -> IResult<&str, char> {
    satisfy(|c| c.len_utf8() > 1).parse(input)
}

// RFC 2822 3.2.1: NO-WS-CTL, text.
fn no_ws_ctl(input: &str) -> IResult<&str, char> {
    satisfy(|c| matches!(u32::from(c), 1..=8 | 11 | 12 | 14..=31 | 127)).parse(input)
}

fn text(input: &str) -> IResult<&str, char> {
    satisfy(|c| matches!(u32::from(c), 1..=9 | 11 | 12 | 14..=127)).parse(input)
}

// 3.2.2: quoted-pair.
fn quoted_pair(input: &str) -> IResult<&str, char> {
    preceded(char('\\'), text).parse(input)
}

// 3.2.3: FWS; CFWS without comments (as lettre).
fn fws(input: &str) -> IResult<&str, Option<char>> {
    nom::sequence::terminated(opt(wsp), take_while(|c| c == ' ' || c == '\t')).parse(input)
}

fn cfws(input: &str) -> IResult<&str, Option<char>> {
    fws(input)
}

// 3.2.4: atext, atom, dot-atom.
fn atext(input: &str) -> IResult<&str, char> {
    alt((
        satisfy(|c| c.is_ascii_alphabetic()),
        satisfy(|c| c.is_ascii_digit()),
        one_of("!#$%&'*+-/=?^_`{|}~"),
        utf8_non_ascii,
    ))
    .parse(input)
}

fn atom(input: &str) -> IResult<&str, String> {
    preceded(cfws, map(recognize(many1(atext)), str::to_owned)).parse(input)
}

fn dot_atom(input: &str) -> IResult<&str, String> {
    preceded(cfws, dot_atom_text).parse(input)
}

fn dot_atom_text(input: &str) -> IResult<&str, String> {
    map(
        recognize(pair(many1(atext), many0(pair(char('.'), many1(atext))))),
        str::to_owned,
    )
    .parse(input)
}

// 3.2.5: quoted strings.
fn qtext(input: &str) -> IResult<&str, char> {
    alt((
        satisfy(|c| matches!(u32::from(c), 33 | 35..=91 | 93..=126)),
        no_ws_ctl,
    ))
    .parse(input)
}

fn qcontent(input: &str) -> IResult<&str, char> {
    alt((qtext, quoted_pair, utf8_non_ascii)).parse(input)
}

fn quoted_string(input: &str) -> IResult<&str, String> {
    delimited(
        char('"'),
        fold_many0(pair(fws, qcontent), String::new, |mut acc, (ws, c)| {
            if let Some(ws_char) = ws {
                acc.push(ws_char);
            }
            acc.push(c);
            acc
        }),
        preceded(fws, char('"')),
    )
    .parse(input)
}

// 3.2.6: word, phrase.
fn word(input: &str) -> IResult<&str, String> {
    alt((quoted_string, atom)).parse(input)
}

fn phrase(input: &str) -> IResult<&str, String> {
    alt((obs_phrase, map(many1(word), |words| words.join(" ")))).parse(input)
}

// 3.4: mailbox, name-addr, angle-addr.
fn mailbox(input: &str) -> IResult<&str, Mailbox> {
    delimited(
        take_while(char::is_whitespace),
        alt((name_addr, map(addr_spec, |addr| (None, addr)))),
        (take_while(char::is_whitespace), eof),
    )
    .parse(input)
}

fn name_addr(input: &str) -> IResult<&str, Mailbox> {
    pair(opt(phrase), angle_addr).parse(input)
}

fn angle_addr(input: &str) -> IResult<&str, (String, String)> {
    delimited((cfws, char('<')), addr_spec, (char('>'), cfws)).parse(input)
}

// 3.4.1: addr-spec (no domain-literal, as lettre).
fn addr_spec(input: &str) -> IResult<&str, (String, String)> {
    separated_pair(local_part, char('@'), domain).parse(input)
}

fn local_part(input: &str) -> IResult<&str, String> {
    alt((dot_atom, quoted_string, obs_local_part)).parse(input)
}

fn domain(input: &str) -> IResult<&str, String> {
    alt((dot_atom, obs_domain)).parse(input)
}

// 4.1, 4.4: the obsolete forms lettre accepts.
fn obs_phrase(input: &str) -> IResult<&str, String> {
    map(
        pair(
            word,
            many0(pair(
                opt(fws),
                alt((word, map(char('.'), |c| c.to_string()))),
            )),
        ),
        |(mut result, rest)| {
            for (ws, part) in rest {
                if ws.flatten().is_some() {
                    result.push(' ');
                }
                result.push_str(&part);
            }
            result
        },
    )
    .parse(input)
}

fn obs_local_part(input: &str) -> IResult<&str, String> {
    map(
        pair(word, many0(pair(char('.'), word))),
        |(mut result, rest)| {
            for (_, word) in rest {
                result.push('.');
                result.push_str(&word);
            }
            result
        },
    )
    .parse(input)
}

fn obs_domain(input: &str) -> IResult<&str, String> {
    map(
        pair(atom, many0(pair(char('.'), atom))),
        |(mut result, rest)| {
            for (_, atom) in rest {
                result.push('.');
                result.push_str(&atom);
            }
            result
        },
    )
    .parse(input)
}

#[cfg(test)]
mod tests {
    use super::check;

    const SAMPLES: &[&str] = &[
        "ops@example.com",
        "Ops <ops@example.com>",
        "\"Ops Team\" <ops@example.com>",
        "  ops@example.com  ",
        "ops",
        "not an address",
        "ops@",
        "@example.com",
        "ops@@example.com",
        "ops@example..com",
        "ops.@example.com",
        ".ops@example.com",
        "o..ps@example.com",
        "\"o p s\"@example.com",
        "ops@1.2.3.4",
        "ops@[2001:db8::1]",
        "ops@-example.com",
        "ops@example.com>",
        "<ops@example.com",
        "Ops <ops@example.com> trailing",
        "Ops. Team <ops@example.com>",
        "ops+alerts@sub.example.co.uk",
        "jörg@bücher.example",
        "ops@localhost",
        "ops@exa_mple.com",
        "a@b",
        "",
        " ",
        "<>",
        "Ops <>",
        "ops@example.com, dev@example.com",
        "\"unterminated@example.com",
        "ops\t@example.com",
        "ops @ example.com",
    ];

    #[test]
    fn known_answers() {
        assert_eq!(check("ops@example.com"), Ok(()));
        assert_eq!(check("Ops <ops@example.com>"), Ok(()));
        assert_eq!(check("ops"), Err("Invalid input"));
        assert_eq!(check("not an address"), Err("Invalid input"));
        for s in SAMPLES {
            let _ = check(s);
        }
    }

    /// The reason this module exists: the same answers as the mailer's
    /// parser, for the samples and for random strings over the characters
    /// that matter to the grammar.
    #[cfg(feature = "sender")]
    #[test]
    fn agrees_with_lettre() {
        fn lettre(s: &str) -> Result<(), String> {
            s.parse::<lettre::message::Mailbox>()
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        for s in SAMPLES {
            assert_eq!(check(s).map_err(str::to_owned), lettre(s), "{s:?}");
        }
    }

    #[cfg(feature = "sender")]
    proptest::proptest! {
        #[test]
        fn agrees_with_lettre_on_random_strings(s in "[a-zA-Z0-9 .@<>\"\\\\_+\\-\\[\\]:é\t]{0,24}") {
            let l = s.parse::<lettre::message::Mailbox>().map(|_| ()).map_err(|e| e.to_string());
            proptest::prop_assert_eq!(check(&s).map_err(str::to_owned), l);
        }
    }
}
