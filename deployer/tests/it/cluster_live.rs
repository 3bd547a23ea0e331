//! `deployer apply` and `delete` against a real control plane (`controlplane`): kube-apiserver
//! with the pinned Istio CRDs judging every object (schema and CEL), the controller manager
//! rolling Deployments out, the scheduler placing pods and kwok making them Ready. Each test
//! has a namespace of its own.

use crate::common;
use crate::controlplane;

use std::path::Path;

use controlplane::{exclusive_state, one_line_error, shared_state, ControlPlane};
use serde_json::Value;

/// A work dir holding a stand-in filter module (`--wasm-file`), so renders need no `make wasm`.
fn work() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::fake_module(dir.path());
    dir
}

fn apply(cp: &ControlPlane, work: &Path, mesh: &[&str], extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--wasm-file", "meshtally_filter.wasm"];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "180"]);
    }
    args.extend(mesh);
    args.extend(extra);
    cp.deployer(work, &args)
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the cluster holds of a render: `kubectl get -f` on the rendered stream, as JSON items.
fn live_objects(cp: &ControlPlane, work: &Path, mesh: &[&str]) -> Vec<Value> {
    let mut args = vec!["render", "--wasm-file", "meshtally_filter.wasm"];
    args.extend(mesh);
    let rendered = common::deployer_in(work, &args);
    let stream = String::from_utf8(ok_bytes(&rendered)).unwrap();
    let file = work.join("rendered.yaml");
    std::fs::write(&file, &stream).unwrap();
    let json = cp.kubectl_ok(
        &[
            "get",
            "-f",
            file.to_str().unwrap(),
            "--show-managed-fields",
            "-o",
            "json",
        ],
        None,
    );
    let list: Value = serde_json::from_str(&json).unwrap();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let documents = stream.lines().filter(|l| *l == "---").count();
    assert_eq!(items.len(), documents, "kubectl get -f found fewer objects");
    items
}

fn ok_bytes(out: &std::process::Output) -> Vec<u8> {
    ok(out);
    out.stdout.clone()
}

fn name_of(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// 3 and 7 services: every object is there, applied by field manager `meshtally`; every
/// Deployment rolls out (pods scheduled and Ready); a second apply changes nothing.
fn apply_mesh(services: &str) {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();
    let ns = format!("live-apply-{services}");
    let mesh = ["--services", services, "--namespace", &ns];
    let stdout = ok(&apply(&cp, work.path(), &mesh, &[]));
    assert!(
        stdout.contains(&format!("{services} deployments rolled out")),
        "{stdout}"
    );

    let before = live_objects(&cp, work.path(), &mesh);
    for object in &before {
        let managers = object["metadata"]["managedFields"].as_array().unwrap();
        assert!(
            managers
                .iter()
                .any(|m| m["manager"] == "meshtally" && m["operation"] == "Apply"),
            "{} was not applied by meshtally: {managers:?}",
            name_of(object)
        );
    }
    let deployments: Vec<&Value> = before
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .collect();
    assert_eq!(deployments.len().to_string(), services);
    for d in &deployments {
        let status = &d["status"];
        assert_eq!(
            status["readyReplicas"],
            d["spec"]["replicas"],
            "{}",
            name_of(d)
        );
        assert_eq!(
            status["updatedReplicas"],
            d["spec"]["replicas"],
            "{}",
            name_of(d)
        );
    }
    let pods: Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "pods", "-n", &ns, "-o", "json"], None))
            .unwrap();
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2 * deployments.len(), "2 replicas each");
    for pod in pods {
        assert_eq!(pod["spec"]["nodeName"], "kwok-node-0");
        let ready = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "pod {} is not Ready", pod["metadata"]["name"]);
    }

    // Server-side apply of the same objects is a no-op: no spec changes (generation), and no
    // write at all to what no controller updates (resourceVersion).
    ok(&apply(&cp, work.path(), &mesh, &[]));
    let after = live_objects(&cp, work.path(), &mesh);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(name_of(b), name_of(a));
        assert_eq!(
            b["metadata"]["generation"],
            a["metadata"]["generation"],
            "{}",
            name_of(b)
        );
        if !["Deployment", "Namespace"].contains(&b["kind"].as_str().unwrap_or_default()) {
            assert_eq!(
                b["metadata"]["resourceVersion"],
                a["metadata"]["resourceVersion"],
                "the second apply changed {}",
                name_of(b)
            );
        }
    }
}

