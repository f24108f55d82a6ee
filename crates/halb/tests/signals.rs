//! The signals a keepalived or HAProxy user habitually sends: SIGUSR1
//! and SIGUSR2 (keepalived's data and stats dumps), SIGALRM and SIGPIPE
//! never end the daemon; SIGTERM ends it cleanly (exit 0, control socket
//! removed). Every wait is a bounded poll.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, poll, temp_dir, Daemon};

#[test]
fn usr1_usr2_alrm_and_pipe_do_not_kill_the_daemon() {
    let dir = temp_dir("signals");
    let port = free_port();
    let config = format!(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\
         \n  [[virtual_service.real_server]]\n  address = \"127.0.0.1:9\"\n\
         \n  [[virtual_service.real_server]]\n  address = \"127.0.0.1:10\"\n  check = {{ type = \"tcp\", interval = \"1s\" }}\n"
    );
    let mut d = Daemon::start(&dir, &config);
    for sig in ["-USR1", "-USR2", "-ALRM", "-PIPE"] {
        d.signal(sig);
        assert!(
            poll(|| d.status()).is_some(),
            "halb stopped answering after {sig}:\n{}",
            d.log()
        );
        assert!(d.child.try_wait().unwrap().is_none(), "{sig} ended halb");
    }
    // keepalived writes /tmp/keepalived.data and .stats; halb writes its
    // dumps next to its control socket.
    let data = poll(|| std::fs::read(dir.join("halb.data")).ok()).expect("halb.data");
    let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(data["services"][0]["name"], "web", "{data:#}");
    assert_eq!(data["health"][0]["real"], "127.0.0.1:10", "{data:#}");
    let stats = poll(|| std::fs::read(dir.join("halb.stats")).ok()).expect("halb.stats");
    let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
    assert!(stats.is_array(), "{stats:#}");
    let log = d.log();
    assert!(log.contains("halb.data written to"), "{log}");

    d.signal("-TERM");
    let st = d.wait_exit();
    assert!(st.success(), "{st:?}\n{}", d.log());
    assert!(!d.socket.exists(), "the control socket was left behind");
}
