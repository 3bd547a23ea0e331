//! Where and when the figures were taken: processors, CPU model, Envoy and oha versions, the
//! date and the load average before and after, so a reader can judge how noisy the run was.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{envoy, load, procfs};

#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub envoy_version: String,
    pub oha_version: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    pub clock_ticks: u64,
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

impl Machine {
    pub fn probe(envoy_bin: &Path, oha: &Path) -> Machine {
        Machine {
            nproc: procfs::nproc(),
            cpu_model: procfs::cpu_model(),
            envoy_version: envoy::version(envoy_bin).unwrap_or_else(|e| format!("unknown ({e})")),
            oha_version: load::version(oha),
            date: utc_now(),
            clock_ticks: procfs::clock_ticks_per_second(),
            load_before: procfs::load_average(),
            load_after: None,
        }
    }

    pub fn summary(&self) -> String {
        let load = |l: Option<f64>| l.map_or("?".to_owned(), |l| format!("{l:.2}"));
        format!(
            "{} × {} · Envoy {} · {} · {} UTC · load average {} before, {} after",
            self.nproc,
            self.cpu_model,
            self.envoy_version,
            self.oha_version,
            self.date,
            load(self.load_before),
            load(self.load_after)
        )
    }
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
