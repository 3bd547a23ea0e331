//! What the traffic-management tests need from the app: `/delay/{ms}` as a slow upstream, and
//! `FAIL_STATUS` as a broken version (everything but `/healthz` fails, naming the version).

use crate::common;

use std::time::{Duration, Instant};

use common::Service;

#[test]
fn delay_waits_then_answers_like_info() {
    let svc = Service::start("service-a", &[("VERSION", "v2")]);
    let start = Instant::now();
    let r = svc.get("/delay/300");
    let took = start.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert_eq!(r.json()["version"], "v2");
    assert_eq!(svc.get("/delay/soon").status, 400);
}

#[test]
fn fail_status_fails_all_but_healthz() {
    let svc = Service::start("service-a", &[("VERSION", "v2"), ("FAIL_STATUS", "500")]);
    for path in ["/info", "/delay/1", "/mesh", "/nowhere"] {
        let r = svc.get(path);
        assert_eq!(r.status, 500, "{path}: {}", r.body);
        assert_eq!(r.json()["version"], "v2", "{path}");
    }
    assert_eq!(svc.get("/healthz").status, 200);
}

/// `FAIL_PERCENT`: a share of the requests fails, each drawn on its own; the count of 400
/// requests that fail at 30 % lies in the binomial's 99.9 % interval.
#[test]
fn fail_percent_fails_a_share_of_requests() {
    let svc = Service::start(
        "service-a",
        &[
            ("VERSION", "v2"),
            ("FAIL_STATUS", "503"),
            ("FAIL_PERCENT", "30"),
        ],
    );
    let n = 400;
    let failed = (0..n).filter(|_| svc.get("/info").status == 503).count();
    // 99.9 % two-sided interval of Binomial(400, 0.3): mean 120, sd 9.17, z 3.29.
    let (mean, sd) = (n as f64 * 0.3, (n as f64 * 0.3 * 0.7).sqrt());
    let (low, high) = (mean - 3.2905 * sd, mean + 3.2905 * sd);
    assert!(
        (low..=high).contains(&(failed as f64)),
        "{failed} of {n} failed, outside [{low:.0}, {high:.0}]"
    );
    assert_eq!(svc.get("/healthz").status, 200);
}

/// `FAIL_FROM`: only requests the sidecar tagged as coming from that caller fail; `DELAY_MS`
/// holds every answer but `/healthz`.
#[test]
fn fail_from_one_caller_and_a_delay() {
    let svc = Service::start(
        "service-a",
        &[
            ("VERSION", "v2"),
            ("FAIL_STATUS", "500"),
            ("FAIL_FROM", "service-b"),
            ("DELAY_MS", "150"),
        ],
    );
    let start = Instant::now();
    let from_b = svc.get_with("/info", &[("x-mesh-source", "service-b")]);
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(from_b.status, 500, "{}", from_b.body);
    assert_eq!(
        svc.get_with("/info", &[("x-mesh-source", "service-c")])
            .status,
        200
    );
    assert_eq!(svc.get("/info").status, 200, "no caller: not service-b");
    let start = Instant::now();
    assert_eq!(svc.get("/healthz").status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "healthz is never held"
    );
}
