//! The local mesh's plan: which process runs where. Service i's sidecar inbound listener takes
//! the model's port (playing the Kubernetes Service port); the app, the outbound listener and the
//! admin endpoints take private loopback ports. A service with several versions runs one app
//! and one sidecar per version (as a Deployment per version would): the first version on the
//! model's port, the others on private ones, reached through the callers' routes. Saved as
//! `state.json`, so `down`, `verify`,
//! `stats` and a detached supervisor all read the same plan.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use meshtally_mesh::model::external::SYSTEM_CA_BUNDLE;
use meshtally_mesh::model::{External, Mesh, MtlsMode, OutboundPolicy, Traffic};
use meshtally_wire::app::{format_peers, peer_entry};

/// The gateway's process and config name.
pub const GATEWAY: &str = "ingress-gateway";

/// Whether the sidecars run the filter, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum FilterState {
    Loaded,
    /// FAIL_OPEN after a failure: running without the filter.
    Skipped(String),
    /// FAIL_CLOSE after a failure: denying all traffic.
    DenyAll(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalService {
    pub name: String,
    /// The public port: the first version's sidecar inbound listener.
    pub port: u16,
    pub app_port: u16,
    pub outbound_port: u16,
    pub admin_port: u16,
    /// The version the ports above run (the model's first).
    pub version: String,
    pub fail_status: Option<u16>,
    /// The service's other versions, each with its own app and sidecar.
    #[serde(alias = "canaries")]
    pub other_versions: Vec<Instance>,
    /// The rules callers' sidecars and the gateway apply to calls to this service (`deployer
    /// shift` changes its weights).
    pub traffic: Traffic,
}

/// One version of a service: an app and its sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The process name: the service's for its first version, `<service>-<version>` for others.
    pub name: String,
    pub version: String,
    pub fail_status: Option<u16>,
    /// The sidecar's inbound listener.
    pub port: u16,
    pub app_port: u16,
    pub outbound_port: u16,
    pub admin_port: u16,
}

impl LocalService {
    /// Every version's app and sidecar, the first version first.
    pub fn instances(&self) -> Vec<Instance> {
        let first = Instance {
            name: self.name.clone(),
            version: self.version.clone(),
            fail_status: self.fail_status,
            port: self.port,
            app_port: self.app_port,
            outbound_port: self.outbound_port,
            admin_port: self.admin_port,
        };
        std::iter::once(first)
            .chain(self.other_versions.iter().cloned())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPorts {
    pub port: u16,
    pub outbound_port: u16,
    pub admin_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The mesh file `up` read, if any: what `deployer reload` reads again.
    #[serde(default)]
    pub mesh_file: Option<PathBuf>,
    /// The mesh that file alone said when `up` read it: `deployer reload` refuses a file that
    /// now says more than new traffic rules (see [`meshtally_mesh::model::needs_restart`]).
    #[serde(default)]
    pub file_mesh: Option<meshtally_mesh::model::Mesh>,
    pub namespace: String,
    pub mtls: MtlsMode,
    /// Envoy's `failure_policy` for the filter VM: FAIL_OPEN unless FAIL_CLOSE was asked for,
    /// as the WasmPlugin `render` writes.
    pub fail_open: bool,
    pub filter: FilterState,
    /// The WasmPlugin's `pluginConfig`: what every sidecar's filter gets (the filter reads the
    /// workload name from node metadata, as in Istio).
    pub plugin_config: serde_json::Value,
    pub envoy: PathBuf,
    /// The module `up` was given; the supervisor reloads it when it is replaced.
    pub wasm: PathBuf,
    /// The sha256 of the module the sidecars run: a copy of it under `wasm/` in the state dir
    /// (see `local::module`); `None` when the filter is not loaded.
    #[serde(default, alias = "module")]
    pub module_sha256: Option<String>,
    pub service_bin: PathBuf,
    pub gateway: GatewayPorts,
    pub services: Vec<LocalService>,
    /// A Prometheus scraping every proxy (`up --prometheus`).
    #[serde(default)]
    pub prometheus: Option<LocalPrometheus>,
    /// A Zipkin server every proxy sends spans to (`up --tracing`).
    #[serde(default)]
    pub tracing: Option<super::tracing::LocalTracing>,
    /// The `up` command that started the mesh, as typed: restart hints repeat it exactly.
    #[serde(default)]
    pub up_command: Option<UpCommand>,
    /// What a sidecar does with a host the mesh does not know.
    #[serde(default)]
    pub outbound_policy: OutboundPolicy,
    /// The services outside the mesh, each served by an outside server `up` runs on loopback.
    #[serde(default)]
    pub external: Vec<LocalExternal>,
}

/// An external entry and the outside server that stands in for it: demo-service on
/// `server_port`, behind a TLS front (an Envoy with the host's certificate from the outside
/// CA) when the entry speaks TLS. The declared host reaches it through each admitted sidecar's
/// cluster, where a cluster's sidecar would resolve the name by DNS: nothing leaves the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalExternal {
    pub entry: External,
    pub server_port: u16,
    pub tls: Option<OutsideTls>,
    /// The roots the sidecars check the server with: the entry's `ca_certificates` when it
    /// names a file here, else (`None`) the outside CA `up` made.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideTls {
    pub port: u16,
    pub admin_port: u16,
}

impl LocalExternal {
    /// The outside server's process name.
    pub fn server_name(&self) -> String {
        format!("outside-{}", self.entry.name)
    }

