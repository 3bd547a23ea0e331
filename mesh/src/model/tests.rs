//! Checks of `Mesh::from_input`: defaults, and one refusal per cause.

use super::*;

fn listed(entries: &[(&str, Option<u64>)]) -> Option<ServiceChoice> {
    Some(ServiceChoice::Listed(
        entries
            .iter()
            .map(|(name, port)| ServiceEntry {
                port: *port,
                ..ServiceEntry::named((*name).to_owned())
            })
            .collect(),
    ))
}

fn err(input: MeshInput) -> String {
    Mesh::from_input(input).unwrap_err().to_string()
}

#[test]
fn defaults_are_three_services_on_8000_to_8002_in_istio_demo() {
    let mesh = Mesh::from_input(MeshInput::default()).unwrap();
    assert_eq!(mesh.namespace, "istio-demo");
    let got: Vec<_> = mesh
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.port))
        .collect();
    assert_eq!(
        got,
        [
            ("service-a", 8000),
            ("service-b", 8001),
            ("service-c", 8002)
        ]
    );
    assert_eq!(mesh.replicas, 2);
    assert_eq!(
        mesh.wasm,
        WasmSource::ConfigMap {
            path: DEFAULT_WASM_FILE.into()
        }
    );
    assert_eq!(
        mesh.fqdn(&mesh.services[0]),
        "service-a.istio-demo.svc.cluster.local"
    );
    assert_eq!(
        mesh.principal(&mesh.services[2]),
        "cluster.local/ns/istio-demo/sa/service-c"
    );
}

#[test]
fn explicit_ports_and_default_ports_mix() {
    let mesh = Mesh::from_input(MeshInput {
        services: listed(&[("web", Some(9000)), ("api", None)]),
        base_port: Some(7000),
        ..MeshInput::default()
    })
    .unwrap();
    assert_eq!(mesh.services[0].port, 9000);
    assert_eq!(mesh.services[1].port, 7001);
}

#[test]
fn refusals() {
    let cases: Vec<(MeshInput, &str)> = vec![
        (
            MeshInput {
                services: Some(ServiceChoice::Count(0)),
                ..MeshInput::default()
            },
            "at least one service",
        ),
        (
            MeshInput {
                services: listed(&[]),
                ..MeshInput::default()
            },
            "at least one service",
        ),
        (
            MeshInput {
                services: Some(ServiceChoice::Count(1001)),
                ..MeshInput::default()
            },
            "1001 services are more than the 1000",
        ),
        (
            MeshInput {
                services: listed(&[("a", None), ("b", None), ("a", None)]),
                ..MeshInput::default()
            },
            "service name `a` is given twice",
        ),
        (
            MeshInput {
                services: listed(&[("Service_A", None)]),
                ..MeshInput::default()
            },
            "`Service_A` is not a DNS-1035 label",
        ),
        (
            MeshInput {
                services: listed(&[("meshtally-ingress", None)]),
                ..MeshInput::default()
            },
            "prefix `meshtally-`",
        ),
        (
            MeshInput {
                namespace: Some("Demo".into()),
                ..MeshInput::default()
            },
            "namespace `Demo` is not a DNS-1123 label",
        ),
        (
            MeshInput {
                base_port: Some(65534),
                ..MeshInput::default()
            },
            "service `service-c`: port 65536 is outside 1-65535",
        ),
        (
            MeshInput {
                base_port: Some(0),
                ..MeshInput::default()
            },
            "base port 0 is outside 1-65535",
        ),
        (
            MeshInput {
                base_port: Some(14999),
                ..MeshInput::default()
            },
            "service `service-b`: port 15000 is reserved by the Istio sidecar (15000-15090)",
        ),
        (
            MeshInput {
                services: listed(&[("a", Some(15090))]),
                ..MeshInput::default()
            },
            "port 15090 is reserved",
        ),
        (
            MeshInput {
                services: listed(&[("a", Some(9000)), ("b", Some(9000))]),
                ..MeshInput::default()
            },
            "services `a` and `b` both use port 9000",
        ),
        (
            MeshInput {
                services: listed(&[("a", Some(8001)), ("b", None)]),
                ..MeshInput::default()
            },
            "services `a` and `b` both use port 8001",
        ),
        (
            MeshInput {
                replicas: Some(1 << 31),
                ..MeshInput::default()
            },
            "replicas 2147483648",
        ),
        (
            MeshInput {
                image: Some("a b".into()),
                ..MeshInput::default()
            },
            "image `a b`",
        ),
        (
            MeshInput {
                wasm_sha256: Some("ab".into()),
                ..MeshInput::default()
            },
            "needs a wasm url",
        ),
        (
            MeshInput {
                wasm_url: Some("http://x/f.wasm".into()),
                ..MeshInput::default()
            },
            "must start with oci:// or https://",
        ),
    ];
    for (input, want) in cases {
        let got = err(input);
        assert!(got.contains(want), "got {got:?}, want {want:?}");
        assert!(!got.contains('\n'), "{got:?}");
        assert!(
            got.starts_with(|c: char| !c.is_uppercase()),
            "lowercase: {got:?}"
        );
    }
}

