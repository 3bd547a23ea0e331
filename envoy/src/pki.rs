//! The local mesh's PKI: a CA and workload certificates carrying Istio-style SPIFFE URI SANs,
//! written as PEM files Envoy loads. Made fresh at every `up`, as istiod would issue them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use meshtally_wire::identity::spiffe_id;

use crate::tls::Tls;

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_path: PathBuf,
}

impl Ca {
    /// A new CA, written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} root CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let cert_path = ca_file(dir, name);
        std::fs::write(&cert_path, cert.pem())?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_path,
        })
    }

    /// A workload certificate for `spiffe_id(namespace, sa)`, usable as both server and
    /// client, as Istio's are.
    pub fn issue(&self, dir: &Path, namespace: &str, sa: &str) -> Result<Tls> {
        let uri = spiffe_id(namespace, sa);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        // The loopback address too, so a client connecting to 127.0.0.1 directly (a load
        // generator, curl --cacert) can verify the server as it would any host.
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
        let cert = params.signed_by(&key, &self.issuer)?;
        let tls = Tls {
            ca: self.cert_path.clone(),
            ..workload_files(dir, "", namespace, sa)
        };
        std::fs::write(&tls.cert, cert.pem())?;
        write_private(&tls.key, key.serialize_pem().as_bytes())?;
        Ok(tls)
    }
}

impl Ca {
    /// A server certificate for the DNS name `host` (an outside server's, as a public CA would
    /// issue it): `dir/<host>.pem` and its key.
    pub fn issue_server(&self, dir: &Path, host: &str) -> Result<Tls> {
        let mut params = CertificateParams::new(vec![host.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let tls = server_files(dir, host, &self.cert_path);
        std::fs::write(&tls.cert, cert.pem())?;
        write_private(&tls.key, key.serialize_pem().as_bytes())?;
        Ok(tls)
    }
}

/// Where [`Ca::issue_server`] writes `host`'s files, the CA's beside them.
pub fn server_files(dir: &Path, host: &str, ca: &Path) -> Tls {
    Tls {
        cert: dir.join(format!("{host}.pem")),
        key: dir.join(format!("{host}{KEY_SUFFIX}")),
        ca: ca.to_path_buf(),
    }
}

/// Where a CA named `name` keeps its certificate in `dir`.
pub fn ca_path(dir: &Path, name: &str) -> PathBuf {
    ca_file(dir, name)
}

fn ca_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-ca.pem"))
}

/// Where `issue` writes the files of a workload identity, under a CA named `ca` in `dir`: so a
/// config can name them again without issuing anew.
pub fn workload_files(dir: &Path, ca: &str, namespace: &str, sa: &str) -> Tls {
    let stem = format!("{namespace}-{sa}");
    Tls {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}{KEY_SUFFIX}")),
        ca: ca_file(dir, ca),
    }
}

/// What a private key's file name ends with.
const KEY_SUFFIX: &str = "-key.pem";

/// A private key, readable by its owner alone (0600) from the moment it exists. A key issued
/// again replaces the old file rather than inheriting its mode.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("replacing {}", path.display()))
        }
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Removes the private keys in `dir` (after `down`: a stopped mesh needs none, and a key left
/// on disk outlives the mesh it proved). Certificates stay for inspection.
pub fn remove_keys(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(KEY_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
