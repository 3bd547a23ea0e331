//! What a canary reports: each step (the weights published, how long it was counted, the
//! evidence and the verdict), how it ended, and the same as text for a terminal (tables aligned,
//! one evidence block per step) or as JSON for CI; and the live progress line on a terminal.

use serde::Serialize;

use super::Plan;
use crate::observe::judge::{self, Evidence, Thresholds, Verdict};
use crate::table::Table;

pub(super) fn split(weights: &[(String, u32)]) -> String {
    weights
        .iter()
        .map(|(v, w)| format!("{v}={w}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How a canary ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Promoted,
    RolledBack,
    Inconclusive,
    /// What `--abort` reports: it ended the canary in progress and rolled back.
    Aborted,
    /// The mesh stopped under it.
    Stopped,
}

impl Outcome {
    pub(super) fn word(self) -> &'static str {
        match self {
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled back",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Aborted => "aborted",
            Outcome::Stopped => "stopped",
        }
    }
}

/// One step: the weights published, how long it was counted and what was found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepReport {
    pub percent: u32,
    pub weights: String,
    /// What the publication said: the proxies that confirmed it and how fast.
    pub published: String,
    /// False for the promotion to 100 %, which has no baseline left to judge against.
    pub judged: bool,
    /// Reads of the sidecars after the first one.
    pub reads: u32,
    pub seconds: f64,
    pub verdict: Option<Verdict>,
    pub evidence: Option<Evidence>,
}

impl StepReport {
    pub(super) fn text(&self, i: usize, of: usize, canary: &str) -> String {
        format!(
            "step {}/{of}: {canary} at {} % ({})\n  {}\n",
            i + 1,
            self.percent,
            self.weights,
            self.published
        ) + &if self.judged {
            format!(
                "  counted {:.1} s of calls made after the confirmation and a first interval of warm-up ({} reads)\n",
                self.seconds, self.reads
            )
        } else {
            "  not judged: no baseline left to compare with at 100 %\n".to_owned()
        }
    }
}

/// `--pre`'s smoke test: the command, its exit code and what it printed (the first 2000
/// characters).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PreReport {
    pub command: String,
    pub exit: Option<i32>,
    pub output: String,
}

/// The whole canary, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub service: String,
    pub baseline: String,
    pub canary: String,
    pub target: String,
    pub thresholds: Thresholds,
    /// How exact the latency quantiles are.
    pub latency_resolution: String,
    pub started_weights: Vec<(String, u32)>,
    /// Calls into the service seen before the first step (none: nothing moves).
    pub calls_before_start: u64,
    pub steps: Vec<StepReport>,
    pub outcome: Outcome,
    pub final_weights: String,
    /// The rollback's publication, confirmed.
    pub rollback: Option<String>,
    pub failing_callers: Vec<String>,
    /// After a promotion: how to retire the baseline.
    pub retire: Option<String>,
    /// Calls `--load` sent.
    pub load_sent: Option<u64>,
    /// `--pre`'s smoke test.
    pub pre: Option<PreReport>,
    pub message: String,
}

impl Report {
    pub(super) fn new(plan: &Plan) -> Report {
        let started = plan.mesh.versions(&plan.service).unwrap_or_default();
        Report {
            service: plan.service.clone(),
            baseline: plan.baseline.clone(),
            canary: plan.canary.clone(),
            target: plan.mesh.name(),
            thresholds: plan.thresholds.clone(),
            latency_resolution: RESOLUTION.to_owned(),
            started_weights: started,
            calls_before_start: 0,
            steps: Vec::new(),
            outcome: Outcome::Inconclusive,
            final_weights: String::new(),
            rollback: None,
            failing_callers: Vec::new(),
            retire: None,
            load_sent: None,
            pre: None,
            message: String::new(),
        }
    }

    /// The lines after the steps: the outcome and what it left.
    pub(super) fn ending(&self) -> String {
        let mut out = format!("{}: {}\n", self.outcome.word(), self.message);
        if let Some(line) = &self.rollback {
            out += &format!("rollback to {}: {line}\n", self.final_weights);
        }
        if !self.failing_callers.is_empty() {
            out += &format!(
                "failing for: {} (calls from other callers to {} passed or were too few to judge)\n",
                self.failing_callers.join(", "),
                self.canary
            );
        }
        if let Some(retire) = &self.retire {
            out += &format!("to retire {}: {retire}\n", self.baseline);
        }
        if let Some(n) = self.load_sent {
            out += &format!("--load sent {n} calls through the gateway\n");
        }
        out
    }
}

