//! `scripts/cluster.sh` itself (what `make cluster-up` and `make cluster-down` run): every
//! component listens on 127.0.0.1 only, a second `up` finds the running one, the kubeconfig
//! reaches a node that is Ready, `down` leaves no process behind, and a start that fails at any
//! step (a component too slow, SIGTERM, Istio's module missing) leaves none either.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const COMPONENTS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

fn script(args: &[&str], dir: &Path) -> Output {
    Command::new("bash")
        .arg(common::workspace().join("scripts/cluster.sh"))
        .args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/cluster.sh")
}

/// Stops the cluster in `dir` when dropped, so a failed assertion leaves nothing running.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = script(&["down"], self.0);
    }
}

fn pids(dir: &Path) -> Vec<(String, u32)> {
    COMPONENTS
        .iter()
        .map(|c| {
            let text = std::fs::read_to_string(dir.join(format!("pids/{c}.pid")))
                .unwrap_or_else(|e| panic!("no pid file for {c}: {e}"));
            ((*c).to_owned(), text.trim().parse().unwrap())
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for every purpose here: it holds no socket and no file.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

/// The local addresses of the TCP sockets `pid` listens on (IPv4 and IPv6), from /proc.
fn listening(pid: u32) -> Vec<String> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l: PathBuf| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A = LISTEN), …, inode
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                out.push(fields[1].to_owned());
            }
        }
    }
    out
}

/// 127.0.0.1 as /proc/net/tcp spells it (little-endian hex), in IPv4 or IPv4-mapped IPv6.
fn loopback(address: &str) -> bool {
    let host = address.split(':').next().unwrap_or_default();
    host == "0100007F" || host == "0000000000000000FFFF00000100007F"
}

#[test]
fn up_binds_loopback_only_and_down_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let guard = Down(dir);
    let out = script(&["up", "--no-istio-crds"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kubeconfig = dir.join("kubeconfig");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("export KUBECONFIG={}\n", kubeconfig.display())
    );

    let running = pids(dir);
    let mut listeners = 0;
    for (name, pid) in &running {
        assert!(alive(*pid), "{name} is not running");
        for address in listening(*pid) {
            assert!(loopback(&address), "{name} listens on {address}");
            listeners += 1;
        }
    }
    // etcd (clients, peers) and kube-apiserver at least; the others serve nothing.
    assert!(listeners >= 3, "{listeners} listeners");

    let again = script(&["up"], dir);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let nodes = Command::new(common::workspace().join(".tools/bin/kubectl"))
        .args(["get", "nodes", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&nodes.stdout), "node/kwok-node-0\n");

    drop(guard);
    for (name, pid) in &running {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after down");
    }
    let left = std::fs::read_dir(dir.join("pids")).unwrap().count();
    assert_eq!(left, 0, "pid files left behind");
}

/// Every live process whose command line names `dir` (etcd's data dir, the apiserver's
/// certificates, each component's kubeconfig all live there).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (alive(pid) && cmdline.contains(&needle)).then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

fn assert_failed_cleanly(out: &Output, dir: &Path, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start succeeded:\n{stderr}");
    assert!(stderr.contains(says), "expected {says:?} in:\n{stderr}");
    // `down` waits for each component, so by now nothing may remain; a moment for the kernel.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let left = processes_naming(dir);
    assert!(
        left.is_empty(),
        "still running after a failed start:\n{}",
        left.join("\n")
    );
}

#[test]
fn a_component_too_slow_fails_the_start_and_stops_what_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _guard = Down(dir);
    // No time at all for kube-apiserver to be ready: etcd and the apiserver are running by then.
    let out = Command::new("bash")
        .arg(common::workspace().join("scripts/cluster.sh"))
        .args(["up", "--no-istio-crds"])
        .arg(dir)
        .env("CLUSTER_WAIT_SECS", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_failed_cleanly(&out, dir, "kube-apiserver did not come up within 0s");
}

#[test]
fn sigterm_mid_start_stops_what_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _guard = Down(dir);
    let child = Command::new("bash")
        .arg(common::workspace().join("scripts/cluster.sh"))
        .args(["up", "--no-istio-crds"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once the apiserver has been started.
    let pidfile = dir.join("pids/kube-apiserver.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pidfile.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the apiserver never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert_failed_cleanly(&out, dir, "start failed; stopping what it started");
}

#[test]
fn without_istios_module_nothing_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let cache = tmp.path().join("empty-module-cache");
    let _guard = Down(&dir);
    // An empty module cache and no proxy: the CRDs cannot be found, which is known before any
    // component starts.
    let out = Command::new("bash")
        .arg(common::workspace().join("scripts/cluster.sh"))
        .arg("up")
        .arg(&dir)
        .env("GOMODCACHE", &cache)
        .env("GOPROXY", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_failed_cleanly(&out, &dir, "cannot find Istio");
    assert!(
        !dir.join("pids/etcd.pid").exists(),
        "etcd was started before the CRDs were found"
    );
    // Go writes its module cache read-only; let the temp dir go.
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&cache)
        .status();
}
