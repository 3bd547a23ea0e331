//! Figures derived from the raw samples: per-variant spreads (median, min, max over rounds) and
//! comparisons with the no-filter and empty-filter baselines. Comparisons are paired by round —
//! one round runs every variant once, seconds apart — so a slow stretch of the shared machine
//! that hits both sides of a pair cancels out; the headline is the median of the per-round
//! values and the range their min–max, which shows how far noise alone moves them.

use crate::measure::{Measured, Sample};
use crate::summary::Spread;
use crate::variants::Variant;

/// One figure of one variant: the spread over rounds and the per-round values behind it.
#[derive(Debug, Clone)]
pub struct Figure {
    pub per_round: Vec<f64>,
    pub spread: Option<Spread>,
}

impl Figure {
    fn of(samples: &[Sample], pick: impl Fn(&Sample) -> f64) -> Figure {
        let per_round: Vec<f64> = samples.iter().map(pick).collect();
        Figure {
            spread: Spread::of(&per_round),
            per_round,
        }
    }

    pub fn median(&self) -> Option<f64> {
        self.spread.map(|s| s.median)
    }
}

/// What kind of figure, to pick it from a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Throughput,
    CpuPerRequest,
    FixedCpuPerRequest,
    P50,
    P99,
    RssMib,
    UpstreamCpu,
    AchievedRate,
}

impl Metric {
    fn pick(self) -> impl Fn(&Sample) -> f64 {
        move |s: &Sample| match self {
            Metric::Throughput => s.saturate.throughput(),
            Metric::CpuPerRequest => s.cpu_us_per_request,
            Metric::FixedCpuPerRequest => s.fixed_cpu_us_per_request,
            Metric::P50 => s.fixed.p50_ms,
            Metric::P99 => s.fixed.p99_ms,
            Metric::RssMib => s.rss_kib as f64 / 1024.0,
            Metric::UpstreamCpu => s.upstream_cpu_us_per_request,
            Metric::AchievedRate => s.fixed.throughput(),
        }
    }
}

pub fn figure(m: &Measured, metric: Metric) -> Figure {
    Figure::of(&m.samples, metric.pick())
}

pub fn find<'a>(all: &'a [Measured], id: &str) -> Option<&'a Measured> {
    all.iter().find(|m| m.variant.id == id)
}

/// A derived number with the range of its per-round values.
#[derive(Debug, Clone, Copy)]
pub struct Derived {
    pub value: f64,
    pub range: Option<(f64, f64)>,
}

impl Derived {
    pub fn show(&self, decimals: usize) -> String {
        match self.range {
            Some((lo, hi)) if (hi - lo).abs() > f64::EPSILON => format!(
                "{:.*} ({:.*}–{:.*})",
                decimals, self.value, decimals, lo, decimals, hi
            ),
            _ => format!("{:.*}", decimals, self.value),
        }
    }
}

