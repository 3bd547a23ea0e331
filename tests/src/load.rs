//! A bounded load generator for reliability tests: worker threads, each on its own keep-alive
//! connection (reconnecting after errors), take request paths from a shared list and record
//! what happened to each one and when, so tests can compare against the sidecars' counters.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Index into the request list.
    pub index: usize,
    /// HTTP status, or `None` for a connection or protocol error.
    pub status: Option<u16>,
    /// When the request was fully written (relative to the run's start).
    pub sent: Duration,
}

pub struct Load<'a> {
    pub port: u16,
    pub connections: usize,
    pub paths: &'a [String],
    /// Stop early (the run also ends when the list is done or the deadline passes).
    pub stop: Option<&'a AtomicBool>,
    pub deadline: Duration,
    /// Keep-alive connections; `false` opens one connection per request.
    pub keep_alive: bool,
}

impl Load<'_> {
    pub fn run(&self) -> Vec<Outcome> {
        let next = AtomicUsize::new(0);
        let outcomes = Mutex::new(Vec::with_capacity(self.paths.len()));
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..self.connections {
                scope.spawn(|| {
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    let mut mine = Vec::new();
                    loop {
                        if self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
                            || start.elapsed() > self.deadline
                        {
                            break;
                        }
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(path) = self.paths.get(index) else {
                            break;
                        };
                        let (status, sent) = self.one(&mut conn, path, start);
                        if status.is_none() || !self.keep_alive {
                            conn = None;
                        }
                        mine.push(Outcome {
                            index,
                            status,
                            sent,
                        });
                    }
                    if let Ok(mut all) = outcomes.lock() {
                        all.extend(mine);
                    }
                });
            }
        });
        let mut all = outcomes.into_inner().unwrap_or_default();
        all.sort_by_key(|o| o.index);
        all
    }

    fn one(
        &self,
        conn: &mut Option<BufReader<TcpStream>>,
        path: &str,
        start: Instant,
    ) -> (Option<u16>, Duration) {
        if conn.is_none() {
            *conn = TcpStream::connect(("127.0.0.1", self.port)).ok().map(|s| {
                let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
                let _ = s.set_nodelay(true);
                BufReader::new(s)
            });
        }
        let Some(reader) = conn.as_mut() else {
            return (None, start.elapsed());
        };
        let close = if self.keep_alive {
            ""
        } else {
            "connection: close\r\n"
        };
        let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{close}\r\n");
        if reader.get_mut().write_all(req.as_bytes()).is_err() {
            return (None, start.elapsed());
        }
        let sent = start.elapsed();
        (read_response(reader), sent)
    }
}

/// Reads one response (content-length or chunked body) and returns its status.
fn read_response(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
    }
    Some(status)
}
