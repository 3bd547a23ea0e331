//! `deployer edges`: every caller → callee edge the callees logged, with the caller's identity
//! as the callee saw it — the SPIFFE ID a verified certificate carried, or why there is none
//! (a plain-text connection; a certificate that names no workload; no caller named at all).
//! Linkerd's `viz edges`, from the same access logs `tap` follows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::table::Table;
use meshtally_wire::access::Record;

/// Why a call carried no verified identity.
pub(crate) const PLAIN_TEXT: &str = "plain text: no TLS, so no certificate";
pub(crate) const NO_WORKLOAD: &str = "TLS, but the certificate names no workload";
pub(crate) const UNKNOWN_CALLER: &str = "unknown caller: no certificate and no x-mesh-source";
/// A call that left the mesh: only its caller's sidecar saw it.
pub(crate) const LEFT_MESH: &str = "outside the mesh: no callee sidecar to see a certificate";
/// A call to a host the mesh does not know, refused by the caller's sidecar.
pub(crate) const BLOCKED: &str =
    "blocked by the caller's sidecar: a host the mesh does not know (outbound_policy: registry_only)";

/// One edge and one way its calls were identified.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct EdgeIdentity {
    pub source: String,
    pub destination: String,
    /// The verified SPIFFE ID, when a certificate proved the caller.
    pub identity: Option<String>,
    /// Why there is no verified identity.
    pub reason: Option<String>,
    pub requests: u64,
}

/// Gathers the callees' (inbound) records into edges.
#[derive(Debug, Default)]
pub(crate) struct Edges {
    seen: BTreeMap<(String, String, Option<String>, Option<String>), u64>,
}

impl Edges {
    pub(crate) fn add(&mut self, line: &str) {
        let Some(r) = Record::parse(line) else {
            return;
        };
        if let Some(to) = r.left_mesh() {
            let source = r.source.clone().unwrap_or_else(|| "unknown".into());
            let reason = if to == meshtally_wire::metrics::BLACKHOLE {
                BLOCKED
            } else {
                LEFT_MESH
            };
            *self
                .seen
                .entry((source, to.to_owned(), None, Some(reason.to_owned())))
                .or_default() += 1;
            return;
        }
        if r.direction != "inbound" {
            return;
        }
        let source = r.source.clone().unwrap_or_else(|| "unknown".into());
        let destination = r.destination.clone().unwrap_or_else(|| "unknown".into());
        let (identity, reason) = if r.is_verified() {
            (r.peer_identity.clone(), None)
        } else if r.tls_version.is_none() {
            let reason = if source == "unknown" {
                UNKNOWN_CALLER
            } else {
                PLAIN_TEXT
            };
            (None, Some(reason.to_owned()))
        } else {
            (None, Some(NO_WORKLOAD.to_owned()))
        };
        *self
            .seen
            .entry((source, destination, identity, reason))
            .or_default() += 1;
    }

    pub(crate) fn rows(&self) -> Vec<EdgeIdentity> {
        self.seen
            .iter()
            .map(
                |((source, destination, identity, reason), n)| EdgeIdentity {
                    source: source.clone(),
                    destination: destination.clone(),
                    identity: identity.clone(),
                    reason: reason.clone(),
                    requests: *n,
                },
            )
            .collect()
    }
}

/// The rows as an aligned table.
pub(crate) fn table(rows: &[EdgeIdentity]) -> String {
    if rows.is_empty() {
        return "no calls logged yet: send some traffic (deployer verify)\n".into();
    }
    let mut t = Table::new(
        [
            "SOURCE",
            "DESTINATION",
            "REQUESTS",
            "SECURED",
            "CALLER IDENTITY (OR WHY NONE)",
        ]
        .map(String::from)
        .to_vec(),
    );
    for r in rows {
        t.row(vec![
            r.source.clone(),
            r.destination.clone(),
            r.requests.to_string(),
            if r.identity.is_some() { "√" } else { "×" }.into(),
            r.identity
                .clone()
                .or_else(|| r.reason.clone())
                .unwrap_or_default(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(source: Option<&str>, verified: &str, peer: Option<&str>, tls: Option<&str>) -> String {
        serde_json::json!({
            "time": "t", "proxy": "p", "direction": "inbound", "version": null,
            "source": source, "destination": "service-b", "authority": null, "method": "GET",
            "path": "/", "status": 200, "duration_ms": 1, "verified": verified,
            "peer_identity": peer, "tls_version": tls, "hops": null, "served_by": null,
            "response_flags": null, "request_id": null,
        })
        .to_string()
    }

    #[test]
    fn identities_and_reasons() {
        let mut e = Edges::default();
        let id = "spiffe://cluster.local/ns/demo/sa/service-a";
        e.add(&line(Some("service-a"), "true", Some(id), Some("TLSv1.3")));
        e.add(&line(Some("service-a"), "true", Some(id), Some("TLSv1.3")));
        e.add(&line(Some("service-a"), "false", None, None));
        e.add(&line(Some("unknown"), "false", None, None));
        e.add(&line(
            Some("service-c"),
            "false",
            Some("https://x"),
            Some("TLSv1.3"),
        ));
        e.add(
            &line(Some("service-a"), "true", Some(id), Some("TLSv1.3"))
                .replace("inbound", "outbound"),
        );
        let rows = e.rows();
        let got: Vec<(&str, Option<&str>, Option<&str>, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.source.as_str(),
                    r.identity.as_deref(),
                    r.reason.as_deref(),
                    r.requests,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("service-a", None, Some(PLAIN_TEXT), 1),
                ("service-a", Some(id), None, 2),
                ("service-c", None, Some(NO_WORKLOAD), 1),
                ("unknown", None, Some(UNKNOWN_CALLER), 1),
            ]
        );
        let text = table(&rows);
        assert!(text.lines().nth(2).unwrap().ends_with(id), "{text}");
        assert!(table(&[]).starts_with("no calls"));
    }
}
