//! The flags of the cluster commands: which kubectl, `apply`, `delete`, `push`, `render`.

use std::path::PathBuf;

use clap::Args;

use super::MeshArgs;

/// Which kubectl, talking to which cluster.
#[derive(Debug, Args)]
pub struct KubectlArgs {
    /// kubectl binary [default: kubectl on PATH]
    #[arg(long, value_name = "PATH")]
    pub kubectl: Option<PathBuf>,

    /// kubeconfig context, passed to every kubectl call as --context [default: the current one]
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub mesh: MeshArgs,

    #[command(flatten)]
    pub cluster: KubectlArgs,

    /// Print the documents that would be applied (exactly what `deployer render` prints with
    /// the same flags) and touch nothing: kubectl is not run.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait for the namespace and all rollouts together.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,

    /// Take back fields another field manager has since changed (server-side apply's
    /// --force-conflicts); without it such a conflict stops the apply and is reported.
    #[arg(long)]
    pub force_conflicts: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Namespace the mesh was applied to [default: istio-demo]
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Take the namespace from this mesh file (the one given to `apply`).
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub cluster: KubectlArgs,

    /// Print the kubectl commands delete would run, and what would become of the namespace;
    /// delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Delete the namespace too, whatever else lives in it. Without it the namespace goes only
    /// when meshtally created it and nothing but meshtally's objects is left in it.
    #[arg(long)]
    pub delete_namespace: bool,

    /// Seconds each delete may wait for its objects (and the workloads' pods) to be gone.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["image", "service_image"])))]
pub struct PushArgs {
    /// Push the filter to REGISTRY/REPO:TAG, e.g. localhost:5001/meshtally/filter:dev
    #[arg(long, value_name = "REGISTRY/REPO:TAG")]
    pub image: Option<String>,

    /// Built filter module [default: target/wasm32-wasip1/release/meshtally_filter.wasm]
    #[arg(long, value_name = "PATH", conflicts_with = "service_image")]
    pub wasm: Option<PathBuf>,

    /// Build the demo-service image (static binary, non-root, no Docker) and push it to
    /// REGISTRY/REPO:TAG, e.g. localhost:5001/meshtally/demo-service:0.1.0
    #[arg(long, value_name = "REGISTRY/REPO:TAG", conflicts_with = "image")]
    pub service_image: Option<String>,

    /// A static demo-service binary to pack [default: the checkout's build for
    /// x86_64-unknown-linux-musl, from `cargo build --release -p demo-service --target
    /// x86_64-unknown-linux-musl`]
    #[arg(long, value_name = "PATH", requires = "service_image")]
    pub service_bin: Option<PathBuf>,

    /// Talk plain HTTP to the registry (a local registry without TLS).
    #[arg(long)]
    pub insecure: bool,

    /// The registry as the cluster reaches it, when that differs from where this machine
    /// pushes (kind's local registry: push to localhost:5001, pods pull from
    /// kind-registry:5000). Changes only the printed --wasm-url or --image.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub pull_registry: Option<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub mesh: MeshArgs,

    /// Write one file per concern into DIR (with kustomization.yaml, for `kubectl apply -k
    /// DIR`) instead of one YAML stream to stdout. DIR is replaced as a whole, atomically;
    /// an existing DIR must be empty or a previous render.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}
