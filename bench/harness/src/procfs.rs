//! What the kernel says about a process: CPU time (utime + stime, all threads) and resident
//! memory. CPU time per request is the steadiest figure on a shared machine, because time the
//! proxy spends waiting for a core is not counted.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The CPU the proxy under test runs on; the upstream and the load generator share the other
/// one, so the generator never takes the proxy's core.
pub const PROXY_CPU: usize = 0;
pub const LOAD_CPU: usize = 1;

/// `taskset -c <cpu>` when the machine has more than one CPU and taskset is on PATH (it execs,
/// so the pid stays the program's); nothing otherwise.
pub fn pin_prefix(cpu: Option<usize>) -> Vec<String> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    match cpu {
        Some(cpu) if cpus > cpu && cpus > 1 && taskset_available() => {
            vec!["taskset".into(), "-c".into(), cpu.to_string()]
        }
        _ => Vec::new(),
    }
}

fn taskset_available() -> bool {
    meshtally_envoy::locate::Places::here()
        .on_path("taskset")
        .is_some()
}

/// A command for `program`, pinned to `cpu` as [`pin_prefix`] says.
pub fn pinned_command(program: &Path, cpu: Option<usize>) -> std::process::Command {
    let prefix = pin_prefix(cpu);
    match prefix.split_first() {
        Some((taskset, args)) => {
            let mut command = std::process::Command::new(taskset);
            command.args(args).arg(program);
            command
        }
        None => std::process::Command::new(program),
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of utime and stime.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// utime + stime of a whole process (every thread), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&text).with_context(|| format!("parsing {path}: {text:?}"))
}

/// Fields 14 and 15 of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so counting starts after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("no `)` after the command name");
    };
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are its 12th and 13th.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("too few fields")?
            .parse()
            .context("not a number")
    };
    Ok(field(11)? + field(12)?)
}

/// CPU time of every thread of a process in nanoseconds: the sum of the first field of
/// `/proc/<pid>/task/*/schedstat`. Used where a run spans too few clock ticks for `cpu_ticks`
/// to resolve (Envoy's threads live as long as the process, so none is missed by exiting).
pub fn cpu_ns(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path().join("schedstat");
        // A thread may exit between the listing and the read; it then has nothing to add.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("parsing {}: {text:?}", path.display()))?;
    }
    Ok(total)
}

/// CPU time in µs from a tick count.
pub fn ticks_to_micros(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / clock_ticks_per_second() as f64
}

/// Resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// Number of online processors and the CPU model, for the report's machine line.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1-minute load average, to show how busy the machine was around the run.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string(Path::new("/proc/loadavg")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_tricky_command_name() {
        let stat = "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 1000 0";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 1234 + 567);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        cpu_ticks(pid).unwrap();
        assert!(rss_kib(pid).unwrap() > 0);
        let spent = cpu_ns(pid).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(20) {}
        assert!(cpu_ns(pid).unwrap() > spent);
        assert!(clock_ticks_per_second() > 0);
    }
}
