use super::check;

/// What users write; all must be accepted.
const VALID: &[&str] = &[
    "ops@example.com",
    "  ops@example.com  ",
    "Ops <ops@example.com>",
    "Ops<ops@example.com>",
    "Ops Team <ops@example.com>",
    "J. Doe <j.doe@example.com>",
    "\"Ops Team\" <ops@example.com>",
    "\"Doe, Jane\" <jane@example.com>",
    "\"Jane \\\"JD\\\" Doe\" <jane@example.com>",
    "\"\" <ops@example.com>",
    "<ops@example.com>",
    "Jörg <jörg@bücher.example>",
    "ops+alerts@sub.example.co.uk",
    "first.last@example.com",
    "o'brien@example.com",
    "ops@192.0.2.1",
    "ops@localhost",
    "halb@lb1.example.com",
    "ops@xn--bcher-kva.example",
    "a@b",
];

/// Mistakes users make; all must be refused, with this message.
const INVALID: &[(&str, &str)] = &[
    ("", "Invalid input"),
    (" ", "Invalid input"),
    ("ops", "Invalid input"),
    ("not an address", "Invalid input"),
    ("ops@", "Invalid input"),
    ("@example.com", "Invalid input"),
    ("ops@@example.com", "Invalid input"),
    ("ops@example..com", "Invalid input"),
    ("ops.@example.com", "Invalid input"),
    (".ops@example.com", "Invalid input"),
    ("o..ps@example.com", "Invalid input"),
    ("ops @ example.com", "Invalid input"),
    ("ops\t@example.com", "Invalid input"),
    ("ops@example.com>", "Invalid input"),
    ("<ops@example.com", "Invalid input"),
    ("Ops <ops@example.com", "Invalid input"),
    ("Ops <<ops@example.com>>", "Invalid input"),
    ("Ops <ops@example.com> trailing", "Invalid input"),
    ("Ops <ops@example.com>>", "Invalid input"),
    ("Ops < ops@example.com >", "Invalid input"),
    ("Doe, Jane <jane@example.com>", "Invalid input"),
    ("\"Unterminated <ops@example.com>", "Invalid input"),
    ("\"Ops\" Team\" <ops@example.com>", "Invalid input"),
    ("<>", "Invalid input"),
    ("Ops <>", "Invalid input"),
    ("ops@example.com, dev@example.com", "Invalid input"),
    ("mailto:ops@example.com", "Invalid input"),
    ("ops@-example.com", "Invalid email domain"),
    ("ops@exa mple.com", "Invalid input"),
    ("ops@example.com.", "Invalid input"),
    (
        "a-local-part-that-is-longer-than-sixty-four-characters-which-is-too-long@example.com",
        "Invalid email user",
    ),
];

#[test]
fn known_answers() {
    for s in VALID {
        assert_eq!(check(s), Ok(()), "{s:?}");
    }
    for (s, e) in INVALID {
        assert_eq!(check(s), Err(*e), "{s:?}");
    }
}

/// Domain literals: lettre's `Mailbox` parser has none, so neither do we.
#[test]
fn no_domain_literals() {
    assert_eq!(check("ops@[192.0.2.1]"), Err("Invalid input"));
    assert_eq!(check("ops@[2001:db8::1]"), Err("Invalid input"));
}

#[cfg(feature = "sender")]
fn lettre(s: &str) -> Result<(), String> {
    s.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The sender parses the same strings with lettre at send time: on
/// realistic input the answers are the same, messages included.
#[cfg(feature = "sender")]
#[test]
fn agrees_with_lettre() {
    for s in VALID {
        assert_eq!(lettre(s), Ok(()), "{s:?}");
    }
    for (s, _) in INVALID {
        assert_eq!(lettre(s), check(s).map_err(str::to_owned), "{s:?}");
    }
    for s in ["ops@[192.0.2.1]", "ops@[2001:db8::1]"] {
        assert_eq!(lettre(s), Err("Invalid input".to_owned()), "{s:?}");
    }
}

#[cfg(feature = "sender")]
proptest::proptest! {
    /// Our grammar is narrower than lettre's, never wider: whatever we
    /// accept, lettre accepts. Plausible parts, mixed with junk.
    #[test]
    fn accepted_means_lettre_accepts(
        name in proptest::prop_oneof![
            "[A-Za-zé]{1,5}( [A-Za-z.]{1,4})?",
            "\"[a-zA-Z ,.<>@é\\\\\"]{0,8}\"",
            "[a-zA-Z .é\t,\"<>\\\\]{0,8}",
        ],
        angle in proptest::bool::ANY,
        user in proptest::prop_oneof![
            "[a-z0-9é]{1,5}(\\.[a-z+_'\\-]{1,3})?",
            "[a-zA-Z0-9.+_'é\"\\\\<>@\\- ]{0,8}",
        ],
        domain in proptest::prop_oneof![
            "[a-z]{1,5}(\\.[a-zé]{2,3}){0,2}",
            "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
            "[a-z0-9.\\-_\\[\\]:é<> ]{0,12}",
        ],
        pad in "[ \t]{0,2}",
    ) {
        let addr = format!("{user}@{domain}");
        let s = if angle {
            format!("{pad}{name}{pad}<{addr}>{pad}")
        } else {
            format!("{pad}{addr}{pad}")
        };
        if check(&s).is_ok() {
            proptest::prop_assert_eq!(lettre(&s), Ok(()), "{:?}", s);
        }
    }
}