/// What the histogram lets a quantile be: Envoy's default bucket bounds, interpolated inside.
const RESOLUTION: &str = "p50/p99 from the callee sidecars' meshtally_request_duration_milliseconds histogram (Envoy's default buckets: 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 ms and on), interpolated linearly inside the bucket as Prometheus's histogram_quantile does: exact only to the bucket shown";

/// A step's evidence as text: each version's counts, the tests, each caller.
pub(super) fn evidence_text(e: &Evidence, t: &Thresholds) -> String {
    let mut versions = Table::new(
        [
            "VERSION",
            "CALLS",
            "ERRORS",
            "ERROR RATE",
            "P50",
            "P99",
            "P99 BUCKET",
        ]
        .map(String::from)
        .to_vec(),
    );
    for v in [&e.baseline, &e.canary] {
        versions.row(vec![
            v.version.clone(),
            v.requests.to_string(),
            v.errors.to_string(),
            judge::percent(v.error_rate),
            judge::ms(v.p50_ms),
            judge::ms(v.p99_ms),
            v.p99_bucket_ms
                .map_or("-".into(), |(lo, hi)| format!("{lo}-{hi} ms")),
        ]);
    }
    let indent = |text: String| -> String { text.lines().map(|l| format!("  {l}\n")).collect() };
    let mut out = indent(versions.render());
    let errors = &e.errors;
    out += &format!(
        "  errors: {}, one-sided, p = {} against α = {} ({:.1}% confidence over {} comparisons, Bonferroni); rise {} (threshold {}): {}\n",
        errors.comparison.map_or("no test", |c| c.test.name()),
        judge::sci(errors.comparison.map(|c| c.p_value)),
        judge::sci(Some(errors.alpha)),
        t.confidence * 100.0,
        ((1.0 - t.confidence) / errors.alpha).round(),
        judge::percent(errors.increase),
        judge::percent(Some(t.max_error_increase)),
        errors.verdict.word()
    );
    let share = |s: Option<(u64, u64)>| {
        s.map_or("-".to_owned(), |(slow, n)| {
            format!(
                "{slow} of {n} ({})",
                judge::percent(Some(slow as f64 / n.max(1) as f64))
            )
        })
    };
    for (name, q) in [("p99", &e.latency.p99), ("p50", &e.latency.p50)] {
        out += &format!(
            "  latency {name}: {} (threshold +{:.0} ms); calls slower than {} (the first bucket bound ≥ {}'s {name}): {} {} against {} {}, {} p = {}: {}\n",
            signed_ms(q.increase_ms),
            t.max_p99_increase_ms,
            judge::ms(q.slower_than_ms),
            e.baseline.version,
            e.canary.version,
            share(q.canary_slower),
            e.baseline.version,
            share(q.baseline_slower),
            q.comparison.map_or("no test", |c| c.test.name()),
            judge::sci(q.comparison.map(|c| c.p_value)),
            q.verdict.word()
        );
    }
    if !e.callers.is_empty() {
        let mut callers = Table::new(
            [
                "CALLER",
                "BASE CALLS",
                "BASE ERRORS",
                "CANARY CALLS",
                "CANARY ERRORS",
                "TEST",
                "P",
                "VERDICT",
            ]
            .map(String::from)
            .to_vec(),
        );
        for c in &e.callers {
            callers.row(vec![
                c.caller.clone(),
                c.baseline.requests.to_string(),
                c.baseline.errors.to_string(),
                c.canary.requests.to_string(),
                c.canary.errors.to_string(),
                c.errors.comparison.map_or("-".into(), |c| match c.test {
                    crate::observe::significance::Test::FisherExact => "fisher".to_owned(),
                    crate::observe::significance::Test::TwoProportionZ => "z".to_owned(),
                }),
                judge::sci(c.errors.comparison.map(|c| c.p_value)),
                match c.errors.verdict {
                    Verdict::Inconclusive => {
                        format!("not judged (< {} calls)", t.min_caller_requests)
                    }
                    v => v.word().to_owned(),
                },
            ]);
        }
        out += &indent(callers.render());
    }
    out += &format!("  verdict: {}", e.verdict.word());
    if !e.reasons.is_empty() {
        out += &format!(" ({})", e.reasons.join("; "));
    }
    out.push('\n');
    out
}

fn signed_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.1} ms"))
}

/// The live line on a terminal (stderr), redrawn in place; silent otherwise.
pub(super) struct Progress {
    on: bool,
}

impl Progress {
    pub(super) fn new(on: bool) -> Progress {
        Progress { on }
    }
    pub(super) fn say(&self, text: &str) {
        if self.on {
            eprint!("\r\x1b[2K{text}");
        }
    }
    pub(super) fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}
