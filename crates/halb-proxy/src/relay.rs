//! Moving bytes both ways between a client and a real server.
//!
//! One future per connection drives both directions (no task or buffer per
//! direction). Each direction is a small state machine on tokio readiness
//! (`AsyncFd`, which also tells when the peer has sent its FIN): wait until
//! the source is readable, move what is there into a buffer (copy) or a
//! pipe (splice), push it to the destination, repeat. At most one buffer or
//! pipe is in flight per direction, so memory is bounded and a slow reader
//! slows its writer (back pressure). Buffers and pipes are taken from the
//! worker's pool when bytes arrive and given back as soon as they are
//! flushed: an idle connection holds neither.
//!
//! System calls are spared the way HAProxy spares them. A read that
//! returns less than asked means the socket is drained (epoll is
//! edge-triggered), so readiness is cleared at once instead of spending a
//! call to learn `EAGAIN`; the same for a short write. If epoll has also
//! reported the peer's FIN, a draining read is the last one: no read to
//! learn the end of stream, and the bytes go out with `MSG_MORE` so the FIN
//! that follows at once leaves in the same segment. Splice gives no such
//! guarantee and is always read until `EAGAIN` or the end.
//!
//! End of stream from one side becomes `shutdown(SHUT_WR)` towards the
//! other once everything before it is delivered; the other direction keeps
//! flowing until it ends too (correct half-close). When both ends come
//! together (a client closing once it has its answer) closing the sockets
//! says it all and no shutdown is made; to catch that, a bare end of stream
//! waits for one more look at the event loop before it is passed on. An
//! error on either side aborts both, with a reset (`SO_LINGER` 0), as the
//! failure it is: a real server's reset reaches the client as a reset, and
//! a client's the real server. A read that ends at the peer's close (the
//! short read above) asks the socket for its error before taking the close
//! for a FIN, since a reset that arrived with the last bytes is reported
//! only once.

use crate::splice::{self, Pipe};
use crate::worker;
use nix::sys::socket::{recv, send, MsgFlags};
use socket2::Socket;
use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// A TCP socket registered with the worker's reactor.
pub(crate) type Sock = AsyncFd<Socket>;
type Guard<'a> = AsyncFdReadyGuard<'a, Socket>;

/// How bytes are moved (`ProxyOptions::splice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpliceMode {
    /// Always copy through user space (read/write).
    Off,
    /// Always splice(2) through a pipe.
    On,
    /// Copy small exchanges; switch a direction to splice once one read
    /// fills a whole buffer (bulk transfer), as HAProxy's `splice-auto`.
    #[default]
    Auto,
}

/// What the relay reports while it runs.
pub(crate) trait Observer {
    /// Bytes delivered client → server (`up`) and server → client (`down`)
    /// since the last call, and the time.
    fn transferred(&mut self, up: u64, down: u64, now: Instant);
    /// One side ended its stream (the first half-close).
    fn half_closed(&mut self);
}

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Both directions ended cleanly.
    Closed,
    /// No traffic either way for the idle timeout.
    Idle,
    /// A socket error (reset, ...); both sides were aborted.
    Error(io::Error),
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

