//! Golden renders: a few topologies rendered to stdout and compared byte for byte with
//! `tests/golden/<name>.yaml`. A difference fails the test; `UPDATE_GOLDEN=1 cargo test -p
//! meshtally-deployer --test it golden::` rewrites the files, to be reviewed in the diff.

use crate::common;

use std::path::{Path, PathBuf};

use common::{deployer_in, fake_module};

const DIGEST: &str = "4f2b8a1e0c9d7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa9988";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Renders from inside `dir` (so a relative module path is stable) and checks the golden file.
fn check(name: &str, dir: &Path, args: &[&str]) {
    let out = deployer_in(dir, args);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = golden_dir().join(format!("{name}.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &out.stdout).unwrap();
        return;
    }
    let want = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (create it with UPDATE_GOLDEN=1)", path.display()));
    if out.stdout != want {
        let got = String::from_utf8_lossy(&out.stdout);
        let want = String::from_utf8_lossy(&want);
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the length".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "{name}: render differs from {} at {line}; rerun with UPDATE_GOLDEN=1 if intended",
            path.display()
        );
    }
}

#[test]
fn default_mesh() {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    check(
        "default",
        dir.path(),
        &["render", "--wasm-file", "meshtally_filter.wasm"],
    );
}

#[test]
fn one_service_from_a_digest_pinned_image() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("oci://ghcr.io/meshtally/filter@sha256:{DIGEST}");
    check(
        "one-service-oci",
        dir.path(),
        &[
            "render",
            "--services",
            "1",
            "--namespace",
            "solo",
            "--base-port",
            "9000",
            "--replicas",
            "1",
            "--image",
            "registry.example/demo:dev",
            "--wasm-url",
            &url,
        ],
    );
}

#[test]
fn mesh_file_with_explicit_ports() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        format!(
            "namespace: shop\nreplicas: 3\nservices:\n  - name: web\n    port: 8080\n  \
             - name: api\n    port: 9090\n  - name: db\nbase_port: 7000\n\
             wasm_url: https://example.org/meshtally_filter.wasm\nwasm_sha256: {DIGEST}\n"
        ),
    )
    .unwrap();
    check("mesh-file", dir.path(), &["render", "--file", "mesh.yaml"]);
}

/// Every traffic rule: the issue's canary with a header match, timeout, retries, fault and
/// circuit breaker; a service whose versions share traffic (a broken one for outlier
/// detection); and a plain one.
#[test]
fn traffic_rules() {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    std::fs::write(
        dir.path().join("mesh.yaml"),
        // The mesh file tests/istio judges with Istio's code (traffic_test.go), plus the module.
        format!(
            "wasm_file: meshtally_filter.wasm\n{}",
            include_str!("../../../tests/istio/testdata/traffic-mesh.yaml")
        ),
    )
    .unwrap();
    check("traffic", dir.path(), &["render", "--file", "mesh.yaml"]);
}

/// The same rules in the Kubernetes Gateway API: the mesh file tests/istio judges against the
/// Istio-API render of itself (gatewayapi_test.go).
#[test]
fn gateway_api_rules() {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    std::fs::write(
        dir.path().join("mesh.yaml"),
        format!(
            "wasm_file: meshtally_filter.wasm\n{}",
            include_str!("../../../tests/istio/testdata/gateway-api-mesh.yaml")
        ),
    )
    .unwrap();
    check(
        "gateway-api",
        dir.path(),
        &["render", "--file", "mesh.yaml"],
    );
}

/// Calls that leave the mesh: the mesh file tests/istio judges with Istio's code and holds `up`
/// equal to istiod for (egress_test.go): ServiceEntries, the TLS-origination DestinationRule,
/// the VirtualServices with the entries' timeouts, the Sidecars of a callers list, and the
/// external hosts in the WasmPlugins and the apps' EXTERNAL.
#[test]
fn egress() {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    std::fs::write(
        dir.path().join("mesh.yaml"),
        format!(
            "wasm_file: meshtally_filter.wasm\n{}",
            include_str!("../../../tests/istio/testdata/egress-mesh.yaml")
        ),
    )
    .unwrap();
    check("egress", dir.path(), &["render", "--file", "mesh.yaml"]);
}

#[test]
fn same_input_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    let args = [
        "render",
        "--services",
        "40",
        "--wasm-file",
        "meshtally_filter.wasm",
    ];
    let first = deployer_in(dir.path(), &args).stdout;
    let second = deployer_in(dir.path(), &args).stdout;
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

/// Every mesh file in `examples/` is what the docs show (a YAML block of README.md or of a page
/// under docs/, verbatim, after the file's comment lines) and renders without error, so the
/// docs and the files the docs name (`-f examples/canary.yaml`) cannot drift apart.
#[test]
fn examples_are_the_docs_blocks_and_render() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let docs: Vec<String> = crate::common::documents()
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let body: String = text
            .lines()
            .skip_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let block = format!("```yaml\n{body}```");
        assert!(
            docs.iter().any(|doc| doc.contains(&block)),
            "{} is not a YAML block of README.md or of any docs/**/*.md ({} files read)",
            path.display(),
            docs.len()
        );
        let out = deployer_in(
            dir.path(),
            &[
                "render",
                "--wasm-file",
                "meshtally_filter.wasm",
                "-f",
                path.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 2, "only {seen} examples");
}
