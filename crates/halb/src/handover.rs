//! Seamless restart (HAProxy's seamless reload): the running daemon hands
//! its listening sockets to a successor (`halb run --takeover`) over the
//! control socket, so that no client is refused while the two change
//! places.
//!
//! The exchange, on one control connection:
//! 1. the successor sends the request `"Handover"` (a JSON line);
//! 2. the running daemon sends frames — a 4-byte big-endian length, then
//!    JSON `{"services":[[KEY, N], …], "last": bool}` — each carrying at
//!    most [`BATCH`] descriptors (`SCM_RIGHTS`) for the services it lists,
//!    in order;
//! 3. the successor starts its data planes on them and sends `ready\n`;
//! 4. the running daemon then stops as on SIGTERM (listeners closed, VRRP
//!    released, connections drained), after giving up its control socket
//!    and its listen locks at once, which the successor then claims.
//!
//! Descriptors are passed with rustix's `sendmsg`/`recvmsg`, which hand
//! them over as `OwnedFd`: no `unsafe` here.

use halb_table::ServiceKey;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Descriptors per frame (the kernel takes at most 253 in one message).
pub const BATCH: usize = 200;

/// The most descriptors a hand-over carries (a bound on what the successor
/// accepts).
const MAX_FDS: usize = 65_536;

/// How long each step of the exchange may take.
pub const STEP: Duration = Duration::from_secs(30);

/// The line the successor sends once it accepts on the sockets.
pub const READY: &[u8] = b"ready\n";

#[derive(Debug, Serialize, Deserialize)]
struct Frame {
    services: Vec<(ServiceKey, usize)>,
    last: bool,
}

/// Send every service's listening sockets, in frames of at most [`BATCH`]
/// descriptors.
pub fn send(stream: &UnixStream, listeners: &[(ServiceKey, Vec<OwnedFd>)]) -> io::Result<()> {
    // Cut into frames: a service's sockets may span frames (then listed
    // once per frame with the count in that frame).
    let mut frames: Vec<(Frame, Vec<&OwnedFd>)> = Vec::new();
    let mut cur = (
        Frame {
            services: Vec::new(),
            last: false,
        },
        Vec::new(),
    );
    for (key, fds) in listeners {
        for chunk in fds.chunks(BATCH) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let room = BATCH - cur.1.len();
                let (now, later) = rest.split_at(room.min(rest.len()));
                cur.0.services.push((*key, now.len()));
                cur.1.extend(now.iter());
                rest = later;
                if cur.1.len() == BATCH {
                    frames.push(std::mem::replace(
                        &mut cur,
                        (
                            Frame {
                                services: Vec::new(),
                                last: false,
                            },
                            Vec::new(),
                        ),
                    ));
                }
            }
        }
    }
    frames.push(cur);
    if let Some(f) = frames.last_mut() {
        f.0.last = true;
    }
    for (frame, fds) in frames {
        let json = serde_json::to_vec(&frame).map_err(io::Error::other)?;
        let len = u32::try_from(json.len()).map_err(io::Error::other)?;
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&json);
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !borrowed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
            return Err(io::Error::other("descriptor batch too large"));
        }
        // The descriptors ride on the first bytes; the rest follows.
        let n = rustix::net::sendmsg(
            stream,
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::empty(),
        )?;
        let mut w = stream;
        w.write_all(&bytes[n..])?;
    }
    Ok(())
}

/// Receive the sockets [`send`] sent, by service.
pub fn receive(stream: &UnixStream) -> io::Result<HashMap<ServiceKey, Vec<OwnedFd>>> {
    let mut bytes: Vec<u8> = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    loop {
        // A JSON answer instead of frames: a daemon that refused (or
        // predates hand-overs).
        if bytes.first() == Some(&b'{') {
            if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
                return Err(io::Error::other(format!(
                    "the running daemon answered {}",
                    String::from_utf8_lossy(&bytes[..end])
                )));
            }
        }
        // Whole frames first.
        while bytes.len() >= 4 && bytes[0] != b'{' {
            let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            if len > 16 * 1024 * 1024 {
                return Err(io::Error::other("hand-over frame too large"));
            }
            if bytes.len() < 4 + len {
                break;
            }
            let frame: Frame = serde_json::from_slice(&bytes[4..4 + len])
                .map_err(|e| io::Error::other(format!("bad hand-over frame: {e}")))?;
            bytes.drain(..4 + len);
            let last = frame.last;
            frames.push(frame);
            if last {
                return assign(frames, fds);
            }
        }
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = msg {
                fds.extend(received);
            }
        }
        if fds.len() > MAX_FDS {
            return Err(io::Error::other("too many descriptors handed over"));
        }
        if got.bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the running daemon closed the hand-over",
            ));
        }
        bytes.extend_from_slice(&buf[..got.bytes]);
    }
}

