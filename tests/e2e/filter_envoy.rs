//! The built filter inside real Envoy: a caller sidecar (outbound) and a callee sidecar (inbound)
//! in front of a recording upstream, over plain HTTP and over mTLS with SPIFFE certificates.

use std::path::Path;

use anyhow::Result;
use meshtally_envoy::bootstrap::{self, Filter, Inbound, MtlsMode, Outbound, Proxy};
use meshtally_envoy::pki::Ca;
use meshtally_envoy::routes::Upstream as Peer;
use meshtally_tests::echo::{values, Echo};
use meshtally_tests::envoy::Envoy;
use meshtally_tests::{filter_wasm, http};
use meshtally_wire::identity::spiffe_id;
use serde_json::{json, Value};

const B_HOST: &str = "service-b.istio-demo.svc.cluster.local:8001";

/// service-a's sidecar → service-b's sidecar → upstream app.
struct Mesh {
    app: Echo,
    callee: Envoy,
    caller: Envoy,
    callee_port: u16,
    caller_port: u16,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
struct Options {
    mtls: bool,
    /// The SPIFFE service account in service-a's certificate (defaults to service-a).
    caller_identity: Option<&'static str>,
    caller_config: Option<Value>,
    callee_config: Option<Value>,
    /// Another build of the module than `make wasm`'s.
    wasm: Option<std::path::PathBuf>,
}

fn mesh(opts: Options) -> Result<Mesh> {
    let dir = tempfile::tempdir()?;
    let wasm = opts.wasm.clone().unwrap_or_else(filter_wasm);
    let app = Echo::start()?;
    let ca = Ca::new(dir.path(), "mesh")?;
    let b_id = ca.issue(dir.path(), "istio-demo", "service-b")?;
    let a_id = ca.issue(
        dir.path(),
        "istio-demo",
        opts.caller_identity.unwrap_or("service-a"),
    )?;

    let callee = Envoy::start(
        dir.path(),
        "service-b",
        &bootstrap::render(&Proxy {
            filter: Filter::Wasm(wasm.clone()),
            fail_open: false,
            // The callee's version from node metadata, as Istio gives it (`LABELS.version`).
            node_metadata: json!({"WORKLOAD_NAME": "service-b", "LABELS": {"app": "service-b", "version": "v1"}}),
            admin_port: 0,
            inbound: Some(Inbound {
                port: 0,
                app_port: app.port,
                plugin_config: opts
                    .callee_config
                    .unwrap_or(json!({"direction": "inbound"})),
                tls: opts.mtls.then(|| (b_id.clone(), MtlsMode::Permissive)),
                allowed_peers: Vec::new(),
            }),
            outbound: None,
            ingress: None,
            access_log: None,
            tracing: None,
        }),
    )?;
    let callee_port = callee.listener_port("inbound")?;
    let caller = Envoy::start(
        dir.path(),
        "service-a",
        &bootstrap::render(&Proxy {
            filter: Filter::Wasm(wasm),
            fail_open: false,
            node_metadata: json!({}),
            admin_port: 0,
            inbound: None,
            outbound: Some(Outbound {
                port: 0,
                plugin_config: opts.caller_config.unwrap_or(
                    json!({"service": "service-a", "direction": "outbound", "max_hops": 10}),
                ),
                peers: vec![
                    Peer::single(
                        "service-b",
                        callee_port,
                        opts.mtls
                            .then(|| (a_id.clone(), spiffe_id("istio-demo", "service-b"))),
                    ),
                    // Nothing listens on port 1: calls to service-d fail upstream.
                    Peer::single("service-d", 1, None),
                ],
                external: Vec::new(),
                catch_all: None,
            }),
            ingress: None,
            access_log: None,
            tracing: None,
        }),
    )?;
    let caller_port = caller.listener_port("outbound")?;
    Ok(Mesh {
        app,
        callee,
        caller,
        callee_port,
        caller_port,
        _dir: dir,
    })
}

fn call(m: &Mesh, headers: &[(&str, &[u8])]) -> Result<http::Response> {
    http::get_host(m.caller_port, B_HOST, "/info", headers)
}

/// A request counter's stat name; `policy` is `connection_security_policy` (`mutual_tls` or
/// `none` inbound, always `unknown` outbound).
fn metric(
    source: &str,
    dest: &str,
    version: &str,
    direction: &str,
    class: &str,
    policy: &str,
) -> String {
    format!(
        "wasmcustom.source=.={source};.;destination=.={dest};.;destination_version=.={version};.;direction=.={direction};.;response_code_class=.={class};.;connection_security_policy=.={policy};.;meshtally_requests_total"
    )
}

#[test]
fn tags_request_and_response_and_replaces_spoofed_headers() -> Result<()> {
    let m = mesh(Options::default())?;
    let resp = call(
        &m,
        &[
            ("x-mesh-source", b"service-z"),
            ("x-mesh-peer-verified", b"true"),
            ("x-mesh-destination", b"elsewhere"),
        ],
    )?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-mesh-served-by").as_deref(),
        Some("service-b")
    );
    let seen = m.app.last();
    assert_eq!(values(&seen, "x-mesh-source"), ["service-a"]);
    assert_eq!(values(&seen, "x-mesh-destination"), ["service-b"]);
    assert_eq!(values(&seen, "x-mesh-peer-verified"), ["false"]);
    assert_eq!(values(&seen, "x-mesh-hops"), ["1"]);
    Ok(())
}

