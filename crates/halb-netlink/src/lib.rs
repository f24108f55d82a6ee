//! halb's own wrapper over rtnetlink.
//!
//! rtnetlink and the `netlink-packet-*` crates change their types with
//! almost every release, so the rest of halb never sees them: this crate
//! is the only one that names them, and its small API (addresses, links,
//! link events, and the `/proc/sys` knobs direct routing needs) is what
//! VRRP, `halb realserver` and the tests use. The rtnetlink version is
//! pinned in the workspace `Cargo.toml`.
//!
//! Everything here is async over tokio: a [`Netlink`] owns one
//! NETLINK_ROUTE connection whose driver task runs on the runtime that
//! created it. [`LinkEvents`] is a second connection subscribed to link
//! notifications (`ip monitor link`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod sysctl;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::stream::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{AddressMessageBuilder, MulticastGroup};
use thiserror::Error;
use tokio::task::JoinHandle;

/// Errors of this crate. Kernel refusals carry the errno as
/// [`io::Error`].
#[derive(Debug, Error)]
pub enum Error {
    /// Opening the netlink socket failed.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused a request.
    #[error("netlink {what}: {source}")]
    Kernel {
        /// The request ("add 192.0.2.1/24 on eth0").
        what: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The connection failed or answered something unexpected.
    #[error("netlink {what}: {detail}")]
    Protocol {
        /// The request.
        what: String,
        /// rtnetlink's description.
        detail: String,
    },
    /// No such interface.
    #[error("no interface named {0:?}")]
    NoSuchLink(String),
    /// A label longer than the kernel's 15 bytes, or an IPv6 label.
    #[error("address label {0:?}: at most 15 bytes, IPv4 only")]
    Label(String),
}

impl Error {
    /// The errno of a kernel refusal.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Kernel { source, .. } => source.raw_os_error(),
            Error::Socket(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

fn convert(what: impl FnOnce() -> String, e: rtnetlink::Error) -> Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Error::Kernel {
            what: what(),
            source: msg.to_io(),
        },
        other => Error::Protocol {
            what: what(),
            detail: other.to_string(),
        },
    }
}

/// An address on an interface (`ip address`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Interface index.
    pub ifindex: u32,
    /// The address.
    pub address: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IPv4 label (`eth0:vip`), if any.
    pub label: Option<String>,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} (ifindex {})",
            self.address, self.prefix_len, self.ifindex
        )?;
        if let Some(l) = &self.label {
            write!(f, " label {l}")?;
        }
        Ok(())
    }
}

/// A link and whether it can carry traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// Carrier present (IFF_RUNNING): a veth whose peer is down, a
    /// cable pulled, are not running.
    pub running: bool,
    /// Hardware address, if any.
    pub mac: Option<Vec<u8>>,
}

impl Link {
    /// Up and running: what VRRP's `track_interface` calls up
    /// (keepalived's test too).
    pub fn is_up(&self) -> bool {
        self.admin_up && self.running
    }

    fn from_message(msg: &LinkMessage) -> Link {
        let mut name = String::new();
        let mut mac = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name.clone_from(n),
                LinkAttribute::Address(a) => mac = Some(a.clone()),
                _ => {}
            }
        }
        Link {
            index: msg.header.index,
            name,
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            running: msg.header.flags.contains(LinkFlags::Running),
            mac,
        }
    }
}

/// One NETLINK_ROUTE connection. Dropping it stops its driver task.
pub struct Netlink {
    handle: rtnetlink::Handle,
    driver: JoinHandle<()>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Netlink")
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Whether an [`Netlink::add_address`] or [`Netlink::delete_address`]
/// changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Done.
    Done,
    /// It was already so (address present / absent).
    AlreadyThere,
}

