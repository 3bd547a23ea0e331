//! Metric names and the id cache under forged tag values: names must parse back, and however
//! many distinct (source, destination) pairs clients invent, the number of metrics defined with
//! Envoy stays bounded.

use std::collections::{BTreeSet, HashMap};

use meshtally_core::metrics::{
    metric_name, parse_metric_name, CodeClass, MetricCache, MetricKind, ParsedMetric, Security,
    MAX_PAIRS, OVERFLOW, REQUESTS_TOTAL, REQUEST_DURATION,
};
use meshtally_core::tagging::UNKNOWN;
use meshtally_core::Direction;
use proptest::prelude::*;

use super::strategies::{cases_divided_by, label, Stream};

/// Classes a finished stream can have.
const CLASSES: usize = 6;
/// `connection_security_policy` values one direction can have (inbound: mutual_tls, none).
const POLICIES: usize = 2;

fn security() -> impl Strategy<Value = Security> {
    prop_oneof![
        Just(Security::MutualTls),
        Just(Security::None),
        Just(Security::Unknown)
    ]
}

fn class() -> impl Strategy<Value = CodeClass> {
    prop_oneof![
        Just(None),
        any::<u64>().prop_map(Some),
        (100u64..600).prop_map(Some)
    ]
    .prop_map(CodeClass::from_code)
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Inbound), Just(Direction::Outbound)]
}

fn tag_value() -> impl Strategy<Value = String> {
    prop_oneof![label(), Just(UNKNOWN.to_owned()), Just(OVERFLOW.to_owned())]
}

/// Stat-name-like text: the separators in every order, around labels and arbitrary text.
fn name_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(
            &[
                "wasmcustom.",
                "source",
                "destination",
                "destination_version",
                "direction",
                "response_code_class",
                "connection_security_policy",
                "=.=",
                ";.;",
                "=",
                ";",
                ".",
                "é",
            ][..]
        )
        .prop_map(str::to_owned),
        label(),
        "\\PC{0,4}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

proptest! {
    #[test]
    fn names_parse_back(
        metric in prop::sample::select(&[REQUESTS_TOTAL, REQUEST_DURATION][..]),
        source in tag_value(),
        destination in tag_value(),
        version in tag_value(),
        direction in direction(),
        class in class(),
        security in security(),
        prefixed in any::<bool>(),
    ) {
        let name = metric_name(metric, &source, &destination, &version, direction, class, security);
        let name = if prefixed { format!("wasmcustom.{name}") } else { name };
        let want = ParsedMetric {
            metric,
            source: &source,
            destination: &destination,
            destination_version: &version,
            direction: direction.as_str(),
            response_code_class: class.as_str(),
            connection_security_policy: security.as_str(),
        };
        prop_assert_eq!(parse_metric_name(&name), Some(want));
    }

    /// Whatever the text, parsing does not panic, and what it returns rebuilds the text.
    #[test]
    fn arbitrary_names_parse_or_not(name in prop_oneof![name_soup(), any::<String>()]) {
        if let Some(p) = parse_metric_name(&name) {
            let rebuilt = format!(
                "source=.={};.;destination=.={};.;destination_version=.={};.;direction=.={};.;response_code_class=.={};.;connection_security_policy=.={};.;{}",
                p.source, p.destination, p.destination_version, p.direction, p.response_code_class,
                p.connection_security_policy, p.metric
            );
            prop_assert_eq!(name.strip_prefix("wasmcustom.").unwrap_or(&name), rebuilt);
        }
    }
}

/// The class of a finished stream, drawn from a stream of numbers.
fn class_from(stream: &mut Stream) -> CodeClass {
    match stream.next_below(7) {
        0 => CodeClass::from_code(None),
        n => CodeClass::from_code(Some(n * 100)),
    }
}

