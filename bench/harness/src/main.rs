//! `meshtally-bench`: runs the benchmark, prints the aligned tables and, with `--out`, writes
//! BENCHMARKS.md. Progress goes to stderr so stdout is only the report.

use anyhow::{Context, Result};
use clap::Parser;

use meshtally_bench::{markdown, Options};

fn main() -> Result<()> {
    let options = Options::parse();
    let started = std::time::Instant::now();
    let report = meshtally_bench::run(&options, &mut |step| {
        eprintln!("[{:>5.1}s] {step}", started.elapsed().as_secs_f64());
    })?;
    print!("{}", report.text());
    if let Some(out) = &options.out {
        std::fs::write(out, markdown::render(&report))
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
