//! The report: tables built from the measurements (nothing typed by hand), printed aligned on
//! stdout and written as BENCHMARKS.md with the method and how to reproduce.

use crate::callgrind::{self, Counted};
use crate::figures::{self, added, added_cpu_ratio, figure, ratio, Metric};
use crate::goals;
use crate::hooks::Extra;
use crate::machine::Machine;
use crate::measure::{Measured, Settings};
use crate::repeat::{self, OwnWork};
use crate::summary::show;
use crate::table::Table;
use crate::wasm_size::ModuleSize;

pub struct ModuleRow {
    pub name: &'static str,
    pub size: ModuleSize,
}

pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub quick: bool,
    pub measured: Vec<Measured>,
    /// Instructions per request under callgrind (empty when not run).
    pub counted: Vec<Counted>,
    pub callgrind: callgrind::Settings,
    /// The per-request host calls, from the fake host.
    pub ledger: Vec<meshtally_core::ledger::Scenario>,
    /// Module sizes before wasm-opt, when run.sh passed them.
    pub plain_sizes: Option<goals::Sizes>,
    /// The previous BENCHMARKS.md's meshtally − empty figures and date.
    pub previous: Option<(String, OwnWork)>,
    pub modules: Vec<ModuleRow>,
    pub extras: Vec<Extra>,
}

fn cell(d: Option<figures::Derived>, decimals: usize) -> String {
    d.map_or_else(|| "–".to_owned(), |d| d.show(decimals))
}

impl Report {
    pub fn results_table(&self) -> Table {
        let mut t = Table::new(&[
            "variant",
            "throughput req/s",
            "CPU µs/req",
            "added CPU µs/req",
            "CPU µs/req @rate",
            "p50 ms",
            "p99 ms",
            "RSS MiB",
        ]);
        for m in &self.measured {
            let v = &m.variant;
            t.row(vec![
                v.label.to_owned(),
                show(figure(m, Metric::Throughput).spread, 0),
                show(figure(m, Metric::CpuPerRequest).spread, 1),
                if v.id == v.none_baseline() {
                    "–".to_owned()
                } else {
                    cell(
                        added(&self.measured, v, v.none_baseline(), Metric::CpuPerRequest),
                        1,
                    )
                },
                show(figure(m, Metric::FixedCpuPerRequest).spread, 1),
                show(figure(m, Metric::P50).spread, 3),
                show(figure(m, Metric::P99).spread, 3),
                show(figure(m, Metric::RssMib).spread, 1),
            ]);
        }
        t
    }

    pub fn ratios_table(&self) -> Table {
        let mut t = Table::new(&[
            "variant",
            "throughput ÷ none",
            "throughput ÷ empty",
            "CPU/req ÷ none",
            "added CPU ÷ empty's",
            "p99 ÷ none",
            "p99 ÷ empty",
            "RSS − none MiB",
        ]);
        for m in &self.measured {
            let v = &m.variant;
            let (none, empty) = (v.none_baseline(), v.empty_baseline());
            t.row(vec![
                v.label.to_owned(),
                cell(ratio(&self.measured, v, none, Metric::Throughput), 2),
                cell(ratio(&self.measured, v, empty, Metric::Throughput), 2),
                cell(ratio(&self.measured, v, none, Metric::CpuPerRequest), 2),
                if v.id == none {
                    "–".to_owned()
                } else {
                    cell(added_cpu_ratio(&self.measured, v), 2)
                },
                cell(ratio(&self.measured, v, none, Metric::P99), 2),
                cell(ratio(&self.measured, v, empty, Metric::P99), 2),
                cell(added(&self.measured, v, none, Metric::RssMib), 1),
            ]);
        }
        t
    }

