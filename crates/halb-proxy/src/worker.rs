//! Worker threads: one current-thread tokio runtime each, thread per core
//! as HAProxy's `nbthread`. A worker owns its listeners (one per service,
//! `SO_REUSEPORT`) and every connection they accept, so a connection never
//! migrates and its counters, buffers and pipes are thread-local.
//!
//! `apply` runs on any thread: it binds sockets synchronously and spawns
//! the listener tasks through each worker's [`Handle`], which never blocks
//! and works from inside another runtime.

use crate::splice::Pipe;
use std::cell::RefCell;
use std::io;
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Sizes of the per-worker pools.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalConfig {
    pub(crate) buffer_size: usize,
    pub(crate) pipe_size: usize,
    pub(crate) pooled_buffers: usize,
    pub(crate) pooled_pipes: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            buffer_size: 64 * 1024,
            pipe_size: 0,
            pooled_buffers: 16,
            pooled_pipes: 64,
        }
    }
}

/// Buffers and pipes are only held while they carry bytes; in between they
/// wait here for the next connection of the same worker.
struct Local {
    cfg: LocalConfig,
    buffers: Vec<Box<[u8]>>,
    pipes: Vec<Pipe>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local {
        cfg: LocalConfig::default(),
        buffers: Vec::new(),
        pipes: Vec::new(),
    });
}

fn configure(cfg: LocalConfig) {
    LOCAL.with(|l| l.borrow_mut().cfg = cfg);
}

/// A copy buffer of the configured size.
pub(crate) fn take_buffer() -> Box<[u8]> {
    LOCAL
        .try_with(|l| {
            let mut l = l.borrow_mut();
            let size = l.cfg.buffer_size;
            l.buffers
                .pop()
                .unwrap_or_else(|| vec![0u8; size].into_boxed_slice())
        })
        .unwrap_or_else(|_| vec![0u8; LocalConfig::default().buffer_size].into_boxed_slice())
}

/// Give back an (empty) copy buffer.
pub(crate) fn put_buffer(b: Box<[u8]>) {
    let _ = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        if l.buffers.len() < l.cfg.pooled_buffers && b.len() == l.cfg.buffer_size {
            l.buffers.push(b);
        }
    });
}

/// An empty pipe.
pub(crate) fn take_pipe() -> io::Result<Pipe> {
    let pooled = LOCAL
        .try_with(|l| {
            let mut l = l.borrow_mut();
            l.pipes.pop().map(Ok).unwrap_or(Err(l.cfg.pipe_size))
        })
        .unwrap_or(Err(0));
    match pooled {
        Ok(p) => Ok(p),
        Err(size) => Pipe::new(size),
    }
}

/// Give back a pipe; it must be empty (a pipe with bytes left is closed).
pub(crate) fn put_pipe(p: Pipe) {
    let _ = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        if l.pipes.len() < l.cfg.pooled_pipes {
            l.pipes.push(p);
        }
    });
}

/// Run `f` with this worker's 64 KiB scratch buffer (UDP datagrams).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Option<Box<[u8]>>> = const { RefCell::new(None) };
    }
    let mut buf = SCRATCH
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0u8; 65536].into_boxed_slice());
    let r = f(&mut buf);
    let _ = SCRATCH.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            *s = Some(buf);
        }
    });
    r
}

struct Worker {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The worker threads; dropping this stops them (their connections close).
pub(crate) struct Workers {
    workers: Vec<Worker>,
}

impl Workers {
    pub(crate) fn start(n: usize, local: LocalConfig) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("halb-proxy-{i}"))
                .spawn(move || {
                    configure(local);
                    rt.block_on(async move {
                        let _ = stopped.await;
                    });
                    // Drop every task here, on this thread, while its
                    // thread-locals are still alive.
                    drop(rt);
                })?;
            workers.push(Worker {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Workers { workers })
    }

    pub(crate) fn handle(&self, i: usize) -> &Handle {
        &self.workers[i % self.workers.len()].handle
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(s) = w.stop.take() {
                let _ = s.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
