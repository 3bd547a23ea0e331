//! Throwaway PKI for the mTLS variants, made with rcgen as the end-to-end tests make theirs: a CA,
//! the proxy's server certificate, and the load generator's client certificate carrying an
//! Istio-style SPIFFE URI SAN, which meshtally's inbound side turns into `x-mesh-source`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The service account in the client certificate, so the name the filter must report.
pub const CLIENT_SA: &str = "bench-client";
const TRUST_DOMAIN: &str = "cluster.local";
const NAMESPACE: &str = "bench";

/// PEM files of one identity.
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the mTLS variants need, written under one directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server: Identity,
    pub client: Identity,
}

impl Pki {
    pub fn create(dir: &Path) -> Result<Pki> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "meshtally bench CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem())?;
        let issuer = Issuer::new(params, key);
        Ok(Pki {
            ca,
            server: issue(&issuer, dir, "bench-proxy")?,
            client: issue(&issuer, dir, CLIENT_SA)?,
        })
    }
}

/// A workload certificate for `spiffe://cluster.local/ns/bench/sa/<sa>`, valid for 127.0.0.1 and
/// usable as server and client (as Istio's are).
fn issue(issuer: &Issuer<'static, KeyPair>, dir: &Path, sa: &str) -> Result<Identity> {
    let uri = format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{sa}");
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = vec![
        SanType::URI(uri.as_str().try_into()?),
        SanType::IpAddress([127, 0, 0, 1].into()),
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    let identity = Identity {
        cert: dir.join(format!("{sa}.pem")),
        key: dir.join(format!("{sa}-key.pem")),
    };
    std::fs::write(&identity.cert, cert.pem())?;
    std::fs::write(&identity.key, key.serialize_pem())?;
    Ok(identity)
}
