//! Delivery of the local proxies' routes, clusters and meshtally filter as Envoy's file-based
//! xDS, so they change while Envoy runs (`deployer shift`, `deployer reload`, a rebuilt module).
//! What the config *says* comes from `bootstrap::render` (a complete static bootstrap); this
//! module only moves its routes (RDS), clusters (CDS) and the meshtally filter (ECDS) into files
//! of a watched directory, and leaves the listeners in the bootstrap. Files are written beside
//! their final name and renamed into place, so Envoy never reads half a file, and every
//! publication carries a new `version_info`, which each proxy shows in its admin config_dump.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The name of the HTTP filter that ECDS delivers (the meshtally Wasm filter).
const ECDS_FILTER: &str = "meshtally";
const CDS_FILE: &str = "cds.json";
/// The metadata key under which a route table carries the publication it came with.
const STAMP: &str = "meshtally.xds";
/// The version of the files `up` writes; each publication after it counts up.
pub const FIRST_VERSION: u64 = 1;
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const EXTENSION_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// One proxy's dynamic resources: what its xDS files carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub clusters: Vec<Value>,
    /// RouteConfigurations, one file each (RDS takes exactly one resource per subscription).
    pub routes: Vec<Value>,
    /// The meshtally filter as a TypedExtensionConfig (none when the proxy runs no filter).
    pub filters: Vec<Value>,
}

/// A proxy's config in the two parts Envoy reads: the bootstrap (fixed while it runs) and the
/// resources of its xDS directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub bootstrap: Value,
    pub resources: Resources,
}

fn source(dir: &Path, file: &str) -> Value {
    json!({
        "path_config_source": {
            "path": dir.join(file).display().to_string(),
            "watched_directory": {"path": dir.display().to_string()},
        },
        "resource_api_version": "V3",
    })
}

fn route_file(name: &str) -> String {
    format!("rds-{name}.json")
}

fn filter_file(name: &str) -> String {
    format!("ecds-{name}.json")
}

/// Splits a complete static bootstrap into a bootstrap whose HTTP connection managers take
/// their routes from RDS and the meshtally filter from ECDS, and whose clusters come from CDS,
/// all from files in `dir` (named as Envoy will find them); plus the resources for those files.
pub fn split(static_config: &Value, dir: &Path) -> Result<Split> {
    let mut bootstrap = static_config.clone();
    let statics = bootstrap
        .get_mut("static_resources")
        .and_then(Value::as_object_mut)
        .context("the bootstrap has no static_resources")?;
    let clusters = match statics.remove("clusters") {
        Some(Value::Array(c)) => c,
        None => Vec::new(),
        Some(_) => bail!("static_resources.clusters is not a list"),
    };
    let mut routes = Vec::new();
    let mut filters = Vec::new();
    for listener in statics
        .get_mut("listeners")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for chain in listener
            .get_mut("filter_chains")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for filter in chain
                .get_mut("filters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(hcm) = filter.get_mut("typed_config") {
                    if hcm.get("route_config").is_some() {
                        split_hcm(hcm, dir, &mut routes, &mut filters)?;
                    }
                }
            }
        }
    }
    bootstrap["dynamic_resources"] = json!({"cds_config": source(dir, CDS_FILE)});
    Ok(Split {
        bootstrap,
        resources: Resources {
            clusters: clusters
                .into_iter()
                .map(|c| typed(CLUSTER_TYPE, c))
                .collect(),
            routes,
            filters,
        },
    })
}

