//! Bad inputs, through the binary: each must exit non-zero with nothing on stdout and exactly
//! one line on stderr that says what is wrong, and `--output` must leave no trace.

mod common;

use std::path::Path;

use common::{deployer_in, fake_module};

/// Runs `args` in `dir` and checks the failure shape; returns the error line.
fn fails(dir: &Path, args: &[&str], want: &str) -> String {
    let out = deployer_in(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    assert!(stderr.contains(want), "{args:?}: {stderr:?} lacks {want:?}");
    stderr
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    dir
}

const MODULE: [&str; 2] = ["--wasm-file", "meshtally_filter.wasm"];

fn with_module<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["render"];
    all.extend_from_slice(&MODULE);
    all.extend_from_slice(args);
    all
}

#[test]
fn each_bad_flag_is_one_clear_line() {
    let dir = setup();
    let cases: &[(&[&str], &str)] = &[
        (&["--names", "a,b,a"], "service name `a` is given twice"),
        (
            &["--base-port", "65534"],
            "service `service-c`: port 65536 is outside 1-65535",
        ),
        (
            &["--base-port", "70000"],
            "base port 70000 is outside 1-65535",
        ),
        (
            &["--names", "Service_A"],
            "`Service_A` is not a DNS-1035 label",
        ),
        (&["--services", "0"], "at least one service"),
        (&["--services", "1001"], "more than the 1000"),
        (
            &["--base-port", "15000"],
            "port 15000 is reserved by the Istio sidecar (15000-15090)",
        ),
        (
            &["--base-port", "14999"],
            "service `service-b`: port 15000 is reserved",
        ),
        (
            &["--namespace", "Demo"],
            "namespace `Demo` is not a DNS-1123 label",
        ),
        (&["--names", "meshtally-gateway"], "prefix `meshtally-`"),
        (&["--services", "many"], "invalid value 'many'"),
        (
            &["--services", "2", "--names", "a,b"],
            "cannot be used with",
        ),
        (&["--bogus"], "unexpected argument '--bogus'"),
    ];
    for (args, want) in cases {
        fails(dir.path(), &with_module(args), want);
    }
}

#[test]
fn module_problems() {
    let dir = setup();
    let line = fails(
        dir.path(),
        &["render", "--wasm-file", "missing/meshtally_filter.wasm"],
        "wasm module missing/meshtally_filter.wasm not found",
    );
    assert!(line.contains("make wasm"), "{line}");
    std::fs::write(dir.path().join("text.wasm"), "not wasm").unwrap();
    fails(
        dir.path(),
        &["render", "--wasm-file", "text.wasm"],
        "is not a wasm module",
    );
    fails(
        dir.path(),
        &["render", "--wasm-url", "http://example.org/f.wasm"],
        "must start with oci:// or https://",
    );
    fails(
        dir.path(),
        &["render", "--wasm-url", "oci://x/f", "--wasm-sha256", "abc"],
        "wasm sha256 `abc` is not 64 lowercase hex digits",
    );
}

#[test]
fn mesh_file_errors_name_the_place() {
    let dir = setup();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "malformed.yaml",
        "namespace: demo\nservices: [a, b\nreplicas: 2\n",
    );
    let line = fails(
        dir.path(),
        &with_module(&["--file", "malformed.yaml"]),
        "mesh file malformed.yaml: ",
    );
    assert!(line.contains("line ") && line.contains("column "), "{line}");

    write("unknown.yaml", "namespace: demo\nreplica: 2\n");
    fails(
        dir.path(),
        &with_module(&["--file", "unknown.yaml"]),
        "unknown field `replica`",
    );
    let line = fails(
        dir.path(),
        &with_module(&["--file", "unknown.yaml"]),
        "line 2 column 1",
    );
    assert!(line.contains("mesh file unknown.yaml"), "{line}");

    write("entry.yaml", "services:\n  - name: web\n    prot: 80\n");
    fails(
        dir.path(),
        &with_module(&["--file", "entry.yaml"]),
        "unknown field `prot`",
    );

    write("dup.yaml", "names: [web, api, web]\n");
    fails(
        dir.path(),
        &with_module(&["--file", "dup.yaml"]),
        "`web` is given twice",
    );

    fails(
        dir.path(),
        &with_module(&["--file", "nope.yaml"]),
        "cannot read mesh file nope.yaml",
    );
}

#[test]
fn flags_override_the_file() {
    let dir = setup();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        "services: 0\nnamespace: BAD\n",
    )
    .unwrap();
    let out = deployer_in(
        dir.path(),
        &with_module(&[
            "--file",
            "mesh.yaml",
            "--services",
            "2",
            "--namespace",
            "ok",
        ]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("  name: ok\n") && text.contains("name: service-b\n"));
    assert!(!text.contains("service-c"));
}

#[test]
fn a_module_path_in_a_mesh_file_is_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("conf");
    std::fs::create_dir(&sub).unwrap();
    fake_module(&sub);
    std::fs::write(
        sub.join("mesh.yaml"),
        "services: 1\nwasm_file: meshtally_filter.wasm\n",
    )
    .unwrap();
    let out = deployer_in(dir.path(), &["render", "--file", "conf/mesh.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("meshtally_filter.wasm: AGFzbQEAAAA=\n"));
}

/// Files in `dir`, recursively, with their contents.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
                out.push((path.display().to_string(), Vec::new()));
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn output_folder_is_untouched_on_error() {
    let dir = setup();
    let parent = dir.path().join("out");
    std::fs::create_dir(&parent).unwrap();

    // Nothing appears for a new target.
    fails(
        dir.path(),
        &with_module(&["--services", "0", "--output", "out/m"]),
        "at least one service",
    );
    assert!(snapshot(&parent).is_empty(), "{:?}", snapshot(&parent));

    // A previous render stays byte for byte, with no temporary folder beside it.
    let ok = deployer_in(dir.path(), &with_module(&["--output", "out/m"]));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = snapshot(&parent);
    fails(
        dir.path(),
        &with_module(&["--names", "x,x", "--output", "out/m"]),
        "given twice",
    );
    fails(
        dir.path(),
        &["render", "--wasm-file", "gone.wasm", "--output", "out/m"],
        "not found",
    );
    assert_eq!(snapshot(&parent), before);

    // A folder that is no render is refused, not replaced.
    let other = parent.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let before = snapshot(&parent);
    fails(
        dir.path(),
        &with_module(&["--output", "out/other"]),
        "refusing to replace out/other",
    );
    assert_eq!(snapshot(&parent), before);

    // A file in the way is refused too.
    std::fs::write(parent.join("file"), "x").unwrap();
    fails(
        dir.path(),
        &with_module(&["--output", "out/file"]),
        "is not a folder",
    );
}

#[test]
fn rerender_replaces_the_whole_folder() {
    let dir = setup();
    let ok = deployer_in(
        dir.path(),
        &with_module(&["--services", "4", "--output", "m"]),
    );
    assert!(ok.status.success());
    assert!(dir.path().join("m/services/service-d.yaml").exists());
    let ok = deployer_in(
        dir.path(),
        &with_module(&["--services", "2", "--output", "m"]),
    );
    assert!(ok.status.success());
    assert!(!dir.path().join("m/services/service-c.yaml").exists());
    assert!(dir.path().join("m/services/service-b.yaml").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