proptest! {
    // Each case makes up to 3000 lookups; half the cases keep the bounded pass short.
    #![proptest_config(cases_divided_by(2))]

    /// Forged pairs, past the cap: each tag set is defined once, as two metrics; pairs beyond
    /// MAX_PAIRS fold into other/other; the total stays under
    /// (MAX_PAIRS + 1) * classes * policies * 2.
    #[test]
    fn defined_metrics_are_bounded(
        direction in direction(),
        seed in any::<u64>(),
        count in 0usize..3000,
        spread in 1u64..4000,
    ) {
        let mut stream = Stream(seed);
        let mut cache = MetricCache::new(direction);
        let mut defined: Vec<(MetricKind, String)> = Vec::new();
        let mut seen_ids = HashMap::new();
        for _ in 0..count {
            let source = format!("s{}", stream.next_below(spread));
            let destination = format!("d{}", stream.next_below(7));
            let version = format!("v{}", stream.next_below(3));
            let class = class_from(&mut stream);
            let verified = stream.next_below(2) == 0;
            let mut next = defined.len() as u32;
            let ids = cache.ids(&source, &destination, &version, class, verified, |kind, name| {
                defined.push((kind, name.to_owned()));
                next += 1;
                Some(next)
            });
            let ids = ids.expect("a host that always defines yields ids");
            // A tag set keeps its ids.
            let key = (source, destination, version, class.as_str(), Security::of(direction, verified).as_str());
            prop_assert_eq!(*seen_ids.entry(key).or_insert(ids), ids);
        }
        prop_assert!(defined.len() <= (MAX_PAIRS + 1) * CLASSES * POLICIES * 2, "{}", defined.len());
        let distinct: BTreeSet<&str> = defined.iter().map(|(_, n)| n.as_str()).collect();
        prop_assert_eq!(distinct.len(), defined.len(), "a metric was defined twice");
        let mut pairs = BTreeSet::new();
        for (kind, name) in &defined {
            let parsed = parse_metric_name(name).expect("defined names parse");
            prop_assert_eq!(parsed.direction, direction.as_str());
            let policies: &[&str] = match direction {
                Direction::Inbound => &["mutual_tls", "none"],
                Direction::Outbound => &["unknown"],
            };
            prop_assert!(policies.contains(&parsed.connection_security_policy));
            let want = match kind {
                MetricKind::Counter => REQUESTS_TOTAL,
                MetricKind::Histogram => REQUEST_DURATION,
            };
            prop_assert_eq!(parsed.metric, want);
            pairs.insert((
                parsed.source.to_owned(),
                parsed.destination.to_owned(),
                parsed.destination_version.to_owned(),
            ));
        }
        prop_assert!(pairs.len() <= MAX_PAIRS + 1, "{} pairs", pairs.len());
        if pairs.len() > MAX_PAIRS {
            let other = OVERFLOW.to_owned();
            prop_assert!(pairs.contains(&(other.clone(), other.clone(), other)));
        }
    }

    /// A host that refuses some definitions: no panic, ids only when both metrics were
    /// defined, at most two definitions per lookup, and still a bounded set of pairs offered
    /// to the host (a refused histogram may leave its counter defined in Envoy).
    #[test]
    fn refusals_are_not_cached(
        seed in any::<u64>(),
        count in 0usize..3000,
        refuse_one_in in 2u64..8,
    ) {
        let mut stream = Stream(seed);
        let mut cache = MetricCache::new(Direction::Inbound);
        let mut pairs = BTreeSet::new();
        for _ in 0..count {
            let source = format!("s{}", stream.next_below(u64::from(u16::MAX)));
            let class = class_from(&mut stream);
            let refusals = [stream.next_below(refuse_one_in) == 0, stream.next_below(refuse_one_in) == 0];
            let mut calls = 0;
            let mut refused = false;
            let ids = cache.ids(&source, "here", "v1", class, seed % 2 == 0, |_, name| {
                // Envoy keeps what it did define, so every name offered counts.
                let parsed = parse_metric_name(name).expect("defined names parse");
                pairs.insert(parsed.source.to_owned());
                let refuse = refusals.get(calls).copied().unwrap_or(false);
                calls += 1;
                refused |= refuse;
                (!refuse).then_some(1)
            });
            prop_assert!(calls <= 2);
            prop_assert_eq!(ids.is_none(), refused);
        }
        prop_assert!(pairs.len() <= MAX_PAIRS + 1, "{} pairs", pairs.len());
    }
}
