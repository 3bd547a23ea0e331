//! Every proxy's Envoy config from the plan: the certificates, each sidecar's and the
//! gateway's bootstrap (inbound, outbound, the filter, the access log) and the first generation
//! of their xDS files, as `up` writes them and `live` publishes new generations.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::layout::{
    sidecar_name, xds_dir, FilterState, Instance, Layout, LocalService, GATEWAY, MODULES,
};
use super::prometheus;
use super::state::access_log_in;
use meshtally_envoy::bootstrap::{
    self, AccessLog, Delivery, Filter, Inbound, Ingress, Outbound, Proxy,
};
use meshtally_envoy::egress::{self, ExternalUpstream, Origination};
use meshtally_envoy::pki::{self, Ca};
use meshtally_envoy::routes::Upstream;
use meshtally_envoy::tls::Tls;
use meshtally_envoy::tracing::Tracing;
use meshtally_envoy::{module, xds};
use meshtally_mesh::render::security::{INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT};
use meshtally_wire::identity::spiffe_id;

impl Layout {
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
        self.write_outside(dir, final_dir, &envoy)?;
        let mut written = Vec::new();
        for (name, proxy) in self.proxy_specs(final_dir) {
            let config = bootstrap::build(&proxy, Delivery::Files(&xds_dir(final_dir, &name)))?;
            written.push((name.clone(), write_json(&envoy, &name, &config.bootstrap)?));
            xds::write(&xds_dir(dir, &name), &config.resources, xds::FIRST_VERSION)?;
        }
        if self.prometheus.is_some() {
            prometheus::write(self, dir)?;
        }
        Ok(written)
    }

    /// Every proxy (sidecars, then the gateway), naming certificates, the module and its access
    /// log as found under the state dir `root`.
    pub fn proxy_specs(&self, root: &Path) -> Vec<(String, Proxy)> {
        let certs = root.join(CERTS);
        let mut out: Vec<(String, Proxy)> = self
            .services
            .iter()
            .flat_map(|s| s.instances().into_iter().map(move |i| (s, i)))
            .map(|(s, instance)| {
                // Every version runs as the service's account, as its Deployments do.
                let own = pki::workload_files(&certs, CA_NAME, &self.namespace, &s.name);
                let name = sidecar_name(&instance.name);
                let proxy = logged(self.sidecar(s, &instance, &own, root), &name, root);
                (name, proxy)
            })
            .collect();
        let own = pki::workload_files(&certs, CA_NAME, INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT);
        out.push((
            GATEWAY.to_owned(),
            logged(self.gateway_proxy(&own), GATEWAY, root),
        ));
        out
    }

    /// The outside world's PKI and TLS fronts: a CA of its own (the one the mesh trusts for
    /// origination), a certificate per TLS host, and each front's static Envoy config.
    fn write_outside(&self, dir: &Path, final_dir: &Path, envoy: &Path) -> Result<()> {
        if !self.external.iter().any(|e| e.tls.is_some()) {
            return Ok(());
        }
        let certs = dir.join(CERTS);
        let ca = Ca::new(&certs, OUTSIDE_CA)?;
        for e in &self.external {
            if let Some(t) = &e.tls {
                // Named as found once the new state is moved into place.
                let tls = ca
                    .issue_server(&certs, &e.entry.host)?
                    .relocated(dir, final_dir);
                let config = egress::outside_tls_server(
                    &e.entry.host,
                    t.port,
                    t.admin_port,
                    e.server_port,
                    &tls,
                );
                write_json(envoy, &e.tls_name(), &config)?;
            }
        }
        Ok(())
    }

    /// The hosts outside the mesh that `service`'s sidecar may call, as it reaches them.
    fn external_upstreams(&self, service: &str, root: &Path) -> Vec<ExternalUpstream> {
        let outside_ca = pki::ca_path(&root.join(CERTS), OUTSIDE_CA);
        self.external
            .iter()
            .filter(|e| e.entry.admits(service))
            .map(|e| ExternalUpstream {
                name: e.entry.name.clone(),
                host: e.entry.host.clone(),
                app_port: e.entry.app_port(),
                server_port: e.port(),
                origination: e.tls.as_ref().map(|_| Origination {
                    sni: e.entry.host.clone(),
                    ca: e.ca.clone().unwrap_or_else(|| outside_ca.clone()),
                }),
                timeout: e.entry.timeout,
            })
            .collect()
    }

    fn proxy_filter(&self, root: &Path) -> Filter {
        match (&self.filter, &self.module_sha256) {
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

    /// The filter's config for one side of one sidecar: the mesh's, with the side's
    /// `direction` (as each of the two rendered WasmPlugins carries its own), and the version it
    /// serves (the local stand-in for Istio's `LABELS.version` node metadata) unless one was
    /// given.
    fn plugin_config_for(&self, version: &str, direction: &str) -> Value {
        plugin_config_for(&self.plugin_config, version, direction)
    }

    /// The tracer of a proxy of workload `app` at `version` in `namespace`, when the mesh
    /// traces.
    fn tracing(&self, app: &str, version: &str, namespace: &str) -> Option<Tracing> {
        self.tracing.as_ref().map(|t| Tracing {
            collector_port: t.port,
            sampling: t.sampling.percent(),
            canonical_service: app.to_owned(),
            canonical_revision: version.to_owned(),
            namespace: namespace.to_owned(),
        })
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
                plugin_config: self.plugin_config_for(&instance.version, "inbound"),
                tls: Some((own.clone(), mode)),
                allowed_peers: allowed,
            }),
            outbound: Some(Outbound {
                port: instance.outbound_port,
                plugin_config: self.plugin_config_for(&instance.version, "outbound"),
                peers: self.peers(own, Some(&s.name)),
                external: self.external_upstreams(&s.name, root),
                catch_all: Some(self.outbound_policy),
            }),
            ingress: None,
            access_log: None,
            tracing: self.tracing(&s.name, &instance.version, &self.namespace),
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
                // The gateway's outbound listener stands in for its router: it routes only to
                // the mesh's services.
                external: Vec::new(),
                catch_all: None,
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
            access_log: None,
            // Istio's canonical revision of a workload without a `version` label is `latest`.
            tracing: self.tracing("istio-ingressgateway", "latest", INGRESS_NAMESPACE),
        }
    }
}

/// Where a state dir keeps certificates, and the name of the mesh CA's files.
const CERTS: &str = "certs";
const CA_NAME: &str = "mesh";
/// The CA that signs the outside servers' certificates: the local stand-in for the public CAs a
/// cluster's sidecar trusts through `caCertificates`.
pub const OUTSIDE_CA: &str = "outside";

/// A proxy with its JSON access log in `root`'s logs/ (`tap`, `edges`).
fn logged(mut proxy: Proxy, name: &str, root: &Path) -> Proxy {
    let version = proxy.node_metadata["LABELS"]["version"]
        .as_str()
        .map(str::to_owned);
    proxy.access_log = Some(AccessLog {
        path: access_log_in(root, name),
        proxy: name.to_owned(),
        version,
    });
    proxy
}

fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A sidecar side's filter config: `base` (the mesh's, from `--plugin-config`) with that side's
/// `direction` and, unless `base` names one, the version the sidecar serves. A base that is
/// not an object is left as it is, for the filter to refuse.
pub(crate) fn plugin_config_for(base: &Value, version: &str, direction: &str) -> Value {
    let mut config = base.clone();
    if let Some(fields) = config.as_object_mut() {
        fields.insert("direction".to_owned(), json!(direction));
        fields.entry("version").or_insert_with(|| json!(version));
    }
    config
}
