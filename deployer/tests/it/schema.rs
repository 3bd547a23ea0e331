//! Every rendered document, for several topologies, validated against the published
//! Kubernetes and Istio schemas by `tests/schema/validate.mjs` (npm `kubernetes-models` and
//! `@kubernetes-models/istio`). Needs Node and `npm ci --prefix tests/schema`; without them the
//! tests fail and say so, rather than pass unchecked.

use crate::common;

use common::{fake_module, parse, render, validate_schemas};

/// Validates `stream`, expecting success and the count of documents it holds.
fn valid(what: &str, stream: &str) {
    let out = validate_schemas(stream);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: schema problems:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = parse(stream).count;
    assert_eq!(
        stdout.trim(),
        format!("validated {count} documents, 0 problems"),
        "{what}"
    );
}

#[test]
fn rendered_documents_match_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let module = fake_module(dir.path());
    let module = module.to_str().unwrap();
    let mesh_file = dir.path().join("mesh.yaml");
    std::fs::write(
        &mesh_file,
        "namespace: shop\nservices:\n  - name: web\n    port: 80\n  - name: api\n    port: 9090\n  - db\n",
    )
    .unwrap();
    let topologies: Vec<(&str, Vec<&str>)> = vec![
        ("1 service", vec!["--services", "1"]),
        ("3 services", vec![]),
        ("12 services", vec!["--services", "12"]),
        (
            "12 services in shop from 9000",
            vec![
                "--services",
                "12",
                "--namespace",
                "shop",
                "--base-port",
                "9000",
            ],
        ),
        (
            "custom namespace",
            vec!["--namespace", "team-7", "--services", "2"],
        ),
        (
            "custom ports",
            vec!["--base-port", "30000", "--services", "5"],
        ),
        ("mesh file", vec!["--file", mesh_file.to_str().unwrap()]),
    ];
    for (what, args) in topologies {
        let mut all = vec!["render", "--wasm-file", module];
        all.extend(args);
        valid(what, &render(&all));
    }
    let digest = "0".repeat(64);
    let url = format!("oci://ghcr.io/meshtally/filter@sha256:{digest}");
    valid(
        "remote module",
        &render(&["render", "--services", "3", "--wasm-url", &url]),
    );
}

/// The PodMonitor `render` writes beside the manifests, against the Prometheus Operator's
/// published CRD schema (npm `@kubernetes-models/prometheus-operator`), and the access-log
/// EnvoyFilter against Istio's.
#[test]
fn the_pod_monitor_matches_the_operator_schema() {
    let dir = tempfile::tempdir().unwrap();
    let module = fake_module(dir.path());
    let out = dir.path().join("out");
    for namespace in ["istio-demo", "shop"] {
        render(&[
            "render",
            "--wasm-file",
            module.to_str().unwrap(),
            "--namespace",
            namespace,
            "--output",
            out.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(out.join("monitoring/podmonitor.yaml")).unwrap();
        assert!(text.contains("kind: PodMonitor"), "{text}");
        let checked = validate_schemas(&text);
        assert!(
            checked.status.success(),
            "{namespace}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&checked.stdout).trim(),
            "validated 1 documents, 0 problems"
        );
        // The same document with a relabeling action the operator does not know is refused.
        let broken = text.replacen("action: keep", "action: keeep", 1);
        assert!(!validate_schemas(&broken).status.success());
        // The access-log EnvoyFilter, against Istio's networking.istio.io/v1alpha3 schema.
        let filter = std::fs::read_to_string(out.join("monitoring/access-log.yaml")).unwrap();
        let checked = validate_schemas(&filter);
        assert!(
            checked.status.success(),
            "{namespace}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let broken = filter.replacen("operation: MERGE", "operation: MERGED", 1);
        assert!(!validate_schemas(&broken).status.success());
    }
}

#[test]
fn a_broken_document_fails_validation() {
    let dir = tempfile::tempdir().unwrap();
    let module = fake_module(dir.path());
    let stream = render(&["render", "--wasm-file", module.to_str().unwrap()]);
    let cases = [
        // A port number where the schema wants an integer.
        ("    port: 8000\n", "    port: eight-thousand\n"),
        // An enum value Istio does not define.
        ("    mode: STRICT\n", "    mode: STRICTEST\n"),
        // A WasmPlugin phase Istio does not define.
        ("  phase: STATS\n", "  phase: LAST\n"),
        // A kind the validator has no schema for counts as a failure, never a skip.
        ("kind: Gateway\n", "kind: Gateway2\n"),
    ];
    for (from, to) in cases {
        assert!(stream.contains(from), "fixture text not found: {from:?}");
        let out = validate_schemas(&stream.replacen(from, to, 1));
        assert!(!out.status.success(), "not caught: {from:?} -> {to:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("document "), "{stderr}");
    }
}
