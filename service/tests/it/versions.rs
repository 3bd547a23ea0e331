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
