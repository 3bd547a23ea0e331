//! `deployer push` against a real registry (Debian's `docker-registry`, started here on
//! 127.0.0.1 with its storage in a temp dir), read back with an independent client (`skopeo`):
//! the manifest digest is the one printed, the last layer is a tar.gz holding `plugin.wasm`
//! byte-identical to the module, with the media types and the compat annotation Istio's image
//! fetcher accepts. Also: credentials from the docker config, HTTPS verified against the trusted
//! roots, and the errors a user meets.
//!
//! Needs `docker-registry` and `skopeo` on PATH (`deployer/tests/setup-registry.sh` installs
//! them); without them the tests fail and say so, they never skip.

use crate::common;
use crate::registry;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use registry::{sha256, skopeo, Mode, Registry, PASSWORD, USER};

/// The built filter if there is one, else the smallest valid module; copied so a concurrent
/// build cannot change it under the test.
fn module(dir: &Path) -> (PathBuf, Vec<u8>) {
    let built = common::workspace().join(meshtally_envoy::locate::WORKSPACE_MODULE);
    let bytes = std::fs::read(&built)
        .ok()
        .filter(|b| b.starts_with(b"\0asm"))
        .unwrap_or_else(|| b"\0asm\x01\0\0\0".to_vec());
    let path = dir.join("plugin-under-test.wasm");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// `deployer push` with a docker config folder of its own.
fn push(docker_config: &Path, args: &[&str]) -> Output {
    push_with(docker_config, args, None)
}

/// `push`, trusting the CA in `ca` (through SSL_CERT_FILE, which the system root store reads).
fn push_with(docker_config: &Path, args: &[&str], ca: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deployer"));
    command
        .arg("push")
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        command.env("SSL_CERT_FILE", ca);
    }
    command.output().expect("run deployer push")
}

/// The value after `label` on its stdout line.
fn field<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {stdout}"))
        .trim()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

#[test]
fn pushed_image_is_what_istio_fetches() {
    let registry = Registry::start(Mode::Open);
    let work = tempfile::tempdir().unwrap();
    let (module_path, module_bytes) = module(work.path());
    let docker = work.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let image = registry.image("meshtally/filter:test");
    let out = push(
        &docker,
        &[
            "--image",
            &image,
            "--insecure",
            "--wasm",
            module_path.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        registry.log()
    );
    let digest = field(&stdout, "digest:").to_owned();
    let url = field(&stdout, "wasm-url:").to_owned();
    assert_eq!(field(&stdout, "module sha256:"), sha256(&module_bytes));
    let repo = format!("127.0.0.1:{}/meshtally/filter", registry.port);
    assert_eq!(url, format!("oci://{repo}@{digest}"));

    // The manifest as the registry serves it, through skopeo.
    let reference = format!("docker://{image}");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(format!("sha256:{}", sha256(&raw)), digest);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );

    // The whole image copied out to an OCI layout, and the module taken from its last layer the
    // way Istio's fetcher does.
    let layout = work.path().join("layout");
    let policy = work.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let target = format!("oci:{}:test", layout.display());
    skopeo(&[
        "--policy",
        policy.to_str().unwrap(),
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &reference,
        &target,
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&layout, &digest)).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let last = layers.last().expect("a layer");
    assert_eq!(
        last["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let compressed = blob(&layout, last["digest"].as_str().unwrap());
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut tar_bytes)
        .expect("the layer is gzip");
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut plugin = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().file_name() == Some("plugin.wasm".as_ref()) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            plugin = Some(bytes);
        }
    }
    assert!(
        plugin.as_deref() == Some(&module_bytes[..]),
        "plugin.wasm in the last layer is not the module"
    );
    // The config names the uncompressed layer, as image tools check on pull.
    let config: serde_json::Value = serde_json::from_slice(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", sha256(&tar_bytes)).as_str()
    );

    // The printed url is what render takes: the WasmPlugin pins the image digest.
    let out = common::deployer(&["render", "--wasm-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout);
    let hex = digest.strip_prefix("sha256:").unwrap();
    // The renderer writes a string plain only when it starts with a letter, so a digest that
    // starts with a digit is quoted; the module's digest changes with every build (a digest
    // starting `f0ee…` failed CI), so take either spelling of the same YAML string.
    assert!(
        rendered.contains(&format!("  url: {url}\n  sha256: '{hex}'\n"))
            || rendered.contains(&format!("  url: {url}\n  sha256: {hex}\n")),
        "{rendered}"
    );

    // Pushing the same module again gives the same digest: the image is reproducible.
    let again = push(
        &docker,
        &[
            "--image",
            &registry.image("meshtally/filter:again"),
            "--insecure",
            "--wasm",
            module_path.to_str().unwrap(),
            "--pull-registry",
            "kind-registry:5000",
        ],
    );
    assert!(again.status.success());
    let again = String::from_utf8_lossy(&again.stdout).into_owned();
    assert_eq!(field(&again, "digest:"), digest);
    assert_eq!(
        field(&again, "wasm-url:"),
        format!("oci://kind-registry:5000/meshtally/filter@{digest}")
    );
}

/// `deployer push … | head -c 0`: the image is pushed, and the closed pipe that takes the summary
/// is a normal end (it panicked in `println!` before).
#[test]
fn push_into_a_closed_pipe_ends_quietly() {
    let registry = Registry::start(Mode::Open);
    let work = tempfile::tempdir().unwrap();
    let (module_path, _) = module(work.path());
    let docker = work.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let image = registry.image("meshtally/filter:pipe");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_deployer"))
        .args(["push", "--image", &image, "--insecure", "--wasm"])
        .arg(&module_path)
        .env("DOCKER_CONFIG", &docker)
        .stdin(Stdio::null())
        .stdout(writer)
        .output()
        .expect("run deployer push");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{}", registry.log());
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
}

#[test]
fn credentials_come_from_the_docker_config() {
    let registry = Registry::start(Mode::Htpasswd);
    let work = tempfile::tempdir().unwrap();
    let (module_path, _) = module(work.path());
    let docker = work.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let image = registry.image("meshtally/filter:auth");
    let args = [
        "--image",
        image.as_str(),
        "--insecure",
        "--wasm",
        module_path.to_str().unwrap(),
    ];

    let denied = push(&docker, &args);
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "error: registry 127.0.0.1:{port} refused the push (401: authentication required): \
             log in with `docker login 127.0.0.1:{port}` (push reads $DOCKER_CONFIG/config.json \
             or ~/.docker/config.json)",
            port = registry.port
        )
    );

    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"http://127.0.0.1:{}":{{"auth":"{auth}"}}}}}}"#,
            registry.port
        ),
    )
    .unwrap();
    let out = push(&docker, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = field(&String::from_utf8_lossy(&out.stdout), "digest:").to_owned();
    let creds = format!("{USER}:{PASSWORD}");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{image}"),
    ]);
    assert_eq!(format!("sha256:{}", sha256(&raw)), digest);
}

