//! The golden signals per edge: from two reads of every sidecar's meshtally metrics (a
//! [`Snapshot`] each), the calls each callee counted in between, per caller → callee edge (with
//! the callee's version when its sidecar reports one): requests, rate, success rate, latency
//! quantiles and the mTLS share. `top` prints these rows; the dashboard builds on them.
//!
//! The callee's (inbound) counters are the ones used, as Istio's dashboards use
//! `reporter="destination"`: only the callee knows whether a certificate proved the caller,
//! and the gateway, which runs no meshtally filter, is seen only there.

use std::collections::BTreeMap;
use std::time::Duration;

use meshtally_wire::metrics::{REQUESTS_TOTAL, REQUEST_DURATION};
use serde::Serialize;

use super::exposition::{self, Sample};
use super::quantile::histogram_quantile;

/// The label the traffic split adds to name the callee's version.
pub(crate) const VERSION_LABEL: &str = "destination_version";

/// One series of one sidecar: the sidecar's name, the metric name and its labels, sorted.
type SeriesKey = (String, String, Vec<(String, String)>);

/// One read of every sidecar's inbound meshtally samples, each series kept per sidecar, so a
/// restarted replica's reset is seen as one (equal series of replicas are summed only after
/// the gains are taken).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    series: BTreeMap<SeriesKey, f64>,
}

impl Snapshot {
    /// From each sidecar's name and `/stats/prometheus` text.
    pub(crate) fn from_expositions<'a>(
        texts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Snapshot {
        let mut series = BTreeMap::new();
        for (proxy, text) in texts {
            for s in exposition::parse(text, "meshtally_") {
                // A call that left the mesh has no callee in it: its caller's count is the
                // only one (`destination_version="external"`).
                let external =
                    s.label(VERSION_LABEL) == Some(meshtally_wire::metrics::EXTERNAL_VERSION);
                if s.label("direction") != Some("inbound") && !external {
                    continue;
                }
                let labels = s.labels.into_iter().collect();
                *series
                    .entry((proxy.to_owned(), s.name, labels))
                    .or_default() += s.value;
            }
        }
        Snapshot { series }
    }

    /// What each series gained from `before` to `self`. A series lower than before was reset
    /// (its sidecar restarted): all of it is new, as Prometheus's `increase` counts it.
    pub(crate) fn since(&self, before: &Snapshot) -> Vec<Sample> {
        self.series
            .iter()
            .map(|(key, &now)| {
                let (_, name, labels) = key;
                let then = before.series.get(key).copied().unwrap_or(0.0);
                Sample {
                    name: name.clone(),
                    labels: labels.iter().cloned().collect(),
                    value: if now >= then { now - then } else { now },
                }
            })
            .collect()
    }
}

/// A caller → callee edge, with the callee's version when there is one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) struct Edge {
    pub source: String,
    pub destination: String,
    pub destination_version: Option<String>,
}

/// The golden signals of one edge (or one service's calls) over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Signals {
    pub requests: u64,
    pub rps: f64,
    /// Share of calls answered without a 5xx (and answered at all); `None` without calls.
    pub success_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of calls a verified certificate proved (`connection_security_policy="mutual_tls"`).
    pub mtls_share: Option<f64>,
}

/// One row of `top --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct EdgeRow {
    #[serde(flatten)]
    pub edge: Edge,
    #[serde(flatten)]
    pub signals: Signals,
}

/// Calls into one service from every caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ServiceRow {
    pub service: String,
    #[serde(flatten)]
    pub signals: Signals,
}

/// Counts gathered for an edge or a service before the ratios are taken.
#[derive(Debug, Clone, Default)]
struct Tally {
    requests: f64,
    ok: f64,
    mtls: f64,
    /// Cumulative counts by bucket bound, summed over classes and policies.
    buckets: BTreeMap<u64, f64>,
}