#[test]
fn apply_three_services() {
    apply_mesh("3");
}

#[test]
fn apply_seven_services() {
    apply_mesh("7");
}

/// A field another manager took is a conflict, reported in one line with the way out; and
/// `--force-conflicts` takes it back.
#[test]
fn conflicting_field_manager() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();
    let mesh = [
        "--services",
        "1",
        "--replicas",
        "1",
        "--namespace",
        "live-conflict",
    ];
    ok(&apply(&cp, work.path(), &mesh, &[]));
    let theirs = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: service-a\n  \
                  namespace: live-conflict\nspec:\n  replicas: 3\n";
    cp.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=other-team",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(theirs),
    );
    let out = apply(&cp, work.path(), &mesh, &[]);
    one_line_error(
        &out,
        &[
            "Apply failed with 1 conflict",
            "conflict with \"other-team\"",
            ".spec.replicas",
            "deployer apply --force-conflicts",
        ],
    );
    ok(&apply(&cp, work.path(), &mesh, &["--force-conflicts"]));
    let replicas = cp.kubectl_ok(
        &[
            "get",
            "deployment/service-a",
            "-n",
            "live-conflict",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert_eq!(replicas, "1");
}

/// The Istio CRDs' own validation runs on the server: the OCI-delivered WasmPlugin (url and
/// sha256) is accepted, a url their CEL rule rejects is refused with the server's message, in
/// one line.
#[test]
fn istio_crd_validation_on_the_server() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();
    let digest = "0123456789abcdef".repeat(4);
    let good = format!("oci://registry.local:5000/meshtally/filter@sha256:{digest}");
    let mesh = [
        "--services",
        "1",
        "--replicas",
        "1",
        "--namespace",
        "live-crd",
    ];
    ok(&cp.deployer(
        work.path(),
        &[
            &["apply", "--timeout", "120", "--wasm-url", &good][..],
            &mesh,
        ]
        .concat(),
    ));
    let sha = cp.kubectl_ok(
        &[
            "get",
            "wasmplugins.extensions.istio.io",
            "-n",
            "live-crd",
            "-o",
            "jsonpath={.items[0].spec.sha256}",
        ],
        None,
    );
    assert_eq!(sha, digest);

    // deployer's own checks let this through (an oci:// url without blanks); Go's URL parser
    // in the CRD's CEL rule does not (a bad %-escape).
    let broken = "oci://registry.local:5000/meshtally/filter%zz";
    let out = cp.deployer(
        work.path(),
        &[
            &["apply", "--timeout", "120", "--wasm-url", broken][..],
            &mesh,
        ]
        .concat(),
    );
    one_line_error(
        &out,
        &[
            "the API server refused the mesh",
            "WasmPlugin",
            "url must have schema one of [http, https, file, oci]",
        ],
    );
}

