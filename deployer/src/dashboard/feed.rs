//! The dashboard's reader thread: reads the mesh once a second and publishes the graph of each
//! read to the server's [`Feed`]. A read that fails as a whole (no mesh running, kubectl
//! cannot reach the cluster) publishes a graph that says so, and the next second tries again,
//! so the page recovers by itself when the mesh comes up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::graph::{Graph, Observed};
use super::server::Feed;

/// How often the mesh is read, and so how often the page changes.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// Something that can read the mesh: every sidecar it can reach, with the ones it cannot
/// named in [`Observed::unreachable`]; an error when there is no mesh to read at all.
pub(crate) trait Reader: Send {
    fn read(&mut self) -> Result<Observed>;
    /// What to tell the user when no call was seen yet (a command that works when pasted).
    fn traffic_hint(&self) -> String;
}

/// One read, as a graph numbered `seq`.
pub(crate) fn once(reader: &mut dyn Reader, seq: u64) -> Graph {
    match reader.read() {
        Ok(observed) => Graph::build(seq, &observed, &reader.traffic_hint()),
        Err(e) => Graph::not_running(seq, format!("{e:#}")),
    }
}

/// Reads every [`PERIOD`] until `stop` is set.
pub(crate) fn run(mut reader: Box<dyn Reader>, feed: &Feed, stop: &AtomicBool) -> Result<()> {
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        let began = Instant::now();
        seq += 1;
        feed.publish(&once(reader.as_mut(), seq))?;
        let rest = PERIOD.saturating_sub(began.elapsed());
        // Sleep in small steps, so a stop is seen within 100 ms.
        let until = Instant::now() + rest;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(
                Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }
    Ok(())
}

/// Starts [`run`] on its own thread.
pub(crate) fn spawn(
    reader: Box<dyn Reader>,
    feed: Arc<Feed>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || run(reader, &feed, &stop))
}
