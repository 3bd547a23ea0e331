//! `canary`'s judge: from two reads of the sidecars' meshtally metrics (the callee's inbound
//! counters and duration histogram, as `top` reads them), the calls into one service per
//! version and per caller since a step began, and the verdict on them: errors of the canary
//! against the baseline by a one-sided test (`significance`), overall and per caller, and the
//! p50/p99 of each version from the histogram. Every number the verdict rests on is kept in
//! the [`Evidence`], which the report prints.

use std::collections::BTreeMap;

use meshtally_wire::metrics::{REQUESTS_TOTAL, REQUEST_DURATION};
use serde::Serialize;

use super::exposition;
use super::quantile::histogram_quantile;
use super::signals::{Snapshot, VERSION_LABEL};
use super::significance::{self, Comparison};

/// What a step's verdict is held against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Thresholds {
    /// The confidence level of the error tests, e.g. 0.99.
    pub confidence: f64,
    /// The largest increase of the error rate (a fraction) the canary may show.
    pub max_error_increase: f64,
    /// The largest increase of p99, in ms.
    pub max_p99_increase_ms: f64,
    /// Calls to the canary a step needs before it is judged at all.
    pub min_requests: u64,
    /// Calls to the canary one caller needs before its own calls are judged.
    pub min_caller_requests: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Calls into a version (from one caller or all), gathered before the ratios are taken.
#[derive(Debug, Clone, Default)]
struct Tally {
    requests: f64,
    errors: f64,
    /// Cumulative counts by bucket bound (bits of the f64 bound; bounds are never negative).
    buckets: BTreeMap<u64, f64>,
}

impl Tally {
    fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (le, c) in &other.buckets {
            *self.buckets.entry(*le).or_default() += c;
        }
    }

    fn buckets(&self) -> Vec<(f64, f64)> {
        self.buckets
            .iter()
            .map(|(le, c)| (f64::from_bits(*le), *c))
            .collect()
    }

    fn counts(&self, version: &str) -> VersionCounts {
        let buckets = self.buckets();
        let requests = self.requests.round() as u64;
        let errors = self.errors.round() as u64;
        let p99 = histogram_quantile(0.99, &buckets);
        VersionCounts {
            version: version.to_owned(),
            requests,
            errors,
            error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
            p50_ms: histogram_quantile(0.5, &buckets),
            p99_ms: p99,
            p99_bucket_ms: p99.and_then(|q| bucket_of(q, &buckets)),
        }
    }
}

/// The bucket `(lower, upper]` a quantile fell in: how exact the histogram lets it be.
fn bucket_of(q: f64, buckets: &[(f64, f64)]) -> Option<(f64, f64)> {
    let mut bounds: Vec<f64> = buckets
        .iter()
        .map(|b| b.0)
        .filter(|b| b.is_finite())
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    let upper = bounds.iter().position(|b| *b >= q)?;
    let lower = upper
        .checked_sub(1)
        .and_then(|i| bounds.get(i))
        .copied()
        .unwrap_or(0.0);
    Some((lower, *bounds.get(upper)?))
}

/// Calls into the service since a step began, per version and caller.
#[derive(Debug, Clone, Default)]
pub(crate) struct Calls {
    by: BTreeMap<(String, String), Tally>,
}

impl Calls {
    /// The calls into `service` between two reads, as its sidecars counted them (inbound).
    pub(crate) fn between(before: &Snapshot, after: &Snapshot, service: &str) -> Calls {
        let mut by: BTreeMap<(String, String), Tally> = BTreeMap::new();
        for sample in after.since(before) {
            if sample.label("destination") != Some(service) {
                continue;
            }
            let (Some(version), Some(source)) =
                (sample.label(VERSION_LABEL), sample.label("source"))
            else {
                continue;
            };
            let tally = by
                .entry((version.to_owned(), source.to_owned()))
                .or_default();
            if sample.name == REQUESTS_TOTAL {
                tally.requests += sample.value;
                if matches!(sample.label("response_code_class"), Some("5xx" | "none")) {
                    tally.errors += sample.value;
                }
            } else if sample.name.strip_suffix("_bucket") == Some(REQUEST_DURATION) {
                if let Some(le) = exposition::le(&sample).filter(|le| *le >= 0.0) {
                    *tally.buckets.entry(le.to_bits()).or_default() += sample.value;
                }
            }
        }
        Calls { by }
    }

