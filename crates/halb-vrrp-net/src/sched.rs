//! Real-time scheduling for the VRRP thread.
//!
//! VRRP's timers are short (down to 10 ms adverts, a 30 ms master-down
//! interval): on a loaded machine a normal thread misses them and the
//! backup takes over spuriously. Like keepalived (`vrrp_rt_priority`),
//! the thread asks for SCHED_RR; without the privilege it logs a warning
//! and runs as a normal thread.

/// The SCHED_RR priority (1..99; keepalived's default is also low).
pub const RT_PRIORITY: i32 = 10;

/// Puts the calling thread in SCHED_RR at [`RT_PRIORITY`]; `false` (and a
/// warning) if not permitted. With SCHED_RESET_ON_FORK: what the thread
/// starts (`nft` for `accept = false`, tokio's blocking threads) runs at
/// normal priority.
pub fn raise_priority() -> bool {
    let param = libc::sched_param {
        sched_priority: RT_PRIORITY,
    };
    // SAFETY: sched_setscheduler reads one sched_param through the
    // pointer, which is valid for the call; pid 0 is the calling thread.
    #[allow(unsafe_code)]
    let rc =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == 0 {
        tracing::info!(priority = RT_PRIORITY, "VRRP thread runs SCHED_RR");
        true
    } else {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "VRRP thread stays at normal priority (SCHED_RR needs root or CAP_SYS_NICE): adverts may be late under load"
        );
        false
    }
}
