//! The mesh flags every renderer shares, and how they merge over a mesh file into a checked
//! [`Mesh`].

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;

use meshtally_mesh::model::error::SHOWN_PROBLEMS;
use meshtally_mesh::model::locate;
use meshtally_mesh::model::{FailStrategy, Mesh, MeshInput, MtlsMode, ServiceChoice};

/// Which services, on which ports, in which namespace: what every renderer of the mesh needs,
/// `up` included. No clap defaults: a flag given overrides the file, and the defaults (shown in
/// the help) apply last, in `Mesh::from_input`.
#[derive(Debug, Args)]
pub struct MeshShapeArgs {
    /// Mesh file (YAML) with any of: services (a count, or a list of names or {name, port}),
    /// names, namespace, base_port, replicas, image, wasm_url, wasm_sha256, wasm_file (relative
    /// to the file). Unknown fields are refused. Flags override its fields.
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Number of services, named service-a … service-z, then service-aa, service-ab, …
    /// (at most 1000) [default: 3]
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "names",
        allow_negative_numbers = true
    )]
    pub services: Option<u64>,

    /// Service names instead of generated ones, comma-separated (DNS-1035 labels).
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub names: Option<Vec<String>>,

    /// Namespace for everything; created with sidecar injection on [default: istio-demo]
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Port of the first service; service i listens on BASE + i. Ports 15000-15090 belong to
    /// the Istio sidecar and are refused [default: 8000]
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub base_port: Option<u64>,

    /// mTLS between sidecars (Istio's PeerAuthentication mode). strict: plain HTTP to a
    /// sidecar is refused; permissive: it is accepted from outside the mesh [default: strict]
    #[arg(long, value_enum, value_name = "MODE")]
    pub mtls: Option<MtlsMode>,

    /// The WasmPlugin's failStrategy. fail-open: a module or plugin config that cannot load is
    /// skipped and traffic flows untagged; fail-close: all traffic is denied, as Istio does.
    /// Unset, `render` writes FAIL_OPEN, and `up` refuses to start a mesh whose filter cannot
    /// load. Envoy's failure_policy for the filter follows it.
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub fail_strategy: Option<FailStrategy>,
}

/// The mesh as a cluster gets it: its shape, plus what only Kubernetes uses (pods per service,
/// the demo image, how the filter module is shipped). `up` takes only the shape, so these
/// flags are refused there rather than silently ignored.
#[derive(Debug, Args)]
pub struct MeshArgs {
    #[command(flatten)]
    pub shape: MeshShapeArgs,

    /// Pods per service [default: 2]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub replicas: Option<u64>,

    /// Demo service image, as `deployer push --service-image` pushed it
    /// [default: localhost:5001/meshtally/demo-service:<deployer's version>]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Published filter module, oci://… or https://…; an oci://…@sha256:<hex> url carries its
    /// digest. Without it, the module from --wasm-file is shipped in a ConfigMap.
    #[arg(long, value_name = "URL")]
    pub wasm_url: Option<String>,

    /// Digest Istio checks the --wasm-url download against (64 lowercase hex digits): for
    /// oci:// the image's manifest digest (what `deployer push` prints), for https:// the
    /// module's sha256.
    #[arg(long, value_name = "HEX", requires = "wasm_url")]
    pub wasm_sha256: Option<String>,

    /// Built filter module to ship in the `meshtally-filter` ConfigMap when there is no
    /// --wasm-url (at most 1 MiB; `make wasm` builds it)
    /// [default: target/wasm32-wasip1/release/meshtally_filter.wasm]
    #[arg(long, value_name = "PATH", conflicts_with = "wasm_url")]
    pub wasm_file: Option<PathBuf>,
}

impl MeshShapeArgs {
    /// The flags as a mesh input, before the file is merged in.
    fn flags(&self) -> MeshInput {
        MeshInput {
            services: ServiceChoice::from_flags(self.services, self.names.as_deref()),
            namespace: self.namespace.clone(),
            base_port: self.base_port,
            mtls: self.mtls,
            fail_strategy: self.fail_strategy,
            ..MeshInput::default()
        }
    }

