//! Peer calls over real loopback HTTP between real demo-service processes: echo,
//! single calls, chains, the mesh row, error mapping, header propagation, the
//! MESH_PROXY path and the exactness of `/stats`.

use crate::common;

use std::time::{Duration, Instant};

use common::{black_hole, dead_port, forward_proxy, Service};
use serde_json::{json, Value};

/// b and c first (they need no peers), then a pointing at both plus a dead one.
fn trio() -> (Service, Service, Service) {
    let b = Service::start("b", &[("VERSION", "v2")]);
    let c = Service::start("c", &[]);
    let peers = format!("{},{}", b.peer_entry(), c.peer_entry());
    let a = Service::start("a", &[("PEERS", &peers)]);
    (a, b, c)
}

#[test]
fn info_echoes_every_request_header() {
    let a = Service::start("a", &[("VERSION", "v7")]);
    let r = a.get_with(
        "/info",
        &[
            ("X-Mesh-Source", "service-z"),
            ("x-mesh-hops", "2"),
            ("x-multi", "one"),
            ("x-multi", "two"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let info = r.json();
    assert_eq!(info["service"], "a");
    assert_eq!(info["version"], "v7");
    assert_eq!(info["port"], a.port);
    assert_eq!(info["hostname"], "a-pod");
    let h = &info["request_headers"];
    assert_eq!(h["x-mesh-source"], "service-z", "names are lower-cased");
    assert_eq!(h["x-mesh-hops"], "2");
    assert_eq!(h["x-multi"], "one, two", "repeats are joined in order");
    assert_eq!(h["host"], format!("127.0.0.1:{}", a.port));
    assert_eq!(a.get("/healthz").body, "ok");
}

#[test]
fn call_returns_the_peers_info_and_status() {
    let (a, b, _c) = trio();
    let r = a.get("/call/b");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["from"], "a");
    assert_eq!(v["to"], "b");
    assert_eq!(v["status"], 200);
    assert_eq!(v["url"], format!("{}/info", b.url()));
    assert!(v["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["response_headers"]["content-type"], "application/json");
    assert_eq!(v["body"]["service"], "b");
    assert_eq!(v["body"]["version"], "v2");
    assert_eq!(v["body"]["port"], b.port);
}

#[test]
fn peer_status_is_passed_through_and_non_json_kept_as_text() {
    let (a, _b, _c) = trio();
    // b has no such endpoint: b's 404 becomes a's status, b's JSON stays JSON.
    let r = a.get("/call/b/nope");
    assert_eq!(r.status, 404, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], 404);
    assert_eq!(v["body"]["error"], "no endpoint at /nope");

    // /healthz answers plain text, which comes back as a JSON string.
    let v = a.get("/call/c/healthz").json();
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "ok");
}

#[test]
fn chains_follow_the_path_and_keep_the_query() {
    let c = Service::start("c", &[]);
    let b = Service::start("b", &[("PEERS", &c.peer_entry())]);
    let peers = format!("{},{}", b.peer_entry(), c.peer_entry());
    let a = Service::start("a", &[("PEERS", &peers)]);

    let r = a.get("/call/b/call/c?trace=1&x=%2F");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["url"], format!("{}/call/c?trace=1&x=%2F", b.url()));
    let hop = &v["body"];
    assert_eq!(hop["from"], "b");
    assert_eq!(hop["to"], "c");
    assert_eq!(hop["url"], format!("{}/info?trace=1&x=%2F", c.url()));
    assert_eq!(hop["body"]["service"], "c");

    // Three levels, and an error deep in the chain surfaces with its own status.
    let r = a.get("/call/b/call/c/call/nobody");
    assert_eq!(r.status, 404, "{}", r.body);
    let v = r.json();
    assert_eq!(v["body"]["body"]["error"], "unknown peer \"nobody\"");
    assert_eq!(v["body"]["body"]["from"], "c");
}

#[test]
fn mesh_returns_one_row_per_peer_in_order() {
    let b = Service::start("b", &[]);
    let c = Service::start("c", &[]);
    let down = dead_port();
    let peers = format!(
        "{},down=http://127.0.0.1:{down},{}",
        b.peer_entry(),
        c.peer_entry()
    );
    let a = Service::start("a", &[("PEERS", &peers)]);
    let r = a.get("/mesh");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["from"], "a");
    let rows = v["results"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["to"].as_str().unwrap()).collect();
    assert_eq!(names, ["b", "down", "c"]);
    for row in [&rows[0], &rows[2]] {
        assert_eq!(row["status"], 200);
        assert_eq!(row["ok"], true);
        assert!(row.get("error").is_none(), "{row}");
        assert!(row["latency_ms"].is_number());
    }
    assert_eq!(rows[1]["ok"], false);
    assert_eq!(rows[1]["status"], Value::Null);
    let err = rows[1]["error"].as_str().unwrap();
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn unknown_peer_is_a_404_naming_it() {
    let (a, _b, _c) = trio();
    let r = a.get("/call/x");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": "unknown peer \"x\"", "from": "a", "peer": "x", "known": ["b", "c"]})
    );
}

