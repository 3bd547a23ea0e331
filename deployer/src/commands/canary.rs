//! `canary`: progressive delivery judged on the filter's own counts. The flags become a checked
//! [`Plan`] (steps, thresholds, the service's versions on the mesh, no canary already running);
//! [`Plan::run`] moves the weights step by step through `shift`'s one engine (confirmed in every
//! proxy locally, accepted by the API server on a cluster), counts only the calls made after
//! each confirmation, and has `observe::judge` decide; a fail rolls every call back to the
//! baseline. The [`Report`] (`report`) holds every step's evidence and prints as text or JSON;
//! `mesh` is the local mesh or the cluster behind one trait.

mod mesh;
mod report;

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::cli::CanaryArgs;
use crate::observe::judge::{self, Calls, Thresholds, Verdict};
use crate::output::print;
use mesh::CanaryMesh;
use report::{evidence_text, split, Outcome, PreReport, Progress, Report, StepReport};

/// How a command ends when its exit code says more than success or failure: `canary` exits 1
/// when it rolled back and 2 on anything else that is not a promotion. `main` prints the
/// message (when there is one) and exits with the code.
#[derive(Debug)]
pub struct Finished {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Finished {}

/// Exit codes.
const ROLLED_BACK: u8 = 1;
const NOT_DECIDED: u8 = 2;

pub fn canary(args: CanaryArgs) -> Result<()> {
    let json = args.json;
    let result = (|| {
        let plan = Plan::new(args)?;
        plan.run()
    })();
    match result {
        Ok(report) => {
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                print(&report.ending())?;
            }
            match report.outcome {
                Outcome::Promoted | Outcome::Aborted => Ok(()),
                Outcome::RolledBack => Err(Finished {
                    code: ROLLED_BACK,
                    message: format!("canary rolled back: {}", report.message),
                }
                .into()),
                Outcome::Inconclusive | Outcome::Stopped => Err(Finished {
                    code: NOT_DECIDED,
                    message: format!("canary {}: {}", report.outcome.word(), report.message),
                }
                .into()),
            }
        }
        Err(e) => {
            let chain: Vec<String> = e
                .chain()
                .map(|c| c.to_string().replace('\n', " "))
                .collect();
            Err(Finished {
                code: NOT_DECIDED,
                message: format!("error: {}", chain.join(": ")),
            }
            .into())
        }
    }
}

/// The canary's share at each step, in percent: increasing, each from 1 to 100; a last step
/// below 100 is followed by the promotion to 100.
fn parse_steps(text: &str) -> Result<Vec<u32>> {
    let mut steps: Vec<u32> = Vec::new();
    for part in text.split(',') {
        let step: u32 = match part.trim().trim_end_matches('%').parse() {
            Ok(s) if (1..=100).contains(&s) => s,
            _ => bail!("--steps {text:?}: {part:?} is not a percent from 1 to 100"),
        };
        if let Some(last) = steps.last() {
            if step <= *last {
                bail!("--steps {text:?}: the steps must increase ({step} follows {last})");
            }
        }
        steps.push(step);
    }
    if steps.last() != Some(&100) {
        steps.push(100);
    }
    Ok(steps)
}

/// A percent as typed (`1%`, `0.5`, `99%`) as a fraction; `what` names the flag at fault.
fn parse_percent(what: &str, text: &str, range: std::ops::RangeInclusive<f64>) -> Result<f64> {
    let value: f64 = match text.trim().trim_end_matches('%').trim().parse() {
        Ok(v) if range.contains(&v) => v,
        _ => bail!(
            "{what} {text:?} is not a percent from {} to {}",
            range.start(),
            range.end()
        ),
    };
    Ok(value / 100.0)
}

/// Everything checked before the first weight moves.
pub(crate) struct Plan {
    service: String,
    baseline: String,
    canary: String,
    steps: Vec<u32>,
    interval: Duration,
    max_wait: Duration,
    thresholds: Thresholds,
    load: Option<u32>,
    pre: Option<String>,
    confirm: bool,
    abort: bool,
    json: bool,
    mesh: Box<dyn CanaryMesh>,
}

