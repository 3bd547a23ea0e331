//! Where the sidecars get the filter module from: a published module (`oci://` image or
//! `https://` file) named by URL, or the locally built file shipped in a ConfigMap.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ModelError;

/// The largest module a ConfigMap delivery accepts. Kubernetes caps a ConfigMap's data at 1 MiB.
pub const MAX_MODULE_BYTES: u64 = 1024 * 1024;

/// The module as the mesh model names it; nothing is read yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WasmSource {
    /// A published module, with the digest Istio verifies when one is known.
    Remote { url: String, sha256: Option<String> },
    /// The locally built module, to be read from `path` and delivered by ConfigMap.
    ConfigMap { path: PathBuf },
}

/// The module ready to render: the remote reference, or the bytes read for the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Remote { url: String, sha256: Option<String> },
    ConfigMap(Module),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

impl WasmSource {
    /// Checks a `--wasm-url` and optional `--wasm-sha256`. An `oci://…@sha256:<hex>` url carries
    /// its own digest; a separate digest must then agree with it.
    pub fn remote(url: &str, sha256: Option<&str>) -> Result<WasmSource, ModelError> {
        let rest = ["oci://", "https://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or_else(|| ModelError::WasmUrlScheme(url.to_owned()))?;
        if rest.is_empty() || rest.chars().any(char::is_whitespace) {
            return Err(ModelError::WasmUrlEmpty(url.to_owned()));
        }
        let flag = sha256.map(checked_digest).transpose()?;
        let in_url = match rest.rsplit_once("@sha256:") {
            Some((_, digest)) => Some(checked_digest(digest)?),
            None => None,
        };
        let sha256 = match (in_url, flag) {
            (Some(url_digest), Some(flag)) if url_digest != flag => {
                return Err(ModelError::DigestMismatch {
                    url: url_digest,
                    flag,
                })
            }
            (url_digest, flag) => url_digest.or(flag),
        };
        Ok(WasmSource::Remote {
            url: url.to_owned(),
            sha256,
        })
    }
}

impl Module {
    pub fn from_bytes(bytes: Vec<u8>) -> Module {
        let sha256 = hex(&Sha256::digest(&bytes));
        Module { bytes, sha256 }
    }

    /// A built module's bytes, read from `path` by the caller (`size` is the file's length,
    /// which `bytes` may stop short of), refusing what a ConfigMap cannot hold or what is not
    /// wasm at all (a stray text file would otherwise only fail inside every sidecar).
    pub fn checked(path: &Path, bytes: Vec<u8>, size: u64) -> Result<Module, ModelError> {
        if size > MAX_MODULE_BYTES {
            return Err(ModelError::ModuleTooLarge {
                path: path.to_owned(),
                size,
            });
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(ModelError::ModuleNotWasm(path.to_owned()));
        }
        Ok(Module::from_bytes(bytes))
    }
}

fn checked_digest(digest: &str) -> Result<String, ModelError> {
    let ok = digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(digest.to_owned())
    } else {
        Err(ModelError::BadDigest(digest.to_owned()))
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digest_from_url_or_flag() {
        let url = format!("oci://ghcr.io/x/filter@sha256:{D}");
        let WasmSource::Remote { sha256, .. } = WasmSource::remote(&url, None).unwrap() else {
            panic!()
        };
        assert_eq!(sha256.as_deref(), Some(D));
        let WasmSource::Remote { sha256, .. } =
            WasmSource::remote("https://x/f.wasm", Some(D)).unwrap()
        else {
            panic!()
        };
        assert_eq!(sha256.as_deref(), Some(D));
        assert!(WasmSource::remote(&url, Some(D)).is_ok());
        let other = D.replace('0', "1");
        assert!(matches!(
            WasmSource::remote(&url, Some(&other)),
            Err(ModelError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn bad_urls_and_digests() {
        for url in ["http://x/f.wasm", "file:///f.wasm", "ghcr.io/x", ""] {
            assert!(matches!(
                WasmSource::remote(url, None),
                Err(ModelError::WasmUrlScheme(_))
            ));
        }
        assert!(matches!(
            WasmSource::remote("oci://", None),
            Err(ModelError::WasmUrlEmpty(_))
        ));
        assert!(matches!(
            WasmSource::remote("oci://x@sha256:ABC", None),
            Err(ModelError::BadDigest(_))
        ));
        assert!(matches!(
            WasmSource::remote("oci://x", Some(&D.to_uppercase())),
            Err(ModelError::BadDigest(_))
        ));
    }

    #[test]
    fn module_hash() {
        let m = Module::from_bytes(b"\0asm\x01\0\0\0".to_vec());
        assert_eq!(m.sha256.len(), 64);
        assert_eq!(
            Module::from_bytes(Vec::new()).sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn module_checks() {
        let at = Path::new("m.wasm");
        assert!(matches!(
            Module::checked(at, b"hello".to_vec(), 5),
            Err(ModelError::ModuleNotWasm(_))
        ));
        let mut bytes = b"\0asm".to_vec();
        bytes.resize(MAX_MODULE_BYTES as usize + 1, 0);
        assert!(matches!(
            Module::checked(at, bytes.clone(), MAX_MODULE_BYTES + 7),
            Err(ModelError::ModuleTooLarge { size, .. }) if size == MAX_MODULE_BYTES + 7
        ));
        bytes.truncate(MAX_MODULE_BYTES as usize);
        assert_eq!(
            Module::checked(at, bytes, MAX_MODULE_BYTES)
                .unwrap()
                .bytes
                .len() as u64,
            MAX_MODULE_BYTES
        );
    }
}
