//! The demo-service as a container image, built here as `ko` and `jib` build theirs: no Docker,
//! no base image. One layer holds the static binary at `/demo-service` and an `/etc/passwd` and
//! `/etc/group` naming the non-root user 65532 (what distroless calls `nonroot`); the config sets
//! the entrypoint, that user (numeric, so Kubernetes' `runAsNonRoot` can check it) and the port.
//! No CA certificates: the service speaks plain HTTP to its peers, and the sidecar does the TLS.
//!
//! The bytes are reproducible (see [`super::image::layer`]): the same binary always gives the
//! same digest.

use std::collections::BTreeMap;

use serde::Serialize;

use super::image::{self, json, Blob, ImageParts, LayerEntry, RootFs};

pub const ENTRYPOINT: &str = "/demo-service";
/// The user and group the service runs as.
pub const USER: u32 = 65532;
/// The port the service listens on unless PORT says otherwise (`render` sets it per service).
pub const PORT: u16 = 8000;

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{0} is not a Linux ELF executable")]
    NotElf(String),
    #[error(
        "{0} is dynamically linked: the image has no libc; build it static with \
         `cargo build --release -p demo-service --target x86_64-unknown-linux-musl`"
    )]
    Dynamic(String),
    #[error("{what} is built for ELF machine {machine}, which has no OCI architecture here")]
    Machine { what: String, machine: u16 },
    #[error("packing the image")]
    Pack(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImage {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
    /// The OCI architecture, from the binary (`amd64`, `arm64`).
    pub architecture: &'static str,
}

impl ServiceImage {
    pub fn parts(&self) -> ImageParts<'_> {
        ImageParts {
            layer: &self.layer,
            config: &self.config,
            manifest: &self.manifest,
        }
    }
}

#[derive(Serialize)]
struct Config {
    architecture: &'static str,
    os: &'static str,
    config: Runtime,
    rootfs: RootFs,
}

/// The part of the image config a runtime reads (the OCI spec's capitalised field names).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Runtime {
    user: String,
    exposed_ports: BTreeMap<String, BTreeMap<(), ()>>,
    env: Vec<String>,
    entrypoint: Vec<&'static str>,
    working_dir: &'static str,
}

/// The image of a static Linux binary; `what` names it in errors.
pub fn build(binary: &[u8], what: &str) -> Result<ServiceImage, BinaryError> {
    let architecture = check_static(binary, what)?;
    let (layer, diff_id) = image::layer(&[
        LayerEntry::dir("etc/"),
        LayerEntry::file("etc/group", 0o644, GROUP.as_bytes()),
        LayerEntry::file("etc/passwd", 0o644, PASSWD.as_bytes()),
        LayerEntry::file(ENTRYPOINT.trim_start_matches('/'), 0o755, binary),
    ])?;
    let config = Blob::new(json(&Config {
        architecture,
        os: "linux",
        config: Runtime {
            user: format!("{USER}:{USER}"),
            exposed_ports: [(format!("{PORT}/tcp"), BTreeMap::new())].into(),
            env: vec![
                "PATH=/".to_owned(),
                format!("PORT={PORT}"),
                "BIND=0.0.0.0".to_owned(),
            ],
            entrypoint: vec![ENTRYPOINT],
            working_dir: "/",
        },
        rootfs: RootFs::of(diff_id),
    })?);
    let manifest = image::manifest(&config, &layer, BTreeMap::new())?;
    Ok(ServiceImage {
        layer,
        config,
        manifest,
        architecture,
    })
}

/// The binary's OCI architecture, if it is a static Linux ELF executable: no `PT_INTERP`
/// program header, so it needs no dynamic loader (and no libc) in the image.
pub fn check_static(binary: &[u8], what: &str) -> Result<&'static str, BinaryError> {
    let not_elf = || BinaryError::NotElf(what.to_owned());
    // 64-bit little-endian ELF only: what x86_64 and aarch64 Linux builds are.
    if binary.get(..4) != Some(b"\x7fELF") || binary.get(4) != Some(&2) || binary.get(5) != Some(&1)
    {
        return Err(not_elf());
    }
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(binary.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(binary.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(binary.get(at..at + 8)?.try_into().ok()?))
    };
    let machine = u16_at(18).ok_or_else(not_elf)?;
    let architecture = match machine {
        62 => "amd64",
        183 => "arm64",
        _ => {
            return Err(BinaryError::Machine {
                what: what.to_owned(),
                machine,
            })
        }
    };
    let phoff = usize::try_from(u64_at(32).ok_or_else(not_elf)?).map_err(|_| not_elf())?;
    let phentsize = usize::from(u16_at(54).ok_or_else(not_elf)?);
    let phnum = usize::from(u16_at(56).ok_or_else(not_elf)?);
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let kind = u32_at(phoff + i * phentsize).ok_or_else(not_elf)?;
        if kind == PT_INTERP {
            return Err(BinaryError::Dynamic(what.to_owned()));
        }
    }
    Ok(architecture)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// The smallest static x86_64 ELF header this check reads: no program headers at all.
    fn elf(machine: u16, interp: bool) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        let kind: u32 = if interp { 3 } else { 1 };
        bytes[64..68].copy_from_slice(&kind.to_le_bytes());
        bytes
    }

    #[test]
    fn only_static_linux_executables() {
        assert_eq!(check_static(&elf(62, false), "x").unwrap(), "amd64");
        assert_eq!(check_static(&elf(183, false), "x").unwrap(), "arm64");
        assert!(matches!(
            check_static(&elf(62, true), "x"),
            Err(BinaryError::Dynamic(_))
        ));
        assert!(matches!(
            check_static(&elf(40, false), "x"),
            Err(BinaryError::Machine { machine: 40, .. })
        ));
        assert!(matches!(
            check_static(b"#!/bin/sh\n", "x"),
            Err(BinaryError::NotElf(_))
        ));
        assert!(matches!(
            check_static(&elf(62, false)[..60], "x"),
            Err(BinaryError::NotElf(_))
        ));
    }

    #[test]
    fn layer_config_and_reproducibility() {
        let binary = elf(62, false);
        let image = build(&binary, "x").unwrap();
        assert_eq!(image, build(&binary, "x").unwrap());

        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&image.layer.bytes[..]));
        let mut files = BTreeMap::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            files.insert(path, (header.mode().unwrap(), header.uid().unwrap(), bytes));
        }
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["demo-service", "etc/", "etc/group", "etc/passwd"]
        );
        assert_eq!(files["demo-service"], (0o755, 0, binary.clone()));
        let passwd = String::from_utf8(files["etc/passwd"].2.clone()).unwrap();
        assert!(passwd.contains(":65532:65532:"), "{passwd}");

        let config: serde_json::Value = serde_json::from_slice(&image.config.bytes).unwrap();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/demo-service"])
        );
        assert_eq!(
            config["config"]["ExposedPorts"],
            serde_json::json!({"8000/tcp": {}})
        );
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest["config"]["digest"], image.config.digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], image.layer.digest.as_str());
        assert!(manifest.get("annotations").is_none());

        let other = build(&elf(183, false), "x").unwrap();
        assert_ne!(other.manifest.digest, image.manifest.digest);
    }
}
