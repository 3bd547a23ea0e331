//! The config's JSON reader (`meshtally_core::json`) against serde_json, the reader the rest of
//! the workspace uses: on any bytes, JSON-shaped or not, it accepts exactly what serde_json
//! accepts, and reads the same value (numbers classified as serde_json does: u64, i64, float).

use meshtally_core::json::{self, Json, Number};
use proptest::prelude::*;
use serde_json::Value;

use super::strategies::json_value;

/// serde_json's reading of a value, in the reader's terms.
fn expected(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => Json::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::U64(u),
            (_, Some(i)) => Number::I64(i),
            _ => Number::Float,
        }),
        Value::String(s) => Json::String(s.clone()),
        Value::Array(_) => Json::Array,
        Value::Object(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), expected(v))).collect()),
    }
}

/// The reader's object members sorted by key, as serde_json's map holds them.
fn sorted(v: Json) -> Json {
    match v {
        Json::Object(mut m) => {
            m.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(m.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        other => other,
    }
}

fn agrees(raw: &[u8]) -> Result<(), TestCaseError> {
    let ours = json::parse(raw);
    match serde_json::from_slice::<Value>(raw) {
        Ok(v) => {
            let ours = ours.map_err(|e| {
                TestCaseError::fail(format!(
                    "{:?}: serde_json reads it, we say {e}",
                    String::from_utf8_lossy(raw)
                ))
            })?;
            prop_assert_eq!(
                sorted(ours),
                expected(&v),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        Err(e) => {
            let Err(ours) = ours else {
                return Err(TestCaseError::fail(format!(
                    "{:?}: serde_json refuses it ({e}), we read it",
                    String::from_utf8_lossy(raw)
                )));
            };
            prop_assert!(!ours.contains('\n') && ours.len() < 120, "{ours:?}");
        }
    }
    Ok(())
}

/// Tokens from which valid and nearly valid JSON is made.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(
        &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"a\"",
            "\"max_hops\"",
            "1",
            "-1",
            "-0",
            "0",
            "01",
            "1.",
            "1.5",
            ".5",
            "1e3",
            "1E+3",
            "1e-3",
            "1e",
            "-",
            "1e400",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "18446744073709551616",
            "-9223372036854775809",
            "0x10",
            "null",
            "nul",
            "true",
            "false",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "\"\\ud83d\\ude00\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\x\"",
            "\"\n\"",
            "\"\t\"",
            " ",
            "\n",
            "\r",
            "\t",
            "\u{feff}",
            "\u{e9}",
            "\"",
            "\\",
            "/",
        ][..],
    );
    prop::collection::vec(token, 0..24).prop_map(|t| t.concat().into_bytes())
}

proptest! {
    #[test]
    fn token_soup_reads_as_serde_json_reads_it(raw in soup()) {
        agrees(&raw)?;
    }

    #[test]
    fn arbitrary_bytes_read_as_serde_json_reads_them(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        agrees(&raw)?;
    }

    #[test]
    fn serialised_values_read_back(value in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        agrees(&text)?;
    }
}

/// Within a few units in the last place of f64::MAX serde_json's fast float parser says
/// "number out of range" where correct rounding (this reader) gives f64::MAX; either way a
/// config refuses such a number (no field takes a float), only the words differ. Elsewhere
/// they agree.
#[test]
fn nesting_limit_and_number_edges_match() {
    for raw in [
        "[".repeat(127) + &"]".repeat(127),
        "[".repeat(128),
        "{\"a\":".repeat(130),
        "1.7976931348623157e308".to_owned(),
        "1.8e308".to_owned(),
        "-1e309".to_owned(),
        "0.0000000000000000000000000000000000001e-400".to_owned(),
        "-0.0".to_owned(),
        "[1,2,]".to_owned(),
        "{\"a\":1,}".to_owned(),
    ] {
        agrees(raw.as_bytes()).unwrap();
    }
}
