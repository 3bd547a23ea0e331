//! `deployer shift --cluster`: a service's version weights set on a cluster in every
//! VirtualService route that splits traffic to it (the in-mesh one and the ingress gateway's);
//! routes chosen by a header match keep their version. Each VirtualService is sent by
//! server-side apply under the field manager `meshtally-shift` with its resourceVersion and its
//! `http` routes alone, so a concurrent edit makes it fail instead of being overwritten and
//! nothing else in the object changes (`canary` moves its weights the same way).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::kubectl::Kubectl;

const VIRTUAL_SERVICES: &str = "virtualservices.networking.istio.io";
const DESTINATION_RULES: &str = "destinationrules.networking.istio.io";

/// The `http` routes of a VirtualService with the split to `host` set to `weights` (versions
/// at weight 0 left out, as istiod and `up` leave them out), or `None` when no route of it
/// splits traffic to `host`.
pub fn reweight(spec: &Value, host: &str, weights: &[(String, u32)]) -> Option<Vec<Value>> {
    let mut changed = false;
    let routes: Vec<Value> = spec["http"]
        .as_array()?
        .iter()
        .map(|route| {
            let by_header = route["match"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m.get("headers").is_some());
            let to_host: Vec<&Value> = route["route"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["destination"]["host"] == host)
                .collect();
            let Some(template) = to_host.first() else {
                return route.clone();
            };
            if by_header || to_host.len() != route["route"].as_array().map_or(0, Vec::len) {
                return route.clone();
            }
            let destinations: Vec<Value> = weights
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|(version, weight)| {
                    let mut d =
                        json!({"destination": template["destination"].clone(), "weight": weight});
                    d["destination"]["subset"] = json!(version);
                    d
                })
                .collect();
            let mut out = route.clone();
            out["route"] = Value::Array(destinations);
            changed |= out != *route;
            out
        })
        .collect();
    changed.then_some(routes)
}

/// A patch made (or that would be made) to one VirtualService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    pub name: String,
}

/// Sets `service`'s weights in `namespace`: checks the versions against its DestinationRule's
/// subsets, then patches each VirtualService whose routes split traffic to it.
pub fn shift(
    kubectl: &Kubectl,
    namespace: &str,
    service: &str,
    weights: &[(String, u32)],
) -> Result<Vec<Patched>> {
    let host = format!("{service}.{namespace}.svc.cluster.local");
    let rule = get(kubectl, namespace, DESTINATION_RULES)?;
    let subsets: Vec<&str> = rule["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["spec"]["host"] == host.as_str())
        .flat_map(|r| r["spec"]["subsets"].as_array().into_iter().flatten())
        .filter_map(|s| s["name"].as_str())
        .collect();
    if subsets.is_empty() {
        bail!("no DestinationRule in namespace {namespace} has subsets for {host}: apply the mesh first (`deployer apply`), or shift with --api gateway-api if it was applied so");
    }
    if let Some((unknown, _)) = weights.iter().find(|(v, _)| !subsets.contains(&v.as_str())) {
        bail!(
            "{service} has no version {unknown} on the cluster (its DestinationRule's subsets: {})",
            subsets.join(", ")
        );
    }
    let list = get(kubectl, namespace, VIRTUAL_SERVICES)?;
    // Every patch is worked out before the first is sent, so a failure part-way can name what
    // was and was not patched. Each patch replaces one VirtualService's routes whole, so every
    // object holds either its old split or its new one: its weights always sum to 100.
    let mut todo = Vec::new();
    for vs in list["items"].as_array().into_iter().flatten() {
        let Some(http) = reweight(&vs["spec"], &host, weights) else {
            continue;
        };
        let name = vs["metadata"]["name"]
            .as_str()
            .context("a VirtualService without a name")?;
        let doc = json!({
            "apiVersion": vs["apiVersion"],
            "kind": "VirtualService",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": vs["metadata"]["resourceVersion"],
            },
            "spec": {"http": http},
        });
        todo.push((name.to_owned(), serde_json::to_vec(&doc)?));
    }
    let patched = apply_each(kubectl, "VirtualService", &todo)?;
    if patched.is_empty() && !already_split(&list, &host, weights) {
        bail!("no VirtualService in namespace {namespace} routes to {host}: apply the mesh first (`deployer apply`)");
    }
    Ok(patched)
}

/// `service`'s versions on the cluster (its DestinationRule's subsets) with the weight each has
/// in the VirtualService that splits the in-mesh calls to it (0 for one left out).
pub fn weights(kubectl: &Kubectl, namespace: &str, service: &str) -> Result<Vec<(String, u32)>> {
    let host = format!("{service}.{namespace}.svc.cluster.local");
    let rules = get(kubectl, namespace, DESTINATION_RULES)?;
    let subsets: Vec<String> = rules["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["spec"]["host"] == host.as_str())
        .flat_map(|r| r["spec"]["subsets"].as_array().into_iter().flatten())
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    let list = get(kubectl, namespace, VIRTUAL_SERVICES)?;
    let split: Vec<(String, u32)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|vs| {
            vs["spec"]["hosts"]
                .as_array()
                .is_some_and(|h| h.iter().any(|h| *h == host.as_str()))
        })
        .flat_map(|vs| vs["spec"]["http"].as_array().into_iter().flatten())
        .filter(|r| {
            !r["match"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m.get("headers").is_some())
        })
        .flat_map(|r| r["route"].as_array().into_iter().flatten())
        .filter(|d| d["destination"]["host"] == host.as_str())
        .filter_map(|d| {
            let subset = d["destination"]["subset"].as_str()?.to_owned();
            Some((subset, d["weight"].as_u64().unwrap_or(100) as u32))
        })
        .collect();
    Ok(subsets
        .into_iter()
        .map(|s| {
            let w = split.iter().find(|(n, _)| *n == s).map_or(0, |(_, w)| *w);
            (s, w)
        })
        .collect())
}

