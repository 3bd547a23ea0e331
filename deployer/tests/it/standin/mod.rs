//! Running `deployer` against the kubectl stand-in (`tests/fixtures/kubectl-stand-in.sh`): a
//! folder it records into, the environment that steers its answers, and the calls read back.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const CONTEXT: &str = "kind-standin";

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl-stand-in.sh")
}

/// A recording folder, the work dir (with a stand-in module), and the stand-in's settings.
pub struct StandIn {
    pub dir: tempfile::TempDir,
    pub work: tempfile::TempDir,
    env: Vec<(String, OsString)>,
    /// Put the stand-in on PATH as `kubectl` instead of passing `--kubectl`.
    on_path: bool,
    /// Run with a PATH that holds no kubectl at all.
    no_kubectl: bool,
}

impl StandIn {
    pub fn new() -> StandIn {
        let work = tempfile::tempdir().unwrap();
        std::fs::write(
            work.path().join("meshtally_filter.wasm"),
            b"\0asm\x01\0\0\0",
        )
        .unwrap();
        StandIn {
            dir: tempfile::tempdir().unwrap(),
            work,
            env: Vec::new(),
            on_path: false,
            no_kubectl: false,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> StandIn {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub fn on_path(mut self) -> StandIn {
        self.on_path = true;
        self
    }

    pub fn without_kubectl(mut self) -> StandIn {
        self.no_kubectl = true;
        self
    }

    /// `--kubectl <stand-in> --context kind-standin`, unless the stand-in is on PATH.
    pub fn kubectl_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if !self.on_path && !self.no_kubectl {
            flags.push("--kubectl".to_owned());
            flags.push(script().to_string_lossy().into_owned());
        }
        flags.push("--context".to_owned());
        flags.push(CONTEXT.to_owned());
        flags
    }

    /// Runs `deployer args…` in the work dir with the stand-in's environment.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run deployer")
    }

    /// `deployer args…` in the work dir with the stand-in's environment, not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deployer"));
        command
            .args(args)
            .current_dir(self.work.path())
            .stdin(Stdio::null())
            .env("STANDIN_DIR", self.dir.path())
            // A kubeconfig that exists, as for any configured kubectl: deployer reports a
            // missing one before it asks the cluster anything.
            .env("KUBECONFIG", self.kubeconfig());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.env("PATH", self.tools());
        command
    }

    /// Every recorded call, as its argument list.
    pub fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// What call `n` (1-based) read on stdin.
    pub fn stdin_of(&self, n: usize) -> Vec<u8> {
        std::fs::read(self.dir.path().join(format!("stdin-{n}.yaml")))
            .unwrap_or_else(|e| panic!("call {n} read no stdin: {e}"))
    }
}

impl StandIn {
    fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        if !path.exists() {
            std::fs::write(&path, "apiVersion: v1\nkind: Config\n").unwrap();
        }
        path
    }
}

/// What the stand-in runs, found on the test's PATH.
const TOOLS: [&str; 7] = ["bash", "cat", "grep", "sed", "sleep", "touch", "wc"];

impl StandIn {
    /// A PATH of one folder holding links to [`TOOLS`] and, if asked, the stand-in as
    /// `kubectl`: a real kubectl on the machine can never be picked up.
    fn tools(&self) -> PathBuf {
        let bin = self.dir.path().join("bin");
        if !bin.exists() {
            std::fs::create_dir_all(&bin).unwrap();
            let places = meshtally_envoy::locate::Places::here();
            for tool in TOOLS {
                let found = places
                    .on_path(tool)
                    .unwrap_or_else(|| panic!("the kubectl stand-in needs `{tool}` on PATH"));
                std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
            }
            if self.on_path {
                std::os::unix::fs::symlink(script(), bin.join("kubectl")).unwrap();
            }
        }
        bin
    }
}

/// Checks a failure's shape: non-zero exit, nothing on stdout, exactly one line on stderr,
/// containing `want`. Returns that line.
pub fn one_line_failure(out: &Output, want: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "wrote to stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    assert!(stderr.contains(want), "{stderr:?} lacks {want:?}");
    stderr
}

/// `args` of a call without the leading `--context kind-standin`, which every call must carry.
pub fn without_context(call: &[String]) -> Vec<&str> {
    assert_eq!(
        call.get(..2),
        Some(&["--context".to_owned(), CONTEXT.to_owned()][..]),
        "call without --context: {call:?}"
    );
    call[2..].iter().map(String::as_str).collect()
}

/// One inbound `meshtally_requests_total` sample as a sidecar's `/stats/prometheus` shows it.
pub fn prom_line(source: &str, destination: &str, class: &str, policy: &str, n: u64) -> String {
    format!("meshtally_requests_total{{source=\"{source}\",destination=\"{destination}\",direction=\"inbound\",response_code_class=\"{class}\",connection_security_policy=\"{policy}\"}} {n}\n")
}

/// A stand-in listing `pods_json` as the running pods, each pod's sidecar answering its first
/// and second `stats/prometheus` read as given (a pod not listed there cannot be read).
pub fn reading_twice(pods_json: &str, reads: &[(&str, String, String)]) -> StandIn {
    let standin = StandIn::new();
    let stats = standin.dir.path().join("stats");
    std::fs::create_dir(&stats).unwrap();
    let pods = standin.dir.path().join("pods.json");
    std::fs::write(&pods, pods_json).unwrap();
    for (pod, first, second) in reads {
        std::fs::write(stats.join(format!("{pod}.prom.1")), first).unwrap();
        std::fs::write(stats.join(format!("{pod}.prom.2")), second).unwrap();
    }
    standin
        .env("STANDIN_PODS_JSON", &pods)
        .env("STANDIN_STATS_DIR", &stats)
}