impl Plan {
    fn new(args: CanaryArgs) -> Result<Plan> {
        let steps = parse_steps(&args.steps)?;
        let thresholds = Thresholds {
            confidence: parse_percent("--confidence", &args.confidence, 50.0..=99.999)?,
            max_error_increase: parse_percent(
                "--max-error-increase",
                &args.max_error_increase,
                0.0..=100.0,
            )?,
            max_p99_increase_ms: args.max_p99_increase.as_secs_f64() * 1000.0,
            min_requests: args.min_requests,
            min_caller_requests: args.min_caller_requests,
        };
        if args.min_requests == 0 {
            bail!("--min-requests 0: a step needs at least one call to the canary to be judged");
        }
        if args.confirm && !std::io::stdin().is_terminal() {
            bail!("--confirm waits for Enter on a terminal, and stdin is not one: leave it out to promote without asking");
        }
        if let Some(rps) = args.load {
            if !(1..=1000).contains(&rps) {
                bail!("--load {rps}: the load must be from 1 to 1000 calls per second");
            }
        }
        let mesh = mesh::open(args.target, args.api, args.prometheus)?;
        let versions = mesh.versions(&args.service)?;
        let known = |v: &str| versions.iter().any(|(name, _)| name == v);
        let names = || {
            versions
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (flag, version) in [("--to", &args.to), ("--from", &args.from)] {
            if let Some(v) = version {
                if !known(v) {
                    bail!(
                        "{flag} {v}: {} has no version {v} (its versions: {})",
                        args.service,
                        names()
                    );
                }
            }
        }
        // --abort alone: the versions the canary in progress recorded.
        let held = (args.abort && args.from.is_none() && args.to.is_none())
            .then(|| mesh.held(&args.service))
            .flatten();
        let baseline = match (&args.from, &held) {
            (Some(v), _) => v.clone(),
            (None, Some((baseline, _))) => baseline.clone(),
            (None, None) if args.abort && args.to.is_none() => bail!(
                "--abort: no canary of {} in progress records its baseline: name it with --from VERSION (every call goes back to it)",
                args.service
            ),
            (None, None) => {
                let others: Vec<&String> = versions
                    .iter()
                    .map(|(n, _)| n)
                    .filter(|n| Some(*n) != args.to.as_ref())
                    .collect();
                match others.as_slice() {
                    [one] => (*one).clone(),
                    [] => bail!(
                        "{} has only the version {} : a canary needs a baseline to compare with (add one to the mesh file)",
                        args.service,
                        names()
                    ),
                    _ => bail!(
                        "{} has several other versions ({}): name the baseline with --from",
                        args.service,
                        others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
            }
        };
        let canary = match args.to {
            Some(v) if v == baseline => {
                bail!("--to {v} is the baseline too: the canary must be another version")
            }
            Some(v) => v,
            None if held.is_some() => held.map(|(_, c)| c).unwrap_or_default(),
            // --abort without --to: the one other version.
            None => versions
                .iter()
                .map(|(n, _)| n.clone())
                .find(|n| *n != baseline)
                .unwrap_or_default(),
        };
        Ok(Plan {
            max_wait: args
                .max_wait
                .unwrap_or((args.interval * 10).max(Duration::from_secs(60))),
            service: args.service,
            baseline,
            canary,
            steps,
            interval: args.interval,
            thresholds,
            load: args.load,
            pre: args.pre,
            confirm: args.confirm,
            abort: args.abort,
            json: args.json,
            mesh,
        })
    }

    /// Every call back on the baseline: the rollback's weights.
    fn rollback_weights(&self) -> Vec<(String, u32)> {
        vec![(self.baseline.clone(), 100), (self.canary.clone(), 0)]
    }

    fn weights(&self, percent: u32) -> Vec<(String, u32)> {
        vec![
            (self.baseline.clone(), 100 - percent),
            (self.canary.clone(), percent),
        ]
    }

    fn run(self) -> Result<Report> {
        if self.abort {
            return self.abort_running();
        }
        let lock = self
            .mesh
            .lock(&self.service, &self.baseline, &self.canary)?;
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, stop.clone())
                .context("installing signal handlers")?;
        }
        let load = match self.load {
            Some(rps) => Some(mesh::Load::start(&*self.mesh, &self.service, rps)?),
            None => None,
        };
        let mut report = Report::new(&self);
        let result = match self.smoke_test(&mut report) {
            Ok(true) => self.steps(&mut report, &stop),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        let sent = load.map(mesh::Load::stop);
        report.load_sent = sent;
        drop(lock);
        result.map(|()| report)
    }

    /// The steps, each shifted, counted and judged, until a promotion, a rollback or a stop.
    fn steps(&self, report: &mut Report, stop: &AtomicBool) -> Result<()> {
        let progress = Progress::new(!self.json && std::io::stderr().is_terminal());
        // Traffic first: without calls into the service no step could ever be judged, so
        // nothing moves.
        let before = self.mesh.read()?;
        let begun = Instant::now();
        let window = self.interval + self.mesh.settle();
        while begun.elapsed() < window && !stop.load(Ordering::SeqCst) {
            progress.say(&format!(
                "looking for calls into {} ({:.1} s)…",
                self.service,
                begun.elapsed().as_secs_f64()
            ));
            std::thread::sleep(Duration::from_millis(100).min(self.interval));
        }
        if stop.load(Ordering::SeqCst) {
            progress.clear();
            report.outcome = Outcome::Inconclusive;
            report.message = format!(
                "stopped by a signal before the first step: nothing moved ({} stays at {})",
                self.service,
                split(&report.started_weights)
            );
            return Ok(());
        }
        let seen = Calls::between(&before, &self.mesh.read()?, &self.service).total();
        report.calls_before_start = seen;
        if seen == 0 {
            progress.clear();
            report.outcome = Outcome::Inconclusive;
            report.message = format!(
                "no calls into {} in {:.1} s: nothing moved ({} stays at {}); send traffic, or add --load RPS",
                self.service,
                window.as_secs_f64(),
                self.service,
                split(&report.started_weights)
            );
            return Ok(());
        }
        for (i, &percent) in self.steps.iter().enumerate() {
            let weights = self.weights(percent);
            if percent == 100 && self.confirm && !self.confirmed(stop) {
                return self.roll_back(
                    report,
                    Outcome::RolledBack,
                    "not confirmed before 100 % (a signal came first)".into(),
                );
            }
            let published = match self.mesh.shift(&self.service, &weights) {
                Ok(line) => line,
                Err(e) => return self.stopped(report, e, &progress),
            };
            // The last step every proxy was confirmed to run, should the mesh stop.
            report.final_weights = split(&weights);
            let mut step = StepReport {
                percent,
                weights: split(&weights),
                published,
                judged: percent < 100,
                reads: 0,
                seconds: 0.0,
                verdict: None,
                evidence: None,
            };
            if percent == 100 {
                if !self.json {
                    print(&step.text(i, self.steps.len(), &self.canary))?;
                }
                report.steps.push(step);
                report.outcome = Outcome::Promoted;
                report.final_weights = split(&weights);
                report.message = format!(
                    "{} promoted: {} takes every call of {}",
                    self.canary, self.canary, self.service
                );
                report.retire = Some(self.mesh.retire_hint(&self.service, &self.baseline));
                return Ok(());
            }
            // Only calls made after every proxy runs the new weights count: one stats flush
            // after the confirmation. And not the first interval's: a version that just began
            // to take calls opens its connections (mTLS handshakes from every caller) then, and
            // would be judged on its start, not on how it serves.
            std::thread::sleep(self.mesh.settle() + self.interval);
            let start = match self.mesh.read() {
                Ok(s) => s,
                Err(e) => return self.stopped(report, e, &progress),
            };
            let begun = Instant::now();
            let evidence = loop {
                std::thread::sleep(self.interval);
                if stop.load(Ordering::SeqCst) {
                    progress.clear();
                    report.steps.push(step);
                    return self.roll_back(
                        report,
                        Outcome::RolledBack,
                        "stopped by a signal (--abort, Ctrl-C or SIGTERM)".into(),
                    );
                }
                let now = match self.mesh.read() {
                    Ok(s) => s,
                    Err(e) => return self.stopped(report, e, &progress),
                };
                step.reads += 1;
                let calls = Calls::between(&start, &now, &self.service);
                let evidence = judge::judge(&calls, &self.baseline, &self.canary, &self.thresholds);
                if evidence.verdict != Verdict::Inconclusive {
                    break evidence;
                }
                progress.say(&format!(
                    "step {percent} %: {} of {} calls to {} after {:.1} s…",
                    evidence.canary.requests,
                    self.thresholds.min_requests,
                    self.canary,
                    begun.elapsed().as_secs_f64()
                ));
                if begun.elapsed() >= self.max_wait {
                    break evidence;
                }
            };
            progress.clear();
            step.seconds = begun.elapsed().as_secs_f64();
            step.verdict = Some(evidence.verdict);
            if !self.json {
                print(&step.text(i, self.steps.len(), &self.canary))?;
                print(&evidence_text(&evidence, &self.thresholds))?;
            }
            let verdict = evidence.verdict;
            let reasons = evidence.reasons.join("; ");
            let failing = evidence.failing_callers.clone();
            step.evidence = Some(evidence);
            report.steps.push(step);
            match verdict {
                Verdict::Pass => continue,
                Verdict::Fail => {
                    report.failing_callers = failing;
                    return self.roll_back(report, Outcome::RolledBack, reasons);
                }
                Verdict::Inconclusive => {
                    report.outcome = Outcome::Inconclusive;
                    report.final_weights = split(&weights);
                    report.message = format!(
                        "step {percent} % had too few calls after {:.1} s ({reasons}): left at the last confirmed step {} (never rolled back for lack of data); `deployer canary {} --abort` returns every call to {}",
                        self.max_wait.as_secs_f64(),
                        split(&weights),
                        self.service,
                        self.baseline
                    );
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// `--pre`: the smoke test, before any weight moves; false (and the report says why) when
    /// it failed.
    fn smoke_test(&self, report: &mut Report) -> Result<bool> {
        let Some(cmd) = &self.pre else {
            return Ok(true);
        };
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", cmd])
            .env("CANARY_SERVICE", &self.service)
            .env("CANARY_BASELINE", &self.baseline)
            .env("CANARY_VERSION", &self.canary)
            .stdin(std::process::Stdio::null());
        if let Some(url) = self.mesh.local_gateway() {
            command.env("CANARY_GATEWAY", url);
        }
        let out = command
            .output()
            .with_context(|| format!("running --pre {cmd:?}"))?;
        let said = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        let last = said.trim().lines().last().unwrap_or_default().to_owned();
        report.pre = Some(PreReport {
            command: cmd.clone(),
            exit: out.status.code(),
            output: said.chars().take(2000).collect(),
        });
        if out.status.success() {
            return Ok(true);
        }
        report.outcome = Outcome::Inconclusive;
        report.message = format!(
            "the smoke test `{cmd}` failed ({}{}): nothing moved ({} stays at {})",
            out.status
                .code()
                .map_or("killed by a signal".to_owned(), |c| format!("exit {c}")),
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            },
            self.service,
            split(&report.started_weights)
        );
        Ok(false)
    }

    /// `--confirm`: waits for Enter before the promotion; false when a signal came first.
    fn confirmed(&self, stop: &AtomicBool) -> bool {
        eprint!(
            "every step passed: press Enter to send every call of {} to {} (Ctrl-C rolls back) ",
            self.service, self.canary
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = tx.send(std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0));
        });
        loop {
            if stop.load(Ordering::SeqCst) {
                eprintln!();
                return false;
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(pressed) => return pressed,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Every call back to the baseline, confirmed; `why` is what the report says.
    fn roll_back(&self, report: &mut Report, outcome: Outcome, why: String) -> Result<()> {
        let weights = self.rollback_weights();
        let line = self.mesh.shift(&self.service, &weights)?;
        report.outcome = outcome;
        report.final_weights = split(&weights);
        report.rollback = Some(line);
        report.message = why;
        Ok(())
    }

    /// The mesh could not be read or shifted mid-canary: roll back if it still can be,
    /// else say where it was left.
    fn stopped(&self, report: &mut Report, e: anyhow::Error, progress: &Progress) -> Result<()> {
        progress.clear();
        let last = if report.final_weights.is_empty() {
            split(&report.started_weights)
        } else {
            report.final_weights.clone()
        };
        let why = format!("{e:#}").replace('\n', " ");
        match self.mesh.shift(&self.service, &self.rollback_weights()) {
            Ok(line) => {
                report.outcome = Outcome::RolledBack;
                report.final_weights = split(&self.rollback_weights());
                report.rollback = Some(line);
                report.message = format!("the mesh failed mid-canary ({why}): rolled back");
            }
            Err(_) => {
                // The rollback may have been saved without any proxy left to confirm it: what
                // the saved plan holds is what a restart runs.
                let saved = self
                    .mesh
                    .versions(&self.service)
                    .map(|v| split(&v))
                    .unwrap_or_else(|_| last.clone());
                let rollback = split(&self.rollback_weights());
                report.outcome = Outcome::Stopped;
                report.final_weights = saved.clone();
                report.message = if saved == rollback && saved != last {
                    format!(
                        "the mesh stopped mid-canary ({why}): its last confirmed step was {last}; the rollback to {rollback} was saved but not confirmed (no proxy answered); started again, the mesh runs {saved}"
                    )
                } else {
                    format!(
                        "the mesh stopped mid-canary ({why}): left at the last confirmed step {last}, not rolled back (no proxy to confirm it in); started again, the mesh runs {saved}"
                    )
                };
            }
        }
        Ok(())
    }

    /// `--abort`: stops the canary running on the service (it rolls back as it ends), and
    /// returns every call to the baseline whatever it left.
    fn abort_running(&self) -> Result<Report> {
        let stopped = self.mesh.stop_running(&self.service)?;
        let mut report = Report::new(self);
        let line = self.mesh.shift(&self.service, &self.rollback_weights())?;
        report.outcome = Outcome::Aborted;
        report.final_weights = split(&self.rollback_weights());
        report.rollback = Some(line);
        report.message = match stopped {
            Some(pid) => format!("the canary of {} (pid {pid}) was stopped", self.service),
            None => format!("no canary of {} was running", self.service),
        };
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_increase_up_to_100_and_bad_ones_name_the_fault() {
        assert_eq!(parse_steps("5,25,50,100").unwrap(), [5, 25, 50, 100]);
        assert_eq!(parse_steps("10%,50").unwrap(), [10, 50, 100]);
        for (bad, says) in [
            ("5,25,20", "must increase (20 follows 25)"),
            ("5,5", "must increase"),
            ("50,150", "\"150\" is not a percent from 1 to 100"),
            ("0,50", "\"0\" is not a percent"),
            ("five", "is not a percent"),
        ] {
            let err = parse_steps(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.starts_with("--steps"), "{err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn percents_parse_with_or_without_the_sign() {
        assert_eq!(parse_percent("--x", "1%", 0.0..=100.0).unwrap(), 0.01);
        assert_eq!(parse_percent("--x", "99", 50.0..=99.999).unwrap(), 0.99);
        let err = parse_percent("--confidence", "120%", 50.0..=99.999)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--confidence \"120%\""), "{err}");
    }
}
