//! `deployer top`: reads every sidecar twice, a window apart, and shows the golden signals of
//! each edge (as Linkerd's `viz stat` and Kiali's edge labels do) and a summary per service.
//! The rows are [`super::signals`]'; this module takes the reads and lays the rows out.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::signals::{self, EdgeRow, ServiceRow, Snapshot};
use super::Counted;
use crate::table::Table;

/// One read of every sidecar.
pub(crate) fn read(mesh: &dyn Counted) -> Result<(Snapshot, Instant)> {
    let texts = mesh.expositions()?;
    let at = Instant::now();
    Ok((
        Snapshot::from_expositions(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))),
        at,
    ))
}

/// The rows of one window, the window measured between the two reads.
pub(crate) struct Window {
    pub edges: Vec<EdgeRow>,
    pub services: Vec<ServiceRow>,
    pub length: Duration,
}

impl Window {
    pub(crate) fn between(before: &(Snapshot, Instant), after: &(Snapshot, Instant)) -> Window {
        let length = after.1.saturating_duration_since(before.1);
        Window {
            edges: signals::edges(&before.0, &after.0, length),
            services: signals::services(&before.0, &after.0, length),
            length,
        }
    }

    /// The edges table, then the services table.
    pub(crate) fn tables(&self) -> String {
        if self.edges.is_empty() {
            return format!(
                "no calls in the last {:.1} s: send some traffic (deployer verify)\n",
                self.length.as_secs_f64()
            );
        }
        let header = |first: &[&str]| {
            first
                .iter()
                .chain(&["RPS", "SUCCESS", "P50", "P95", "P99", "MTLS"])
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        let mut edges = Table::new(header(&["SOURCE", "DESTINATION", "VERSION", "REQUESTS"]));
        for row in &self.edges {
            let e = &row.edge;
            let mut cells = vec![
                e.source.clone(),
                e.destination.clone(),
                e.destination_version.clone().unwrap_or_else(|| "-".into()),
                row.signals.requests.to_string(),
            ];
            cells.extend(signal_cells(&row.signals));
            edges.row(cells);
        }
        let mut services = Table::new(header(&["SERVICE", "REQUESTS"]));
        for row in &self.services {
            let mut cells = vec![row.service.clone(), row.signals.requests.to_string()];
            cells.extend(signal_cells(&row.signals));
            services.row(cells);
        }
        format!(
            "edges over the last {:.1} s, as each callee counted them:\n{}\ncalls into each service:\n{}",
            self.length.as_secs_f64(),
            edges.render(),
            services.render()
        )
    }
}

fn signal_cells(s: &signals::Signals) -> Vec<String> {
    let percent = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}ms"));
    vec![
        format!("{:.1}", s.rps),
        percent(s.success_rate),
        ms(s.p50_ms),
        ms(s.p95_ms),
        ms(s.p99_ms),
        percent(s.mtls_share),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_and_say_when_idle() {
        let t = "meshtally_requests_total{source=\"service-a\",destination=\"service-b\",direction=\"inbound\",response_code_class=\"2xx\",connection_security_policy=\"mutual_tls\"} 30\n\
                 meshtally_requests_total{source=\"tester\",destination=\"service-b\",direction=\"inbound\",response_code_class=\"5xx\",connection_security_policy=\"none\"} 10\n";
        let now = Instant::now();
        let before = (Snapshot::default(), now);
        let after = (
            Snapshot::from_expositions([("b", t)]),
            now + Duration::from_secs(10),
        );
        let text = Window::between(&before, &after).tables();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "edges over the last 10.0 s, as each callee counted them:"
        );
        assert!(
            lines[1].starts_with("SOURCE     DESTINATION  VERSION  REQUESTS  RPS  SUCCESS"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("service-a  service-b    -        30        3.0  100.0%   -"),
            "{text}"
        );
        assert!(lines[3].ends_with("0.0%"), "{text}");
        assert!(text.contains("\nservice-b  40        4.0  75.0%"), "{text}");
        let idle = Window::between(&after, &after).tables();
        assert!(idle.starts_with("no calls in the last 0.0 s"), "{idle}");
    }
}