/// One HTTP connection manager: its route table becomes an RDS resource named after its
/// `stat_prefix` (unique per proxy), and the meshtally filter the proxy's ECDS resource.
fn split_hcm(
    hcm: &mut Value,
    dir: &Path,
    routes: &mut Vec<Value>,
    filters: &mut Vec<Value>,
) -> Result<()> {
    let name = hcm["stat_prefix"]
        .as_str()
        .context("an HTTP connection manager without stat_prefix")?
        .to_owned();
    let Some(obj) = hcm.as_object_mut() else {
        bail!("HTTP connection manager {name} is not an object");
    };
    let mut route_config = obj.remove("route_config").unwrap_or_default();
    route_config["name"] = json!(name);
    routes.push(typed(ROUTE_TYPE, route_config));
    obj.insert(
        "rds".into(),
        json!({"route_config_name": name, "config_source": source(dir, &route_file(&name))}),
    );
    for http_filter in obj
        .get_mut("http_filters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if http_filter["name"] != ECDS_FILTER {
            continue;
        }
        // ECDS names a resource after the filter, so every connection manager of a proxy
        // shares one (as a WasmPlugin is one resource for all of a sidecar's listeners).
        let typed_config = http_filter["typed_config"].take();
        match filters.iter().find(|f| f["name"] == ECDS_FILTER) {
            Some(known) if known["typed_config"] != typed_config => bail!(
                "the {ECDS_FILTER} filter of {name} differs from another listener's: one ECDS resource cannot carry both"
            ),
            Some(_) => {}
            None => filters.push(
                json!({"@type": EXTENSION_TYPE, "name": ECDS_FILTER, "typed_config": typed_config}),
            ),
        }
        // No default config and warming on: a listener is ready only once its filter is
        // loaded, as a sidecar with a WasmPlugin is.
        *http_filter = json!({
            "name": ECDS_FILTER,
            "config_discovery": {
                "config_source": source(dir, &filter_file(ECDS_FILTER)),
                "type_urls": [WASM_TYPE],
            },
        });
    }
    Ok(())
}

/// Takes the publication stamp off a route table (and its metadata, if that was all of it).
fn unstamp(route: &mut Value) {
    let Some(obj) = route.as_object_mut() else {
        return;
    };
    if let Some(filter_metadata) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("filter_metadata"))
        .and_then(Value::as_object_mut)
    {
        filter_metadata.remove(STAMP);
        if filter_metadata.is_empty() {
            obj.remove("metadata");
        }
    }
}

fn typed(type_url: &str, mut resource: Value) -> Value {
    if let Some(obj) = resource.as_object_mut() {
        obj.insert("@type".into(), json!(type_url));
    }
    resource
}

/// The files of one proxy's xDS directory, by file name, each a DiscoveryResponse of `version`.
pub fn files(resources: &Resources, version: u64) -> Vec<(String, Value)> {
    let response = |items: Vec<Value>, type_url: &str| json!({"version_info": version.to_string(), "type_url": type_url, "resources": items});
    let mut out = vec![(
        CDS_FILE.to_owned(),
        response(resources.clusters.clone(), CLUSTER_TYPE),
    )];
    for route in &resources.routes {
        let name = route["name"].as_str().unwrap_or_default();
        // Envoy's config_dump shows a route table's version only when its content changes;
        // stamped with the publication, every table shows that the proxy took this version.
        let mut route = route.clone();
        route["metadata"]["filter_metadata"][STAMP] = json!({"version": version.to_string()});
        out.push((route_file(name), response(vec![route], ROUTE_TYPE)));
    }
    for filter in &resources.filters {
        let name = filter["name"].as_str().unwrap_or_default();
        out.push((
            filter_file(name),
            response(vec![filter.clone()], EXTENSION_TYPE),
        ));
    }
    out
}

