//! meshtally's series read from a Prometheus server's HTTP API instead of from each sidecar
//! (`canary --prometheus URL`): one instant query for the callee-side counters and duration
//! buckets, turned back into exposition lines so [`super::signals::Snapshot`] reads them as it
//! reads a sidecar's `/stats/prometheus`. Each series keeps the labels the scrape gave it (pod,
//! instance), so a restarted sidecar is still seen as a counter reset.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use meshtally_wire::metrics::{REQUESTS_TOTAL, REQUEST_DURATION};
use serde_json::Value;

use super::signals::Snapshot;

/// The query: every inbound meshtally counter and duration bucket.
fn query() -> String {
    format!("{{__name__=~\"{REQUESTS_TOTAL}|{REQUEST_DURATION}_bucket\",direction=\"inbound\"}}")
}

/// Percent-encodes a query parameter (everything but unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One read of the server at `url` (`http://host:port`, no trailing path).
pub(crate) fn read(url: &str) -> Result<Snapshot> {
    let url = url.trim_end_matches('/');
    let full = format!("{url}/api/v1/query?query={}", encode(&query()));
    let resp = meshtally_envoy::http::get(&full, Duration::from_secs(10))
        .with_context(|| format!("querying Prometheus at {url}"))?;
    if resp.status != 200 {
        bail!(
            "Prometheus at {url} answered {}: {}",
            resp.status,
            resp.text().chars().take(200).collect::<String>()
        );
    }
    let body: Value = serde_json::from_slice(&resp.body)
        .with_context(|| format!("Prometheus at {url} did not answer JSON"))?;
    Ok(Snapshot::from_expositions([(
        "prometheus",
        exposition(&body).as_str(),
    )]))
}

/// The `vector` result of an instant query as exposition lines.
fn exposition(body: &Value) -> String {
    let mut out = String::new();
    for series in body["data"]["result"].as_array().into_iter().flatten() {
        let Some(name) = series["metric"]["__name__"].as_str() else {
            continue;
        };
        let Some(value) = series["value"][1].as_str() else {
            continue;
        };
        let labels: Vec<String> = series["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "__name__")
            .filter_map(|(k, v)| {
                let v = v.as_str()?.replace('\\', "\\\\").replace('"', "\\\"");
                Some(format!("{k}=\"{v}\""))
            })
            .collect();
        out += &format!("{name}{{{}}} {value}\n", labels.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_vector_reads_as_exposition_lines() {
        let body = serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "meshtally_requests_total", "source": "service-b", "destination": "service-a",
                        "destination_version": "v2", "direction": "inbound", "response_code_class": "5xx", "pod": "a-v2"},
             "value": [1700000000.0, "7"]},
            {"metric": {"__name__": "meshtally_request_duration_milliseconds_bucket", "direction": "inbound", "le": "+Inf"},
             "value": [1700000000.0, "9"]},
        ]}});
        let text = exposition(&body);
        assert_eq!(
            text.lines().next().unwrap(),
            "meshtally_requests_total{destination=\"service-a\",destination_version=\"v2\",direction=\"inbound\",pod=\"a-v2\",response_code_class=\"5xx\",source=\"service-b\"} 7"
        );
        assert!(text.contains("le=\"+Inf\"} 9"), "{text}");
        assert_eq!(encode("a{b=\"c\"}"), "a%7Bb%3D%22c%22%7D");
    }
}
