//! `deployer shift --cluster --api gateway-api`: a service's version weights set on the
//! HTTPRoutes that split traffic to it (the in-mesh GAMMA route and the ingress one), as the
//! weights of their `backendRefs` to the per-version Services. Rules chosen by a header match
//! keep their version. Each route is sent by server-side apply with its resourceVersion, so a
//! concurrent edit makes it fail instead of being overwritten; the rest of the route is sent
//! back as it was read, so nothing else changes.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::kubectl::Kubectl;
use super::shift::Patched;
use meshtally_mesh::model::dialect::version_service;
use meshtally_mesh::render::meta::{APP, VERSION_LABEL};

const HTTP_ROUTES: &str = "httproutes.gateway.networking.k8s.io";
/// Not `meshtally`: an apply by that manager with only the rules would give up every other
/// field it owns, and server-side apply would remove them.
pub const FIELD_MANAGER: &str = "meshtally-shift";

/// The rules of an HTTPRoute with the split to `service` set to `weights` (versions at weight 0
/// left out), or `None` when no rule of it splits traffic to `service` alone, or none changes.
pub fn reweight(
    spec: &Value,
    service: &str,
    versions: &[String],
    weights: &[(String, u32)],
) -> Option<Vec<Value>> {
    let mut changed = false;
    let rules: Vec<Value> = spec["rules"]
        .as_array()?
        .iter()
        .map(|rule| {
            if !splits_to(rule, service, versions) {
                return rule.clone();
            }
            // Each new backend is the first one renamed and reweighted: the fields the API
            // server defaulted (`group`, `kind`) stay, so an unchanged split compares equal.
            let template = rule["backendRefs"][0].clone();
            let backends: Vec<Value> = weights
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|(v, w)| {
                    let mut b = template.clone();
                    b["name"] = json!(version_service(service, v));
                    b["weight"] = json!(w);
                    b
                })
                .collect();
            let mut out = rule.clone();
            out["backendRefs"] = Value::Array(backends);
            changed |= out != *rule;
            out
        })
        .collect();
    changed.then_some(rules)
}

/// Whether a rule is `service`'s split: no header match, and every backend is the service's
/// Service or one of its per-version Services.
fn splits_to(rule: &Value, service: &str, versions: &[String]) -> bool {
    let by_header = rule["matches"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["headers"].as_array().is_some_and(|h| !h.is_empty()));
    let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
    let ours = |name: &str| {
        name == service || versions.iter().any(|v| version_service(service, v) == name)
    };
    !by_header
        && !refs.is_empty()
        && refs.iter().all(|r| {
            r["name"].as_str().is_some_and(ours)
                && r["kind"].as_str().is_none_or(|k| k == "Service")
        })
}

/// The versions of `service` on the cluster: its per-version Services' `version` labels.
pub(crate) fn versions(kubectl: &Kubectl, namespace: &str, service: &str) -> Result<Vec<String>> {
    let selector = format!("{APP}={service},{VERSION_LABEL}");
    let list = get(kubectl, namespace, "services", Some(&selector))?;
    let mut out: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["metadata"]["labels"][VERSION_LABEL].as_str())
        .map(str::to_owned)
        .collect();
    out.sort();
    Ok(out)
}

/// Sets `service`'s weights in `namespace`: checks the versions against its per-version
/// Services, then applies each HTTPRoute whose rules split traffic to it.
pub fn shift(
    kubectl: &Kubectl,
    namespace: &str,
    service: &str,
    weights: &[(String, u32)],
) -> Result<Vec<Patched>> {
    let known = versions(kubectl, namespace, service)?;
    if known.is_empty() {
        bail!("no per-version Service of {service} in namespace {namespace}: apply the mesh with --api gateway-api first (`deployer apply --api gateway-api`)");
    }
    if let Some((unknown, _)) = weights.iter().find(|(v, _)| !known.contains(v)) {
        bail!(
            "{service} has no version {unknown} on the cluster (its per-version Services' versions: {})",
            known.join(", ")
        );
    }
    let list = get(kubectl, namespace, HTTP_ROUTES, None)?;
    let mut todo = Vec::new();
    let mut routes_to_service = 0;
    for route in list["items"].as_array().into_iter().flatten() {
        let rules = route["spec"]["rules"].as_array().into_iter().flatten();
        if rules.clone().any(|r| splits_to(r, service, &known)) {
            routes_to_service += 1;
        }
        let Some(rules) = reweight(&route["spec"], service, &known, weights) else {
            continue;
        };
        let name = route["metadata"]["name"]
            .as_str()
            .context("an HTTPRoute without a name")?;
        let doc = json!({
            "apiVersion": route["apiVersion"],
            "kind": "HTTPRoute",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": route["metadata"]["resourceVersion"],
            },
            "spec": {"parentRefs": route["spec"]["parentRefs"], "rules": rules},
        });
        todo.push((name.to_owned(), serde_json::to_vec(&doc)?));
    }
    let patched = super::shift::apply_each(kubectl, "HTTPRoute", &todo)?;
    if routes_to_service == 0 {
        bail!("no HTTPRoute in namespace {namespace} routes to {service}: apply the mesh with --api gateway-api first");
    }
    Ok(patched)
}