impl Netlink {
    /// Opens a connection; its driver runs on the current tokio runtime
    /// (call from within one).
    pub fn new() -> Result<Netlink, Error> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        let driver = tokio::spawn(conn);
        Ok(Netlink { handle, driver })
    }

    /// All links.
    pub async fn links(&self) -> Result<Vec<Link>, Error> {
        let mut out = Vec::new();
        let mut stream = self.handle.link().get().execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| convert(|| "list links".into(), e))?
        {
            out.push(Link::from_message(&msg));
        }
        Ok(out)
    }

    /// The link named `name`.
    pub async fn link(&self, name: &str) -> Result<Link, Error> {
        let mut stream = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Link::from_message(&msg)),
            Ok(None) => Err(Error::NoSuchLink(name.to_owned())),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.to_io().raw_os_error() == Some(19 /* ENODEV */) =>
            {
                Err(Error::NoSuchLink(name.to_owned()))
            }
            Err(e) => Err(convert(|| format!("get link {name}"), e)),
        }
    }

    /// The index of the link named `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, Error> {
        Ok(self.link(name).await?.index)
    }

    /// The link with index `index`.
    pub async fn link_by_index(&self, index: u32) -> Result<Link, Error> {
        let mut stream = self.handle.link().get().match_index(index).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Link::from_message(&msg)),
            Ok(None) => Err(Error::NoSuchLink(format!("#{index}"))),
            Err(e) => Err(convert(|| format!("get link #{index}"), e)),
        }
    }

    /// Addresses, of one interface or (`None`) all.
    pub async fn addresses(&self, ifindex: Option<u32>) -> Result<Vec<Address>, Error> {
        let mut req = self.handle.address().get();
        if let Some(i) = ifindex {
            req = req.set_link_index_filter(i);
        }
        let mut stream = req.execute();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| convert(|| "list addresses".into(), e))?
        {
            if let Some(a) = address_from_message(&msg) {
                if ifindex.map_or(true, |i| i == a.ifindex) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// Adds an address (`ip address add ADDR/PREFIX dev IF [label L]`).
    /// IPv6 addresses are added with `nodad` so a VIP works at once.
    pub async fn add_address(&self, address: &Address) -> Result<Change, Error> {
        if let Some(label) = &address.label {
            if label.len() > 15 || address.address.is_ipv6() {
                return Err(Error::Label(label.clone()));
            }
        }
        let mut req =
            self.handle
                .address()
                .add(address.ifindex, address.address, address.prefix_len);
        let msg = req.message_mut();
        if let Some(label) = &address.label {
            msg.attributes.push(AddressAttribute::Label(label.clone()));
        }
        if address.address.is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(Change::Done),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.to_io().raw_os_error() == Some(17 /* EEXIST */) =>
            {
                Ok(Change::AlreadyThere)
            }
            Err(e) => Err(convert(|| format!("add {address}"), e)),
        }
    }

    /// Deletes an address (`ip address del ADDR/PREFIX dev IF`).
    pub async fn delete_address(&self, address: &Address) -> Result<Change, Error> {
        let msg = match address.address {
            IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(address.ifindex)
                .address(a, address.prefix_len)
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(address.ifindex)
                .address(a, address.prefix_len)
                .build(),
        };
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(Change::Done),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(
                    e.to_io().raw_os_error(),
                    Some(99 /* EADDRNOTAVAIL */) | Some(19 /* ENODEV */)
                ) =>
            {
                Ok(Change::AlreadyThere)
            }
            Err(e) => Err(convert(|| format!("delete {address}"), e)),
        }
    }
}

fn address_from_message(msg: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut addr = None;
    let mut label = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => addr = Some(*a),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            _ => {}
        }
    }
    // IFA_LOCAL is the address of the interface; IFA_ADDRESS the peer
    // on point-to-point links (and the only one for IPv6).
    let address = local.or(addr)?;
    Some(Address {
        ifindex: msg.header.index,
        address,
        prefix_len: msg.header.prefix_len,
        label,
    })
}

/// A link changed (RTM_NEWLINK / RTM_DELLINK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// The link as it is now.
    pub link: Link,
    /// The link was deleted.
    pub removed: bool,
}

/// Link notifications (`ip monitor link`). Dropping it stops its driver.
pub struct LinkEvents {
    messages: futures_channel_rx::Rx,
    driver: JoinHandle<()>,
    _handle: rtnetlink::Handle,
}

mod futures_channel_rx {
    use rtnetlink::packet_core::NetlinkMessage;
    use rtnetlink::packet_route::RouteNetlinkMessage;
    pub type Rx = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Send>,
    >;
}

impl fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkEvents")
    }
}

impl Drop for LinkEvents {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl LinkEvents {
    /// Subscribes to link notifications; the driver runs on the current
    /// tokio runtime.
    pub fn new() -> Result<LinkEvents, Error> {
        let (conn, handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(Error::Socket)?;
        let driver = tokio::spawn(conn);
        Ok(LinkEvents {
            messages: Box::pin(messages.map(|(m, _)| m)),
            driver,
            _handle: handle,
        })
    }

    /// The next event; `None` when the connection closed.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        while let Some(msg) = self.messages.next().await {
            if let Some(ev) = link_event(&msg) {
                return Some(ev);
            }
        }
        None
    }
}

fn link_event(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match &msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => Some(LinkEvent {
            link: Link::from_message(l),
            removed: false,
        }),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => Some(LinkEvent {
            link: Link::from_message(l),
            removed: true,
        }),
        _ => None,
    }
}

/// Whether this process may change addresses (CAP_NET_ADMIN is the real
/// test; this checks for root, which tests use to decide to skip).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_loopback() {
        let nl = Netlink::new().unwrap();
        let lo = nl.link("lo").await.unwrap();
        assert_eq!(lo.name, "lo");
        assert!(lo.index > 0);
        assert_eq!(nl.link_index("lo").await.unwrap(), lo.index);
        assert_eq!(nl.link_by_index(lo.index).await.unwrap().name, "lo");
        let addrs = nl.addresses(Some(lo.index)).await.unwrap();
        assert!(addrs
            .iter()
            .any(|a| a.address == IpAddr::V4(Ipv4Addr::LOCALHOST) && a.prefix_len == 8));
        assert!(nl.links().await.unwrap().iter().any(|l| l.name == "lo"));
    }

    #[tokio::test]
    async fn unknown_link_is_named() {
        let nl = Netlink::new().unwrap();
        match nl.link("halb-nosuch0").await {
            Err(Error::NoSuchLink(n)) => assert_eq!(n, "halb-nosuch0"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn labels_are_checked_before_the_kernel() {
        let nl = Netlink::new().unwrap();
        let a = Address {
            ifindex: 1,
            address: "2001:db8::1".parse().unwrap(),
            prefix_len: 128,
            label: Some("lo:x".into()),
        };
        assert!(matches!(nl.add_address(&a).await, Err(Error::Label(_))));
    }
}
