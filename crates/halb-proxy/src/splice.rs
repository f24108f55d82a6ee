//! Zero-copy forwarding with splice(2) through a pipe.
//!
//! Bytes go socket → pipe → socket without ever being copied to user
//! space: the kernel moves page references. A pipe is only held while it
//! has bytes in it; empty pipes go back to a per-worker pool (see
//! [`crate::worker`]), so an idle connection holds none, as in HAProxy.
//!
//! Safe code only: `nix::fcntl::splice` wraps the system call.

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The Linux default pipe capacity (16 pages).
pub(crate) const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// Set once splice(2) turns out not to work here (an old kernel, a socket
/// type it does not support): everyone falls back to copying.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn supported() -> bool {
    !UNSUPPORTED.load(Relaxed)
}

/// An error meaning splice cannot be used at all (rather than this
/// connection failed).
pub(crate) fn mark_if_unsupported(e: &io::Error) -> bool {
    let unsupported = matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    );
    if unsupported && !UNSUPPORTED.swap(true, Relaxed) {
        tracing::warn!(error = %e, "splice(2) unavailable, copying through user space");
    }
    unsupported
}

/// A non-blocking pipe.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// `size` 0: the system default.
    pub(crate) fn new(size: usize) -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let mut capacity = DEFAULT_PIPE_SIZE;
        if size > 0 {
            let want = i32::try_from(size).unwrap_or(i32::MAX);
            // Best effort: an unprivileged process may be refused a larger
            // pipe; the default one works as well, only slower.
            if let Ok(got) = fcntl(&write, FcntlArg::F_SETPIPE_SZ(want)) {
                capacity = usize::try_from(got).unwrap_or(DEFAULT_PIPE_SIZE);
            }
        }
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Move up to `len` bytes from socket `from` into the pipe. `Ok(0)`:
    /// end of stream.
    pub(crate) fn fill_from(&self, from: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
        retry_eintr(|| {
            splice(
                from,
                None,
                self.write.as_fd(),
                None,
                len,
                SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
            )
        })
    }

    /// Move up to `len` bytes from the pipe to socket `to`.
    pub(crate) fn drain_to(&self, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
        retry_eintr(|| {
            splice(
                self.read.as_fd(),
                None,
                to,
                None,
                len,
                SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
            )
        })
    }
}

fn retry_eintr(mut f: impl FnMut() -> nix::Result<usize>) -> io::Result<usize> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn socket_to_pipe_to_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l2.local_addr().unwrap()).unwrap();
        let (mut d, _) = l2.accept().unwrap();

        let p = Pipe::new(0).unwrap();
        assert!(p.capacity() >= 4096);
        a.write_all(b"hello splice").unwrap();
        let mut got = 0;
        while got < 12 {
            got += p.fill_from(b.as_fd(), p.capacity()).unwrap();
        }
        let mut out = 0;
        while out < got {
            out += p.drain_to(c.as_fd(), got - out).unwrap();
        }
        let mut buf = [0u8; 12];
        d.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello splice");

        // empty, non-blocking: EAGAIN
        b.set_nonblocking(true).unwrap();
        let e = p.fill_from(b.as_fd(), 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // end of stream
        drop(a);
        let mut eof = false;
        for _ in 0..1000 {
            match p.fill_from(b.as_fd(), 4096) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => panic!("unexpected data"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
        assert!(eof);
    }

    #[test]
    fn bigger_pipe() {
        let p = Pipe::new(256 * 1024).unwrap();
        assert!(p.capacity() >= DEFAULT_PIPE_SIZE);
    }
}
