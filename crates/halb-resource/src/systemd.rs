//! systemd units through systemd's D-Bus API (zbus), as Pacemaker's
//! `systemd:` class calls them (Pacemaker 2.1, `lib/services/systemd.c`):
//!
//! - **start** / **stop**: `Manager.StartUnit(UNIT, "replace")` /
//!   `StopUnit(UNIT, "replace")`, then wait for that job's `JobRemoved`
//!   signal (after `Manager.Subscribe`): result `done` succeeded (a start
//!   then also reads `ActiveState`), anything else (`failed`, `timeout`,
//!   `canceled`, `dependency`, `skipped`) is an error (1) with the result
//!   as its reason. A stop of a unit systemd does not know (`LoadState`
//!   `not-found`) succeeded: nothing of it runs.
//! - **monitor** (and probes): `Manager.LoadUnit(UNIT)`, then the unit's
//!   `LoadState` and `ActiveState`: `not-found` answers 5 (not installed);
//!   `active` and `reloading` 0 (running); `inactive`, `failed` 7 (not
//!   running); `activating`, `deactivating` 1 (pending: a failure, with the
//!   state as the reason).
//!
//! Every call is bounded by its operation's timeout (a stop that D-Bus
//! never answers times out, which blocks the group: it is never taken as
//! stopped). The bus is the system bus (`DBUS_SYSTEM_BUS_ADDRESS` if set),
//! or the bus daemon at the address [`crate::agent::Agents::systemd_bus`]
//! gives. (systemd's own private socket, `/run/systemd/private`, is not
//! used: zbus 5 rejects the messages systemd sends there, whose sender is
//! not a unique name.) No reachable bus, or no systemd on it, is an error
//! result (a hard failure: the group is given up here) whose reason says
//! so.

use crate::engine::Op;
use crate::result::{code, AgentResult};
use futures_util::StreamExt as _;
use std::time::{Duration, Instant};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";

/// Which bus systemd is reached on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Bus {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else
    /// `/run/dbus/system_bus_socket`).
    #[default]
    System,
    /// A bus daemon at this address (`unix:path=…`).
    Address(String),
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bus::System => f.write_str("the system bus"),
            Bus::Address(a) => write!(f, "the bus at {a}"),
        }
    }
}

/// Runs `op` of `unit` over `bus` within `timeout`.
pub async fn run(bus: &Bus, unit: &str, op: Op, timeout: Duration) -> AgentResult {
    let began = Instant::now();
    let mut r = match tokio::time::timeout(timeout, call(bus, unit, op)).await {
        Ok(r) => r,
        Err(_) => AgentResult::timed_out(timeout),
    };
    r.elapsed = began.elapsed();
    r
}

async fn connect(bus: &Bus) -> zbus::Result<zbus::Connection> {
    match bus {
        Bus::System => zbus::Connection::system().await,
        Bus::Address(a) => {
            zbus::connection::Builder::address(a.as_str())?
                .build()
                .await
        }
    }
}

async fn call(bus: &Bus, unit: &str, op: Op) -> AgentResult {
    let conn = match connect(bus).await {
        Ok(c) => c,
        Err(e) => {
            return AgentResult::error(format!(
                "systemd:{unit}: no systemd reachable on {bus}: {e} (is systemd PID 1 here?)"
            ))
        }
    };
    let r = match op {
        Op::Probe | Op::Monitor => monitor(&conn, unit).await,
        Op::Start => job(&conn, unit, "StartUnit").await,
        Op::Stop => job(&conn, unit, "StopUnit").await,
    };
    r.unwrap_or_else(|e| AgentResult {
        exit_reason: Some(format!("systemd:{unit}: D-Bus: {e}")),
        ..AgentResult::code(code::ERR_GENERIC)
    })
}

async fn manager<B>(conn: &zbus::Connection, method: &str, body: &B) -> zbus::Result<zbus::Message>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    conn.call_method(Some(DEST), PATH, Some(MANAGER), method, body)
        .await
}

async fn property(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
    name: &str,
) -> zbus::Result<String> {
    let m = conn
        .call_method(
            Some(DEST),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(UNIT, name),
        )
        .await?;
    let v: OwnedValue = m.body().deserialize()?;
    String::try_from(v).map_err(zbus::Error::from)
}

