//! The services outside the mesh and the mesh's outbound policy, as Istio's egress tasks teach
//! them: each entry is a ServiceEntry (with, for TLS origination, a DestinationRule) and a
//! VirtualService carrying its timeout on a cluster, and an outbound cluster and route in each
//! local sidecar; the policy is `meshConfig.outboundTrafficPolicy` on a cluster, and the catch-all
//! route of each local sidecar. Checked here once, with the entry and field at fault.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::traffic::{Millis, DEFAULT_TIMEOUT};
use super::{names, ports, FieldPath, ModelError, Service, RESERVED_PREFIX};

/// What a sidecar does with a call to a host the mesh does not know (Istio's
/// `outboundTrafficPolicy.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundPolicy {
    /// Passed through to wherever it was going (Istio's default, the PassthroughCluster).
    #[default]
    AllowAny,
    /// Refused with a 502 by the sidecar (Istio's BlackHoleCluster).
    RegistryOnly,
}

impl OutboundPolicy {
    /// As Istio's mesh config spells it.
    pub fn istio(self) -> &'static str {
        match self {
            OutboundPolicy::AllowAny => "ALLOW_ANY",
            OutboundPolicy::RegistryOnly => "REGISTRY_ONLY",
        }
    }
}

/// What the outside server speaks on its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Http,
    Https,
    /// TLS that is not HTTP (routed on SNI only).
    Tls,
}

impl Protocol {
    /// As a ServiceEntry port spells it.
    pub fn istio(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tls => "TLS",
        }
    }
}

/// The port an app calls a TLS-origination entry on: plain HTTP, as Istio's egress TLS
/// origination task has it (the ServiceEntry's port 80, `targetPort` the server's).
pub const ORIGINATION_PORT: u16 = 80;

/// Where a cluster's sidecar finds the roots that sign a public server's certificate: the
/// istio-proxy image's system bundle. A DestinationRule with `tls: SIMPLE` and no
/// `caCertificates` is IST0129 (the server is not verified).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A checked entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    /// A DNS-1035 label: the objects' names and the metrics' destination.
    pub name: String,
    /// The outside server's DNS name.
    pub host: String,
    /// The port the outside server listens on.
    pub port: u16,
    pub protocol: Protocol,
    /// The app speaks plain HTTP on [`ORIGINATION_PORT`]; the sidecar opens TLS to `port`.
    pub tls_origination: bool,
    /// The roots the sidecar checks the server's certificate with (a path in the sidecar).
    pub ca_certificates: String,
    pub timeout: Millis,
    /// Who may call it; `None`: every service.
    pub callers: Option<Vec<String>>,
}

impl External {
    /// The port an app in the mesh calls.
    pub fn app_port(&self) -> u16 {
        if self.tls_origination {
            ORIGINATION_PORT
        } else {
            self.port
        }
    }

    /// Whether `service` may call it.
    pub fn admits(&self, service: &str) -> bool {
        self.callers
            .as_ref()
            .is_none_or(|c| c.iter().any(|s| s == service))
    }

    /// Whether a sidecar speaks HTTP to it (and so can route, time out and count it by request).
    pub fn is_http(&self) -> bool {
        self.protocol == Protocol::Http || self.tls_origination
    }
}

/// An `external` entry as the mesh file spells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalInput {
    pub name: String,
    pub host: String,
    pub port: u64,
    pub protocol: Protocol,
    #[serde(default)]
    pub tls_origination: bool,
    #[serde(default)]
    pub ca_certificates: Option<String>,
    #[serde(default)]
    pub timeout: Option<Millis>,
    #[serde(default)]
    pub callers: Option<Vec<String>>,
}

/// A DNS name a ServiceEntry with `resolution: DNS` can carry: lowercase labels, at least two,
/// no wildcard (Istio refuses a wildcard host resolved by DNS), not an address.
fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.contains('.')
        && host
            .split('.')
            .all(|l| names::is_dns1123_label(l) && !l.is_empty())
        && !host
            .split('.')
            .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// The checked entries; each problem refused with `external[i].<field>`, and the checks go on.
