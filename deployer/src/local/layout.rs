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
use serde_json::{json, Value};

use super::access_log;
use super::bootstrap::{self, Filter, Inbound, Ingress, Outbound, Proxy, Tls};
use super::certs::{self, Ca};
use super::prometheus::{self, LocalPrometheus};
use super::routes::Upstream;
use super::state::access_log_in;
use super::{module, xds};
use crate::model::{Mesh, MtlsMode, Traffic};
use crate::render::security::{INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT};
use meshtally_core::app::{format_peers, peer_entry};
use meshtally_core::identity::spiffe_id;

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
    pub canaries: Vec<Instance>,
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
            .chain(self.canaries.iter().cloned())
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
    /// now says more than new traffic rules (see [`crate::model::needs_restart`]).
    #[serde(default)]
    pub file_mesh: Option<crate::model::Mesh>,
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
    #[serde(default)]
    pub module: Option<String>,
    pub service_bin: PathBuf,
    pub gateway: GatewayPorts,
    pub services: Vec<LocalService>,
    /// A Prometheus scraping every proxy (`up --prometheus`).
    #[serde(default)]
    pub prometheus: Option<LocalPrometheus>,
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
    /// Checks that every public port is free and picks private ports.
    pub fn plan(
        mesh: &Mesh,
        gateway_port: u16,
        mtls: MtlsMode,
        tools: Tools,
        filter: FilterPlan,
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
                Err(_) => bail!("port {port} ({name}) is already in use: stop what holds it, or pick another --base-port / --gateway-port"),
            }
        }
        // Three private ports per service (app, outbound, admin), four per further version
        // (its inbound too), two for the gateway.
        let versions: usize = mesh.services.iter().map(|s| s.traffic.versions.len()).sum();
        let needed = versions * 4 - mesh.services.len() + 2;
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
            let mut canaries = Vec::new();
            for (i, v) in rest.iter().enumerate() {
                canaries.push(Instance {
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
                canaries,
                traffic: s.traffic.clone(),
            });
        }
        let gateway = GatewayPorts {
            port: gateway_port,
            outbound_port: next()?,
            admin_port: next()?,
        };
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
            module: None,
            service_bin: tools.service_bin,
            gateway,
            services,
            prometheus: None,
        })
    }

    pub fn service(&self, name: &str) -> Option<&LocalService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Certificates, Envoy bootstraps and the first generation of xDS files for every proxy,
    /// written into `dir` but naming their files as they will be found under `final_dir` (a
    /// new state generation is renamed into place). Returns the bootstrap paths in `dir` by
    /// proxy name.
    pub fn write_configs(&self, dir: &Path, final_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
        let certs = dir.join(CERTS);
        let envoy = dir.join("envoy");
        std::fs::create_dir_all(&certs)?;
        std::fs::create_dir_all(&envoy)?;
        let ca = Ca::new(&certs, CA_NAME)?;
        ca.issue(&certs, INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT)?;
        for s in &self.services {
            ca.issue(&certs, &self.namespace, &s.name)?;
        }
        let mut written = Vec::new();
        for (name, config) in self.bootstraps(final_dir) {
            let split = xds::split(&config, &xds_dir(final_dir, &name))?;
            written.push((name.clone(), write_json(&envoy, &name, &split.bootstrap)?));
            xds::write(&xds_dir(dir, &name), &split.resources, xds::FIRST_VERSION)?;
        }
        if self.prometheus.is_some() {
            prometheus::write(self, dir)?;
        }
        Ok(written)
    }

    /// Every proxy's complete static config (sidecars, then the gateway), naming certificates
    /// and the module as found under the state dir `root`: what the bootstrap and the xDS
    /// files say together.
    pub fn bootstraps(&self, root: &Path) -> Vec<(String, Value)> {
        let certs = root.join(CERTS);
        let mut out: Vec<(String, Value)> = self
            .services
            .iter()
            .flat_map(|s| s.instances().into_iter().map(move |i| (s, i)))
            .map(|(s, instance)| {
                // Every version runs as the service's account, as its Deployments do.
                let own = certs::workload_files(&certs, CA_NAME, &self.namespace, &s.name);
                let name = sidecar_name(&instance.name);
                let config = logged(&self.sidecar(s, &instance, &own, root), &name, root);
                (name, config)
            })
            .collect();
        let own =
            certs::workload_files(&certs, CA_NAME, INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT);
        out.push((
            GATEWAY.to_owned(),
            logged(&self.gateway_proxy(&own), GATEWAY, root),
        ));
        out
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

    fn proxy_filter(&self, root: &Path) -> Filter {
        match (&self.filter, &self.module) {
            (FilterState::Loaded, Some(sha256)) => {
                Filter::Wasm(module::path_in(&root.join(MODULES), sha256))
            }
            (FilterState::Loaded, None) => Filter::Wasm(self.wasm.clone()),
            (FilterState::Skipped(_), _) => Filter::Skipped,
            (FilterState::DenyAll(_), _) => Filter::DenyAll,
        }
    }

    fn peers(&self, own: &Tls, except: Option<&str>) -> Vec<Upstream> {
        self.services
            .iter()
            .filter(|p| Some(p.name.as_str()) != except)
            .map(|p| Upstream {
                name: p.name.clone(),
                traffic: p.traffic.clone(),
                endpoints: p
                    .instances()
                    .into_iter()
                    .map(|i| (i.version, i.port))
                    .collect(),
                tls: Some((own.clone(), spiffe_id(&self.namespace, &p.name))),
            })
            .collect()
    }

    /// The filter's config for one sidecar: the mesh's, with the version it serves (the
    /// local stand-in for Istio's `LABELS.version` node metadata), unless one was given.
    fn plugin_config_for(&self, version: &str) -> Value {
        let mut config = self.plugin_config.clone();
        if let Some(fields) = config.as_object_mut() {
            fields.entry("version").or_insert_with(|| json!(version));
        }
        config
    }

    fn sidecar(&self, s: &LocalService, instance: &Instance, own: &Tls, root: &Path) -> Proxy {
        // Mirrors the AuthorizationPolicy `render` writes: the other services and the gateway.
        let mut allowed: Vec<String> = self
            .services
            .iter()
            .filter(|p| p.name != s.name)
            .map(|p| spiffe_id(&self.namespace, &p.name))
            .collect();
        allowed.push(spiffe_id(INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT));
        let mode = self.mtls;
        Proxy {
            filter: self.proxy_filter(root),
            fail_open: self.fail_open,
            // What Istio puts in a sidecar's node metadata; the filter reads its name from it.
            node_metadata: json!({"WORKLOAD_NAME": instance.name, "NAMESPACE": self.namespace, "LABELS": {"app": s.name, "version": instance.version}}),
            admin_port: instance.admin_port,
            inbound: Some(Inbound {
                port: instance.port,
                app_port: instance.app_port,
                plugin_config: self.plugin_config_for(&instance.version),
                tls: Some((own.clone(), mode)),
                allowed_peers: allowed,
            }),
            outbound: Some(Outbound {
                port: instance.outbound_port,
                plugin_config: self.plugin_config_for(&instance.version),
                peers: self.peers(own, Some(&s.name)),
            }),
            ingress: None,
        }
    }

    /// Istio's ingress gateway, as the demo profile installs it: its identity
    /// (istio-ingressgateway-service-account in istio-system), and no meshtally filter, since the
    /// rendered WasmPlugin selects only the mesh's workloads. Callees therefore report gateway
    /// traffic as coming from `istio-ingressgateway-service-account`, locally as on a cluster.
    fn gateway_proxy(&self, own: &Tls) -> Proxy {
        Proxy {
            filter: Filter::NotSelected,
            fail_open: self.fail_open,
            node_metadata: json!({"WORKLOAD_NAME": "istio-ingressgateway", "NAMESPACE": INGRESS_NAMESPACE, "LABELS": {"app": "istio-ingressgateway", "istio": "ingressgateway"}}),
            admin_port: self.gateway.admin_port,
            inbound: None,
            outbound: Some(Outbound {
                port: self.gateway.outbound_port,
                plugin_config: self.plugin_config.clone(),
                peers: self.peers(own, None),
            }),
            ingress: Some(Ingress {
                port: self.gateway.port,
                services: self
                    .services
                    .iter()
                    .map(|s| (s.name.clone(), s.traffic.timeout))
                    .collect(),
                outbound_port: self.gateway.outbound_port,
            }),
        }
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

/// Where a state dir keeps certificates, the modules the sidecars run, and each proxy's xDS files.
const CERTS: &str = "certs";
pub const MODULES: &str = "wasm";
const CA_NAME: &str = "mesh";

pub fn xds_dir(root: &Path, proxy: &str) -> PathBuf {
    root.join("xds").join(proxy)
}

/// A proxy's bootstrap with its JSON access log in `root`'s logs/ (`tap`, `edges`).
fn logged(proxy: &Proxy, name: &str, root: &Path) -> Value {
    let mut config = bootstrap::render(proxy);
    let version = proxy.node_metadata["LABELS"]["version"].as_str();
    access_log::add(&mut config, &access_log_in(root, name), name, version);
    config
}

pub fn sidecar_name(service: &str) -> String {
    format!("{service}-sidecar")
}

fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Distinct free loopback ports, held together while picking so none repeats.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("binding a free loopback port"))
        .collect::<Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}