    /// Evidence that every run measured what it claims: all requests answered 200 by the proxy
    /// path, meshtally counted each one, the fixed rate was met, the upstream did constant work.
    pub fn checks_table(&self) -> Table {
        let mut t = Table::new(&[
            "variant",
            "requests",
            "non-200",
            "errors",
            "proxied = requests",
            "meshtally counted = requests",
            "fixed rate achieved req/s",
            "upstream CPU µs/req",
            "RSS after warm-up MiB",
        ]);
        for m in &self.measured {
            let requests: u64 = m.samples.iter().map(|s| s.completed()).sum();
            let ok: u64 = m.samples.iter().map(|s| s.saturate.ok + s.fixed.ok).sum();
            let errors: u64 = m
                .samples
                .iter()
                .map(|s| s.saturate.errors + s.fixed.errors)
                .sum();
            let proxied: u64 = m.samples.iter().map(|s| s.proxied).sum();
            let counted: Option<u64> = m.samples.iter().map(|s| s.counted).sum();
            let yes_no = |got: u64| {
                if got == requests {
                    "yes".to_owned()
                } else {
                    format!("NO ({got})")
                }
            };
            t.row(vec![
                m.variant.label.to_owned(),
                requests.to_string(),
                (requests - ok.min(requests)).to_string(),
                errors.to_string(),
                yes_no(proxied),
                counted.map_or_else(|| "–".to_owned(), yes_no),
                show(figure(m, Metric::AchievedRate).spread, 0),
                show(figure(m, Metric::UpstreamCpu).spread, 1),
                format!("{:.1}", m.rss_after_warmup_kib as f64 / 1024.0),
            ]);
        }
        t
    }

    pub fn modules_table(&self) -> Table {
        let mut t = Table::new(&["module", "bytes", "KiB", "initial memory KiB"]);
        for row in &self.modules {
            t.row(vec![
                row.name.to_owned(),
                row.size.bytes.to_string(),
                format!("{:.1}", row.size.bytes as f64 / 1024.0),
                row.size.initial_memory_kib().to_string(),
            ]);
        }
        if let [a, b] = self.modules.as_slice() {
            t.row(vec![
                format!("{} ÷ {}", a.name, b.name),
                format!("{:.2}", a.size.bytes as f64 / b.size.bytes as f64),
                String::new(),
                format!(
                    "{:.2}",
                    a.size.initial_pages as f64 / b.size.initial_pages.max(1) as f64
                ),
            ]);
        }
        t
    }

    /// Instructions per request of the worker thread under callgrind, per variant.
    pub fn instructions_table(&self) -> Table {
        let mut t = Table::new(&[
            "variant",
            "instructions/req",
            "− none (paired, 95 % CI)",
            "− empty (paired, 95 % CI)",
        ]);
        let series = |id: &str| {
            self.counted
                .iter()
                .find(|c| c.variant.id == id)
                .map_or_else(Vec::new, |c| c.per_request.clone())
        };
        for c in &self.counted {
            let v = &c.variant;
            let d = |base: &str| {
                if base == v.id {
                    "–".to_owned()
                } else {
                    crate::paired::difference(&series(&v.id), &series(base))
                        .map_or("–".to_owned(), |d| d.show(0))
                }
            };
            t.row(vec![
                v.label.clone(),
                show(crate::summary::Spread::of(&c.per_request), 0),
                d(v.none_baseline()),
                d(v.empty_baseline()),
            ]);
        }
        t
    }

    pub fn own_work(&self) -> OwnWork {
        goals::own_work(&self.measured, &self.counted)
    }

    /// The comparison with the previous run, when there was one.
    pub fn repeat_table(&self) -> Option<Table> {
        let (_, before) = self.previous.as_ref()?;
        Some(repeat::table(&self.own_work(), before))
    }

    fn optimised_sizes(&self) -> Option<goals::Sizes> {
        match self.modules.as_slice() {
            [a, b] => Some(goals::Sizes {
                meshtally: a.size,
                empty: b.size,
            }),
            _ => None,
        }
    }

    pub fn size_goal_table(&self) -> Option<Table> {
        Some(goals::size_table(self.plain_sizes, self.optimised_sizes()?))
    }

