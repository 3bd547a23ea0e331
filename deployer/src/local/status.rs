//! `deployer status`: what runs in a state dir — every process of the plan with its pid, ports,
//! URLs, health and restarts — so people, tools and tests find ports here instead of reading
//! state files.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use super::layout::{sidecar_name, Layout, GATEWAY};
use super::process::PROMETHEUS;
use super::state::{alive, StateDir};
use crate::table::Table;
use meshtally_envoy::admin::Admin;
use meshtally_envoy::http;

/// One process of the local mesh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Process {
    pub name: String,
    /// `app`, `sidecar`, `gateway`, `outside` (the server an external entry reaches, and its
    /// TLS front), `prometheus` or `zipkin`.
    pub kind: &'static str,
    pub pid: Option<u32>,
    pub running: bool,
    /// The pid file names a live process that is not this mesh's (the pid was reused): it is
    /// shown, never signalled.
    pub stranger: bool,
    /// Answers its health check (an app's `/healthz`, Envoy's `/ready`, Prometheus's
    /// `/-/ready`).
    pub healthy: bool,
    pub restarts: u32,
    pub ports: BTreeMap<&'static str, u16>,
    pub urls: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Status {
    pub state_dir: String,
    pub supervisor_pid: Option<i32>,
    pub processes: Vec<Process>,
    /// What is wrong with the state dir's records, one line each.
    pub problems: Vec<String>,
}

/// How each process is checked.
enum Health {
    Url(String),
    Envoy(u16),
}

/// A planned process: name, kind, ports, URLs and its health check.
type Planned = (String, &'static str, BTreeMap<&'static str, u16>, Health);

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

fn planned(layout: &Layout) -> Vec<Planned> {
    let mut out = Vec::new();
    let instances: Vec<_> = layout.services.iter().flat_map(|s| s.instances()).collect();
    for s in &instances {
        out.push((
            s.name.clone(),
            "app",
            BTreeMap::from([("app", s.app_port)]),
            Health::Url(url(s.app_port, "/healthz")),
        ));
    }
    for s in &instances {
        out.push((
            sidecar_name(&s.name),
            "sidecar",
            BTreeMap::from([
                ("inbound", s.port),
                ("outbound", s.outbound_port),
                ("admin", s.admin_port),
            ]),
            Health::Envoy(s.admin_port),
        ));
    }
    let g = &layout.gateway;
    out.push((
        GATEWAY.to_owned(),
        "gateway",
        BTreeMap::from([
            ("gateway", g.port),
            ("outbound", g.outbound_port),
            ("admin", g.admin_port),
        ]),
        Health::Envoy(g.admin_port),
    ));
    for e in &layout.external {
        out.push((
            e.server_name(),
            "outside",
            BTreeMap::from([("http", e.server_port)]),
            Health::Url(url(e.server_port, "/healthz")),
        ));
        if let Some(t) = &e.tls {
            out.push((
                e.tls_name(),
                "outside",
                BTreeMap::from([("tls", t.port), ("admin", t.admin_port)]),
                Health::Envoy(t.admin_port),
            ));
        }
    }
    if let Some(p) = &layout.prometheus {
        out.push((
            PROMETHEUS.to_owned(),
            "prometheus",
            BTreeMap::from([("http", p.port)]),
            Health::Url(url(p.port, "/-/ready")),
        ));
    }
    if let Some(t) = &layout.tracing {
        out.push((
            super::tracing::ZIPKIN.to_owned(),
            "zipkin",
            BTreeMap::from([("http", t.port)]),
            Health::Url(url(t.port, "/health")),
        ));
    }
    out
}

