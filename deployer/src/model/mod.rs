//! The mesh model: which services exist, on which ports, in which namespace, with which filter
//! module. Built only through [`Mesh::from_input`], so every `Mesh` is valid and the renderers
//! (and later `up`/`apply`) never re-check it.

mod duration;
mod error;
mod input;
pub mod names;
mod policy;
pub mod ports;
mod restart;
pub mod traffic;
pub mod wasm;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

pub use error::ModelError;
pub use input::{MeshInput, ServiceChoice, ServiceEntry};
pub use policy::{FailStrategy, MtlsMode};
pub use restart::needs_restart;
pub use traffic::Traffic;
pub use wasm::{Delivery, Module, WasmSource};

pub const DEFAULT_SERVICES: u64 = 3;
pub const DEFAULT_NAMESPACE: &str = "istio-demo";
pub const DEFAULT_BASE_PORT: u64 = 8000;
pub const DEFAULT_REPLICAS: u64 = 2;
/// Where the README's cluster quick start pushes the demo-service image (`deployer push
/// --service-image`): the local registry that kind reaches as `localhost:5001`.
pub const DEFAULT_IMAGE: &str = concat!(
    "localhost:5001/meshtally/demo-service:",
    env!("CARGO_PKG_VERSION")
);
/// Where `make wasm` leaves the filter, relative to the workspace root.
pub const DEFAULT_WASM_FILE: &str = crate::locate::WORKSPACE_MODULE;
/// Every service lists every other one (peers, authorization principals), so the manifests grow
/// with the square of the count: 1000 services already render to about 100 MB.
pub const MAX_SERVICES: usize = 1000;
/// Names starting with this are kept for the mesh's own objects (gateway routes, the filter).
pub const RESERVED_PREFIX: &str = "meshtally-";

/// A checked mesh. Serializable so a running local mesh can keep the one its mesh file said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mesh {
    pub namespace: String,
    /// In the order given; the order fixes default ports and the output order.
    pub services: Vec<Service>,
    pub replicas: i32,
    pub image: String,
    pub wasm: WasmSource,
    /// Between sidecars: the PeerAuthentication `render` writes, the inbound listeners `up` runs.
    pub mtls: MtlsMode,
    /// The WasmPlugin's failStrategy, if one was chosen (see [`FailStrategy::or_default`]).
    pub fail_strategy: Option<FailStrategy>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    /// A DNS-1035 label: the Deployment, Service, ServiceAccount and `app` label all use it.
    pub name: String,
    pub port: u16,
    /// Versions and the rules for calls to this service.
    pub traffic: Traffic,
}

impl Service {
    /// The name of the workload running the service's `index`th version: the service's own for
    /// the first (so a one-version mesh keeps its plain names), `<service>-<version>` for others.
    pub fn workload_name(&self, index: usize, version: &str) -> String {
        if index == 0 {
            self.name.clone()
        } else {
            format!("{}-{version}", self.name)
        }
    }
}

impl Mesh {
    /// Fills defaults and checks everything; the first problem found is returned.
    pub fn from_input(input: MeshInput) -> Result<Mesh, ModelError> {
        let namespace = input
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        if !names::is_dns1123_label(&namespace) {
            return Err(ModelError::BadNamespace(namespace));
        }
        let base_port = input.base_port.unwrap_or(DEFAULT_BASE_PORT);
        if ports::checked(base_port).is_none() {
            return Err(ModelError::BasePortOutOfRange(base_port));
        }
        let entries = match input
            .services
            .unwrap_or(ServiceChoice::Count(DEFAULT_SERVICES))
        {
            ServiceChoice::Count(0) => return Err(ModelError::NoServices),
            ServiceChoice::Count(n) if n > MAX_SERVICES as u64 => {
                return Err(ModelError::TooManyServices {
                    count: n,
                    max: MAX_SERVICES,
                })
            }
            ServiceChoice::Count(n) => (0..n as usize)
                .map(|i| ServiceEntry::named(names::generated(i)))
                .collect(),
            ServiceChoice::Listed(entries) => entries,
        };
        let services = services(entries, base_port)?;
        let replicas = input.replicas.unwrap_or(DEFAULT_REPLICAS);
        let replicas =
            i32::try_from(replicas).map_err(|_| ModelError::TooManyReplicas(replicas))?;
        let image = input.image.unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            return Err(ModelError::BadImage(image));
        }
        let wasm = match (input.wasm_url, input.wasm_sha256) {
            (Some(url), sha256) => WasmSource::remote(&url, sha256.as_deref())?,
            (None, Some(_)) => return Err(ModelError::DigestWithoutUrl),
            (None, None) => WasmSource::ConfigMap {
                path: input
                    .wasm_file
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_WASM_FILE)),
            },
        };
        Ok(Mesh {
            namespace,
            services,
            replicas,
            image,
            wasm,
            mtls: input.mtls.unwrap_or_default(),
            fail_strategy: input.fail_strategy,
        })
    }

    /// The name other pods use to reach `service`, and the host Istio routes on.
    pub fn fqdn(&self, service: &Service) -> String {
        format!("{}.{}.svc.cluster.local", service.name, self.namespace)
    }

    /// Every workload (Deployment, or local app) of the mesh, by name, in order.
    pub fn workloads(&self) -> impl Iterator<Item = String> + '_ {
        self.services.iter().flat_map(|s| {
            s.traffic
                .versions
                .iter()
                .enumerate()
                .map(move |(i, v)| s.workload_name(i, &v.name))
        })
    }

    /// The SPIFFE identity Istio gives pods running as `service`'s ServiceAccount.
    pub fn principal(&self, service: &Service) -> String {
        meshtally_core::identity::principal(&self.namespace, &service.name)
    }
}

fn services(entries: Vec<ServiceEntry>, base_port: u64) -> Result<Vec<Service>, ModelError> {
    if entries.is_empty() {
        return Err(ModelError::NoServices);
    }
    if entries.len() > MAX_SERVICES {
        return Err(ModelError::TooManyServices {
            count: entries.len() as u64,
            max: MAX_SERVICES,
        });
    }
    let mut seen_names = HashSet::new();
    let mut seen_ports: HashMap<u16, usize> = HashMap::new();
    let mut services: Vec<Service> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let name = entry.name;
        if !names::is_dns1035_label(&name) {
            return Err(ModelError::BadServiceName(name));
        }
        if name.starts_with(RESERVED_PREFIX) {
            return Err(ModelError::ReservedServiceName(name));
        }
        if !seen_names.insert(name.clone()) {
            return Err(ModelError::DuplicateService(name));
        }
        let wanted = entry.port.unwrap_or(base_port + i as u64);
        let Some(port) = ports::checked(wanted) else {
            return Err(ModelError::PortOutOfRange {
                service: name,
                port: wanted,
            });
        };
        if ports::is_reserved(port) {
            return Err(ModelError::ReservedPort {
                service: name,
                port,
            });
        }
        if let Some(&first) = seen_ports.get(&port) {
            return Err(ModelError::DuplicatePort {
                port,
                first: services[first].name.clone(),
                second: name,
            });
        }
        seen_ports.insert(port, i);
        let traffic = traffic::check(entry.traffic).map_err(|error| ModelError::Traffic {
            service: name.clone(),
            error,
        })?;
        services.push(Service {
            name,
            port,
            traffic,
        });
    }
    Ok(services)
}

#[cfg(test)]
mod tests;
