//! Delivery of the local proxies' routes (RDS), clusters (CDS) and meshtally filter (ECDS) as
//! Envoy's file-based xDS, so they change while Envoy runs (`deployer shift`, `deployer
//! reload`, a rebuilt module). `bootstrap::build` makes the resources and the bootstrap that
//! references them; this module writes them as the files of a watched directory, each beside
//! its final name and renamed into place, so Envoy never reads half a file, and every
//! publication carries a new `version_info`, which each proxy shows in its admin config_dump.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// The name of the HTTP filter (and ECDS resource) of one side's meshtally Wasm filter:
/// `meshtally-inbound`, `meshtally-outbound`, as the rendered WasmPlugins are named.
pub fn filter_name(side: &str) -> String {
    format!("meshtally-{side}")
}
pub(crate) const CDS_FILE: &str = "cds.json";
/// The metadata key under which a route table carries the publication it came with.
const STAMP: &str = "meshtally.xds";
/// The version of the files `up` writes; each publication after it counts up.
pub const FIRST_VERSION: u64 = 1;
pub(crate) const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub(crate) const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub(crate) const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub(crate) const EXTENSION_TYPE: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

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
pub struct XdsConfig {
    pub bootstrap: Value,
    pub resources: Resources,
}

/// A config source reading `file` of the watched directory `dir`.
pub(crate) fn source(dir: &Path, file: &str) -> Value {
    json!({
        "path_config_source": {
            "path": dir.join(file).display().to_string(),
            "watched_directory": {"path": dir.display().to_string()},
        },
        "resource_api_version": "V3",
    })
}

pub(crate) fn route_file(name: &str) -> String {
    format!("rds-{name}.json")
}

pub(crate) fn filter_file(name: &str) -> String {
    format!("ecds-{name}.json")
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

/// A resource with its type, as a DiscoveryResponse carries it.
pub(crate) fn typed(type_url: &str, mut resource: Value) -> Value {
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
        // In the static bootstrap's order: the app's cluster first, CDS's, then the other
        // static ones (the trace collector's).
        let statics = out["static_resources"]["clusters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let (mut clusters, last): (Vec<Value>, Vec<Value>) =
            statics.into_iter().partition(|c| c["name"] == "app");
        clusters.extend(read(&dynamic["cds_config"])?);
        clusters.extend(last);
        out["static_resources"]["clusters"] = Value::Array(clusters);
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
