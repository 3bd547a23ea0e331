//! What the mesh refuses to believe: certificates from another CA or for another namespace,
//! and how a broken filter behaves under the WasmPlugin's failStrategy in the local mesh.

use anyhow::Result;
use meshtally_envoy::bootstrap::{self, Filter, Inbound, MtlsMode, Outbound, Proxy};
use meshtally_envoy::pki::Ca;
use meshtally_envoy::routes::Upstream as Peer;
use meshtally_tests::echo::{values, Echo};
use meshtally_tests::envoy::Envoy;
use meshtally_tests::mesh::LocalMesh;
use meshtally_tests::{filter_wasm, http};
use meshtally_wire::identity::spiffe_id;
use serde_json::json;

/// service-b's sidecar accepts mTLS only from `spiffe://…/ns/istio-demo/sa/service-a` (what
/// `deployer up` configures from the AuthorizationPolicy). Returns the status a caller sidecar
/// holding `caller` gets, and how many requests reached the app.
fn call_with(
    caller_ca: &Ca,
    ca_dir: &std::path::Path,
    mesh_ca: &Ca,
    namespace: &str,
) -> Result<(u16, usize)> {
    let app = Echo::start()?;
    let b = mesh_ca.issue(ca_dir, "istio-demo", "service-b")?;
    let callee = Envoy::start(
        ca_dir,
        &format!("b-{namespace}"),
        &bootstrap::render(&Proxy {
            filter: Filter::Wasm(filter_wasm()),
            fail_open: false,
            node_metadata: json!({"WORKLOAD_NAME": "service-b"}),
            admin_port: 0,
            inbound: Some(Inbound {
                port: 0,
                app_port: app.port,
                plugin_config: json!({"direction": "inbound"}),
                tls: Some((b, MtlsMode::Strict)),
                allowed_peers: vec![spiffe_id("istio-demo", "service-a")],
            }),
            outbound: None,
            ingress: None,
            access_log: None,
            tracing: None,
        }),
    )?;
    let mut a = caller_ca.issue(ca_dir, namespace, "service-a")?;
    // The caller trusts the mesh CA for the server, whatever CA signed its own certificate.
    a.ca = mesh_ca.cert_path.clone();
    let caller = Envoy::start(
        ca_dir,
        &format!("a-{namespace}"),
        &bootstrap::render(&Proxy {
            filter: Filter::Wasm(filter_wasm()),
            fail_open: false,
            node_metadata: json!({"WORKLOAD_NAME": "service-a"}),
            admin_port: 0,
            inbound: None,
            outbound: Some(Outbound {
                port: 0,
                plugin_config: json!({"direction": "outbound"}),
                peers: vec![Peer::single(
                    "service-b",
                    callee.listener_port("inbound")?,
                    Some((a, spiffe_id("istio-demo", "service-b"))),
                )],
                external: Vec::new(),
                catch_all: None,
            }),
            ingress: None,
            access_log: None,
            tracing: None,
        }),
    )?;
    let r = http::get_host(
        caller.listener_port("outbound")?,
        "service-b:8001",
        "/info",
        &[],
    )?;
    if r.status == 200 {
        assert_eq!(values(&app.last(), "x-mesh-peer-verified"), ["true"]);
    }
    Ok((r.status, app.count()))
}

#[test]
fn only_the_mesh_ca_and_the_right_namespace_are_accepted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mesh_ca = Ca::new(dir.path(), "mesh")?;
    let rogue_ca = Ca::new(dir.path(), "rogue")?;

    // The control: the right CA and namespace get through, verified.
    assert_eq!(
        call_with(&mesh_ca, dir.path(), &mesh_ca, "istio-demo")?,
        (200, 1)
    );
    // A certificate for the same identity from another CA: the handshake fails.
    let (status, reached) = call_with(&rogue_ca, dir.path(), &mesh_ca, "istio-demo")?;
    assert_eq!(
        (status, reached),
        (503, 0),
        "a rogue CA's certificate was accepted"
    );
    // The mesh CA, but service-a of another namespace: denied by RBAC, as Istio's
    // AuthorizationPolicy does (403, the app never reached).
    let (status, reached) = call_with(&mesh_ca, dir.path(), &mesh_ca, "other")?;
    assert_eq!(
        (status, reached),
        (403, 0),
        "another namespace's identity was accepted"
    );
    Ok(())
}

