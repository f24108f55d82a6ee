//! halb's configuration file. (Skeleton: being written.)
#![cfg_attr(test, allow(clippy::unwrap_used))]

use halb_table::VirtualService;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings that apply to the whole daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// Where the control socket listens (`halb list`, `halb reload`).
    pub control_socket: PathBuf,
    /// Data-plane worker threads (0: one per CPU).
    pub workers: usize,
}

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub global: Global,
    pub services: Vec<VirtualService>,
}

/// Every problem found in one file, in source order.
#[derive(Debug, thiserror::Error)]
#[error("{} error(s) in {}", .errors.len(), .file.display())]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<String>,
}

pub fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/halb/halb.sock")
}

pub fn parse(_src: &str, _file: &Path) -> Result<Config, ConfigErrors> {
    let _ = Duration::ZERO;
    unimplemented!("being written")
}
