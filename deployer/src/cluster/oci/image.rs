//! The filter as a Wasm OCI image in the *compat* variant, the layout Istio's image fetcher
//! (`pkg/wasm/imagefetcher.go`) tries first: an OCI image manifest whose last layer has the
//! standard `application/vnd.oci.image.layer.v1.tar+gzip` type and is a tar.gz holding
//! `plugin.wasm`, with the manifest annotated `module.wasm.image/variant=compat` as the Wasm image
//! spec asks. Standard types mean any registry and any image tool handle it.
//!
//! The layer, manifest and blob helpers are shared with the demo-service image
//! ([`super::service_image`]).
//!
//! The bytes are reproducible: fixed tar metadata (mtime 0, root, 0644), a gzip header without
//! time or name, and JSON written field by field. The same module always gives the same digest,
//! so pushing an unchanged build changes nothing in the cluster.

use std::io::Write as _;

use flate2::{Compression, GzBuilder};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation that marks the compat variant, and its value.
pub const VARIANT_ANNOTATION: (&str, &str) = ("module.wasm.image/variant", "compat");
/// The file the fetcher extracts from the layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// Bytes and their `sha256:<hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Blob {
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        Blob { bytes, digest }
    }

    /// The digest's hex part.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    fn descriptor(&self, media_type: &'static str) -> Descriptor {
        Descriptor {
            media_type,
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
        }
    }
}

/// Everything a push uploads: the layer and config blobs, then the manifest naming them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmImage {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
    /// Lowercase hex SHA-256 of the module itself.
    pub module_sha256: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<&'static str, &'static str>,
}

/// A minimal but valid OCI image config: the layer's uncompressed digest, which tools check on
/// pull, and the platform of a WASI module.
#[derive(Serialize)]
struct Config {
    architecture: &'static str,
    os: &'static str,
    rootfs: RootFs,
}

#[derive(Serialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

impl RootFs {
    pub fn of(diff_id: String) -> RootFs {
        RootFs {
            kind: "layers",
            diff_ids: vec![diff_id],
        }
    }
}

pub fn build(module: &[u8]) -> std::io::Result<WasmImage> {
    let (layer, diff_id) = layer(&[LayerEntry::file(PLUGIN_FILE, 0o644, module)])?;
    let config = Blob::new(json(&Config {
        architecture: "wasm",
        os: "wasip1",
        rootfs: RootFs::of(diff_id),
    })?);
    let manifest = manifest(&config, &layer, [VARIANT_ANNOTATION].into())?;
    Ok(WasmImage {
        layer,
        config,
        manifest,
        module_sha256: hex(&Sha256::digest(module)),
    })
}

/// One entry of a layer: a folder, or a file with its bytes.
pub struct LayerEntry<'a> {
    pub path: &'a str,
    pub mode: u32,
    pub contents: Option<&'a [u8]>,
}

impl<'a> LayerEntry<'a> {
    pub fn file(path: &'a str, mode: u32, contents: &'a [u8]) -> LayerEntry<'a> {
        LayerEntry {
            path,
            mode,
            contents: Some(contents),
        }
    }

    pub fn dir(path: &'a str) -> LayerEntry<'a> {
        LayerEntry {
            path,
            mode: 0o755,
            contents: None,
        }
    }
}

/// A tar.gz layer of `entries` and its diff id (the digest of the uncompressed tar, which the
/// image config lists and pullers check). The bytes do not depend on the build machine: root
/// owns everything, mtime is 0, and GzBuilder writes no time or file name unless asked.
pub fn layer(entries: &[LayerEntry<'_>]) -> std::io::Result<(Blob, String)> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_path(entry.path)?;
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let bytes = entry.contents.unwrap_or_default();
        header.set_size(bytes.len() as u64);
        header.set_entry_type(if entry.contents.is_some() {
            tar::EntryType::Regular
        } else {
            tar::EntryType::Directory
        });
        header.set_cksum();
        builder.append(&header, bytes)?;
    }
    let tar = builder.into_inner()?;
    let diff_id = Blob::new(tar.clone()).digest;
    let mut gz = GzBuilder::new().write(Vec::new(), Compression::best());
    gz.write_all(&tar)?;
    Ok((Blob::new(gz.finish()?), diff_id))
}

/// An OCI image manifest of one config and one layer.
pub fn manifest(
    config: &Blob,
    layer: &Blob,
    annotations: std::collections::BTreeMap<&'static str, &'static str>,
) -> std::io::Result<Blob> {
    Ok(Blob::new(json(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: config.descriptor(CONFIG_MEDIA_TYPE),
        layers: vec![layer.descriptor(LAYER_MEDIA_TYPE)],
        annotations,
    })?))
}

/// The blobs a push uploads, whatever the image holds.
pub struct ImageParts<'a> {
    pub layer: &'a Blob,
    pub config: &'a Blob,
    pub manifest: &'a Blob,
}

impl WasmImage {
    pub fn parts(&self) -> ImageParts<'_> {
        ImageParts {
            layer: &self.layer,
            config: &self.config,
            manifest: &self.manifest,
        }
    }
}

pub fn json(value: &impl Serialize) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(std::io::Error::other)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 a module";

    #[test]
    fn the_layer_holds_the_module_as_plugin_wasm() {
        let image = build(MODULE).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&image.layer.bytes[..]));
        let mut entries = tar.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(PLUGIN_FILE));
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, MODULE);
        assert!(entries.next().is_none());
    }

    #[test]
    fn manifest_names_the_blobs_and_the_variant() {
        let image = build(MODULE).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["config"]["digest"], image.config.digest.as_str());
        assert_eq!(m["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(layers[0]["digest"], image.layer.digest.as_str());
        assert_eq!(layers[0]["size"], image.layer.bytes.len() as u64);
        assert_eq!(m["annotations"]["module.wasm.image/variant"], "compat");
        assert_eq!(image.manifest.hex().len(), 64);
        assert_eq!(image.module_sha256, hex(&Sha256::digest(MODULE)));
    }

    #[test]
    fn reproducible() {
        assert_eq!(build(MODULE).unwrap(), build(MODULE).unwrap());
        assert_ne!(
            build(MODULE).unwrap().manifest.digest,
            build(b"\0asm\x01\0\0\0").unwrap().manifest.digest
        );
    }
}