/// Writes a proxy's xDS files into `dir`: each beside its final name, then renamed into place,
/// so Envoy (watching `dir` for renames) only ever sees whole files.
pub fn write(dir: &Path, resources: &Resources, version: u64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, body) in files(resources, version) {
        let path = dir.join(&name);
        // A file whose resources are unchanged is left alone: every rename in the watched
        // directory makes Envoy read all of its files again.
        let unchanged = std::fs::read(&path)
            .ok()
            .and_then(|old| serde_json::from_slice::<Value>(&old).ok())
            .is_some_and(|old| old["resources"] == body["resources"]);
        if unchanged {
            continue;
        }
        // A dot name: never one of the files Envoy reads.
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Writes only the CDS file of a proxy's xDS directory (the second step of a publication that
/// removes clusters: see `live::publish`).
pub fn write_clusters(dir: &Path, resources: &Resources, version: u64) -> Result<()> {
    let only = Resources {
        clusters: resources.clusters.clone(),
        routes: Vec::new(),
        filters: Vec::new(),
    };
    write(dir, &only, version)
}

/// The clusters a proxy's CDS file carries now (none if there is no file yet).
pub fn current_clusters(dir: &Path) -> Result<Vec<Value>> {
    let path = dir.join(CDS_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(Vec::new());
    };
    let body: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(body["resources"].as_array().cloned().unwrap_or_default())
}

/// The static bootstrap equivalent to a split one: the files' resources put back in place.
/// `envoy --mode validate` checks the listeners it starts with, not files it would watch, so
/// tests validate this form to hold the xDS files to Envoy's own rules too.
pub fn inline(bootstrap: &Value) -> Result<Value> {
    let mut out = bootstrap.clone();
    let read = |source: &Value| -> Result<Vec<Value>> {
        let path = PathBuf::from(
            source["path_config_source"]["path"]
                .as_str()
                .context("a config source without path_config_source.path")?,
        );
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let body: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Ok(body["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut r| {
                if let Some(o) = r.as_object_mut() {
                    o.remove("@type");
                }
                r
            })
            .collect())
    };
    if let Some(dynamic) = out
        .as_object_mut()
        .and_then(|o| o.remove("dynamic_resources"))
    {
        out["static_resources"]["clusters"] = Value::Array(read(&dynamic["cds_config"])?);
    }
    for listener in out["static_resources"]["listeners"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        for chain in listener["filter_chains"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            for filter in chain["filters"].as_array_mut().into_iter().flatten() {
                let hcm = &mut filter["typed_config"];
                if let Some(rds) = hcm.as_object_mut().and_then(|o| o.remove("rds")) {
                    let route = read(&rds["config_source"])?.into_iter().next();
                    let mut route = route.context("an RDS file without a resource")?;
                    unstamp(&mut route);
                    hcm["route_config"] = route;
                }
                for http_filter in hcm["http_filters"].as_array_mut().into_iter().flatten() {
                    if let Some(discovery) = http_filter
                        .as_object_mut()
                        .and_then(|o| o.remove("config_discovery"))
                    {
                        let extension = read(&discovery["config_source"])?.into_iter().next();
                        let extension = extension.context("an ECDS file without a resource")?;
                        http_filter["typed_config"] = extension["typed_config"].clone();
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "node": {"id": "x"},
            "static_resources": {
                "listeners": [{"name": "outbound", "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "stat_prefix": "outbound",
                        "route_config": {"name": "outbound", "virtual_hosts": [{"name": "a", "domains": ["*"], "routes": []}]},
                        "http_filters": [
                            {"name": "meshtally", "typed_config": {"@type": WASM_TYPE, "config": {"name": "meshtally"}}},
                            {"name": "envoy.filters.http.router", "typed_config": {}},
                        ],
                    },
                }]}]}],
                "clusters": [{"name": "a", "type": "STATIC"}],
            },
        })
    }

    #[test]
    fn routes_clusters_and_the_filter_move_to_files_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let split = split(&sample(), dir.path()).unwrap();
        let statics = &split.bootstrap["static_resources"];
        assert!(statics.get("clusters").is_none());
        let hcm = &statics["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        assert!(hcm.get("route_config").is_none());
        assert_eq!(hcm["rds"]["route_config_name"], "outbound");
        assert_eq!(
            hcm["http_filters"][0]["config_discovery"]["type_urls"][0],
            WASM_TYPE
        );
        // The router stays in the listener.
        assert_eq!(hcm["http_filters"][1]["name"], "envoy.filters.http.router");
        assert_eq!(split.resources.clusters.len(), 1);
        assert_eq!(split.resources.routes[0]["@type"], ROUTE_TYPE);
        assert_eq!(split.resources.filters[0]["name"], ECDS_FILTER);

        write(dir.path(), &split.resources, 7).unwrap();
        let cds: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CDS_FILE)).unwrap()).unwrap();
        assert_eq!(cds["version_info"], "7");
        let no_tmp = std::fs::read_dir(dir.path())
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"));
        assert!(no_tmp, "temporary files left behind");
        // Put back, the files give the static bootstrap again.
        assert_eq!(inline(&split.bootstrap).unwrap(), sample());
    }
}
