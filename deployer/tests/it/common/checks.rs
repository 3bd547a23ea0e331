//! Cross-references inside one render, read back from YAML: every name, port, label and
//! identity that one object uses must exist on the object it points at. Returns the problems
//! found, so a test can also show a tampered render is caught.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use meshtally_mesh::render::istio::{PluginDirection, StringMatch, WorkloadMode};
use meshtally_wire::ingress::ingress_principal;

use super::Objects;

type Labels = BTreeMap<String, String>;

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn pod_labels(d: &Deployment) -> Labels {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Deployments whose pods `selector` selects.
fn selected<'a>(objects: &'a Objects, selector: &Labels) -> Vec<&'a Deployment> {
    objects
        .deployments
        .iter()
        .filter(|d| selects(selector, &pod_labels(d)))
        .collect()
}

pub fn problems(objects: &Objects) -> Vec<String> {
    let mut problems = Vec::new();
    let mut say = |p: String| problems.push(p);

    let [namespace] = objects.namespaces.as_slice() else {
        return vec![format!("{} namespaces", objects.namespaces.len())];
    };
    let ns = name_of(&namespace.metadata);
    let fqdn = |name: &str| format!("{name}.{ns}.svc.cluster.local");

    // Services: name -> port; ports unique; each selects exactly its own Deployment's pods.
    let mut ports: BTreeMap<String, i32> = BTreeMap::new();
    let mut seen_ports = BTreeSet::new();
    for service in &objects.services {
        let name = name_of(&service.metadata);
        let spec = service.spec.clone().unwrap_or_default();
        let service_ports = spec.ports.unwrap_or_default();
        let [port] = service_ports.as_slice() else {
            say(format!("service {name}: {} ports", service_ports.len()));
            continue;
        };
        if !seen_ports.insert(port.port) {
            say(format!("service {name}: port {} used twice", port.port));
        }
        ports.insert(name.clone(), port.port);
        let selector = spec.selector.unwrap_or_default();
        let hits = selected(objects, &selector);
        if hits.len() != 1 || name_of(&hits[0].metadata) != name {
            say(format!(
                "service {name}: selector {selector:?} matches {} deployments",
                hits.len()
            ));
        }
    }
    let names: BTreeSet<String> = ports.keys().cloned().collect();
    let accounts: BTreeSet<String> = objects
        .service_accounts
        .iter()
        .map(|a| name_of(&a.metadata))
        .collect();

    for d in &objects.deployments {
        let name = name_of(&d.metadata);
        let spec = d.spec.clone().unwrap_or_default();
        let selector = spec.selector.match_labels.unwrap_or_default();
        if !selects(&selector, &pod_labels(d)) {
            say(format!(
                "deployment {name}: selector does not match its pod labels"
            ));
        }
        let pod = spec.template.spec.unwrap_or_default();
        if !pod
            .service_account_name
            .as_ref()
            .is_some_and(|a| accounts.contains(a))
        {
            say(format!("deployment {name}: no rendered service account"));
        }
        let container = &pod.containers[0];
        let container_port = container.ports.as_ref().map(|p| p[0].container_port);
        if container_port != ports.get(&name).copied() {
            say(format!(
                "deployment {name}: container port {container_port:?} is not its service's"
            ));
        }
        let env: BTreeMap<String, String> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        let peers: BTreeMap<String, String> = env
            .get("PEERS")
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(n, u)| (n.to_owned(), u.to_owned()))
            .collect();
        let want: BTreeSet<String> = names.iter().filter(|n| **n != name).cloned().collect();
        if peers.keys().cloned().collect::<BTreeSet<_>>() != want {
            say(format!(
                "deployment {name}: PEERS {:?} is not every other service",
                peers.keys()
            ));
        }
        for (peer, url) in &peers {
            if ports
                .get(peer)
                .map(|p| format!("http://{}:{p}", fqdn(peer)))
                != Some(url.clone())
            {
                say(format!(
                    "deployment {name}: PEERS url {url} for {peer} is wrong"
                ));
            }
        }
    }

    // Where a route points: a Service's FQDN and port.
    let check_destination = |owner: &str, host: &str, port: u32, say: &mut dyn FnMut(String)| {
        let service = host.strip_suffix(&format!(".{ns}.svc.cluster.local"));
        match service.and_then(|s| ports.get(s)) {
            Some(p) if i64::from(*p) == i64::from(port) => {}
            _ => say(format!(
                "{owner}: destination {host}:{port} is no service port"
            )),
        }
    };

    for dr in &objects.destination_rules {
        let name = name_of(&dr.metadata);
        let Some(service) = dr
            .spec
            .host
            .strip_suffix(&format!(".{ns}.svc.cluster.local"))
        else {
            say(format!(
                "destination rule {name}: host {} is not in the namespace",
                dr.spec.host
            ));
            continue;
        };
        let own = selected(
            objects,
            &BTreeMap::from([("app".to_owned(), service.to_owned())]),
        );
        for subset in &dr.spec.subsets {
            // Each version's subset selects exactly one of the service's Deployments.
            let hits = own
                .iter()
                .filter(|d| selects(&subset.labels, &pod_labels(d)))
                .count();
            if hits != 1 {
                say(format!(
                    "destination rule {name}: subset {} selects no pods of {service}",
                    subset.name
                ));
            }
        }
    }

    let gateway_names: BTreeSet<String> = objects
        .gateways
        .iter()
        .map(|g| name_of(&g.metadata))
        .collect();
    let mut routed_by_gateway = BTreeSet::new();
    for vs in &objects.virtual_services {
        let name = name_of(&vs.metadata);
        let at_gateway = vs.spec.gateways.iter().any(|g| gateway_names.contains(g));
        for route in &vs.spec.http {
            for dest in &route.route {
                let d = &dest.destination;
                check_destination(
                    &format!("virtual service {name}"),
                    &d.host,
                    d.port.number,
                    &mut say,
                );
                let subsets: Vec<&str> = objects
                    .destination_rules
                    .iter()
                    .filter(|dr| dr.spec.host == d.host)
                    .flat_map(|dr| dr.spec.subsets.iter().map(|s| s.name.as_str()))
                    .collect();
                if let Some(subset) = &d.subset {
                    if !subsets.contains(&subset.as_str()) {
                        say(format!(
                            "virtual service {name}: subset {subset} is not rendered"
                        ));
                    }
                }
                if at_gateway {
                    let service = d.host.split('.').next().unwrap_or_default().to_owned();
                    let prefix = StringMatch::Prefix(format!("/{service}/"));
                    let exact = StringMatch::Exact(format!("/{service}"));
                    let uris: Vec<_> = route.matches.iter().filter_map(|m| m.uri.clone()).collect();
                    if uris.contains(&prefix) && uris.contains(&exact) {
                        routed_by_gateway.insert(service);
                    }
                }
            }
        }
        if !at_gateway && vs.spec.gateways != ["mesh"] {
            say(format!(
                "virtual service {name}: gateways {:?} name no rendered gateway",
                vs.spec.gateways
            ));
        }
    }
    if routed_by_gateway != names {
        say(format!(
            "the gateway routes {routed_by_gateway:?}, not every service"
        ));
    }

    for policy in &objects.authorization_policies {
        let name = name_of(&policy.metadata);
        let hits = selected(objects, &policy.spec.selector.match_labels);
        // Every version of one service (one `app`), and nothing else.
        let apps: BTreeSet<String> = hits
            .iter()
            .filter_map(|d| pod_labels(d).get("app").cloned())
            .collect();
        if hits.is_empty() || apps.len() != 1 {
            say(format!(
                "authorization policy {name}: selects {} deployments",
                hits.len()
            ));
        }
        let principals: BTreeSet<String> = policy
            .spec
            .rules
            .iter()
            .flat_map(|r| &r.from)
            .flat_map(|f| f.source.principals.clone())
            .collect();
        let mut want: BTreeSet<String> = accounts
            .iter()
            .filter(|a| **a != name)
            .map(|a| format!("cluster.local/ns/{ns}/sa/{a}"))
            .collect();
        want.insert(ingress_principal());
        if principals != want {
            say(format!("authorization policy {name}: principals are not the other services and the gateway"));
        }
    }

    // One plugin per side of the sidecar, each telling the filter its side: CLIENT runs on
    // the outbound listener, SERVER on the inbound one.
    let mut sides: Vec<(Vec<WorkloadMode>, PluginDirection)> = objects
        .wasm_plugins
        .iter()
        .map(|p| {
            let modes = p.spec.matches.iter().map(|m| m.mode).collect();
            (modes, p.spec.plugin_config.direction)
        })
        .collect();
    sides.sort_by_key(|(modes, _)| modes.first().copied().map(|m| m as u8));
    let want = vec![
        (vec![WorkloadMode::Client], PluginDirection::Outbound),
        (vec![WorkloadMode::Server], PluginDirection::Inbound),
    ];
    if sides != want {
        say(format!(
            "wasm plugins: match modes and directions {sides:?}, want {want:?}"
        ));
    }
    for plugin in &objects.wasm_plugins {
        let hits = selected(objects, &plugin.spec.selector.match_labels);
        if hits.len() != objects.deployments.len() {
            say(format!(
                "wasm plugin selects {} of {} deployments",
                hits.len(),
                objects.deployments.len()
            ));
        }
    }
    problems
}
