//! `Config::parse` against arbitrary bytes, JSON-ish token soup, and config objects whose every
//! field holds any JSON value. An independent model says which inputs are valid; every refusal
//! must be one bounded line that names the field at fault, because Envoy logs it as is.

use meshtally_core::config::DEFAULT_MAX_HOPS;
use meshtally_core::{Config, ConfigError, Direction, NodeMetadata};
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::strategies::{config_key, is_label, json_value, label, HOSTILE_NUMBERS};

/// Longest refusal we accept, in characters, whatever the input size: the log line must not
/// grow with what the config author (or a broken control plane) sends.
const MAX_ERROR_CHARS: usize = 300;

/// Checks the shape every refusal must have and returns its text.
fn check_error(err: &ConfigError) -> Result<String, TestCaseError> {
    let text = err.to_string();
    prop_assert!(!text.contains(['\n', '\r']), "not one line: {text:?}");
    prop_assert!(
        text.chars().count() <= MAX_ERROR_CHARS,
        "{} chars: {text:?}",
        text.chars().count()
    );
    prop_assert!(
        text.contains("field `")
            || text.contains("not valid JSON")
            || text.contains("must be a JSON object"),
        "names no field: {text:?}"
    );
    Ok(text)
}

/// The field an error blames, as the model names faults.
fn blamed(err: &ConfigError) -> &'static str {
    match err {
        ConfigError::Json(_) => "json",
        ConfigError::NotAnObject(_) => "object",
        ConfigError::UnknownField(_) => "unknown",
        ConfigError::WrongType { field, .. } => field,
        ConfigError::BadDirection(_) | ConfigError::NoDirection => "direction",
        ConfigError::BadService(_) | ConfigError::NoService => "service",
        ConfigError::BadVersion(_) => "version",
        ConfigError::BadExternal(_) => "external",
        ConfigError::BadOutboundPolicy(_) => "outbound_policy",
    }
}

/// What the model expects: the config, or the set of fields any of which may be blamed
/// (the order fields are checked in is the map's, which the model does not assume).
enum Expected {
    Valid(Config),
    Refused(Vec<&'static str>),
}

fn model(fields: &Map<String, Value>, node: &NodeMetadata) -> Expected {
    let mut faults = Vec::new();
    let mut service = None;
    let mut version = None;
    let mut direction = None;
    let mut max_hops = DEFAULT_MAX_HOPS;
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("service", Value::String(s)) if is_label(s.as_bytes()) => service = Some(s.clone()),
            ("version", Value::String(s)) if is_label(s.as_bytes()) => version = Some(s.clone()),
            ("version", _) => faults.push("version"),
            ("direction", Value::String(s)) if s == "inbound" => {
                direction = Some(Direction::Inbound)
            }
            ("direction", Value::String(s)) if s == "outbound" => {
                direction = Some(Direction::Outbound)
            }
            ("max_hops", Value::Number(n))
                if n.as_u64()
                    .is_some_and(|n| (1..=u64::from(u32::MAX)).contains(&n)) =>
            {
                max_hops = n.as_u64().map_or(0, |n| n as u32)
            }
            ("service", _) => faults.push("service"),
            ("direction", _) => faults.push("direction"),
            ("max_hops", _) => faults.push("max_hops"),
            _ => faults.push("unknown"),
        }
    }
    if !faults.is_empty() {
        return Expected::Refused(faults);
    }
    let service = service.or_else(|| {
        let named = [&node.app_label, &node.workload_name]
            .into_iter()
            .flatten()
            .find(|v| !v.is_empty())?;
        is_label(named).then(|| String::from_utf8_lossy(named).into_owned())
    });
    match (service, direction) {
        (Some(service), Some(direction)) => Expected::Valid(Config {
            service,
            version: version.unwrap_or_else(|| meshtally_core::config::UNKNOWN_VERSION.to_owned()),
            direction,
            max_hops,
            external: Vec::new(),
            registry_only: false,
            namespace: String::new(),
        }),
        (None, _) => Expected::Refused(vec!["service"]),
        (Some(_), None) => Expected::Refused(vec!["direction"]),
    }
}

fn node_metadata() -> impl Strategy<Value = NodeMetadata> {
    let name = prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        label().prop_map(|l| Some(l.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Some),
    ];
    (name.clone(), name).prop_map(|(workload_name, app_label)| NodeMetadata {
        workload_name,
        app_label,
        version_label: None,
        namespace: None,
    })
}

/// Values a known field is likely to be given, right or nearly right, or any JSON at all.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => label().prop_map(Value::String),
        2 => prop::sample::select(&["inbound", "outbound", "INBOUND", ""][..]).prop_map(Value::from),
        2 => (0u64..20).prop_map(Value::from),
        3 => json_value(),
    ]
}