    /// The latency runs are only meaningful below saturation: warn when the fixed rate exceeds
    /// half of some variant's median saturation throughput, or was not achieved.
    pub fn rate_warnings(&self) -> Vec<String> {
        let rate = f64::from(self.settings.rate);
        let mut out = Vec::new();
        for m in &self.measured {
            if let Some(sat) = figure(m, Metric::Throughput).median() {
                if rate > sat / 2.0 {
                    out.push(format!(
                        "the fixed rate ({rate:.0} req/s) is above half of {}'s saturation throughput ({sat:.0} req/s): its latencies are near saturation",
                        m.variant.label
                    ));
                }
            }
            if let Some(achieved) = figure(m, Metric::AchievedRate).median() {
                if achieved < rate * 0.95 {
                    out.push(format!(
                        "{} achieved only {achieved:.0} of {rate:.0} req/s in the latency runs",
                        m.variant.label
                    ));
                }
            }
        }
        out
    }

    /// How noisy the run was: the median relative half-range of CPU/request across variants.
    pub fn noise(&self) -> Option<f64> {
        let spreads: Vec<f64> = self
            .measured
            .iter()
            .filter_map(|m| figure(m, Metric::CpuPerRequest).spread)
            .filter(|s| s.n > 1)
            .map(|s| s.noise())
            .collect();
        crate::summary::Spread::of(&spreads).map(|s| s.median)
    }

    pub fn settings_line(&self) -> String {
        let s = &self.settings;
        format!(
            "{} round(s) × {} variant(s); saturation runs {} s with {} connections; latency runs {} s at {} req/s over {} connections; warm-up {} s{}",
            s.rounds,
            self.measured.len(),
            s.saturate_seconds,
            s.connections,
            s.rate_seconds,
            s.rate,
            s.rate_connections,
            s.warmup_seconds,
            if self.quick { " (--quick: a smoke run, not figures to quote)" } else { "" }
        )
    }

    fn sections(&self) -> Vec<(String, Table)> {
        let mut out = vec![
            (
                "Results (median, min–max over rounds)".to_owned(),
                self.results_table(),
            ),
            (
                "Comparisons (median of per-round values, min–max)".to_owned(),
                self.ratios_table(),
            ),
            ("Checks".to_owned(), self.checks_table()),
            (
                "Goal: CPU (paired, 95 % CI)".to_owned(),
                goals::cpu_table(&self.measured, &self.counted),
            ),
            ("Goal: RSS".to_owned(), goals::rss_table(&self.measured)),
            (
                "Instructions per request (callgrind)".to_owned(),
                self.instructions_table(),
            ),
            (
                "Price of one host call (callgrind, instructions)".to_owned(),
                crate::host_calls::price_table(&self.counted),
            ),
            (
                "Where meshtally's instructions go".to_owned(),
                crate::host_calls::attribution(&self.ledger, &self.counted),
            ),
            (
                "Host calls per request (fake host)".to_owned(),
                crate::host_calls::summary(&self.ledger),
            ),
            ("Module size".to_owned(), self.modules_table()),
        ];
        if let Some(t) = self.size_goal_table() {
            out.push(("Goal: size".to_owned(), t));
        }
        if let Some(t) = self.repeat_table() {
            out.push(("Repeatability: this run vs the previous".to_owned(), t));
        }
        for extra in &self.extras {
            out.push((extra.title.clone(), extra.table.clone()));
        }
        out
    }

    /// The aligned plain-text report for stdout.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n{}\n", self.machine.summary(), self.settings_line());
        if let Some(noise) = self.noise() {
            out.push_str(&format!(
                "noise: CPU/request varied ±{:.1}% across rounds (median over variants)\n",
                noise * 100.0
            ));
        }
        for line in self.rate_warnings() {
            out.push_str(&format!("warning: {line}\n"));
        }
        for (title, table) in self.sections() {
            out.push_str(&format!("\n{title}\n{}", table.text()));
        }
        out
    }
}
