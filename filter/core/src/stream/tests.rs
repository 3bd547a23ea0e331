//! `Stream`'s behaviour, end to end through the fake host: outbound and inbound tagging, the
//! 508 loop guard, counting at `on_log`, and the host calls each request costs.

use std::rc::Rc;

use crate::config::ConfigError;
use crate::config::UNKNOWN_VERSION;
use crate::fake::{CallKind, FakeHost};
use crate::headers::{DESTINATION, HOPS, PEER_VERIFIED, SERVED_BY, SOURCE};
use crate::ledger;
use crate::metrics::{metric_name, CodeClass, Security, REQUESTS_TOTAL, REQUEST_DURATION};
use crate::stream::{Flow, Plugin, Stream, LOOP_BODY};
use crate::Direction;

const SAN: &[u8] = b"spiffe://cluster.local/ns/demo/sa/service-c";

fn host(config: &str) -> FakeHost {
    FakeHost {
        configuration: config.as_bytes().to_vec(),
        ..FakeHost::default()
    }
}

fn plugin(host: &FakeHost) -> Rc<Plugin> {
    Rc::new(Plugin::configure(host).unwrap())
}

/// One whole stream taking 7.9 ms: request headers, a 200's response headers (unless answered
/// locally), log.
fn run(plugin: &Rc<Plugin>, host: &FakeHost, headers: &[(&str, &[u8])]) -> Flow {
    run_with(plugin, host, headers, 200)
}

fn run_with(plugin: &Rc<Plugin>, host: &FakeHost, headers: &[(&str, &[u8])], status: u16) -> Flow {
    host.start_request(headers);
    host.clock_nanos.set(1_000_000_000);
    let mut stream = Stream::new(Rc::clone(plugin), host);
    let flow = stream.on_request_headers();
    if flow == Flow::Continue {
        host.respond(status);
        stream.on_response_headers();
    }
    host.clock_nanos.set(1_007_900_000);
    stream.on_log();
    flow
}

/// The request counter of a call no certificate proved (`none` inbound, `unknown` outbound),
/// to a callee whose version is not known (no config, no node metadata, no
/// `x-mesh-served-version` from the other side).
fn requests(source: &str, destination: &str, direction: Direction, class: CodeClass) -> String {
    let security = Security::of(direction, false);
    metric_name(
        REQUESTS_TOTAL,
        source,
        destination,
        UNKNOWN_VERSION,
        direction,
        class,
        security,
    )
}

