//! meshtally's benchmark harness: Envoy with no filter, with an empty proxy-wasm filter, with
//! meshtally (outbound, inbound, inbound over mTLS), with Lua and with native header rules, all
//! under the same load from oha on loopback, measured in alternation. `run` does the whole job
//! and returns a `Report`; the binary prints it and writes BENCHMARKS.md.

pub mod admin;
pub mod callgrind;
pub mod certs;
pub mod cli;
pub mod configs;
pub mod envoy;
pub mod figures;
pub mod goals;
pub mod hooks;
pub mod host_calls;
pub mod load;
pub mod machine;
pub mod markdown;
pub mod measure;
pub mod paired;
pub mod procfs;
pub mod repeat;
pub mod report;
pub mod summary;
pub mod table;
pub mod tracing_cost;
pub mod variants;
pub mod wasm_size;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use cli::Options;
pub use report::Report;

/// The workspace root, so the harness finds `.venv`, `.tools` and `target/` from anywhere.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A module from its flag, then its environment variable, then the workspace's target dir.
fn module(
    explicit: Option<&Path>,
    env: &str,
    root: &Path,
    file: &str,
    build: &str,
) -> Result<PathBuf> {
    let path = explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os(env).map(PathBuf::from))
        .unwrap_or_else(|| root.join("target/wasm32-wasip1/release").join(file));
    if !path.is_file() {
        anyhow::bail!(
            "{} is missing: build it with `{build}` then `scripts/wasm-opt.sh <it>` (bench/run.sh does both)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs the benchmark; `progress` receives one short line per step.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let root = workspace_root();
    let variants = variants::select(options.variants.as_deref(), &options.candidates)?;
    let settings = options.settings();
    let envoy_bin = envoy::find_envoy(options.envoy.as_deref())?;
    let oha = load::find_oha(options.oha.as_deref(), &root)?;
    let meshtally = module(
        options.meshtally_wasm.as_deref(),
        "MESHTALLY_WASM",
        &root,
        "meshtally_filter.wasm",
        "cargo build --release --target wasm32-wasip1 -p meshtally-filter",
    )?;
    let empty = module(
        options.empty_wasm.as_deref(),
        "MESHTALLY_EMPTY_WASM",
        &root,
        "meshtally_empty_filter.wasm",
        "cargo build --release --target wasm32-wasip1 -p meshtally-empty-filter",
    )?;

    // Optional: without it the callgrind section has no price list.
    let probe = options
        .probe_wasm
        .clone()
        .or_else(|| std::env::var_os("MESHTALLY_PROBE_WASM").map(PathBuf::from))
        .filter(|p| p.is_file());

    let mut machine = machine::Machine::probe(&envoy_bin, &oha);
    let dir = tempfile::Builder::new()
        .prefix("meshtally-bench-")
        .tempdir()
        .context("creating a scratch directory")?;
    meshtally_testkit::process::kill_children_on_exit("meshtally-bench");
    meshtally_testkit::process::remove_on_signal(dir.path());
    let pki = certs::Pki::create(dir.path())?;
    let setup = measure::Setup {
        envoy_bin: &envoy_bin,
        oha: &oha,
        modules: configs::Modules {
            meshtally: &meshtally,
            empty: &empty,
            probe: probe.as_deref(),
        },
        dir: dir.path(),
        pki: &pki,
    };
    let previous = options
        .out
        .as_deref()
        .and_then(|out| std::fs::read_to_string(out).ok())
        .and_then(|text| repeat::parse(&text));
    let measured = if options.callgrind_only {
        Vec::new()
    } else {
        measure::run(&setup, &variants, &settings, progress)?
    };
    let callgrind_settings = options.callgrind();
    let counted = if callgrind_settings.rounds > 0 {
        let mut counted_variants = variants.clone();
        if probe.is_some() && !options.no_probes {
            counted_variants.extend(variants::probes());
        }
        callgrind::run(&setup, &counted_variants, &callgrind_settings, progress)?
    } else {
        Vec::new()
    };
    machine.load_after = procfs::load_average();
    let plain = |explicit: Option<&Path>, env: &str| {
        explicit
            .map(Path::to_owned)
            .or_else(|| std::env::var_os(env).map(PathBuf::from))
            .map(|p| wasm_size::measure(&p))
            .transpose()
    };
    let plain_sizes = match (
        plain(
            options.meshtally_plain_wasm.as_deref(),
            "MESHTALLY_PLAIN_WASM",
        )?,
        plain(
            options.empty_plain_wasm.as_deref(),
            "MESHTALLY_EMPTY_PLAIN_WASM",
        )?,
    ) {
        (Some(meshtally), Some(empty)) => Some(goals::Sizes { meshtally, empty }),
        _ => None,
    };

    let modules = vec![
        report::ModuleRow {
            name: "meshtally",
            size: wasm_size::measure(&meshtally)?,
        },
        report::ModuleRow {
            name: "empty",
            size: wasm_size::measure(&empty)?,
        },
    ];
    let extras = if options.callgrind_only {
        Vec::new()
    } else {
        // The render and local-mesh figures are extras: a busy port on a shared machine must
        // not throw away the filter's measurements, so a failure is reported, not fatal.
        match hooks::extras(&hooks::Context {
            root: &root,
            quick: options.quick,
        }) {
            Ok(extras) => extras,
            Err(err) => {
                progress(&format!("render/local-mesh figures skipped: {err:#}"));
                vec![hooks::Extra {
                    title: "deployer render and local mesh".to_owned(),
                    method: format!("Not measured in this run: {err:#}"),
                    table: table::Table::new(&["–"]),
                }]
            }
        }
    };
    Ok(Report {
        machine,
        settings,
        quick: options.quick,
        measured,
        counted,
        callgrind: callgrind_settings,
        ledger: meshtally_core::ledger::per_request(),
        plain_sizes,
        previous,
        modules,
        extras,
    })
}
