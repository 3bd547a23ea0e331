//! Smoke-runs the harness in `--quick` mode on the first three variants (no filter, empty Wasm
//! filter, meshtally outbound) and checks the report holds sane numbers — above all that
//! meshtally's own counters grew by exactly the requests oha completed, which proves the filter
//! was really in the path while it was timed.
//!
//! Needs Envoy, oha (`bench/setup.sh`) and both modules built (`bench/run.sh` builds them), so
//! it is ignored by default; run it with
//! `cargo test -p meshtally-bench --test smoke -- --ignored`.

use clap::Parser;
use meshtally_bench::{markdown, Options};

#[test]
#[ignore = "needs Envoy, oha and the built modules: bench/setup.sh, then build (bench/run.sh does), then --ignored"]
fn quick_run_of_none_empty_and_meshtally_outbound() {
    let options = Options::parse_from([
        "meshtally-bench",
        "--quick",
        "--variants",
        "none,empty,outbound",
    ]);
    let report = meshtally_bench::run(&options, &mut |step| eprintln!("{step}")).unwrap();

    let ids: Vec<&str> = report
        .measured
        .iter()
        .map(|m| m.variant.id.as_str())
        .collect();
    assert_eq!(ids, ["none", "empty", "outbound"]);
    for m in &report.measured {
        let id = &m.variant.id;
        assert_eq!(m.samples.len(), 1, "{id}: one round in quick mode");
        for s in &m.samples {
            assert!(s.saturate.throughput() > 100.0, "{id}: {s:?}");
            assert_eq!(s.saturate.ok, s.saturate.completed, "{id}: non-200s");
            assert_eq!(s.saturate.errors + s.fixed.errors, 0, "{id}: errors");
            assert!(
                s.fixed.completed > 0 && s.fixed.p50_ms > 0.0 && s.fixed.p99_ms >= s.fixed.p50_ms,
                "{id}: latency run {:?}",
                s.fixed
            );
            assert!(
                s.cpu_us_per_request > 0.0 && s.cpu_us_per_request < 10_000.0,
                "{id}: CPU per request {}",
                s.cpu_us_per_request
            );
            assert!(s.rss_kib > 1024, "{id}: RSS {} KiB", s.rss_kib);
            assert_eq!(
                s.proxied,
                s.completed(),
                "{id}: requests the proxy completed"
            );
            if m.variant.is_meshtally() {
                assert_eq!(
                    s.counted,
                    Some(s.completed()),
                    "{id}: meshtally_requests_total must grow by the requests oha completed"
                );
            } else {
                assert_eq!(s.counted, None);
            }
        }
    }
    assert!(report.modules.iter().all(|m| m.size.bytes > 1000));

    let text = report.text();
    let md = markdown::render(&report);
    for label in ["no filter", "empty Wasm filter", "meshtally outbound"] {
        assert!(text.contains(label), "{text}");
        assert!(md.contains(&format!("| {label} |")), "{md}");
    }
    assert!(md.contains("## Method") && md.contains("## Reproduce"));
}

#[test]
#[ignore = "needs Envoy, the Zipkin jar (make setup), the release deployer and module: bench/run.sh builds them"]
fn tracing_cost_measures_both_meshes() {
    let root = meshtally_bench::workspace_root();
    let extra = meshtally_bench::tracing_cost::tracing_cost(&meshtally_bench::hooks::Context {
        root: &root,
        quick: true,
    })
    .unwrap()
    .unwrap();
    let text = extra.table.text();
    eprintln!("{text}");
    assert!(
        text.contains("on, 100 % sampled") && text.contains("on, 1 % sampled"),
        "{text}"
    );
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}