/// Delete removes what apply made and nothing else: a ConfigMap without our labels stays, and
/// so does a namespace someone else created, or one meshtally made that holds a user's object;
/// a namespace meshtally alone made and alone fills goes.
/// A second apply prunes what the first made and the new render has not (a service dropped
/// from the mesh, the single `meshtally` WasmPlugin of an older release), after the rollouts,
/// and leaves alone what meshtally's label does not mark (a user's WasmPlugin) and what lives
/// in another namespace.
#[test]
fn apply_prunes_what_the_render_no_longer_has() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();
    let ns = "live-prune";
    let three = ["--services", "3", "--replicas", "1", "--namespace", ns];
    ok(&apply(&cp, work.path(), &three, &[]));
    // What an older release applied: one WasmPlugin for both sides, with meshtally's label.
    let plugin = |name: &str, labelled: bool| {
        let labels = if labelled {
            "\n  labels:\n    app.kubernetes.io/managed-by: meshtally"
        } else {
            ""
        };
        format!(
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: {name}\n  \
             namespace: {ns}{labels}\nspec:\n  url: file:///var/local/meshtally/meshtally_filter.wasm\n"
        )
    };
    let old = format!(
        "{}---\n{}",
        plugin("meshtally", true),
        plugin("theirs", false)
    );
    cp.kubectl_ok(&["apply", "-f", "-"], Some(&old));

    let two = ["--services", "2", "--replicas", "1", "--namespace", ns];
    let stdout = ok(&apply(&cp, work.path(), &two, &[]));
    assert!(stdout.contains("2 deployments rolled out"), "{stdout}");
    assert!(stdout.contains("; pruned "), "{stdout}");
    for gone in [
        "WasmPlugin live-prune/meshtally",
        "Deployment live-prune/service-c",
        "Service live-prune/service-c",
        "ServiceAccount live-prune/service-c",
    ] {
        assert!(stdout.contains(gone), "{stdout} does not name {gone}");
    }
    let left = cp.kubectl_ok(
        &[
            "get",
            "deployments,services,serviceaccounts,wasmplugins.extensions.istio.io",
            "-n",
            ns,
            "-o",
            "name",
        ],
        None,
    );
    let left: Vec<&str> = left.lines().collect();
    assert!(!left.iter().any(|l| l.ends_with("/service-c")), "{left:?}");
    assert!(
        !left.contains(&"wasmplugin.extensions.istio.io/meshtally"),
        "{left:?}"
    );
    for kept in [
        "wasmplugin.extensions.istio.io/theirs",
        "wasmplugin.extensions.istio.io/meshtally-outbound",
        "wasmplugin.extensions.istio.io/meshtally-inbound",
        "deployment.apps/service-b",
    ] {
        assert!(left.contains(&kept), "{kept} is gone: {left:?}");
    }
    // What is left is the render, exactly: a third apply has nothing to prune.
    let stdout = ok(&apply(&cp, work.path(), &two, &[]));
    assert!(!stdout.contains("pruned"), "{stdout}");
    // Every rendered object is there (live_objects checks the count).
    live_objects(&cp, work.path(), &two);
}

