//! A real Prometheus for the local mesh (`up --prometheus[=PORT]`): Debian's binary, on
//! loopback, scraping every sidecar's and the gateway's `/stats/prometheus` with the labels a
//! Kubernetes scrape of the same pods gives (`namespace`, `service`, `version`, `pod`), its
//! data under the state dir. The supervisor runs it like the other processes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::layout::{sidecar_name, Layout, GATEWAY};
use meshtally_mesh::render::security::INGRESS_NAMESPACE;

/// How often the local Prometheus scrapes: short, so a test or a demo sees calls at once.
pub const SCRAPE_INTERVAL: &str = "1s";
/// The scrape job's name (the `job` label of every series).
pub const JOB: &str = "meshtally-sidecars";

/// Where its files go under a state dir.
pub fn config_path(root: &Path) -> PathBuf {
    root.join("prometheus").join("prometheus.yml")
}
pub fn data_path(root: &Path) -> PathBuf {
    root.join("prometheus").join("data")
}

/// The scrape config: one static target per proxy, labelled as its pod would be.
pub(crate) fn config(layout: &Layout) -> Value {
    let mut targets: Vec<Value> = layout
        .services
        .iter()
        .flat_map(|s| s.instances().into_iter().map(move |i| (s, i)))
        .map(|(s, i)| {
            json!({
                "targets": [format!("127.0.0.1:{}", i.admin_port)],
                "labels": {
                    "namespace": layout.namespace,
                    "service": s.name,
                    "version": i.version,
                    "pod": sidecar_name(&i.name),
                },
            })
        })
        .collect();
    targets.push(json!({
        "targets": [format!("127.0.0.1:{}", layout.gateway.admin_port)],
        "labels": {
            "namespace": INGRESS_NAMESPACE,
            "service": "istio-ingressgateway",
            "pod": GATEWAY,
        },
    }));
    json!({
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{
            "job_name": JOB,
            "metrics_path": "/stats/prometheus",
            // Keep meshtally's own labels (source, destination, …) as Envoy gives them.
            "honor_labels": true,
            "static_configs": targets,
        }],
    })
}

/// Writes the config into `dir` (a new state generation).
pub(crate) fn write(layout: &Layout, dir: &Path) -> Result<()> {
    let path = config_path(dir);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let yaml = serde_norway::to_string(&config(layout))?;
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))
}

/// Prometheus's command line under a state dir.
pub(crate) fn args(root: &Path, port: u16) -> Vec<std::ffi::OsString> {
    vec![
        format!("--config.file={}", config_path(root).display()).into(),
        format!("--storage.tsdb.path={}", data_path(root).display()).into(),
        format!("--web.listen-address=127.0.0.1:{port}").into(),
        "--storage.tsdb.retention.time=1d".into(),
        "--log.level=warn".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_bind_loopback_under_the_state_dir() {
        let a = args(Path::new("/s"), 9191);
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert!(a.contains(&"--web.listen-address=127.0.0.1:9191".to_owned()));
        assert!(a.contains(&"--config.file=/s/prometheus/prometheus.yml".to_owned()));
        assert!(a.contains(&"--storage.tsdb.path=/s/prometheus/data".to_owned()));
    }
}