#[test]
fn the_callee_counts_its_version_per_caller_and_the_caller_reads_none() {
    // Inbound: the configured version labels the count, per caller; it is not sent back.
    let callee = host(r#"{"service":"service-b","version":"v2","direction":"inbound"}"#);
    let plugin_b = plugin(&callee);
    for caller in [&b"service-a"[..], b"service-c", b"service-a"] {
        run(&plugin_b, &callee, &[(SOURCE, caller)]);
    }
    assert_eq!(
        callee.response_header_value(SERVED_BY).as_deref(),
        Some("service-b")
    );
    assert_eq!(callee.response_header_value("x-mesh-served-version"), None);
    let inbound = |source: &str| {
        metric_name(
            REQUESTS_TOTAL,
            source,
            "service-b",
            "v2",
            Direction::Inbound,
            CodeClass::C2xx,
            Security::None,
        )
    };
    assert_eq!(callee.counter(&inbound("service-a")), 2);
    assert_eq!(callee.counter(&inbound("service-c")), 1);

    // On Istio the version comes from the node metadata's LABELS.version.
    let istio = host(r#"{"direction":"inbound"}"#)
        .with_property("xds.node.metadata.LABELS.app", b"service-b");
    let istio = istio.with_property("xds.node.metadata.LABELS.version", b"v3");
    assert_eq!(Plugin::configure(&istio).unwrap().config.version, "v3");

    // Outbound: whatever a response says of its version, the caller neither reads it nor
    // counts it: `unknown`, one series per pair and class.
    let caller = host(r#"{"service":"service-a","direction":"outbound"}"#);
    let plugin_a = plugin(&caller);
    for served in [Some("v2"), None] {
        caller.start_request(&[(":authority", b"service-b:8001")]);
        let mut stream = Stream::new(Rc::clone(&plugin_a), &caller);
        stream.on_request_headers();
        caller.respond(503);
        if let Some(v) = served {
            caller
                .response_headers
                .borrow_mut()
                .push(("x-mesh-served-version".to_owned(), v.to_owned()));
        }
        stream.on_response_headers();
        stream.on_log();
        assert!(
            !caller
                .calls()
                .iter()
                .any(|c| c.what.contains("served-version")),
            "{:?}",
            caller.calls()
        );
    }
    let outbound = |version: &str| {
        metric_name(
            REQUESTS_TOTAL,
            "service-a",
            "service-b",
            version,
            Direction::Outbound,
            CodeClass::C5xx,
            Security::Unknown,
        )
    };
    assert_eq!(caller.counter(&outbound(UNKNOWN_VERSION)), 2);
    assert_eq!(caller.counter(&outbound("v2")), 0);
}

#[test]
fn outbound_tags_and_counts() {
    let host = host(r#"{"service":"service-a","direction":"outbound"}"#);
    let plugin = plugin(&host);
    let flow = run(
        &plugin,
        &host,
        &[
            (":authority", b"service-b.demo.svc.cluster.local:8001"),
            (SOURCE, b"forged"),
            (HOPS, b"2"),
        ],
    );
    assert_eq!(flow, Flow::Continue);
    assert_eq!(
        host.request_header_value(SOURCE).as_deref(),
        Some("service-a")
    );
    // The hop count is the callee's side's: the app's passes through untouched.
    assert_eq!(host.request_header_value(HOPS).as_deref(), Some("2"));
    // Outbound adds nothing else, and nothing to the response.
    assert_eq!(host.request_header_value(DESTINATION), None);
    assert_eq!(host.request_header_value(PEER_VERIFIED), None);
    assert_eq!(host.response_header_value(SERVED_BY), None);
    let name = requests(
        "service-a",
        "service-b",
        Direction::Outbound,
        CodeClass::C2xx,
    );
    assert_eq!(host.counter(&name), 1);
    let duration = metric_name(
        REQUEST_DURATION,
        "service-a",
        "service-b",
        UNKNOWN_VERSION,
        Direction::Outbound,
        CodeClass::C2xx,
        Security::Unknown,
    );
    assert_eq!(host.histogram(&duration), vec![7]);
}

#[test]
fn inbound_without_hops_gives_the_app_one() {
    let host = host(r#"{"service":"service-b","direction":"inbound"}"#);
    let plugin = plugin(&host);
    run(&plugin, &host, &[(SOURCE, b"service-a")]);
    assert_eq!(host.request_header_value(HOPS).as_deref(), Some("1"));
}

#[test]
fn inbound_past_max_hops_answers_508_and_counts_it() {
    // No `response.code` property and no response headers through this filter: the stream
    // knows the status of the reply it sent itself.
    let host = host(r#"{"service":"service-b","direction":"inbound","max_hops":3}"#);
    let plugin = plugin(&host);
    // At the limit the call goes on, and the app's calls will carry one more.
    run(&plugin, &host, &[(SOURCE, b"service-a"), (HOPS, b"3")]);
    assert_eq!(host.request_header_value(HOPS).as_deref(), Some("4"));
    assert!(host.local_response.borrow().is_none());
    // Past it, the call is refused before it reaches the app.
    let flow = run(&plugin, &host, &[(SOURCE, b"service-a"), (HOPS, b"4")]);
    assert_eq!(flow, Flow::Pause);
    let reply = host.local_response.borrow().clone().unwrap();
    assert_eq!(reply.status, 508);
    assert_eq!(reply.body, LOOP_BODY);
    assert!(reply
        .headers
        .contains(&(SERVED_BY.to_owned(), "service-b".to_owned())));
    assert!(reply.headers.contains(&(HOPS.to_owned(), "4".to_owned())));
    // The request was not tagged for the app: it goes nowhere.
    assert_eq!(host.request_header_value(DESTINATION), None);
    let name = requests(
        "service-a",
        "service-b",
        Direction::Inbound,
        CodeClass::C5xx,
    );
    assert_eq!(host.counter(&name), 1);
}

#[test]
fn inbound_plain_trusts_only_a_well_formed_claim_and_never_verifies_it() {
    let host = host(r#"{"service":"service-b","direction":"inbound"}"#);
    let plugin = plugin(&host);
    run(
        &plugin,
        &host,
        &[
            (SOURCE, b"service-a"),
            (PEER_VERIFIED, b"true"),
            (HOPS, b" 4 "),
            (DESTINATION, b"elsewhere"),
        ],
    );
    assert_eq!(
        host.request_header_value(SOURCE).as_deref(),
        Some("service-a")
    );
    assert_eq!(
        host.request_header_value(DESTINATION).as_deref(),
        Some("service-b")
    );
    assert_eq!(
        host.request_header_value(PEER_VERIFIED).as_deref(),
        Some("false")
    );
    // The hop count parsed, plus this call: what the app's own calls carry.
    assert_eq!(host.request_header_value(HOPS).as_deref(), Some("5"));
    assert_eq!(
        host.response_header_value(SERVED_BY).as_deref(),
        Some("service-b")
    );
    let name = requests(
        "service-a",
        "service-b",
        Direction::Inbound,
        CodeClass::C2xx,
    );
    assert_eq!(host.counter(&name), 1);

    run(&plugin, &host, &[(SOURCE, b"Not A Label")]);
    assert_eq!(
        host.request_header_value(SOURCE).as_deref(),
        Some("unknown")
    );
    // No incoming hops: a call from outside the mesh, the app's calls are the first hop.
    assert_eq!(host.request_header_value(HOPS).as_deref(), Some("1"));
}

#[test]
fn inbound_mtls_certificate_beats_the_header() {
    let host = host(r#"{"service":"service-b","direction":"inbound"}"#)
        .with_property("connection.uri_san_peer_certificate", SAN);
    let plugin = plugin(&host);
    run(&plugin, &host, &[(SOURCE, b"service-a")]);
    assert_eq!(
        host.request_header_value(SOURCE).as_deref(),
        Some("service-c")
    );
    assert_eq!(
        host.request_header_value(PEER_VERIFIED).as_deref(),
        Some("true")
    );
    let proved = metric_name(
        REQUESTS_TOTAL,
        "service-c",
        "service-b",
        UNKNOWN_VERSION,
        Direction::Inbound,
        CodeClass::C2xx,
        Security::MutualTls,
    );
    assert_eq!(host.counter(&proved), 1);
    let duration = metric_name(
        REQUEST_DURATION,
        "service-c",
        "service-b",
        UNKNOWN_VERSION,
        Direction::Inbound,
        CodeClass::C2xx,
        Security::MutualTls,
    );
    assert_eq!(host.histogram(&duration), vec![7]);
    // The same caller over plain text is another series: `none`.
    let plain = requests(
        "service-c",
        "service-b",
        Direction::Inbound,
        CodeClass::C2xx,
    );
    assert_eq!(host.counter(&plain), 0);
}

#[test]
fn a_certificate_that_names_no_workload_is_not_mutual_tls() {
    let host = host(r#"{"service":"service-b","direction":"inbound"}"#).with_property(
        "connection.uri_san_peer_certificate",
        b"https://example.org/x",
    );
    let plugin = plugin(&host);
    run(&plugin, &host, &[(SOURCE, b"service-a")]);
    let plain = requests(
        "service-a",
        "service-b",
        Direction::Inbound,
        CodeClass::C2xx,
    );
    assert_eq!(host.counter(&plain), 1);
}

#[test]
fn direction_is_configured_never_read_per_stream() {
    // Each side of a sidecar has its own plugin: a config without a direction is refused at
    // configure time, and a configured stream never asks the proxy for its listener's.
    let bare = host(r#"{"service":"service-b"}"#).with_i64_property("xds.listener_direction", 1);
    assert_eq!(
        Plugin::configure(&bare).map(|_| ()),
        Err(ConfigError::NoDirection)
    );
    for config in [
        r#"{"service":"service-b","direction":"inbound"}"#,
        r#"{"service":"service-b","direction":"outbound"}"#,
    ] {
        let host = host(config);
        let plugin = plugin(&host);
        host.calls.borrow_mut().clear();
        run(
            &plugin,
            &host,
            &[(":authority", b"service-c"), (SOURCE, b"service-a")],
        );
        let calls = host.calls();
        assert!(
            !calls.iter().any(|c| c.what.contains("listener_direction")),
            "{config}: {calls:?}"
        );
    }
}

#[test]
fn counted_at_on_log_exactly_once_per_stream() {
    let host = host(r#"{"service":"service-a","direction":"outbound"}"#);
    let plugin = plugin(&host);
    let name = requests(
        "service-a",
        "service-b",
        Direction::Outbound,
        CodeClass::C2xx,
    );
    host.start_request(&[(":authority", b"service-b")]);
    let mut stream = Stream::new(Rc::clone(&plugin), &host);
    stream.on_request_headers();
    host.respond(200);
    stream.on_response_headers();
    // Not before the stream ends: on_log is Envoy's "stream complete".
    assert_eq!(host.counter(&name), 0);
    stream.on_log();
    assert_eq!(host.counter(&name), 1);
    for _ in 0..99 {
        run(&plugin, &host, &[(":authority", b"service-b")]);
    }
    assert_eq!(host.counter(&name), 100);
    // Metrics are defined once per tag set, not per request.
    assert_eq!(host.metrics.borrow().len(), 2);
}

#[test]
fn a_reset_stream_counts_as_none() {
    let host = host(r#"{"service":"service-a","direction":"outbound"}"#);
    let plugin = plugin(&host);
    host.start_request(&[(":authority", b"service-b")]);
    let mut stream = Stream::new(Rc::clone(&plugin), &host);
    stream.on_request_headers();
    stream.on_log();
    let name = requests(
        "service-a",
        "service-b",
        Direction::Outbound,
        CodeClass::None,
    );
    assert_eq!(host.counter(&name), 1);
}

#[test]
fn the_status_comes_from_the_response_headers_else_from_envoy() {
    // Envoy's `response.code` is only asked when no response headers passed this filter.
    let class = |c| requests("service-a", "service-b", Direction::Inbound, c);
    let answered = host(r#"{"service":"service-b","direction":"inbound"}"#)
        .with_i64_property("response.code", 200);
    let p = plugin(&answered);
    run_with(&p, &answered, &[(SOURCE, b"service-a")], 404);
    assert_eq!(answered.counter(&class(CodeClass::C4xx)), 1);
    assert!(!answered.calls().iter().any(|c| c.what == "response.code"));

    let failed = host(r#"{"service":"service-b","direction":"inbound"}"#)
        .with_i64_property("response.code", 503);
    let p = plugin(&failed);
    failed.start_request(&[(SOURCE, b"service-a")]);
    let mut stream = Stream::new(Rc::clone(&p), &failed);
    stream.on_request_headers();
    stream.on_log();
    assert_eq!(failed.counter(&class(CodeClass::C5xx)), 1);
}

#[test]
fn the_duration_is_the_host_clock_from_request_headers_to_log() {
    let host = host(r#"{"service":"service-a","direction":"outbound"}"#);
    let plugin = plugin(&host);
    host.start_request(&[(":authority", b"service-b")]);
    host.clock_nanos.set(5_000_000_000);
    let mut stream = Stream::new(Rc::clone(&plugin), &host);
    stream.on_request_headers();
    host.respond(200);
    stream.on_response_headers();
    host.clock_nanos.set(5_250_400_000);
    stream.on_log();
    let duration = metric_name(
        REQUEST_DURATION,
        "service-a",
        "service-b",
        UNKNOWN_VERSION,
        Direction::Outbound,
        CodeClass::C2xx,
        Security::Unknown,
    );
    assert_eq!(host.histogram(&duration), vec![250]);
    // A clock that went backwards (a wall-clock step) records 0, never a wrapped value.
    host.start_request(&[(":authority", b"service-b")]);
    let mut stream = Stream::new(Rc::clone(&plugin), &host);
    stream.on_request_headers();
    host.respond(200);
    stream.on_response_headers();
    host.clock_nanos.set(1);
    stream.on_log();
    assert_eq!(host.histogram(&duration), vec![250, 0]);
}

#[test]
fn refused_metrics_leave_the_request_uncounted_but_tagged() {
    let mut host = host(r#"{"service":"service-a","direction":"outbound"}"#);
    host.refuse_metrics = true;
    let plugin = plugin(&host);
    run(&plugin, &host, &[(":authority", b"service-b")]);
    assert_eq!(
        host.request_header_value(SOURCE).as_deref(),
        Some("service-a")
    );
    assert!(host.counters.borrow().is_empty());
}

#[test]
fn configure_refuses_bad_config_and_reads_node_metadata() {
    let bad = host(r#"{"service":"a","direction":"sideways"}"#);
    let err = Plugin::configure(&bad).unwrap_err();
    assert!(matches!(err, ConfigError::BadDirection(_)));
    assert!(err.to_string().contains("`direction`"));

    let istio = host(r#"{"direction":"inbound"}"#)
        .with_property("xds.node.metadata.WORKLOAD_NAME", b"reviews-v1");
    assert_eq!(
        Plugin::configure(&istio).unwrap().config.service,
        "reviews-v1"
    );
    let old =
        host(r#"{"direction":"outbound"}"#).with_property("node.metadata.LABELS.app", b"reviews");
    assert_eq!(Plugin::configure(&old).unwrap().config.service, "reviews");
}

/// The per-request host-call budget: a change that adds a host call to the hot path fails here
/// and has to justify itself in `make bench`.
#[test]
fn host_calls_per_request() {
    let count =
        |kind: CallKind, s: &ledger::Scenario| s.calls.iter().filter(|c| c.kind == kind).count();
    let scenarios = ledger::per_request();
    let [outbound, inbound, mtls] = &scenarios[..] else {
        panic!("three scenarios")
    };
    // Reads (headers and properties) are the dear calls: Envoy calls back into the module to
    // allocate each answer. Outbound: :authority and :status (the callee's version is the
    // callee's to count, the hop count the callee's to check and raise).
    let reads = |s: &ledger::Scenario| {
        count(CallKind::Property, s)
            + count(CallKind::RequestHeaderRead, s)
            + count(CallKind::ResponseHeaderRead, s)
    };
    assert_eq!(outbound.calls.len(), 7, "{:#?}", outbound.calls);
    assert_eq!(reads(outbound), 2);
    assert_eq!(count(CallKind::RequestHeaderWrite, outbound), 1);
    assert_eq!(count(CallKind::Property, outbound), 0);
    assert_eq!(count(CallKind::DefineMetric, outbound), 0);
    // Inbound: the peer certificate, x-mesh-source, x-mesh-hops and :status; the response
    // gets x-mesh-served-by. Over mTLS the certificate names the caller: no x-mesh-source read.
    assert_eq!(inbound.calls.len(), 13, "{:#?}", inbound.calls);
    assert_eq!(reads(inbound), 4);
    assert_eq!(count(CallKind::ResponseHeaderWrite, inbound), 1);
    assert_eq!(mtls.calls.len(), inbound.calls.len() - 1);
    assert_eq!(reads(mtls), 3);
    assert!(mtls.bytes_out() > inbound.bytes_out());
}