#[test]
fn delete_removes_exactly_what_apply_created() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();

    // Theirs: a namespace created before apply, holding an object of theirs.
    cp.kubectl_ok(&["create", "namespace", "live-theirs"], None);
    cp.kubectl_ok(
        &[
            "create",
            "configmap",
            "not-ours",
            "-n",
            "live-theirs",
            "--from-literal=a=b",
        ],
        None,
    );
    let theirs = [
        "--services",
        "2",
        "--replicas",
        "1",
        "--namespace",
        "live-theirs",
    ];
    ok(&apply(&cp, work.path(), &theirs, &[]));
    let stdout = ok(&cp.deployer(
        work.path(),
        &["delete", "--namespace", "live-theirs", "--timeout", "120"],
    ));
    assert!(
        stdout.contains("namespace live-theirs kept: it is also managed by kubectl-create"),
        "{stdout}"
    );
    let left = cp.kubectl_ok(
        &[
            "get",
            "all,configmaps,serviceaccounts,gateways.networking.istio.io,virtualservices.networking.istio.io,destinationrules.networking.istio.io,peerauthentications.security.istio.io,authorizationpolicies.security.istio.io,wasmplugins.extensions.istio.io",
            "-n",
            "live-theirs",
            "-l",
            "app.kubernetes.io/managed-by=meshtally",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(left.trim(), "", "meshtally objects left behind");
    let survivors = cp.kubectl_ok(
        &["get", "configmap", "-n", "live-theirs", "-o", "name"],
        None,
    );
    assert!(survivors.contains("configmap/not-ours"), "{survivors}");
    cp.kubectl_ok(&["get", "namespace", "live-theirs"], None);

    // Ours: apply created the namespace, so delete removes it.
    let ours = [
        "--services",
        "2",
        "--replicas",
        "1",
        "--namespace",
        "live-ours",
    ];
    ok(&apply(&cp, work.path(), &ours, &[]));
    let stdout = ok(&cp.deployer(
        work.path(),
        &["delete", "--namespace", "live-ours", "--timeout", "120"],
    ));
    assert!(stdout.contains("namespace live-ours included"), "{stdout}");
    let gone = cp.kubectl(&["get", "namespace", "live-ours"], None);
    assert!(!gone.status.success(), "namespace live-ours still exists");

    // Ours, but a user's object lives in it: the namespace stays, and so does the object; the
    // dry run says the same beforehand; --delete-namespace takes it all when asked.
    let kept = [
        "--services",
        "4",
        "--replicas",
        "1",
        "--namespace",
        "live-kept",
    ];
    ok(&apply(&cp, work.path(), &kept, &[]));
    cp.kubectl_ok(
        &[
            "create",
            "configmap",
            "keep-me",
            "-n",
            "live-kept",
            "--from-literal=a=b",
        ],
        None,
    );
    let why = "namespace live-kept kept: configmap/keep-me was not created by meshtally";
    let dry = ok(&cp.deployer(
        work.path(),
        &["delete", "--namespace", "live-kept", "--dry-run"],
    ));
    assert!(
        dry.contains(
            "# namespace live-kept would be kept: configmap/keep-me was not created by meshtally"
        ),
        "{dry}"
    );
    let stdout = ok(&cp.deployer(
        work.path(),
        &["delete", "--namespace", "live-kept", "--timeout", "120"],
    ));
    assert!(stdout.contains(why), "{stdout}");
    let left = cp.kubectl_ok(
        &[
            "get",
            "configmaps,services,deployments",
            "-n",
            "live-kept",
            "-o",
            "name",
        ],
        None,
    );
    assert!(left.contains("configmap/keep-me"), "{left}");
    assert!(
        !left.contains("service/"),
        "meshtally objects left behind: {left}"
    );
    let stdout = ok(&cp.deployer(
        work.path(),
        &[
            "delete",
            "--namespace",
            "live-kept",
            "--delete-namespace",
            "--timeout",
            "120",
        ],
    ));
    assert!(stdout.contains("namespace live-kept included"), "{stdout}");
    let gone = cp.kubectl(&["get", "namespace", "live-kept"], None);
    assert!(!gone.status.success(), "namespace live-kept still exists");

    // The namespace from a mesh file; one that is not there is said so, and that is no error.
    std::fs::write(work.path().join("mesh.yaml"), "namespace: live-absent\n").unwrap();
    let stdout = ok(&cp.deployer(work.path(), &["delete", "-f", "mesh.yaml"]));
    assert!(
        stdout.contains("deleted 0 objects; namespace live-absent does not exist"),
        "{stdout}"
    );
}

/// A terminating namespace, a rollout that cannot finish: one line each, naming what to do.
#[test]
fn terminating_namespace_and_stuck_rollout() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();

    // A namespace held in Terminating by a finalizer on an object in it.
    cp.kubectl_ok(&["create", "namespace", "live-terminating"], None);
    cp.kubectl_ok(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: \
             live-terminating\n  finalizers: [meshtally.test/hold]\n",
        ),
    );
    cp.kubectl_ok(
        &["delete", "namespace", "live-terminating", "--wait=false"],
        None,
    );
    let out = apply(
        &cp,
        work.path(),
        &["--services", "1", "--namespace", "live-terminating"],
        &[],
    );
    one_line_error(
        &out,
        &[
            "namespace live-terminating is terminating",
            "kubectl get namespace live-terminating",
        ],
    );
    cp.kubectl_ok(
        &[
            "patch",
            "configmap",
            "held",
            "-n",
            "live-terminating",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
        None,
    );

    // A quota of one pod: the second replica is never created.
    cp.kubectl_ok(&["create", "namespace", "live-stuck"], None);
    cp.kubectl_ok(
        &[
            "create",
            "quota",
            "one-pod",
            "-n",
            "live-stuck",
            "--hard=pods=1",
        ],
        None,
    );
    let out = apply(
        &cp,
        work.path(),
        &[
            "--services",
            "1",
            "--replicas",
            "2",
            "--namespace",
            "live-stuck",
        ],
        &["--timeout", "15"],
    );
    one_line_error(
        &out,
        &[
            "deployment service-a did not roll out within the 15s --timeout",
            "ReplicaFailure=True (FailedCreate)",
            "exceeded quota: one-pod",
            "kubectl -n live-stuck describe deployment service-a",
        ],
    );
}

