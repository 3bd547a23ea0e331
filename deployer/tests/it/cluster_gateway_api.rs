//! `apply`, `shift` and `delete` with `--api gateway-api` against the real control plane, whose
//! API server has the Gateway API CRDs (experimental channel, from `scripts/cluster.sh`) beside
//! Istio's and judges every HTTPRoute and Gateway by their schema and CEL rules.

use crate::common;
use crate::controlplane;

use controlplane::{one_line_error, shared_state, ControlPlane};
use serde_json::Value;

const CANARY: &str = "api: gateway-api\nreplicas: 1\nservices:\n  - name: service-a\n    versions:\n      - {name: v1, weight: 90}\n      - {name: v2, weight: 10}\n    match:\n      - {header: x-user-group, value: beta, version: v2}\n    timeout: 2s\n    retries: {attempts: 3, per_try_timeout: 1s}\n  - service-b\n";

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(cp: &ControlPlane, ns: &str, what: &str) -> Value {
    serde_json::from_str(&cp.kubectl_ok(&["get", what, "-n", ns, "-o", "json"], None)).unwrap()
}

/// Every object meshtally manages for the mesh of `ns` (its namespace's, and its Gateway in
/// istio-system), by `kind/name`, with its resourceVersion.
fn versions(cp: &ControlPlane, ns: &str) -> Vec<(String, String)> {
    let kinds = "serviceaccounts,services,deployments.apps,configmaps,httproutes.gateway.networking.k8s.io,gateways.gateway.networking.k8s.io,destinationrules.networking.istio.io,peerauthentications.security.istio.io,authorizationpolicies.security.istio.io,wasmplugins.extensions.istio.io";
    let managed = "app.kubernetes.io/managed-by=meshtally";
    let gateway = format!("{managed},app.kubernetes.io/instance={ns}");
    let mut items = Vec::new();
    for (kinds, namespace, selector) in [
        (kinds, ns, managed.to_owned()),
        (
            "gateways.gateway.networking.k8s.io",
            "istio-system",
            gateway,
        ),
    ] {
        let json = cp.kubectl_ok(
            &["get", kinds, "-n", namespace, "-l", &selector, "-o", "json"],
            None,
        );
        let list: Value = serde_json::from_str(&json).unwrap();
        items.extend(list["items"].as_array().unwrap().clone());
    }
    let mut out: Vec<(String, String)> = items
        .iter()
        // Deployments' status moves as kwok reports pods: not a change of ours.
        .filter(|o| o["kind"] != "Deployment")
        .map(|o| {
            // The Gateway CRD defaults its status conditions ("Waiting for controller"), and
            // the API server stores the Gateway anew on every apply although nothing in it
            // changes: a new resourceVersion, the same generation (so the same spec).
            let version = if o["kind"] == "Gateway" {
                format!("generation {}", o["metadata"]["generation"])
            } else {
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            let name = format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            );
            (name, version)
        })
        .collect();
    out.sort();
    out
}

/// (backend, weight) of each rule of an HTTPRoute, header rules marked.
fn splits(cp: &ControlPlane, ns: &str, route: &str) -> Vec<Vec<(String, u64)>> {
    let r: Value = serde_json::from_str(&cp.kubectl_ok(
        &[
            "get",
            "httproutes.gateway.networking.k8s.io",
            route,
            "-n",
            ns,
            "-o",
            "json",
        ],
        None,
    ))
    .unwrap();
    r["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            rule["backendRefs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    (
                        b["name"].as_str().unwrap().to_owned(),
                        b["weight"].as_u64().unwrap_or(1),
                    )
                })
                .collect()
        })
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, w)| ((*n).to_owned(), *w)).collect()
}

