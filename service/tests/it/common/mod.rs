//! Test harness: runs the real demo-service binary on loopback and talks raw HTTP/1.1
//! to it, so the tests exercise exactly what a pod runs. Everything started here is
//! stopped by a Drop guard, so a failing assertion never leaks a process or thread.

#![allow(dead_code)] // not every helper is used by every area

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_demo-service");
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running demo-service; killed (if still alive) when dropped.
pub struct Service {
    pub name: String,
    pub port: u16,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Service {
    /// Starts `name` on 127.0.0.1 with PORT=0 and learns the port from the binary's
    /// first stdout line, so there is no window in which another test can grab it.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(BIN);
        // A clean environment so a developer's HTTP_PROXY, PORT or LOG cannot leak in.
        cmd.env_clear()
            .env("SERVICE_NAME", name)
            .env("BIND", "127.0.0.1")
            .env("PORT", "0")
            .env("HOSTNAME", format!("{name}-pod"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning demo-service");
        let stdout = child.stdout.take().expect("piped stdout");
        // Guard first, so the child dies even if the readiness wait below panics.
        let mut service = Service {
            name: name.to_string(),
            port: 0,
            child,
            exited: None,
        };

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let first = rx
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|_| panic!("{name}: no 'listening on' line within {IO_TIMEOUT:?}"));
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name}: unexpected first line {first:?}"));
        assert!(addr.starts_with("127.0.0.1:"), "{name}: bound {addr}");
        service.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        service
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `name=url` for this instance, ready for another instance's PEERS.
    pub fn peer_entry(&self) -> String {
        format!("{}={}", self.name, self.url())
    }

    pub fn get(&self, path: &str) -> Resp {
        http_get(self.port, path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http_get(self.port, path, headers)
    }

    pub fn stats(&self) -> Value {
        let r = self.get("/stats");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill(1)")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One GET on a fresh connection (Connection: close), read to EOF, through the tests' raw
/// client (`meshtally_testkit::http`). Extra headers may repeat a name; they are sent in the
/// given order.
pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    let raw: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    let resp = meshtally_testkit::http::get_host(port, &format!("127.0.0.1:{port}"), path, &raw)
        .unwrap_or_else(|e| panic!("GET {path} on 127.0.0.1:{port}: {e:#}"));
    Resp {
        status: resp.status,
        headers: resp
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        body: resp.text(),
    }
}

/// A loopback port with nothing listening: bound, then released. Only used as the
/// address of a peer that is down, where a reuse race would merely flip one assertion.
pub fn dead_port() -> u16 {
    meshtally_testkit::free_port().unwrap()
}

/// A loopback TCP server run on a thread and stopped (and joined) on drop.
pub struct TcpServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    fn spawn(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> TcpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handle = Arc::clone(&handle);
                std::thread::spawn(move || handle(conn));
            }
        });
        TcpServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections and never answers, until the test ends: a peer that hangs.
/// Each accepted connection is reported on the returned channel.
pub fn black_hole() -> (TcpServer, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = TcpServer::spawn(move |mut conn| {
        let _ = tx.lock().unwrap().send(());
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // Hold the connection open by reading until the client gives up.
        let mut buf = [0u8; 1024];
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
    });
    (server, rx)
}

/// A minimal HTTP forward proxy, standing in for a sidecar's outbound listener: it
/// records each request head it receives, then forwards the request to 127.0.0.1 at
/// the port named in the absolute-form URI — whatever the host name — the way Envoy
/// routes by service name without the app ever resolving it.
pub fn forward_proxy() -> (TcpServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let server = TcpServer::spawn(move |mut conn| {
        conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        log.lock().unwrap().push(head.clone());

        let request_line = head.lines().next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
        let Some(rest) = target.strip_prefix("http://") else {
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            return;
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let port: u16 = authority.rsplit(':').next().unwrap().parse().unwrap();
        let mut upstream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        upstream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut out = format!("{method} {path} HTTP/1.1\r\n");
        for line in head.lines().skip(1) {
            if !line.to_ascii_lowercase().starts_with("connection:") {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("connection: close\r\n\r\n");
        upstream.write_all(out.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = upstream.read_to_end(&mut response);
        let _ = conn.write_all(&response);
        let _ = conn.shutdown(Shutdown::Both);
    });
    (server, seen)
}