    /// Its TLS front's process name.
    pub fn tls_name(&self) -> String {
        format!("outside-{}-tls", self.entry.name)
    }

    /// The loopback port the declared host reaches.
    pub fn port(&self) -> u16 {
        self.tls.as_ref().map_or(self.server_port, |t| t.port)
    }
}

/// A command line as the user typed it, and the folder it was typed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpCommand {
    pub cwd: PathBuf,
    /// The arguments after the program's name (`up`, then its flags).
    pub args: Vec<String>,
}

impl UpCommand {
    /// This process's own command line.
    pub fn this() -> Option<UpCommand> {
        Some(UpCommand {
            cwd: std::env::current_dir().ok()?,
            args: std::env::args().skip(1).collect(),
        })
    }

    /// The command to paste to run it again, from any folder: `deployer` as a hint names it,
    /// the same arguments, in the same folder when it is not the current one.
    pub fn hint(&self) -> String {
        let mut line = meshtally_envoy::locate::Places::here().deployer_command();
        for arg in &self.args {
            line.push(' ');
            line.push_str(&meshtally_envoy::shell::quote(arg));
        }
        let here = std::env::current_dir().ok();
        if here.as_ref() == Some(&self.cwd) {
            line
        } else {
            format!(
                "cd {} && {line}",
                meshtally_envoy::shell::quote(&self.cwd.to_string_lossy())
            )
        }
    }
}

/// What `up` needs besides the mesh model.
#[derive(Debug, Clone)]
pub struct Tools {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub service_bin: PathBuf,
}

/// How the filter is to be loaded.
#[derive(Debug, Clone)]
pub struct FilterPlan {
    pub state: FilterState,
    pub plugin_config: serde_json::Value,
    pub fail_open: bool,
}

impl Layout {
    /// Checks that every public port is free and picks private ports. `holder` names the
    /// running mesh that holds a taken port, if one does, for the refusal's hint.
    pub fn plan(
        mesh: &Mesh,
        gateway_port: u16,
        mtls: MtlsMode,
        tools: Tools,
        filter: FilterPlan,
        holder: impl Fn(u16) -> Option<PathBuf>,
    ) -> Result<Layout> {
        let mut public: Vec<(u16, &str)> = mesh
            .services
            .iter()
            .map(|s| (s.port, s.name.as_str()))
            .collect();
        public.push((gateway_port, GATEWAY));
        // Held until the private ports are picked, so none of those is a public one.
        let mut held = Vec::with_capacity(public.len());
        for (i, (port, name)) in public.iter().enumerate() {
            if public[..i].iter().any(|(p, _)| p == port) {
                bail!("port {port} ({name}) is also taken by another service of this mesh: pick another --gateway-port or --base-port");
            }
            match TcpListener::bind(("127.0.0.1", *port)) {
                Ok(listener) => held.push(listener),
                Err(_) => match holder(*port) {
                    Some(dir) => {
                        let dir = meshtally_envoy::shell::quote(&dir.to_string_lossy());
                        bail!("port {port} ({name}) is already in use by the meshtally mesh running in {dir}: stop it with `deployer down --state-dir {dir}`, or pick another --base-port / --gateway-port")
                    }
                    None => bail!("port {port} ({name}) is already in use: stop what holds it, or pick another --base-port / --gateway-port"),
                },
            }
        }
        for e in &mesh.external {
            if !e.is_http() {
                bail!(
                    "external `{}`: protocol {}: the local mesh runs only what its sidecars speak HTTP to (protocol http, or https with tls_origination: true); render it for a cluster",
                    e.name,
                    e.protocol.istio().to_lowercase()
                );
            }
            if e.ca_certificates != SYSTEM_CA_BUNDLE && !Path::new(&e.ca_certificates).is_file() {
                bail!(
                    "external `{}`: ca_certificates: {} is not a file here (the local mesh trusts its outside CA unless given a PEM file)",
                    e.name,
                    e.ca_certificates
                );
            }
            let taken = format!("outside-{}", e.name);
            if let Some(s) = mesh.services.iter().find(|s| s.name.starts_with(&taken)) {
                bail!(
                    "external `{}`: its outside server would be named like service `{}`: rename one",
                    e.name,
                    s.name
                );
            }
        }
        // Three private ports per service (app, outbound, admin), four per further version
        // (its inbound too), two for the gateway; per external entry one for its server and
        // two for a TLS front.
        let versions: usize = mesh.services.iter().map(|s| s.traffic.versions.len()).sum();
        let outside: usize = mesh
            .external
            .iter()
            .map(|e| if e.tls_origination { 3 } else { 1 })
            .sum();
        let needed = versions * 4 - mesh.services.len() + 2 + outside;
        let mut private = free_ports(needed)?.into_iter();
        drop(held);
        let mut next = || private.next().context("ran out of private ports");
        let mut services = Vec::with_capacity(mesh.services.len());
        for s in &mesh.services {
            let (first, rest) = s
                .traffic
                .versions
                .split_first()
                .context("a service without versions")?;
            let mut other_versions = Vec::new();
            for (i, v) in rest.iter().enumerate() {
                other_versions.push(Instance {
                    name: s.workload_name(i + 1, &v.name),
                    version: v.name.clone(),
                    fail_status: v.fail_status,
                    port: next()?,
                    app_port: next()?,
                    outbound_port: next()?,
                    admin_port: next()?,
                });
            }
            services.push(LocalService {
                name: s.name.clone(),
                port: s.port,
                app_port: next()?,
                outbound_port: next()?,
                admin_port: next()?,
                version: first.name.clone(),
                fail_status: first.fail_status,
                other_versions,
                traffic: s.traffic.clone(),
            });
        }
        let gateway = GatewayPorts {
            port: gateway_port,
            outbound_port: next()?,
            admin_port: next()?,
        };
        let mut external = Vec::with_capacity(mesh.external.len());
        for e in &mesh.external {
            let tls = match e.tls_origination {
                true => Some(OutsideTls {
                    port: next()?,
                    admin_port: next()?,
                }),
                false => None,
            };
            external.push(LocalExternal {
                entry: e.clone(),
                server_port: next()?,
                tls,
                ca: (e.ca_certificates != SYSTEM_CA_BUNDLE).then(|| {
                    std::path::absolute(&e.ca_certificates)
                        .unwrap_or_else(|_| PathBuf::from(&e.ca_certificates))
                }),
            });
        }
        Ok(Layout {
            mesh_file: None,
            file_mesh: None,
            namespace: mesh.namespace.clone(),
            mtls,
            fail_open: filter.fail_open,
            filter: filter.state,
            plugin_config: filter.plugin_config,
            envoy: tools.envoy,
            wasm: tools.wasm,
            module_sha256: None,
            service_bin: tools.service_bin,
            gateway,
            services,
            prometheus: None,
            tracing: None,
            up_command: None,
            outbound_policy: mesh.outbound_policy,
            external,
        })
    }

