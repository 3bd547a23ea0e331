//! A real Kubernetes control plane for the cluster tests: `scripts/cluster.sh up` in a temp dir
//! (etcd, kube-apiserver, controller manager, scheduler and kwok on loopback ports the OS hands
//! out, with the pinned Istio CRDs), shared by the tests of one binary and stopped by
//! `scripts/cluster.sh down` when the last test holding it drops it — also when a test panics.
//! Each test works in a namespace of its own, so tests run side by side.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

/// One running control plane; stopped on drop.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

static SHARED: Mutex<Weak<ControlPlane>> = Mutex::new(Weak::new());
/// Tests that change cluster-wide state (the Istio CRDs) take this for writing; all others
/// for reading, so they never see that change.
static CLUSTER_WIDE: RwLock<()> = RwLock::new(());

fn script() -> PathBuf {
    crate::common::workspace().join("scripts/cluster.sh")
}

pub fn kubectl_bin() -> PathBuf {
    crate::common::workspace().join(".tools/bin/kubectl")
}

impl ControlPlane {
    /// The binary's shared control plane, started by the first test that asks.
    pub fn shared() -> Arc<ControlPlane> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cp) = shared.upgrade() {
            return cp;
        }
        let cp = Arc::new(ControlPlane::start());
        *shared = Arc::downgrade(&cp);
        cp
    }

    /// A control plane of the calling test's own, for a test that kills its parts.
    pub fn own() -> ControlPlane {
        ControlPlane::start()
    }

    /// The pid of a running component (`kube-apiserver`, `etcd`, …).
    pub fn pid(&self, component: &str) -> u32 {
        let file = self.dir.path().join(format!("pids/{component}.pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .unwrap()
    }

    /// `scripts/cluster.sh restart COMPONENT`: started again with its first arguments (for
    /// kube-apiserver, until it is ready again).
    pub fn restart(&self, component: &str) {
        let out = Command::new("bash")
            .arg(script())
            .args(["restart", component])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/cluster.sh");
        assert!(
            out.status.success(),
            "scripts/cluster.sh restart {component} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> ControlPlane {
        let dir = tempfile::Builder::new()
            .prefix("meshtally-cluster-")
            .tempdir()
            .unwrap();
        let cp = ControlPlane {
            kubeconfig: dir.path().join("kubeconfig"),
            dir,
        };
        // From here on, Drop stops whatever came up, even if the start fails half-way.
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(cp.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/cluster.sh");
        assert!(
            out.status.success(),
            "scripts/cluster.sh up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("export KUBECONFIG={}", cp.kubeconfig.display())),
            "{stdout}"
        );
        cp
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the project's kubectl against this control plane, through deployer's own kubectl
    /// runner (the one that feeds stdin without deadlocking).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let kubeconfig = self.kubeconfig.to_string_lossy();
        let mut argv = vec!["--kubeconfig", kubeconfig.as_ref()];
        argv.extend_from_slice(args);
        let kubectl = meshtally_deployer::kubectl::Kubectl {
            bin: kubectl_bin(),
            context: None,
        };
        kubectl
            .output(&argv, stdin.map(str::as_bytes))
            .expect("run kubectl")
    }

    /// A kubectl call that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `deployer args…` in `work`, with KUBECONFIG set to this control plane's and the
    /// project's kubectl.
    pub fn deployer(&self, work: &Path, args: &[&str]) -> Output {
        self.deployer_env(work, args, &[("KUBECONFIG", self.kubeconfig.as_os_str())])
    }

    pub fn deployer_env(
        &self,
        work: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Output {
        self.deployer_via(&kubectl_bin(), work, args, env)
    }

    /// `deployer args…` with `--kubectl kubectl` (a wrapper of the project's kubectl).
    pub fn deployer_via(
        &self,
        kubectl: &Path,
        work: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deployer"));
        command
            .args(args)
            .arg("--kubectl")
            .arg(kubectl)
            .current_dir(work)
            .stdin(Stdio::null())
            .env_remove("KUBECONFIG");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("run deployer")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!(
                    "scripts/cluster.sh down: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Most tests: the cluster-wide state stays as `up` made it while they run.
pub fn shared_state() -> RwLockReadGuard<'static, ()> {
    CLUSTER_WIDE.read().unwrap_or_else(|e| e.into_inner())
}

/// A test that changes cluster-wide state runs alone, and puts it back before it returns.
pub fn exclusive_state() -> RwLockWriteGuard<'static, ()> {
    CLUSTER_WIDE.write().unwrap_or_else(|e| e.into_inner())
}

/// The lines of a failed deployer run: it failed, printed nothing on stdout, and exactly one
/// `error:` line on stderr containing every one of `wants`. Returns that line.
pub fn one_line_error(out: &Output, wants: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded: {stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(error.len(), 1, "not one error line: {stderr}");
    assert_eq!(stderr.lines().last(), Some(error[0]), "{stderr}");
    for want in wants {
        assert!(error[0].contains(want), "{:?} lacks {want:?}", error[0]);
    }
    error[0].to_owned()
}
