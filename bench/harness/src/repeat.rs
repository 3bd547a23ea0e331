//! Repeatability: each run writes its meshtally − empty figures into BENCHMARKS.md as one
//! machine-readable comment, and the next run reads them back and says whether the two agree
//! within 10 % — the check two back-to-back `make bench` runs are held to.

use crate::table::Table;

/// Two runs agree when their meshtally − empty differ by at most this share.
pub const AGREEMENT: f64 = 0.10;
const MARK: &str = "<!-- own-work:";

/// (variant id, CPU µs/req, instructions/req) per meshtally variant.
pub type OwnWork = Vec<(String, f64, Option<f64>)>;

/// The comment line written into BENCHMARKS.md.
pub fn line(own: &OwnWork, date: &str) -> String {
    let cells: Vec<String> = own
        .iter()
        .map(|(id, cpu, ins)| match ins {
            Some(ins) => format!("{id} cpu={cpu:.3} instr={ins:.0}"),
            None => format!("{id} cpu={cpu:.3}"),
        })
        .collect();
    format!("{MARK} date={date}; {} -->", cells.join("; "))
}

/// The previous run's figures and date, from the previous BENCHMARKS.md text.
pub fn parse(text: &str) -> Option<(String, OwnWork)> {
    let body = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(MARK))?
        .trim()
        .strip_suffix("-->")?;
    let mut date = String::new();
    let mut own = Vec::new();
    for cell in body.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        if let Some(d) = cell.strip_prefix("date=") {
            date = d.to_owned();
            continue;
        }
        let mut words = cell.split_whitespace();
        let id = words.next()?.to_owned();
        let (mut cpu, mut ins) = (None, None);
        for w in words {
            if let Some(v) = w.strip_prefix("cpu=") {
                cpu = v.parse().ok();
            } else if let Some(v) = w.strip_prefix("instr=") {
                ins = v.parse().ok();
            }
        }
        own.push((id, cpu?, ins));
    }
    Some((date, own))
}

fn agreement(now: f64, before: f64) -> (String, bool) {
    let rel = (now - before).abs() / before.abs().max(f64::MIN_POSITIVE);
    (format!("{:.1} %", rel * 100.0), rel <= AGREEMENT)
}

/// This run against the previous one, per variant and measure.
pub fn table(now: &OwnWork, before: &OwnWork) -> Table {
    let mut t = Table::new(&[
        "variant",
        "measure",
        "previous run",
        "this run",
        "difference",
        "within 10 %",
    ]);
    for (id, cpu, ins) in now {
        let Some((_, cpu0, ins0)) = before.iter().find(|(b, _, _)| b == id) else {
            continue;
        };
        let (rel, ok) = agreement(*cpu, *cpu0);
        t.row(vec![
            id.clone(),
            "CPU µs/req".into(),
            format!("{cpu0:.2}"),
            format!("{cpu:.2}"),
            rel,
            if ok { "yes" } else { "no" }.into(),
        ]);
        if let (Some(ins), Some(ins0)) = (ins, ins0) {
            let (rel, ok) = agreement(*ins, *ins0);
            t.row(vec![
                id.clone(),
                "instructions/req".into(),
                format!("{ins0:.0}"),
                format!("{ins:.0}"),
                rel,
                if ok { "yes" } else { "no" }.into(),
            ]);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_parses_back() {
        let own = vec![
            ("outbound".to_owned(), 9.5, Some(41234.0)),
            ("inbound".to_owned(), -1.25, None),
        ];
        let text = format!("# Benchmarks\n\n{}\n", line(&own, "2026-11-30 22:00"));
        let (date, back) = parse(&text).unwrap();
        assert_eq!(date, "2026-11-30 22:00");
        assert_eq!(back, own);
        assert!(parse("# Benchmarks\n").is_none());
    }

    #[test]
    fn agreement_is_relative_to_the_previous_run() {
        let before = vec![("outbound".to_owned(), 10.0, Some(1000.0))];
        let now = vec![("outbound".to_owned(), 10.9, Some(1200.0))];
        let t = table(&now, &before);
        assert_eq!(t.rows[0][4], "9.0 %");
        assert_eq!(t.rows[0][5], "yes");
        assert_eq!(t.rows[1][5], "no");
    }
}