pub(super) fn check(
    entries: Vec<ExternalInput>,
    policy: OutboundPolicy,
    services: &[Service],
    refuse: &mut impl FnMut(ModelError, FieldPath),
) -> Vec<External> {
    let at = |i: usize, field: &str| FieldPath::external(i, field);
    let mut seen_names = HashSet::new();
    let mut seen_hosts = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let mut ok = true;
        let mut bad = |field: &str, reason: String| {
            refuse(
                ModelError::External {
                    entry: e.name.clone(),
                    field: field.to_owned(),
                    reason,
                },
                at(i, field),
            );
        };
        if !names::is_dns1035_label(&e.name) {
            bad(
                "name",
                "not a DNS-1035 label (1-63 of a-z, 0-9 and '-', starting with a letter)".into(),
            );
            ok = false;
        } else if e.name.starts_with(RESERVED_PREFIX) {
            bad(
                "name",
                format!("the prefix `{RESERVED_PREFIX}` names the mesh's own objects"),
            );
            ok = false;
        } else if services.iter().any(|s| s.name == e.name) {
            bad(
                "name",
                "is also a service of the mesh: the metrics could not tell the two apart".into(),
            );
            ok = false;
        } else if !seen_names.insert(e.name.clone()) {
            bad("name", "given twice".into());
            ok = false;
        }
        if !is_dns_name(&e.host) {
            bad(
                "host",
                format!(
                    "`{}` is not a DNS name (lowercase labels joined by dots, no wildcard, not an address)",
                    e.host
                ),
            );
            ok = false;
        } else if e.host.ends_with(".cluster.local") {
            bad(
                "host",
                format!("`{}` is inside the mesh's own domain", e.host),
            );
            ok = false;
        } else if !seen_hosts.insert(e.host.clone()) {
            bad("host", format!("`{}` is declared by two entries", e.host));
            ok = false;
        }
        let port = match ports::checked(e.port) {
            None => {
                bad("port", format!("{} is outside 1-65535", e.port));
                None
            }
            Some(p) if ports::is_reserved(p) => {
                bad(
                    "port",
                    format!(
                        "{p} is reserved by the Istio sidecar ({}-{})",
                        ports::RESERVED_FIRST,
                        ports::RESERVED_LAST
                    ),
                );
                None
            }
            Some(p) => Some(p),
        };
        match (e.protocol, e.tls_origination) {
            (Protocol::Http, true) => {
                bad(
                    "tls_origination",
                    "the server speaks plain http: there is no TLS to originate (protocol: https)"
                        .into(),
                );
                ok = false;
            }
            (Protocol::Tls, true) => {
                bad(
                    "tls_origination",
                    "protocol tls is not HTTP: the sidecar can originate TLS for https only".into(),
                );
                ok = false;
            }
            _ => {}
        }
        if e.ca_certificates.is_some() && !e.tls_origination {
            bad(
                "ca_certificates",
                "only a sidecar that originates TLS checks the server (tls_origination: true)"
                    .into(),
            );
            ok = false;
        }
        if e.timeout.is_some() && !(e.protocol == Protocol::Http || e.tls_origination) {
            bad(
                "timeout",
                "the sidecar sees no requests in a TLS stream it does not open: give protocol http or tls_origination: true".into(),
            );
            ok = false;
        }
        if e.timeout == Some(Millis(0)) {
            bad("timeout", "must be longer than 0".into());
            ok = false;
        }
        // The port apps call: a plain-HTTP one may share the listener of an in-mesh service;
        // a TLS one cannot, since one port's outbound listener speaks one protocol.
        let app_port = if e.tls_origination {
            Some(ORIGINATION_PORT)
        } else {
            port
        };
        if let (Some(p), Protocol::Https | Protocol::Tls, false) =
            (app_port, e.protocol, e.tls_origination)
        {
            if let Some(s) = services.iter().find(|s| s.port == p) {
                bad(
                    "port",
                    format!(
                        "{p} is service `{}`'s port: an HTTP service and a {} server cannot share one outbound port",
                        s.name,
                        e.protocol.istio()
                    ),
                );
                ok = false;
            }
        }
        if let Some(callers) = &e.callers {
            for (j, c) in callers.iter().enumerate() {
                if !services.iter().any(|s| &s.name == c) {
                    refuse(
                        ModelError::External {
                            entry: e.name.clone(),
                            field: format!("callers[{j}]"),
                            reason: format!("no service `{c}` in the mesh"),
                        },
                        at(i, &format!("callers[{j}]")),
                    );
                    ok = false;
                }
            }
            if policy == OutboundPolicy::AllowAny {
                refuse(
                    ModelError::External {
                        entry: e.name.clone(),
                        field: "callers".into(),
                        reason: "under outbound_policy: allow_any a caller left out passes through anyway: set outbound_policy: registry_only".into(),
                    },
                    at(i, "callers"),
                );
                ok = false;
            }
        }
        if let (true, Some(port)) = (ok, port) {
            out.push(External {
                name: e.name,
                host: e.host,
                port,
                protocol: e.protocol,
                tls_origination: e.tls_origination,
                ca_certificates: e
                    .ca_certificates
                    .unwrap_or_else(|| SYSTEM_CA_BUNDLE.to_owned()),
                timeout: e.timeout.unwrap_or(DEFAULT_TIMEOUT),
                callers: e.callers,
            });
        }
    }
    out
}