/// The build command the README promises, typed as is at the root (`cargo build --target wasm32-wasip1`,
/// a debug build that `make e2e` runs first), gives a module that tags and counts in real Envoy.
#[test]
fn the_debug_build_of_the_promised_command_tags_and_counts() -> Result<()> {
    let debug =
        meshtally_tests::workspace_root().join("target/wasm32-wasip1/debug/meshtally_filter.wasm");
    assert!(
        debug.is_file(),
        "{} is missing: run `cargo build --target wasm32-wasip1` at the root (make e2e does)",
        debug.display()
    );
    let m = mesh(Options {
        mtls: true,
        wasm: Some(debug),
        ..Options::default()
    })?;
    let resp = call(&m, &[("x-mesh-source", b"service-z")])?;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-mesh-served-by").as_deref(),
        Some("service-b")
    );
    let seen = m.app.last();
    assert_eq!(values(&seen, "x-mesh-source"), ["service-a"]);
    assert_eq!(values(&seen, "x-mesh-peer-verified"), ["true"]);
    assert_eq!(values(&seen, "x-mesh-hops"), ["1"]);
    assert_eq!(
        m.callee.counter(&metric(
            "service-a",
            "service-b",
            "v1",
            "inbound",
            "2xx",
            "mutual_tls"
        ))?,
        1
    );
    Ok(())
}

