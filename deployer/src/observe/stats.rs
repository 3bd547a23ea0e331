//! `deployer stats`: reads every sidecar's meshtally counters and shows who called whom, as a
//! matrix (sources as rows, destinations as columns) per direction, then how each destination's
//! calls split over its versions, or as JSON rows. The numbers `stats` shows are computed here,
//! from whatever sidecars a [`super::Counted`] mesh has.

use std::collections::{BTreeMap, BTreeSet};

use meshtally_core::config::UNKNOWN_VERSION;
use meshtally_wire::metrics::{parse_metric_name, REQUESTS_TOTAL};
use serde::Serialize;

use crate::table::Table;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct Row {
    pub source: String,
    pub destination: String,
    /// The version that answered: the callee's own inbound, what its sidecar said outbound
    /// (`unknown` when the call never reached one, e.g. an open circuit).
    pub destination_version: String,
    pub direction: String,
    pub response_code_class: String,
    pub count: u64,
}

/// Sums counters with the same labels across sidecars; names that are not meshtally's request
/// counter (Envoy's stats filter matches by substring) are skipped.
pub(crate) fn merge(counters: impl IntoIterator<Item = (String, u64)>) -> Vec<Row> {
    type Key = (String, String, String, String, String);
    let mut merged: BTreeMap<Key, u64> = BTreeMap::new();
    for (name, value) in counters {
        let Some(m) = parse_metric_name(&name) else {
            continue;
        };
        if m.metric != REQUESTS_TOTAL {
            continue;
        }
        let key = (
            m.source.to_owned(),
            m.destination.to_owned(),
            m.destination_version.to_owned(),
            m.direction.to_owned(),
            m.response_code_class.to_owned(),
        );
        *merged.entry(key).or_default() += value;
    }
    merged
        .into_iter()
        .map(
            |(
                (source, destination, destination_version, direction, response_code_class),
                count,
            )| Row {
                source,
                destination,
                destination_version,
                direction,
                response_code_class,
                count,
            },
        )
        .collect()
}

/// One matrix per direction: calls counted by callees (inbound) and by callers (outbound),
/// all response classes summed, with the non-2xx share noted.
pub(crate) fn matrices(rows: &[Row]) -> String {
    let mut out = String::new();
    for (direction, title) in [
        ("inbound", "counted by the callee (inbound)"),
        ("outbound", "counted by the caller (outbound)"),
    ] {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.direction == direction).collect();
        if mine.is_empty() {
            continue;
        }
        let sources: BTreeSet<&str> = mine.iter().map(|r| r.source.as_str()).collect();
        let dests: BTreeSet<&str> = mine.iter().map(|r| r.destination.as_str()).collect();
        let mut header = vec!["source \\ destination".to_owned()];
        header.extend(dests.iter().map(|d| d.to_string()));
        let mut table = Table::new(header);
        for s in &sources {
            let mut row = vec![s.to_string()];
            for d in &dests {
                let cell: Vec<&&Row> = mine
                    .iter()
                    .filter(|r| r.source == *s && r.destination == *d)
                    .collect();
                let total: u64 = cell.iter().map(|r| r.count).sum();
                let errors: u64 = cell
                    .iter()
                    .filter(|r| r.response_code_class != "2xx")
                    .map(|r| r.count)
                    .sum();
                row.push(match (total, errors) {
                    (0, _) => "·".to_owned(),
                    (t, 0) => t.to_string(),
                    (t, e) => format!("{t} ({e} non-2xx)"),
                });
            }
            table.row(row);
        }
        out.push_str(&format!("calls {title}:\n{}\n", table.render()));
    }
    out.push_str(&versions(rows));
    if out.is_empty() {
        out.push_str("no meshtally counters yet: send some traffic (deployer verify)\n");
    }
    out
}

/// Each destination's calls by the version that served them, as its callees counted them
/// (inbound): the canary's split. Empty when no sidecar knows its version.
fn versions(rows: &[Row]) -> String {
    let mut per: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for r in rows {
        if r.direction != "inbound" || r.destination_version == UNKNOWN_VERSION {
            continue;
        }
        let cell = per
            .entry((r.destination.as_str(), r.destination_version.as_str()))
            .or_default();
        cell.0 += r.count;
        if r.response_code_class != "2xx" {
            cell.1 += r.count;
        }
    }
    if per.is_empty() {
        return String::new();
    }
    let mut table = Table::new(
        ["destination", "version", "calls", "share", "non-2xx"]
            .map(str::to_owned)
            .to_vec(),
    );
    for (&(destination, version), &(calls, errors)) in &per {
        let total: u64 = per
            .iter()
            .filter(|((d, _), _)| *d == destination)
            .map(|(_, (c, _))| c)
            .sum();
        let share = if total == 0 {
            0.0
        } else {
            calls as f64 * 100.0 / total as f64
        };
        table.row(vec![
            destination.to_owned(),
            version.to_owned(),
            calls.to_string(),
            format!("{share:.1} %"),
            errors.to_string(),
        ]);
    }
    format!(
        "calls by destination version (counted by the callee):\n{}\n",
        table.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(dest: &str, version: &str, class: &str, count: u64) -> Row {
        Row {
            source: "gw".into(),
            destination: dest.into(),
            destination_version: version.into(),
            direction: "inbound".into(),
            response_code_class: class.into(),
            count,
        }
    }

    #[test]
    fn versions_show_each_destinations_split() {
        let rows = [
            row("a", "v1", "2xx", 90),
            row("a", "v2", "2xx", 8),
            row("a", "v2", "5xx", 2),
            row("b", UNKNOWN_VERSION, "2xx", 5),
        ];
        let text = versions(&rows);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[2]
                .split_whitespace()
                .eq(["a", "v1", "90", "90.0", "%", "0"]),
            "{text}"
        );
        assert!(
            lines[3]
                .split_whitespace()
                .eq(["a", "v2", "10", "10.0", "%", "2"]),
            "{text}"
        );
        assert_eq!(versions(&rows[3..]), "");
    }
}
