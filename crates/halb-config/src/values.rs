//! Parsers for the string-typed values (durations, socket addresses,
//! netmasks), each failing with a message, what was expected and a fix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// What is wrong with one value, before it is given a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diag {
    pub message: String,
    pub expected: String,
    pub fix: String,
}

impl Diag {
    fn new(message: impl Into<String>, expected: &str, fix: impl Into<String>) -> Self {
        Diag {
            message: message.into(),
            expected: expected.to_owned(),
            fix: fix.into(),
        }
    }
}

/// Quote a string for a message, shortened if long.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 48;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{:?}…", head)
    } else {
        format!("{s:?}")
    }
}

// ---------------------------------------------------------------- durations

pub(crate) const DURATION_EXPECTED: &str =
    "a duration: a string with a unit (\"250ms\", \"3s\", \"15m\", \"1h\", \"1d\") or an integer of seconds";

/// The longest duration accepted anywhere: far beyond any sensible timeout,
/// and safe to add to an `Instant`.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

fn unit_ms(unit: &str) -> Option<u64> {
    UNITS.iter().find(|(u, _)| *u == unit).map(|(_, ms)| *ms)
}

/// What people write instead of the units we accept.
fn unit_synonym(unit: &str) -> Option<&'static str> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "msec" | "msecs" | "millis" | "milli" | "millisecond" | "milliseconds" => "ms",
        "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "day" | "days" => "d",
        "ms" => "ms",
        "s" => "s",
        "h" => "h",
        "d" => "d",
        _ => return None,
    })
}

/// A duration as the shortest exact text in our syntax (`"1500ms"`,
/// `"90s"`, `"15m"`).
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in UNITS.iter().rev() {
        let per = u128::from(*per);
        if ms % per == 0 && ms >= per {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// `1m30s`, `1h15m`: not our syntax, but worth a precise suggestion.
fn compound(s: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let ulen = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let per = unit_ms(rest.get(..ulen)?)?;
        rest = rest.get(ulen..)?;
        total = total.checked_add(n.checked_mul(per)?)?;
        parts += 1;
    }
    (parts > 1).then(|| Duration::from_millis(total))
}

/// A decimal number of `unit`s, if it is a whole number of milliseconds.
fn decimal(num: &str, unit_ms: u64) -> Option<Duration> {
    let x: f64 = num.parse().ok()?;
    let ms = x * unit_ms as f64;
    (ms.is_finite() && ms >= 0.0 && ms.fract() == 0.0 && ms < 1e15)
        .then(|| Duration::from_millis(ms as u64))
}

pub(crate) fn too_long(text: &str) -> Diag {
    Diag::new(
        format!("duration {} is too long", quote(text)),
        "at most 365 days (\"365d\")",
        "use a shorter duration; for idle_timeout, 0 means never",
    )
}

/// A whole number of seconds (a bare TOML integer).
pub(crate) fn duration_from_secs(n: i64) -> Result<Duration, Diag> {
    if n < 0 {
        return Err(Diag::new(
            format!("negative duration {n}"),
            DURATION_EXPECTED,
            "durations cannot be negative: write 0 or a positive number",
        ));
    }
    let d = Duration::from_secs(n.unsigned_abs());
    if d > MAX_DURATION {
        return Err(too_long(&n.to_string()));
    }
    Ok(d)
}

/// A float where a duration was expected: say how to write it exactly.
pub(crate) fn float_duration_fix(x: f64) -> String {
    match decimal(&x.to_string(), 1_000) {
        Some(d) => format!(
            "write it as a string with a unit: \"{}\"",
            format_duration(d)
        ),
        None => "write a string with a unit (\"1500ms\") or an integer of seconds".to_owned(),
    }
}

/// `"250ms"`, `"3s"`, `"15m"`, `"1h"`, `"1d"`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, Diag> {
    let e = DURATION_EXPECTED;
    let t = s.trim();
    if t.is_empty() {
        return Err(Diag::new(
            "empty duration",
            e,
            "write a number and a unit, e.g. \"3s\"",
        ));
    }
    if t != s {
        return Err(Diag::new(
            format!("duration {} has surrounding spaces", quote(s)),
            e,
            format!("write {}", quote(t)),
        ));
    }
    if let Some(rest) = t.strip_prefix('-') {
        return Err(Diag::new(
            format!("negative duration {}", quote(s)),
            e,
            format!("durations cannot be negative: write {}", quote(rest)),
        ));
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    if num.is_empty() {
        return Err(Diag::new(
            format!("duration {} does not start with a number", quote(s)),
            e,
            "write a number and then a unit, e.g. \"3s\"",
        ));
    }
    if let Some(frac) = unit.strip_prefix('.') {
        let fd = frac.bytes().take_while(u8::is_ascii_digit).count();
        let (fnum, funit) = frac.split_at(fd);
        let per = if funit.is_empty() {
            Some(1_000)
        } else {
            unit_ms(funit)
        };
        let suggestion = per.and_then(|per| decimal(&format!("{num}.{fnum}"), per));
        let fix = match suggestion {
            Some(d) => format!("durations are whole numbers of a unit: write \"{}\"", format_duration(d)),
            None => "durations are whole numbers of a unit: use a smaller unit, e.g. \"1500ms\" for 1.5s".to_owned(),
        };
        return Err(Diag::new(
            format!("fractional duration {}", quote(s)),
            e,
            fix,
        ));
    }
    let Ok(n) = num.parse::<u64>() else {
        return Err(too_long(s));
    };
    if unit.is_empty() {
        return Err(Diag::new(
            format!("duration {} has no unit", quote(s)),
            e,
            format!("add a unit (\"{n}s\"), or write the integer {n} without quotes for seconds"),
        ));
    }
    let Some(per) = unit_ms(unit) else {
        if let Some(d) = compound(t) {
            return Err(Diag::new(
                format!("compound duration {}", quote(s)),
                e,
                format!("write a single number and unit: \"{}\"", format_duration(d)),
            ));
        }
        let trimmed = unit.trim_start();
        let fix = match unit_synonym(trimmed) {
            Some(u) if trimmed != unit => format!("remove the space: \"{n}{u}\""),
            Some(u) => format!("did you mean \"{n}{u}\"?"),
            None if trimmed == "M" => format!("units are lowercase: \"{n}m\" (minutes)"),
            None if matches!(trimmed, "us" | "µs" | "ns") => "the smallest unit is ms".to_owned(),
            None => "use one of the units ms, s, m, h, d".to_owned(),
        };
        let message = if trimmed != unit {
            format!("duration {} has a space before its unit", quote(s))
        } else {
            format!("unknown unit {} in duration {}", quote(unit), quote(s))
        };
        return Err(Diag::new(message, e, fix));
    };
    let d = n
        .checked_mul(per)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| too_long(s))?;
    Ok(d)
}

