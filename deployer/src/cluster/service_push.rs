//! `deployer push --service-image`: builds the demo-service image without Docker, as `ko` and
//! `jib` do — the static (musl) binary packed by [`super::oci::service_image`] — pushes it with
//! the filter's OCI client, and prints the digest and the `--image` to deploy it with. Like
//! every part deployer uses, the binary is found ([`meshtally_envoy::locate`]), never compiled here.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::oci::service_image::{self, ServiceImage};
use super::push::Destination;
use meshtally_envoy::locate::Places;

/// What `push --service-image` was asked for, before any check.
#[derive(Debug, Clone)]
pub struct ServicePushRequest {
    pub image: String,
    pub binary: Option<PathBuf>,
    pub insecure: bool,
    pub pull_registry: Option<String>,
}

/// A checked push: the destination, and the binary read and packed.
pub struct ServicePushPlan {
    destination: Destination,
    binary_path: PathBuf,
    binary_len: usize,
    image: ServiceImage,
}

pub fn plan(req: ServicePushRequest) -> Result<ServicePushPlan> {
    let destination = Destination::new(&req.image, req.insecure, req.pull_registry)?;
    let binary_path = Places::here().static_demo_service(req.binary.as_deref())?;
    let binary = std::fs::read(&binary_path).with_context(|| {
        format!(
            "cannot read the demo-service binary {} (--service-bin)",
            binary_path.display()
        )
    })?;
    let image = service_image::build(&binary, &binary_path.display().to_string())?;
    Ok(ServicePushPlan {
        destination,
        binary_path,
        binary_len: binary.len(),
        image,
    })
}

impl ServicePushPlan {
    /// Pushes, showing progress on stderr; returns the report: what was pushed and the
    /// digest-pinned image to deploy it with.
    pub fn run(self) -> Result<String> {
        let image = &self.image;
        eprintln!(
            "packed {} as {} ({}, user {}, entrypoint {})",
            self.binary_path.display(),
            self.destination.name(),
            image.architecture,
            service_image::USER,
            service_image::ENTRYPOINT
        );
        let pulled = self.destination.push(image.parts())?;
        let pinned = format!("{pulled}@{}", image.manifest.digest);
        let size = image.manifest.bytes.len() + image.config.bytes.len() + image.layer.bytes.len();
        Ok(format!(
            "pushed {} ({size} bytes: layer {}, binary {} bytes)\n\
             digest: {}\n\
             image:  {pinned}\n\
             \n\
             deploy it:\n  deployer apply --image {pinned}\n",
            self.destination.name(),
            image.layer.bytes.len(),
            self.binary_len,
            image.manifest.digest,
        ))
    }
}
