//! The mesh model: which services exist, on which ports, in which namespace, with which filter
//! module. Built only through [`Mesh::from_input`], so every `Mesh` is valid and the renderers
//! (and later `up`/`apply`) never re-check it.

pub mod dialect;
mod duration;
pub mod error;
pub mod external;
mod input;
pub mod locate;
pub mod names;
mod policy;
pub mod ports;
mod restart;
pub mod traffic;
pub mod wasm;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

pub use dialect::{Api, Channel};
pub use error::ModelError;
pub use external::{External, ExternalInput, OutboundPolicy, Protocol};
pub use input::{MeshInput, ServiceChoice, ServiceEntry};
pub use locate::FieldPath;
pub use policy::{FailStrategy, MtlsMode, Sampling};
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
pub const DEFAULT_WASM_FILE: &str = meshtally_wire::module::WORKSPACE_MODULE;
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
    /// The API the traffic rules are rendered in; checked: the rules say nothing it cannot.
    #[serde(default)]
    pub api: Api,
    /// The Gateway API CRDs the render may use (only read under [`Api::GatewayApi`]).
    #[serde(default)]
    pub gateway_api_channel: Channel,
    /// The share of requests traced: the Telemetry `render` writes, the sidecars `up --tracing`
    /// runs.
    #[serde(default)]
    pub sampling: Sampling,
    /// What a sidecar does with a call to a host the mesh does not know.
    #[serde(default)]
    pub outbound_policy: OutboundPolicy,
    /// The services outside the mesh that its services call, in the order given.
    #[serde(default)]
    pub external: Vec<External>,
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

/// A problem in the input and the field it is in, as a mesh file spells it (`services[1].port`):
/// the CLI turns the field into the file's line when the file set it.
#[derive(Debug)]
pub struct Located {
    pub error: ModelError,
    pub at: FieldPath,
}

impl Mesh {
    /// Fills defaults and checks everything; every problem found is returned (one, or
    /// [`ModelError::Several`]).
    pub fn from_input(input: MeshInput) -> Result<Mesh, ModelError> {
        Mesh::check(input).map_err(ModelError::from_problems)
    }

    /// Fills defaults and checks everything, collecting every problem with its field: a file
    /// with three mistakes is refused once, naming all three.
    pub fn check(input: MeshInput) -> Result<Mesh, Vec<Located>> {
        let mut problems = Vec::new();
        let mut refuse = |error: ModelError, at: FieldPath| problems.push(Located { error, at });
        let namespace = input
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        if !names::is_dns1123_label(&namespace) {
            refuse(
                ModelError::BadNamespace(namespace.clone()),
                FieldPath::key("namespace"),
            );
        }
        let base_port = input.base_port.unwrap_or(DEFAULT_BASE_PORT);
        let base_ok = ports::checked(base_port).is_some();
        if !base_ok {
            refuse(
                ModelError::BasePortOutOfRange(base_port),
                FieldPath::key("base_port"),
            );
        }
        let entries = match input
            .services
            .unwrap_or(ServiceChoice::Count(DEFAULT_SERVICES))
        {
            ServiceChoice::Count(0) => {
                refuse(ModelError::NoServices, FieldPath::key("services"));
                Vec::new()
            }
            ServiceChoice::Count(n) if n > MAX_SERVICES as u64 => {
                refuse(
                    ModelError::TooManyServices {
                        count: n,
                        max: MAX_SERVICES,
                    },
                    FieldPath::key("services"),
                );
                Vec::new()
            }
            ServiceChoice::Count(n) => (0..n as usize)
                .map(|i| ServiceEntry::named(names::generated(i)))
                .collect(),
            ServiceChoice::Listed(entries) => {
                if entries.is_empty() {
                    refuse(ModelError::NoServices, FieldPath::key("services"));
                }
                entries
            }
        };
        // Ports counted from a base port that is itself out of range say nothing new.
        let services = if base_ok {
            services(entries, base_port, &mut refuse)
        } else {
            Vec::new()
        };
        let api = input.api.unwrap_or_default();
        let gateway_api_channel = input.gateway_api_channel.unwrap_or_default();
        if api == Api::GatewayApi {
            gateway_api(&services, gateway_api_channel, &mut refuse);
        }
        let outbound_policy = input.outbound_policy.unwrap_or_default();
        let external = external::check(
            input.external.unwrap_or_default(),
            outbound_policy,
            &services,
            &mut refuse,
        );
        let replicas = input.replicas.unwrap_or(DEFAULT_REPLICAS);
        let replicas = i32::try_from(replicas).unwrap_or_else(|_| {
            refuse(
                ModelError::TooManyReplicas(replicas),
                FieldPath::key("replicas"),
            );
            0
        });
        let image = input.image.unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            refuse(ModelError::BadImage(image.clone()), FieldPath::key("image"));
        }
        let wasm = match (input.wasm_url, input.wasm_sha256) {
            (Some(url), sha256) => match WasmSource::remote(&url, sha256.as_deref()) {
                Ok(source) => Some(source),
                Err(e) => {
                    let at = match e {
                        ModelError::BadDigest(_) => "wasm_sha256",
                        _ => "wasm_url",
                    };
                    refuse(e, FieldPath::key(at));
                    None
                }
            },
            (None, Some(_)) => {
                refuse(ModelError::DigestWithoutUrl, FieldPath::key("wasm_sha256"));
                None
            }
            (None, None) => Some(WasmSource::ConfigMap {
                path: input
                    .wasm_file
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_WASM_FILE)),
            }),
        };
        match wasm {
            Some(wasm) if problems.is_empty() => Ok(Mesh {
                namespace,
                services,
                replicas,
                image,
                wasm,
                mtls: input.mtls.unwrap_or_default(),
                fail_strategy: input.fail_strategy,
                api,
                gateway_api_channel,
                sampling: input.sampling.unwrap_or_default(),
                outbound_policy,
                external,
            }),
            _ => Err(problems),
        }
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

    /// The external entry whose host is `host`, if any.
    pub fn external_host(&self, host: &str) -> Option<&External> {
        self.external.iter().find(|e| e.host == host)
    }

    /// The SPIFFE identity Istio gives pods running as `service`'s ServiceAccount.
    pub fn principal(&self, service: &Service) -> String {
        meshtally_wire::identity::principal(&self.namespace, &service.name)
    }
}

