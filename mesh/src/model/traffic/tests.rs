//! Checks of the traffic rules: the mesh file's spelling, defaults, and one refusal per cause,
//! each naming its service and field.

use crate::model::{Mesh, MeshInput};

use super::*;

fn mesh(yaml: &str) -> Result<Mesh, String> {
    let input = MeshInput::from_yaml(yaml).map_err(|e| e.to_string())?;
    Mesh::from_input(input).map_err(|e| e.to_string())
}

fn err(yaml: &str) -> String {
    mesh(yaml).unwrap_err()
}

const CANARY_90_10: &str = "
services:
  - name: service-a
    versions:
      - {name: v1, weight: 90}
      - {name: v2, weight: 10}
    match:
      - {header: X-User-Group, value: beta, version: v2}
    timeout: 2s
    retries: {attempts: 2, per_try_timeout: 1s, retry_on: \"5xx,connect-failure\"}
    fault:
      delay: {fixed: 300ms, percent: 50}
      abort: {status: 503, percent: 25}
    circuit_breaker:
      max_connections: 1
      max_pending: 1
      max_requests: 1
      consecutive_5xx: 3
      interval: 1s
      base_ejection: 30s
      max_ejection_percent: 100
  - service-b
";

#[test]
fn the_issues_example_reads_as_written() {
    let mesh = mesh(CANARY_90_10).unwrap();
    let t = &mesh.services[0].traffic;
    assert!(t.weighted());
    let weights: Vec<_> = t
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.weight))
        .collect();
    assert_eq!(weights, [("v1", Some(90)), ("v2", Some(10))]);
    assert_eq!(
        t.matches,
        [HeaderMatch {
            header: "x-user-group".into(),
            value: "beta".into(),
            version: "v2".into()
        }]
    );
    assert_eq!(t.timeout, Millis(2000));
    assert_eq!(
        t.retries,
        Some(Retries {
            attempts: 2,
            per_try_timeout: Some(Millis(1000)),
            retry_on: "5xx,connect-failure".into()
        })
    );
    assert_eq!(
        t.fault,
        Some(Fault {
            delay: Some(Delay {
                fixed: Millis(300),
                percent: 50
            }),
            abort: Some(Abort {
                status: 503,
                percent: 25
            }),
        })
    );
    assert_eq!(
        t.circuit_breaker,
        Some(CircuitBreaker {
            max_connections: Some(1),
            max_pending: Some(1),
            max_requests: Some(1),
            outlier: Some(Outlier {
                consecutive_5xx: 3,
                interval: Millis(1000),
                base_ejection: Millis(30_000),
                max_ejection_percent: 100
            }),
        })
    );
    // A service that names no rules gets the defaults: one v1 at 100, 10 s, two retries.
    assert_eq!(mesh.services[1].traffic, Traffic::default());
}

#[test]
fn defaults_and_unweighted_versions() {
    let t = Traffic::default();
    assert_eq!(t.versions.len(), 1);
    assert_eq!(t.versions[0].name, "v1");
    assert_eq!(t.versions[0].weight, Some(100));
    let lone = mesh("services:\n  - {name: a, versions: [{name: v2}]}\n").unwrap();
    assert_eq!(lone.services[0].traffic.versions[0].weight, Some(100));
    let spread =
        mesh("services:\n  - name: a\n    versions: [{name: v1}, {name: v2, fail_status: 500}]\n")
            .unwrap();
    let t = &spread.services[0].traffic;
    assert!(!t.weighted());
    assert_eq!(t.versions[1].fail_status, Some(500));
    let misbehaving = mesh(
        "services:\n  - name: a\n    versions: [{name: v1}, {name: v2, fail_status: 503, fail_percent: 5, fail_from: b, delay: 100ms}]\n",
    )
    .unwrap();
    let v2 = &misbehaving.services[0].traffic.versions[1];
    assert_eq!(
        v2.app_env(),
        [
            ("FAIL_STATUS", "503".to_owned()),
            ("FAIL_PERCENT", "5".to_owned()),
            ("FAIL_FROM", "b".to_owned()),
            ("DELAY_MS", "100".to_owned()),
        ]
    );
    let no_retries = mesh("services:\n  - {name: a, retries: {attempts: 0}}\n").unwrap();
    assert_eq!(no_retries.services[0].traffic.retries, None);
    let outlier_defaults =
        mesh("services:\n  - {name: a, circuit_breaker: {consecutive_5xx: 2}}\n").unwrap();
    let o = outlier_defaults.services[0].traffic.circuit_breaker.clone();
    let o = o.and_then(|c| c.outlier).unwrap();
    assert_eq!(
        (o.interval, o.base_ejection, o.max_ejection_percent),
        (Millis(10_000), Millis(30_000), 10)
    );
}

