//! The JSON access log every local proxy writes and `tap` and `edges` read: one object per
//! request, carrying the `x-mesh-*` values the filter set (Envoy logs the request headers as
//! they left the filter chain) and what only the proxy knows (the peer certificate, the TLS
//! version, the status and duration). The Envoy format and the record that reads it back are
//! declared here together, so the two cannot drift.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The file access log of one proxy's listeners: `proxy` and `version` are written as given
/// (an Envoy command such as `%ENVIRONMENT(POD_NAME)%` is resolved), the direction is the
/// listener's.
pub fn envoy_access_log(path: &str, proxy: &str, version: Option<&str>, direction: &str) -> Value {
    let mut format = Map::new();
    for (key, command) in FIELDS {
        format.insert((*key).to_owned(), Value::String((*command).to_owned()));
    }
    format.insert("proxy".into(), proxy.into());
    format.insert("direction".into(), direction.into());
    format.insert("version".into(), version.map_or(Value::Null, Value::from));
    json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"json_format": format},
        },
    })
}

/// Record field → Envoy command. Single commands render typed (numbers stay numbers) and a
/// missing value renders as null.
const FIELDS: &[(&str, &str)] = &[
    ("time", "%START_TIME(%Y-%m-%dT%H:%M:%E3SZ)%"),
    ("source", "%REQ(X-MESH-SOURCE)%"),
    ("destination", "%REQ(X-MESH-DESTINATION)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(:PATH)%"),
    ("status", "%RESPONSE_CODE%"),
    ("duration_ms", "%DURATION%"),
    ("verified", "%REQ(X-MESH-PEER-VERIFIED)%"),
    ("peer_identity", "%DOWNSTREAM_PEER_URI_SAN%"),
    ("tls_version", "%DOWNSTREAM_TLS_VERSION%"),
    ("hops", "%REQ(X-MESH-HOPS)%"),
    ("served_by", "%RESP(X-MESH-SERVED-BY)%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("route", "%ROUTE_NAME%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_failure", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
];

/// One access-log line as written by [`envoy_access_log`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Record {
    pub time: String,
    pub proxy: String,
    pub direction: String,
    pub version: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub authority: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<u16>,
    pub duration_ms: Option<u64>,
    pub verified: Option<String>,
    pub peer_identity: Option<String>,
    pub tls_version: Option<String>,
    pub hops: Option<String>,
    pub served_by: Option<String>,
    pub response_flags: Option<String>,
    pub request_id: Option<String>,
    /// The route's name (a VirtualService route's; istiod's `block_all` / `allow_any`).
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub upstream_cluster: Option<String>,
    /// Why the connection to the upstream failed (a TLS handshake's error, say).
    #[serde(default)]
    pub upstream_failure: Option<String>,
}

impl Record {
    /// Parses one line; `None` for anything else a log may hold.
    pub fn parse(line: &str) -> Option<Record> {
        serde_json::from_str(line).ok()
    }

    /// Where a caller's (outbound) record went when it left the mesh: the external entry (its
    /// route's name, on a cluster `outbound|<port>||<host>` outside the cluster's domain), or
    /// the BlackHoleCluster / PassthroughCluster of a host the mesh does not know. `None` for a
    /// call inside the mesh, which its callee records.
    pub fn left_mesh(&self) -> Option<&str> {
        if self.direction != "outbound" {
            return None;
        }
        let route = self.route.as_deref().filter(|r| !r.is_empty() && *r != "-");
        match route {
            Some(r) if r == crate::metrics::BLOCK_ALL_ROUTE => Some(crate::metrics::BLACKHOLE),
            Some(r) if r == crate::metrics::ALLOW_ANY_ROUTE => Some(crate::metrics::PASSTHROUGH),
            Some(r) => {
                let cluster = self.upstream_cluster.as_deref().unwrap_or_default();
                let host = cluster.rsplit("||").next().unwrap_or_default();
                let external = cluster.starts_with("outbound|")
                    && !host.ends_with(".cluster.local")
                    && !host.is_empty();
                external.then_some(r)
            }
            None => None,
        }
    }

    /// A verified certificate named the caller (the filter's `x-mesh-peer-verified`).
    pub fn is_verified(&self) -> bool {
        self.verified.as_deref() == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_logged_and_reads_back() {
        let log = envoy_access_log("/tmp/x.log", "service-b-sidecar", Some("v1"), "inbound");
        let format = &log["typed_config"]["log_format"]["json_format"];
        let keys: Vec<&str> = format
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // What Envoy writes for that format, with the values it would give.
        let mut line = Map::new();
        for key in &keys {
            line.insert((*key).into(), Value::from("x"));
        }
        line.insert("status".into(), 200.into());
        line.insert("duration_ms".into(), 3.into());
        line.insert("version".into(), Value::Null);
        let record = Record::parse(&Value::Object(line.clone()).to_string()).unwrap();
        assert_eq!(record.status, Some(200));
        let back = serde_json::to_value(&record).unwrap();
        assert_eq!(
            back.as_object().unwrap().keys().collect::<Vec<_>>().len(),
            keys.len(),
            "the format and the record name the same fields"
        );
        assert_eq!(format["proxy"], "service-b-sidecar");
        assert_eq!(format["version"], "v1");
        assert_eq!(format["direction"], "inbound");
        assert!(Record::parse("not json").is_none());
    }

    #[test]
    fn calls_that_left_the_mesh() {
        let record = |direction: &str, route: Option<&str>, cluster: Option<&str>| {
            Record {
            direction: direction.into(),
            route: route.map(Into::into),
            upstream_cluster: cluster.map(Into::into),
            ..Record::parse(r#"{"time":"t","proxy":"p","direction":"outbound","version":null,"source":null,"destination":null,"authority":null,"method":null,"path":null,"status":null,"duration_ms":null,"verified":null,"peer_identity":null,"tls_version":null,"hops":null,"served_by":null,"response_flags":null,"request_id":null}"#).unwrap()
        }
        };
        let external = Some("outbound|80||api.payments.example");
        assert_eq!(
            record("outbound", Some("payments"), external).left_mesh(),
            Some("payments")
        );
        assert_eq!(
            record("outbound", Some("block_all"), None).left_mesh(),
            Some("BlackHoleCluster")
        );
        assert_eq!(
            record("outbound", Some("allow_any"), Some("PassthroughCluster")).left_mesh(),
            Some("PassthroughCluster")
        );
        let inside = Some("outbound|8001||service-b.demo.svc.cluster.local");
        assert_eq!(
            record("outbound", Some("service-b"), inside).left_mesh(),
            None
        );
        assert_eq!(
            record("outbound", None, Some("service-b|v1")).left_mesh(),
            None
        );
        assert_eq!(record("inbound", Some("block_all"), None).left_mesh(), None);
    }
}
