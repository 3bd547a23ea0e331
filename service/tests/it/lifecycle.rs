//! Start-up and shut-down as a pod sees them: bad configuration fails fast with one
//! line and a non-zero code; SIGTERM/SIGINT drain in-flight requests and exit 0.

use crate::common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{black_hole, http_get, Service, BIN};

/// Kills the child on drop unless it already exited, so a binary that unexpectedly
/// starts serving cannot outlive the test.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs the binary with exactly `env`, expecting it to exit on its own promptly.
fn run_expecting_exit(env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = Reaped(cmd.spawn().expect("spawning demo-service"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "expected demo-service to exit: {env:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}

fn assert_one_line_failure(env: &[(&str, &str)], needle: &str) {
    let (code, out, err) = run_expecting_exit(env);
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(out.is_empty(), "must not claim to listen: {out:?}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("demo-service: error: "), "{err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

#[test]
fn missing_service_name_fails_with_one_line() {
    assert_one_line_failure(
        &[("PORT", "0"), ("BIND", "127.0.0.1")],
        "SERVICE_NAME is required",
    );
}

#[test]
fn malformed_peer_entry_is_named() {
    assert_one_line_failure(
        &[
            ("SERVICE_NAME", "a"),
            ("PORT", "0"),
            ("BIND", "127.0.0.1"),
            ("PEERS", "b=http://127.0.0.1:1,service-c"),
        ],
        "invalid PEERS: entry \"service-c\" is not name=http://host:port",
    );
}

#[test]
fn port_in_use_fails_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_one_line_failure(
        &[
            ("SERVICE_NAME", "a"),
            ("PORT", &port),
            ("BIND", "127.0.0.1"),
        ],
        &format!("binding 127.0.0.1:{port}"),
    );
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let (hole, accepted) = black_hole();
    let mut a = Service::start(
        "a",
        &[
            ("PEERS", &format!("hole=http://127.0.0.1:{}", hole.port)),
            ("PEER_TIMEOUT_MS", "1500"),
        ],
    );
    let port = a.port;
    let started = Instant::now();
    let in_flight = std::thread::spawn(move || http_get(port, "/call/hole", &[]));
    // Only signal once a's outbound call is really parked on the hanging peer.
    accepted
        .recv_timeout(Duration::from_secs(10))
        .expect("a never called the peer");
    a.signal("TERM");

    let status = a.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
    let r = in_flight.join().expect("in-flight request thread");
    assert_eq!(
        r.status, 504,
        "the in-flight request got its answer: {}",
        r.body
    );
    assert_eq!(r.json()["peer"], "hole");
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

#[test]
fn sigint_exits_zero() {
    let mut a = Service::start("a", &[]);
    assert_eq!(a.get("/healthz").status, 200);
    a.signal("INT");
    assert_eq!(a.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