/// Without the Istio CRDs, apply stops before sending anything and says how to install Istio,
/// and delete leaves out the kinds that cannot exist. Deleting a CRD is cluster-wide, so this
/// test runs alone and puts it back.
#[test]
fn missing_istio_crds() {
    let _state = exclusive_state();
    let cp = ControlPlane::shared();
    let work = work();
    let crd = "wasmplugins.extensions.istio.io";
    let applied = [
        "--services",
        "1",
        "--replicas",
        "1",
        "--namespace",
        "live-no-wasm",
    ];
    ok(&apply(&cp, work.path(), &applied, &[]));
    let saved = cp.kubectl_ok(&["get", "crd", crd, "-o", "yaml"], None);
    cp.kubectl_ok(&["delete", "crd", crd, "--wait=true"], None);
    let out = apply(&cp, work.path(), &["--namespace", "live-no-istio"], &[]);
    // Delete skips the kind whose CRD is gone and removes the rest, namespace included.
    let deleted = cp.deployer(
        work.path(),
        &["delete", "--namespace", "live-no-wasm", "--timeout", "120"],
    );
    // Put it back before asserting, so a failure here cannot break the other tests.
    let restore: String = saved
        .lines()
        .filter(|l| !l.trim_start().starts_with("resourceVersion:"))
        .map(|l| format!("{l}\n"))
        .collect();
    cp.kubectl_ok(&["create", "-f", "-"], Some(&restore));
    cp.kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}"),
            "--timeout=60s",
        ],
        None,
    );
    one_line_error(
        &out,
        &[
            "Istio is not installed in this cluster (missing CRDs: wasmplugins.extensions.istio.io)",
            "istioctl install",
        ],
    );
    let ns = cp.kubectl(&["get", "namespace", "live-no-istio"], None);
    assert!(!ns.status.success(), "apply created the namespace anyway");
    let stdout = ok(&deleted);
    assert!(
        stdout.contains("namespace live-no-wasm included"),
        "{stdout}"
    );
}

/// The API server down, the kubeconfig missing: one line each, before anything is sent.
#[test]
fn no_cluster_to_talk_to() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();

    // The real kubeconfig, pointed at a loopback port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = std::fs::read_to_string(&cp.kubeconfig).unwrap();
    let down = work.path().join("down.kubeconfig");
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &down,
        text.replace(&server, &format!("https://127.0.0.1:{port}")),
    )
    .unwrap();
    let out = cp.deployer_env(
        work.path(),
        &["apply", "--wasm-file", "meshtally_filter.wasm"],
        &[("KUBECONFIG", down.as_os_str())],
    );
    one_line_error(
        &out,
        &[
            "cannot reach the cluster of the current kubectl context",
            &format!("127.0.0.1:{port}"),
            "kubectl cluster-info",
        ],
    );

    let missing = work.path().join("no-such-kubeconfig");
    for command in [
        &["apply", "--wasm-file", "meshtally_filter.wasm"][..],
        &["delete"],
    ] {
        let out = cp.deployer_env(work.path(), command, &[("KUBECONFIG", missing.as_os_str())]);
        one_line_error(
            &out,
            &[
                &format!(
                    "no kubeconfig: KUBECONFIG={} does not exist",
                    missing.display()
                ),
                "make cluster-up",
            ],
        );
    }
}

/// The `http` routes of a VirtualService on the cluster.
fn routes(cp: &ControlPlane, ns: &str, name: &str) -> Vec<Value> {
    let json = cp.kubectl_ok(
        &["get", "virtualservice", name, "-n", ns, "-o", "json"],
        None,
    );
    let vs: Value = serde_json::from_str(&json).unwrap();
    vs["spec"]["http"].as_array().cloned().unwrap_or_default()
}

/// (subset, weight) of the route named `route` that goes to service-a.
fn split(routes: &[Value], route: &str) -> Vec<(String, u64)> {
    let route = routes.iter().find(|r| r["name"] == route).unwrap();
    route["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"]["subset"].as_str().unwrap().to_owned(),
                d["weight"].as_u64().unwrap_or(100),
            )
        })
        .collect()
}