/// A config object: each known field absent, right, or anything (right most of the time, so
/// accepted configs are common), and now and then extra keys, known or not.
fn config_object() -> impl Strategy<Value = Map<String, Value>> {
    let service = prop_oneof![3 => label().prop_map(Value::String), 1 => field_value()];
    let direction = prop_oneof![
        3 => prop::sample::select(&["inbound", "outbound"][..]).prop_map(Value::from),
        1 => field_value(),
    ];
    let max_hops = prop_oneof![
        3 => prop_oneof![1u64..=20, Just(u64::from(u32::MAX))].prop_map(Value::from),
        1 => field_value(),
    ];
    let extra = prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec((config_key(), field_value()), 1..4),
    ];
    (
        prop::option::of(service),
        prop::option::of(direction),
        prop::option::of(max_hops),
        extra,
    )
        .prop_map(|(service, direction, max_hops, extra)| {
            let known = [
                ("service", service),
                ("direction", direction),
                ("max_hops", max_hops),
            ];
            let mut fields: Map<String, Value> = extra.into_iter().collect();
            for (key, value) in known {
                if let Some(value) = value {
                    fields.insert(key.to_owned(), value);
                }
            }
            fields
        })
}

/// Text that is JSON-shaped enough to get deep into the parser, without being valid JSON.
fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(
        &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"service\"",
            "\"direction\"",
            "\"max_hops\"",
            "\"a\"",
            "\"inbound\"",
            "1",
            "-1",
            "1e3",
            "0x10",
            "999999999999999999999",
            "null",
            "true",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "\"\n\"",
            " ",
            "\u{feff}",
            "\"",
            "\\",
        ][..],
    );
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat().into_bytes())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(err) = Config::parse(&raw, &NodeMetadata::default()) {
            check_error(&err)?;
        }
    }

    #[test]
    fn json_shaped_text_never_panics(raw in token_soup(), node in node_metadata()) {
        if let Err(err) = Config::parse(&raw, &node) {
            check_error(&err)?;
        }
    }

    #[test]
    fn non_objects_are_refused(
        // Objects are wrapped rather than skipped: skipping counts as a reject, and long
        // passes would hit proptest's reject limit.
        value in json_value().prop_map(|v| if v.is_object() { Value::Array(vec![v]) } else { v }),
    ) {
        let err = Config::parse(value.to_string().as_bytes(), &NodeMetadata::default())
            .expect_err("a non-object must be refused");
        let text = check_error(&err)?;
        prop_assert!(text.contains("must be a JSON object"), "{text}");
    }

    #[test]
    fn objects_follow_the_model(
        fields in config_object(),
        node in node_metadata(),
    ) {
        let raw = Value::Object(fields.clone()).to_string();
        let got = Config::parse(raw.as_bytes(), &node);
        match (model(&fields, &node), got) {
            (Expected::Valid(want), Ok(config)) => prop_assert_eq!(config, want),
            (Expected::Valid(want), Err(err)) => {
                prop_assert!(false, "{raw} refused ({err}), want {want:?}")
            }
            (Expected::Refused(faults), Ok(config)) => {
                prop_assert!(false, "{raw} accepted as {config:?}, faults {faults:?}")
            }
            (Expected::Refused(faults), Err(err)) => {
                check_error(&err)?;
                prop_assert!(faults.contains(&blamed(&err)), "{raw}: {err} blames none of {faults:?}");
            }
        }
    }

    /// Number spellings JSON allows and forbids for `max_hops`: only a plain decimal integer
    /// from 1 to u32::MAX is accepted, and the refusal names the field when the JSON is valid.
    #[test]
    fn max_hops_spellings(
        number in prop_oneof![
            prop::sample::select(HOSTILE_NUMBERS).prop_map(str::to_owned),
            "-?[0-9]{1,25}(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?",
        ],
    ) {
        let raw = format!(r#"{{"service":"a","direction":"inbound","max_hops":{number}}}"#);
        let got = Config::parse(raw.as_bytes(), &NodeMetadata::default());
        let trimmed = number.trim_matches([' ', '\t', '\r', '\n']);
        let plain = !trimmed.is_empty()
            && trimmed.bytes().all(|b| b.is_ascii_digit())
            && (trimmed == "0" || !trimmed.starts_with('0'));
        let want = trimmed.parse::<u32>().ok().filter(|n| plain && *n >= 1);
        match (want, got) {
            (Some(n), Ok(config)) => prop_assert_eq!(config.max_hops, n),
            (None, Err(err)) => {
                let text = check_error(&err)?;
                if plain {
                    prop_assert!(text.contains("`max_hops`"), "{raw}: {text}");
                }
            }
            (want, got) => prop_assert!(false, "{raw}: want {want:?}, got {got:?}"),
        }
    }

    /// However long the offending value or key, the refusal stays short and on one line.
    #[test]
    fn huge_values_give_bounded_errors(
        key in prop::sample::select(&["service", "direction", "unknown-key"][..]),
        text in "[^\"\\\\]{1,20}",
        repeat in 1usize..5000,
        in_key in any::<bool>(),
    ) {
        let long = serde_json::to_string(&text.repeat(repeat)).unwrap();
        let raw = if in_key {
            format!(r#"{{"service":"a",{long}:1}}"#)
        } else {
            format!(r#"{{"service":"a","{key}":{long}}}"#)
        };
        // Some long strings are accepted as they are (a label for `service`); the rest must
        // be refused with a bounded line.
        if let Err(err) = Config::parse(raw.as_bytes(), &NodeMetadata::default()) {
            check_error(&err)?;
        }
    }
}
