//! The mesh flags every renderer shares, and how they merge over a mesh file into a checked
//! [`Mesh`].

use std::path::PathBuf;

use clap::Args;

use meshtally_mesh::model::{
    Api, Channel, FailStrategy, Mesh, MeshInput, MtlsMode, Sampling, ServiceChoice,
};

/// Which services, on which ports, in which namespace: what every renderer of the mesh needs,
/// `up` included. No clap defaults: a flag given overrides the file, and the defaults (shown in
/// the help) apply last, in `Mesh::from_input`.
#[derive(Debug, Args)]
pub struct MeshShapeArgs {
    /// Mesh file (YAML) with any of: services (a count, or a list of names or {name, port}),
    /// names, namespace, base_port, replicas, image, wasm_url, wasm_sha256, wasm_file (relative
    /// to the file), api, gateway_api_channel, outbound_policy (allow_any or registry_only),
    /// external (the services outside the mesh). Unknown fields are refused. Flags override its
    /// fields.
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

    /// Share of requests traced, in percent (0-100, two decimals at most): the Telemetry
    /// `render` writes, and the sidecars of `up --tracing` [default: 100]
    #[arg(long, value_name = "PERCENT")]
    pub sampling: Option<Sampling>,
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

    /// The API the traffic rules are written in. istio: Gateway, VirtualService, DestinationRule
    /// subsets; gateway-api: Kubernetes Gateway API (a Gateway of class istio, HTTPRoutes at the
    /// ingress and, GAMMA, in the mesh; a Service per version). What Gateway API cannot say
    /// (fault injection, …) is refused, naming the field [default: istio]
    #[arg(long, value_enum, value_name = "API")]
    pub api: Option<Api>,

    /// With --api gateway-api: the Gateway API CRDs' channel the cluster has. HTTPRoute
    /// retries need experimental; with standard a mesh that retries is refused
    /// [default: experimental]
    #[arg(long, value_enum, value_name = "CHANNEL")]
    pub gateway_api_channel: Option<Channel>,
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
            sampling: self.sampling,
            ..MeshInput::default()
        }
    }

    /// Reads the mesh file if any, merges the flags over it, and checks the result.
    pub fn mesh(&self) -> anyhow::Result<Mesh> {
        crate::meshfile::merged(self.flags(), self.file.as_deref())
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
            api: self.api,
            gateway_api_channel: self.gateway_api_channel,
            ..self.shape.flags()
        }
    }

    /// Reads the mesh file if any, merges the flags over it, and checks the result.
    pub fn mesh(&self) -> anyhow::Result<Mesh> {
        let mut input = self
            .flags()
            .over(crate::meshfile::read(self.shape.file.as_deref())?);
        if input.wasm_url.is_none() && input.wasm_file.is_none() {
            // The built module wherever `deployer` finds it (install prefix, its own build,
            // the checkout around the current folder); else the model's workspace default.
            input.wasm_file = meshtally_envoy::locate::Places::here().find_module();
        }
        crate::meshfile::checked(&self.flags(), self.shape.file.as_deref(), input)
    }
}
