//! The writer's output must read back, with serde_norway, as exactly the value written.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::{plain_ok, to_string};

fn round_trip(value: &Value) -> String {
    let text = to_string(value).unwrap();
    let back: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(&back, value, "\n{text}");
    text
}

#[test]
fn tricky_strings_read_back_as_strings() {
    let tricky = [
        "",
        " lead",
        "trail ",
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "n",
        "true",
        "False",
        "null",
        "~",
        "8000",
        "0x1F",
        "1e3",
        "-1",
        "+1",
        ".5",
        ".inf",
        "1:20",
        "2001-12-14",
        "a: b",
        "a:",
        "a #b",
        "#x",
        "*x",
        "&x",
        "!x",
        "@x",
        "`x",
        "%x",
        "|x",
        ">x",
        "?x",
        "-x",
        "- x",
        "[x",
        "{x",
        "\"q",
        "'q",
        "a\nb",
        "tab\t",
        "\u{1}",
        "ü",
        "a,b",
        "x=y",
        "/",
        "/a/",
        "a b",
        ".*meshtally_.*",
        "oci://ghcr.io/x@sha256:ab",
        "---",
        "...",
        "=",
        "it's",
        "'",
        "\u{85}",
        "a\u{2028}b",
        "\u{feff}x",
        "{\"a\":[1]}",
    ];
    for s in tricky {
        round_trip(&json!({ "k": s, "list": [s], s: 1 }));
    }
}

#[test]
fn plain_only_when_unambiguous() {
    for plain in [
        "service-a",
        "/healthz",
        "a.b/c",
        "file:///x",
        "s=http://h:1,t=x",
    ] {
        assert!(plain_ok(plain), "{plain}");
    }
    for quoted in [
        "8000", "yes", "Off", "a b", "a:", "a: b", "*", ".x", "-x", "",
    ] {
        assert!(!plain_ok(quoted), "{quoted}");
    }
}

#[test]
fn layout() {
    let text = round_trip(&json!({
        "a": 1,
        "b": { "c": [ { "d": "x", "e": [1, 2] }, "z", [], {} ], "f": true },
        "g": [],
        "h": {},
        "i": [[1, [2]], [{ "j": null }]],
    }));
    assert_eq!(
        text,
        "a: 1\nb:\n  c:\n  - d: x\n    e:\n    - 1\n    - 2\n  - z\n  - []\n  - {}\n  f: true\n\
         g: []\nh: {}\ni:\n- - 1\n  - - 2\n- - j: null\n"
    );
}

#[derive(Serialize)]
enum Match {
    #[serde(rename = "prefix")]
    Prefix(String),
}

#[test]
fn newtype_variants_are_one_key_maps_and_keys_must_be_strings() {
    assert_eq!(
        to_string(&Match::Prefix("/a/".into())).unwrap(),
        "prefix: /a/\n"
    );
    let bad: BTreeMap<u32, u32> = [(1, 2)].into();
    assert!(to_string(&bad).is_err());
}
