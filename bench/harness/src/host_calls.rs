//! The per-request host-call ledger from meshtally-core's fake host, as tables: how many calls
//! of each kind one request costs, the bytes each moves across the Wasm boundary, and the calls
//! one by one. It is the same stream code Envoy runs, so it holds on any machine.

use std::collections::BTreeMap;

use meshtally_core::fake::CallKind;
use meshtally_core::ledger::Scenario;

use crate::table::Table;

/// One row per scenario: calls by kind, in total, and bytes into and out of the module.
pub fn summary(scenarios: &[Scenario]) -> Table {
    let mut kinds: Vec<CallKind> = scenarios
        .iter()
        .flat_map(|s| s.calls.iter().map(|c| c.kind))
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut header = vec!["request".to_owned(), "host calls".to_owned()];
    header.extend(kinds.iter().map(|k| k.as_str().to_owned()));
    header.extend([
        "bytes module → host".to_owned(),
        "bytes host → module".to_owned(),
    ]);
    let mut t = Table {
        header,
        rows: Vec::new(),
    };
    for s in scenarios {
        let mut by_kind: BTreeMap<CallKind, usize> = BTreeMap::new();
        for c in &s.calls {
            *by_kind.entry(c.kind).or_default() += 1;
        }
        let mut row = vec![s.name.to_owned(), s.calls.len().to_string()];
        row.extend(
            kinds
                .iter()
                .map(|k| by_kind.get(k).copied().unwrap_or(0).to_string()),
        );
        row.extend([s.bytes_in().to_string(), s.bytes_out().to_string()]);
        t.row(row);
    }
    t
}

/// Every call of every scenario, in the order the stream makes them.
pub fn detail(scenarios: &[Scenario]) -> Table {
    let mut t = Table::new(&["request", "#", "host call", "on", "bytes in", "bytes out"]);
    for s in scenarios {
        for (i, c) in s.calls.iter().enumerate() {
            t.row(vec![
                s.name.to_owned(),
                (i + 1).to_string(),
                c.kind.as_str().to_owned(),
                if c.what.is_empty() {
                    "–".to_owned()
                } else {
                    format!("`{}`", c.what)
                },
                c.bytes_in.to_string(),
                c.bytes_out.to_string(),
            ]);
        }
    }
    t
}