// ---------------------------------------------------------------- addresses

pub(crate) const ADDR_EXPECTED: &str =
    "an IP address and port: \"192.0.2.10:80\", or \"[2001:db8::10]:80\" for IPv6";

fn with_port(ip: IpAddr, port: &str) -> String {
    match ip {
        IpAddr::V4(a) => format!("\"{a}:{port}\""),
        IpAddr::V6(a) => format!("\"[{a}]:{port}\""),
    }
}

fn port(p: &str, s: &str) -> Result<u16, Diag> {
    let e = ADDR_EXPECTED;
    if p.is_empty() {
        return Err(Diag::new(
            format!("address {} has an empty port", quote(s)),
            e,
            "add the port number after the colon",
        ));
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Diag::new(
            format!("invalid port {} in {}", quote(p), quote(s)),
            e,
            "ports are numbers 1..65535; service names like \"http\" are not looked up",
        ));
    }
    match p.parse::<u32>() {
        Ok(0) => Err(port_zero()),
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(Diag::new(
            format!("port {p} is out of range"),
            e,
            "ports range 1..65535",
        )),
    }
}

fn port_zero() -> Diag {
    Diag::new(
        "port 0 is not allowed",
        ADDR_EXPECTED,
        "give the real port number, 1..65535",
    )
}