#[test]
fn each_refusal_names_the_service_and_field() {
    let cases = [
        (
            "versions: [{name: v1, weight: 90}, {name: v2, weight: 20}]",
            "service `a`: versions: weights sum to 110, not 100",
        ),
        (
            "versions: [{name: v1, weight: 90}, {name: v2}]",
            "service `a`: versions: give every version a weight, or none",
        ),
        (
            "versions: [{name: v1}, {name: v1}]",
            "service `a`: versions: version `v1` is listed twice",
        ),
        (
            "versions: [{name: V1}]",
            "service `a`: versions: version name `V1` is not a DNS-1123 label",
        ),
        ("versions: []", "service `a`: versions: list at least one"),
        (
            "versions: [{name: v1, fail_status: 200}]",
            "service `a`: versions.fail_status: 200 is not an error status",
        ),
        (
            "versions: [{name: v1, fail_percent: 5}]",
            "service `a`: versions: version `v1`: fail_percent and fail_from need fail_status",
        ),
        (
            "versions: [{name: v1, fail_status: 500, fail_percent: 0}]",
            "service `a`: versions.fail_percent: 0 is not a percent from 1 to 100",
        ),
        (
            "versions: [{name: v1, fail_status: 500, fail_from: B}]",
            "service `a`: versions.fail_from: `B` is not a service name",
        ),
        (
            "match: [{header: x-group, value: beta, version: v2}]",
            "service `a`: match[0]: version `v2` is not one of the service's versions (v1)",
        ),
        (
            "match: [{header: 'x group', value: beta, version: v1}]",
            "service `a`: match[0]: header `x group` is not an HTTP header name",
        ),
        ("timeout: 0s", "service `a`: timeout: must be more than 0"),
        (
            "retries: {attempts: 1, retry_on: '5xx,oops'}",
            "service `a`: retries.retry_on: `oops` is not a retry condition",
        ),
        (
            "fault: {abort: {status: 503, percent: 120}}",
            "service `a`: fault.abort.percent: percent 120 is over 100",
        ),
        (
            "fault: {delay: {fixed: 1s, percent: 101}}",
            "service `a`: fault.delay.percent: percent 101 is over 100",
        ),
        (
            "fault: {abort: {status: 99, percent: 1}}",
            "service `a`: fault.abort.status: 99 is not an HTTP status",
        ),
        (
            "fault: {}",
            "service `a`: fault: give a delay, an abort or both",
        ),
        (
            "circuit_breaker: {max_connections: 0}",
            "service `a`: circuit_breaker.max_connections: must be at least 1",
        ),
        (
            "circuit_breaker: {max_ejection_percent: 150}",
            "service `a`: circuit_breaker.max_ejection_percent: percent 150 is over 100",
        ),
        (
            "circuit_breaker: {}",
            "service `a`: circuit_breaker: give at least one",
        ),
    ];
    for (rule, want) in cases {
        let got = err(&format!("services:\n  - {{name: a, {rule}}}\n"));
        assert!(got.starts_with(want), "{rule}\n got: {got}\nwant: {want}");
        assert!(!got.contains('\n'), "{got}");
    }
}

#[test]
fn spelling_errors_carry_a_location() {
    let e = MeshInput::from_yaml("services:\n  - name: a\n    timeout: 2sec\n").unwrap_err();
    assert!(e.to_string().contains("duration `2sec`"), "{e}");
    let e = MeshInput::from_yaml(
        "services:\n  - name: a\n    fault: {abort: {status: 503, percent: 2.5}}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("line 3"), "{e}");
    let e = MeshInput::from_yaml("services:\n  - name: a\n    versions: [{name: v1, wieght: 1}]\n")
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `wieght`"), "{e}");
}

#[test]
fn shift_sets_new_weights_or_refuses() {
    let mut t = mesh(CANARY_90_10).unwrap().services[0].traffic.clone();
    t.set_weights(&[("v1".into(), 50), ("v2".into(), 50)])
        .unwrap();
    assert_eq!(t.version("v2").and_then(|v| v.weight), Some(50));
    let before = t.clone();
    let e = t
        .set_weights(&[("v1".into(), 50), ("v3".into(), 50)])
        .unwrap_err();
    assert_eq!(e.to_string(), "versions: no version `v3` (known: v1, v2)");
    let e = t.set_weights(&[("v1".into(), 60)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "versions: give version `v2` exactly one weight"
    );
    let e = t
        .set_weights(&[("v1".into(), 60), ("v2".into(), 60)])
        .unwrap_err();
    assert_eq!(e.to_string(), "versions: weights sum to 120, not 100");
    assert_eq!(t, before);
}
