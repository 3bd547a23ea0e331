//! `deployer push`: reads and checks the built module, packs it as a compat Wasm image, pushes
//! it, and prints the manifest digest and the digest-pinned `oci://…@sha256:` url to give
//! `render`/`apply` as `--wasm-url`. Istio (1.13 and later) checks a WasmPlugin's `sha256`
//! against the image's *manifest* digest for `oci://` urls, not the module's hash, so the url
//! carries the manifest digest and `render` copies it into `sha256`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use oci_client::Reference;

use super::oci::auth::{self, Credentials};
use super::oci::image::{self, ImageParts, WasmImage};
use super::oci::registry;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("wasm module {} not found: build it with `make wasm`, or pass --wasm PATH", .0.display())]
    Missing(PathBuf),
    #[error("cannot read wasm module {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a wasm module (no \\0asm magic)", .0.display())]
    NotWasm(PathBuf),
}

/// What `push` was asked for, before any check.
#[derive(Debug, Clone)]
pub struct PushRequest {
    pub image: String,
    pub wasm: Option<PathBuf>,
    pub insecure: bool,
    pub pull_registry: Option<String>,
}

/// Where a push goes, checked before anything is packed: the tag (never a digest), the
/// credentials for its registry, plain HTTP or not, and the registry name pods pull from. Both
/// pushes (the filter's image and the demo-service's) go through it.
pub struct Destination {
    reference: Reference,
    credentials: Credentials,
    insecure: bool,
    pull_registry: Option<String>,
}

impl Destination {
    pub fn new(image: &str, insecure: bool, pull_registry: Option<String>) -> Result<Destination> {
        let reference = registry::parse_reference(image)?;
        if let Some(host) = &pull_registry {
            check_host(host)?;
        }
        let credentials = auth::credentials(reference.resolve_registry())?;
        Ok(Destination {
            reference,
            credentials,
            insecure,
            pull_registry,
        })
    }

    /// `REGISTRY/REPO:TAG` as pushed to.
    pub fn name(&self) -> String {
        self.reference.whole()
    }

    /// Uploads the image; returns `REGISTRY/REPO` as pods pull it (`--pull-registry`'s host
    /// when given), for a digest-pinned reference.
    pub fn push(&self, parts: ImageParts<'_>) -> Result<String> {
        registry::push(
            parts,
            &self.reference,
            self.credentials.clone(),
            self.insecure,
            |line| eprintln!("{line}"),
        )?;
        let registry = self
            .pull_registry
            .as_deref()
            .unwrap_or(self.reference.registry());
        Ok(format!("{registry}/{}", self.reference.repository()))
    }
}

/// A checked push: the destination, and the module read and packed.
pub struct PushPlan {
    destination: Destination,
    module_path: PathBuf,
    module_len: usize,
    image: WasmImage,
}

pub fn plan(req: PushRequest) -> Result<PushPlan> {
    let destination = Destination::new(&req.image, req.insecure, req.pull_registry)?;
    let module_path = req
        .wasm
        .unwrap_or_else(meshtally_envoy::locate::default_module);
    let module = read_module(&module_path)?;
    let image = image::build(&module).context("packing the module as an OCI image")?;
    Ok(PushPlan {
        destination,
        module_path,
        module_len: module.len(),
        image,
    })
}

impl PushPlan {
    /// Pushes, showing progress on stderr; returns the report: what was pushed and the
    /// digest-pinned url to deploy it with.
    pub fn run(self) -> Result<String> {
        let image = &self.image;
        eprintln!(
            "packed {} as {} (compat Wasm image)",
            self.module_path.display(),
            self.destination.name()
        );
        let pulled = self.destination.push(image.parts())?;
        let url = wasm_url(&pulled, image.manifest.hex());
        let size = image.manifest.bytes.len() + image.config.bytes.len() + image.layer.bytes.len();
        Ok(format!(
            "pushed {} ({size} bytes: layer {}, module {} bytes)\n\
             digest:        {}\n\
             module sha256: {}\n\
             wasm-url:      {url}\n\
             \n\
             deploy it:\n  deployer apply --wasm-url {url}\n",
            self.destination.name(),
            image.layer.bytes.len(),
            self.module_len,
            image.manifest.digest,
            image.module_sha256,
        ))
    }
}

/// The url `--wasm-url` takes: pinned to the manifest digest, which `render` also writes as
/// the WasmPlugin's `sha256`.
pub fn wasm_url(repository: &str, manifest_hex: &str) -> String {
    format!("oci://{repository}@sha256:{manifest_hex}")
}

/// Reads a built module; any size (a registry has no ConfigMap's 1 MiB cap), but it must be wasm.
pub fn read_module(path: &Path) -> Result<Vec<u8>, ModuleError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ModuleError::Missing(path.to_owned()),
        _ => ModuleError::Unreadable {
            path: path.to_owned(),
            source,
        },
    })?;
    if !bytes.starts_with(b"\0asm") {
        return Err(ModuleError::NotWasm(path.to_owned()));
    }
    Ok(bytes)
}

/// `--pull-registry` is a bare `host[:port]`, as it goes between `oci://` and the repository.
pub fn check_host(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && !host.contains("://")
        && !host.contains('/')
        && !host.chars().any(char::is_whitespace);
    if !ok {
        bail!("--pull-registry {host:?}: expected HOST[:PORT], e.g. kind-registry:5000");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtally_mesh::model::WasmSource;

    #[test]
    fn the_url_pins_the_manifest_digest_for_render() {
        let image = image::build(b"\0asm\x01\0\0\0").unwrap();
        let url = wasm_url("kind-registry:5000/meshtally/filter", image.manifest.hex());
        assert!(url.starts_with("oci://kind-registry:5000/meshtally/filter@sha256:"));
        let WasmSource::Remote { sha256, .. } = WasmSource::remote(&url, None).unwrap() else {
            panic!("not remote")
        };
        assert_eq!(sha256.as_deref(), Some(image.manifest.hex()));
    }

    #[test]
    fn module_and_host_checks() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_module(&dir.path().join("nope.wasm")).unwrap_err();
        assert!(missing.to_string().contains("make wasm"), "{missing}");
        let text = dir.path().join("t.wasm");
        std::fs::write(&text, "hello").unwrap();
        assert!(matches!(read_module(&text), Err(ModuleError::NotWasm(_))));
        assert!(check_host("kind-registry:5000").is_ok());
        for bad in ["", "http://x", "x/y", "a b"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
