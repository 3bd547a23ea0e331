//! Renders several topologies and checks that the objects agree with each other (see
//! `common::checks`), and that the checks catch a render whose references are broken.

use crate::common;

use common::checks::problems;
use common::{fake_module, parse, render};

fn topologies(module: &str) -> Vec<(&'static str, Vec<String>)> {
    let with = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = vec!["render".into(), "--wasm-file".into(), module.into()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    };
    vec![
        ("one service", with(&["--services", "1"])),
        ("defaults", with(&[])),
        ("twelve services", with(&["--services", "12"])),
        (
            "twelve services in shop from 9000",
            with(&[
                "--services",
                "12",
                "--namespace",
                "shop",
                "--base-port",
                "9000",
            ]),
        ),
        (
            "past z",
            with(&["--services", "30", "--base-port", "20000"]),
        ),
        (
            "names, namespace and ports",
            with(&[
                "--names",
                "web,api,db",
                "--namespace",
                "shop",
                "--base-port",
                "9100",
            ]),
        ),
        (
            "remote module",
            vec![
                "render".into(),
                "--services".into(),
                "4".into(),
                "--wasm-url".into(),
                "oci://ghcr.io/meshtally/filter:0.1.0".into(),
            ],
        ),
    ]
}

#[test]
fn every_reference_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let module = fake_module(dir.path());
    for (what, args) in topologies(module.to_str().unwrap()) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let objects = parse(&render(&args));
        let found = problems(&objects);
        assert!(found.is_empty(), "{what}: {found:#?}");
        let n = objects.deployments.len();
        assert_eq!(objects.services.len(), n, "{what}");
        assert_eq!(objects.service_accounts.len(), n, "{what}");
        assert_eq!(objects.destination_rules.len(), n, "{what}");
        assert_eq!(objects.authorization_policies.len(), n, "{what}");
        assert_eq!(objects.virtual_services.len(), n + 1, "{what}");
        assert_eq!(objects.gateways.len(), 1, "{what}");
        assert_eq!(objects.peer_authentications.len(), 1, "{what}");
        assert_eq!(objects.wasm_plugins.len(), 2, "{what}");
    }
}

#[test]
fn every_object_is_labelled_and_namespaced() {
    let dir = tempfile::tempdir().unwrap();
    let module = fake_module(dir.path());
    let stream = render(&[
        "render",
        "--namespace",
        "labels",
        "--wasm-file",
        module.to_str().unwrap(),
    ]);
    for doc in stream.split("---\n").filter(|d| !d.is_empty()) {
        assert!(
            doc.contains("    app.kubernetes.io/managed-by: meshtally\n"),
            "{doc}"
        );
        assert!(
            doc.contains("    app.kubernetes.io/part-of: meshtally\n"),
            "{doc}"
        );
        if !doc.starts_with("apiVersion: v1\nkind: Namespace\n") {
            assert!(doc.contains("\n  namespace: labels\n"), "{doc}");
        }
    }
}

#[test]
fn broken_references_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let module = fake_module(dir.path());
    let stream = render(&["render", "--wasm-file", module.to_str().unwrap()]);
    let tamperings = [
        // A route to a port no Service has.
        ("          number: 8001\n", "          number: 8101\n"),
        // A peer list missing a service.
        (
            ",service-c=http://service-c.istio-demo.svc.cluster.local:8002\n",
            "\n",
        ),
        // A principal that is no rendered ServiceAccount.
        (
            "        - cluster.local/ns/istio-demo/sa/service-b\n",
            "        - cluster.local/ns/istio-demo/sa/intruder\n",
        ),
        // A Service selecting nothing.
        (
            "  selector:\n    app: service-c\n  type: ClusterIP",
            "  selector:\n    app: service-x\n  type: ClusterIP",
        ),
        // A subset no pod carries.
        (
            "  - name: v1\n    labels:\n      version: v1\n",
            "  - name: v1\n    labels:\n      version: v2\n",
        ),
        // The gateway no longer routes service-a.
        (
            "    - uri:\n        exact: /service-a\n",
            "    - uri:\n        exact: /elsewhere\n",
        ),
        // The filter selecting no pods.
        (
            "      app.kubernetes.io/part-of: meshtally\n  match:",
            "      app.kubernetes.io/part-of: nothing\n  match:",
        ),
        // The outbound side's plugin told it is inbound.
        ("    direction: outbound\n", "    direction: inbound\n"),
        // Both plugins on the same side.
        ("  - mode: CLIENT\n", "  - mode: SERVER\n"),
    ];
    for (from, to) in tamperings {
        assert!(stream.contains(from), "fixture text not found: {from:?}");
        let tampered = stream.replacen(from, to, 1);
        assert!(
            !problems(&parse(&tampered)).is_empty(),
            "not caught: {from:?} -> {to:?}"
        );
    }
}
