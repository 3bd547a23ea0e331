//! `deployer push --service-image` against a real registry (Debian's `docker-registry` on
//! 127.0.0.1), read back with `skopeo`: deployer finds the checkout's static (musl) demo-service
//! (`make unit` builds it first), packs and pushes it; the pulled image's layers, unpacked into a folder, hold a binary
//! that runs from there and answers `/info`; its config runs it as 65532 with the port exposed;
//! and the same build pushed twice has the same digest.

use crate::common;
use crate::registry;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use registry::{sha256, skopeo, Mode, Registry};

fn push(docker_config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deployer"))
        .arg("push")
        .args(args)
        .current_dir(common::workspace())
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null())
        .output()
        .expect("run deployer push")
}

fn field<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {stdout}"))
        .trim()
}

/// A child process killed when dropped, also when the test panics.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn service_image_runs_from_its_layers_and_is_reproducible() {
    let registry = Registry::start(Mode::Open);
    let work = tempfile::tempdir().unwrap();
    let docker = work.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let image = registry.image("meshtally/demo-service:test");
    let out = push(&docker, &["--service-image", &image, "--insecure"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        registry.log()
    );
    let digest = field(&stdout, "digest:").to_owned();
    let repo = format!("127.0.0.1:{}/meshtally/demo-service", registry.port);
    assert_eq!(field(&stdout, "image:"), format!("{repo}@{digest}"));
    assert!(
        stdout.contains(&format!("deployer apply --image {repo}@{digest}")),
        "{stdout}"
    );

    // Pulled back by skopeo into an OCI layout.
    let reference = format!("docker://{image}");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(format!("sha256:{}", sha256(&raw)), digest);
    let layout = work.path().join("layout");
    let policy = work.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    skopeo(&[
        "--policy",
        policy.to_str().unwrap(),
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &reference,
        &format!("oci:{}:test", layout.display()),
    ]);
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
    };
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&digest)).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/demo-service"])
    );
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8000/tcp": {}})
    );

    // Every layer unpacked into one folder, as a runtime does.
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let bytes = blob(layer["digest"].as_str().unwrap());
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256(&tar_bytes)).as_str()
        );
        tar::Archive::new(&tar_bytes[..]).unpack(&rootfs).unwrap();
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");

    // The entrypoint runs from there (static: no loader, no libc in the folder) and answers.
    let entrypoint = rootfs.join("demo-service");
    let child = Command::new(&entrypoint)
        .env_clear()
        .env("SERVICE_NAME", "from-image")
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .current_dir(&rootfs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the image's entrypoint");
    let mut running = Running(child);
    let mut first = String::new();
    BufReader::new(running.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let address = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    drop(running);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let info: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(info["service"], "from-image");

    // The same build pushed again, under another tag: the same digest.
    let again = push(
        &docker,
        &[
            "--service-image",
            &registry.image("meshtally/demo-service:again"),
            "--insecure",
            "--service-bin",
            entrypoint.to_str().unwrap(),
        ],
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        field(&String::from_utf8_lossy(&again.stdout), "digest:"),
        digest
    );
}

#[test]
fn a_dynamic_binary_is_refused_in_one_line() {
    let work = tempfile::tempdir().unwrap();
    let out = push(
        work.path(),
        &[
            "--service-image",
            "127.0.0.1:1/meshtally/demo-service:x",
            "--service-bin",
            env!("CARGO_BIN_EXE_deployer"),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("is dynamically linked")
            && stderr.contains("--target x86_64-unknown-linux-musl"),
        "{stderr}"
    );
}
