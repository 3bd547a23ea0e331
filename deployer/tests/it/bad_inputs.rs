//! Bad inputs, through the binary: each must exit non-zero with nothing on stdout and exactly
//! one line on stderr that says what is wrong, and `--output` must leave no trace.

use crate::common;

use std::path::Path;

use common::{deployer_in, fake_module};

/// Runs `args` in `dir` and checks the failure shape; returns the error line.
fn fails(dir: &Path, args: &[&str], want: &str) -> String {
    let out = deployer_in(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    // One line; a usage error (clap's) adds its usage line and `--help` hint after it.
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("Usage: ") && !l.starts_with("For more information"))
        .collect();
    assert_eq!(said.len(), 1, "{args:?}: not one line: {stderr:?}");
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

/// `--api istio` over a file saying `api: gateway-api`: what only Gateway API refuses renders.
#[test]
fn the_api_flag_wins_over_the_file() {
    let dir = setup();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        "api: gateway-api\nservices:\n  - name: web\n    fault: {abort: {status: 503, percent: 10}}\n",
    )
    .unwrap();
    let out = deployer_in(
        dir.path(),
        &with_module(&["--file", "mesh.yaml", "--api", "istio"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("kind: VirtualService\n") && !text.contains("kind: HTTPRoute\n"));
    let out = deployer_in(dir.path(), &with_module(&["--file", "mesh.yaml"]));
    assert!(!out.status.success(), "the file alone asks for Gateway API");
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

/// Mesh files the table below refers to, written into the test's folder first.
const MESH_FILES: &[(&str, &str)] = &[
    ("dup-names.yaml", "names: [web, api, web]\n"),
    (
        "port-70000.yaml",
        "services:\n  - name: web\n    port: 70000\n",
    ),
    (
        "port-15006.yaml",
        "services:\n  - name: web\n    port: 15006\n",
    ),
    (
        "dup-ports.yaml",
        "services:\n  - name: web\n    port: 9000\n  - name: api\n    port: 9000\n",
    ),
    ("digit.yaml", "names: [1web]\n"),
    (
        "malformed.yaml",
        "namespace: demo\nservices: [a, b\nreplicas: 2\n",
    ),
    ("top-list.yaml", "- a\n- b\n"),
    ("services-three.yaml", "services: \"three\"\n"),
    ("unknown.yaml", "namespace: demo\nreplica: 2\n"),
    ("empty-names.yaml", "names: []\n"),
    (
        "external-host.yaml",
        "services: 2\nexternal:\n  - name: pay\n    host: api_payments\n    port: 443\n    protocol: https\n",
    ),
    (
        "external-callers.yaml",
        "services: 2\noutbound_policy: registry_only\nexternal:\n  - {name: pay, host: pay.example, port: 443, protocol: https, tls_origination: true, callers: [service-z]}\n",
    ),
    (
        "external-protocol.yaml",
        "external:\n  - {name: pay, host: pay.example, port: 80, protocol: ftp}\n",
    ),
    ("negative.yaml", "services: -1\n"),
    ("too-many.yaml", "services: 1001\n"),
    ("bad-namespace.yaml", "namespace: -demo\n"),
    ("negative-replicas.yaml", "replicas: -1\n"),
    ("port-string.yaml", "base_port: \"8000\"\n"),
    ("both.yaml", "services: 2\nnames: [a]\n"),
    // Gateway API: a fault, retries on the standard channel, a per-version Service name taken.
    (
        "gw-fault.yaml",
        "services:\n  - name: web\n    fault: {abort: {status: 503, percent: 10}}\n",
    ),
    (
        "gw-standard.yaml",
        "api: gateway-api\ngateway_api_channel: standard\nservices:\n  - name: web\n    retries: {attempts: 3}\n",
    ),
    (
        "gw-clash.yaml",
        "api: gateway-api\nservices:\n  - name: web\n    versions: [{name: v1, weight: 50}, {name: api, weight: 50}]\n  - web-api\n",
    ),
    (
        "sha-only.yaml",
        "wasm_sha256: 0000000000000000000000000000000000000000000000000000000000000000\n",
    ),
];

/// One bad input: the `render` arguments, the exit code, and the one line on stderr.
struct Case {
    args: Vec<String>,
    code: i32,
    line: String,
}

/// `render` with the stand-in module, then `args`.
fn module_case(args: &[&str], code: i32, line: &str) -> Case {
    let mut all = vec!["--wasm-file", "meshtally_filter.wasm"];
    all.extend_from_slice(args);
    raw_case(&all, code, line)
}

/// `render` with exactly `args`.
fn raw_case(args: &[&str], code: i32, line: &str) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        code,
        line: line.to_owned(),
    }
}

fn bad_input_table() -> Vec<Case> {
    const NOT_1035: &str = "is not a DNS-1035 label (1-63 of a-z, 0-9 and '-', starting with a \
                            letter and ending with a letter or digit)";
    const NOT_1123: &str = "is not a DNS-1123 label (1-63 of a-z, 0-9 and '-', starting and \
                            ending with a letter or digit)";
    let long_name = "a".repeat(64);
    let zeros = "0".repeat(64);
    let ones = "1".repeat(64);
    let upper = "A".repeat(64);
    let pinned = format!("oci://ghcr.io/x/f@sha256:{zeros}");
    let m = module_case;
    vec![
        // What Gateway API cannot say, one line each naming the field and the way out.
        m(&["--api", "gateway-api", "--file", "gw-fault.yaml"], 1, "error: invalid mesh: gw-fault.yaml:3: services[0].fault: service `web`: Gateway API has no fault injection: use --api istio"),
        m(&["--file", "gw-standard.yaml"], 1, "error: invalid mesh: gw-standard.yaml:5: services[0].retries: service `web`: HTTPRoute `retry` needs the Gateway API experimental channel: set gateway_api_channel: experimental, retries: {attempts: 0}, or use --api istio"),
        m(&["--file", "gw-clash.yaml"], 1, "error: invalid mesh: gw-clash.yaml:4: services[0].versions: service `web`: Gateway API needs a Service `web-api` for version `api`, but that is the name of service `web-api`: rename one, or use --api istio"),
        // Duplicate names, from a file and from flags.
        m(&["--file", "dup-names.yaml"], 1, "error: invalid mesh: dup-names.yaml:1: names[2]: service name `web` is given twice"),
        m(&["--names", "a,b,a"], 1, "error: invalid mesh: service name `a` is given twice"),
        // Ports past 65535: base + index, and one given per service.
        m(&["--base-port", "65534"], 1, "error: invalid mesh: service `service-c`: port 65536 is outside 1-65535"),
        m(&["--file", "port-70000.yaml"], 1, "error: invalid mesh: port-70000.yaml:3: services[0].port: service `web`: port 70000 is outside 1-65535"),
        m(&["--base-port", "0"], 1, "error: invalid mesh: base port 0 is outside 1-65535"),
        m(
            &["--base-port", "99999999999999999999"],
            2,
            "error: invalid value '99999999999999999999' for '--base-port <PORT>': number too large to fit in target type",
        ),
        m(
            &["--file", "port-string.yaml"],
            1,
            "error: mesh file port-string.yaml: base_port: invalid type: string \"8000\", expected u64 at line 1 column 12",
        ),
        // Names Kubernetes would refuse.
        m(&["--names", "Service_A"], 1, &format!("error: invalid mesh: service name `Service_A` {NOT_1035}")),
        m(&["--file", "digit.yaml"], 1, &format!("error: invalid mesh: digit.yaml:1: names[0]: service name `1web` {NOT_1035}")),
        m(&["--names", &long_name], 1, &format!("error: invalid mesh: service name `{long_name}` {NOT_1035}")),
        m(
            &["--names", "meshtally-x"],
            1,
            "error: invalid mesh: service name `meshtally-x` uses the prefix `meshtally-`, which names the mesh's own objects",
        ),
        // Mesh files that are not YAML, or not the mesh's shape.
        m(
            &["--file", "malformed.yaml"],
            1,
            "error: mesh file malformed.yaml: did not find expected ',' or ']' at line 3 column 9, while parsing a flow sequence at line 2 column 11",
        ),
        m(&["--file", "top-list.yaml"], 1, "error: mesh file top-list.yaml: invalid type: sequence, expected a mapping of mesh fields at line 1"),
        m(
            &["--file", "services-three.yaml"],
            1,
            "error: mesh file services-three.yaml: services: invalid type: string \"three\", expected a service count or a list of {name, port} entries at line 1 column 11",
        ),
        m(
            &["--file", "unknown.yaml"],
            1,
            "error: mesh file unknown.yaml: unknown field `replica`, expected one of `services`, `names`, `namespace`, `base_port`, `replicas`, `image`, `wasm_url`, `wasm_sha256`, `wasm_file`, `api`, `gateway_api_channel`, `outbound_policy`, `external` at line 2 column 1; did you mean `replicas`?",
        ),
        m(
            &["--file", "both.yaml"],
            1,
            "error: mesh file both.yaml: `services` and `names` both choose the services: give one (`names` at line 2)",
        ),
        m(&["--file", "nope.yaml"], 1, "error: cannot read mesh file nope.yaml: No such file or directory (os error 2)"),
        // Service counts: none, negative, too many.
        m(&["--services", "0"], 1, "error: invalid mesh: the mesh needs at least one service, got 0"),
        m(&["--file", "empty-names.yaml"], 1, "error: invalid mesh: empty-names.yaml:1: names: the mesh needs at least one service, got 0"),
        // External entries: one line naming the entry, the field and the file's line.
        m(
            &["--file", "external-host.yaml"],
            1,
            "error: invalid mesh: external-host.yaml:4: external[0].host: external `pay`: `api_payments` is not a DNS name (lowercase labels joined by dots, no wildcard, not an address)",
        ),
        m(
            &["--file", "external-callers.yaml"],
            1,
            "error: invalid mesh: external-callers.yaml:4: external[0].callers[0]: external `pay`: no service `service-z` in the mesh",
        ),
        m(
            &["--file", "external-protocol.yaml"],
            1,
            "error: mesh file external-protocol.yaml: external[0].protocol: unknown variant `ftp`, expected one of `http`, `https`, `tls` at line 2 column 56",
        ),
        m(
            &["--file", "negative.yaml"],
            1,
            "error: mesh file negative.yaml: services: service count -1 is negative at line 1 column 11",
        ),
        // A negative count is a value clap cannot parse as a count.
        m(&["--services", "-1"], 2, "error: invalid value '-1' for '--services <N>': invalid digit found in string"),
        m(&["--services", "1001"], 1, "error: invalid mesh: 1001 services are more than the 1000 this tool renders"),
        m(&["--file", "too-many.yaml"], 1, "error: invalid mesh: too-many.yaml:1: services: 1001 services are more than the 1000 this tool renders"),
        // Istio's sidecar ports, and two services on one port.
        m(
            &["--base-port", "15000"],
            1,
            "error: invalid mesh: 3 problems: service `service-a`: port 15000 is reserved by the Istio sidecar (15000-15090); service `service-b`: port 15001 is reserved by the Istio sidecar (15000-15090); service `service-c`: port 15002 is reserved by the Istio sidecar (15000-15090)",
        ),
        m(
            &["--file", "port-15006.yaml"],
            1,
            "error: invalid mesh: port-15006.yaml:3: services[0].port: service `web`: port 15006 is reserved by the Istio sidecar (15000-15090)",
        ),
        m(
            &["--base-port", "15090"],
            1,
            "error: invalid mesh: service `service-a`: port 15090 is reserved by the Istio sidecar (15000-15090)",
        ),
        m(
            &["--base-port", "14998"],
            1,
            "error: invalid mesh: service `service-c`: port 15000 is reserved by the Istio sidecar (15000-15090)",
        ),
        m(&["--file", "dup-ports.yaml"], 1, "error: invalid mesh: dup-ports.yaml:5: services[1].port: services `web` and `api` both use port 9000"),
        // Namespace, replicas, image.
        m(&["--namespace", "Demo"], 1, &format!("error: invalid mesh: namespace `Demo` {NOT_1123}")),
        m(&["--file", "bad-namespace.yaml"], 1, &format!("error: invalid mesh: bad-namespace.yaml:1: namespace: namespace `-demo` {NOT_1123}")),
        m(
            &["--replicas", "2147483648"],
            1,
            "error: invalid mesh: replicas 2147483648 is more than Kubernetes allows (2147483647)",
        ),
        m(
            &["--file", "negative-replicas.yaml"],
            1,
            "error: mesh file negative-replicas.yaml: replicas: invalid type: integer `-1`, expected u64 at line 1 column 11",
        ),
        m(&["--image", "demo service:1"], 1, "error: invalid mesh: image `demo service:1` is empty or contains whitespace"),
        m(&["--image", ""], 1, "error: invalid mesh: image `` is empty or contains whitespace"),
        // The filter module: url, digest, file.
        raw_case(
            &["--wasm-url", "ftp://example.org/f.wasm"],
            1,
            "error: invalid mesh: wasm url `ftp://example.org/f.wasm` must start with oci:// or https://",
        ),
        raw_case(&["--wasm-url", "oci://"], 1, "error: invalid mesh: wasm url `oci://` has nothing after the scheme"),
        raw_case(
            &["--wasm-url", "oci://ghcr.io/x/f", "--wasm-sha256", "abc"],
            1,
            "error: invalid mesh: wasm sha256 `abc` is not 64 lowercase hex digits",
        ),
        raw_case(
            &["--wasm-url", "oci://ghcr.io/x/f", "--wasm-sha256", &upper],
            1,
            &format!("error: invalid mesh: wasm sha256 `{upper}` is not 64 lowercase hex digits"),
        ),
        raw_case(
            &["--wasm-url", &pinned, "--wasm-sha256", &ones],
            1,
            &format!("error: invalid mesh: wasm sha256 {ones} disagrees with the digest {zeros} in the url"),
        ),
        // clap says what is missing over two lines; main joins them.
        raw_case(&["--wasm-sha256", &zeros], 2, "error: the following required arguments were not provided: --wasm-url <URL>"),
        raw_case(
            &["--file", "sha-only.yaml"],
            1,
            "error: invalid mesh: sha-only.yaml:1: wasm_sha256: a wasm sha256 needs a wasm url: the ConfigMap delivery hashes the module file itself",
        ),
        raw_case(
            &["--wasm-url", "oci://x", "--wasm-file", "meshtally_filter.wasm"],
            2,
            "error: the argument '--wasm-url <URL>' cannot be used with '--wasm-file <PATH>'",
        ),
        raw_case(
            &["--wasm-file", "missing.wasm"],
            1,
            "error: wasm module missing.wasm not found: build it with `make wasm`, or pass --wasm-file or --wasm-url",
        ),
        raw_case(
            &["--wasm-file", "big.wasm"],
            1,
            "error: wasm module big.wasm is 1048577 bytes, over the 1 MiB a ConfigMap holds: publish it and pass --wasm-url",
        ),
        raw_case(&["--wasm-file", "."], 1, "error: cannot read wasm module .: Is a directory (os error 21)"),
    ]
}

/// Runs `render` with `args` and checks the exact failure: exit code, nothing on stdout, and
/// stderr exactly `line` and a newline.
fn fails_exactly(dir: &Path, args: &[String], code: i32, line: &str) {
    let mut all = vec!["render"];
    all.extend(args.iter().map(String::as_str));
    let out = deployer_in(dir, &all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{all:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{all:?} wrote to stdout");
    // A usage error (exit 2, clap's) ends with its usage line and `--help` hint.
    let said: String = stderr
        .lines()
        .filter(|l| {
            code != 2 || (!l.starts_with("Usage: ") && !l.starts_with("For more information"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(said, format!("{line}\n"), "{all:?}");
    if code == 2 {
        assert!(
            stderr.ends_with("For more information, try '--help'.\n"),
            "{all:?}: {stderr}"
        );
    }
}

/// Every bad mesh file and flag set gets its own exact line, whether the render was headed for
/// stdout, a new folder or a previous render, and neither folder is touched.
#[test]
fn bad_input_table_gives_exact_lines() {
    let dir = setup();
    for (name, text) in MESH_FILES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    // One byte over the ConfigMap limit, with the wasm magic so only the size is wrong.
    let mut big = b"\0asm\x01\0\0\0".to_vec();
    big.resize(1024 * 1024 + 1, 0);
    std::fs::write(dir.path().join("big.wasm"), big).unwrap();
    let ok = deployer_in(dir.path(), &with_module(&["--output", "previous"]));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let previous = snapshot(&dir.path().join("previous"));

    let table = bad_input_table();
    assert!(table.len() >= 15, "{} cases", table.len());
    for case in &table {
        fails_exactly(dir.path(), &case.args, case.code, &case.line);
        for target in ["fresh", "previous"] {
            let mut args = case.args.clone();
            args.extend(["--output".to_owned(), target.to_owned()]);
            fails_exactly(dir.path(), &args, case.code, &case.line);
        }
        assert!(
            !dir.path().join("fresh").exists(),
            "{:?} created fresh/",
            case.args
        );
        assert_eq!(
            snapshot(&dir.path().join("previous")),
            previous,
            "{:?}",
            case.args
        );
    }
}

/// A newcomer's mesh-file mistakes: each at the offending field's own line, naming it, with a
/// did-you-mean for a misspelt field, and every problem of a file at once (ten spelled out,
/// the rest counted).
#[test]
fn mesh_file_mistakes_name_their_line_and_field() {
    let dir = setup();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    fn render(name: &str) -> Vec<&str> {
        with_module(&["--file", name])
    }
    write(
        "timeout.yaml",
        "services:\n  - name: a\n    timeout: 2 seconds\n  - b\n",
    );
    fails(
        dir.path(),
        &render("timeout.yaml"),
        "services[0].timeout: duration `2 seconds` is not a whole number followed by ms, s, m or h (e.g. 300ms, 2s) at line 3 column 14",
    );
    write("service.yaml", "service:\n  - a\n");
    let line = fails(
        dir.path(),
        &render("service.yaml"),
        "unknown field `service`",
    );
    assert!(
        line.contains(" at line 1") && line.ends_with("; did you mean `services`?\n"),
        "{line}"
    );
    write(
        "retries.yaml",
        "services:\n  - name: a\n    retries: {attempts: 2, per_try_timout: 1s}\n",
    );
    fails(
        dir.path(),
        &render("retries.yaml"),
        "services[0].retries: unknown field `per_try_timout`, expected one of `attempts`, `per_try_timeout`, `retry_on` at line 3 column 28; did you mean `per_try_timeout`?",
    );
    write(
        "several.yaml",
        "namespace: Bad_NS\nservices:\n  - name: a\n    timeout: 0ms\n  - name: b\n    versions: [{name: v1, weight: 90}, {name: v2, weight: 20}]\n  - name: c\n    port: 70000\n  - a\n",
    );
    fails(
        dir.path(),
        &render("several.yaml"),
        "error: invalid mesh: 5 problems: several.yaml:1: namespace: namespace `Bad_NS` is not a DNS-1123 label (1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit); \
         several.yaml:4: services[0].timeout: service `a`: must be more than 0; \
         several.yaml:6: services[1].versions: service `b`: weights sum to 110, not 100; \
         several.yaml:8: services[2].port: service `c`: port 70000 is outside 1-65535; \
         several.yaml:9: services[3]: service name `a` is given twice\n",
    );
    // Twelve bad ports: ten spelled out, then the count of the rest.
    let many: String = (0..12)
        .map(|i| format!("  - name: s{i}\n    port: {}\n", 70000 + i))
        .collect();
    write("many.yaml", &format!("services:\n{many}"));
    let line = fails(
        dir.path(),
        &render("many.yaml"),
        "invalid mesh: 12 problems: many.yaml:3: services[0].port",
    );
    assert!(line.ends_with("; and 2 more\n"), "{line}");
    assert_eq!(line.matches("services[").count(), 10, "{line}");
    // A flag's value is not the file's line: the flag-given namespace is named without one.
    fails(
        dir.path(),
        &with_module(&["--file", "several.yaml", "--namespace", "Flag_NS"]),
        "problems: namespace `Flag_NS` is not a DNS-1123 label",
    );
}
