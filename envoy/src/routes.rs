//! What a local proxy's routes and clusters to one service say, built from the model's traffic
//! rules as istiod builds them from a VirtualService and DestinationRule: a cluster per version
//! (subset) with the connection limits and outlier detection, weighted routes, header matches,
//! the timeout, the retry policy and the fault filter's per-route config. Only the content:
//! where it is delivered (a bootstrap, or xDS files) is for the caller to decide.

use serde_json::{json, Value};

use crate::tls::Tls;
use meshtally_mesh::model::traffic::{CircuitBreaker, Fault, Traffic};

/// The HTTP fault filter's name, as the route's `typed_per_filter_config` refers to it.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
const FAULT_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";

/// One service as its callers see it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub traffic: Traffic,
    /// Each version's sidecar inbound port, in the model's version order.
    pub endpoints: Vec<(String, u16)>,
    /// The caller's certificate and the SPIFFE URI the service's certificate must carry.
    pub tls: Option<(Tls, String)>,
}

impl Upstream {
    /// A service with the default rules (one `v1`, the default timeout and retries) on one port.
    pub fn single(name: &str, port: u16, tls: Option<(Tls, String)>) -> Upstream {
        let traffic = Traffic::default();
        let endpoints = traffic
            .versions
            .iter()
            .map(|v| (v.name.clone(), port))
            .collect();
        Upstream {
            name: name.to_owned(),
            traffic,
            endpoints,
            tls,
        }
    }
}

/// A version's cluster (Istio's subset cluster).
pub fn subset_cluster(service: &str, version: &str) -> String {
    format!("{service}|{version}")
}

/// The HCM's fault filter, empty: it injects only what a route's per-filter config asks for,
/// as istiod configures it.
pub fn fault_filter() -> Value {
    json!({"name": FAULT_FILTER, "typed_config": {"@type": FAULT_TYPE}})
}

/// The virtual host for `upstream`: header matches first, then the split.
pub fn virtual_host(upstream: &Upstream) -> Value {
    let n = &upstream.name;
    let t = &upstream.traffic;
    let mut routes: Vec<Value> = t
        .matches
        .iter()
        .map(|m| {
            let matcher = json!({
                "prefix": "/",
                "headers": [{"name": m.header, "string_match": {"exact": m.value}}],
            });
            route(
                t,
                matcher,
                json!({"cluster": subset_cluster(n, &m.version)}),
            )
        })
        .collect();
    routes.push(route(t, json!({"prefix": "/"}), split(upstream)));
    json!({"name": n, "domains": [n, format!("{n}:*"), format!("{n}.*")], "routes": routes})
}

/// Where the default route sends requests: one cluster, or weighted subset clusters.
fn split(upstream: &Upstream) -> Value {
    let n = &upstream.name;
    let t = &upstream.traffic;
    if !t.weighted() {
        return json!({"cluster": n});
    }
    // Versions at weight 0 are left out, and a lone remaining version is a plain cluster, as
    // istiod writes them.
    let live: Vec<Value> = t
        .versions
        .iter()
        .filter_map(|v| Some((v, v.weight.filter(|w| *w > 0)?)))
        .map(|(v, w)| json!({"name": subset_cluster(n, &v.name), "weight": w}))
        .collect();
    match live.as_slice() {
        [one] => json!({"cluster": one["name"]}),
        _ => json!({"weighted_clusters": {"clusters": live}}),
    }
}

/// A route with the service's timeout, retries and fault.
pub(crate) fn route(t: &Traffic, matcher: Value, target: Value) -> Value {
    let mut action = target;
    action["timeout"] = json!(t.timeout.envoy());
    if let Some(r) = &t.retries {
        // In the form istiod gives it: the previous-hosts predicate, so a retry picks another
        // endpoint.
        let mut policy = json!({
            "retry_on": r.retry_on,
            "num_retries": r.attempts,
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
            "host_selection_retry_max_attempts": 5,
        });
        if let Some(per_try) = r.per_try_timeout {
            policy["per_try_timeout"] = json!(per_try.envoy());
        }
        action["retry_policy"] = policy;
    }
    let mut route = json!({"match": matcher, "route": action});
    if let Some(fault) = &t.fault {
        route["typed_per_filter_config"] = json!({FAULT_FILTER: fault_config(fault)});
    }
    route
}

fn percent(p: u32) -> Value {
    json!({"numerator": p, "denominator": "HUNDRED"})
}

fn fault_config(f: &Fault) -> Value {
    let mut config = json!({"@type": FAULT_TYPE});
    if let Some(d) = &f.delay {
        config["delay"] = json!({"fixed_delay": d.fixed.envoy(), "percentage": percent(d.percent)});
    }
    if let Some(a) = &f.abort {
        config["abort"] = json!({"http_status": a.status, "percentage": percent(a.percent)});
    }
    config
}

/// The service's clusters: one per version, plus the whole service when it is not split by
/// weight (its endpoints are every version's, so outlier detection can move traffic between
/// them).
pub fn clusters(upstream: &Upstream) -> Vec<Value> {
    let mut out: Vec<Value> = upstream
        .endpoints
        .iter()
        .map(|(version, port)| {
            cluster(&subset_cluster(&upstream.name, version), &[*port], upstream)
        })
        .collect();
    if !upstream.traffic.weighted() {
        let ports: Vec<u16> = upstream.endpoints.iter().map(|(_, p)| *p).collect();
        out.push(cluster(&upstream.name, &ports, upstream));
    }
    out
}