#[test]
fn registry_errors_say_what_to_do() {
    let registry = Registry::start(Mode::Open);
    let work = tempfile::tempdir().unwrap();
    let (module_path, _) = module(work.path());
    let wasm = module_path.to_str().unwrap();
    let image = registry.image("meshtally/filter:x");

    // TLS to a plain-HTTP registry.
    let out = push(work.path(), &["--image", &image, "--wasm", wasm]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "error: cannot reach registry 127.0.0.1:{} over https:",
            registry.port
        )) && last.ends_with("(a plain-HTTP registry, like a local one, needs --insecure)"),
        "{stderr}"
    );

    // Nothing built: one line, before any network.
    let missing = work.path().join("nope.wasm");
    let out = push(
        work.path(),
        &["--image", &image, "--wasm", missing.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: wasm module {} not found: build it with `make wasm`, or pass --wasm PATH\n",
            missing.display()
        )
    );
}

#[test]
fn https_registries_are_verified_against_the_trusted_roots() {
    let registry = Registry::start(Mode::Tls);
    let work = tempfile::tempdir().unwrap();
    let (module_path, _) = module(work.path());
    let image = registry.image("meshtally/filter:tls");
    let args = [
        "--image",
        image.as_str(),
        "--wasm",
        module_path.to_str().unwrap(),
    ];

    // A CA this machine does not trust: refused, and told why.
    let out = push(work.path(), &args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("over https:")
            && last.contains("invalid peer certificate")
            && last.ends_with("SSL_CERT_FILE can name one)"),
        "{stderr}"
    );

    // Trusted: pushed over TLS, and skopeo reads it back the same.
    let out = push_with(work.path(), &args, Some(&registry.ca()));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        registry.log()
    );
    let digest = field(&String::from_utf8_lossy(&out.stdout), "digest:").to_owned();
    let certs = work.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(registry.ca(), certs.join("ca.crt")).unwrap();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        certs.to_str().unwrap(),
        &format!("docker://{image}"),
    ]);
    assert_eq!(format!("sha256:{}", sha256(&raw)), digest);
}