/// `a.b.c.d:port` or `[v6]:port`, never a host name, never port 0.
pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, Diag> {
    let e = ADDR_EXPECTED;
    if let Ok(a) = s.parse::<SocketAddr>() {
        return if a.port() == 0 {
            Err(port_zero())
        } else {
            Ok(a)
        };
    }
    let t = s.trim();
    if t.is_empty() {
        return Err(Diag::new(
            "empty address",
            e,
            "write an address such as \"192.0.2.10:80\"",
        ));
    }
    if t != s {
        let fix = format!("remove the spaces: {}", quote(t));
        return match parse_addr(t) {
            Ok(_) => Err(Diag::new(
                format!("address {} has surrounding spaces", quote(s)),
                e,
                fix,
            )),
            Err(d) => Err(d),
        };
    }
    for scheme in ["tcp://", "udp://", "http://", "https://"] {
        if let Some(rest) = t.strip_prefix(scheme) {
            let rest = rest.trim_end_matches('/');
            return Err(Diag::new(
                format!("address {} has a scheme", quote(s)),
                e,
                format!("remove {scheme:?}: {}", quote(rest)),
            ));
        }
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        let mut fix = format!("add the port: {}", with_port(ip, "80"));
        // "::1:80" is a valid IPv6 address, but more likely "[::1]:80".
        if let Some((h, p)) = t.rsplit_once(':') {
            if ip.is_ipv6() && h.parse::<Ipv6Addr>().is_ok() && p.parse::<u16>().is_ok() {
                fix = format!(
                    "if {p} is the port, put the address in brackets: \"[{h}]:{p}\"; else {fix}"
                );
            }
        }
        return Err(Diag::new(
            format!("address {} has no port", quote(s)),
            e,
            fix,
        ));
    }
    if let Some(inner) = t.strip_prefix('[') {
        let Some((host, rest)) = inner.split_once(']') else {
            return Err(Diag::new(
                format!("address {} lacks the closing `]`", quote(s)),
                e,
                "IPv6 addresses are written \"[2001:db8::10]:80\"",
            ));
        };
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return Err(Diag::new(
                format!("IPv4 address {host} in brackets"),
                e,
                format!(
                    "brackets are for IPv6 only: {}",
                    quote(&format!("{v4}{rest}"))
                ),
            ));
        }
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(Diag::new(
                format!("invalid IPv6 address {}", quote(host)),
                e,
                "check the address: eight groups of hex digits, `::` at most once, e.g. \"[2001:db8::10]:80\"",
            ));
        }
        let Some(p) = rest.strip_prefix(':') else {
            return Err(Diag::new(
                format!("address {} has no port", quote(s)),
                e,
                format!("add the port after the bracket: \"[{host}]:80\""),
            ));
        };
        port(p, s)?;
        return Err(Diag::new(
            format!("invalid address {}", quote(s)),
            e,
            "write \"[IPv6]:PORT\"",
        ));
    }
    if t.matches(':').count() >= 2 {
        if let Some((h, p)) = t.rsplit_once(':') {
            if h.parse::<Ipv6Addr>().is_ok() && p.parse::<u16>().is_ok() {
                return Err(Diag::new(
                    format!("IPv6 address {} without brackets", quote(s)),
                    e,
                    format!("put the address in brackets: \"[{h}]:{p}\""),
                ));
            }
        }
        return Err(Diag::new(
            format!("invalid address {}", quote(s)),
            e,
            "write IPv6 addresses in brackets, followed by the port: \"[2001:db8::10]:80\"",
        ));
    }
    let Some((h, p)) = t.rsplit_once(':') else {
        let fix = if t.bytes().all(|b| b.is_ascii_digit()) {
            format!("add the IP address: \"0.0.0.0:{t}\" (all IPv4 addresses) or \"[::]:{t}\"")
        } else {
            "add the port after a colon, e.g. \"192.0.2.10:80\"".to_owned()
        };
        return Err(Diag::new(
            format!("address {} has no port", quote(s)),
            e,
            fix,
        ));
    };
    port(p, s)?;
    if h.is_empty() {
        return Err(Diag::new(
            format!("address {} has no IP address", quote(s)),
            e,
            format!(
                "write \"0.0.0.0:{p}\" for all IPv4 addresses, or \"[::]:{p}\" for all IPv6 ones"
            ),
        ));
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(Diag::new(
            format!("invalid IPv4 address {}", quote(h)),
            e,
            "IPv4 addresses are four numbers 0..255 separated by dots",
        ));
    }
    let example = if h.eq_ignore_ascii_case("localhost") {
        format!("write \"127.0.0.1:{p}\" (or \"[::1]:{p}\")")
    } else {
        format!("halb does not resolve host names: write the IP address, e.g. \"192.0.2.10:{p}\"")
    };
    Err(Diag::new(
        format!("{} is not an IP address", quote(h)),
        e,
        example,
    ))
}

// ---------------------------------------------------------------- netmasks

pub(crate) const NETMASK_EXPECTED: &str =
    "a dotted IPv4 netmask (\"255.255.255.0\") or a prefix length 0..32 (24)";

