//! `deployer delete` through the kubectl stand-in, for what a control plane cannot show: the
//! exact calls — only label-selected deletes in the mesh's namespace, never `--all`, in the safe
//! order, the namespace looked at before it goes — and `--dry-run`, which runs no kubectl at
//! all. What a cluster can answer (what is left, what survives, which namespace goes, kinds of
//! missing CRDs skipped, unreachable clusters) is tested against the real control plane in
//! `cluster_live.rs`.

mod standin;

use standin::{one_line_failure, without_context, StandIn};

const SELECTOR: &str = "app.kubernetes.io/managed-by=meshtally";

fn delete(standin: &StandIn, extra: &[&str]) -> std::process::Output {
    let flags = standin.kubectl_flags();
    let mut args = vec!["delete"];
    args.extend(flags.iter().map(String::as_str));
    args.extend(extra);
    standin.run(&args)
}

/// The delete calls, without `--context`.
fn deletes(standin: &StandIn) -> Vec<Vec<String>> {
    standin
        .calls()
        .iter()
        .map(|c| without_context(c))
        .filter(|c| c[0] == "delete")
        .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

fn expected(kinds: &str, namespace: &str, foreground: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "delete",
        kinds,
        "-n",
        namespace,
        "-l",
        SELECTOR,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=300s",
    ]
    .map(str::to_owned)
    .to_vec();
    if foreground {
        args.push("--cascade=foreground".to_owned());
    }
    args
}

fn namespace_delete(namespace: &str) -> Vec<String> {
    [
        "delete",
        "namespace",
        &format!("--field-selector=metadata.name={namespace}"),
        "-l",
        SELECTOR,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=300s",
    ]
    .map(|s| s.to_owned())
    .to_vec()
}

#[test]
fn deletes_by_label_in_order_and_the_namespace_when_ours() {
    let standin = StandIn::new();
    let out = delete(&standin, &["--namespace", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = standin.calls();
    let first: Vec<Vec<&str>> = calls[..2].iter().map(|c| without_context(c)).collect();
    assert_eq!(first[0], ["get", "--raw=/readyz", "--request-timeout=10s"]);
    assert_eq!(first[1][..2], ["get", "crd"]);
    assert_eq!(
        deletes(&standin),
        [
            expected(
                "virtualservices.networking.istio.io,gateways.networking.istio.io",
                "shop",
                false
            ),
            expected("deployments.apps", "shop", true),
            expected(
                "services,destinationrules.networking.istio.io,wasmplugins.extensions.istio.io,configmaps,serviceaccounts",
                "shop",
                false
            ),
            expected(
                "authorizationpolicies.security.istio.io,peerauthentications.security.istio.io",
                "shop",
                false
            ),
            namespace_delete("shop"),
        ]
    );
    // The namespace is looked at before it is deleted.
    let get_ns = without_context(&calls[calls.len() - 2]).join(" ");
    assert_eq!(
        get_ns,
        "get namespace shop --ignore-not-found --show-managed-fields -o json"
    );
    for call in &calls {
        assert!(
            !call.iter().any(|a| a.starts_with("--all")),
            "unselected delete: {call:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("namespace shop included"), "{stdout}");
}

#[test]
fn dry_run_prints_the_commands_and_runs_none() {
    let standin = StandIn::new();
    let out = delete(&standin, &["--dry-run", "--namespace", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(standin.calls().is_empty(), "{:?}", standin.calls());
    let k = format!("{} --context kind-standin", standin::script().display());
    let want = format!(
        "{k} delete virtualservices.networking.istio.io,gateways.networking.istio.io -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
{k} delete deployments.apps -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s --cascade=foreground
{k} delete services,destinationrules.networking.istio.io,wasmplugins.extensions.istio.io,configmaps,serviceaccounts -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
{k} delete authorizationpolicies.security.istio.io,peerauthentications.security.istio.io -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
# then, only if meshtally alone manages namespace shop (checked with `{k} get namespace shop --ignore-not-found --show-managed-fields -o json`):
{k} delete namespace --field-selector=metadata.name=shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn no_kubectl_is_one_line() {
    let bare = StandIn::new().without_kubectl();
    one_line_failure(&bare.run(&["delete"]), "kubectl not found on PATH");
}
