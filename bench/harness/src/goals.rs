//! The filter's cost goals (issue 27), computed from one run: CPU (time and instructions),
//! module size and RSS, each with the figure, the goal and met/missed. Paired per round with a
//! 95 % confidence interval, so "met" means the interval's upper end is within the goal.

use crate::callgrind::Counted;
use crate::figures::{figure, find, Metric};
use crate::measure::Measured;
use crate::paired::{difference, Difference};
use crate::table::Table;
use crate::variants::Variant;
use crate::wasm_size::ModuleSize;

/// meshtally's own work (meshtally − empty) may cost at most this many of the worker's
/// instructions per request, by variant. Instructions, not µs: through this ABI the host calls
/// the behaviour needs cost tens of thousands of instructions, and instructions repeat where a
/// shared machine's time does not.
pub fn own_work_goal(id: &str) -> Option<f64> {
    match id {
        "outbound" => Some(40_000.0),
        "inbound" => Some(55_000.0),
        "inbound-mtls" => Some(65_000.0),
        _ => None,
    }
}
/// meshtally's added instructions over no filter may be at most this many times Lua's.
pub const LUA_FACTOR: f64 = 1.5;
/// The module may be at most the empty filter plus this many bytes.
pub const SIZE_BUDGET: u64 = 32 * 1024;
/// RSS may be at most the empty filter's plus this many MiB.
pub const RSS_BUDGET_MIB: f64 = 2.0;

/// The sizes the goals compare: as `cargo build` left them and after `scripts/wasm-opt.sh`.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub meshtally: ModuleSize,
    pub empty: ModuleSize,
}

fn verdict(met: bool) -> String {
    if met { "met" } else { "missed" }.to_owned()
}

fn time_series(all: &[Measured], id: &str, metric: Metric) -> Vec<f64> {
    find(all, id).map_or_else(Vec::new, |m| figure(m, metric).per_round)
}

fn count_series(all: &[Counted], id: &str) -> Vec<f64> {
    all.iter()
        .find(|c| c.variant.id == id)
        .map_or_else(Vec::new, |c| c.per_request.clone())
}

/// `a − b` of a variant and a baseline, paired by round.
fn diff(series: &dyn Fn(&str) -> Vec<f64>, a: &str, b: &str) -> Option<Difference> {
    difference(&series(a), &series(b))
}

fn show(d: Option<Difference>, decimals: usize) -> String {
    d.map_or_else(|| "–".to_owned(), |d| d.show(decimals))
}

/// One row per meshtally variant and measure: added over none, Lua's added, own work.
pub fn cpu_table(measured: &[Measured], counted: &[Counted]) -> Table {
    let mut t = Table::new(&[
        "variant",
        "measure",
        "added over none",
        "Lua's added over none",
        "≤ 1.5 × Lua",
        "meshtally − empty",
        "own work goal",
    ]);
    let time = |id: &str| time_series(measured, id, Metric::CpuPerRequest);
    let instr = |id: &str| count_series(counted, id);
    // µs per instruction of this machine, from the no-filter variant: turns an instruction
    // difference into an estimated time, for scale.
    let us_per_instruction = {
        let t = crate::summary::Spread::of(&time("none")).map(|s| s.median);
        let i = crate::summary::Spread::of(&instr("none")).map(|s| s.median);
        t.zip(i).map(|(t, i)| t / i)
    };
    let variants: Vec<&Variant> = measured
        .iter()
        .map(|m| &m.variant)
        .chain(counted.iter().map(|c| &c.variant))
        .filter(|v| v.is_meshtally())
        .fold(Vec::new(), |mut acc, v| {
            if !acc.iter().any(|a: &&Variant| a.id == v.id) {
                acc.push(v);
            }
            acc
        });
    for v in variants {
        let (none, empty) = (v.none_baseline(), v.empty_baseline());
        if !time(&v.id).is_empty() {
            let mine = diff(&time, &v.id, none);
            let lua = diff(&time, "lua", "none");
            let own = diff(&time, &v.id, empty);
            t.row(vec![
                v.label.clone(),
                "CPU µs/req".into(),
                show(mine, 1),
                show(lua, 1),
                mine.zip(lua).map_or("–".into(), |(m, l)| {
                    verdict(m.mean <= LUA_FACTOR * l.mean)
                }),
                show(own, 1),
                "– (goal in instructions)".into(),
            ]);
        }
        if !instr(&v.id).is_empty() {
            let mine = diff(&instr, &v.id, none);
            let lua = diff(&instr, "lua", "none");
            let own = diff(&instr, &v.id, empty);
            let own_us = own.zip(us_per_instruction).map(|(o, k)| o.upper() * k);
            t.row(vec![
                v.label.clone(),
                "instructions/req".into(),
                show(mine, 0),
                show(lua, 0),
                mine.zip(lua).map_or("–".into(), |(m, l)| {
                    verdict(m.upper() <= LUA_FACTOR * l.mean)
                }),
                show(own, 0),
                match (own, own_work_goal(&v.id)) {
                    (Some(o), Some(goal)) => format!(
                        "≤ {goal:.0}: {}{}",
                        verdict(o.upper() <= goal),
                        own_us.map_or(String::new(), |us| format!(" (≈ {us:.1} µs)"))
                    ),
                    _ => "–".into(),
                },
            ]);
        }
    }
    t
}

pub fn size_table(plain: Option<Sizes>, optimised: Sizes) -> Table {
    let mut t = Table::new(&[
        "build",
        "meshtally bytes",
        "empty bytes",
        "meshtally − empty",
        "goal ≤ 32768",
    ]);
    let mut row = |name: &str, s: Sizes| {
        let over = s.meshtally.bytes as i64 - s.empty.bytes as i64;
        t.row(vec![
            name.to_owned(),
            s.meshtally.bytes.to_string(),
            s.empty.bytes.to_string(),
            over.to_string(),
            verdict(over <= SIZE_BUDGET as i64),
        ]);
    };
    if let Some(plain) = plain {
        row("cargo build --release --target wasm32-wasip1", plain);
    }
    row("after scripts/wasm-opt.sh", optimised);
    t
}

pub fn rss_table(measured: &[Measured]) -> Table {
    let mut t = Table::new(&["variant", "RSS − empty MiB", "goal ≤ 2 MiB"]);
    let rss = |id: &str| time_series(measured, id, Metric::RssMib);
    for m in measured.iter().filter(|m| m.variant.is_meshtally()) {
        let d = diff(&rss, &m.variant.id, m.variant.empty_baseline());
        t.row(vec![
            m.variant.label.clone(),
            show(d, 2),
            d.map_or("–".into(), |d| verdict(d.upper() <= RSS_BUDGET_MIB)),
        ]);
    }
    t
}

/// meshtally − empty per meshtally variant, in CPU µs and in instructions: the figures two
/// back-to-back runs must agree on.
pub fn own_work(measured: &[Measured], counted: &[Counted]) -> Vec<(String, f64, Option<f64>)> {
    let time = |id: &str| time_series(measured, id, Metric::CpuPerRequest);
    let instr = |id: &str| count_series(counted, id);
    measured
        .iter()
        .filter(|m| m.variant.is_meshtally())
        .filter_map(|m| {
            let v = &m.variant;
            let cpu = diff(&time, &v.id, v.empty_baseline())?.mean;
            let ins = diff(&instr, &v.id, v.empty_baseline()).map(|d| d.mean);
            Some((v.id.clone(), cpu, ins))
        })
        .collect()
}
