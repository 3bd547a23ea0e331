//! `deployer apply` through the kubectl stand-in, for what a control plane cannot show: the
//! exact calls and their order (checks, the Namespace, the rest, the rollouts), the documents
//! sent (the render, byte for byte), the field manager and `--context` on every call, a load
//! balancer's address (the loopback control plane has no load-balancer controller), kubectl
//! looked up on PATH or not there at all, and `--dry-run`, which runs no kubectl. What a cluster
//! can answer (objects, rollouts, conflicts, validation, every failed check) is tested against
//! the real control plane in `cluster_live.rs`.

use crate::common;
use crate::standin;

use standin::{one_line_failure, without_context, StandIn};

const MODULE: [&str; 2] = ["--wasm-file", "meshtally_filter.wasm"];
const CRDS: [&str; 6] = [
    "gateways.networking.istio.io",
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
    "wasmplugins.extensions.istio.io",
];

fn apply(standin: &StandIn, extra: &[&str]) -> std::process::Output {
    let flags = standin.kubectl_flags();
    let mut args = vec!["apply"];
    args.extend(MODULE);
    args.extend(flags.iter().map(String::as_str));
    args.extend(extra);
    standin.run(&args)
}

fn render(standin: &StandIn, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["render"];
    args.extend(MODULE);
    args.extend(extra);
    let out = common::deployer_in(standin.work.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn applies_namespace_first_then_the_rest_then_waits_for_each_rollout() {
    let standin = StandIn::new();
    let out = apply(&standin, &["--timeout", "120"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let calls = standin.calls();
    let args: Vec<Vec<&str>> = calls.iter().map(|c| without_context(c)).collect();
    let mut crd_check = vec!["get", "crd"];
    crd_check.extend(CRDS);
    crd_check.extend(["--ignore-not-found", "-o", "name", "--request-timeout=10s"]);
    let apply = [
        "apply",
        "--server-side",
        "--field-manager=meshtally",
        "-f",
        "-",
    ];
    assert_eq!(args.len(), 16, "{args:#?}");
    assert_eq!(args[0], ["get", "--raw=/readyz", "--request-timeout=10s"]);
    assert_eq!(args[1], crd_check);
    assert_eq!(
        args[2],
        [
            "get",
            "namespace",
            "istio-demo",
            "--ignore-not-found",
            "-o",
            "jsonpath={.status.phase}",
            "--request-timeout=10s"
        ]
    );
    assert_eq!(args[3], apply);
    assert_eq!(
        args[4][..3],
        [
            "wait",
            "--for=jsonpath={.status.phase}=Active",
            "namespace/istio-demo"
        ]
    );
    assert!(timeout_within(args[4][3], 120), "{:?}", args[4]);
    assert_eq!(args[5], apply);
    for (call, service) in args[6..9]
        .iter()
        .zip(["service-a", "service-b", "service-c"])
    {
        let deployment = format!("deployment/{service}");
        assert_eq!(
            call[..5],
            ["rollout", "status", deployment.as_str(), "-n", "istio-demo"]
        );
        assert!(timeout_within(call[5], 120), "{call:?}");
        assert_eq!(call.len(), 6);
        assert!(
            stderr.contains(&format!("  {service}  rolled out")),
            "{stderr}"
        );
    }
    // After the rollouts, the prune: which kinds the cluster serves, then meshtally's objects
    // of each of `delete`'s kind groups, where `delete` looks (none here: nothing to prune).
    let mut all_crds = vec!["get", "crd"];
    all_crds.extend(CRDS);
    all_crds.extend([
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "--ignore-not-found",
        "-o",
        "name",
        "--request-timeout=10s",
    ]);
    assert_eq!(args[9], all_crds);
    let listed: Vec<(&str, &str)> = args[10..15]
        .iter()
        .map(|call| {
            assert_eq!(call[0], "get", "{call:?}");
            assert_eq!(call[2], "-n", "{call:?}");
            assert!(
                call[4..] == ["-l", "app.kubernetes.io/managed-by=meshtally", "--ignore-not-found", "-o", "json"]
                    || call[4..]
                        == [
                            "-l",
                            "app.kubernetes.io/managed-by=meshtally,app.kubernetes.io/instance=istio-demo",
                            "--ignore-not-found",
                            "-o",
                            "json"
                        ],
                "{call:?}"
            );
            (call[1], call[3])
        })
        .collect();
    assert_eq!(
        listed[0],
        ("gateways.gateway.networking.k8s.io", "istio-system")
    );
    assert!(listed[2..].iter().all(|(_, ns)| *ns == "istio-demo"));
    assert_eq!(args[15][..4], ["get", "svc", "istio-ingressgateway", "-n"]);
    assert!(!stderr.contains("pruning"), "{stderr}");

    // The two applies together are the render, cut after its first document, the Namespace.
    let namespace = standin.stdin_of(4);
    let rest = standin.stdin_of(6);
    let text = String::from_utf8_lossy(&namespace);
    assert_eq!(text.matches("\n---\n").count() + 1, 1, "{text}");
    assert!(text.contains("\nkind: Namespace\n"), "{text}");
    assert!(!String::from_utf8_lossy(&rest).contains("kind: Namespace"));
    assert_eq!([namespace, rest].concat(), render(&standin, &[]));

    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "applied 25 objects to namespace istio-demo; 3 deployments rolled out",
        "kubectl --context kind-standin -n istio-system port-forward svc/istio-ingressgateway 8080:80",
        "deployer verify --gateway http://127.0.0.1:8080 --services 3",
        "deployer verify --cluster --context kind-standin --services 3",
        "deployer stats --cluster --context kind-standin --namespace istio-demo",
    ] {
        assert!(stdout.contains(want), "{stdout} lacks {want:?}");
    }
}

/// `--timeout=<n>s` with 0 < n <= max.
fn timeout_within(flag: &str, max: u64) -> bool {
    flag.strip_prefix("--timeout=")
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|t| t.parse::<u64>().ok())
        .is_some_and(|t| t > 0 && t <= max)
}

#[test]
fn kubectl_from_path_and_mesh_flags_pass_through() {
    let standin = StandIn::new().on_path().env("STANDIN_LB", "203.0.113.7");
    let mesh = [
        "--names",
        "web,api",
        "--namespace",
        "shop",
        "--replicas",
        "1",
    ];
    let out = apply(&standin, &mesh);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = standin.calls();
    let rollouts: Vec<&str> = calls
        .iter()
        .map(|c| without_context(c))
        .filter(|c| c[..2] == ["rollout", "status"])
        .map(|c| c[2])
        .collect();
    assert_eq!(rollouts, ["deployment/web", "deployment/api"]);
    assert_eq!(
        [standin.stdin_of(4), standin.stdin_of(6)].concat(),
        render(&standin, &mesh)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("deployer verify --gateway http://203.0.113.7 --names web,api"),
        "{stdout}"
    );
    assert!(stdout.contains("--namespace shop"), "{stdout}");
}

#[test]
fn dry_run_is_the_render_and_runs_no_kubectl() {
    let standin = StandIn::new();
    let mesh = ["--services", "4", "--namespace", "dry"];
    let mut args = vec!["apply", "--dry-run"];
    args.extend(MODULE);
    args.extend(mesh);
    let flags = standin.kubectl_flags();
    args.extend(flags.iter().map(String::as_str));
    let out = standin.run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, render(&standin, &mesh));
    assert!(out.stderr.is_empty());
    assert!(standin.calls().is_empty(), "{:?}", standin.calls());

    // Not even a kubectl to find.
    let bare = StandIn::new().without_kubectl();
    let out = bare.run(&["apply", "--dry-run", "--wasm-file", "meshtally_filter.wasm"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, render(&bare, &[]));
}

#[test]
fn no_kubectl_is_one_line() {
    let standin = StandIn::new().without_kubectl();
    let out = standin.run(&["apply", "--wasm-file", "meshtally_filter.wasm"]);
    one_line_failure(&out, "kubectl not found on PATH: install it");
    let out = standin.run(&[
        "apply",
        "--wasm-file",
        "meshtally_filter.wasm",
        "--kubectl",
        "/nonexistent/kubectl",
    ]);
    one_line_failure(
        &out,
        "kubectl /nonexistent/kubectl does not exist or is not an executable file",
    );
}