/// (LoadState, ActiveState) of `unit`.
async fn states(conn: &zbus::Connection, unit: &str) -> zbus::Result<(String, String)> {
    let path: OwnedObjectPath = manager(conn, "LoadUnit", &(unit,))
        .await?
        .body()
        .deserialize()?;
    let load = property(conn, &path, "LoadState").await?;
    let active = property(conn, &path, "ActiveState").await?;
    Ok((load, active))
}

/// What `ActiveState` means to Pacemaker's engine, as an OCF code.
pub fn active_state_code(load: &str, active: &str) -> i32 {
    if load == "not-found" {
        return code::ERR_INSTALLED;
    }
    match active {
        "active" | "reloading" => code::OK,
        "inactive" | "failed" | "dead" => code::NOT_RUNNING,
        _ => code::ERR_GENERIC,
    }
}

async fn monitor(conn: &zbus::Connection, unit: &str) -> zbus::Result<AgentResult> {
    let (load, active) = states(conn, unit).await?;
    let c = active_state_code(&load, &active);
    Ok(AgentResult {
        exit_reason: (c != code::OK)
            .then(|| format!("{unit}: LoadState {load}, ActiveState {active}")),
        stdout: format!("ActiveState={active}\n"),
        ..AgentResult::code(c)
    })
}

async fn job(conn: &zbus::Connection, unit: &str, method: &str) -> zbus::Result<AgentResult> {
    let (load, _) = states(conn, unit).await?;
    if load == "not-found" {
        let c = if method == "StopUnit" {
            code::OK
        } else {
            code::ERR_INSTALLED
        };
        return Ok(AgentResult {
            exit_reason: Some(format!("{unit}: LoadState not-found")),
            ..AgentResult::code(c)
        });
    }
    // Signals reach us only once we listen: on a bus daemon a match rule,
    // and systemd sends them only to subscribers.
    let mut stream = zbus::MessageStream::from(conn);
    {
        conn.call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "AddMatch",
            &("type='signal',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'",),
        )
        .await?;
    }
    // "Already subscribed" is fine.
    let _ = manager(conn, "Subscribe", &()).await;
    let job: OwnedObjectPath = manager(conn, method, &(unit, "replace"))
        .await?
        .body()
        .deserialize()?;
    // Bounded by the operation's timeout (the caller's).
    let result = loop {
        let Some(m) = stream.next().await else {
            return Err(zbus::Error::Failure("the bus connection closed".into()));
        };
        let Ok(m) = m else { continue };
        let h = m.header();
        if m.message_type() != zbus::message::Type::Signal
            || h.member().map(|x| x.as_str()) != Some("JobRemoved")
        {
            continue;
        }
        let Ok((_, path, _, result)) = m
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        if path == job {
            break result;
        }
    };
    if result != "done" {
        return Ok(AgentResult {
            exit_reason: Some(format!("{unit}: {method} job {result}")),
            ..AgentResult::code(code::ERR_GENERIC)
        });
    }
    if method == "StopUnit" {
        return Ok(AgentResult::code(code::OK));
    }
    let (_, active) = states(conn, unit).await?;
    let c = match active.as_str() {
        "active" | "reloading" => code::OK,
        _ => code::ERR_GENERIC,
    };
    Ok(AgentResult {
        exit_reason: (c != code::OK).then(|| format!("{unit}: started, but ActiveState {active}")),
        stdout: format!("ActiveState={active}\n"),
        ..AgentResult::code(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_states_as_pacemaker_reads_them() {
        assert_eq!(active_state_code("loaded", "active"), 0);
        assert_eq!(active_state_code("loaded", "reloading"), 0);
        assert_eq!(active_state_code("loaded", "inactive"), 7);
        assert_eq!(active_state_code("loaded", "failed"), 7);
        assert_eq!(active_state_code("loaded", "activating"), 1);
        assert_eq!(active_state_code("loaded", "deactivating"), 1);
        assert_eq!(active_state_code("not-found", "inactive"), 5);
    }

    #[tokio::test]
    async fn no_bus_is_a_clear_error() {
        let bus = Bus::Address("unix:path=/nonexistent/hrs-systemd/bus".into());
        let r = run(&bus, "nginx.service", Op::Start, Duration::from_secs(5)).await;
        let why = r.exit_reason.clone().unwrap_or_default();
        assert!(why.contains("no systemd reachable"), "{why}");
        assert_eq!(r.severity(), crate::result::Severity::Hard);
    }
}
