//! Talking to a running Envoy's admin endpoint on loopback: readiness, counters, the dynamic
//! config versions it runs.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::http;

/// An Envoy admin endpoint on loopback.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub u16);

impl Admin {
    fn get(&self, path: &str, timeout: Duration) -> Result<http::Response> {
        http::get(&format!("http://127.0.0.1:{}{path}", self.0), timeout)
            .with_context(|| format!("Envoy admin on 127.0.0.1:{}", self.0))
    }

    pub fn ready(&self) -> bool {
        self.get("/ready", Duration::from_millis(500))
            .is_ok_and(|r| r.status == 200)
    }

    /// Every counter whose name contains `filter`, as (name, value).
    pub fn counters(&self, filter: &str) -> Result<Vec<(String, u64)>> {
        let resp = self.get(
            &format!("/stats?format=json&filter={filter}"),
            Duration::from_secs(5),
        )?;
        parse_envoy_stats(&resp.body)
            .with_context(|| format!("Envoy admin stats on 127.0.0.1:{}", self.0))
    }

    pub fn counter(&self, name: &str) -> Result<u64> {
        Ok(self
            .counters(name)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v))
    }

    /// The port Envoy bound for a named listener (listeners that asked for port 0).
    pub fn listener_port(&self, listener: &str) -> Result<u16> {
        let resp = self.get("/listeners?format=json", Duration::from_secs(5))?;
        let json: Value =
            serde_json::from_slice(&resp.body).context("Envoy /listeners is not JSON")?;
        json["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == listener)
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("listener {listener} not found in {}", resp.text()))
    }

    /// Stops accepting connections on every listener; open connections finish what they have.
    pub fn drain_listeners(&self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/drain_listeners", self.0);
        let resp = http::post(&url, Duration::from_secs(2))?;
        anyhow::ensure!(
            resp.status == 200,
            "drain_listeners answered {}",
            resp.status
        );
        Ok(())
    }

    /// Requests in flight on the proxy's HTTP listeners (the admin listener excluded).
    pub fn active_requests(&self) -> Result<u64> {
        Ok(self
            .counters("downstream_rq_active")?
            .into_iter()
            .filter(|(name, _)| name.starts_with("http.") && !name.starts_with("http.admin."))
            .map(|(_, v)| v)
            .sum())
    }

    /// The versions of the dynamic config this proxy runs, from its `/config_dump` (only the
    /// route tables and the filter: the whole dump is large, and this is polled).
    pub fn config_versions(&self) -> Result<ConfigVersions> {
        let mut versions = ConfigVersions::default();
        for resource in ["dynamic_route_configs", "ecds_filters"] {
            let resp = self.get(
                &format!("/config_dump?resource={resource}"),
                Duration::from_secs(5),
            )?;
            // A proxy without such resources (the gateway has no filter) answers 404.
            if resp.status == 404 {
                continue;
            }
            let dump: Value =
                serde_json::from_slice(&resp.body).context("Envoy /config_dump is not JSON")?;
            let part = ConfigVersions::of(&dump);
            versions.routes.extend(part.routes);
            versions.filter = versions.filter.or(part.filter);
        }
        Ok(versions)
    }

    /// `/stats/prometheus` of the stats whose names contain `filter` only.
    pub fn prometheus_of(&self, filter: &str) -> Result<String> {
        Ok(self
            .get(
                &format!("/stats/prometheus?filter={filter}"),
                Duration::from_secs(5),
            )?
            .text())
    }

    pub fn prometheus(&self) -> Result<String> {
        Ok(self
            .get("/stats/prometheus", Duration::from_secs(5))?
            .text())
    }
}

/// What a proxy's `/config_dump` says about the versions of its dynamic config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigVersions {
    /// The version of the filter's ECDS resources, if the proxy has any: the oldest of them
    /// (a sidecar has one per side), so a proxy has taken a version once every side has.
    pub filter: Option<String>,
    /// Each RDS route table with its version.
    pub routes: Vec<(String, String)>,
}

impl ConfigVersions {
    /// From a whole dump, or one asked for `?resource=` (whose items are the resources).
    pub fn of(dump: &Value) -> ConfigVersions {
        let mut out = ConfigVersions::default();
        for config in dump["configs"].as_array().into_iter().flatten() {
            let kind = config["@type"].as_str().unwrap_or_default();
            let text = |v: &Value| v.as_str().map(str::to_owned);
            if kind.ends_with(".DynamicRouteConfig") {
                out.routes.extend(
                    text(&config["route_config"]["name"]).zip(text(&config["version_info"])),
                );
            } else if kind.ends_with(".EcdsFilterConfig") {
                out.filter = oldest(out.filter, text(&config["version_info"]));
            } else if kind.ends_with(".EcdsConfigDump") {
                out.filter = config["ecds_filters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| text(&f["version_info"]))
                    .fold(None, |a, b| oldest(a, Some(b)));
            } else if kind.ends_with(".RoutesConfigDump") {
                out.routes = config["dynamic_route_configs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| {
                        Some((text(&r["route_config"]["name"])?, text(&r["version_info"])?))
                    })
                    .collect();
            }
        }
        out
    }
}

/// The older of two xDS versions (the publisher's decimal counters), either when one is absent.
fn oldest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (a.len(), &a) <= (b.len(), &b) { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Envoy's `/stats?format=json`: `{"stats": [{"name", "value"}, …, {"histograms": …}]}`, as
/// (name, value) for every counter and gauge. Envoy's admin answers it on loopback, and a
/// cluster sidecar's `pilot-agent request GET stats…`.
pub fn parse_envoy_stats(json: &[u8]) -> Result<Vec<(String, u64)>> {
    use anyhow::Context as _;
    let stats: serde_json::Value =
        serde_json::from_slice(json).context("Envoy stats are not JSON")?;
    Ok(stats["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["value"].as_u64()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_version_is_the_oldest_side() {
        let dump = serde_json::json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.EcdsConfigDump.EcdsFilterConfig", "version_info": "10"},
            {"@type": "type.googleapis.com/envoy.admin.v3.EcdsConfigDump.EcdsFilterConfig", "version_info": "9"},
        ]});
        assert_eq!(ConfigVersions::of(&dump).filter.as_deref(), Some("9"));
        let whole = serde_json::json!({"configs": [{
            "@type": "type.googleapis.com/envoy.admin.v3.EcdsConfigDump",
            "ecds_filters": [{"version_info": "3"}, {"version_info": "12"}],
        }]});
        assert_eq!(ConfigVersions::of(&whole).filter.as_deref(), Some("3"));
        assert_eq!(ConfigVersions::of(&serde_json::json!({})).filter, None);
    }
}
