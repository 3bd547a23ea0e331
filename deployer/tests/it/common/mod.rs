//! Helpers the integration tests share: running the `deployer` binary, a stand-in filter
//! module, and reading a rendered stream back into typed objects.

#![allow(dead_code)]

pub mod checks;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use meshtally_mesh::render::istio::{
    AuthorizationPolicy, DestinationRule, Gateway, PeerAuthentication, VirtualService, WasmPlugin,
};
use serde::Deserialize;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("deployer/ has a parent")
        .to_owned()
}

/// Every file below `dir` whose name ends in `.{ext}`, sorted.
pub fn files_below(dir: &Path, ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, ext, out);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, ext, &mut out);
    out.sort();
    out
}

/// `README.md` and every `docs/**/*.md`, as (path relative to the repository, text).
pub fn documents() -> Vec<(PathBuf, String)> {
    let root = workspace();
    std::iter::once(root.join("README.md"))
        .chain(files_below(&root.join("docs"), "md"))
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.strip_prefix(&root).unwrap().to_owned(), text)
        })
        .collect()
}

/// A tiny valid-looking module, so renders never depend on `make wasm` having run.
pub fn fake_module(dir: &Path) -> PathBuf {
    let path = dir.join("meshtally_filter.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").expect("write fake module");
    path
}

pub fn deployer(args: &[&str]) -> Output {
    deployer_in(&workspace(), args)
}

pub fn deployer_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deployer"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run deployer")
}

/// Runs a render that must succeed and returns its stdout.
pub fn render(args: &[&str]) -> String {
    let out = deployer(args);
    assert!(
        out.status.success(),
        "deployer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Every object of a render, by kind, in stream order.
#[derive(Default, Debug)]
pub struct Objects {
    pub namespaces: Vec<Namespace>,
    pub service_accounts: Vec<ServiceAccount>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub config_maps: Vec<ConfigMap>,
    pub gateways: Vec<Gateway>,
    pub virtual_services: Vec<VirtualService>,
    pub destination_rules: Vec<DestinationRule>,
    pub peer_authentications: Vec<PeerAuthentication>,
    pub authorization_policies: Vec<AuthorizationPolicy>,
    pub wasm_plugins: Vec<WasmPlugin>,
    pub count: usize,
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_norway::Value) -> T {
    serde_norway::from_value(value).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads a multi-document stream back. Every document must be a kind we render.
pub fn parse(stream: &str) -> Objects {
    let mut objects = Objects::default();
    for doc in serde_norway::Deserializer::from_str(stream) {
        let value = serde_norway::Value::deserialize(doc).expect("valid YAML document");
        let key = (
            value["apiVersion"].as_str().unwrap_or_default().to_owned(),
            value["kind"].as_str().unwrap_or_default().to_owned(),
        );
        objects.count += 1;
        match (key.0.as_str(), key.1.as_str()) {
            ("v1", "Namespace") => objects.namespaces.push(typed(value)),
            ("v1", "ServiceAccount") => objects.service_accounts.push(typed(value)),
            ("apps/v1", "Deployment") => objects.deployments.push(typed(value)),
            ("v1", "Service") => objects.services.push(typed(value)),
            ("v1", "ConfigMap") => objects.config_maps.push(typed(value)),
            ("networking.istio.io/v1", "Gateway") => objects.gateways.push(typed(value)),
            ("networking.istio.io/v1", "VirtualService") => {
                objects.virtual_services.push(typed(value))
            }
            ("networking.istio.io/v1", "DestinationRule") => {
                objects.destination_rules.push(typed(value))
            }
            ("security.istio.io/v1", "PeerAuthentication") => {
                objects.peer_authentications.push(typed(value))
            }
            ("security.istio.io/v1", "AuthorizationPolicy") => {
                objects.authorization_policies.push(typed(value))
            }
            ("extensions.istio.io/v1alpha1", "WasmPlugin") => {
                objects.wasm_plugins.push(typed(value))
            }
            other => panic!("unexpected document {other:?}"),
        }
    }
    objects
}

/// Runs `node tests/schema/validate.mjs` on `input`. Fails loudly, never skips, when Node or
/// the schema packages are missing.
pub fn validate_schemas(input: &str) -> Output {
    use std::io::Write as _;
    let schema_dir = workspace().join("tests/schema");
    assert!(
        schema_dir.join("node_modules").is_dir(),
        "tests/schema/node_modules is missing: run `npm ci --prefix tests/schema` first"
    );
    let mut child = Command::new("node")
        .arg(schema_dir.join("validate.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`node` is needed for the schema tests (Node 20+)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let text = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("node ran");
    writer
        .join()
        .expect("writer thread")
        .expect("write to node");
    out
}
