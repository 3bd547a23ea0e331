//! The upstream "app" behind a sidecar: it answers every request with the headers it received,
//! as JSON, and remembers them, so tests see exactly what the filter let through.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Result;
use serde_json::{json, Map, Value};

pub type Headers = Vec<(String, Vec<u8>)>;

pub struct Echo {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Headers>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start() -> Result<Echo> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, st) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let rx = rx.clone();
                    std::thread::spawn(move || serve(conn, &rx));
                }
            }
        });
        Ok(Echo {
            port,
            received,
            stop,
            thread: Some(thread),
        })
    }

    /// Headers of the last request received.
    pub fn last(&self) -> Headers {
        self.received
            .lock()
            .map(|r| r.last().cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// All values of a header in a recorded request.
pub fn values(headers: &Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, received: &Mutex<Vec<Headers>>) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = Vec::new();
        if reader.read_until(b'\n', &mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers: Headers = Vec::new();
        let mut content_length = 0usize;
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.strip_suffix(b"\r\n").unwrap_or(&line);
            if line.is_empty() {
                break;
            }
            if let Some(colon) = line.iter().position(|b| *b == b':') {
                let name = String::from_utf8_lossy(&line[..colon])
                    .trim()
                    .to_ascii_lowercase();
                let value = line[colon + 1..].trim_ascii().to_vec();
                if name == "content-length" {
                    content_length = String::from_utf8_lossy(&value).parse().unwrap_or(0);
                }
                headers.push((name, value));
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut map = Map::new();
        for (name, value) in &headers {
            let entry = map.entry(name.clone()).or_insert_with(|| json!([]));
            if let Value::Array(list) = entry {
                list.push(json!(String::from_utf8_lossy(value)));
            }
        }
        if let Ok(mut r) = received.lock() {
            r.push(headers);
        }
        let body = json!({ "request_headers": map }).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            body.len(),
            body
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
