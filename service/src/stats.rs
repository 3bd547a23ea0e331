//! The app's own view of its traffic, served at `/stats`, so tests can check Envoy's
//! counters against an independent tally. Every count must be exact under concurrency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Which kind of request was served; `/healthz` and `/stats` are deliberately not
/// counted so probes and scrapes never disturb the numbers under test.
#[derive(Debug, Clone, Copy)]
pub enum Served {
    Info,
    Call,
    Mesh,
}

/// How an outbound call ended, as keyed in `calls.<peer>`: the peer's HTTP status
/// when one arrived, otherwise why none did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Status(u16),
    Timeout,
    Unreachable,
}

impl CallOutcome {
    fn key(self) -> String {
        match self {
            CallOutcome::Status(code) => code.to_string(),
            CallOutcome::Timeout => "timeout".to_string(),
            CallOutcome::Unreachable => "unreachable".to_string(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    info: AtomicU64,
    call: AtomicU64,
    mesh: AtomicU64,
    // Maps rather than atomics because peers and sources are open-ended; the locks are
    // held only for one insert, never across an await.
    calls: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    seen_sources: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Serialize)]
pub struct ServedCounts {
    pub info: u64,
    pub call: u64,
    pub mesh: u64,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub served: ServedCounts,
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub seen_sources: BTreeMap<String, u64>,
}

impl Stats {
    pub fn served(&self, kind: Served) {
        let counter = match kind {
            Served::Info => &self.info,
            Served::Call => &self.call,
            Served::Mesh => &self.mesh,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn call(&self, peer: &str, outcome: CallOutcome) {
        let mut calls = lock(&self.calls);
        *calls
            .entry(peer.to_string())
            .or_default()
            .entry(outcome.key())
            .or_insert(0) += 1;
    }

    pub fn seen_source(&self, source: &str) {
        *lock(&self.seen_sources)
            .entry(source.to_string())
            .or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            served: ServedCounts {
                info: self.info.load(Ordering::Relaxed),
                call: self.call.load(Ordering::Relaxed),
                mesh: self.mesh.load(Ordering::Relaxed),
            },
            calls: lock(&self.calls).clone(),
            seen_sources: lock(&self.seen_sources).clone(),
        }
    }
}

/// A panic while holding the lock cannot leave a half-updated counter map (each
/// update is a single `+= 1`), so a poisoned lock is still safe to use.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_stay_exact_across_threads() {
        let stats = Arc::new(Stats::default());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let stats = Arc::clone(&stats);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stats.served(Served::Info);
                        stats.call("b", CallOutcome::Status(200));
                        stats.seen_source(if i % 2 == 0 { "x" } else { "y" });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        stats.call("b", CallOutcome::Timeout);
        stats.call("c", CallOutcome::Unreachable);
        let snap = serde_json::to_value(stats.snapshot()).unwrap();
        assert_eq!(
            snap,
            serde_json::json!({
                "served": {"info": 8000, "call": 0, "mesh": 0},
                "calls": {"b": {"200": 8000, "timeout": 1}, "c": {"unreachable": 1}},
                "seen_sources": {"x": 4000, "y": 4000},
            })
        );
    }
}
