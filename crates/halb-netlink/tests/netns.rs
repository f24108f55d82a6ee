//! Address add/list/delete in a private network namespace (root only).
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use halb_netlink::{Address, Change, Netlink};

/// Runs `f` on a thread moved into a fresh network namespace, with its
/// own current-thread runtime (so the netlink sockets live there too).
fn in_new_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    if !halb_netlink::is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs this as root");
        println!("SKIPPED: needs root to unshare a network namespace");
        return;
    }
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
    })
    .join()
    .unwrap();
}

#[test]
fn add_list_delete_addresses_v4_v6() {
    in_new_netns(|| async {
        let nl = Netlink::new().unwrap();
        let lo = nl.link("lo").await.unwrap();
        assert!(!lo.is_up(), "a fresh namespace's lo is down");
        let v4 = Address {
            ifindex: lo.index,
            address: "192.0.2.100".parse().unwrap(),
            prefix_len: 32,
            label: Some("lo:vip".into()),
        };
        let v6 = Address {
            ifindex: lo.index,
            address: "2001:db8::100".parse().unwrap(),
            prefix_len: 128,
            label: None,
        };
        assert_eq!(nl.add_address(&v4).await.unwrap(), Change::Done);
        assert_eq!(nl.add_address(&v4).await.unwrap(), Change::AlreadyThere);
        // IPv6 addresses need the interface's IPv6 up; lo is fine.
        assert_eq!(nl.add_address(&v6).await.unwrap(), Change::Done);
        let listed = nl.addresses(Some(lo.index)).await.unwrap();
        assert!(listed.contains(&v4), "{listed:?}");
        assert!(listed.contains(&v6), "{listed:?}");
        assert_eq!(nl.delete_address(&v4).await.unwrap(), Change::Done);
        assert_eq!(nl.delete_address(&v4).await.unwrap(), Change::AlreadyThere);
        assert_eq!(nl.delete_address(&v6).await.unwrap(), Change::Done);
        let listed = nl.addresses(None).await.unwrap();
        let gone: [IpAddr; 2] = [v4.address, v6.address];
        assert!(
            !listed.iter().any(|a| gone.contains(&a.address)),
            "{listed:?}"
        );
    });
}

#[test]
fn sysctl_saved_restores_in_netns() {
    in_new_netns(|| async {
        use halb_netlink::sysctl;
        let p = sysctl::ipv4_conf("lo", "arp_ignore").unwrap();
        let before = sysctl::read(&p).unwrap();
        let mut saved = sysctl::Saved::new();
        sysctl::direct_routing_arp(&mut saved, "lo").unwrap();
        assert_eq!(sysctl::read(&p).unwrap(), "1");
        assert!(saved.restore().is_empty());
        assert_eq!(sysctl::read(&p).unwrap(), before);
    });
}

#[test]
fn link_events_report_up_and_down() {
    in_new_netns(|| async {
        use std::time::Duration;
        let mut events = halb_netlink::LinkEvents::new().unwrap();
        // `ip` only sets the link up/down here, to trigger the kernel's
        // notification: the crate itself never runs it.
        let ip = |args: &[&str]| {
            let st = std::process::Command::new("ip").args(args).status();
            st.map(|s| s.success()).unwrap_or(false)
        };
        assert!(ip(&[
            "link", "add", "hv6d0", "type", "veth", "peer", "name", "hv6d1"
        ]));
        assert!(ip(&["link", "set", "hv6d1", "up"]));
        assert!(ip(&["link", "set", "hv6d0", "up"]));
        let ev = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let ev = events.next().await.unwrap();
                if ev.link.name == "hv6d0" && ev.link.is_up() {
                    return ev;
                }
            }
        })
        .await
        .unwrap();
        assert!(!ev.removed);
        assert!(ip(&["link", "set", "hv6d0", "down"]));
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let ev = events.next().await.unwrap();
                if ev.link.name == "hv6d0" && !ev.link.admin_up {
                    return;
                }
            }
        })
        .await
        .unwrap();
    });
}
