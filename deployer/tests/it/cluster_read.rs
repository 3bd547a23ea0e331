//! `verify --cluster` and `stats --cluster` through the kubectl stand-in. The stand-in's
//! port-forward points at a gateway this test serves, so verify's real checks run against real
//! HTTP answers; the forward must be gone when verify returns, pass or fail. stats reads each
//! pod's sidecar through `kubectl exec` and merges the counters. These stay on the stand-in:
//! `port-forward` and `exec` need a kubelet and a running sidecar, which the loopback control
//! plane (kwok plays its node) does not have.

use crate::standin;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;

use standin::{one_line_failure, prom_line, reading_twice, without_context, StandIn};

mod logs;
mod sidecars;

/// A gateway answering `/<from>/call/<to>` as a tagged mesh does, except for `broken` (from, to)
/// pairs, which get a 503. Returns its port.
fn gateway(broken: Option<(&'static str, &'static str)>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("/");
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (from, to) = (parts[0], parts.get(2).copied().unwrap_or(""));
            let (status, body) = if broken == Some((from, to)) {
                (
                    "503 Service Unavailable",
                    r#"{"error":"upstream"}"#.to_owned(),
                )
            } else {
                (
                    "200 OK",
                    format!(
                        r#"{{"from":"{from}","to":"{to}","status":200,"body":{{"request_headers":{{"x-mesh-source":"{from}","x-mesh-peer-verified":"true"}}}}}}"#
                    ),
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-mesh-served-by: {from}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn forward_is_gone(standin: &StandIn) {
    let pid = std::fs::read_to_string(standin.dir.path().join("port-forward.pid"))
        .expect("the port-forward ran");
    let proc = Path::new("/proc").join(pid.trim());
    assert!(!proc.exists(), "port-forward {} still running", pid.trim());
}

fn verify(standin: &StandIn, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify".to_owned(), "--kubectl".to_owned()];
    args.push(standin::script().to_string_lossy().into_owned());
    args.extend(["--context".to_owned(), standin::CONTEXT.to_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    standin.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn verify_port_forwards_checks_every_pair_and_stops_the_forward() {
    let port = gateway(None);
    let standin = StandIn::new().env("STANDIN_FORWARD_PORT", port.to_string());
    let out = verify(&standin, &["--services", "3", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let calls = standin.calls();
    let args: Vec<Vec<&str>> = calls.iter().map(|c| without_context(c)).collect();
    assert_eq!(args[0], ["get", "--raw=/readyz", "--request-timeout=10s"]);
    assert_eq!(
        args[1],
        [
            "port-forward",
            "-n",
            "istio-system",
            "svc/istio-ingressgateway",
            ":80",
            "--address",
            "127.0.0.1"
        ]
    );
    assert_eq!(args.len(), 2);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["pairs"].as_array().unwrap().len(), 6);
    assert!(
        stderr.contains(&format!("port-forwarding 127.0.0.1:{port}")),
        "{stderr}"
    );
    forward_is_gone(&standin);
}

#[test]
fn a_failed_verify_also_stops_the_forward() {
    let port = gateway(Some(("web", "api")));
    let standin = StandIn::new().env("STANDIN_FORWARD_PORT", port.to_string());
    let out = verify(&standin, &["--names", "web,api"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("web → api: status 503"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: 1 of 2 pairs failed"), "{stderr}");
    forward_is_gone(&standin);
}

#[test]
fn verify_without_a_gateway_is_one_line() {
    let standin = StandIn::new().env("STANDIN_FORWARD_FAIL", "1");
    let out = verify(&standin, &[]);
    one_line_failure(&out, "cannot port-forward to Istio's ingress gateway: `");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed: services \"istio-ingressgateway\" not found"),
        "{stderr}"
    );
    let unreachable = StandIn::new().env("STANDIN_UNREACHABLE", "1");
    one_line_failure(&verify(&unreachable, &[]), "cannot reach the cluster");
    assert_eq!(unreachable.calls().len(), 1);
}