    pub fn service(&self, name: &str) -> Option<&LocalService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Every proxy's name with its admin port.
    pub fn proxies(&self) -> Vec<(String, u16)> {
        self.services
            .iter()
            .flat_map(|s| s.instances())
            .map(|i| (sidecar_name(&i.name), i.admin_port))
            .chain([(GATEWAY.to_owned(), self.gateway.admin_port)])
            .collect()
    }

    /// `EXTERNAL` for an app: every entry by its declared host (a caller left out is refused by
    /// its sidecar, as on a cluster).
    pub fn external_env(&self) -> String {
        format_peers(self.external.iter().map(|e| {
            peer_entry(
                &e.entry.name,
                &meshtally_wire::app::external_url(&e.entry.host, e.entry.app_port()),
            )
        }))
    }

    /// `PEERS` for a service's app: every other service by its in-cluster name, reached through
    /// the sidecar's outbound listener (`MESH_PROXY`).
    pub fn peers_env(&self, s: &LocalService) -> String {
        format_peers(self.services.iter().filter(|p| p.name != s.name).map(|p| {
            let url = format!(
                "http://{}.{}.svc.cluster.local:{}",
                p.name, self.namespace, p.port
            );
            peer_entry(&p.name, &url)
        }))
    }
}

/// Where a state dir keeps the modules the sidecars run, and each proxy's xDS files.
pub const MODULES: &str = "wasm";

pub fn xds_dir(root: &Path, proxy: &str) -> PathBuf {
    root.join("xds").join(proxy)
}

pub fn sidecar_name(service: &str) -> String {
    format!("{service}-sidecar")
}

/// Where private ports are picked: below the kernel's ephemeral range (32768 and up), which
/// every outgoing connection draws its local port from. A port picked there could be taken by a
/// client's connection in the moment between the pick and the proxy binding it; here only a
/// listener can take it. Istio's sidecar ports (15000-15090) are left out too.
const PRIVATE_PORTS: [std::ops::Range<u16>; 2] = [10000..15000, 15100..20000];

/// Distinct free loopback ports from [`PRIVATE_PORTS`], from a random start so two meshes
/// starting at once rarely try the same ones, held together while picking so none repeats.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    use std::hash::{BuildHasher as _, Hasher as _};
    let candidates: Vec<u16> = PRIVATE_PORTS.iter().flat_map(|r| r.clone()).collect();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let start = (hasher.finish() % candidates.len() as u64) as usize;
    let mut held = Vec::with_capacity(n);
    for port in candidates[start..].iter().chain(&candidates[..start]) {
        if held.len() == n {
            break;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", *port)) {
            held.push(listener);
        }
    }
    if held.len() < n {
        anyhow::bail!(
            "only {} of the {n} private loopback ports this mesh needs are free in 10000-19999",
            held.len()
        );
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// The binary and port of a local Prometheus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPrometheus {
    pub bin: PathBuf,
    pub port: u16,
}
