//! Throwaway PKI for the mTLS variants, from the local mesh's own CA code (rcgen): a CA,
//! the proxy's server certificate, and the load generator's client certificate carrying an
//! Istio-style SPIFFE URI SAN, which meshtally's inbound side turns into `x-mesh-source`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use meshtally_envoy::pki::Ca;
use meshtally_envoy::tls::Tls;

/// The service account in the client certificate, so the name the filter must report.
pub const CLIENT_SA: &str = "bench-client";
const NAMESPACE: &str = "bench";

/// Everything the mTLS variants need, written under one directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server: Tls,
    pub client: Tls,
}

impl Pki {
    /// The local mesh's own CA and workload certificates (SPIFFE URI and 127.0.0.1 SANs).
    pub fn create(dir: &Path) -> Result<Pki> {
        let ca = Ca::new(dir, "bench")?;
        Ok(Pki {
            ca: ca.cert_path.clone(),
            server: ca.issue(dir, NAMESPACE, "bench-proxy")?,
            client: ca.issue(dir, NAMESPACE, CLIENT_SA)?,
        })
    }
}
