//! `deployer push --service-image`: builds the demo-service image without Docker, as `ko` and
//! `jib` do — the static (musl) binary packed by [`super::oci::service_image`] — pushes it with
//! the filter's OCI client, and prints the digest and the `--image` to deploy it with. Like
//! every part deployer uses, the binary is found ([`crate::locate`]), never compiled here.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use oci_client::Reference;

use super::oci::auth::{self, Credentials};
use super::oci::registry;
use super::oci::service_image::{self, ServiceImage};
use crate::locate::Places;

/// What `push --service-image` was asked for, before any check.
#[derive(Debug, Clone)]
pub struct ServicePushRequest {
    pub image: String,
    pub binary: Option<PathBuf>,
    pub insecure: bool,
    pub pull_registry: Option<String>,
}

/// A checked push: the binary built and read, the image packed, the target parsed.
pub struct ServicePushPlan {
    reference: Reference,
    binary_path: PathBuf,
    binary_len: usize,
    image: ServiceImage,
    credentials: Credentials,
    insecure: bool,
    pull_registry: Option<String>,
}

pub fn plan(req: ServicePushRequest) -> Result<ServicePushPlan> {
    let reference = registry::parse_reference(&req.image)?;
    if let Some(host) = &req.pull_registry {
        super::push::check_host(host)?;
    }
    let binary_path = Places::here().static_demo_service(req.binary.as_deref())?;
    let binary = std::fs::read(&binary_path).with_context(|| {
        format!(
            "cannot read the demo-service binary {} (--service-bin)",
            binary_path.display()
        )
    })?;
    let image = service_image::build(&binary, &binary_path.display().to_string())?;
    let credentials = auth::credentials(reference.resolve_registry())?;
    Ok(ServicePushPlan {
        reference,
        binary_path,
        binary_len: binary.len(),
        image,
        credentials,
        insecure: req.insecure,
        pull_registry: req.pull_registry,
    })
}

impl ServicePushPlan {
    pub fn run(self) -> Result<()> {
        eprintln!(
            "packed {} as {} ({}, user {}, entrypoint {})",
            self.binary_path.display(),
            self.reference.whole(),
            self.image.architecture,
            service_image::USER,
            service_image::ENTRYPOINT
        );
        registry::push(
            self.image.parts(),
            &self.reference,
            self.credentials.clone(),
            self.insecure,
            |line| eprintln!("{line}"),
        )?;
        let image = &self.image;
        let registry = self
            .pull_registry
            .as_deref()
            .unwrap_or(self.reference.registry());
        let repository = self.reference.repository();
        let pinned = format!("{registry}/{repository}@{}", image.manifest.digest);
        let size = image.manifest.bytes.len() + image.config.bytes.len() + image.layer.bytes.len();
        println!(
            "pushed {} ({size} bytes: layer {}, binary {} bytes)",
            self.reference.whole(),
            image.layer.bytes.len(),
            self.binary_len
        );
        println!("digest: {}", image.manifest.digest);
        println!("image:  {pinned}");
        println!("\ndeploy it:\n  deployer apply --image {pinned}");
        Ok(())
    }
}
