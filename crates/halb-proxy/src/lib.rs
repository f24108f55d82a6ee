//! Userspace data plane (being written).
