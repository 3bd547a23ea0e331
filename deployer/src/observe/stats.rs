//! `deployer stats`: reads every sidecar's meshtally counters and shows who called whom, as a
//! matrix (sources as rows, destinations as columns) per direction, or as JSON rows. The
//! numbers `stats` shows are computed here, from whatever sidecars a [`super::Counted`] mesh has.

use std::collections::{BTreeMap, BTreeSet};

use meshtally_core::metrics::{parse_metric_name, REQUESTS_TOTAL};
use serde::Serialize;

use crate::table::Table;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct Row {
    pub source: String,
    pub destination: String,
    pub direction: String,
    pub response_code_class: String,
    pub count: u64,
}

/// Sums counters with the same labels across sidecars; names that are not meshtally's request
/// counter (Envoy's stats filter matches by substring) are skipped.
pub(crate) fn merge(counters: impl IntoIterator<Item = (String, u64)>) -> Vec<Row> {
    let mut merged: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
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
            m.direction.to_owned(),
            m.response_code_class.to_owned(),
        );
        *merged.entry(key).or_default() += value;
    }
    merged
        .into_iter()
        .map(
            |((source, destination, direction, response_code_class), count)| Row {
                source,
                destination,
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
    if out.is_empty() {
        out.push_str("no meshtally counters yet: send some traffic (deployer verify)\n");
    }
    out
}
