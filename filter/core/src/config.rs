//! Plugin configuration: parsed once in `on_configure`, strictly, so a typo is refused by Envoy
//! instead of silently running with defaults.

use crate::json::{self, Json as Value, Number};

use crate::tagging::is_dns1123_label;

/// The version label when neither the plugin config nor node metadata names one.
pub const UNKNOWN_VERSION: &str = "unknown";

/// Loop guard used when `max_hops` is absent.
pub const DEFAULT_MAX_HOPS: u32 = 10;

/// Which side of the call this sidecar listener sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The callee's sidecar: traffic coming into the app.
    Inbound,
    /// The caller's sidecar: traffic leaving the app.
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Why a plugin config was refused. Each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("plugin config is not valid JSON: {0}")]
    Json(String),
    #[error("plugin config must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error(
        "plugin config field `{0}` is unknown (expected service, version, direction, max_hops, external, outbound_policy)"
    )]
    UnknownField(String),
    #[error("plugin config field `{field}`: expected {expected}, got {got}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("plugin config field `direction`: expected \"inbound\" or \"outbound\", got \"{0}\"")]
    BadDirection(String),
    #[error(
        "plugin config field `service`: \"{0}\" is not a DNS-1123 label of at most 63 characters"
    )]
    BadService(String),
    #[error(
        "plugin config field `version`: \"{0}\" is not a DNS-1123 label of at most 63 characters"
    )]
    BadVersion(String),
    #[error("plugin config field `external`: {0}")]
    BadExternal(String),
    #[error("plugin config field `outbound_policy`: expected \"allow_any\" or \"registry_only\", got \"{0}\"")]
    BadOutboundPolicy(String),
    #[error("plugin config field `service` is absent and node metadata has neither WORKLOAD_NAME nor LABELS.app")]
    NoService,
    #[error("plugin config field `direction` is absent: expected \"inbound\" or \"outbound\" (one plugin per side of the sidecar)")]
    NoDirection,
}

/// What the Istio node metadata offers when `service` is not configured.
#[derive(Debug, Default, Clone)]
pub struct NodeMetadata {
    pub workload_name: Option<Vec<u8>>,
    pub app_label: Option<Vec<u8>>,
    /// `LABELS.version`: the workload's version on Istio.
    pub version_label: Option<Vec<u8>>,
    /// `NAMESPACE`: `<service>.<namespace>` is a name inside the mesh.
    pub namespace: Option<Vec<u8>>,
}

/// A host outside the mesh that the mesh declares (a ServiceEntry): calls to it are counted
/// with the entry's name as their destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalHost {
    pub host: String,
    pub name: String,
    /// The services that may call it; `None`: every one. A caller left out is refused by its
    /// sidecar, so its calls are counted as the BlackHoleCluster's.
    pub callers: Option<Vec<String>>,
}

/// The validated plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This workload's name, used as the source outbound and the destination inbound.
    pub service: String,
    /// This workload's version (the `destination_version` label inbound, and the
    /// `x-mesh-served-version` response header): configured, else `LABELS.version`, else
    /// [`UNKNOWN_VERSION`].
    pub version: String,
    /// Which side of the sidecar this plugin serves. Required: a per-stream read of the
    /// listener's direction would cost a property read (≈12,600 instructions) on every request,
    /// so each side gets its own plugin (Istio: a WasmPlugin per `match.mode`).
    pub direction: Direction,
    pub max_hops: u32,
    /// The hosts outside the mesh that it declares (`external`: host → {name, callers}).
    pub external: Vec<ExternalHost>,
    /// `outbound_policy: registry_only`: a sidecar refuses a host the mesh does not know
    /// (Istio's BlackHoleCluster) rather than passing it through (PassthroughCluster).
    pub registry_only: bool,
    /// The workload's namespace, from node metadata (empty when unknown).
    pub namespace: String,
}