/// `deployer shift --kubectl` on an applied canary patches the split in place, in the in-mesh
/// VirtualService and in the gateway's, the API server (with Istio's CRDs and CEL rules)
/// accepting each patch; the header-matched route keeps its version; a version the
/// DestinationRule has no subset for is refused before anything is patched.
#[test]
fn shift_patches_the_virtual_services_in_place() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = work();
    let ns = "live-shift";
    std::fs::write(
        work.path().join("canary.yaml"),
        "services:\n  - name: service-a\n    versions:\n      - {name: v1, weight: 90}\n      - {name: v2, weight: 10}\n    match:\n      - {header: x-user-group, value: beta, version: v2}\n  - service-b\n",
    )
    .unwrap();
    let mesh = ["-f", "canary.yaml", "--namespace", ns];
    ok(&apply(&cp, work.path(), &mesh, &[]));
    let canary = vec![("v1".to_owned(), 90), ("v2".to_owned(), 10)];
    assert_eq!(split(&routes(&cp, ns, "service-a"), "service-a"), canary);
    let beta = "service-a-x-user-group-v2";
    let only_v2 = vec![("v2".to_owned(), 100)];
    assert_eq!(split(&routes(&cp, ns, "service-a"), beta), only_v2);
    let shift = |weights: &str| {
        cp.deployer(
            work.path(),
            &[
                "shift",
                "service-a",
                weights,
                "--cluster",
                "--namespace",
                ns,
            ],
        )
    };
    let said = ok(&shift("v1=20,v2=80"));
    assert!(
        said.contains("virtualservice.networking.istio.io/service-a patched")
            && said.contains("virtualservice.networking.istio.io/meshtally-ingress patched"),
        "{said}"
    );
    let want = vec![("v1".to_owned(), 20), ("v2".to_owned(), 80)];
    assert_eq!(split(&routes(&cp, ns, "service-a"), "service-a"), want);
    assert_eq!(
        split(&routes(&cp, ns, "meshtally-ingress"), "service-a"),
        want
    );
    // The header match still sends beta users to v2, in the mesh and at the gateway.
    assert_eq!(split(&routes(&cp, ns, "service-a"), beta), only_v2);
    assert_eq!(split(&routes(&cp, ns, "meshtally-ingress"), beta), only_v2);
    // service-b's routes are untouched.
    assert_eq!(
        split(&routes(&cp, ns, "meshtally-ingress"), "service-b"),
        vec![("v1".to_owned(), 100)]
    );
    ok(&shift("v1=0,v2=100"));
    assert_eq!(
        split(&routes(&cp, ns, "service-a"), "service-a"),
        vec![("v2".to_owned(), 100)]
    );
    let again = ok(&shift("v1=0,v2=100"));
    assert!(again.contains("already has these weights"), "{again}");
    let err = one_line_error(&shift("v1=50,v3=50"), &["no version v3", "v1, v2"]);
    assert!(err.contains("service-a"), "{err}");
    assert_eq!(
        split(&routes(&cp, ns, "service-a"), "service-a"),
        vec![("v2".to_owned(), 100)],
        "a refused shift patches nothing"
    );
}

/// Every route of every VirtualService in `ns` splits whole: its weights sum to 100 (a lone
/// destination carries no weight).
fn assert_whole_splits(cp: &ControlPlane, ns: &str) {
    let json = cp.kubectl_ok(&["get", "virtualservices", "-n", ns, "-o", "json"], None);
    let list: Value = serde_json::from_str(&json).unwrap();
    for vs in list["items"].as_array().unwrap() {
        for route in vs["spec"]["http"].as_array().unwrap() {
            let destinations = route["route"].as_array().unwrap();
            let sum: u64 = destinations
                .iter()
                .map(|d| d["weight"].as_u64().unwrap_or(100))
                .sum();
            assert_eq!(
                sum,
                100,
                "{} route {}: {destinations:?}",
                name_of(vs),
                route["name"]
            );
        }
    }
}

