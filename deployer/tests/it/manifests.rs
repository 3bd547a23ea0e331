//! `manifests/` must be exactly what `deployer render --output manifests` writes for the
//! defaults. The generated ConfigMap (the module's bytes, git-ignored) is the one file left
//! out of the comparison; every other file, including kustomization.yaml and .gitignore, is
//! compared byte for byte, and a file in manifests/ that the render does not write fails too.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{deployer, fake_module, workspace};
use meshtally_mesh::render::FILTER_CONFIGMAP_FILE;

/// Every file under `root`, by `/`-separated relative path.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.insert(rel.join("/"), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out.remove(FILTER_CONFIGMAP_FILE);
    out
}

fn render_defaults(dir: &Path) -> std::path::PathBuf {
    let module = fake_module(dir);
    let target = dir.join("manifests");
    let out = deployer(&[
        "render",
        "--wasm-file",
        module.to_str().unwrap(),
        "--output",
        target.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    target
}

#[test]
fn manifests_folder_matches_a_fresh_render() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = tree(&render_defaults(dir.path()));
    let committed = tree(&workspace().join("manifests"));
    let stale: Vec<_> = committed
        .keys()
        .filter(|k| !fresh.contains_key(*k))
        .collect();
    let missing: Vec<_> = fresh
        .keys()
        .filter(|k| !committed.contains_key(*k))
        .collect();
    let changed: Vec<_> = fresh
        .iter()
        .filter(|(k, v)| committed.get(*k).is_some_and(|c| c != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        stale.is_empty() && missing.is_empty() && changed.is_empty(),
        "manifests/ drifted from `deployer render --output manifests` \
         (run `make manifests`): stale {stale:?}, missing {missing:?}, changed {changed:?}"
    );
}

/// The folder is a valid kustomization that yields every rendered document. `kubectl
/// kustomize` needs no cluster.
#[test]
fn kubectl_kustomize_builds_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let target = render_defaults(dir.path());
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&target)
        .output()
        .expect("`kubectl` is needed to check the kustomization (`kubectl kustomize`)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = String::from_utf8(out.stdout).unwrap();
    let documents = built.split("\n---\n").count();
    // Namespace, ConfigMap, the two WasmPlugins (outbound, inbound), PeerAuthentication,
    // gateway and its routes, and per service an AuthorizationPolicy, ServiceAccount,
    // Deployment, Service, DestinationRule and VirtualService.
    assert_eq!(documents, 7 + 3 * 6, "{built}");
}