#[test]
fn peer_down_is_a_502_naming_it() {
    let down = dead_port();
    let a = Service::start("a", &[("PEERS", &format!("gone=http://127.0.0.1:{down}"))]);
    let r = a.get("/call/gone");
    assert_eq!(r.status, 502, "{}", r.body);
    let v = r.json();
    assert_eq!(v["peer"], "gone");
    assert_eq!(v["from"], "a");
    assert_eq!(v["url"], format!("http://127.0.0.1:{down}/info"));
    let err = v["error"].as_str().unwrap();
    assert!(err.starts_with("peer \"gone\" unreachable"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn slow_peer_is_a_504_naming_it_after_the_timeout() {
    let (hole, _accepted) = black_hole();
    let a = Service::start(
        "a",
        &[
            ("PEERS", &format!("slow=http://127.0.0.1:{}", hole.port)),
            ("PEER_TIMEOUT_MS", "300"),
        ],
    );
    let started = Instant::now();
    let r = a.get("/call/slow");
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let v = r.json();
    assert_eq!(v["peer"], "slow");
    assert_eq!(v["error"], "peer \"slow\" did not answer within 300 ms");
    assert_eq!(a.stats()["calls"], json!({"slow": {"timeout": 1}}));
}

#[test]
fn trace_and_hop_headers_are_propagated_and_nothing_else() {
    let (a, b, _c) = trio();
    let sent = [
        ("x-mesh-hops", "3"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("x-request-id", "req-123"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "1"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ];
    let mut headers = sent.to_vec();
    headers.extend([
        ("x-mesh-source", "service-a"),
        ("x-mesh-dest", "service-b"),
        ("x-private", "do-not-forward"),
        ("authorization", "Bearer secret"),
    ]);
    let r = a.get_with("/call/b", &headers);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json()["body"]["request_headers"].clone();
    for (k, v) in sent {
        assert_eq!(seen[k], v, "{k} not propagated: {seen}");
    }
    for k in ["x-mesh-source", "x-mesh-dest", "x-private", "authorization"] {
        assert!(seen.get(k).is_none(), "{k} leaked: {seen}");
    }
    // The peer saw its own address as Host, not the caller's.
    assert!(seen["host"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{}", b.port)));
}

#[test]
fn mesh_proxy_receives_absolute_form_requests_for_unresolvable_peers() {
    let b = Service::start("b", &[]);
    let (proxy, seen) = forward_proxy();
    // The peer's host name does not resolve: only the proxy can reach it, exactly
    // like a cluster DNS name that only the sidecar's routes know about.
    let host = format!("service-b.mesh.invalid:{}", b.port);
    let a = Service::start(
        "a",
        &[
            ("PEERS", &format!("service-b=http://{host}")),
            ("MESH_PROXY", &format!("http://127.0.0.1:{}", proxy.port)),
        ],
    );
    let r = a.get_with("/call/service-b", &[("x-mesh-hops", "1")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["body"]["service"], "b");
    assert_eq!(v["body"]["request_headers"]["host"], host);
    assert_eq!(v["body"]["request_headers"]["x-mesh-hops"], "1");

    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let mut lines = heads[0].lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("GET http://{host}/info HTTP/1.1")
    );
    assert!(
        lines.any(|l| l.eq_ignore_ascii_case(&format!("host: {host}"))),
        "{heads:?}"
    );
    assert_eq!(b.stats()["served"]["info"], 1);
}

#[test]
fn stats_are_exact_under_concurrency() {
    let b = Service::start("b", &[]);
    let c = Service::start("c", &[]);
    let down = dead_port();
    let peers = format!(
        "{},{},down=http://127.0.0.1:{down}",
        b.peer_entry(),
        c.peer_entry()
    );
    let a = Service::start("a", &[("PEERS", &peers)]);

    const THREADS: usize = 6;
    const ROUNDS: usize = 10;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let a = &a;
            s.spawn(move || {
                for i in 0..ROUNDS {
                    assert_eq!(a.get("/call/b").status, 200);
                    assert_eq!(a.get("/call/c/call/b").status, 404, "c has no peers");
                    let source = if (t + i) % 2 == 0 { "even" } else { "odd" };
                    let info = a.get_with("/info", &[("x-mesh-source", source)]);
                    assert_eq!(info.status, 200);
                }
                assert_eq!(a.get("/mesh").status, 200);
                assert_eq!(a.get("/call/down").status, 502);
                assert_eq!(a.get("/call/nobody").status, 404);
            });
        }
    });

    let n = (THREADS * ROUNDS) as u64;
    let t = THREADS as u64;
    assert_eq!(
        a.stats(),
        json!({
            "served": {"info": n, "call": 2 * n + 2 * t, "mesh": t},
            "calls": {
                "b": {"200": n + t},
                "c": {"404": n, "200": t},
                "down": {"unreachable": 2 * t},
            },
            "seen_sources": {"even": n / 2, "odd": n / 2},
        })
    );
    // a never forwards x-mesh-source, so b counted no sources.
    assert_eq!(
        b.stats(),
        json!({"served": {"info": n + t, "call": 0, "mesh": 0}, "calls": {}, "seen_sources": {}})
    );
    assert_eq!(
        c.stats()["served"],
        json!({"info": t, "call": n, "mesh": 0})
    );
    assert_eq!(c.stats()["calls"], json!({}));
}
