//! The hostile inputs the reliability issue names, and every failure the fuzz properties found,
//! as plain tests with exact expectations. Unlike the fuzz suite these also run compiled to
//! wasm (under Node), the way the filter really runs.

use std::collections::BTreeSet;

use meshtally_core::metrics::{parse_metric_name, CodeClass, MetricCache, MetricKind, MAX_PAIRS};
use meshtally_core::tagging::{
    destination_from_authority, format_u32, inbound_hops, parse_hops, resolve_caller, UNKNOWN,
};
use meshtally_core::{Caller, Config, Direction, HopDecision, NodeMetadata};

const UNKNOWN_CALLER: Caller<'static> = Caller {
    name: UNKNOWN,
    verified: false,
};

fn config_error(raw: &[u8], node: &NodeMetadata) -> String {
    match Config::parse(raw, node) {
        Ok(config) => panic!("{:?} accepted as {config:?}", String::from_utf8_lossy(raw)),
        Err(err) => err.to_string(),
    }
}

fn refused(raw: &str) -> String {
    config_error(raw.as_bytes(), &NodeMetadata::default())
}

const HOPS_WANT: &str = "plugin config field `max_hops`: expected an integer from 1 to 4294967295";

#[test]
fn the_issue_hop_counts_count_as_zero() {
    for raw in ["-1", "999999999999999999999", "1e3", "0x10"] {
        assert_eq!(parse_hops(Some(raw.as_bytes())), 0, "{raw}");
        // A fresh request: the app's own calls are the first hop.
        assert_eq!(
            inbound_hops(parse_hops(Some(raw.as_bytes())), 10),
            HopDecision::Forward(1)
        );
        // Inbound re-writes the header as the number parsed.
        let mut buf = [0; 10];
        assert_eq!(format_u32(parse_hops(Some(raw.as_bytes())), &mut buf), "0");
    }
}

#[test]
fn the_issue_hop_counts_are_refused_as_max_hops() {
    let cases = [
        ("-1", format!("{HOPS_WANT}, got the number -1")),
        (
            "999999999999999999999",
            format!("{HOPS_WANT}, got a non-integer number"),
        ),
        ("1e3", format!("{HOPS_WANT}, got a non-integer number")),
        (
            "0x10",
            "plugin config is not valid JSON: expected `,` or `}` at line 1 column 28".to_owned(),
        ),
        (
            "1e400",
            "plugin config is not valid JSON: number out of range at line 1 column 31".to_owned(),
        ),
    ];
    for (number, want) in cases {
        assert_eq!(
            refused(&format!(
                r#"{{"service":"a","max_hops":{number},"direction":"inbound"}}"#
            )),
            want
        );
    }
}

#[test]
fn headers_over_8_kib_are_absent() {
    let long = vec![b'a'; 8 * 1024 + 1];
    assert_eq!(resolve_caller(None, Some(&long)), UNKNOWN_CALLER);
    let mut digits = vec![b'0'; 8 * 1024];
    digits.push(b'1');
    assert_eq!(parse_hops(Some(&digits)), 0);
    // The authority limit is exact: 8 KiB still names a destination, one byte more does not.
    let mut authority = b"service-a.".to_vec();
    authority.resize(8 * 1024, b'x');
    assert_eq!(destination_from_authority(Some(&authority)), "service-a");
    authority.push(b'x');
    assert_eq!(destination_from_authority(Some(&authority)), UNKNOWN);
}

#[test]
fn non_utf8_headers_are_absent() {
    for raw in [&b"\xff\xfe"[..], b"service-\xc3\x28", b"\xc3\xa9"] {
        assert_eq!(resolve_caller(None, Some(raw)), UNKNOWN_CALLER);
        assert_eq!(resolve_caller(Some(raw), None), UNKNOWN_CALLER);
        assert_eq!(destination_from_authority(Some(raw)), UNKNOWN);
        assert_eq!(parse_hops(Some(raw)), 0);
    }
    let san = b"spiffe://cluster.local/ns/demo/sa/service-\xff";
    assert_eq!(
        resolve_caller(Some(san), Some(b"service-b")).name,
        "service-b"
    );
}

#[test]
fn many_duplicate_headers_are_no_value() {
    let names = vec!["service-a"; 1000];
    for sep in [",", ", "] {
        let joined = names.join(sep);
        assert_eq!(
            resolve_caller(None, Some(joined.as_bytes())),
            UNKNOWN_CALLER
        );
        assert_eq!(destination_from_authority(Some(joined.as_bytes())), UNKNOWN);
        let hops = vec!["3"; 1000].join(sep);
        assert_eq!(parse_hops(Some(hops.as_bytes())), 0);
    }
    assert_eq!(parse_hops(Some(b"1, 2")), 0);
}

