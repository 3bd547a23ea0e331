//! What a running local mesh cannot take live: `deployer reload` publishes a mesh file's
//! traffic rules as new xDS, but every other field of the model (namespace, services, ports,
//! versions, mTLS, fail strategy, replicas, image, module) shapes processes, certificates or
//! listeners, so a change to one of them needs a restart. The API the rules are rendered in
//! (`api`) shapes nothing local. One pure comparison of two meshes.

use super::{FailStrategy, Mesh, Service};

/// The first difference between `running` and `wanted` other than their services' live traffic
/// rules (weights, header matches, timeout, retries, fault, circuit breaker), in words
/// (`the namespace changed (a -> b)`), or `None` when the live rules are all that changed.
pub fn needs_restart(running: &Mesh, wanted: &Mesh) -> Option<String> {
    let changed = |what: &str, old: String, new: String| {
        (old != new).then(|| format!("{what} changed ({old} -> {new})"))
    };
    let names = |m: &Mesh| list(m.services.iter().map(|s| s.name.as_str()));
    changed(
        "the namespace",
        running.namespace.clone(),
        wanted.namespace.clone(),
    )
    .or_else(|| changed("the services", names(running), names(wanted)))
    .or_else(|| {
        running
            .services
            .iter()
            .zip(&wanted.services)
            .find_map(|(old, new)| service(old, new))
    })
    .or_else(|| {
        changed(
            "the mTLS mode",
            format!("{:?}", running.mtls),
            format!("{:?}", wanted.mtls),
        )
    })
    .or_else(|| {
        changed(
            "the fail strategy",
            format!("{:?}", FailStrategy::or_default(running.fail_strategy)),
            format!("{:?}", FailStrategy::or_default(wanted.fail_strategy)),
        )
    })
    .or_else(|| {
        changed(
            "the trace sampling",
            running.sampling.to_string(),
            wanted.sampling.to_string(),
        )
    })
    .or_else(|| {
        changed(
            "the replicas",
            running.replicas.to_string(),
            wanted.replicas.to_string(),
        )
    })
    .or_else(|| changed("the image", running.image.clone(), wanted.image.clone()))
    .or_else(|| {
        // The outside servers, their certificates and every sidecar's filter config.
        changed(
            "the outbound policy",
            format!("{:?}", running.outbound_policy),
            format!("{:?}", wanted.outbound_policy),
        )
    })
    .or_else(|| {
        (running.external != wanted.external).then(|| "the external services changed".to_owned())
    })
    .or_else(|| {
        (running.wasm != wanted.wasm).then(|| {
            "the filter module's source changed (`deployer reload --wasm FILE` loads a new module)"
                .to_owned()
        })
    })
}

/// A service's port and versions (names and the status each version's app fails with): each
/// version is a process of its own.
fn service(old: &Service, new: &Service) -> Option<String> {
    let versions = |s: &Service| list(s.traffic.versions.iter().map(|v| v.name.as_str()));
    let statuses = |s: &Service| {
        // The status, then what else the version's app does differently.
        list(s.traffic.versions.iter().map(|v| {
            let mut parts = vec![v.fail_status.map_or("none".to_owned(), |s| s.to_string())];
            parts.extend(v.fail_percent.map(|p| format!("{p}%")));
            parts.extend(v.fail_from.as_ref().map(|f| format!("from {f}")));
            parts.extend(v.delay.map(|d| format!("delay {}ms", d.0)));
            parts.join(" ")
        }))
    };
    let name = &new.name;
    let changed = |what: &str, before: String, after: String| {
        (before != after).then(|| format!("{name}'s {what} changed ({before} -> {after})"))
    };
    changed("port", old.port.to_string(), new.port.to_string())
        .or_else(|| changed("versions", versions(old), versions(new)))
        .or_else(|| changed("failing statuses", statuses(old), statuses(new)))
}

fn list<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MeshInput, MtlsMode, ServiceChoice, ServiceEntry};

    fn mesh(edit: impl FnOnce(&mut MeshInput)) -> Mesh {
        let mut input = MeshInput {
            services: Some(ServiceChoice::Listed(vec![
                ServiceEntry::named("a".to_owned()),
                ServiceEntry::named("b".to_owned()),
            ])),
            ..MeshInput::default()
        };
        edit(&mut input);
        Mesh::from_input(input).unwrap()
    }

    #[test]
    fn traffic_rules_alone_are_live() {
        let running = mesh(|_| {});
        let mut wanted = running.clone();
        wanted.services[1].traffic.timeout = crate::model::traffic::Millis(1234);
        wanted.services[0].traffic.versions[0].weight = Some(100);
        assert_eq!(needs_restart(&running, &wanted), None);
        assert_eq!(needs_restart(&running, &running), None);
    }

    #[test]
    fn every_other_field_needs_a_restart() {
        let running = mesh(|_| {});
        let cases: Vec<(Mesh, &str)> = vec![
            (
                mesh(|m| m.namespace = Some("other".to_owned())),
                "the namespace changed (istio-demo -> other)",
            ),
            (
                mesh(|m| {
                    m.services = Some(ServiceChoice::Listed(vec![ServiceEntry::named(
                        "a".to_owned(),
                    )]))
                }),
                "the services changed (a, b -> a)",
            ),
            (
                mesh(|m| m.base_port = Some(9000)),
                "a's port changed (8000 -> 9000)",
            ),
            (
                mesh(|m| m.mtls = Some(MtlsMode::Permissive)),
                "the mTLS mode changed (Strict -> Permissive)",
            ),
            (
                mesh(|m| m.fail_strategy = Some(FailStrategy::FailClose)),
                "the fail strategy changed (FailOpen -> FailClose)",
            ),
            (
                mesh(|m| m.replicas = Some(3)),
                "the replicas changed (2 -> 3)",
            ),
            (
                mesh(|m| m.image = Some("registry.test/demo:1".to_owned())),
                "the image changed",
            ),
        ];
        for (wanted, expected) in cases {
            let said = needs_restart(&running, &wanted).unwrap_or_default();
            assert!(said.starts_with(expected), "{said:?} for {expected:?}");
        }
        let mut versions = running.clone();
        versions.services[0].traffic.versions[0].name = "v9".to_owned();
        assert_eq!(
            needs_restart(&running, &versions).as_deref(),
            Some("a's versions changed (v1 -> v9)")
        );
        let mut failing = running.clone();
        failing.services[1].traffic.versions[0].fail_status = Some(503);
        assert_eq!(
            needs_restart(&running, &failing).as_deref(),
            Some("b's failing statuses changed (none -> 503)")
        );
        let mut slower = running.clone();
        slower.services[1].traffic.versions[0].delay = Some(crate::model::traffic::Millis(100));
        assert_eq!(
            needs_restart(&running, &slower).as_deref(),
            Some("b's failing statuses changed (none -> none delay 100ms)")
        );
        let mut module = running.clone();
        module.wasm = crate::model::WasmSource::ConfigMap {
            path: "elsewhere.wasm".into(),
        };
        assert!(needs_restart(&running, &module)
            .unwrap_or_default()
            .starts_with("the filter module's source changed"));
    }
}
