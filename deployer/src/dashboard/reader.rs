//! The dashboard's reader of a real mesh: every proxy read once a second through
//! [`Counted::proxies`], the reads of the last window kept, and `top`'s per-edge figures
//! ([`signals::edges`]) taken over the window (what the page colours) and since the sidecars
//! started (which edges exist, whether every call was verified). A proxy that cannot be read
//! is named unreachable and its last good read stands in, so its edges stay drawn.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::feed::Reader;
use super::graph::{Down, Observed};
use crate::observe::signals::{self, Snapshot};
use crate::observe::Counted;

/// Opens the mesh: its proxies, and its services in drawing order. Called again after a read
/// found no proxy at all, so a mesh that stopped and came back is found again.
pub(crate) type Open = dyn FnMut() -> Result<(Box<dyn Counted + Send>, Vec<String>)> + Send;

/// Checks the mesh's own processes (a local mesh's apps and proxies): those that are not up.
/// Only where they can be seen; a cluster's nodes are told by their proxies' reads alone.
pub(crate) type Probe = dyn FnMut() -> Result<Vec<Down>> + Send;

/// A mesh read through what `open` gives, over windows of `window`.
pub(crate) struct MeshReader {
    open: Box<Open>,
    probe: Option<Box<Probe>>,
    mesh: Option<Box<dyn Counted + Send>>,
    services: Vec<String>,
    gateway: Option<String>,
    window: Duration,
    traffic_hint: String,
    /// The last good exposition of every proxy.
    last: BTreeMap<String, String>,
    /// Snapshots of the last window and a little more, oldest first.
    history: VecDeque<(Instant, Snapshot)>,
}

impl MeshReader {
    /// `gateway` is the caller name the gateway's calls carry; services not in the model join
    /// the drawing as their proxies are read.
    pub(crate) fn new(
        open: Box<Open>,
        gateway: Option<String>,
        window: Duration,
        traffic_hint: String,
    ) -> MeshReader {
        MeshReader {
            open,
            probe: None,
            mesh: None,
            services: Vec::new(),
            gateway,
            window,
            traffic_hint,
            last: BTreeMap::new(),
            history: VecDeque::new(),
        }
    }

    /// Checks the mesh's processes at every read too, so a node whose app is down says so.
    pub(crate) fn with_probe(mut self, probe: Box<Probe>) -> MeshReader {
        self.probe = Some(probe);
        self
    }
}

impl Reader for MeshReader {
    fn read(&mut self) -> Result<Observed> {
        let mesh = match self.mesh.take() {
            Some(mesh) => mesh,
            None => {
                let (mesh, services) = (self.open)()?;
                self.services = services;
                mesh
            }
        };
        let proxies = mesh.proxies()?;
        if let Some(err) = proxies.iter().all(|p| p.exposition.is_err()).then(|| {
            proxies
                .iter()
                .find_map(|p| p.exposition.as_ref().err())
                .map_or("no proxy".to_owned(), |e| format!("{e:#}"))
        }) {
            // Nothing answers: the mesh stopped. Open it again next time.
            anyhow::bail!("no proxy of the mesh answers ({err}): is it running?");
        }
        self.mesh = Some(mesh);
        let now = Instant::now();
        let mut unreachable = BTreeSet::new();
        for p in proxies {
            let name = p.service.clone().or_else(|| self.gateway.clone());
            if let Some(service) = &p.service {
                if !self.services.contains(service) {
                    self.services.push(service.clone());
                }
            }
            match p.exposition {
                Ok(text) => {
                    self.last.insert(p.proxy, text);
                }
                Err(_) => {
                    unreachable.extend(name);
                }
            }
        }
        let snapshot =
            Snapshot::from_expositions(self.last.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        self.history.push_back((now, snapshot));
        // The window starts at the oldest read no older than `window` (reads are a period
        // apart, so half a period is allowed for their jitter).
        let oldest = self.window + super::feed::PERIOD / 2;
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > oldest)
        {
            self.history.pop_front();
        }
        let (Some((start, before)), Some((_, after))) = (self.history.front(), self.history.back())
        else {
            anyhow::bail!("no read kept");
        };
        let length = now.saturating_duration_since(*start);
        let window = if length.is_zero() {
            Vec::new()
        } else {
            signals::edges(before, after, length)
        };
        // Since the sidecars started: the rate is meaningless there and is not used.
        let total = signals::edges(&Snapshot::default(), after, Duration::from_secs(1));
        // A probe that fails (the plan was being rewritten) leaves the nodes to what their
        // proxies' reads say, as on a cluster: the figures matter more than the cue.
        let down = self
            .probe
            .as_mut()
            .and_then(|probe| probe().ok())
            .unwrap_or_default();
        Ok(Observed {
            services: self.services.clone(),
            gateway: self.gateway.clone(),
            unreachable,
            down,
            total,
            window,
            window_s: length.as_secs_f64(),
        })
    }

