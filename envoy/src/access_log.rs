//! Gives every listener of a local proxy the JSON access log `tap` and `edges` read
//! (`meshtally_wire::access`), in the state dir's `logs/<proxy>.access.log`. Added to the
//! rendered bootstrap rather than threaded through every listener builder: each HTTP connection
//! manager gets one, its direction named by its listener.

use std::path::Path;

use serde_json::Value;

use meshtally_wire::access::envoy_access_log;

/// How often Envoy writes buffered access-log lines to the file, in ms (`--file-flush-interval-msec`;
/// its default is 10 s): `tap` shows requests within this.
pub const FLUSH_MS: u32 = 100;

/// Adds the access log to every HTTP connection manager of `bootstrap`'s static listeners.
pub fn add(bootstrap: &mut Value, path: &Path, proxy: &str, version: Option<&str>) {
    let path = path.display().to_string();
    let Some(listeners) = bootstrap["static_resources"]["listeners"].as_array_mut() else {
        return;
    };
    for listener in listeners {
        let direction = listener["name"].as_str().unwrap_or("unknown").to_owned();
        let Some(chains) = listener["filter_chains"].as_array_mut() else {
            continue;
        };
        for filter in chains
            .iter_mut()
            .filter_map(|c| c["filters"].as_array_mut())
            .flatten()
        {
            if filter["name"] == "envoy.filters.network.http_connection_manager" {
                filter["typed_config"]["access_log"] =
                    Value::Array(vec![envoy_access_log(&path, proxy, version, &direction)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_connection_manager_logs_with_its_listener_direction() {
        let hcm =
            json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": {}});
        let mut b = json!({"static_resources": {"listeners": [
            {"name": "inbound", "filter_chains": [{"filters": [hcm.clone()]}, {"filters": [hcm.clone()]}]},
            {"name": "outbound", "filter_chains": [{"filters": [{"name": "other"}, hcm]}]},
        ]}});
        add(&mut b, Path::new("/s/logs/a.access.log"), "a-sidecar", None);
        let logs: Vec<(&str, &str)> = b["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["filter_chains"].as_array().unwrap())
            .flat_map(|c| c["filters"].as_array().unwrap())
            .filter_map(|f| f["typed_config"]["access_log"][0]["typed_config"].as_object())
            .map(|t| {
                (
                    t["path"].as_str().unwrap(),
                    t["log_format"]["json_format"]["direction"]
                        .as_str()
                        .unwrap(),
                )
            })
            .collect();
        assert_eq!(
            logs,
            [
                ("/s/logs/a.access.log", "inbound"),
                ("/s/logs/a.access.log", "inbound"),
                ("/s/logs/a.access.log", "outbound")
            ]
        );
    }
}
