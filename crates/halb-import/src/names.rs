//! Host and service names, resolved as ldirectord resolves them on the
//! director: through the hosts file (`/etc/hosts`, or `--hosts FILE`) and
//! the services file (`/etc/services`, or `--services FILE`), read with
//! the import's [`Source`]. No DNS: a name that is not in the hosts file
//! is an error that names the file (import on the director, or pass
//! `--hosts`).

use crate::{Options, Source};
use std::cell::OnceCell;
use std::net::IpAddr;

/// A services file's entries: name (or alias), port, protocol.
type Services = Vec<(String, u16, String)>;

/// The two files, read the first time a name needs them.
pub(crate) struct Names<'a> {
    source: &'a dyn Source,
    hosts_file: String,
    services_file: String,
    hosts: OnceCell<Result<Vec<(String, IpAddr)>, String>>,
    services: OnceCell<Result<Services, String>>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(source: &'a dyn Source, opts: &Options) -> Self {
        Names {
            source,
            hosts_file: opts
                .hosts_file
                .clone()
                .unwrap_or_else(|| "/etc/hosts".to_owned()),
            services_file: opts
                .services_file
                .clone()
                .unwrap_or_else(|| "/etc/services".to_owned()),
            hosts: OnceCell::new(),
            services: OnceCell::new(),
        }
    }

    fn hosts(&self) -> &Result<Vec<(String, IpAddr)>, String> {
        self.hosts.get_or_init(|| {
            let text = self.source.read(&self.hosts_file)?;
            let mut v = Vec::new();
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut w = line.split_whitespace();
                let Some(ip) = w.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                for name in w {
                    v.push((name.to_ascii_lowercase(), ip));
                }
            }
            Ok(v)
        })
    }

    fn services(&self) -> &Result<Services, String> {
        self.services.get_or_init(|| {
            let text = self.source.read(&self.services_file)?;
            let mut v = Vec::new();
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut w = line.split_whitespace();
                let (Some(name), Some(pp)) = (w.next(), w.next()) else {
                    continue;
                };
                let Some((port, proto)) = pp.split_once('/') else {
                    continue;
                };
                let Ok(port) = port.parse::<u16>() else {
                    continue;
                };
                let proto = proto.to_ascii_lowercase();
                v.push((name.to_owned(), port, proto.clone()));
                for alias in w {
                    v.push((alias.to_owned(), port, proto.clone()));
                }
            }
            Ok(v)
        })
    }

    /// An IP literal, or a name of the hosts file (the first address of
    /// the wanted family). Err: why not, naming the file.
    pub(crate) fn host(&self, name: &str, v6: bool) -> Result<(IpAddr, bool), String> {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok((ip, false));
        }
        match self.hosts() {
            Err(e) => Err(format!(
                "cannot resolve {name:?}: the hosts file {} cannot be read ({e})",
                self.hosts_file
            )),
            Ok(list) => {
                let lower = name.to_ascii_lowercase();
                list.iter()
                    .find(|(n, ip)| *n == lower && ip.is_ipv6() == v6)
                    .map(|(_, ip)| (*ip, true))
                    .ok_or_else(|| {
                        format!(
                            "cannot resolve {name:?}: it is not in {} (halb import does not ask DNS)",
                            self.hosts_file
                        )
                    })
            }
        }
    }

    /// A port number, or a service name of the services file (for
    /// `proto` when it has that protocol's entry, else any).
    pub(crate) fn port(&self, name: &str, proto: &str) -> Result<(u16, bool), String> {
        if let Ok(p) = name.parse::<u16>() {
            return Ok((p, false));
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("port {name} is out of range (0..65535)"));
        }
        match self.services() {
            Err(e) => Err(format!(
                "cannot resolve the service {name:?}: the services file {} cannot be read ({e})",
                self.services_file
            )),
            Ok(list) => list
                .iter()
                .find(|(n, _, p)| n == name && p == proto)
                .or_else(|| list.iter().find(|(n, _, _)| n == name))
                .map(|(_, port, _)| (*port, true))
                .ok_or_else(|| {
                    format!(
                        "cannot resolve the service {name:?}: it is not in {}",
                        self.services_file
                    )
                }),
        }
    }

    pub(crate) fn hosts_file(&self) -> &str {
        &self.hosts_file
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemorySource;

    #[test]
    fn hosts_and_services_from_the_source() {
        let src = MemorySource::default()
            .with(
                "/etc/hosts",
                "127.0.0.1 localhost\n192.0.2.11 sql01 sql01.example.com # db\n2001:db8::11 sql01\n",
            )
            .with(
                "/etc/services",
                "http 80/tcp www # WorldWideWeb\ndomain 53/tcp\ndomain 53/udp\n",
            );
        let n = Names::new(&src, &Options::default());
        assert_eq!(
            n.host("SQL01", false).unwrap(),
            ("192.0.2.11".parse().unwrap(), true)
        );
        assert_eq!(
            n.host("sql01", true).unwrap(),
            ("2001:db8::11".parse().unwrap(), true)
        );
        assert_eq!(
            n.host("[2001:db8::1]", true).unwrap(),
            ("2001:db8::1".parse().unwrap(), false)
        );
        assert!(n.host("web9", false).unwrap_err().contains("/etc/hosts"));
        assert_eq!(n.port("www", "tcp").unwrap(), (80, true));
        assert_eq!(n.port("domain", "udp").unwrap(), (53, true));
        assert_eq!(n.port("8080", "tcp").unwrap(), (8080, false));
        assert!(n.port("99999", "tcp").is_err());
        assert!(n.port("nope", "tcp").unwrap_err().contains("/etc/services"));
        let none = MemorySource::default();
        let n = Names::new(&none, &Options::default());
        assert!(n.host("x", false).unwrap_err().contains("cannot be read"));
    }
}