    /// All calls into the service, every version and caller.
    pub(crate) fn total(&self) -> u64 {
        self.by.values().map(|t| t.requests).sum::<f64>().round() as u64
    }

    fn version(&self, version: &str, caller: Option<&str>) -> Tally {
        let mut out = Tally::default();
        for ((v, source), t) in &self.by {
            if v == version && caller.is_none_or(|c| c == source) {
                out.merge(t);
            }
        }
        out
    }

    fn callers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.by.keys().map(|(_, s)| s.clone()).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// One version's calls over a step: counts, error rate and quantiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct VersionCounts {
    pub version: String,
    pub requests: u64,
    /// Calls answered 5xx or not answered at all.
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The histogram bucket p99 fell in: the quantile is exact only to this range.
    pub p99_bucket_ms: Option<(f64, f64)>,
}

/// The error comparison of canary against baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ErrorCheck {
    /// The canary's error rate minus the baseline's.
    pub increase: Option<f64>,
    pub threshold: f64,
    /// The test, its one-sided p-value, and the significance level it was held to (1 −
    /// confidence, divided among the comparisons of the step: Bonferroni).
    pub comparison: Option<Comparison>,
    pub alpha: f64,
    pub verdict: Verdict,
}

/// The latency comparison, at p99 and at p50. Quantiles from a histogram are exact only to
/// their bucket, and a p99 of a few hundred calls is the second or third slowest of them:
/// compared as numbers alone, a couple of slow calls in a wide bucket (100-250 ms) would swing
/// it by a hundred ms. So a quantile fails only on both: the canary's above the baseline's by
/// more than the threshold, and a test like the errors' finding that significantly more of the
/// canary's calls than of the baseline's are slower than the first bucket bound at or above
/// the baseline's quantile (and more of them than the quantile leaves above it). The p50 is
/// held to the same threshold: a median that rose by more than the tail may rise is a slower
/// version even when a loaded baseline's tail hides it at p99.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LatencyCheck {
    pub threshold_ms: f64,
    pub p99: QuantileCheck,
    pub p50: QuantileCheck,
    pub verdict: Verdict,
}

/// One quantile's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct QuantileCheck {
    pub increase_ms: Option<f64>,
    /// The bound calls are counted above: the first bucket bound ≥ the baseline's quantile.
    pub slower_than_ms: Option<f64>,
    /// Calls slower than the bound, and calls with a duration, per version.
    pub baseline_slower: Option<(u64, u64)>,
    pub canary_slower: Option<(u64, u64)>,
    pub comparison: Option<Comparison>,
    pub alpha: f64,
    pub verdict: Verdict,
}

/// One caller's calls into each version, and whether the canary failed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CallerCheck {
    pub caller: String,
    pub baseline: VersionCounts,
    pub canary: VersionCounts,
    pub errors: ErrorCheck,
}

/// Everything a step's verdict rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Evidence {
    pub baseline: VersionCounts,
    pub canary: VersionCounts,
    pub errors: ErrorCheck,
    pub latency: LatencyCheck,
    pub callers: Vec<CallerCheck>,
    pub verdict: Verdict,
    /// Why, in words: each failed check, or what is missing.
    pub reasons: Vec<String>,
    /// The callers the canary failed, by name.
    pub failing_callers: Vec<String>,
}

