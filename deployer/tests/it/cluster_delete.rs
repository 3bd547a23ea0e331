//! `deployer delete` through the kubectl stand-in, for what a control plane cannot show: the
//! exact calls — only label-selected deletes in the mesh's namespace, never `--all`, in the safe
//! order, the namespace and what lives in it looked at before it goes — and `--dry-run`, which
//! only reads. What a cluster can answer (what is left, what survives, which namespace goes, kinds of
//! missing CRDs skipped, unreachable clusters) is tested against the real control plane in
//! `cluster_live.rs`.

use crate::standin;

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
            // The Gateway API render's Gateway, beside Istio's ingress gateway: this mesh's only.
            [
                "delete",
                "gateways.gateway.networking.k8s.io",
                "-n",
                "istio-system",
                "-l",
                &format!("{SELECTOR},app.kubernetes.io/instance=shop"),
                "--ignore-not-found",
                "--wait=true",
                "--timeout=300s",
            ]
            .map(str::to_owned)
            .to_vec(),
            expected(
                "virtualservices.networking.istio.io,gateways.networking.istio.io,httproutes.gateway.networking.k8s.io",
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
    // The namespace, and what lives in it, are looked at before it is deleted.
    let looked: Vec<String> = calls[calls.len() - 4..calls.len() - 1]
        .iter()
        .map(|c| without_context(c).join(" "))
        .collect();
    assert_eq!(
        looked,
        [
            "get namespace shop --ignore-not-found --show-managed-fields -o json",
            "api-resources --verbs=list --namespaced -o name",
            "get configmaps,endpoints,pods,serviceaccounts,services,virtualservices.networking.istio.io \
             -n shop --ignore-not-found -o json",
        ]
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
fn dry_run_prints_the_commands_and_the_namespace_decision_and_deletes_nothing() {
    let standin = StandIn::new();
    let out = delete(&standin, &["--dry-run", "--namespace", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only reads: the namespace and what lives in it.
    for call in standin.calls() {
        let call = without_context(&call);
        assert!(call[0] == "get" || call[0] == "api-resources", "{call:?}");
    }
    let k = format!("{} --context kind-standin", standin::script().display());
    let delete_lines = format!(
        "{k} delete gateways.gateway.networking.k8s.io -n istio-system -l {SELECTOR},app.kubernetes.io/instance=shop --ignore-not-found --wait=true --timeout=300s
{k} delete virtualservices.networking.istio.io,gateways.networking.istio.io,httproutes.gateway.networking.k8s.io -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
{k} delete deployments.apps -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s --cascade=foreground
{k} delete services,destinationrules.networking.istio.io,wasmplugins.extensions.istio.io,configmaps,serviceaccounts -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
{k} delete authorizationpolicies.security.istio.io,peerauthentications.security.istio.io -n shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
"
    );
    let want = format!(
        "{delete_lines}# then namespace shop would be deleted (nothing but meshtally's objects lives in it):
{k} delete namespace --field-selector=metadata.name=shop -l {SELECTOR} --ignore-not-found --wait=true --timeout=300s
"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    // A user's object in it: the same decision a real delete would make, said the same way.
    let objects = standin.dir.path().join("objects.json");
    std::fs::write(
        &objects,
        r#"{"kind":"List","items":[{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"keep-me"}}]}"#,
    )
    .unwrap();
    let standin = standin.env("STANDIN_OBJECTS_JSON", &objects);
    let out = delete(&standin, &["--dry-run", "--namespace", "shop"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{delete_lines}# namespace shop would be kept: configmap/keep-me was not created by meshtally\n"
        )
    );
    let out = delete(&standin, &["--namespace", "shop"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("namespace shop kept: configmap/keep-me was not created by meshtally"),
        "{stdout}"
    );
    assert!(
        !deletes(&standin).iter().any(|c| c[1] == "namespace"),
        "the namespace was deleted"
    );
    // --delete-namespace: by name, whatever lives in it.
    let out = delete(&standin, &["--namespace", "shop", "--delete-namespace"]);
    assert!(out.status.success());
    assert!(deletes(&standin)
        .iter()
        .any(|c| c[..3] == ["delete", "namespace", "shop"]));
}

#[test]
fn no_kubectl_is_one_line() {
    let bare = StandIn::new().without_kubectl();
    one_line_failure(&bare.run(&["delete"]), "kubectl not found on PATH");
}
