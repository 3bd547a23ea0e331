//! Metric naming and the per-tag-set id cache. Tags are encoded in the metric name in the
//! `<tag>=.=<value>;.;` form that Istio's extraStatTags and Envoy's `stats_tags` extract, so
//! `/stats/prometheus` shows `meshtally_requests_total{source=…,destination=…,…}`.

use crate::config::Direction;
pub use meshtally_wire::metrics::{
    parse_metric_name, stats_tags, ParsedMetric, REQUESTS_TOTAL, REQUEST_DURATION, TAG_NAMES,
};

/// At most this many (source, destination, destination version) triples get metrics of their
/// own per listener; further ones are folded into `"other"` for all three, so forged names and
/// versions cannot grow Envoy's stats store without bound.
pub const MAX_PAIRS: usize = 1024;
pub const OVERFLOW: &str = "other";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
}

/// Whether a certificate proved the caller, as Istio's `connection_security_policy` label says
/// it: `mutual_tls` or `none` where the callee counts (inbound), `unknown` where the caller
/// counts (outbound), since only the callee sees the peer certificate. Three values: the label
/// at most triples a pair's series, and the pair cap still bounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    MutualTls,
    None,
    Unknown,
}

impl Security {
    const ALL: usize = 3;

    /// Inbound: a verified peer certificate named the caller, or not. Outbound: unknown.
    pub fn of(direction: Direction, verified: bool) -> Security {
        match (direction, verified) {
            (Direction::Outbound, _) => Security::Unknown,
            (Direction::Inbound, true) => Security::MutualTls,
            (Direction::Inbound, false) => Security::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::MutualTls => "mutual_tls",
            Security::None => "none",
            Security::Unknown => "unknown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Response code class of a finished stream; `None` when no response was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    C1xx,
    C2xx,
    C3xx,
    C4xx,
    C5xx,
    None,
}

impl CodeClass {
    const ALL: usize = 6;

    pub fn from_code(code: Option<u64>) -> CodeClass {
        match code {
            Some(100..=199) => CodeClass::C1xx,
            Some(200..=299) => CodeClass::C2xx,
            Some(300..=399) => CodeClass::C3xx,
            Some(400..=499) => CodeClass::C4xx,
            Some(500..=599) => CodeClass::C5xx,
            // Envoy reports 0 for streams that ended before any response.
            _ => CodeClass::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CodeClass::C1xx => "1xx",
            CodeClass::C2xx => "2xx",
            CodeClass::C3xx => "3xx",
            CodeClass::C4xx => "4xx",
            CodeClass::C5xx => "5xx",
            CodeClass::None => "none",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The full Envoy stat name for one metric and tag set.
pub fn metric_name(
    metric: &str,
    source: &str,
    destination: &str,
    destination_version: &str,
    direction: Direction,
    class: CodeClass,
    security: Security,
) -> String {
    let values = [
        source,
        destination,
        destination_version,
        direction.as_str(),
        class.as_str(),
        security.as_str(),
    ];
    let mut name = String::with_capacity(128);
    for (tag, value) in TAG_NAMES.iter().zip(values) {
        name.push_str(tag);
        name.push_str("=.=");
        name.push_str(value);
        name.push_str(";.;");
    }
    name.push_str(metric);
    name
}

/// Metric ids for one tag set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricIds {
    pub requests: u32,
    pub duration: u32,
}

/// A pair's ids by code class, then by security policy.
type Classes = [[Option<MetricIds>; Security::ALL]; CodeClass::ALL];

/// One (source, destination, destination version) triple and its metric ids per code class and
/// security policy.
#[derive(Debug)]
struct Pair {
    source: String,
    destination: String,
    version: String,
    classes: Classes,
}

/// Caches metric ids per (source, destination, class) for one listener direction, so a metric is
/// defined with the host once and later requests only look it up, without allocating.
/// A vector sorted by pair, searched by bisection: lookups by `&str` stay O(log n) for up to
/// [`MAX_PAIRS`] pairs, inserts (once per pair) move at most that many entries, and the module
/// carries neither a B-tree (≈5 KB of wasm) nor std's SipHash and seeding.
#[derive(Debug)]
pub struct MetricCache {
    direction: Direction,
    pairs: Vec<Pair>,
}

impl MetricCache {
    pub fn new(direction: Direction) -> MetricCache {
        MetricCache {
            direction,
            pairs: Vec::new(),
        }
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    fn find(&self, source: &str, destination: &str, version: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|p| {
            (
                p.source.as_str(),
                p.destination.as_str(),
                p.version.as_str(),
            )
                .cmp(&(source, destination, version))
        })
    }

    /// Returns the ids for a tag set, defining the metrics through `define` on first use.
    /// The security policy is derived from the cache's direction and `verified`.
    /// `None` when the host refused to define a metric (the request then goes uncounted, and
    /// the caller logs it).
    pub fn ids(
        &mut self,
        source: &str,
        destination: &str,
        version: &str,
        class: CodeClass,
        verified: bool,
        mut define: impl FnMut(MetricKind, &str) -> Option<u32>,
    ) -> Option<MetricIds> {
        let security = Security::of(self.direction, verified);
        let known = self.find(source, destination, version);
        let (source, destination, version, at) = match known {
            Ok(at) => (source, destination, version, Ok(at)),
            Err(_) if self.pairs.len() < MAX_PAIRS => (source, destination, version, known),
            Err(_) => (
                OVERFLOW,
                OVERFLOW,
                OVERFLOW,
                self.find(OVERFLOW, OVERFLOW, OVERFLOW),
            ),
        };
        // The pair takes its place under the cap before anything is defined: a host that
        // defines the counter and then refuses the histogram would otherwise keep a counter
        // for every forged pair, none of them counted against MAX_PAIRS. (The overflow pair
        // itself may be the one entry past the cap.)
        let at = match at {
            Ok(at) => at,
            Err(at) => {
                self.pairs.insert(
                    at,
                    Pair {
                        source: source.to_owned(),
                        destination: destination.to_owned(),
                        version: version.to_owned(),
                        classes: [[None; Security::ALL]; CodeClass::ALL],
                    },
                );
                at
            }
        };
        let slot = self
            .pairs
            .get_mut(at)?
            .classes
            .get_mut(class.index())?
            .get_mut(security.index())?;
        if let Some(ids) = slot {
            return Some(*ids);
        }
        let requests = define(
            MetricKind::Counter,
            &metric_name(
                REQUESTS_TOTAL,
                source,
                destination,
                version,
                self.direction,
                class,
                security,
            ),
        )?;
        let duration = define(
            MetricKind::Histogram,
            &metric_name(
                REQUEST_DURATION,
                source,
                destination,
                version,
                self.direction,
                class,
                security,
            ),
        )?;
        let ids = MetricIds { requests, duration };
        *slot = Some(ids);
        Some(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_every_tag() {
        assert_eq!(
            metric_name(REQUESTS_TOTAL, "service-a", "service-b", "v2", Direction::Outbound, CodeClass::C2xx, Security::Unknown),
            "source=.=service-a;.;destination=.=service-b;.;destination_version=.=v2;.;direction=.=outbound;.;response_code_class=.=2xx;.;connection_security_policy=.=unknown;.;meshtally_requests_total"
        );
    }

    #[test]
    fn names_parse_back() {
        let name = metric_name(
            REQUESTS_TOTAL,
            "a",
            "b",
            "v1",
            Direction::Inbound,
            CodeClass::C5xx,
            Security::MutualTls,
        );
        let want = ParsedMetric {
            metric: REQUESTS_TOTAL,
            source: "a",
            destination: "b",
            destination_version: "v1",
            direction: "inbound",
            response_code_class: "5xx",
            connection_security_policy: "mutual_tls",
        };
        assert_eq!(parse_metric_name(&name), Some(want.clone()));
        assert_eq!(parse_metric_name(&format!("wasmcustom.{name}")), Some(want));
        assert_eq!(parse_metric_name("cluster.app.upstream_rq_200"), None);
        assert_eq!(parse_metric_name("source=.=a;.;destination=.=b"), None);
        // A name from before the security label does not parse as one with it.
        assert_eq!(
            parse_metric_name("source=.=a;.;destination=.=b;.;direction=.=inbound;.;response_code_class=.=2xx;.;meshtally_requests_total"),
            None
        );
    }

    #[test]
    fn security_policy_follows_istio() {
        assert_eq!(
            Security::of(Direction::Inbound, true).as_str(),
            "mutual_tls"
        );
        assert_eq!(Security::of(Direction::Inbound, false).as_str(), "none");
        assert_eq!(Security::of(Direction::Outbound, true).as_str(), "unknown");
        assert_eq!(Security::of(Direction::Outbound, false).as_str(), "unknown");
    }

    #[test]
    fn each_policy_gets_its_own_metrics() {
        let mut cache = MetricCache::new(Direction::Inbound);
        let mut names = Vec::new();
        let mut next = 0;
        let mut define = |_: MetricKind, name: &str| {
            names.push(name.to_owned());
            next += 1;
            Some(next)
        };
        let proved = cache
            .ids("a", "b", "v1", CodeClass::C2xx, true, &mut define)
            .unwrap();
        let plain = cache
            .ids("a", "b", "v1", CodeClass::C2xx, false, &mut define)
            .unwrap();
        assert_ne!(proved, plain);
        assert_eq!(
            cache.ids("a", "b", "v1", CodeClass::C2xx, true, &mut define),
            Some(proved)
        );
        assert_eq!(names.len(), 4);
        assert!(names[0].contains("connection_security_policy=.=mutual_tls;.;"));
        assert!(names[2].contains("connection_security_policy=.=none;.;"));
        // Outbound has one policy whatever `verified` says: no extra series.
        let mut out = MetricCache::new(Direction::Outbound);
        let a = out
            .ids("a", "b", "v1", CodeClass::C2xx, true, |_, _| Some(1))
            .unwrap();
        let b = out
            .ids("a", "b", "v1", CodeClass::C2xx, false, |_, _| Some(2))
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn code_classes() {
        let cases = [
            (None, "none"),
            (Some(0), "none"),
            (Some(101), "1xx"),
            (Some(200), "2xx"),
            (Some(302), "3xx"),
            (Some(404), "4xx"),
            (Some(508), "5xx"),
            (Some(600), "none"),
        ];
        for (code, want) in cases {
            assert_eq!(CodeClass::from_code(code).as_str(), want, "{code:?}");
        }
    }

    #[test]
    fn stats_tag_regexes() {
        let tags = stats_tags();
        assert_eq!(tags[0], ("source", "(source=\\.=(.*?);\\.;)".to_owned()));
        assert_eq!(tags[2].0, "destination_version");
        assert_eq!(tags[4].0, "response_code_class");
        assert_eq!(tags[5].0, "connection_security_policy");
    }

    #[test]
    fn cache_defines_each_tag_set_once() {
        let mut cache = MetricCache::new(Direction::Inbound);
        let mut defined = Vec::new();
        let mut next = 0;
        let mut define = |kind: MetricKind, name: &str| {
            defined.push((kind, name.to_owned()));
            next += 1;
            Some(next)
        };
        let a = cache
            .ids("a", "b", "v1", CodeClass::C2xx, true, &mut define)
            .unwrap();
        let again = cache
            .ids("a", "b", "v1", CodeClass::C2xx, true, &mut define)
            .unwrap();
        let other = cache
            .ids("a", "b", "v1", CodeClass::C5xx, true, &mut define)
            .unwrap();
        let v2 = cache
            .ids("a", "b", "v2", CodeClass::C2xx, true, &mut define)
            .unwrap();
        assert_eq!(a, again);
        assert_ne!(a, other);
        assert_ne!(a, v2);
        assert_eq!(defined.len(), 6);
        assert!(defined[4].1.contains("destination_version=.=v2;.;"));
        assert_eq!(defined[0].0, MetricKind::Counter);
        assert_eq!(defined[1].0, MetricKind::Histogram);
        assert!(defined[1].1.ends_with(REQUEST_DURATION));
        assert!(defined[0].1.contains("direction=.=inbound;.;"));
    }

    #[test]
    fn host_refusal_is_not_cached() {
        let mut cache = MetricCache::new(Direction::Outbound);
        assert_eq!(
            cache.ids("a", "b", "v1", CodeClass::C2xx, false, |_, _| None),
            None
        );
        assert!(cache
            .ids("a", "b", "v1", CodeClass::C2xx, false, |_, _| Some(7))
            .is_some());
    }

    #[test]
    fn pairs_beyond_the_cap_fold_into_other() {
        let mut cache = MetricCache::new(Direction::Inbound);
        let mut names = Vec::new();
        for i in 0..MAX_PAIRS + 5 {
            cache.ids("a", "b", &format!("v{i}"), CodeClass::C2xx, true, |_, n| {
                names.push(n.to_owned());
                Some(1)
            });
        }
        // Known pairs keep their own metrics after the cap is reached.
        cache.ids("a", "b", "v0", CodeClass::C4xx, true, |_, n| {
            names.push(n.to_owned());
            Some(1)
        });
        assert!(names.iter().any(|n| n
            .starts_with("source=.=other;.;destination=.=other;.;destination_version=.=other;.;")));
        assert!(names
            .last()
            .unwrap()
            .contains("destination_version=.=v0;.;"));
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), (MAX_PAIRS + 1 + 1) * 2);
    }
}