/// The verdict on a step's calls. Inconclusive until the canary has `min_requests` calls (and
/// the baseline some); then a fail when the canary's errors exceed the baseline's by more than
/// the threshold and significantly (overall or for one caller with enough calls), or its p99
/// by more than the latency threshold; else a pass.
pub(crate) fn judge(calls: &Calls, baseline: &str, canary: &str, t: &Thresholds) -> Evidence {
    let base = calls.version(baseline, None);
    let can = calls.version(canary, None);
    let (base_counts, can_counts) = (base.counts(baseline), can.counts(canary));
    let enough = can_counts.requests >= t.min_requests && base_counts.requests > 0;
    // Callers judged on their own: those with enough calls to the canary and some to the
    // baseline. The significance level is shared among all comparisons of the step.
    // Only once the step as a whole has enough calls: before, no check may fail it.
    let judged: Vec<String> = calls
        .callers()
        .into_iter()
        .filter(|c| {
            enough
                && calls.version(canary, Some(c)).requests >= t.min_caller_requests as f64
                && calls.version(baseline, Some(c)).requests > 0.0
        })
        .collect();
    // Errors overall, latency at p99 and p50, and each judged caller: one level shared.
    let alpha = (1.0 - t.confidence) / (3 + judged.len()) as f64;
    let errors = error_check(&base_counts, &can_counts, t, alpha, enough);
    let latency = latency_check(&base, &can, (&base_counts, &can_counts), t, alpha, enough);
    let mut reasons = Vec::new();
    let mut failing_callers = Vec::new();
    let mut callers = Vec::new();
    for caller in calls.callers() {
        let (b, c) = (
            calls.version(baseline, Some(&caller)).counts(baseline),
            calls.version(canary, Some(&caller)).counts(canary),
        );
        let errors = error_check(&b, &c, t, alpha, judged.contains(&caller));
        if errors.verdict == Verdict::Fail {
            reasons.push(format!(
                "calls from {caller} fail on {canary}: {} of {} ({}) against {} of {} on {baseline} ({})",
                c.errors,
                c.requests,
                percent(c.error_rate),
                b.errors,
                b.requests,
                percent(b.error_rate)
            ));
            failing_callers.push(caller.clone());
        }
        callers.push(CallerCheck {
            caller,
            baseline: b,
            canary: c,
            errors,
        });
    }
    if errors.verdict == Verdict::Fail {
        reasons.insert(
            0,
            format!(
                "{canary} errors {} against {} on {baseline}: up {} (threshold {}), p = {} < {}",
                percent(can_counts.error_rate),
                percent(base_counts.error_rate),
                percent(errors.increase),
                percent(Some(t.max_error_increase)),
                sci(errors.comparison.map(|c| c.p_value)),
                sci(Some(alpha))
            ),
        );
    }
    for (name, q, base_q, can_q) in [
        ("p99", &latency.p99, base_counts.p99_ms, can_counts.p99_ms),
        ("p50", &latency.p50, base_counts.p50_ms, can_counts.p50_ms),
    ] {
        if q.verdict != Verdict::Fail {
            continue;
        }
        let share = |s: Option<(u64, u64)>| {
            s.map_or("-".to_owned(), |(slow, n)| {
                format!(
                    "{slow} of {n} ({})",
                    percent(Some(slow as f64 / n.max(1) as f64))
                )
            })
        };
        reasons.push(format!(
            "{canary} {name} {} against {} on {baseline} (threshold +{:.0} ms): {} of its calls slower than {} against {}, p = {} < {}",
            ms(can_q),
            ms(base_q),
            t.max_p99_increase_ms,
            share(q.canary_slower),
            ms(q.slower_than_ms),
            share(q.baseline_slower),
            sci(q.comparison.map(|c| c.p_value)),
            sci(Some(alpha))
        ));
    }
    let verdict = if !reasons.is_empty() {
        Verdict::Fail
    } else if !enough {
        reasons.push(
            if base_counts.requests == 0 && can_counts.requests >= t.min_requests {
                format!("no calls to {baseline} to compare with")
            } else {
                format!(
                    "{} of {} calls to {canary} needed",
                    can_counts.requests, t.min_requests
                )
            },
        );
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    Evidence {
        baseline: base_counts,
        canary: can_counts,
        errors,
        latency,
        callers,
        verdict,
        reasons,
        failing_callers,
    }
}

fn error_check(
    base: &VersionCounts,
    can: &VersionCounts,
    t: &Thresholds,
    alpha: f64,
    judged: bool,
) -> ErrorCheck {
    let comparison = significance::compare(can.errors, can.requests, base.errors, base.requests);
    let increase = match (can.error_rate, base.error_rate) {
        (Some(c), Some(b)) => Some(c - b),
        _ => None,
    };
    let verdict = match (judged, comparison, increase) {
        (false, _, _) | (_, None, _) | (_, _, None) => Verdict::Inconclusive,
        (true, Some(c), Some(up)) if c.p_value < alpha && up > t.max_error_increase => {
            Verdict::Fail
        }
        _ => Verdict::Pass,
    };
    ErrorCheck {
        increase,
        threshold: t.max_error_increase,
        comparison,
        alpha,
        verdict,
    }
}

fn latency_check(
    base: &Tally,
    can: &Tally,
    (base_counts, can_counts): (&VersionCounts, &VersionCounts),
    t: &Thresholds,
    alpha: f64,
    enough: bool,
) -> LatencyCheck {
    let p99 = quantile_check(
        base,
        can,
        (base_counts.p99_ms, can_counts.p99_ms, 0.01),
        t,
        alpha,
        enough,
    );
    let p50 = quantile_check(
        base,
        can,
        (base_counts.p50_ms, can_counts.p50_ms, 0.5),
        t,
        alpha,
        enough,
    );
    let verdict = match (p99.verdict, p50.verdict) {
        (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
        (Verdict::Pass, Verdict::Pass) => Verdict::Pass,
        _ => Verdict::Inconclusive,
    };
    LatencyCheck {
        threshold_ms: t.max_p99_increase_ms,
        p99,
        p50,
        verdict,
    }
}

/// One quantile: `above` is the share of calls the quantile leaves above it (0.01 for p99).
fn quantile_check(
    base: &Tally,
    can: &Tally,
    (base_q, can_q, above): (Option<f64>, Option<f64>, f64),
    t: &Thresholds,
    alpha: f64,
    enough: bool,
) -> QuantileCheck {
    let bound = base_q.and_then(|q| {
        let mut bounds: Vec<f64> = base
            .buckets
            .keys()
            .chain(can.buckets.keys())
            .map(|b| f64::from_bits(*b))
            .filter(|b| b.is_finite())
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.into_iter().find(|b| *b >= q)
    });
    let slower = |tally: &Tally| -> Option<(u64, u64)> {
        let total = *tally.buckets.get(&f64::INFINITY.to_bits())?;
        let within = tally.buckets.get(&bound?.to_bits()).copied().unwrap_or(0.0);
        Some((
            (total - within).max(0.0).round() as u64,
            total.round() as u64,
        ))
    };
    let (baseline_slower, canary_slower) = (slower(base), slower(can));
    let comparison = match (baseline_slower, canary_slower) {
        (Some((b, bn)), Some((c, cn))) => significance::compare(c, cn, b, bn),
        _ => None,
    };
    let increase = match (can_q, base_q) {
        (Some(c), Some(b)) => Some(c - b),
        _ => None,
    };
    let verdict = match (enough, increase, canary_slower, comparison) {
        (false, _, _, _) | (_, None, _, _) => Verdict::Inconclusive,
        (true, Some(up), Some((c, cn)), Some(cmp)) if cn > 0 => {
            let slower = c as f64 / cn as f64 > above && cmp.p_value < alpha;
            if up > t.max_p99_increase_ms && slower {
                Verdict::Fail
            } else {
                Verdict::Pass
            }
        }
        // The baseline's quantile is past the last finite bucket: nothing to count above.
        (true, Some(_), _, _) => Verdict::Pass,
    };
    QuantileCheck {
        increase_ms: increase,
        slower_than_ms: bound,
        baseline_slower,
        canary_slower,
        comparison,
        alpha,
        verdict,
    }
}

pub(crate) fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0))
}

