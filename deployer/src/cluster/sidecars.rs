//! A cluster mesh as `verify --cluster`, `stats --cluster` and `top --cluster` read it (`crate::observe`):
//! its ingress gateway through a port-forward that lives as long as the check, and the same
//! counters `stats` reads on the local mesh, from each demo pod's sidecar. The Istio proxy
//! image has no curl, so the sidecar's own agent fetches its Envoy admin stats
//! (`pilot-agent request GET stats?…`) through `kubectl exec`.

use anyhow::{bail, Context as _, Result};
use meshtally_wire::metrics::REQUESTS_TOTAL;
use serde_json::Value;

use super::apply::{INGRESS_NAMESPACE, INGRESS_SERVICE};
use super::checks;
use super::kubectl::Kubectl;
use super::portforward::PortForward;
use crate::observe::{parse_envoy_stats, Counted, Gateway, ProxyRead, Reachable, METRIC_PREFIX};
use meshtally_mesh::render::meta::{APP, PART_OF};

/// The cluster's ingress gateway, port-forwarded to loopback while this lives.
pub(crate) struct ClusterGateway {
    forward: PortForward,
    services: Vec<String>,
}

impl ClusterGateway {
    pub(crate) fn open(kubectl: &Kubectl, services: Vec<String>) -> Result<ClusterGateway> {
        checks::reachable(kubectl)?;
        let forward = PortForward::start(
            kubectl,
            INGRESS_NAMESPACE,
            &format!("svc/{INGRESS_SERVICE}"),
            80,
        )
        .context("cannot port-forward to Istio's ingress gateway")?;
        eprintln!(
            "port-forwarding 127.0.0.1:{} to {INGRESS_NAMESPACE}/{INGRESS_SERVICE}:80",
            forward.port
        );
        Ok(ClusterGateway { forward, services })
    }
}

impl Reachable for ClusterGateway {
    fn gateway(&self) -> Result<Gateway> {
        Ok(Gateway {
            host: "127.0.0.1".into(),
            port: self.forward.port,
        })
    }
    fn services(&self) -> Result<Vec<String>> {
        Ok(self.services.clone())
    }
}

/// The sidecars of the running meshtally pods of a namespace.
pub(crate) struct ClusterSidecars {
    pub(super) kubectl: Kubectl,
    pub(super) namespace: String,
}

impl ClusterSidecars {
    pub(crate) fn open(kubectl: Kubectl, namespace: String) -> Result<ClusterSidecars> {
        checks::reachable(&kubectl)?;
        Ok(ClusterSidecars { kubectl, namespace })
    }
}

impl Counted for ClusterSidecars {
    fn counters(&self) -> Result<Vec<(String, u64)>> {
        let pods = pods(&self.kubectl, &self.namespace)?;
        eprintln!("reading {} sidecars in {}…", pods.len(), self.namespace);
        collect(&self.kubectl, &self.namespace, &pods)
    }

    fn proxies(&self) -> Result<Vec<ProxyRead>> {
        let pods = running(&self.kubectl, &self.namespace)?;
        let path = format!("stats/prometheus?filter={METRIC_PREFIX}");
        let texts = meshtally_mesh::parallel::map(&pods, PARALLEL, |(pod, _)| {
            let out = admin_get(&self.kubectl, &self.namespace, pod, &path)?;
            Ok(String::from_utf8_lossy(&out).into_owned())
        });
        Ok(pods
            .into_iter()
            .zip(texts)
            .map(|((pod, app), exposition)| ProxyRead {
                service: Some(app.unwrap_or_else(|| deployment_of(&pod).to_owned())),
                proxy: pod,
                exposition,
            })
            .collect())
    }
}

/// The Deployment a pod belongs to, for a pod without an `app` label: its name without the
/// ReplicaSet's and the pod's suffixes (`service-a-5d9f8c7b6-x2x7q` → `service-a`).
fn deployment_of(pod: &str) -> &str {
    let mut parts = pod.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(deployment)) => deployment,
        _ => pod,
    }
}

/// The sidecar container Istio injects.
pub const SIDECAR: &str = "istio-proxy";
/// Pods read at once: each read is a `kubectl exec` that mostly waits on the network.
pub(super) const PARALLEL: usize = 8;

/// The running meshtally pods of `namespace`, by name.
pub(super) fn pods(kubectl: &Kubectl, namespace: &str) -> Result<Vec<String>> {
    Ok(running(kubectl, namespace)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The running meshtally pods of `namespace`: name, and the service its `app` label names.
fn running(kubectl: &Kubectl, namespace: &str) -> Result<Vec<(String, Option<String>)>> {
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
    let names: Vec<(String, Option<String>)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pod| {
            let meta = &pod["metadata"];
            let app = meta["labels"][APP].as_str().map(str::to_owned);
            Some((meta["name"].as_str()?.to_owned(), app))
        })
        .collect();
    if names.is_empty() {
        bail!("no running meshtally pods in namespace {namespace}: apply the mesh first (`deployer apply`)");
    }
    Ok(names)
}

/// One GET from a pod's Envoy admin, through the sidecar's own agent.
fn admin_get(kubectl: &Kubectl, namespace: &str, pod: &str, path: &str) -> Result<Vec<u8>> {
    kubectl
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
                path,
            ],
            None,
        )
        .with_context(|| format!("reading the sidecar stats of pod {pod}"))
}

/// `meshtally_requests_total` counters of one pod's sidecar, as (stat name, value).
fn counters(kubectl: &Kubectl, namespace: &str, pod: &str) -> Result<Vec<(String, u64)>> {
    let path = format!("stats?format=json&filter={REQUESTS_TOTAL}");
    let out = admin_get(kubectl, namespace, pod, &path)?;
    parse_envoy_stats(&out).with_context(|| format!("sidecar stats of pod {pod}"))
}

/// Every pod's counters, a few pods at a time (each read is a `kubectl exec` that mostly
/// waits on the network).
fn collect(kubectl: &Kubectl, namespace: &str, pods: &[String]) -> Result<Vec<(String, u64)>> {
    let mut all = Vec::new();
    for result in
        meshtally_mesh::parallel::map(pods, PARALLEL, |pod| counters(kubectl, namespace, pod))
    {
        all.extend(result?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::stats::merge;

    #[test]
    fn a_pod_belongs_to_the_deployment_its_name_starts_with() {
        assert_eq!(deployment_of("service-a-5d9f8c7b6-x2x7q"), "service-a");
        assert_eq!(deployment_of("reviews-v2-6c5bf657cf-abcde"), "reviews-v2");
        assert_eq!(deployment_of("lonely"), "lonely");
    }

    fn name(src: &str, dst: &str, dir: &str, class: &str) -> String {
        format!("source=.={src};.;destination=.={dst};.;destination_version=.=v1;.;direction=.={dir};.;response_code_class=.={class};.;connection_security_policy=.=none;.;{REQUESTS_TOTAL}")
    }

    #[test]
    fn merges_across_sidecars() {
        let json = format!(
            r#"{{"stats":[{{"name":"{}","value":3}},{{"name":"other","value":9}},{{"histograms":{{}}}}]}}"#,
            name("service-a", "service-b", "outbound", "2xx")
        );
        let one = parse_envoy_stats(json.as_bytes()).unwrap();
        assert_eq!(one.len(), 2);
        let mut all = one.clone();
        all.extend(one);
        all.push((name("service-a", "service-b", "inbound", "5xx"), 1));
        let rows = merge(all);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].direction, "inbound");
        assert_eq!(rows[1].count, 6);
        assert!(parse_envoy_stats(b"nope").is_err());
    }
}