#[test]
fn fail_open_lets_traffic_through_and_says_why() -> Result<()> {
    let m = LocalMesh::up(
        2,
        28800,
        28890,
        &[
            "--fail-strategy",
            "fail-open",
            "--plugin-config",
            r#"{"max_hops":0}"#,
        ],
    )?;
    assert!(
        m.up_stdout.contains("FILTER SKIPPED (fail-open)"),
        "{}",
        m.up_stdout
    );
    assert!(m.up_stdout.contains("field `max_hops`"), "{}", m.up_stdout);
    let r = http::get(m.gateway(), "/service-a/call/service-b", &[])?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-mesh-served-by"),
        None,
        "the filter is not running"
    );
    // Envoy's own failure policy follows the strategy.
    let config = std::fs::read_to_string(m.state_dir().join("envoy/service-a-sidecar.json"))?;
    assert!(
        !config.contains("envoy.filters.http.wasm"),
        "no filter configured"
    );
    Ok(())
}

#[test]
fn fail_open_with_a_missing_module() -> Result<()> {
    let m = LocalMesh::up(
        2,
        28810,
        28891,
        &[
            "--fail-strategy",
            "fail-open",
            "--wasm",
            "/nonexistent/filter.wasm",
        ],
    )?;
    assert!(
        m.up_stdout.contains(
            "FILTER SKIPPED (fail-open): filter module /nonexistent/filter.wasm not found"
        ),
        "{}",
        m.up_stdout
    );
    assert_eq!(
        http::get(m.gateway(), "/service-b/call/service-a", &[])?.status,
        200
    );
    Ok(())
}

#[test]
fn fail_close_blocks_as_istio_does() -> Result<()> {
    let m = LocalMesh::up(
        2,
        28820,
        28892,
        &[
            // Permissive, so the plain-HTTP call straight to a sidecar reaches its filter chain.
            "--mtls",
            "permissive",
            "--fail-strategy",
            "fail-close",
            "--plugin-config",
            r#"{"max_hops":"ten"}"#,
        ],
    )?;
    assert!(
        m.up_stdout.contains("ALL TRAFFIC DENIED (fail-close)"),
        "{}",
        m.up_stdout
    );
    let r = http::get(m.gateway(), "/service-a/call/service-b", &[])?;
    assert_eq!(r.status, 403, "{}", r.text());
    let direct = http::get_host(m.port("service-a"), "service-a", "/info", &[])?;
    assert_eq!(direct.status, 403);
    // The deny-all RBAC (no policy), not only the callers' one.
    let config = std::fs::read_to_string(m.state_dir().join("envoy/service-a-sidecar.json"))?;
    assert!(config.contains("\"policies\": {}"), "{config}");
    Ok(())
}

#[test]
fn good_plugin_config_reaches_the_filter_and_failure_policy_is_set() -> Result<()> {
    // max_hops 2 from --plugin-config: a → b (1) → a (2) → b would be 3: refused by b's sidecar.
    // (The gateway runs no filter, so it adds no hop.)
    let m = LocalMesh::up(2, 28830, 28893, &["--plugin-config", r#"{"max_hops":2}"#])?;
    assert_eq!(http::get(m.gateway(), "/service-a/info", &[])?.status, 200);
    assert_eq!(
        http::get(m.gateway(), "/service-a/call/service-b/call/service-a", &[])?.status,
        200
    );
    assert_eq!(
        http::get(
            m.gateway(),
            "/service-a/call/service-b/call/service-a/call/service-b",
            &[]
        )?
        .status,
        508
    );
    // The filter's config is delivered by ECDS, from the sidecar's xDS files.
    let config = std::fs::read_to_string(
        m.state_dir()
            .join("xds/service-a-sidecar/ecds-meshtally-outbound.json"),
    )?;
    assert!(
        config.contains("\"failure_policy\": \"FAIL_OPEN\""),
        "{config}"
    );
    // Without a strategy, a bad config is an error before anything starts.
    let state = tempfile::tempdir()?;
    let out = meshtally_tests::mesh::deployer(&[
        "up",
        "--state-dir",
        state.path().to_str().unwrap_or_default(),
        "--base-port",
        "28840",
        "--gateway-port",
        "28894",
        "--wasm",
        filter_wasm().to_str().unwrap_or_default(),
        "--plugin-config",
        r#"{"colour":"red"}"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "--plugin-config rejected by the filter: plugin config field `colour` is unknown"
        ),
        "{err}"
    );
    Ok(())
}