/// The descriptors, in arrival order, to the services the frames list.
fn assign(frames: Vec<Frame>, fds: Vec<OwnedFd>) -> io::Result<HashMap<ServiceKey, Vec<OwnedFd>>> {
    let want: usize = frames
        .iter()
        .flat_map(|f| &f.services)
        .map(|(_, n)| n)
        .sum();
    if want != fds.len() {
        return Err(io::Error::other(format!(
            "the hand-over listed {want} sockets and carried {}",
            fds.len()
        )));
    }
    let mut out: HashMap<ServiceKey, Vec<OwnedFd>> = HashMap::new();
    let mut it = fds.into_iter();
    for (key, n) in frames.into_iter().flat_map(|f| f.services) {
        out.entry(key).or_default().extend(it.by_ref().take(n));
    }
    Ok(out)
}

/// The successor's side: ask the daemon at `socket` for its sockets.
pub fn request(
    socket: &std::path::Path,
) -> anyhow::Result<(UnixStream, HashMap<ServiceKey, Vec<OwnedFd>>)> {
    use anyhow::Context;
    let stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "--takeover: no running halb daemon answers on {} to hand over its sockets",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(STEP))?;
    stream.set_write_timeout(Some(STEP))?;
    let mut w = &stream;
    let mut line = serde_json::to_vec(&crate::control::Request::Handover)?;
    line.push(b'\n');
    w.write_all(&line)?;
    let got = receive(&stream).with_context(|| {
        format!(
            "--takeover: receiving the sockets of the daemon at {}",
            socket.display()
        )
    })?;
    Ok((stream, got))
}

/// The running daemon's side, after [`send`]: wait for the successor's
/// [`READY`] (at most [`STEP`]).
pub fn wait_ready(stream: &UnixStream) -> io::Result<()> {
    stream.set_read_timeout(Some(STEP))?;
    let mut got = [0u8; READY.len()];
    let mut r = stream;
    r.read_exact(&mut got)?;
    if got == READY {
        Ok(())
    } else {
        Err(io::Error::other("the successor did not say ready"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halb_table::Protocol;

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            listen: ([127, 0, 0, 1], port).into(),
            fwmark: None,
        }
    }

    #[test]
    fn sockets_cross_over_with_their_services_in_batches() {
        // More than one frame: 3 services of 150 listeners each.
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for svc in 0..3u16 {
            let mut fds = Vec::new();
            let mut a = Vec::new();
            for _ in 0..150 {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                a.push(l.local_addr().unwrap());
                fds.push(OwnedFd::from(l));
            }
            listeners.push((key(svc + 1), fds));
            addrs.push(a);
        }
        let (a, b) = UnixStream::pair().unwrap();
        let sender = std::thread::spawn(move || send(&a, &listeners));
        let got = receive(&b).unwrap();
        sender.join().unwrap().unwrap();
        assert_eq!(got.len(), 3);
        for svc in 0..3u16 {
            let fds = &got[&key(svc + 1)];
            let local: Vec<_> = fds
                .iter()
                .map(|f| {
                    std::net::TcpListener::from(f.try_clone().unwrap())
                        .local_addr()
                        .unwrap()
                })
                .collect();
            assert_eq!(local, addrs[svc as usize]);
        }
    }

    #[test]
    fn nothing_to_hand_over_is_one_empty_frame() {
        let (a, b) = UnixStream::pair().unwrap();
        send(&a, &[]).unwrap();
        assert!(receive(&b).unwrap().is_empty());
    }

    #[test]
    fn a_closed_hand_over_is_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(receive(&b).is_err());
    }
}