#[test]
fn counts_every_request_exactly_per_pair_and_direction() -> Result<()> {
    let m = mesh(Options::default())?;
    const N: u64 = 25;
    for _ in 0..N {
        assert_eq!(call(&m, &[])?.status, 200);
    }
    // A call whose upstream is down is counted too, as 5xx.
    let down = http::get_host(m.caller_port, "service-d:8003", "/info", &[])?;
    assert_eq!(down.status, 503);

    assert_eq!(
        m.caller.counter(&metric(
            "service-a",
            "service-b",
            "unknown",
            "outbound",
            "2xx",
            "unknown"
        ))?,
        N
    );
    assert_eq!(
        m.caller.counter(&metric(
            "service-a",
            "service-d",
            "unknown",
            "outbound",
            "5xx",
            "unknown"
        ))?,
        1
    );
    assert_eq!(
        m.callee.counter(&metric(
            "service-a",
            "service-b",
            "v1",
            "inbound",
            "2xx",
            "none"
        ))?,
        N
    );
    assert_eq!(m.app.count() as u64, N);

    let prom = m.callee.prometheus()?;
    let want = format!(
        "meshtally_requests_total{{source=\"service-a\",destination=\"service-b\",destination_version=\"v1\",direction=\"inbound\",response_code_class=\"2xx\",connection_security_policy=\"none\"}} {N}"
    );
    assert!(
        prom.lines().any(|l| l == want),
        "missing {want} in:\n{prom}"
    );
    assert!(
        prom.contains("# TYPE meshtally_request_duration_milliseconds histogram"),
        "{prom}"
    );
    let count_line = format!(
        "meshtally_request_duration_milliseconds_count{{source=\"service-a\",destination=\"service-b\",destination_version=\"v1\",direction=\"inbound\",response_code_class=\"2xx\",connection_security_policy=\"none\"}} {N}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !m.callee.prometheus()?.lines().any(|l| l == count_line) {
        assert!(std::time::Instant::now() < deadline, "missing {count_line}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let caller_prom = m.caller.prometheus()?;
    assert!(caller_prom.contains(
        "meshtally_requests_total{source=\"service-a\",destination=\"service-d\",destination_version=\"unknown\",direction=\"outbound\",response_code_class=\"5xx\",connection_security_policy=\"unknown\"} 1"
    ));
    Ok(())
}

#[test]
fn loop_guard_answers_508_without_forwarding() -> Result<()> {
    // The client plays service-a's app: the x-mesh-hops it sends is the count its own sidecar
    // gave it, which its call carries to the callee's sidecar as is.
    let m = mesh(Options::default())?;
    let ok = call(&m, &[("x-mesh-hops", b"10")])?;
    assert_eq!(ok.status, 200);
    assert_eq!(values(&m.app.last(), "x-mesh-hops"), ["11"]);

    let looped = call(&m, &[("x-mesh-hops", b"11")])?;
    assert_eq!(looped.status, 508, "{}", looped.text());
    assert!(looped.text().contains("loop detected"), "{}", looped.text());
    assert_eq!(
        looped.header("x-mesh-served-by").as_deref(),
        Some("service-b"),
        "the callee's sidecar refuses it"
    );
    assert_eq!(
        m.app.count(),
        1,
        "the looping request must not reach the app"
    );
    // Both sides count the refused call.
    assert_eq!(
        m.caller.counter(&metric(
            "service-a",
            "service-b",
            "unknown",
            "outbound",
            "5xx",
            "unknown"
        ))?,
        1
    );
    assert_eq!(
        m.callee.counter(&metric(
            "service-a",
            "service-b",
            "v1",
            "inbound",
            "5xx",
            "none"
        ))?,
        1
    );

    // A tight max_hops from the callee's config is honoured.
    let tight = mesh(Options {
        callee_config: Some(json!({"direction": "inbound", "max_hops": 1})),
        ..Options::default()
    })?;
    assert_eq!(call(&tight, &[])?.status, 200);
    assert_eq!(call(&tight, &[("x-mesh-hops", b"1")])?.status, 200);
    assert_eq!(call(&tight, &[("x-mesh-hops", b"2")])?.status, 508);
    Ok(())
}

#[test]
fn inbound_never_trusts_client_headers() -> Result<()> {
    let m = mesh(Options::default())?;
    // Straight to the callee's sidecar, skipping service-a's.
    let direct =
        |headers: &[(&str, &[u8])]| http::get_host(m.callee_port, "service-b", "/info", headers);

    let r = direct(&[
        ("x-mesh-source", b"service-c"),
        ("x-mesh-peer-verified", b"true"),
    ])?;
    assert_eq!(r.status, 200);
    let seen = m.app.last();
    assert_eq!(values(&seen, "x-mesh-source"), ["service-c"]);
    assert_eq!(values(&seen, "x-mesh-peer-verified"), ["false"]);

    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("x-mesh-source", b"Evil_Name".to_vec()),
        ("x-mesh-source", vec![0xff, 0xfe, b'a']),
        ("x-mesh-source", vec![b'a'; 9 * 1024]),
        ("x-mesh-source", b"a=.=b;.;c".to_vec()),
    ];
    for (name, value) in &hostile {
        let r = direct(&[(name, value), ("x-mesh-hops", b"999999999999999999999")])?;
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = m.app.last();
        assert_eq!(
            values(&seen, "x-mesh-source"),
            ["unknown"],
            "for {:?}",
            String::from_utf8_lossy(value)
        );
        // Unparsable: a call from outside the mesh, so the app's own calls are the first hop.
        assert_eq!(values(&seen, "x-mesh-hops"), ["1"]);
    }
    // Repeated headers: one sanitised value comes out, never the client's list.
    let r = direct(&[
        ("x-mesh-source", b"service-c"),
        ("x-mesh-source", b"service-d"),
        ("x-mesh-hops", b"-1"),
        ("x-mesh-hops", b"3"),
    ])?;
    assert_eq!(r.status, 200);
    let seen = m.app.last();
    assert_eq!(values(&seen, "x-mesh-source").len(), 1);
    assert_eq!(values(&seen, "x-mesh-hops").len(), 1);
    assert_eq!(values(&seen, "x-mesh-peer-verified"), ["false"]);

    assert_eq!(
        m.callee.counter(&metric(
            "unknown",
            "service-b",
            "v1",
            "inbound",
            "2xx",
            "none"
        ))?,
        hostile.len() as u64
    );
    assert!(
        m.callee.log_text().lines().all(|l| !l.contains("panicked")),
        "{}",
        m.callee.log_tail()
    );
    Ok(())
}

#[test]
fn mtls_identity_beats_the_header() -> Result<()> {
    // service-a's sidecar holds service-c's certificate: the callee must believe the
    // certificate, not the x-mesh-source header the caller's filter set.
    let m = mesh(Options {
        mtls: true,
        caller_identity: Some("service-c"),
        ..Options::default()
    })?;
    let r = call(&m, &[("x-mesh-source", b"service-z")])?;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.app.last();
    assert_eq!(values(&seen, "x-mesh-source"), ["service-c"]);
    assert_eq!(values(&seen, "x-mesh-peer-verified"), ["true"]);
    assert_eq!(r.header("x-mesh-served-by").as_deref(), Some("service-b"));
    assert_eq!(
        m.callee.counter(&metric(
            "service-c",
            "service-b",
            "v1",
            "inbound",
            "2xx",
            "mutual_tls"
        ))?,
        1
    );
    assert_eq!(
        m.caller.counter(&metric(
            "service-a",
            "service-b",
            "unknown",
            "outbound",
            "2xx",
            "unknown"
        ))?,
        1
    );

    // Plain HTTP still works in PERMISSIVE mode, and is not verified.
    let plain = http::get_host(
        m.callee_port,
        "service-b",
        "/info",
        &[("x-mesh-source", b"service-a")],
    )?;
    assert_eq!(plain.status, 200);
    assert_eq!(values(&m.app.last(), "x-mesh-peer-verified"), ["false"]);
    // The certificate's call and the plain-text call are told apart by the label.
    assert_eq!(
        m.callee.counter(&metric(
            "service-a",
            "service-b",
            "v1",
            "inbound",
            "2xx",
            "none"
        ))?,
        1
    );
    assert_eq!(
        m.callee.counter(&metric(
            "service-c",
            "service-b",
            "v1",
            "inbound",
            "2xx",
            "mutual_tls"
        ))?,
        1
    );
    Ok(())
}

#[test]
fn service_comes_from_node_metadata_and_direction_from_the_config() -> Result<()> {
    // The callee runs with only its direction: its name is WORKLOAD_NAME.
    let m = mesh(Options::default())?;
    assert_eq!(call(&m, &[])?.status, 200);
    assert_eq!(values(&m.app.last(), "x-mesh-destination"), ["service-b"]);
    assert!(m
        .callee
        .log_text()
        .contains("configured service=service-b direction=inbound"));
    Ok(())
}

fn refused(dir: &Path, name: &str, config: Value, metadata: Value) -> Result<String> {
    let spec = Proxy {
        filter: Filter::Wasm(filter_wasm()),
        fail_open: false,
        node_metadata: metadata,
        admin_port: 0,
        inbound: Some(Inbound {
            port: 0,
            app_port: 1,
            plugin_config: config,
            tls: None,
            allowed_peers: Vec::new(),
        }),
        outbound: None,
        ingress: None,
        access_log: None,
        tracing: None,
    };
    Envoy::start_expect_failure(dir, name, &bootstrap::render(&spec))
}

#[test]
fn bad_configs_are_refused_naming_the_field() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            json!({"service": "a", "direction": "sideways"}),
            json!({}),
            "field `direction`: expected \"inbound\" or \"outbound\", got \"sideways\"",
        ),
        (
            json!({"service": "a", "max_hops": "ten"}),
            json!({}),
            "field `max_hops`",
        ),
        (
            json!({"service": "a", "colour": "red"}),
            json!({}),
            "field `colour` is unknown",
        ),
        (
            json!({"service": "Service_A"}),
            json!({}),
            "field `service`",
        ),
        (json!({}), json!({}), "field `service` is absent"),
        (
            json!({"service": "a"}),
            json!({}),
            "field `direction` is absent",
        ),
        (json!("not json {"), json!({}), "not valid JSON"),
    ];
    for (i, (config, metadata, want)) in cases.into_iter().enumerate() {
        let log = refused(dir.path(), &format!("bad{i}"), config.clone(), metadata)?;
        assert!(
            log.contains("meshtally: rejecting config: plugin config"),
            "{config}: {log}"
        );
        assert!(
            log.contains(want),
            "{config}: expected {want:?} in log:\n{log}"
        );
    }
    Ok(())
}

