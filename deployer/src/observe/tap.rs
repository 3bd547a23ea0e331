//! `deployer tap`: the requests crossing the mesh, live, one line each, as the callee's sidecar
//! logged them (every request that reached a callee, once; the callee alone knows whether a
//! certificate proved the caller). Filters by caller, callee and status; `--json` prints one
//! object per line. Lines come from a [`Tapped`] mesh: the local proxies' access-log files, or
//! a cluster's sidecar logs through kubectl.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};
use serde::Serialize;

use meshtally_wire::access::Record;

/// A mesh whose proxies' access logs can be followed.
pub(crate) trait Tapped {
    /// Calls `each` with every access-log line written from now until `stop` is set (or `each`
    /// fails), then returns. `ready` is called once every log is being followed.
    fn follow(
        &self,
        stop: &AtomicBool,
        ready: &mut dyn FnMut(usize),
        each: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()>;

    /// Calls `each` with every access-log line written so far (`edges`).
    fn history(&self, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()>;
}

/// `--status`: a code (`503`) or a class (`5xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusMatch {
    Code(u16),
    Class(u16),
}

impl StatusMatch {
    pub(crate) fn parse(text: &str) -> Result<StatusMatch> {
        let t = text.to_ascii_lowercase();
        if let Some(class) = t.strip_suffix("xx") {
            if let Ok(c @ 1..=5) = class.parse::<u16>() {
                return Ok(StatusMatch::Class(c));
            }
        } else if let Ok(code @ 100..=599) = t.parse::<u16>() {
            return Ok(StatusMatch::Code(code));
        }
        bail!("--status {text:?}: give a status code (503) or a class (5xx)")
    }

    pub(crate) fn matches(self, status: Option<u16>) -> bool {
        match (self, status) {
            (StatusMatch::Code(c), Some(s)) => c == s,
            (StatusMatch::Class(c), Some(s)) => s / 100 == c,
            (_, None) => false,
        }
    }
}

/// Which requests to show.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub from: Option<String>,
    pub to: Option<String>,
    pub status: Option<StatusMatch>,
}

/// One tapped request, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Tap {
    pub time: String,
    pub source: String,
    pub destination: String,
    pub version: Option<String>,
    pub method: String,
    pub path: String,
    /// `None`: no response was sent (a reset).
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub verified: bool,
    /// Why the sidecar could not connect upstream, when it could not (a TLS handshake's
    /// error: a server certificate the trusted roots did not sign).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Filter {
    /// The request a log line records, if it is a callee's record this filter lets through.
    pub(crate) fn tap(&self, line: &str) -> Option<Tap> {
        let r = Record::parse(line)?;
        // A call inside the mesh is its callee's record; one that left it, its caller's (no
        // callee in the mesh saw it), with the `external` version the metrics give it.
        let (destination, version) = match (r.direction.as_str(), r.left_mesh()) {
            ("inbound", _) => (r.destination.clone(), r.version.clone()),
            (_, Some(to)) => (
                Some(to.to_owned()),
                Some(meshtally_wire::metrics::EXTERNAL_VERSION.to_owned()),
            ),
            _ => return None,
        };
        let verified = r.is_verified();
        let failure = r
            .upstream_failure
            .clone()
            .filter(|f| !f.is_empty() && f != "-");
        let tap = Tap {
            time: r.time,
            source: r.source.unwrap_or_else(|| "unknown".into()),
            destination: destination.unwrap_or_else(|| "unknown".into()),
            version,
            method: r.method.unwrap_or_default(),
            path: r.path.unwrap_or_default(),
            status: r.status.filter(|s| *s != 0),
            latency_ms: r.duration_ms,
            verified,
            failure,
        };
        let wanted = self.from.as_ref().is_none_or(|f| *f == tap.source)
            && self.to.as_ref().is_none_or(|t| *t == tap.destination)
            && self.status.is_none_or(|s| s.matches(tap.status));
        wanted.then_some(tap)
    }
}