    fn traffic_hint(&self) -> String {
        self.traffic_hint.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::dashboard::graph::{Graph, Health, State};
    use crate::observe::ProxyRead;

    /// Proxies whose reads are scripted: each read takes the next list of (service, count of
    /// a → b calls, or None for a proxy that does not answer).
    type Script = Arc<Mutex<Vec<Vec<(&'static str, Option<u64>)>>>>;
    struct Scripted(Script);

    impl Counted for Scripted {
        fn counters(&self) -> Result<Vec<(String, u64)>> {
            Ok(Vec::new())
        }
        fn proxies(&self) -> Result<Vec<ProxyRead>> {
            let mut script = self.0.lock().unwrap();
            let reads = script.remove(0);
            Ok(reads
                .into_iter()
                .map(|(service, count)| ProxyRead {
                    proxy: format!("{service}-sidecar"),
                    service: Some(service.into()),
                    exposition: count
                        .map(|n| {
                            if service == "service-b" {
                                format!("meshtally_requests_total{{source=\"service-a\",destination=\"service-b\",direction=\"inbound\",response_code_class=\"2xx\",connection_security_policy=\"mutual_tls\"}} {n}\n")
                            } else {
                                String::new()
                            }
                        })
                        .ok_or_else(|| anyhow::anyhow!("connection refused")),
                })
                .collect())
        }
    }

    #[test]
    fn windows_totals_unreachable_proxies_and_a_stopped_mesh() {
        let script = Arc::new(Mutex::new(vec![
            vec![("service-a", Some(0)), ("service-b", Some(10))],
            vec![("service-a", Some(0)), ("service-b", Some(30))],
            vec![("service-a", Some(0)), ("service-b", None)],
            vec![("service-a", None), ("service-b", None)],
        ]));
        let opened = Arc::new(Mutex::new(0));
        let (s, o) = (script.clone(), opened.clone());
        let open = move || {
            *o.lock().unwrap() += 1;
            Ok((
                Box::new(Scripted(s.clone())) as Box<dyn Counted + Send>,
                vec!["service-a".to_owned(), "service-b".to_owned()],
            ))
        };
        let mut reader =
            MeshReader::new(Box::new(open), None, Duration::from_secs(60), "hint".into());
        // The first read: the edge exists (10 calls so far) but the window is empty.
        let first = reader.read().unwrap();
        assert_eq!(first.services, ["service-a", "service-b"]);
        assert_eq!(first.total.len(), 1);
        assert_eq!(first.total[0].signals.requests, 10);
        assert!(first.window.is_empty());
        std::thread::sleep(Duration::from_millis(20));
        // The second: 20 more calls in the window.
        let second = reader.read().unwrap();
        assert_eq!(second.window.len(), 1);
        assert_eq!(second.window[0].signals.requests, 20);
        assert_eq!(second.window[0].signals.mtls_share, Some(1.0));
        let graph = Graph::build(2, &second, "hint");
        assert_eq!(graph.edges[0].health, Health::Ok);
        assert!(graph.edges[0].verified);
        // service-b stops answering: marked, its last read kept, its edge unknown.
        let third = reader.read().unwrap();
        assert_eq!(third.unreachable.iter().collect::<Vec<_>>(), ["service-b"]);
        assert_eq!(third.total[0].signals.requests, 30);
        let graph = Graph::build(3, &third, "hint");
        assert_eq!(graph.state, State::Ok);
        assert_eq!(graph.edges[0].health, Health::Unknown);
        // Nothing answers: an error, and the mesh is opened again on the next read.
        let err = reader.read().unwrap_err().to_string();
        assert!(err.contains("is it running?"), "{err}");
        assert_eq!(*opened.lock().unwrap(), 1);
        script
            .lock()
            .unwrap()
            .push(vec![("service-a", Some(0)), ("service-b", Some(30))]);
        reader.read().unwrap();
        assert_eq!(*opened.lock().unwrap(), 2);
    }
}
