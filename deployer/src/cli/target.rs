//! Which mesh a command works on, the same flags everywhere: the local mesh of a state dir (the
//! default), or a cluster's mesh, chosen explicitly with `--cluster` or `--context` as kubectl
//! and istioctl choose one. `--kubectl` only ever names the kubectl binary.

use std::path::PathBuf;

use clap::Args;

use super::StateArgs;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("on_cluster").args(["cluster", "context"]).multiple(true))]
pub struct TargetArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Work on the mesh of the cluster kubectl points at instead of the local one. Reads go to
    /// every running meshtally pod's sidecar, through `kubectl exec … -c istio-proxy --
    /// pilot-agent request GET stats…` (`tap` and `edges`: `kubectl logs`, once
    /// `monitoring/access-log.yaml` from `render` is applied); `shift` patches the
    /// VirtualServices that split traffic to the service; `verify` port-forwards to
    /// istio-system/istio-ingressgateway.
    #[arg(long)]
    pub cluster: bool,

    /// The kubeconfig context of the cluster (implies --cluster) [default: the current one]
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,

    /// The kubectl binary, with --cluster or --context [default: kubectl on PATH]
    #[arg(long, value_name = "PATH", requires = "on_cluster")]
    pub kubectl: Option<PathBuf>,

    /// On a cluster: the mesh's namespace [default: istio-demo, or the mesh file's]
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// On a cluster: the mesh file `render` read (its namespace; for `verify`, its services).
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

impl TargetArgs {
    /// Whether the flags chose a cluster.
    pub fn on_cluster(&self) -> bool {
        self.cluster || self.context.is_some()
    }
}