fn get(kubectl: &Kubectl, namespace: &str, kind: &str, selector: Option<&str>) -> Result<Value> {
    let mut args = vec![
        "get",
        kind,
        "-n",
        namespace,
        "-o",
        "json",
        "--request-timeout=30s",
    ];
    if let Some(s) = selector {
        args.extend(["-l", s]);
    }
    let out = kubectl.run(&args, None)?;
    serde_json::from_slice(&out).with_context(|| format!("kubectl get {kind} did not print JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "service-a"}], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"type": "Exact", "name": "x-user-group", "value": "beta"}]}],
             "backendRefs": [{"name": "service-a-v2", "port": 8000}], "timeouts": {"request": "2s"}},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "service-a-v1", "port": 8000, "weight": 90}, {"name": "service-a-v2", "port": 8000, "weight": 10}],
             "timeouts": {"request": "2s"}},
        ]})
    }

    fn w(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
        pairs.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect()
    }

    fn versions() -> Vec<String> {
        vec!["v1".to_owned(), "v2".to_owned()]
    }

    #[test]
    fn the_split_is_reweighted_and_header_rules_are_kept() {
        let rules = reweight(
            &spec(),
            "service-a",
            &versions(),
            &w(&[("v1", 50), ("v2", 50)]),
        )
        .unwrap();
        assert_eq!(rules[0], spec()["rules"][0], "the header rule is untouched");
        assert_eq!(
            rules[1]["backendRefs"],
            json!([{"name": "service-a-v1", "port": 8000, "weight": 50}, {"name": "service-a-v2", "port": 8000, "weight": 50}])
        );
        assert_eq!(
            rules[1]["timeouts"],
            json!({"request": "2s"}),
            "the rest stays"
        );
        let rules = reweight(
            &spec(),
            "service-a",
            &versions(),
            &w(&[("v1", 0), ("v2", 100)]),
        )
        .unwrap();
        assert_eq!(
            rules[1]["backendRefs"],
            json!([{"name": "service-a-v2", "port": 8000, "weight": 100}])
        );
    }

    #[test]
    fn fields_the_api_server_defaulted_are_kept_so_a_second_shift_is_no_change() {
        let live = json!({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [
                {"group": "", "kind": "Service", "name": "service-a-v1", "port": 8000, "weight": 20},
                {"group": "", "kind": "Service", "name": "service-a-v2", "port": 8000, "weight": 80}]}]});
        assert_eq!(
            reweight(
                &live,
                "service-a",
                &versions(),
                &w(&[("v1", 20), ("v2", 80)])
            ),
            None
        );
    }

    #[test]
    fn another_service_or_an_unchanged_split_is_no_change() {
        assert_eq!(
            reweight(&spec(), "service-b", &versions(), &w(&[("v1", 100)])),
            None
        );
        assert_eq!(
            reweight(
                &spec(),
                "service-a",
                &versions(),
                &w(&[("v1", 90), ("v2", 10)])
            ),
            None
        );
        // A split over the plain Service (no weights in the mesh) is one the shift sets.
        let plain = json!({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/service-a"}}],
            "backendRefs": [{"name": "service-a", "port": 8000}]}]});
        let rules = reweight(
            &plain,
            "service-a",
            &versions(),
            &w(&[("v1", 20), ("v2", 80)]),
        )
        .unwrap();
        assert_eq!(
            rules[0]["backendRefs"][1],
            json!({"name": "service-a-v2", "port": 8000, "weight": 80})
        );
    }
}