#[test]
fn one_sidecar_with_both_listeners_keeps_directions_apart() -> Result<()> {
    // Istio gives a sidecar's inbound and outbound listeners the same pluginConfig, and Envoy
    // then shares one root context between them: direction must be decided per stream.
    let dir = tempfile::tempdir()?;
    let (app, peer) = (Echo::start()?, Echo::start()?);
    let sidecar = Envoy::start(
        dir.path(),
        "service-a",
        &bootstrap::render(&Proxy {
            filter: Filter::Wasm(filter_wasm()),
            fail_open: false,
            node_metadata: json!({"WORKLOAD_NAME": "service-a"}),
            admin_port: 0,
            inbound: Some(Inbound {
                port: 0,
                app_port: app.port,
                plugin_config: json!({"direction": "inbound"}),
                tls: None,
                allowed_peers: Vec::new(),
            }),
            outbound: Some(Outbound {
                port: 0,
                plugin_config: json!({"direction": "outbound"}),
                peers: vec![Peer::single("service-b", peer.port, None)],
                external: Vec::new(),
                catch_all: None,
            }),
            ingress: None,
            access_log: None,
            tracing: None,
        }),
    )?;
    let (inbound, outbound) = (
        sidecar.listener_port("inbound")?,
        sidecar.listener_port("outbound")?,
    );
    for _ in 0..3 {
        let r = http::get_host(
            inbound,
            "service-a",
            "/info",
            &[("x-mesh-source", b"service-c")],
        )?;
        assert_eq!(r.header("x-mesh-served-by").as_deref(), Some("service-a"));
        let r = http::get_host(
            outbound,
            "service-b:8001",
            "/info",
            &[("x-mesh-hops", b"2")],
        )?;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-mesh-served-by"),
            None,
            "outbound must not tag responses"
        );
        let seen = peer.last();
        assert_eq!(values(&seen, "x-mesh-source"), ["service-a"]);
        // The hop count is the callee's side's to raise: outbound passes the app's on.
        assert_eq!(values(&seen, "x-mesh-hops"), ["2"]);
        assert!(values(&seen, "x-mesh-destination").is_empty());
    }
    let admin = meshtally_envoy::admin::Admin(sidecar.admin);
    assert_eq!(
        admin.counter(&metric(
            "service-c",
            "service-a",
            "unknown",
            "inbound",
            "2xx",
            "none"
        ))?,
        3
    );
    assert_eq!(
        admin.counter(&metric(
            "service-a",
            "service-b",
            "unknown",
            "outbound",
            "2xx",
            "unknown"
        ))?,
        3
    );
    Ok(())
}