/// A dotted netmask as a prefix length; it must be contiguous.
pub(crate) fn parse_netmask(s: &str) -> Result<u8, Diag> {
    let e = NETMASK_EXPECTED;
    let t = s.trim().trim_start_matches('/');
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Diag::new(
            format!("netmask {} is a string", quote(s)),
            e,
            format!("write a prefix length as an integer, without quotes: netmask = {t}"),
        ));
    }
    let mask = match s.parse::<Ipv4Addr>() {
        Ok(m) => u32::from(m),
        Err(_) => {
            let fix = if s.parse::<Ipv6Addr>().is_ok() {
                "netmask applies to IPv4 clients; give IPv6 clients a prefix length in prefix_v6"
            } else {
                "write four numbers 0..255 separated by dots, e.g. \"255.255.255.0\""
            };
            return Err(Diag::new(format!("invalid netmask {}", quote(s)), e, fix));
        }
    };
    let ones = mask.leading_ones();
    if ones + mask.trailing_zeros() != 32 {
        let near = Ipv4Addr::from(u32::MAX.checked_shl(32 - ones).unwrap_or(0));
        return Err(Diag::new(
            format!("netmask {} is not contiguous", quote(s)),
            e,
            format!(
                "a netmask is ones followed by zeros, like \"255.255.255.0\" (24); the contiguous mask with the same leading ones is \"{near}\" ({ones})"
            ),
        ));
    }
    Ok(ones as u8)
}

/// A shared key as written: 64 hex digits are 32 bytes, anything else is
/// a passphrase taken as its bytes (VRRP's hmac-sha256 `key`,
/// `[global.sync] key`).
pub(crate) fn key_bytes(k: &str) -> Vec<u8> {
    if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .filter_map(|i| u8::from_str_radix(k.get(2 * i..2 * i + 2).unwrap_or("0"), 16).ok())
            .collect()
    } else {
        k.as_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        assert!(parse_duration("366d").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615d").is_err());
        for bad in [
            "", " 3s", "s", "-3s", "3", "3sec", "3 s", "1.5s", "1m30s", "3S", "3us", "3.s", "3.5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("1.5s")
            .unwrap_err()
            .fix
            .contains("\"1500ms\""));
        assert!(parse_duration("1m30s").unwrap_err().fix.contains("\"90s\""));
        assert!(parse_duration("3sec").unwrap_err().fix.contains("\"3s\""));
        assert!(parse_duration("3 s").unwrap_err().fix.contains("\"3s\""));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
        assert_eq!(duration_from_secs(5), Ok(Duration::from_secs(5)));
        assert!(duration_from_secs(-1).is_err());
        assert!(duration_from_secs(i64::MAX).is_err());
        assert!(float_duration_fix(1.5).contains("\"1500ms\""));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("127.0.0.1:80"),
            Ok("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        let fix = |s: &str| parse_addr(s).unwrap_err().fix;
        assert!(fix("127.0.0.1").contains("\"127.0.0.1:80\""));
        assert!(fix("::1").contains("\"[::1]:80\""));
        assert!(fix("::1:80").contains("\"[::1]:80\""));
        assert!(fix("2001:db8::1:443").contains("\"[2001:db8::1]:443\""));
        assert!(fix("localhost:80").contains("\"127.0.0.1:80\""));
        assert!(fix("web1:80").contains("host names"));
        assert!(fix(":80").contains("\"0.0.0.0:80\""));
        assert!(fix("8080").contains("\"0.0.0.0:8080\""));
        assert!(fix("tcp://1.2.3.4:80").contains("\"1.2.3.4:80\""));
        assert!(fix(" 1.2.3.4:80").contains("\"1.2.3.4:80\""));
        assert!(fix("[1.2.3.4]:80").contains("\"1.2.3.4:80\""));
        for bad in [
            "",
            "1.2.3.4:0",
            "1.2.3.4:70000",
            "1.2.3.4:http",
            "1.2.3.256:80",
            "[::1]",
            "[::1",
            "[::g]:80",
            "[::1]x",
            "1.2.3.4:",
            "[::1]:",
            "a:b:c",
            "[",
            "]",
            ":",
            "[]:80",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn netmasks() {
        assert_eq!(parse_netmask("255.255.255.0"), Ok(24));
        assert_eq!(parse_netmask("255.255.255.255"), Ok(32));
        assert_eq!(parse_netmask("0.0.0.0"), Ok(0));
        assert_eq!(parse_netmask("255.255.128.0"), Ok(17));
        let err = parse_netmask("255.0.255.0").unwrap_err();
        assert!(err.message.contains("not contiguous"));
        assert!(err.fix.contains("\"255.0.0.0\" (8)"));
        assert!(parse_netmask("0.255.255.0")
            .unwrap_err()
            .fix
            .contains("\"0.0.0.0\" (0)"));
        assert!(parse_netmask("24")
            .unwrap_err()
            .fix
            .contains("netmask = 24"));
        assert!(parse_netmask("ffff::")
            .unwrap_err()
            .fix
            .contains("prefix_v6"));
        assert!(parse_netmask("255.255.0").is_err());
    }
}
