//! A bounded load generator for reliability tests: worker threads, each on its own keep-alive
//! connection (reconnecting after errors), take request paths from a shared list and record
//! what happened to each one and when, so tests can compare against the sidecars' counters.
//! The requests go through the testkit's raw client ([`Connection`]).

use meshtally_testkit::http::Connection;
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
                    let mut conn: Option<Connection> = None;
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
        conn: &mut Option<Connection>,
        path: &str,
        start: Instant,
    ) -> (Option<u16>, Duration) {
        if conn.is_none() {
            *conn = Connection::open(self.port, Duration::from_secs(15)).ok();
        }
        let Some(open) = conn.as_mut() else {
            return (None, start.elapsed());
        };
        if open
            .write_request("localhost", path, &[], !self.keep_alive)
            .is_err()
        {
            return (None, start.elapsed());
        }
        let sent = start.elapsed();
        (open.read_response().ok().map(|r| r.status), sent)
    }
}