/// What the Gateway API cannot say, refused at the field that asks for it: one line each,
/// naming the field and the way out (`--api istio`).
fn gateway_api(
    services: &[Service],
    channel: Channel,
    refuse: &mut impl FnMut(ModelError, FieldPath),
) {
    for (i, service) in services.iter().enumerate() {
        for (field, reason) in dialect::refusals(service, channel) {
            let at = FieldPath::service(i, &field);
            refuse(
                ModelError::Traffic {
                    service: service.name.clone(),
                    error: traffic::TrafficError { field, reason },
                },
                at,
            );
        }
    }
    for (i, reason) in dialect::clashes(services) {
        let service = &services[i];
        refuse(
            ModelError::Traffic {
                service: service.name.clone(),
                error: traffic::TrafficError {
                    field: "versions".to_owned(),
                    reason,
                },
            },
            FieldPath::service(i, "versions"),
        );
    }
}

/// The services, checked one by one; each problem is refused with its entry's field, and the
/// checks go on, so every bad entry is named.
fn services(
    entries: Vec<ServiceEntry>,
    base_port: u64,
    refuse: &mut impl FnMut(ModelError, FieldPath),
) -> Vec<Service> {
    if entries.len() > MAX_SERVICES {
        refuse(
            ModelError::TooManyServices {
                count: entries.len() as u64,
                max: MAX_SERVICES,
            },
            FieldPath::key("services"),
        );
        return Vec::new();
    }
    let mut seen_names = HashSet::new();
    let mut seen_ports: HashMap<u16, String> = HashMap::new();
    let mut services: Vec<Service> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let name = entry.name;
        let named = entry.port.is_some() || entry.traffic != Default::default();
        // A bare name's field is the entry itself; a mapping's, its `name`.
        let name_at = FieldPath::service(i, if named { "name" } else { "" });
        let mut ok = true;
        if !names::is_dns1035_label(&name) {
            refuse(ModelError::BadServiceName(name.clone()), name_at.clone());
            ok = false;
        } else if name.starts_with(RESERVED_PREFIX) {
            refuse(
                ModelError::ReservedServiceName(name.clone()),
                name_at.clone(),
            );
            ok = false;
        } else if !seen_names.insert(name.clone()) {
            refuse(ModelError::DuplicateService(name.clone()), name_at.clone());
            ok = false;
        }
        let port_at = FieldPath::service(i, if entry.port.is_some() { "port" } else { "" });
        let wanted = entry.port.unwrap_or(base_port + i as u64);
        let port = match ports::checked(wanted) {
            None => {
                refuse(
                    ModelError::PortOutOfRange {
                        service: name.clone(),
                        port: wanted,
                    },
                    port_at,
                );
                None
            }
            Some(port) if ports::is_reserved(port) => {
                refuse(
                    ModelError::ReservedPort {
                        service: name.clone(),
                        port,
                    },
                    port_at,
                );
                None
            }
            Some(port) => match seen_ports.get(&port) {
                Some(first) => {
                    refuse(
                        ModelError::DuplicatePort {
                            port,
                            first: first.clone(),
                            second: name.clone(),
                        },
                        port_at,
                    );
                    None
                }
                None => {
                    seen_ports.insert(port, name.clone());
                    Some(port)
                }
            },
        };
        let traffic = match traffic::check(entry.traffic) {
            Ok(traffic) => Some(traffic),
            Err(error) => {
                let at = FieldPath::service(i, &error.field);
                refuse(
                    ModelError::Traffic {
                        service: name.clone(),
                        error,
                    },
                    at,
                );
                None
            }
        };
        if let (true, Some(port), Some(traffic)) = (ok, port, traffic) {
            services.push(Service {
                name,
                port,
                traffic,
            });
        }
    }
    services
}

#[cfg(test)]
mod tests;