impl Tap {
    /// One text line, in fixed-width columns (a stream cannot be aligned after the fact).
    pub(crate) fn line(&self) -> String {
        let status = self.status.map_or("-".into(), |s| s.to_string());
        let latency = self.latency_ms.map_or("-".into(), |l| format!("{l}ms"));
        let line = format!(
            "{:<24} {:<20} -> {:<20} {:<4} {:<6} {:<3} {:>7} {:<8} {}",
            self.time,
            self.source,
            self.destination,
            self.version.as_deref().unwrap_or("-"),
            self.method,
            status,
            latency,
            if self.verified { "mtls" } else { "plain" },
            self.path,
        );
        match &self.failure {
            Some(why) => format!("{line}  ({why})"),
            None => line,
        }
    }
}

/// Follows `mesh` until `stop`, writing every request `filter` lets through to `out`, flushed
/// as lines arrive. A closed `out` ends the tap with the write's error (main ends quietly on it).
pub(crate) fn run(
    mesh: &dyn Tapped,
    filter: &Filter,
    json: bool,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut ready = |logs: usize| {
        eprintln!("tapping {logs} proxies (Ctrl-C stops)…");
    };
    let mut each = |line: &str| -> Result<()> {
        let Some(tap) = filter.tap(line) else {
            return Ok(());
        };
        if json {
            serde_json::to_writer(&mut *out, &tap)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", tap.line())?;
        }
        Ok(())
    };
    let result = mesh.follow(stop, &mut ready, &mut each);
    out.flush()?;
    if result.is_err() {
        stop.store(true, Ordering::SeqCst);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"time":"2026-12-01T01:02:03.004Z","proxy":"service-b-sidecar","direction":"inbound","version":"v1","source":"service-a","destination":"service-b","authority":"service-b","method":"GET","path":"/info","status":200,"duration_ms":3,"verified":"true","peer_identity":"spiffe://cluster.local/ns/demo/sa/service-a","tls_version":"TLSv1.3","hops":"1","served_by":"service-b","response_flags":"-","request_id":"x"}"#;

    #[test]
    fn inbound_records_become_taps() {
        let tap = Filter::default().tap(LINE).unwrap();
        assert_eq!(tap.source, "service-a");
        assert_eq!(tap.status, Some(200));
        assert!(tap.verified);
        assert_eq!(tap.version.as_deref(), Some("v1"));
        let json = serde_json::to_value(&tap).unwrap();
        for key in [
            "time",
            "source",
            "destination",
            "version",
            "method",
            "path",
            "status",
            "latency_ms",
            "verified",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert!(
            tap.line().contains("service-a            -> service-b"),
            "{}",
            tap.line()
        );
        let outbound = LINE.replace("\"inbound\"", "\"outbound\"");
        assert_eq!(Filter::default().tap(&outbound), None);
        // A call that left the mesh is tapped from its caller's record.
        let external = outbound.replace(
            "\"request_id\":\"x\"",
            "\"request_id\":\"x\",\"route\":\"payments\",\"upstream_cluster\":\"outbound|80||api.payments.example\"",
        ).replace("\"status\":200", "\"status\":503");
        let tap = Filter::default().tap(&external).unwrap();
        assert_eq!(
            (tap.destination.as_str(), tap.version.as_deref(), tap.status),
            ("payments", Some("external"), Some(503))
        );
        let blocked = outbound.replace(
            "\"request_id\":\"x\"",
            "\"request_id\":\"x\",\"route\":\"block_all\"",
        );
        assert_eq!(
            Filter::default().tap(&blocked).unwrap().destination,
            "BlackHoleCluster"
        );
        assert_eq!(Filter::default().tap("garbage"), None);
    }

    #[test]
    fn filters() {
        let f = |from: Option<&str>, to: Option<&str>, status: Option<&str>| Filter {
            from: from.map(Into::into),
            to: to.map(Into::into),
            status: status.map(|s| StatusMatch::parse(s).unwrap()),
        };
        assert!(f(Some("service-a"), Some("service-b"), Some("2xx"))
            .tap(LINE)
            .is_some());
        assert!(f(None, None, Some("200")).tap(LINE).is_some());
        assert!(f(Some("service-c"), None, None).tap(LINE).is_none());
        assert!(f(None, Some("service-a"), None).tap(LINE).is_none());
        assert!(f(None, None, Some("5XX")).tap(LINE).is_none());
        for bad in ["6xx", "0", "abc", "2x", "99"] {
            assert!(StatusMatch::parse(bad).is_err(), "{bad}");
        }
    }
}
