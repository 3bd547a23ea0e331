//! `deployer stats --kubectl`: the same counters `stats` reads on the local mesh, read from each
//! demo pod's sidecar instead. The Istio proxy image has no curl, so the sidecar's own agent
//! fetches its Envoy admin stats (`pilot-agent request GET stats?…`) through `kubectl exec`.

use std::sync::Mutex;

use anyhow::{bail, Context as _, Result};
use meshtally_core::metrics::REQUESTS_TOTAL;
use serde_json::Value;

use super::kubectl::Kubectl;
use crate::local::stats::{merge, Row};
use crate::render::meta::PART_OF;

/// The sidecar container Istio injects.
pub const SIDECAR: &str = "istio-proxy";
/// Pods read at once: each read is a `kubectl exec` that mostly waits on the network.
const PARALLEL: usize = 8;

/// The running meshtally pods of `namespace`, by name.
pub fn pods(kubectl: &Kubectl, namespace: &str) -> Result<Vec<String>> {
    let selector = format!("{}={}", PART_OF.0, PART_OF.1);
    let out = kubectl.run(
        &[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            &selector,
            "--field-selector=status.phase=Running",
            "-o",
            "json",
        ],
        None,
    )?;
    let list: Value =
        serde_json::from_slice(&out).context("kubectl printed a pod list that is not JSON")?;
    let names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pod| pod["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    if names.is_empty() {
        bail!("no running meshtally pods in namespace {namespace}: apply the mesh first (`deployer apply`)");
    }
    Ok(names)
}

/// `meshtally_requests_total` counters of one pod's sidecar, as (stat name, value).
pub fn counters(kubectl: &Kubectl, namespace: &str, pod: &str) -> Result<Vec<(String, u64)>> {
    let path = format!("stats?format=json&filter={REQUESTS_TOTAL}");
    let out = kubectl
        .run(
            &[
                "exec",
                "-n",
                namespace,
                pod,
                "-c",
                SIDECAR,
                "--",
                "pilot-agent",
                "request",
                "GET",
                &path,
            ],
            None,
        )
        .with_context(|| format!("reading the sidecar stats of pod {pod}"))?;
    parse_counters(&out).with_context(|| format!("sidecar stats of pod {pod}"))
}

/// Envoy's `/stats?format=json`: `{"stats": [{"name", "value"}, …, {"histograms": …}]}`.
pub fn parse_counters(json: &[u8]) -> Result<Vec<(String, u64)>> {
    let stats: Value = serde_json::from_slice(json).context("not JSON")?;
    Ok(stats["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["value"].as_u64()?)))
        .collect())
}

/// Reads every pod's counters, a few at a time, and merges them into rows as `stats` prints.
pub fn collect(kubectl: &Kubectl, namespace: &str, pods: &[String]) -> Result<Vec<Row>> {
    let queue = Mutex::new(pods.iter());
    let results = Mutex::new(Vec::with_capacity(pods.len()));
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(pods.len()) {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some(pod) = next else { break };
                let result = counters(kubectl, namespace, pod);
                if let Ok(mut r) = results.lock() {
                    r.push(result);
                }
            });
        }
    });
    let mut all = Vec::new();
    for result in results.into_inner().unwrap_or_default() {
        all.extend(result?);
    }
    Ok(merge(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(src: &str, dst: &str, dir: &str, class: &str) -> String {
        format!("source=.={src};.;destination=.={dst};.;direction=.={dir};.;response_code_class=.={class};.;{REQUESTS_TOTAL}")
    }

    #[test]
    fn merges_across_sidecars() {
        let json = format!(
            r#"{{"stats":[{{"name":"{}","value":3}},{{"name":"other","value":9}},{{"histograms":{{}}}}]}}"#,
            name("service-a", "service-b", "outbound", "2xx")
        );
        let one = parse_counters(json.as_bytes()).unwrap();
        assert_eq!(one.len(), 2);
        let mut all = one.clone();
        all.extend(one);
        all.push((name("service-a", "service-b", "inbound", "5xx"), 1));
        let rows = merge(all);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].direction, "inbound");
        assert_eq!(rows[1].count, 6);
        assert!(parse_counters(b"nope").is_err());
    }
}