/// kube-apiserver SIGKILLed between objects, mid-`apply` and mid-`shift` (a kubectl wrapper
/// kills the real process once kubectl has reported the chosen object done): each command
/// fails in one line naming what was and was not applied or patched; with the apiserver back,
/// no VirtualService holds a split that does not sum to 100, and the same command again
/// converges to exactly the render (`kubectl diff --server-side` finds nothing).
#[test]
fn api_server_killed_mid_apply_and_mid_shift() {
    let cp = ControlPlane::own();
    let work = work();
    let ns = "fault";
    std::fs::write(
        work.path().join("canary.yaml"),
        "namespace: fault\nreplicas: 1\nservices:\n  - name: service-a\n    versions:\n      - {name: v1, weight: 90}\n      - {name: v2, weight: 10}\n  - service-b\n  - service-c\n  - service-d\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let wrapper = common::workspace().join("deployer/tests/fixtures/kubectl-killing-apiserver.sh");
    let pidfile = cp.dir().join("pids/kube-apiserver.pid");
    let real = controlplane::kubectl_bin();
    let killing = |at: &str, args: &[&str]| {
        let _ = std::fs::remove_file(state.path().join("count"));
        let _ = std::fs::remove_file(state.path().join("killed"));
        let out = cp.deployer_via(
            &wrapper,
            work.path(),
            args,
            &[
                ("KUBECONFIG", cp.kubeconfig.as_os_str()),
                ("REAL_KUBECTL", real.as_os_str()),
                ("APISERVER_PIDFILE", pidfile.as_os_str()),
                ("KILL_STATE", state.path().as_os_str()),
                ("KILL_AT", std::ffi::OsStr::new(at)),
            ],
        );
        assert!(
            state.path().join("killed").exists(),
            "the apiserver was never killed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let apply_args = [
        "apply",
        "--wasm-file",
        "meshtally_filter.wasm",
        "--timeout",
        "180",
        "-f",
        "canary.yaml",
    ];

    // Mid-apply: the namespace and five objects in, then the apiserver dies.
    let out = killing("apply:6", &apply_args);
    let line = one_line_error(
        &out,
        &["apply stopped after ", "applied: ", "not applied: "],
    );
    assert!(line.contains("`deployer apply` again converges"), "{line}");
    // kubectl may have sent a few more before it saw the apiserver gone; never all of them.
    let counts: Vec<usize> = line["error: apply stopped after ".len()..]
        .split(' ')
        .take(3)
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        matches!(counts[..], [done, total] if (5..total).contains(&done)),
        "{line}"
    );
    cp.restart("kube-apiserver");
    assert_whole_splits(&cp, ns);
    ok(&cp.deployer(work.path(), &apply_args));
    let rendered = common::deployer_in(
        work.path(),
        &[
            "render",
            "--wasm-file",
            "meshtally_filter.wasm",
            "-f",
            "canary.yaml",
        ],
    );
    let file = work.path().join("rendered.yaml");
    std::fs::write(&file, ok_bytes(&rendered)).unwrap();
    let diff = cp.kubectl(
        &[
            "diff",
            "--server-side",
            "--field-manager=meshtally",
            "-f",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        diff.status.success(),
        "the cluster differs from the render after the second apply:\n{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );

    // Mid-shift: one VirtualService applied, then the apiserver dies.
    let shift_args = [
        "shift",
        "service-a",
        "v1=20,v2=80",
        "--cluster",
        "--namespace",
        ns,
    ];
    let out = killing("apply:1", &shift_args);
    one_line_error(
        &out,
        &[
            "shift stopped after 1 of 2 VirtualServices",
            "applied: virtualservice/",
            "not applied: virtualservice/",
        ],
    );
    cp.restart("kube-apiserver");
    assert_whole_splits(&cp, ns);
    let splits = |cp: &ControlPlane| {
        [
            split(&routes(cp, ns, "service-a"), "service-a"),
            split(&routes(cp, ns, "meshtally-ingress"), "service-a"),
        ]
    };
    let new = vec![("v1".to_owned(), 20), ("v2".to_owned(), 80)];
    let old = vec![("v1".to_owned(), 90), ("v2".to_owned(), 10)];
    let mut halves = splits(&cp).to_vec();
    halves.sort();
    assert_eq!(halves, [new.clone(), old], "one patched, one not");
    ok(&cp.deployer(work.path(), &shift_args));
    assert_eq!(splits(&cp), [new.clone(), new]);
    assert_whole_splits(&cp, ns);
}