#[test]
fn a_thousand_services_fit() {
    let mesh = Mesh::from_input(MeshInput {
        services: Some(ServiceChoice::Count(1000)),
        base_port: Some(20000),
        ..MeshInput::default()
    })
    .unwrap();
    assert_eq!(mesh.services.len(), 1000);
    assert_eq!(mesh.services[999].port, 20999);
}

fn yaml_err(text: &str) -> String {
    Mesh::from_input(MeshInput::from_yaml(text).unwrap())
        .unwrap_err()
        .to_string()
}

#[test]
fn external_entries_and_the_outbound_policy() {
    let mesh = Mesh::from_input(
        MeshInput::from_yaml(
            "outbound_policy: registry_only\nexternal:\n  - {name: payments, host: api.payments.example, port: 443, protocol: https, tls_origination: true, timeout: 3s, callers: [service-b]}\n  - {name: weather, host: weather.example.org, port: 8080, protocol: http}\n",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(mesh.outbound_policy, OutboundPolicy::RegistryOnly);
    let p = &mesh.external[0];
    assert_eq!((p.app_port(), p.port, p.timeout.0), (80, 443, 3000));
    assert!(p.admits("service-b") && !p.admits("service-a"));
    assert_eq!(mesh.external[1].app_port(), 8080);
    assert!(mesh.external[1].admits("service-a"));
    assert_eq!(
        Mesh::from_input(MeshInput::default())
            .unwrap()
            .outbound_policy,
        OutboundPolicy::AllowAny
    );
}

/// Every bad entry: one line naming the entry and the field.
#[test]
fn bad_external_entries_are_named_with_their_field() {
    let cases = [
        (
            "{name: Pay, host: a.example, port: 80, protocol: http}",
            "external `Pay`: name: not a DNS-1035 label",
        ),
        (
            "{name: service-a, host: a.example, port: 80, protocol: http}",
            "external `service-a`: name: is also a service of the mesh",
        ),
        (
            "{name: p, host: localhost, port: 80, protocol: http}",
            "external `p`: host: `localhost` is not a DNS name",
        ),
        (
            "{name: p, host: '*.example.com', port: 80, protocol: http}",
            "external `p`: host: `*.example.com` is not a DNS name",
        ),
        (
            "{name: p, host: 10.0.0.1, port: 80, protocol: http}",
            "external `p`: host: `10.0.0.1` is not a DNS name",
        ),
        (
            "{name: p, host: b.istio-demo.svc.cluster.local, port: 80, protocol: http}",
            "external `p`: host: `b.istio-demo.svc.cluster.local` is inside the mesh's own domain",
        ),
        (
            "{name: p, host: a.example, port: 0, protocol: http}",
            "external `p`: port: 0 is outside 1-65535",
        ),
        (
            "{name: p, host: a.example, port: 15001, protocol: http}",
            "external `p`: port: 15001 is reserved",
        ),
        (
            "{name: p, host: a.example, port: 8001, protocol: https}",
            "external `p`: port: 8001 is service `service-b`'s port",
        ),
        (
            "{name: p, host: a.example, port: 80, protocol: http, tls_origination: true}",
            "external `p`: tls_origination: the server speaks plain http",
        ),
        (
            "{name: p, host: a.example, port: 443, protocol: tls, tls_origination: true}",
            "external `p`: tls_origination: protocol tls is not HTTP",
        ),
        (
            "{name: p, host: a.example, port: 443, protocol: https, timeout: 1s}",
            "external `p`: timeout: the sidecar sees no requests",
        ),
        (
            "{name: p, host: a.example, port: 443, protocol: https, ca_certificates: /ca.pem}",
            "external `p`: ca_certificates: only a sidecar that originates TLS",
        ),
        (
            "{name: p, host: a.example, port: 80, protocol: http, callers: [service-z]}",
            "external `p`: callers[0]: no service `service-z` in the mesh",
        ),
    ];
    for (entry, want) in cases {
        let got = yaml_err(&format!(
            "outbound_policy: registry_only\nexternal:\n  - {entry}\n"
        ));
        assert!(got.starts_with(want), "{entry}: {got}");
        assert!(!got.contains('\n'), "{got}");
    }
    let got = yaml_err("external:\n  - {name: p, host: a.example, port: 80, protocol: http, callers: [service-a]}\n");
    assert!(
        got.starts_with("external `p`: callers: under outbound_policy: allow_any"),
        "{got}"
    );
    let got = yaml_err("external:\n  - {name: p, host: a.example, port: 80, protocol: http}\n  - {name: q, host: a.example, port: 81, protocol: http}\n");
    assert!(
        got.starts_with("external `q`: host: `a.example` is declared by two entries"),
        "{got}"
    );
    let syntax = MeshInput::from_yaml(
        "external:\n  - {name: p, host: a.example, port: 80, protocol: ftp}\n",
    )
    .unwrap_err();
    assert!(
        syntax.to_string().contains("unknown variant `ftp`"),
        "{syntax}"
    );
}

#[test]
fn a_refused_external_entry_is_located_at_its_field() {
    let problems = Mesh::check(
        MeshInput::from_yaml(
            "external:\n  - {name: p, host: a.example, port: 80, protocol: http}\n  - name: q\n    host: bad_host\n    port: 80\n    protocol: http\n",
        )
        .unwrap(),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].at.to_string(), "external[1].host");
}
