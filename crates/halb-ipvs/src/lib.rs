//! Linux IPVS programmed over generic netlink.
//!
//! * [`model`]: the kernel's table as plain data (services, destinations,
//!   statistics, timeouts, sync daemons);
//! * [`codec`]: our encoding of the "IPVS" generic-netlink family on
//!   `netlink-packet-core`/`-generic` (byte-exact snapshot tests);
//! * [`reconcile`]: pure diff from the desired table to the smallest list of
//!   kernel operations (never a flush);
//! * [`conn`]: the connection table from `/proc/net/ip_vs_conn`;
//! * [`procfs`]: `/proc/net/ip_vs`, a reload's cheap check of the table;
//! * [`socket`]: the thin shell that talks to the kernel (netlink-sys);
//! * [`dataplane`]: [`IpvsDataPlane`], the `halb_table::DataPlane` for IPVS.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod conn;
mod consts;
pub mod dataplane;
pub mod model;
pub mod procfs;
pub mod reconcile;
pub mod rules;
pub mod socket;

pub use codec::{decode_replies, Reply, Request};
pub use dataplane::{IpvsDataPlane, IpvsOptions};
pub use model::*;
pub use socket::{IpvsError, IpvsSocket};
