//! What the end-to-end tests (`tests/`), the benchmark harness (`bench/harness`) and the crates'
//! own tests share, so each of these exists once: the raw HTTP/1.1 client ([`http`]) for
//! requests a real client must not send, the Envoy runner ([`envoy`]), the guarded child
//! process ([`process`]), the log tail ([`tail`]) and loopback ports ([`free_port`]). Production
//! code uses none of it.

pub mod envoy;
pub mod http;
pub mod process;

use std::path::{Path, PathBuf};

/// The workspace root, so tests find `.venv` and `target/` wherever cargo runs them from.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The last `n` lines of a log file, for failure messages (the same tail `deployer up`
/// shows when a process dies).
pub fn tail(path: &Path, n: usize) -> String {
    meshtally_envoy::logs::tail(path, n)
}

/// A loopback port free right now, from the OS (bind 127.0.0.1:0), so tests need no fixed
/// ports and never collide with each other.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
