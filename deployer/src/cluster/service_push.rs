//! `deployer push --service-image`: builds the demo-service image without Docker, as `ko` does —
//! the static (musl) binary compiled by cargo, packed by [`super::oci::service_image`] — pushes
//! it with the filter's OCI client, and prints the digest and the `--image` to deploy it with.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use oci_client::Reference;

use super::oci::auth::{self, Credentials};
use super::oci::registry;
use super::oci::service_image::{self, ServiceImage};

/// The target a static demo-service is built for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

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
    let binary_path = match req.binary {
        Some(path) => path,
        None => build_static()?,
    };
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

/// Builds the static demo-service of the cargo workspace around the current dir (cargo does
/// nothing when it is up to date) and returns its path.
fn build_static() -> Result<PathBuf> {
    let Some(target) = crate::local::up::cargo_target_dir() else {
        bail!(
            "not inside the meshtally workspace, so there is no demo-service to build: pass \
             --service-bin PATH (a static build: cargo build --release -p demo-service --target \
             {MUSL_TARGET})"
        );
    };
    eprintln!(
        "building demo-service (cargo build --release -p demo-service --target {MUSL_TARGET})…"
    );
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "demo-service",
            "--target",
            MUSL_TARGET,
        ])
        .status()
        .context("running cargo to build demo-service")?;
    let built = target.join(MUSL_TARGET).join("release/demo-service");
    if !status.success() || !Path::new(&built).is_file() {
        bail!(
            "building the static demo-service failed (is the target installed? \
             `rustup target add {MUSL_TARGET}`)"
        );
    }
    Ok(built)
}