    /// Reads the mesh file if any, merges the flags over it, and checks the result.
    pub fn mesh(&self) -> anyhow::Result<Mesh> {
        merged(self.flags(), self.file.as_deref())
    }
}

impl MeshArgs {
    /// The flags as a mesh input, before the file is merged in.
    fn flags(&self) -> MeshInput {
        MeshInput {
            replicas: self.replicas,
            image: self.image.clone(),
            wasm_url: self.wasm_url.clone(),
            wasm_sha256: self.wasm_sha256.clone(),
            wasm_file: self.wasm_file.clone(),
            ..self.shape.flags()
        }
    }

    /// Reads the mesh file if any, merges the flags over it, and checks the result.
    pub fn mesh(&self) -> anyhow::Result<Mesh> {
        let mut input = self.flags().over(read_file(self.shape.file.as_deref())?);
        if input.wasm_url.is_none() && input.wasm_file.is_none() {
            // The built module wherever `deployer` finds it (install prefix, its own build,
            // the checkout around the current folder); else the model's workspace default.
            input.wasm_file = meshtally_envoy::locate::Places::here().find_module();
        }
        checked(&self.flags(), self.shape.file.as_deref(), input)
    }
}

/// The merged input checked; a refusal names every problem, each at its own line of the mesh
/// file (`canary.yaml:6: services[0].versions: …`) when the file, not a flag, gave the field.
fn checked(flags: &MeshInput, file: Option<&Path>, input: MeshInput) -> anyhow::Result<Mesh> {
    let problems = match Mesh::check(input) {
        Ok(mesh) => return Ok(mesh),
        Err(problems) => problems,
    };
    let text = file.and_then(|f| std::fs::read_to_string(f).ok());
    let mut spelled: Vec<String> = problems
        .iter()
        .map(|p| {
            let located = match (&text, file) {
                (Some(text), Some(file)) if !flag_sets(flags, p.at.root()) => {
                    [p.at.clone(), p.at.with_root("names")]
                        .into_iter()
                        .find_map(|at| Some((locate::line_of(text, &at)?, at)))
                        .map(|(line, at)| format!("{}:{line}: {at}: ", file.display()))
                }
                _ => None,
            };
            match (located, &p.error) {
                // The path names the rule's field already.
                (Some(at), meshtally_mesh::model::ModelError::Traffic { service, error }) => {
                    format!("{at}service `{service}`: {}", error.reason)
                }
                (at, error) => format!("{}{error}", at.unwrap_or_default()),
            }
        })
        .collect();
    if spelled.len() == 1 {
        bail!("invalid mesh: {}", spelled.remove(0));
    }
    let count = spelled.len();
    if count > SHOWN_PROBLEMS {
        spelled.truncate(SHOWN_PROBLEMS);
        spelled.push(format!("and {} more", count - SHOWN_PROBLEMS));
    }
    bail!("invalid mesh: {count} problems: {}", spelled.join("; "))
}

/// Whether a flag gave the input's field `root` (then the file's line would mislead).
fn flag_sets(flags: &MeshInput, root: Option<&str>) -> bool {
    match root {
        Some("services" | "names") => flags.services.is_some(),
        Some("namespace") => flags.namespace.is_some(),
        Some("base_port") => flags.base_port.is_some(),
        Some("replicas") => flags.replicas.is_some(),
        Some("image") => flags.image.is_some(),
        Some("wasm_url" | "wasm_sha256") => flags.wasm_url.is_some() || flags.wasm_sha256.is_some(),
        _ => true,
    }
}

fn read_file(file: Option<&std::path::Path>) -> anyhow::Result<MeshInput> {
    Ok(match file {
        Some(path) => MeshInput::from_file(path)?,
        None => MeshInput::default(),
    })
}

/// A mesh from flags over a mesh file, checked.
pub(crate) fn merged(flags: MeshInput, file: Option<&std::path::Path>) -> anyhow::Result<Mesh> {
    let input = flags.clone().over(read_file(file)?);
    checked(&flags, file, input)
}