#[test]
fn configs_of_every_wrong_type() {
    let string_fields = |field: &str, got: &str| {
        format!("plugin config field `{field}`: expected a string, got {got}")
    };
    let values = [
        ("null", "null"),
        ("true", "true"),
        ("1", "the number 1"),
        ("-1", "the number -1"),
        ("1.5", "a non-integer number"),
        ("[]", "an array"),
        ("{}", "an object"),
    ];
    for (json, got) in values {
        assert_eq!(
            refused(&format!(r#"{{"service":{json}}}"#)),
            string_fields("service", got)
        );
        assert_eq!(
            refused(&format!(r#"{{"service":"a","direction":{json}}}"#)),
            string_fields("direction", got)
        );
        // 1 is a valid max_hops; every other value here is not.
        if json != "1" {
            let hops = refused(&format!(
                r#"{{"service":"a","direction":"inbound","max_hops":{json}}}"#
            ));
            assert_eq!(hops, format!("{HOPS_WANT}, got {got}"), "{json}");
        }
    }
    assert!(Config::parse(
        br#"{"service":"a","direction":"inbound","max_hops":1}"#,
        &NodeMetadata::default()
    )
    .is_ok());
    assert_eq!(
        refused(r#"{"service":"a","max_hops":"10"}"#),
        format!("{HOPS_WANT}, got the string \"10\"")
    );
    assert_eq!(
        refused(r#"{"service":"a","direction":"s"}"#),
        "plugin config field `direction`: expected \"inbound\" or \"outbound\", got \"s\""
    );
    for (json, got) in [
        ("null", "null"),
        ("true", "a boolean"),
        ("1", "a number"),
        ("\"s\"", "a string"),
        ("[]", "an array"),
    ] {
        assert_eq!(
            refused(json),
            format!("plugin config must be a JSON object, got {got}")
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    assert_eq!(
        refused(&"[".repeat(100_000)),
        "plugin config is not valid JSON: recursion limit exceeded at line 1 column 128"
    );
}

#[test]
fn non_utf8_node_metadata_is_refused_in_one_line() {
    let node = NodeMetadata {
        workload_name: Some(b"svc\xff\n".to_vec()),
        ..NodeMetadata::default()
    };
    assert_eq!(
        config_error(b"{}", &node),
        "plugin config field `service`: \"svc\u{fffd}?\" is not a DNS-1123 label of at most 63 characters"
    );
}

/// Found by `config::huge_values_give_bounded_errors` and `config::objects_follow_the_model`:
/// an unknown key went into the error whole, so a 1 MiB key made a 1 MiB log line, and a key
/// with a newline split it.
#[test]
fn unknown_keys_are_cut_and_cleaned() {
    let key = "a".repeat(1 << 20);
    let line = refused(&format!(r#"{{"service":"a","{key}":1}}"#));
    assert_eq!(
        line,
        format!(
            "plugin config field `{}…` is unknown (expected service, version, direction, max_hops, external, outbound_policy)",
            "a".repeat(64)
        )
    );
    assert_eq!(
        refused(r#"{"service":"a","a\nb\"c":1}"#),
        "plugin config field `a?b?c` is unknown (expected service, version, direction, max_hops, external, outbound_policy)"
    );
}

/// Found by `metrics::refusals_are_not_cached`: a pair only counted against MAX_PAIRS once
/// both of its metrics were defined, so a host that defined the counter and refused the
/// histogram got a new counter for every forged source, past the cap.
#[test]
fn refused_histograms_do_not_lift_the_pair_cap() {
    let mut cache = MetricCache::new(Direction::Inbound);
    let mut offered = BTreeSet::new();
    for i in 0..MAX_PAIRS * 3 {
        let source = format!("forged-{i}");
        let ids = cache.ids(
            &source,
            "service-a",
            "v1",
            CodeClass::C2xx,
            true,
            |kind, name| {
                let parsed = parse_metric_name(name).expect("our names parse");
                offered.insert(parsed.source.to_owned());
                (kind == MetricKind::Counter).then_some(1)
            },
        );
        assert_eq!(ids, None);
    }
    assert_eq!(offered.len(), MAX_PAIRS + 1);
    assert!(offered.contains("other"));
}