impl Tally {
    fn add(&mut self, sample: &Sample) {
        let name = sample.name.as_str();
        if name == REQUESTS_TOTAL {
            self.requests += sample.value;
            if !matches!(sample.label("response_code_class"), Some("5xx" | "none")) {
                self.ok += sample.value;
            }
            if sample.label("connection_security_policy") == Some("mutual_tls") {
                self.mtls += sample.value;
            }
        } else if name.strip_suffix("_bucket") == Some(REQUEST_DURATION) {
            // Bounds are never negative, so their bit patterns sort as the numbers do.
            if let Some(le) = exposition::le(sample).filter(|le| *le >= 0.0) {
                *self.buckets.entry(le.to_bits()).or_default() += sample.value;
            }
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.mtls += other.mtls;
        for (le, count) in &other.buckets {
            *self.buckets.entry(*le).or_default() += count;
        }
    }

    fn signals(&self, window: Duration) -> Signals {
        let buckets: Vec<(f64, f64)> = self
            .buckets
            .iter()
            .map(|(le, c)| (f64::from_bits(*le), *c))
            .collect();
        let share = |part: f64| (self.requests > 0.0).then(|| part / self.requests);
        let secs = window.as_secs_f64();
        Signals {
            requests: self.requests.round() as u64,
            rps: if secs > 0.0 {
                self.requests / secs
            } else {
                0.0
            },
            success_rate: share(self.ok),
            p50_ms: histogram_quantile(0.5, &buckets),
            p95_ms: histogram_quantile(0.95, &buckets),
            p99_ms: histogram_quantile(0.99, &buckets),
            mtls_share: share(self.mtls),
        }
    }
}

/// Every edge that carried calls between two reads `window` apart, sorted by edge.
pub(crate) fn edges(before: &Snapshot, after: &Snapshot, window: Duration) -> Vec<EdgeRow> {
    tallies(before, after)
        .into_iter()
        .filter(|(_, t)| t.requests > 0.0)
        .map(|(edge, t)| EdgeRow {
            edge,
            signals: t.signals(window),
        })
        .collect()
}

/// Per callee, all its callers' calls together (all versions), sorted by service.
pub(crate) fn services(before: &Snapshot, after: &Snapshot, window: Duration) -> Vec<ServiceRow> {
    let mut by_service: BTreeMap<String, Tally> = BTreeMap::new();
    for (edge, t) in tallies(before, after) {
        by_service.entry(edge.destination).or_default().merge(&t);
    }
    by_service
        .into_iter()
        .filter(|(_, t)| t.requests > 0.0)
        .map(|(service, t)| ServiceRow {
            service,
            signals: t.signals(window),
        })
        .collect()
}

fn tallies(before: &Snapshot, after: &Snapshot) -> BTreeMap<Edge, Tally> {
    let mut tallies: BTreeMap<Edge, Tally> = BTreeMap::new();
    for sample in after.since(before) {
        let (Some(source), Some(destination)) =
            (sample.label("source"), sample.label("destination"))
        else {
            continue;
        };
        let edge = Edge {
            source: source.to_owned(),
            destination: destination.to_owned(),
            destination_version: sample
                .label(VERSION_LABEL)
                .filter(|v| !v.is_empty() && *v != "unknown")
                .map(str::to_owned),
        };
        tallies.entry(edge).or_default().add(&sample);
    }
    tallies
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sidecar's exposition: `calls` as (source, class, policy, count) into service-b,
    /// and a histogram with `le_counts` for every series of the first call.
    fn text(calls: &[(&str, &str, &str, u64)], le_counts: &[(&str, u64)]) -> String {
        let mut out = String::from("# TYPE meshtally_requests_total counter\n");
        for (source, class, policy, n) in calls {
            let labels = format!(
                r#"source="{source}",destination="service-b",direction="inbound",response_code_class="{class}",connection_security_policy="{policy}""#
            );
            out += &format!("meshtally_requests_total{{{labels}}} {n}\n");
            // An outbound series of the same pair: never counted by `top`.
            out += &format!(
                "meshtally_requests_total{{{}}} 1000\n",
                labels.replace("inbound", "outbound")
            );
            for (le, c) in le_counts {
                let c = c * n / calls[0].3.max(1);
                out += &format!(
                    "meshtally_request_duration_milliseconds_bucket{{{labels},le=\"{le}\"}} {c}\n"
                );
            }
        }
        out
    }

    const TEN: Duration = Duration::from_secs(10);

    #[test]
    fn signals_of_an_edge_over_a_window() {
        let before = Snapshot::from_expositions([(
            "b",
            text(
                &[("service-a", "2xx", "mutual_tls", 10)],
                &[("1", 10), ("5", 10), ("+Inf", 10)],
            )
            .as_str(),
        )]);
        // 40 more mTLS calls (20 of them ≤ 1 ms, 20 in (1, 5]), 8 plain-text 5xx ones.
        let after = Snapshot::from_expositions([(
            "b",
            text(
                &[
                    ("service-a", "2xx", "mutual_tls", 50),
                    ("service-a", "5xx", "none", 8),
                ],
                &[("1", 30), ("5", 50), ("+Inf", 50)],
            )
            .as_str(),
        )]);
        let rows = edges(&before, &after, TEN);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        assert_eq!(row.edge.source, "service-a");
        assert_eq!(row.edge.destination_version, None);
        let s = &row.signals;
        assert_eq!(s.requests, 48);
        assert!((s.rps - 4.8).abs() < 1e-9);
        assert!((s.success_rate.unwrap() - 40.0 / 48.0).abs() < 1e-9);
        assert!((s.mtls_share.unwrap() - 40.0 / 48.0).abs() < 1e-9);
        // Buckets gained: ≤1: 20 + 4 (the 5xx series scaled 8/50 of 30), ≤5: 40 + 8, +Inf: 48.
        let buckets = [(1.0, 24.0), (5.0, 48.0), (f64::INFINITY, 48.0)];
        assert_eq!(s.p50_ms, histogram_quantile(0.5, &buckets));
        assert_eq!(s.p99_ms, histogram_quantile(0.99, &buckets));
        assert_eq!(s.p50_ms, Some(1.0));

        let json = serde_json::to_value(row).unwrap();
        for key in [
            "source",
            "destination",
            "destination_version",
            "requests",
            "rps",
            "success_rate",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "mtls_share",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert!(json["destination_version"].is_null());
    }

    #[test]
    fn replicas_sum_resets_count_whole_and_idle_edges_are_left_out() {
        let one = text(&[("service-a", "2xx", "mutual_tls", 5)], &[]);
        let before = Snapshot::from_expositions([("b-1", one.as_str()), ("b-2", one.as_str())]);
        // Replica 1 restarted (2 < 5): all 2 are new; replica 2 gained 3.
        let (two, eight) = (
            text(&[("service-a", "2xx", "mutual_tls", 2)], &[]),
            text(&[("service-a", "2xx", "mutual_tls", 8)], &[]),
        );
        let after = Snapshot::from_expositions([("b-1", two.as_str()), ("b-2", eight.as_str())]);
        let rows = edges(&before, &after, TEN);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].signals.requests, 5);
        assert!(edges(&after, &after, TEN).is_empty());
        assert!(services(&after, &after, TEN).is_empty());
    }

