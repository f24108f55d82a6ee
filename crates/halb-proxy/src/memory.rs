//! Giving memory back after a flood (issue 16 item 11). After thousands of
//! connections end, glibc's malloc keeps the freed pages in its per-thread
//! arenas: the daemon's RSS stays at its peak although nothing uses it.
//! `malloc_trim(0)` returns the free pages of every arena to the kernel.
//! The proxy's timer calls [`release_free_memory`] when the open
//! connections fell well below their peak since the last call.
//!
//! The second module of this crate with `unsafe` code (one FFI call).
#![allow(unsafe_code)]

/// Return the allocator's free pages to the kernel (glibc); nothing
/// elsewhere.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a plain integer, touches only the
    // allocator's own free lists (under the allocator's locks, so it is
    // thread-safe) and has no precondition on the caller; its result only
    // says whether memory was released.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// When to trim: the peak of open connections since the last trim, and
/// the rule that decides.
#[derive(Debug, Default)]
pub(crate) struct TrimPolicy {
    peak: usize,
}

impl TrimPolicy {
    /// Below this peak a flood left too little to be worth a trim.
    const WORTH: usize = 1000;

    /// Fed the number of open connections now (once a second): whether to
    /// trim now, i.e. the peak since the last trim was large and fewer than
    /// a quarter of it remain.
    pub(crate) fn observe(&mut self, open: usize) -> bool {
        self.peak = self.peak.max(open);
        if self.peak >= Self::WORTH && open < self.peak / 4 {
            self.peak = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_a_large_peak_has_gone() {
        let mut p = TrimPolicy::default();
        assert!(!p.observe(10));
        assert!(!p.observe(500));
        assert!(!p.observe(0), "a small peak is not worth it");
        assert!(!p.observe(5000));
        assert!(!p.observe(2000));
        assert!(p.observe(1000));
        assert!(!p.observe(900), "once per flood");
        assert!(!p.observe(0));
        release_free_memory();
    }
}