/// Rounds where both variants have a finite value, paired by round index.
fn paired(a: &Figure, b: &Figure) -> Vec<(f64, f64)> {
    a.per_round
        .iter()
        .zip(&b.per_round)
        .map(|(x, y)| (*x, *y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

fn median_with_range(per_round: &[f64]) -> Option<Derived> {
    let spread = Spread::of(per_round)?;
    Some(Derived {
        value: spread.median,
        range: (spread.n > 1).then_some((spread.min, spread.max)),
    })
}

/// `variant ÷ baseline` for a metric: the median of the per-round ratios.
pub fn ratio(all: &[Measured], v: &Variant, baseline: &str, metric: Metric) -> Option<Derived> {
    let a = figure(find(all, &v.id)?, metric);
    let b = figure(find(all, baseline)?, metric);
    let per_round: Vec<f64> = paired(&a, &b).iter().map(|(x, y)| x / y).collect();
    median_with_range(&per_round)
}

/// `variant − baseline` for a metric (e.g. CPU µs per request added over no filter): the
/// median of the per-round differences.
pub fn added(all: &[Measured], v: &Variant, baseline: &str, metric: Metric) -> Option<Derived> {
    let a = figure(find(all, &v.id)?, metric);
    let b = figure(find(all, baseline)?, metric);
    let per_round: Vec<f64> = paired(&a, &b).iter().map(|(x, y)| x - y).collect();
    median_with_range(&per_round)
}

/// The CPU target: `(variant − none) / (empty − none)`, the CPU this variant adds over
/// no filter as a multiple of what the empty Wasm filter adds: the median of the variant's
/// per-round differences over the median of the empty filter's (a median of per-round quotients
/// would be thrown by any round whose empty − none is near zero). The range is that of the
/// per-round quotients, left out when some round could not tell the empty filter from no filter
/// (empty − none ≤ 0), where a quotient means nothing.
pub fn added_cpu_ratio(all: &[Measured], v: &Variant) -> Option<Derived> {
    let cpu = |id: &str| find(all, id).map(|m| figure(m, Metric::CpuPerRequest));
    let (me, none, empty) = (
        cpu(&v.id)?,
        cpu(v.none_baseline())?,
        cpu(v.empty_baseline())?,
    );
    let mut mine = Vec::new();
    let mut floor = Vec::new();
    for ((m, n), e) in me
        .per_round
        .iter()
        .zip(&none.per_round)
        .zip(&empty.per_round)
    {
        if m.is_finite() && n.is_finite() && e.is_finite() {
            mine.push(m - n);
            floor.push(e - n);
        }
    }
    let value = Spread::of(&mine)?.median / Spread::of(&floor)?.median;
    let quotients: Vec<f64> = mine.iter().zip(&floor).map(|(m, f)| m / f).collect();
    let range = if floor.len() > 1 && floor.iter().all(|f| *f > 0.0) {
        Spread::of(&quotients).map(|s| (s.min, s.max))
    } else {
        None
    };
    value.is_finite().then_some(Derived { value, range })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Outcome;
    use crate::variants::by_id;

    fn measured(id: &str, cpu: &[f64]) -> Measured {
        Measured {
            variant: by_id(id).unwrap(),
            rss_after_warmup_kib: 0,
            samples: cpu
                .iter()
                .map(|&c| Sample {
                    saturate: Outcome {
                        completed: 1000,
                        ok: 1000,
                        seconds: 1.0,
                        ..Outcome::default()
                    },
                    fixed: Outcome::default(),
                    cpu_us_per_request: c,
                    fixed_cpu_us_per_request: c,
                    upstream_cpu_us_per_request: 0.0,
                    rss_kib: 0,
                    proxied: 0,
                    counted: None,
                })
                .collect(),
        }
    }

    #[test]
    fn unresolved_floor_has_no_range() {
        let all = vec![
            measured("none", &[10.0, 12.0, 10.0]),
            measured("empty", &[12.0, 11.0, 12.0]),
            measured("outbound", &[14.0, 15.0, 14.0]),
        ];
        let r = added_cpu_ratio(&all, &by_id("outbound").unwrap()).unwrap();
        assert!((r.value - 2.0).abs() < 1e-9);
        assert_eq!(r.range, None);
    }

    #[test]
    fn added_cpu_ratio_uses_medians_and_rounds() {
        let all = vec![
            measured("none", &[10.0, 10.0, 12.0]),
            measured("empty", &[12.0, 12.0, 13.0]),
            measured("outbound", &[13.0, 12.5, 15.0]),
        ];
        let r = added_cpu_ratio(&all, &by_id("outbound").unwrap()).unwrap();
        // per-round differences: outbound 3, 2.5, 3 (median 3); empty 2, 2, 1 (median 2)
        assert!((r.value - 1.5).abs() < 1e-9);
        // per-round quotients: 3 / 2, 2.5 / 2, 3 / 1
        assert_eq!(r.range, Some((1.25, 3.0)));
        let a = added(
            &all,
            &by_id("outbound").unwrap(),
            "none",
            Metric::CpuPerRequest,
        )
        .unwrap();
        assert!((a.value - 3.0).abs() < 1e-9);
        let t = ratio(
            &all,
            &by_id("outbound").unwrap(),
            "none",
            Metric::Throughput,
        )
        .unwrap();
        assert!((t.value - 1.0).abs() < 1e-9);
    }
}