    /// A call that left the mesh has only its caller's count: `top` takes that one (and no
    /// other outbound series).
    #[test]
    fn calls_that_left_the_mesh_are_counted_from_their_caller() {
        let out = |destination: &str, version: &str, class: &str, n: u64| {
            format!(
                "meshtally_requests_total{{source=\"service-a\",destination=\"{destination}\",destination_version=\"{version}\",direction=\"outbound\",response_code_class=\"{class}\",connection_security_policy=\"unknown\"}} {n}\n"
            )
        };
        let text = out("payments", "external", "2xx", 9)
            + &out("BlackHoleCluster", "external", "5xx", 2)
            + &out("service-b", "unknown", "2xx", 50);
        let after = Snapshot::from_expositions([("a", text.as_str())]);
        let rows = edges(&Snapshot::default(), &after, TEN);
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.edge.destination.as_str(),
                    r.edge.destination_version.as_deref(),
                    r.signals.requests,
                    r.signals.success_rate,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("BlackHoleCluster", Some("external"), 2, Some(0.0)),
                ("payments", Some("external"), 9, Some(1.0)),
            ]
        );
    }

    #[test]
    fn versions_split_edges_and_services_sum_them() {
        let v = |version: &str, n: u64| {
            format!(
                "meshtally_requests_total{{source=\"service-a\",destination=\"service-b\",destination_version=\"{version}\",direction=\"inbound\",response_code_class=\"2xx\",connection_security_policy=\"mutual_tls\"}} {n}\n"
            )
        };
        let text = v("v1", 9) + &v("v2", 1);
        let after = Snapshot::from_expositions([("b", text.as_str())]);
        let rows = edges(&Snapshot::default(), &after, TEN);
        let versions: Vec<_> = rows
            .iter()
            .map(|r| (r.edge.destination_version.as_deref(), r.signals.requests))
            .collect();
        assert_eq!(versions, [(Some("v1"), 9), (Some("v2"), 1)]);
        let services = services(&Snapshot::default(), &after, TEN);
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].service, "service-b");
        assert_eq!(services[0].signals.requests, 10);
        assert_eq!(services[0].signals.p50_ms, None);
    }
}