fn retry_eintr(mut f: impl FnMut() -> nix::Result<usize>) -> io::Result<usize> {
    loop {
        match f() {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Read what is there. `Ok((n, last))`: `last` if that was everything
/// before the peer's FIN (end of stream follows, no need to read it).
fn read_some(g: &mut Guard<'_>, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let fin_seen = g.ready().is_read_closed();
    let len = buf.len();
    match g.try_io(|s| retry_eintr(|| recv(s.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT))) {
        Ok(Ok(n)) => {
            let drained = n < len;
            if n > 0 && drained {
                // drained: the next edge will say when there is more
                g.clear_ready();
            }
            Ok((n, n > 0 && drained && fin_seen))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(would_block()),
    }
}

/// Write what fits (`more`: more follows at once, a FIN, hold the segment).
fn write_some(g: &mut Guard<'_>, buf: &[u8], more: bool) -> io::Result<usize> {
    let mut flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    if more {
        flags |= libc::MSG_MORE;
    }
    let send = |s: &Sock| loop {
        match s.get_ref().send_with_flags(buf, flags) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    };
    match g.try_io(send) {
        Ok(Ok(n)) => {
            if n > 0 && n < buf.len() {
                // full: the next edge will say when there is room
                g.clear_ready();
            }
            Ok(n)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(would_block()),
    }
}

/// Read what the socket holds right now, bypassing tokio's readiness (the
/// speculative first read of a new connection, before epoll has said
/// anything about it). `WouldBlock` if nothing is there.
pub(crate) fn recv_now(s: &Sock, buf: &mut [u8]) -> io::Result<usize> {
    retry_eintr(|| recv(s.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT))
}

/// Send right now, bypassing tokio's readiness (the speculative first send
/// on a connection still being established). `WouldBlock` while it is.
pub(crate) fn send_now(s: &Sock, buf: &[u8]) -> io::Result<usize> {
    retry_eintr(|| {
        send(
            s.as_raw_fd(),
            buf,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        )
    })
}

/// Send all of `buf` (the PROXY header), waiting for room as needed.
pub(crate) async fn write_all(s: &Sock, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let mut g = s.writable().await?;
        match write_some(&mut g, buf, false) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Client bytes read before the relay started; `start..end` still to be
/// delivered.
pub(crate) struct Pending {
    pub(crate) buf: Box<[u8]>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// One direction, `src` → `dst`.
struct Half {
    /// Copy mode: bytes `start..end` of `buf` are waiting for `dst`.
    buf: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    /// Splice mode: `in_pipe` bytes in `pipe` are waiting for `dst`.
    pipe: Option<Pipe>,
    in_pipe: usize,
    splice: bool,
    /// `src` ended its stream.
    eof: bool,
    /// Bytes went out with `MSG_MORE`: the shutdown must follow at once.
    corked: bool,
    /// `src` failed (a reset that came with its last bytes): reported once
    /// those are delivered.
    err: Option<io::Error>,
    /// `eof` and everything delivered.
    done: bool,
    /// `dst` was shut down for writing.
    shut: bool,
}

impl Half {
    fn new(splice: bool) -> Self {
        Half {
            buf: None,
            start: 0,
            end: 0,
            pipe: None,
            in_pipe: 0,
            splice,
            eof: false,
            corked: false,
            err: None,
            done: false,
            shut: false,
        }
    }

    /// Move bytes until blocked. `Ready(Ok)`: this direction is over.
    /// `moved` counts bytes delivered to `dst`.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        src: &Sock,
        dst: &Sock,
        auto: bool,
        moved: &mut u64,
    ) -> Poll<io::Result<()>> {
        loop {
            // 1. Deliver what is in flight.
            if self.end > self.start {
                let mut g = ready!(dst.poll_write_ready(cx))?;
                let Some(buf) = self.buf.as_deref() else {
                    self.start = 0;
                    self.end = 0;
                    continue;
                };
                match write_some(&mut g, &buf[self.start..self.end], self.eof) {
                    Ok(n) => {
                        self.corked |= self.eof;
                        self.start += n;
                        *moved += n as u64;
                        if self.start >= self.end {
                            self.start = 0;
                            self.end = 0;
                            if let Some(b) = self.buf.take() {
                                worker::put_buffer(b);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                continue;
            }
            if self.in_pipe > 0 {
                let mut g = ready!(dst.poll_write_ready(cx))?;
                let Some(pipe) = self.pipe.as_ref() else {
                    self.in_pipe = 0;
                    continue;
                };
                let len = self.in_pipe;
                match g.try_io(|s| pipe.drain_to(s.get_ref().as_fd(), len)) {
                    Ok(Ok(n)) => {
                        self.in_pipe -= n.min(self.in_pipe);
                        *moved += n as u64;
                        if self.in_pipe == 0 {
                            if let Some(p) = self.pipe.take() {
                                worker::put_pipe(p);
                            }
                        }
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => {}
                }
                continue;
            }
            // 2. Everything delivered: this direction is over (the relay
            // passes the end of stream on, or the error).
            if let Some(e) = self.err.take() {
                return Poll::Ready(Err(e));
            }
            if self.eof {
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            // 3. Take more from the source.
            let mut g = ready!(src.poll_read_ready(cx))?;
            if self.splice && splice::supported() {
                let pipe = match self.pipe.take() {
                    Some(p) => p,
                    None => match worker::take_pipe() {
                        Ok(p) => p,
                        Err(e) => {
                            // out of descriptors: copy this time
                            crate::ratelimit::warn_limited!(error = %e, "cannot create a pipe, copying instead");
                            self.splice = false;
                            continue;
                        }
                    },
                };
                let cap = pipe.capacity();
                match g.try_io(|s| pipe.fill_from(s.get_ref().as_fd(), cap)) {
                    Ok(Ok(0)) => {
                        self.eof = true;
                        worker::put_pipe(pipe);
                    }
                    Ok(Ok(n)) => {
                        self.in_pipe = n;
                        self.pipe = Some(pipe);
                    }
                    Ok(Err(e)) if splice::mark_if_unsupported(&e) => {
                        worker::put_pipe(pipe);
                        self.splice = false;
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => worker::put_pipe(pipe),
                }
            } else {
                let mut buf = self.buf.take().unwrap_or_else(worker::take_buffer);
                match read_some(&mut g, &mut buf) {
                    Ok((0, _)) => {
                        self.eof = true;
                        worker::put_buffer(buf);
                    }
                    Ok((n, last)) => {
                        if auto && n == buf.len() && splice::supported() {
                            // a full buffer: bulk transfer, splice from now on
                            self.splice = true;
                        }
                        if last {
                            // The peer's end came with these bytes: a FIN,
                            // or a reset (which must be passed on as one,
                            // and which no later read would report now
                            // that the socket is closed).
                            match src.get_ref().take_error() {
                                Ok(None) => self.eof = true,
                                Ok(Some(e)) | Err(e) => self.err = Some(e),
                            }
                        }
                        self.start = 0;
                        self.end = n;
                        self.buf = Some(buf);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => worker::put_buffer(buf),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
    }
}

impl Drop for Half {
    fn drop(&mut self) {
        // A buffer is reusable whatever it holds; a pipe only when empty.
        if let Some(b) = self.buf.take() {
            worker::put_buffer(b);
        }
        if self.in_pipe == 0 {
            if let Some(p) = self.pipe.take() {
                worker::put_pipe(p);
            }
        }
    }
}

/// Make the close of `s` a reset (`SO_LINGER` 0) rather than a FIN: the
/// other side failed, or the proxy gave up on the connection, and the peer
/// must not take what it got for a complete stream.
pub(crate) fn abort(s: &Sock) {
    let _ = s.get_ref().set_linger(Some(Duration::ZERO));
}

fn shut_write(s: &Sock) {
    // The peer may be gone already (reset): nothing to tell then.
    let _ = s.get_ref().shutdown(Shutdown::Write);
}

/// Relay until both directions end, an error, or `idle` (if any) passes
/// without traffic. `pending`: client bytes already read, to deliver first.
pub(crate) async fn relay(
    client: &Sock,
    server: &Sock,
    mode: SpliceMode,
    idle: Option<Duration>,
    pending: Option<Pending>,
    obs: &mut impl Observer,
) -> End {
    let start_splice = mode == SpliceMode::On;
    let auto = mode == SpliceMode::Auto;
    let mut up = Half::new(start_splice);
    if let Some(p) = pending {
        if p.end > p.start {
            up.buf = Some(p.buf);
            up.start = p.start;
            up.end = p.end;
        } else {
            worker::put_buffer(p.buf);
        }
    }
    let mut down = Half::new(start_splice);
    let mut half_closed = false;
    let mut last = Instant::now();
    let sleep = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(86400)));
    tokio::pin!(sleep);

    // An idle limit too far away to compute is no limit.
    let idle = idle.filter(|d| last.checked_add(*d).is_some());
    let mut deferred = false;
    let end = loop {
        let step = poll_fn(|cx| {
            let mut up_n = 0u64;
            let mut down_n = 0u64;
            let mut err = None;
            if !up.done {
                if let Poll::Ready(Err(e)) = up.poll(cx, client, server, auto, &mut up_n) {
                    err = Some(e);
                }
            }
            if err.is_none() && !down.done {
                if let Poll::Ready(Err(e)) = down.poll(cx, server, client, auto, &mut down_n) {
                    err = Some(e);
                }
            }
            if up_n + down_n > 0 {
                last = Instant::now();
                obs.transferred(up_n, down_n, last);
            }
            if let Some(e) = err {
                return Poll::Ready(Some(End::Error(e)));
            }
            if !half_closed && (up.eof || down.eof) {
                half_closed = true;
                obs.half_closed();
            }
            if up.done && down.done {
                // Both ended: closing the sockets sends both FINs (and
                // what is corked), no shutdown(2) needed.
                return Poll::Ready(Some(End::Closed));
            }
            // Pass an end of stream on (keeping the other way flowing): at
            // once after corked bytes; a bare one waits for the event loop
            // to look at the sockets once more, since the other side's end
            // often comes right behind and then closing both says it all.
            if up.done && !up.shut && (up.corked || deferred) {
                up.shut = true;
                shut_write(server);
            }
            if down.done && !down.shut && (down.corked || deferred) {
                down.shut = true;
                shut_write(client);
            }
            if (up.done && !up.shut) || (down.done && !down.shut) {
                deferred = true;
                return Poll::Ready(None);
            }
            if let Some(idle) = idle {
                while sleep.as_mut().poll(cx).is_ready() {
                    let Some(deadline) = last.checked_add(idle) else {
                        break;
                    };
                    if Instant::now() >= deadline {
                        return Poll::Ready(Some(End::Idle));
                    }
                    sleep.as_mut().reset(deadline.into());
                }
            }
            Poll::Pending
        })
        .await;
        match step {
            Some(end) => break end,
            // after the driver has polled for I/O once more
            None => tokio::task::yield_now().await,
        }
    };
    if matches!(end, End::Error(_)) {
        abort(client);
        abort(server);
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    struct Count {
        up: u64,
        down: u64,
        half: u32,
    }
    impl Observer for Count {
        fn transferred(&mut self, up: u64, down: u64, _: Instant) {
            self.up += up;
            self.down += down;
        }
        fn half_closed(&mut self) {
            self.half += 1;
        }
    }

    /// A connected pair: the far end for the test, the near end for the
    /// relay.
    async fn pair() -> (TcpStream, Sock) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let far = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (near, _) = l.accept().await.unwrap();
        let near = Socket::from(near.into_std().unwrap());
        (far, crate::sock::register_stream(near).unwrap())
    }

    async fn half_close_both_ways(mode: SpliceMode) {
        // client <-> (a relay b) <-> server
        let (mut client, a) = pair().await;
        let (mut server, b) = pair().await;
        let relay = tokio::spawn(async move {
            let mut c = Count {
                up: 0,
                down: 0,
                half: 0,
            };
            let end = relay(&a, &b, mode, Some(Duration::from_secs(30)), None, &mut c).await;
            (end, c.up, c.down, c.half)
        });
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&big).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, big);
        // the server answers after the client's half-close
        server.write_all(b"reply after half-close").await.unwrap();
        server.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"reply after half-close");
        let (end, up, down, half) = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, End::Closed), "{end:?}");
        assert_eq!(up, big.len() as u64);
        assert_eq!(down, 22);
        assert_eq!(half, 1);
    }

    #[tokio::test]
    async fn half_close_copy() {
        half_close_both_ways(SpliceMode::Off).await;
    }

    #[tokio::test]
    async fn half_close_splice() {
        half_close_both_ways(SpliceMode::On).await;
    }

    #[tokio::test]
    async fn half_close_auto() {
        half_close_both_ways(SpliceMode::Auto).await;
    }

    #[tokio::test]
    async fn idle_timeout_ends_it() {
        let (_client, a) = pair().await;
        let (_server, b) = pair().await;
        let mut c = Count {
            up: 0,
            down: 0,
            half: 0,
        };
        let end = tokio::time::timeout(
            Duration::from_secs(10),
            relay(
                &a,
                &b,
                SpliceMode::Auto,
                Some(Duration::from_millis(100)),
                None,
                &mut c,
            ),
        )
        .await
        .unwrap();
        assert!(matches!(end, End::Idle), "{end:?}");
    }

    #[tokio::test]
    async fn reset_aborts_both() {
        let (client, a) = pair().await;
        let (mut server, b) = pair().await;
        let relay = tokio::spawn(async move {
            let mut c = Count {
                up: 0,
                down: 0,
                half: 0,
            };
            relay(&a, &b, SpliceMode::Off, None, None, &mut c).await
        });
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        let mut buf = [0u8; 16];
        // the server sees the reset (or at least the end)
        let r = tokio::time::timeout(Duration::from_secs(10), server.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)));
        let end = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, End::Error(_) | End::Closed), "{end:?}");
    }
}
