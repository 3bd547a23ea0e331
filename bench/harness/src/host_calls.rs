//! The per-request host-call ledger from meshtally-core's fake host, as tables: how many calls
//! of each kind one request costs, the bytes each moves across the Wasm boundary, and the calls
//! one by one. It is the same stream code Envoy runs, so it holds on any machine.

use std::collections::BTreeMap;

use meshtally_core::fake::{Call, CallKind};
use meshtally_core::ledger::{Scenario, BENCH_REQUEST};

use crate::callgrind::Counted;
use crate::paired::{difference, Difference};
use crate::table::Table;
use crate::variants::{probes, PROBE_TIMES};

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

/// The probe whose price stands for a call. A header write that replaces a header the bench's
/// request carries is a `set_header`; one that adds a header is an `add_header` (request) or
/// `add_response_header` (the upstream's response carries none of meshtally's): an added header
/// also travels, upstream or to the client. The peer identity's read costs what it costs on the
/// transport the call was made on (an absent SAN over plain HTTP, a SPIFFE id over mTLS: the
/// bytes it returned say which).
fn probe_for(call: &Call) -> Option<&'static str> {
    Some(match call.kind {
        CallKind::RequestHeaderRead | CallKind::ResponseHeaderRead => "get_header",
        CallKind::Clock => "clock",
        CallKind::RequestHeaderWrite
            if BENCH_REQUEST.iter().any(|(name, _)| *name == call.what) =>
        {
            "set_header"
        }
        CallKind::RequestHeaderWrite => "add_header",
        CallKind::ResponseHeaderWrite => "add_response_header",
        CallKind::Property if call.what == PEER_IDENTITY && call.bytes_out > 0 => {
            "peer_identity-mtls"
        }
        CallKind::Property if call.what == PEER_IDENTITY => "peer_identity",
        CallKind::IncrementMetric => "increment",
        CallKind::RecordMetric => "record",
        _ => return None,
    })
}

/// The property the probe's `peer_identity` reads, as the fake host's ledger names it.
const PEER_IDENTITY: &str = "connection.uri_san_peer_certificate";

fn series(counted: &[Counted], id: &str) -> Vec<f64> {
    counted
        .iter()
        .find(|c| c.variant.id == id)
        .map_or_else(Vec::new, |c| c.per_request.clone())
}

/// Instructions one call of each probed kind costs Envoy's worker: (probe − empty) ÷ times,
/// paired by round, each probe against the empty filter over its own transport. Keyed by the
/// probe's id without `probe-`.
pub fn prices(counted: &[Counted]) -> Vec<(String, Difference)> {
    probes()
        .into_iter()
        .filter_map(|probe| {
            let d = difference(
                &series(counted, &probe.id),
                &series(counted, probe.empty_baseline()),
            )?;
            let k = f64::from(PROBE_TIMES);
            Some((
                probe.id.trim_start_matches("probe-").to_owned(),
                Difference {
                    mean: d.mean / k,
                    half_width: d.half_width / k,
                    n: d.n,
                },
            ))
        })
        .collect()
}

pub fn price_table(counted: &[Counted]) -> Table {
    let mut t = Table::new(&["host call", "instructions per call (95 % CI)"]);
    for (call, d) in prices(counted) {
        t.row(vec![call, d.show(0)]);
    }
    t
}

/// Where each meshtally request's instructions go: its ledger priced call by call, next to
/// what callgrind measured for it over the empty filter. The rest is the module's own code
/// (parsing, the metric cache, allocation) and what the SDK's dispatch does beyond the empty
/// filter's.
pub fn attribution(scenarios: &[Scenario], counted: &[Counted]) -> Table {
    let prices = prices(counted);
    let price = |call: &Call| {
        let probe = probe_for(call)?;
        prices
            .iter()
            .find(|(c, _)| *c == probe)
            .map(|(_, d)| d.mean)
    };
    let mut t = Table::new(&[
        "request",
        "host calls priced",
        "measured − empty",
        "rest (module code, dispatch)",
        "priced share ≥ 95 %",
    ]);
    for s in scenarios {
        let Some(variant) = counted
            .iter()
            .find(|c| c.variant.label == s.name)
            .map(|c| c.variant.clone())
        else {
            continue;
        };
        let mut parts: BTreeMap<CallKind, (usize, f64)> = BTreeMap::new();
        for c in &s.calls {
            let e = parts.entry(c.kind).or_default();
            e.0 += 1;
            e.1 += price(c).unwrap_or(f64::NAN);
        }
        let priced: f64 = parts.values().map(|(_, p)| p).sum();
        let detail: Vec<String> = parts
            .iter()
            .map(|(k, (n, p))| format!("{n} × {} = {p:.0}", k.as_str()))
            .collect();
        let measured = difference(
            &series(counted, &variant.id),
            &series(counted, variant.empty_baseline()),
        );
        t.row(vec![
            s.name.to_owned(),
            format!("{priced:.0} ({})", detail.join(", ")),
            measured.map_or("–".into(), |d| d.show(0)),
            measured.map_or("–".into(), |d| format!("{:.0}", d.mean - priced)),
            measured.map_or("–".into(), |d| {
                let share = priced / d.mean * 100.0;
                let met = if share >= 95.0 { "met" } else { "missed" };
                format!("{share:.0} %: {met}")
            }),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_a_request_makes_has_a_probe_price() {
        for scenario in meshtally_core::ledger::per_request() {
            for call in &scenario.calls {
                assert!(
                    probe_for(call).is_some_and(|p| probes()
                        .iter()
                        .any(|v| v.id.trim_start_matches("probe-") == p)),
                    "{}: no probe prices {:?}",
                    scenario.name,
                    call.kind
                );
            }
        }
    }
}