/// Applied, rolled out and Ready; applied again, nothing changes; `shift` moves the split of the
/// two HTTPRoutes that carry it and nothing else; `delete` removes every object of meshtally's
/// and spares a user's (an HTTPRoute of theirs included).
#[test]
fn gateway_api_apply_shift_and_delete() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = tempfile::tempdir().unwrap();
    common::fake_module(work.path());
    std::fs::write(work.path().join("canary.yaml"), CANARY).unwrap();
    let ns = "live-gateway-api";
    let apply = || {
        cp.deployer(
            work.path(),
            &[
                "apply",
                "--wasm-file",
                "meshtally_filter.wasm",
                "-f",
                "canary.yaml",
                "--namespace",
                ns,
                "--timeout",
                "180",
            ],
        )
    };
    // Istio's ingress gateway lives in istio-system, where the Gateway binds to it: without
    // that namespace (this control plane has Istio's CRDs, not Istio), apply stops first, in
    // one line; then the namespace an Istio install makes.
    one_line_error(
        &apply(),
        &["namespace istio-system does not exist", "--api istio"],
    );
    assert!(
        !cp.kubectl(&["get", "namespace", ns], None).status.success(),
        "the refused apply created the mesh's namespace"
    );
    cp.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=istio-install",
            "-f",
            "-",
        ],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n"),
    );
    // A VirtualService of meshtally's (an `--api istio` apply) would route beside the
    // HTTPRoutes: refused, in one line, until it is gone.
    cp.kubectl_ok(
        &["apply", "--server-side", "--field-manager=meshtally", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: service-a, namespace: {ns}, labels: {{app.kubernetes.io/managed-by: meshtally}}}}\n\
             spec: {{hosts: [service-a], http: [{{route: [{{destination: {{host: service-a}}}}]}}]}}\n"
        )),
    );
    one_line_error(
        &apply(),
        &[
            "holds meshtally's VirtualServices (service-a)",
            "deployer delete",
        ],
    );
    cp.kubectl_ok(
        &[
            "delete",
            "virtualservices.networking.istio.io",
            "service-a",
            "-n",
            ns,
        ],
        None,
    );
    let stdout = ok(&apply());
    assert!(stdout.contains("3 deployments rolled out"), "{stdout}");
    assert!(
        stdout.contains(&format!("to namespace {ns} (its Gateway to istio-system)")),
        "{stdout}"
    );
    let deployments = get(&cp, ns, "deployments");
    for d in deployments["items"].as_array().unwrap() {
        assert_eq!(
            d["status"]["readyReplicas"], d["spec"]["replicas"],
            "{}",
            d["metadata"]["name"]
        );
    }
    let routes = get(&cp, ns, "httproutes.gateway.networking.k8s.io");
    let names: Vec<&str> = routes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "meshtally-ingress-service-a",
            "meshtally-ingress-service-b",
            "service-a",
            "service-b"
        ]
    );
    let gateway: Value = serde_json::from_str(&cp.kubectl_ok(
        &[
            "get",
            "gateways.gateway.networking.k8s.io",
            &format!("meshtally-gateway-{ns}"),
            "-n",
            "istio-system",
            "-o",
            "json",
        ],
        None,
    ))
    .unwrap();
    assert_eq!(gateway["spec"]["gatewayClassName"], "istio");

    // Idempotent: a second server-side apply writes nothing.
    let before = versions(&cp, ns);
    ok(&apply());
    assert_eq!(
        versions(&cp, ns),
        before,
        "the second apply changed objects"
    );

    let canary = vec![
        pairs(&[("service-a-v2", 1)]),
        pairs(&[("service-a-v1", 90), ("service-a-v2", 10)]),
    ];
    assert_eq!(splits(&cp, ns, "service-a"), canary);
    let shift = |weights: &str, extra: &[&str]| {
        let mut args = vec![
            "shift",
            "service-a",
            weights,
            "--cluster",
            "--namespace",
            ns,
        ];
        args.extend(extra);
        cp.deployer(work.path(), &args)
    };
    let said = ok(&shift("v1=20,v2=80", &["-f", "canary.yaml"]));
    assert!(
        said.contains("httproute.gateway.networking.k8s.io/service-a patched")
            && said.contains(
                "httproute.gateway.networking.k8s.io/meshtally-ingress-service-a patched"
            ),
        "{said}"
    );
    let want = vec![
        pairs(&[("service-a-v2", 1)]),
        pairs(&[("service-a-v1", 20), ("service-a-v2", 80)]),
    ];
    assert_eq!(
        splits(&cp, ns, "service-a"),
        want,
        "the header rule keeps v2"
    );
    assert_eq!(splits(&cp, ns, "meshtally-ingress-service-a"), want);
    // Nothing else changed: every other object keeps its resourceVersion.
    let after = versions(&cp, ns);
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.0.as_str())
        .collect();
    assert_eq!(before.len(), after.len());
    assert_eq!(
        changed,
        [
            "HTTPRoute/live-gateway-api/meshtally-ingress-service-a",
            "HTTPRoute/live-gateway-api/service-a"
        ]
    );
    let again = ok(&shift("v1=20,v2=80", &["--api", "gateway-api"]));
    assert!(again.contains("already has these weights"), "{again}");
    let err = one_line_error(
        &shift("v1=50,v3=50", &["--api", "gateway-api"]),
        &["no version v3", "v1, v2"],
    );
    assert!(err.contains("service-a"), "{err}");
    // Without --api (and a file saying it) shift looks for VirtualServices, and says so.
    one_line_error(&shift("v1=50,v2=50", &[]), &["DestinationRule"]);

    // A user's objects in the namespace: an HTTPRoute and a ConfigMap of theirs.
    cp.kubectl_ok(
        &["apply", "--server-side", "--field-manager=someone", "-f", "-"],
        Some(&format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: theirs, namespace: {ns}}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: service-b}}]\n  rules: [{{backendRefs: [{{name: service-b, port: 8001}}]}}]\n"
        )),
    );
    cp.kubectl_ok(
        &[
            "create",
            "configmap",
            "not-ours",
            "-n",
            ns,
            "--from-literal=a=b",
        ],
        None,
    );
    // And beside meshtally's Gateway in istio-system, a Gateway of theirs.
    cp.kubectl_ok(
        &["apply", "--server-side", "--field-manager=someone", "-f", "-"],
        Some("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs, namespace: istio-system, labels: {app.kubernetes.io/managed-by: someone}}\nspec:\n  gatewayClassName: istio\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n"),
    );
    let stdout = ok(&cp.deployer(
        work.path(),
        &["delete", "--namespace", ns, "--timeout", "120"],
    ));
    assert!(stdout.contains(&format!("namespace {ns} kept")), "{stdout}");
    assert_eq!(
        versions(&cp, ns),
        Vec::<(String, String)>::new(),
        "meshtally objects left"
    );
    let left = cp.kubectl_ok(
        &[
            "get",
            "httproutes.gateway.networking.k8s.io,configmaps",
            "-n",
            ns,
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        left.contains("httproute.gateway.networking.k8s.io/theirs"),
        "{left}"
    );
    assert!(left.contains("configmap/not-ours"), "{left}");
    let gateways = cp.kubectl_ok(
        &[
            "get",
            "gateways.gateway.networking.k8s.io",
            "-n",
            "istio-system",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(
        gateways.trim(),
        "gateway.gateway.networking.k8s.io/theirs",
        "meshtally's Gateway goes, theirs stays"
    );
    ok(&cp.deployer(
        work.path(),
        &[
            "delete",
            "--namespace",
            ns,
            "--delete-namespace",
            "--timeout",
            "120",
        ],
    ));
}