/// The URLs worth opening for a process's ports.
fn urls(kind: &str, ports: &BTreeMap<&'static str, u16>) -> BTreeMap<&'static str, String> {
    let mut urls = BTreeMap::new();
    if let Some(p) = ports.get("admin") {
        urls.insert("admin", url(*p, "/"));
        urls.insert("metrics", url(*p, "/stats/prometheus"));
    }
    if let Some(p) = ports.get("gateway") {
        urls.insert("gateway", url(*p, "/"));
    }
    if kind == "prometheus" {
        if let Some(p) = ports.get("http") {
            urls.insert("prometheus", url(*p, "/"));
        }
    }
    if kind == "zipkin" {
        if let Some(p) = ports.get("http") {
            urls.insert("ui", url(*p, "/zipkin/"));
        }
    }
    urls
}

/// Reads the state dir and checks every process (in parallel: each check is a loopback call).
/// A process counts as running only when it is this mesh's own (it carries the mesh's marker);
/// what is wrong with the records (a damaged pids file, a pid now held by a stranger) is said.
pub(crate) fn read(state: &StateDir) -> Result<Status> {
    let layout = match state.read_layout() {
        Ok(layout) => layout,
        // The plan is gone or damaged while the mesh may still run: say both, and how to stop it.
        Err(e) if state.is_running() => bail!(
            "the mesh's plan {} is {} ({}), but {} processes of this mesh still run{}: `{}` stops them",
            state.layout_path().display(),
            if state.layout_path().exists() {
                "damaged"
            } else {
                "missing"
            },
            e.root_cause(),
            state.own_processes().len(),
            state
                .running_supervisor()
                .map(|pid| format!(" (supervisor pid {pid})"))
                .unwrap_or_default(),
            state.cmd("down")
        ),
        Err(e) => return Err(e),
    };
    let mut problems = Vec::new();
    let pids = state.read_pids();
    if let Ok(text) = std::fs::read(state.pids_path()) {
        if serde_json::from_slice::<BTreeMap<String, u32>>(&text).is_err() {
            problems.push(format!(
                "{} is damaged: the processes below are found by their marker only",
                state.pids_path().display()
            ));
        }
    }
    let restarts = state.read_restarts();
    let planned = planned(&layout);
    let processes = meshtally_mesh::parallel::map(&planned, 8, |(name, kind, ports, health)| {
        let pid = pids.get(name).copied();
        let running = pid.is_some_and(|p| state.owns(p as i32));
        let stranger = pid.is_some_and(|p| !running && alive(p as i32));
        let healthy = running
            && match health {
                Health::Url(u) => {
                    http::get(u, Duration::from_millis(500)).is_ok_and(|r| r.status == 200)
                }
                Health::Envoy(port) => Admin(*port).ready(),
            };
        Process {
            name: name.clone(),
            kind,
            pid,
            running,
            stranger,
            healthy,
            restarts: restarts.get(name).copied().unwrap_or(0),
            urls: urls(kind, ports),
            ports: ports.clone(),
        }
    });
    for p in processes.iter().filter(|p| p.stranger) {
        problems.push(format!(
            "{} records pid {} for {}, which is another process now (not signalled)",
            state.pids_path().display(),
            p.pid.unwrap_or_default(),
            p.name
        ));
    }
    Ok(Status {
        state_dir: state.root.display().to_string(),
        supervisor_pid: state.running_supervisor(),
        processes,
        problems,
    })
}

impl Status {
    pub(crate) fn table(&self) -> String {
        let mut t = Table::new(
            ["NAME", "KIND", "PID", "STATE", "RESTARTS", "PORTS", "URL"]
                .map(String::from)
                .to_vec(),
        );
        for p in &self.processes {
            let state = match (p.running, p.healthy, p.stranger) {
                (true, true, _) => "ready",
                (true, false, _) => "not ready",
                (false, _, true) => "pid reused",
                (false, _, false) => "stopped",
            };
            let ports: Vec<String> = p.ports.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let shown = ["gateway", "prometheus", "admin"]
                .iter()
                .find_map(|k| p.urls.get(k))
                .cloned()
                .unwrap_or_default();
            t.row(vec![
                p.name.clone(),
                p.kind.into(),
                p.pid.map_or("-".into(), |p| p.to_string()),
                state.into(),
                p.restarts.to_string(),
                ports.join(" "),
                shown,
            ]);
        }
        let head = match self.supervisor_pid {
            Some(pid) => format!("mesh in {} (supervisor pid {pid}):\n", self.state_dir),
            None => format!("mesh in {}: not running\n", self.state_dir),
        };
        let problems: String = self
            .problems
            .iter()
            .map(|p| format!("warning: {p}\n"))
            .collect();
        head + &problems + &t.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_ports() {
        let sidecar = BTreeMap::from([("admin", 9901), ("inbound", 8000)]);
        let u = urls("sidecar", &sidecar);
        assert_eq!(u["admin"], "http://127.0.0.1:9901/");
        assert_eq!(u["metrics"], "http://127.0.0.1:9901/stats/prometheus");
        let prom = urls("prometheus", &BTreeMap::from([("http", 9090)]));
        assert_eq!(prom["prometheus"], "http://127.0.0.1:9090/");
        assert!(urls("app", &BTreeMap::from([("app", 1)])).is_empty());
    }
}
