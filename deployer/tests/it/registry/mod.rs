//! A real OCI registry for the push tests: Debian's `docker-registry` on 127.0.0.1 with its
//! storage in a temp dir (plain, with htpasswd, or with TLS from a CA made here), killed when
//! its guard drops, and `skopeo` as the independent client that reads images back. Missing
//! tools fail the test with the command that installs them.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// `pusher` / `wasm-push-secret`, bcrypt (the only hash the registry's htpasswd accepts).
pub const HTPASSWD: &str = "pusher:$2a$05$XD0uHlDNaPo5.J.8Bw7eP.dBtGFX0Nplp5mjMhLHsuZUmfrV6dcQO\n";
pub const USER: &str = "pusher";
pub const PASSWORD: &str = "wasm-push-secret";

pub fn tool(name: &str) -> PathBuf {
    meshtally_envoy::locate::Places::here()
        .on_path(name)
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: the registry tests need docker-registry and skopeo; \
                 install them with deployer/tests/setup-registry.sh"
            )
        })
}

/// How the test registry is set up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, anonymous pushes.
    Open,
    /// Plain HTTP, pushes need [`USER`]/[`PASSWORD`].
    Htpasswd,
    /// HTTPS with a certificate from a CA made here (`ca.pem` in its dir).
    Tls,
}

/// A registry process on 127.0.0.1, killed when dropped (also when a test panics).
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(mode: Mode) -> Registry {
        let bin = tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        // Picked by binding, then handed over: the registry binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        match mode {
            Mode::Open => {}
            Mode::Htpasswd => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, HTPASSWD).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: meshtally-test\n    path: {}\n",
                    file.display()
                ));
            }
            Mode::Tls => {
                let (cert, key) = tls_files(dir.path());
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry { child, port, dir };
        registry.wait_ready();
        registry
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "registry not up: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn image(&self, repo_tag: &str) -> String {
        format!("127.0.0.1:{}/{repo_tag}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA (`dir/ca.pem`) and a server certificate for 127.0.0.1 it signed; returns the
/// certificate and key files.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool("skopeo"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