pub(crate) fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ms"))
}

pub(crate) fn sci(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v != 0.0 && v.abs() < 1e-3 => format!("{v:.1e}"),
        Some(v) => format!("{v:.4}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One callee sidecar's exposition: (caller, version, class, count) and every call in
    /// the bucket `le` (ms).
    fn text(calls: &[(&str, &str, &str, u64, &str)]) -> String {
        let mut out = String::new();
        for (source, version, class, n, le) in calls {
            let labels = format!(
                r#"source="{source}",destination="service-a",destination_version="{version}",direction="inbound",response_code_class="{class}",connection_security_policy="mutual_tls""#
            );
            out += &format!("meshtally_requests_total{{{labels}}} {n}\n");
            for bound in ["1", "5", "10", "25", "50", "100", "250", "500", "+Inf"] {
                let within =
                    bound == "+Inf" || bound.parse::<f64>().unwrap() >= le.parse::<f64>().unwrap();
                let c = if within { *n } else { 0 };
                out += &format!(
                    "meshtally_request_duration_milliseconds_bucket{{{labels},le=\"{bound}\"}} {c}\n"
                );
            }
        }
        out
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            confidence: 0.99,
            max_error_increase: 0.01,
            max_p99_increase_ms: 50.0,
            min_requests: 200,
            min_caller_requests: 50,
        }
    }

    fn calls(after: &[(&str, &str, &str, u64, &str)]) -> Calls {
        let t = text(after);
        Calls::between(
            &Snapshot::default(),
            &Snapshot::from_expositions([("a", t.as_str())]),
            "service-a",
        )
    }

    #[test]
    fn a_healthy_canary_passes_with_its_evidence() {
        let c = calls(&[
            ("service-b", "v1", "2xx", 400, "5"),
            ("service-b", "v2", "2xx", 400, "5"),
            ("service-b", "v1", "5xx", 2, "5"),
        ]);
        let e = judge(&c, "v1", "v2", &thresholds());
        assert_eq!(e.verdict, Verdict::Pass, "{e:?}");
        assert_eq!(e.baseline.requests, 402);
        assert_eq!(e.canary.errors, 0);
        assert_eq!(e.canary.p99_bucket_ms, Some((1.0, 5.0)));
        assert_eq!(e.errors.verdict, Verdict::Pass);
        assert_eq!(e.latency.verdict, Verdict::Pass);
        assert!(e.failing_callers.is_empty());
        // 1 caller judged: the level 1 % is split among 4 comparisons (errors, p99, p50, it).
        assert!((e.errors.alpha - 0.01 / 4.0).abs() < 1e-12);
    }

    #[test]
    fn too_few_calls_is_inconclusive_never_a_fail() {
        let c = calls(&[
            ("service-b", "v1", "2xx", 400, "5"),
            ("service-b", "v2", "5xx", 20, "5"),
        ]);
        let e = judge(&c, "v1", "v2", &thresholds());
        assert_eq!(e.verdict, Verdict::Inconclusive, "{e:?}");
        assert_eq!(e.reasons, ["20 of 200 calls to v2 needed"]);
        assert_eq!(
            judge(&Calls::default(), "v1", "v2", &thresholds()).verdict,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn five_percent_errors_fail_with_the_test_named() {
        let c = calls(&[
            ("service-b", "v1", "2xx", 600, "5"),
            ("service-b", "v2", "2xx", 190, "5"),
            ("service-b", "v2", "5xx", 10, "5"),
        ]);
        let e = judge(&c, "v1", "v2", &thresholds());
        assert_eq!(e.verdict, Verdict::Fail);
        let cmp = e.errors.comparison.unwrap();
        // 10 of 200 against 0 of 600: expected errors on the canary's row 2.5 < 5, so Fisher.
        assert_eq!(cmp.test, significance::Test::FisherExact);
        assert!(cmp.p_value < 1e-4, "{cmp:?}");
        assert!(
            e.reasons[0].contains("v2 errors 5.00% against 0.00% on v1"),
            "{:?}",
            e.reasons
        );
    }

    #[test]
    fn one_failing_caller_is_named() {
        let c = calls(&[
            ("service-b", "v1", "2xx", 300, "5"),
            ("service-b", "v2", "5xx", 100, "5"),
            ("service-c", "v1", "2xx", 300, "5"),
            ("service-c", "v2", "2xx", 100, "5"),
        ]);
        let e = judge(&c, "v1", "v2", &thresholds());
        assert_eq!(e.verdict, Verdict::Fail);
        assert_eq!(e.failing_callers, ["service-b"]);
        let c_check = e.callers.iter().find(|c| c.caller == "service-c").unwrap();
        assert_eq!(c_check.errors.verdict, Verdict::Pass);
        assert!(e
            .reasons
            .iter()
            .any(|r| r.starts_with("calls from service-b fail on v2")));
    }

    #[test]
    fn a_slower_canary_fails_on_p99_with_its_bucket() {
        let c = calls(&[
            ("service-b", "v1", "2xx", 400, "5"),
            ("service-b", "v2", "2xx", 400, "250"),
        ]);
        let e = judge(&c, "v1", "v2", &thresholds());
        assert_eq!(e.verdict, Verdict::Fail);
        assert_eq!(e.latency.verdict, Verdict::Fail);
        assert_eq!(e.canary.p99_bucket_ms, Some((100.0, 250.0)));
        let p99 = &e.latency.p99;
        assert!(p99.increase_ms.unwrap() > 50.0);
        // p99 of v1 is 4.95 ms: calls are counted above the first bound ≥ 4.95 ms.
        assert_eq!(p99.slower_than_ms, Some(5.0));
        assert_eq!(p99.canary_slower, Some((400, 400)));
        assert_eq!(p99.baseline_slower, Some((0, 400)));
        assert_eq!(e.latency.p50.verdict, Verdict::Fail);
        assert!(
            e.reasons[0].contains("400 of 400 (100.00%) of its calls slower than 5.0 ms"),
            "{:?}",
            e.reasons
        );
    }

    #[test]
    fn a_few_slow_calls_in_a_wide_bucket_are_no_latency_fail() {
        // v1's p99 falls in (5, 100] (52.5 ms interpolated); 6 of v2's 300 calls landed in
        // (100, 250], which puts its interpolated p99 at 175 ms: up more than 50 ms, yet 6 of
        // 300 slower than the bound (100 ms, the first ≥ v1's p99) against 0 of 300 is not
        // significant (Fisher's p = 0.015 > α = 0.0025).
        let c = calls(&[
            ("service-b", "v1", "2xx", 294, "5"),
            ("service-b", "v1", "2xx", 6, "100"),
            ("service-b", "v2", "2xx", 294, "5"),
            ("service-b", "v2", "2xx", 6, "250"),
        ]);
        let e = judge(&c, "v1", "v2", &thresholds());
        let p99 = &e.latency.p99;
        assert!(p99.increase_ms.unwrap() > 50.0, "{:?}", e.latency);
        assert_eq!(p99.slower_than_ms, Some(100.0));
        assert_eq!(p99.canary_slower, Some((6, 300)));
        assert_eq!(p99.baseline_slower, Some((0, 300)));
        assert_eq!(e.latency.verdict, Verdict::Pass, "{:?}", e.latency);
        assert_eq!(e.verdict, Verdict::Pass);
    }
}