/// True when some VirtualService routes to `host` and none needed a change.
fn already_split(list: &Value, host: &str, weights: &[(String, u32)]) -> bool {
    list["items"].as_array().into_iter().flatten().any(|vs| {
        vs["spec"]["http"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["route"].as_array().into_iter().flatten())
            .any(|d| d["destination"]["host"] == host)
            && reweight(&vs["spec"], host, weights).is_none()
    })
}

fn get(kubectl: &Kubectl, namespace: &str, kind: &str) -> Result<Value> {
    let out = kubectl.run(
        &[
            "get",
            kind,
            "-n",
            namespace,
            "-o",
            "json",
            "--request-timeout=30s",
        ],
        None,
    )?;
    serde_json::from_slice(&out).with_context(|| format!("kubectl get {kind} did not print JSON"))
}

/// Sends each object's new weights by server-side apply under the shift's field manager, in
/// order; one that fails stops the shift with the objects reached and not reached named (each
/// object holds a whole split, so a stop leaves none half-changed). Both dialects' shifts.
pub(super) fn apply_each(
    kubectl: &Kubectl,
    kind: &str,
    todo: &[(String, Vec<u8>)],
) -> Result<Vec<Patched>> {
    let manager = format!("--field-manager={}", super::shift_routes::FIELD_MANAGER);
    let mut patched = Vec::new();
    for (i, (name, doc)) in todo.iter().enumerate() {
        let result = kubectl.run(
            &[
                "apply",
                "--server-side",
                &manager,
                // The routes are an atomic list `meshtally` owns since `apply`: take it over.
                "--force-conflicts",
                "-f",
                "-",
                "--request-timeout=30s",
            ],
            Some(doc),
        );
        if let Err(e) = result {
            let lower = kind.to_ascii_lowercase();
            let names = |items: &[(String, Vec<u8>)]| {
                object_list(&lower, items.iter().map(|(n, _)| n.as_str()))
            };
            bail!(
                "shift stopped after {i} of {} {kind}s ({e}); applied: {}; not applied: {}; \
                 each keeps a whole split; the same `deployer shift` again converges",
                todo.len(),
                names(todo.get(..i).unwrap_or_default()),
                names(todo.get(i..).unwrap_or_default())
            );
        }
        patched.push(Patched { name: name.clone() });
    }
    Ok(patched)
}

/// `kind/name, …` of the objects a stopped shift did or did not reach, or `none`: how both
/// dialects' shifts say where they stopped.
pub(super) fn object_list<'a>(kind: &str, names: impl Iterator<Item = &'a str>) -> String {
    let listed: Vec<String> = names.map(|n| format!("{kind}/{n}")).collect();
    if listed.is_empty() {
        "none".to_owned()
    } else {
        listed.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "service-a.demo.svc.cluster.local";

    fn dest(subset: &str, weight: Option<u32>) -> Value {
        let mut d =
            json!({"destination": {"host": HOST, "subset": subset, "port": {"number": 8000}}});
        if let Some(w) = weight {
            d["weight"] = json!(w);
        }
        d
    }

    fn spec() -> Value {
        json!({"hosts": [HOST], "http": [
            {"name": "beta", "match": [{"headers": {"x-user-group": {"exact": "beta"}}}], "route": [dest("v2", None)], "timeout": "2s"},
            {"name": "service-a", "route": [dest("v1", Some(90)), dest("v2", Some(10))], "timeout": "2s"},
        ]})
    }

    fn weights(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
        pairs.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect()
    }

    #[test]
    fn the_split_is_reweighted_and_header_routes_are_kept() {
        let http = reweight(&spec(), HOST, &weights(&[("v1", 50), ("v2", 50)])).unwrap();
        assert_eq!(http[0], spec()["http"][0], "the header match is untouched");
        assert_eq!(
            http[1]["route"],
            json!([dest("v1", Some(50)), dest("v2", Some(50))])
        );
        assert_eq!(http[1]["timeout"], "2s", "the rest of the route stays");
        // Weight 0 leaves a version out.
        let http = reweight(&spec(), HOST, &weights(&[("v1", 0), ("v2", 100)])).unwrap();
        assert_eq!(http[1]["route"], json!([dest("v2", Some(100))]));
    }

    #[test]
    fn a_route_to_another_host_or_an_unchanged_split_is_no_patch() {
        assert_eq!(
            reweight(
                &spec(),
                "other.demo.svc.cluster.local",
                &weights(&[("v1", 100)])
            ),
            None
        );
        assert_eq!(
            reweight(&spec(), HOST, &weights(&[("v1", 90), ("v2", 10)])),
            None
        );
    }

    #[test]
    fn the_ingress_route_with_a_uri_match_is_reweighted() {
        let ingress = json!({"hosts": ["*"], "http": [{
            "name": "service-a",
            "match": [{"uri": {"prefix": "/service-a/"}}],
            "rewrite": {"uri": "/"},
            "route": [dest("v1", None)],
        }]});
        let http = reweight(&ingress, HOST, &weights(&[("v1", 20), ("v2", 80)])).unwrap();
        assert_eq!(
            http[0]["route"],
            json!([dest("v1", Some(20)), dest("v2", Some(80))])
        );
        assert_eq!(http[0]["rewrite"], json!({"uri": "/"}));
    }
}
