//! The house's rules, held by a test: which part of the deployer may import which, and that the
//! mesh model stays pure. Read from the sources as text (`use crate::…` and the crates named),
//! so a forbidden import fails here with the file and line that made it.

use crate::common::{files_below, workspace as root};

/// Every line of the `.rs` files below `dir` (relative to the repository) that contains one of
/// `needles`, outside comments, as `path:line: text`.
fn lines_naming(dir: &str, needles: &[&str]) -> Vec<String> {
    let files = files_below(&root().join(dir), "rs");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if needles.iter().any(|needle| code.contains(needle)) {
                let shown = file
                    .strip_prefix(root())
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                found.push(format!("{shown}:{}: {}", n + 1, code));
            }
        }
    }
    found
}

/// The deployer's layers, top down: `main` → `commands` → `cli` → the rest. Nothing below
/// `commands` imports it, and nothing below `cli` imports the command line: the local
/// runtime, the cluster client, the observers and the dashboard are usable without it.
#[test]
fn no_lower_layer_imports_the_command_line_or_the_dispatch() {
    let mut wrong = lines_naming("deployer/src/cli", &["crate::commands"]);
    for lower in [
        "deployer/src/local",
        "deployer/src/cluster",
        "deployer/src/observe",
        "deployer/src/dashboard",
    ] {
        wrong.extend(lines_naming(lower, &["crate::cli", "crate::commands"]));
    }
    for file in ["meshfile.rs", "output.rs", "table.rs"] {
        let text = std::fs::read_to_string(root().join("deployer/src").join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("crate::commands") || line.contains("crate::cli") {
                wrong.push(format!("deployer/src/{file}:{}: {line}", n + 1));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

/// `meshtally-mesh` is text and bytes in, values out: no file, process, socket or environment,
/// so every renderer and check is a plain function. Its dependencies say the same.
#[test]
fn the_mesh_model_does_no_io() {
    let io = lines_naming(
        "mesh/src",
        &[
            "std::fs",
            "std::process",
            "std::net",
            "std::env",
            "tempfile",
            "reqwest",
            "tokio",
        ],
    );
    assert!(io.is_empty(), "I/O in meshtally-mesh:\n{}", io.join("\n"));
    let manifest = std::fs::read_to_string(root().join("mesh/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    for line in deps
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let name = line.split(['=', '.']).next().unwrap().trim();
        assert!(
            [
                "clap",
                "meshtally-core",
                "meshtally-wire",
                "k8s-openapi",
                "serde",
                "serde_json",
                "serde_norway",
                "sha2",
                "strsim",
                "thiserror",
            ]
            .contains(&name),
            "meshtally-mesh depends on {name}: a pure crate needs a reason for each dependency"
        );
    }
}

/// The shared test support and the bench build on `meshtally-envoy` and `meshtally-wire`, never
/// on the CLI crate: changing a command rebuilds neither.
#[test]
fn testkit_and_bench_do_not_depend_on_the_cli() {
    for manifest in [
        "testkit/Cargo.toml",
        "bench/harness/Cargo.toml",
        "service/Cargo.toml",
    ] {
        let text = std::fs::read_to_string(root().join(manifest)).unwrap();
        assert!(
            !text.contains("meshtally-deployer"),
            "{manifest} depends on the CLI crate"
        );
    }
}
