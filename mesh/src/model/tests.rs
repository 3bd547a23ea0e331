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
