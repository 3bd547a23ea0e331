//! `scripts/cluster.sh` itself (what `make cluster-up` and `make cluster-down` run): every
//! component listens on 127.0.0.1 only, a second `up` finds the running one, the kubeconfig
//! reaches a node that is Ready, and `down` leaves no process behind.

mod common;

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