impl Config {
    /// Parses the raw `configuration` bytes. An empty buffer means `{}`, as Envoy sends nothing
    /// when a WasmPlugin has no `pluginConfig`.
    pub fn parse(raw: &[u8], node: &NodeMetadata) -> Result<Config, ConfigError> {
        let trimmed = raw.iter().all(|b| b.is_ascii_whitespace());
        let value: Value = if trimmed {
            Value::Object(Vec::new())
        } else {
            json::parse(raw).map_err(ConfigError::Json)?
        };
        let Value::Object(fields) = value else {
            return Err(ConfigError::NotAnObject(type_name(&value)));
        };

        let mut service = None;
        let mut version = None;
        let mut direction = None;
        let mut max_hops = DEFAULT_MAX_HOPS;
        let mut external = Vec::new();
        let mut registry_only = false;
        for (key, value) in &fields {
            match key.as_str() {
                "service" => service = Some(string_field("service", value)?.to_owned()),
                "version" => version = Some(string_field("version", value)?.to_owned()),
                "direction" => {
                    direction = Some(match string_field("direction", value)? {
                        "inbound" => Direction::Inbound,
                        "outbound" => Direction::Outbound,
                        other => return Err(ConfigError::BadDirection(printable(other))),
                    })
                }
                "max_hops" => max_hops = max_hops_field(value)?,
                "external" => external = external_field(value)?,
                "outbound_policy" => {
                    registry_only = match string_field("outbound_policy", value)? {
                        "allow_any" => false,
                        "registry_only" => true,
                        other => return Err(ConfigError::BadOutboundPolicy(printable(other))),
                    }
                }
                // The key is as untrusted as any value: cut and cleaned for the one-line log.
                other => return Err(ConfigError::UnknownField(printable(other))),
            }
        }

        let version = match version {
            Some(v) if is_dns1123_label(v.as_bytes()) => v,
            Some(v) => return Err(ConfigError::BadVersion(printable(&v))),
            // A malformed label is Istio's to refuse, not a reason to drop the filter.
            None => node
                .version_label
                .as_deref()
                .filter(|v| is_dns1123_label(v))
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or(UNKNOWN_VERSION)
                .to_owned(),
        };
        let service = match service {
            Some(name) if is_dns1123_label(name.as_bytes()) => name,
            Some(name) => return Err(ConfigError::BadService(printable(&name))),
            None => service_from_node(node)?,
        };
        Ok(Config {
            service,
            version,
            direction: direction.ok_or(ConfigError::NoDirection)?,
            max_hops,
            external,
            registry_only,
            namespace: node
                .namespace
                .as_deref()
                .filter(|n| is_dns1123_label(n))
                .and_then(|n| std::str::from_utf8(n).ok())
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

fn service_from_node(node: &NodeMetadata) -> Result<String, ConfigError> {
    // The `app` label is Istio's canonical service name: every version's Deployment carries
    // the same one, whereas WORKLOAD_NAME names the Deployment (`reviews-v1`), so it is only the
    // fallback for workloads without the label.
    let candidate = [&node.app_label, &node.workload_name]
        .into_iter()
        .flatten()
        .find(|v| !v.is_empty())
        .ok_or(ConfigError::NoService)?;
    let name = String::from_utf8_lossy(candidate).into_owned();
    if is_dns1123_label(name.as_bytes()) {
        Ok(name)
    } else {
        Err(ConfigError::BadService(printable(&name)))
    }
}

fn string_field<'a>(field: &'static str, value: &'a Value) -> Result<&'a str, ConfigError> {
    value.as_str().ok_or_else(|| ConfigError::WrongType {
        field,
        expected: "a string",
        got: describe(value),
    })
}

/// `{"<host>": {"name": "<entry>", "callers": "a,b"}}`: objects only, as the filter's JSON
/// reader keeps no array elements. Hosts and names are checked, so a metric name can only carry
/// labels.
fn external_field(value: &Value) -> Result<Vec<ExternalHost>, ConfigError> {
    let Value::Object(hosts) = value else {
        return Err(ConfigError::WrongType {
            field: "external",
            expected: "an object of host to {name, callers}",
            got: describe(value),
        });
    };
    let bad = |what: String| Err(ConfigError::BadExternal(what));
    let mut out = Vec::with_capacity(hosts.len());
    for (host, entry) in hosts {
        if host.is_empty() || !host.split('.').all(|l| is_dns1123_label(l.as_bytes())) {
            return bad(format!("host \"{}\" is not a DNS name", printable(host)));
        }
        let Value::Object(fields) = entry else {
            return bad(format!("host \"{}\": expected an object", printable(host)));
        };
        let mut name = None;
        let mut callers = None;
        for (key, v) in fields {
            match (key.as_str(), v.as_str()) {
                ("name", Some(n)) if is_dns1123_label(n.as_bytes()) => name = Some(n.to_owned()),
                ("callers", Some(c)) => {
                    let list: Vec<String> = c.split(',').map(str::to_owned).collect();
                    if !list.iter().all(|c| is_dns1123_label(c.as_bytes())) {
                        return bad(format!("host \"{}\": callers \"{}\" is not a comma-separated list of labels", printable(host), printable(c)));
                    }
                    callers = Some(list);
                }
                (other, _) => {
                    return bad(format!(
                        "host \"{}\": field `{}` is unknown or not a valid string (expected name, callers)",
                        printable(host),
                        printable(other)
                    ))
                }
            }
        }
        let Some(name) = name else {
            return bad(format!("host \"{}\" has no name", printable(host)));
        };
        out.push(ExternalHost {
            host: host.clone(),
            name,
            callers,
        });
    }
    Ok(out)
}

fn max_hops_field(value: &Value) -> Result<u32, ConfigError> {
    let wrong = || ConfigError::WrongType {
        field: "max_hops",
        expected: "an integer from 1 to 4294967295",
        got: describe(value),
    };
    let n = value.as_u64().ok_or_else(wrong)?;
    match u32::try_from(n) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(wrong()),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short description of a bad value for an error line: its type, and the value when it is small.
fn describe(value: &Value) -> String {
    match value {
        // Integers print exactly; other numbers are only named, which keeps float
        // formatting (several KiB of wasm) out of the module.
        Value::Number(Number::U64(u)) => format!("the number {u}"),
        Value::Number(Number::I64(i)) => format!("the number {i}"),
        Value::Number(Number::Float) => "a non-integer number".to_owned(),
        Value::String(s) => format!("the string \"{}\"", printable(s)),
        Value::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
        other => type_name(other).to_owned(),
    }
}

/// A config value made safe for a one-line log: at most 64 characters, control characters
/// and quotes replaced. (`{:?}` would do it but drags Unicode tables into the module.)
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_control() || c == '"' { '?' } else { c })
        .collect();
    if s.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN: &[u8] = br#"{"direction":"inbound"}"#;

    fn parse(raw: &str) -> Result<Config, ConfigError> {
        Config::parse(raw.as_bytes(), &NodeMetadata::default())
    }

    #[test]
    fn full_config() {
        let c = parse(r#"{"service":"service-a","direction":"outbound","max_hops":3}"#).unwrap();
        assert_eq!(
            c,
            Config {
                service: "service-a".into(),
                version: UNKNOWN_VERSION.into(),
                direction: Direction::Outbound,
                max_hops: 3,
                external: Vec::new(),
                registry_only: false,
                namespace: String::new(),
            }
        );
    }

    #[test]
    fn external_hosts_and_the_outbound_policy() {
        let c = parse(
            r#"{"direction":"outbound","service":"a","outbound_policy":"registry_only","external":{"api.payments.example":{"name":"payments","callers":"b,c"},"w.example.org":{"name":"weather"}}}"#,
        )
        .unwrap();
        assert!(c.registry_only);
        assert_eq!(
            c.external,
            [
                ExternalHost {
                    host: "api.payments.example".into(),
                    name: "payments".into(),
                    callers: Some(vec!["b".into(), "c".into()]),
                },
                ExternalHost {
                    host: "w.example.org".into(),
                    name: "weather".into(),
                    callers: None,
                },
            ]
        );
        for (bad, want) in [
            (
                r#"{"external":{"a b":{"name":"x"}}}"#,
                "host \"a b\" is not a DNS name",
            ),
            (r#"{"external":{"a.b":{}}}"#, "has no name"),
            (
                r#"{"external":{"a.b":{"name":"X"}}}"#,
                "field `name` is unknown or not a valid string",
            ),
            (
                r#"{"external":{"a.b":{"name":"x","callers":"a,,b"}}}"#,
                "callers",
            ),
            (r#"{"external":{"a.b":"x"}}"#, "expected an object"),
            (r#"{"external":[]}"#, "expected an object of host"),
            (r#"{"outbound_policy":"deny"}"#, "got \"deny\""),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"service":"a","direction":"inbound"}"#).unwrap();
        assert_eq!(c.direction, Direction::Inbound);
        assert_eq!(c.max_hops, DEFAULT_MAX_HOPS);
    }

    #[test]
    fn empty_config_uses_node_metadata() {
        let node = NodeMetadata {
            workload_name: Some(b"reviews-v2".to_vec()),
            app_label: Some(b"reviews".to_vec()),
            version_label: Some(b"v2".to_vec()),
            namespace: None,
        };
        let c = Config::parse(IN, &node).unwrap();
        assert_eq!((c.service.as_str(), c.version.as_str()), ("reviews", "v2"));
        // Nothing at all is valid JSON-wise, but names no direction.
        assert_eq!(Config::parse(b"", &node), Err(ConfigError::NoDirection));
        let node = NodeMetadata {
            workload_name: Some(b"reviews-v1".to_vec()),
            app_label: None,
            version_label: Some(b"Not A Label".to_vec()),
            namespace: None,
        };
        let c = Config::parse(IN, &node).unwrap();
        assert_eq!(
            (c.service.as_str(), c.version.as_str()),
            ("reviews-v1", UNKNOWN_VERSION)
        );
        let node = NodeMetadata {
            workload_name: Some(b"reviews-v1".to_vec()),
            app_label: Some(Vec::new()),
            version_label: None,
            namespace: None,
        };
        assert_eq!(Config::parse(IN, &node).unwrap().service, "reviews-v1");
        assert_eq!(Config::parse(b"  ", &node), Err(ConfigError::NoDirection));
    }

    #[test]
    fn configured_version_beats_node_metadata() {
        let node = NodeMetadata {
            version_label: Some(b"v1".to_vec()),
            ..NodeMetadata::default()
        };
        let c = Config::parse(
            br#"{"service":"a","version":"v3","direction":"inbound"}"#,
            &node,
        )
        .unwrap();
        assert_eq!(c.version, "v3");
        assert_eq!(
            Config::parse(br#"{"service":"a","version":"V 3"}"#, &node),
            Err(ConfigError::BadVersion("V 3".into()))
        );
    }

    #[test]
    fn configured_service_beats_node_metadata() {
        let node = NodeMetadata {
            workload_name: Some(b"x".to_vec()),
            ..NodeMetadata::default()
        };
        assert_eq!(
            Config::parse(br#"{"service":"y","direction":"outbound"}"#, &node)
                .unwrap()
                .service,
            "y"
        );
    }

    #[test]
    fn no_service_anywhere_is_rejected() {
        assert_eq!(parse("{}"), Err(ConfigError::NoService));
        assert!(ConfigError::NoService.to_string().contains("`service`"));
    }

    #[test]
    fn no_direction_is_rejected() {
        assert_eq!(parse(r#"{"service":"a"}"#), Err(ConfigError::NoDirection));
        assert!(ConfigError::NoDirection.to_string().contains("`direction`"));
    }

    #[test]
    fn rejections_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"service":"a","direction":"sideways"}"#, "`direction`"),
            (r#"{"service":"a","direction":1}"#, "`direction`"),
            (r#"{"service":"a","max_hops":"10"}"#, "`max_hops`"),
            (r#"{"service":"a","max_hops":-1}"#, "`max_hops`"),
            (r#"{"service":"a","max_hops":0}"#, "`max_hops`"),
            (r#"{"service":"a","max_hops":1.5}"#, "`max_hops`"),
            (r#"{"service":"a","max_hops":4294967296}"#, "`max_hops`"),
            (r#"{"service":"a","max_hops":null}"#, "`max_hops`"),
            (r#"{"service":7}"#, "`service`"),
            (r#"{"service":"Service_A"}"#, "`service`"),
            (r#"{"service":""}"#, "`service`"),
            (r#"{"service":"a","colour":"red"}"#, "`colour`"),
            (r#"{"service":"a","version":2}"#, "`version`"),
            (r#"{"service":"a","version":"v_2"}"#, "`version`"),
        ];
        for (raw, field) in cases {
            let err = parse(raw).unwrap_err().to_string();
            assert!(err.contains(field), "{raw}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn sideways_message() {
        let err = parse(r#"{"service":"a","direction":"sideways"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin config field `direction`: expected \"inbound\" or \"outbound\", got \"sideways\""
        );
    }

    #[test]
    fn non_objects_and_bad_json_are_rejected() {
        assert_eq!(parse("[]"), Err(ConfigError::NotAnObject("an array")));
        assert_eq!(parse("\"a\""), Err(ConfigError::NotAnObject("a string")));
        assert!(matches!(parse("{"), Err(ConfigError::Json(_))));
        assert!(matches!(
            Config::parse(&[0xff, 0xfe], &NodeMetadata::default()),
            Err(ConfigError::Json(_))
        ));
    }

    #[test]
    fn bad_node_metadata_name_is_rejected() {
        let node = NodeMetadata {
            workload_name: Some(b"Bad_Name".to_vec()),
            ..NodeMetadata::default()
        };
        assert_eq!(
            Config::parse(IN, &node),
            Err(ConfigError::BadService("Bad_Name".into()))
        );
    }
}
