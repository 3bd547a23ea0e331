//! A Grafana dashboard for the mesh, typed: per-edge request rate, success rate, p99 latency
//! and mTLS share, and the split of each service's calls by version. Every query reads the
//! callees' (inbound) meshtally series, as `deployer top` does, so the two agree; the labels
//! `version` and `namespace` are the scrape's (the PodMonitor's, or `up --prometheus`'s).

use serde::Serialize;

/// Its file in an output folder.
pub const FILE: &str = "monitoring/grafana-dashboard.json";
/// Grafana's rate window variable: replaced by the interval that fits the scrape.
pub const RATE_INTERVAL: &str = "$__rate_interval";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub title: String,
    pub uid: String,
    pub tags: Vec<String>,
    pub schema_version: u32,
    pub refresh: String,
    pub time: TimeRange,
    pub templating: Templating,
    /// Required by Grafana's schema; holds Grafana's own built-in annotations query, as a
    /// dashboard saved from its UI does.
    pub annotations: Annotations,
    pub panels: Vec<Panel>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotations {
    pub list: Vec<Annotation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub built_in: u32,
    pub datasource: DataSource,
    pub enable: bool,
    pub hide: bool,
    pub icon_color: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeRange {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Templating {
    pub list: Vec<Variable>,
}

/// The Prometheus data source to query, chosen when the dashboard is imported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variable {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Panel {
    pub id: u32,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub datasource: DataSource,
    pub grid_pos: GridPos,
    pub field_config: FieldConfig,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataSource {
    #[serde(rename = "type")]
    pub kind: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridPos {
    pub h: u32,
    pub w: u32,
    pub x: u32,
    pub y: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldConfig {
    pub defaults: FieldDefaults,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDefaults {
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub ref_id: String,
    pub expr: String,
    pub legend_format: String,
}

/// The callees' (inbound) series of the mesh's namespace.
fn inbound(namespace: &str) -> String {
    format!("direction=\"inbound\",namespace=\"{namespace}\"")
}

/// `sum by (labels) (rate(series[$__rate_interval]))`.
fn rate(by: &str, series: &str) -> String {
    format!("sum by ({by}) (rate({series}[{RATE_INTERVAL}]))")
}

/// The panels' queries for a mesh's namespace: (title, unit, expression, legend).
pub fn queries(namespace: &str) -> Vec<(&'static str, &'static str, String, &'static str)> {
    const EDGE: &str = "source, destination";
    const LEGEND: &str = "{{source}} → {{destination}}";
    let inbound = inbound(namespace);
    let requests = |extra: &str| format!("meshtally_requests_total{{{inbound}{extra}}}");
    let all = rate(EDGE, &requests(""));
    vec![
        (
            "Requests per second, per edge",
            "reqps",
            all.clone(),
            LEGEND,
        ),
        (
            "Success rate (not 5xx), per edge",
            "percentunit",
            format!(
                "{} / {all}",
                rate(EDGE, &requests(",response_code_class!~\"5xx|none\""))
            ),
            LEGEND,
        ),
        (
            "p99 latency, per edge",
            "ms",
            format!(
                "histogram_quantile(0.99, {})",
                rate(
                    "source, destination, le",
                    &format!("meshtally_request_duration_milliseconds_bucket{{{inbound}}}")
                )
            ),
            LEGEND,
        ),
        (
            "mTLS share, per edge",
            "percentunit",
            // Edges without any mTLS call are 0, not missing.
            format!(
                "({} or 0 * {all}) / {all}",
                rate(
                    EDGE,
                    &requests(",connection_security_policy=\"mutual_tls\"")
                )
            ),
            LEGEND,
        ),
        (
            "Requests per second, by destination version",
            "reqps",
            rate("destination, version", &requests("")),
            "{{destination}} {{version}}",
        ),
    ]
}

pub fn dashboard(namespace: &str) -> Dashboard {
    let datasource = DataSource {
        kind: "prometheus".into(),
        uid: "${datasource}".into(),
    };
    let panels = queries(namespace)
        .into_iter()
        .zip(0u32..)
        .map(|((title, unit, expr, legend), i)| Panel {
            id: i + 1,
            title: title.into(),
            kind: "timeseries".into(),
            datasource: datasource.clone(),
            grid_pos: GridPos {
                h: 8,
                w: 12,
                x: (i % 2) * 12,
                y: (i / 2) * 8,
            },
            field_config: FieldConfig {
                defaults: FieldDefaults { unit: unit.into() },
            },
            targets: vec![Target {
                ref_id: "A".into(),
                expr,
                legend_format: legend.into(),
            }],
        })
        .collect();
    Dashboard {
        title: format!("meshtally: {namespace}"),
        uid: format!("meshtally-{namespace}"),
        tags: vec!["meshtally".into(), "istio".into()],
        schema_version: 39,
        refresh: "10s".into(),
        time: TimeRange {
            from: "now-15m".into(),
            to: "now".into(),
        },
        annotations: Annotations {
            list: vec![Annotation {
                built_in: 1,
                datasource: DataSource {
                    kind: "grafana".into(),
                    uid: "-- Grafana --".into(),
                },
                enable: true,
                hide: true,
                icon_color: "rgba(0, 211, 255, 1)".into(),
                name: "Annotations & Alerts".into(),
                kind: "dashboard".into(),
            }],
        },
        templating: Templating {
            list: vec![Variable {
                name: "datasource".into(),
                label: "Prometheus".into(),
                kind: "datasource".into(),
                query: "prometheus".into(),
            }],
        },
        panels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_reads_the_callees_of_its_namespace() {
        let d = dashboard("shop");
        assert_eq!(d.panels.len(), 5);
        for p in &d.panels {
            let expr = &p.targets[0].expr;
            assert!(
                expr.contains("direction=\"inbound\",namespace=\"shop\""),
                "{expr}"
            );
            assert!(expr.contains(RATE_INTERVAL), "{expr}");
        }
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["panels"][1]["gridPos"]["x"], 12);
        assert_eq!(json["panels"][0]["targets"][0]["refId"], "A");
        assert_eq!(json["templating"]["list"][0]["type"], "datasource");
    }
}
