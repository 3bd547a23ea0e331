//! The mesh's TLS as Envoy loads it: one workload's PEM files, and the common TLS context both
//! a sidecar's inbound listener (server side) and its clusters (client side) are built on.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// PEM files of one workload identity plus the mesh CA.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl Tls {
    /// The same files, named under `to` instead of `from`.
    pub fn relocated(&self, from: &Path, to: &Path) -> Tls {
        let move_one = |p: &Path| {
            p.strip_prefix(from)
                .map_or_else(|_| p.to_path_buf(), |rest| to.join(rest))
        };
        Tls {
            cert: move_one(&self.cert),
            key: move_one(&self.key),
            ca: move_one(&self.ca),
        }
    }
}

pub fn common_tls(tls: &Tls, validation: Value) -> Value {
    json!({
        "tls_certificates": [{
            "certificate_chain": {"filename": tls.cert.display().to_string()},
            "private_key": {"filename": tls.key.display().to_string()},
        }],
        "validation_context": validation,
    })
}