fn cluster(name: &str, ports: &[u16], upstream: &Upstream) -> Value {
    let mut c = crate::cluster::static_cluster(name, ports, upstream.tls.as_ref());
    if let Some(cb) = &upstream.traffic.circuit_breaker {
        apply_circuit_breaker(&mut c, cb);
    }
    c
}

/// Istio's connection pool and outlier detection, as istiod translates them: a limit not given
/// is as good as none (istiod writes 2^32-1, not Envoy's default of 1024).
fn apply_circuit_breaker(c: &mut Value, cb: &CircuitBreaker) {
    let limit = |n: Option<u32>| json!(n.unwrap_or(u32::MAX));
    c["circuit_breakers"] = json!({"thresholds": [{
        "max_connections": limit(cb.max_connections),
        "max_pending_requests": limit(cb.max_pending),
        "max_requests": limit(cb.max_requests),
    }]});
    if let Some(o) = &cb.outlier {
        c["outlier_detection"] = json!({
            "consecutive_5xx": o.consecutive_5xx,
            "interval": o.interval.envoy(),
            "base_ejection_time": o.base_ejection.envoy(),
            "max_ejection_percent": o.max_ejection_percent,
            // Gateway errors count only as 5xx, as Istio's consecutive5xxErrors reads.
            "enforcing_consecutive_gateway_failure": 0,
        });
        // Istio's minHealthPercent defaults to 0: no panic mode, so an ejected endpoint gets
        // no traffic even when few are left.
        c["common_lb_config"] = json!({"healthy_panic_threshold": {"value": 0}});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtally_mesh::model::{Mesh, MeshInput};

    fn upstream(yaml: &str) -> Upstream {
        let mesh = Mesh::from_input(MeshInput::from_yaml(yaml).unwrap()).unwrap();
        let s = &mesh.services[0];
        Upstream {
            name: s.name.clone(),
            traffic: s.traffic.clone(),
            endpoints: s
                .traffic
                .versions
                .iter()
                .zip(9000..)
                .map(|(v, p)| (v.name.clone(), p))
                .collect(),
            tls: None,
        }
    }

    #[test]
    fn canary_matches_and_faults() {
        let u = upstream(
            "services:\n  - name: a\n    versions: [{name: v1, weight: 90}, {name: v2, weight: 10}]\n    match: [{header: x-group, value: beta, version: v2}]\n    timeout: 500ms\n    fault: {abort: {status: 503, percent: 25}}\n",
        );
        let vh = virtual_host(&u);
        let routes = vh["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0]["match"]["headers"][0]["name"], "x-group");
        assert_eq!(routes[0]["route"]["cluster"], "a|v2");
        let weighted = &routes[1]["route"]["weighted_clusters"]["clusters"];
        assert_eq!(
            weighted,
            &json!([{"name": "a|v1", "weight": 90}, {"name": "a|v2", "weight": 10}])
        );
        assert_eq!(routes[1]["route"]["timeout"], "0.500s");
        let abort = &routes[1]["typed_per_filter_config"][FAULT_FILTER]["abort"];
        assert_eq!(abort["http_status"], 503);
        assert_eq!(abort["percentage"]["numerator"], 25);
        let names: Vec<_> = clusters(&u).iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, [json!("a|v1"), json!("a|v2")]);
    }

    #[test]
    fn unweighted_versions_share_one_cluster_with_outlier_detection() {
        let u = upstream(
            "services:\n  - name: a\n    versions: [{name: v1}, {name: v2, fail_status: 500}]\n    circuit_breaker: {consecutive_5xx: 3, interval: 1s, max_ejection_percent: 100}\n",
        );
        let vh = virtual_host(&u);
        assert_eq!(vh["routes"][0]["route"]["cluster"], "a");
        let all = clusters(&u);
        let whole = all.iter().find(|c| c["name"] == "a").unwrap();
        let endpoints = &whole["load_assignment"]["endpoints"][0]["lb_endpoints"];
        assert_eq!(endpoints.as_array().unwrap().len(), 2);
        assert_eq!(whole["outlier_detection"]["consecutive_5xx"], 3);
        assert_eq!(whole["outlier_detection"]["base_ejection_time"], "30s");
        assert_eq!(
            whole["common_lb_config"]["healthy_panic_threshold"]["value"],
            0
        );
    }

    #[test]
    fn zero_weights_drop_out() {
        let u = upstream(
            "services:\n  - name: a\n    versions: [{name: v1, weight: 0}, {name: v2, weight: 100}]\n    circuit_breaker: {max_connections: 1, max_pending: 1}\n",
        );
        let vh = virtual_host(&u);
        assert_eq!(vh["routes"][0]["route"]["cluster"], "a|v2");
        let c = &clusters(&u)[0];
        assert_eq!(
            c["circuit_breakers"]["thresholds"][0],
            json!({"max_connections": 1, "max_pending_requests": 1, "max_requests": u32::MAX})
        );
        assert!(c.get("outlier_detection").is_none());
    }
}
