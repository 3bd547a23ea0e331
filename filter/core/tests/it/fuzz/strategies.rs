//! Generators the properties share: hostile header values, label-shaped names, arbitrary JSON,
//! and an independent DNS-1123 check to judge the code under test against.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value};

/// The header length past which the filter treats a value as absent.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;

/// proptest's config (so `PROPTEST_CASES` still rules), with the case count divided for
/// properties whose single case is expensive, to keep the bounded pass short.
pub fn cases_divided_by(divisor: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: (base.cases / divisor).max(1),
        ..base
    }
}

/// A small deterministic stream of numbers (splitmix64) for properties that need thousands of
/// inputs per case: drawing them from one proptest seed is far cheaper than a proptest
/// collection of that size, and the case stays reproducible from its seed.
pub struct Stream(pub u64);

impl Stream {
    pub fn next_below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// DNS-1123 label, written out long-hand rather than calling the code under test.
pub fn is_label(s: &[u8]) -> bool {
    let ok_byte = |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-');
    !s.is_empty()
        && s.len() <= 63
        && s.iter().all(|&b| ok_byte(b))
        && s.first() != Some(&b'-')
        && s.last() != Some(&b'-')
}

/// Valid labels, weighted towards the 63-character edge.
pub fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?",
        "[a-z0-9]([a-z0-9-]{59,61}[a-z0-9])?",
        Just("x".repeat(63)),
    ]
}

/// Names that are nearly labels: wrong case, underscores, dots, edge hyphens, 64+ characters,
/// unicode, or empty.
pub fn near_label() -> impl Strategy<Value = String> {
    prop_oneof![
        label(),
        "[a-zA-Z0-9_.-]{0,12}",
        "-[a-z]{1,5}|[a-z]{1,5}-",
        "[a-z]{64,80}",
        "\\PC{0,10}",
        Just(String::new()),
        Just("Service_A".to_owned()),
        Just("é".to_owned()),
    ]
}

/// The hop-count spellings the reliability issue names, and their relatives.
pub const HOSTILE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "999999999999999999999",
    "1e3",
    "0x10",
    "+1",
    "1.0",
    "01",
    "00000000001",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    " 7 ",
    "\t3\r\n",
    "NaN",
    "Infinity",
    "",
];

/// Header values as a hostile client or a confused host might send them: short arbitrary
/// bytes, non-UTF-8, label-ish text, numbers, values around and over 8 KiB, and several
/// values of a repeated header joined with commas (what a host hands over for duplicates).
pub fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        prop::sample::select(HOSTILE_NUMBERS).prop_map(|s| s.as_bytes().to_vec()),
        "[0-9]{0,12}".prop_map(String::into_bytes),
        near_label().prop_map(String::into_bytes),
        Just(b"\xff\xfe\xc3\x28".to_vec()),
        (MAX_HEADER_VALUE - 4..MAX_HEADER_VALUE + 4, any::<u8>())
            .prop_map(|(len, fill)| vec![fill; len]),
        (label(), MAX_HEADER_VALUE - 70..MAX_HEADER_VALUE + 4).prop_map(|(l, len)| {
            let mut v = format!("{l}.").into_bytes();
            v.resize(len.max(v.len()), b'a');
            v
        }),
        duplicates(),
    ]
}

/// A repeated header as the host may present it: up to 1000 values joined by "," or ", ".
/// A few distinct values cycled, since repetition is the point and generating 1000 labels a
/// case would dominate the bounded pass.
pub fn duplicates() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop_oneof![label(), "[0-9]{1,3}"], 1..6),
        2usize..1000,
        prop::sample::select(&[",", ", ", " ,"][..]),
    )
        .prop_map(|(values, count, sep)| {
            let all: Vec<&str> = values
                .iter()
                .map(String::as_str)
                .cycle()
                .take(count)
                .collect();
            all.join(sep).into_bytes()
        })
}

/// Arbitrary JSON, including numbers a u32 field must refuse and strings with control
/// characters, nested a few levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // NaN and infinities become null, as serde_json has no other spelling for them.
        any::<f64>().prop_map(Value::from),
        prop::sample::select(&[0u64, 1, 2, 10, 4_294_967_295, 4_294_967_296, u64::MAX][..])
            .prop_map(Value::from),
        Just(Value::from(-1)),
        Just(Value::from(1.5)),
        Just(Value::from(1e3)),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\]{0,8}".prop_map(Value::String),
        near_label().prop_map(Value::String),
        prop::sample::select(&["inbound", "outbound", "Inbound", "sideways", "10"][..])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys for a config object: the three known ones most of the time, sometimes anything.
pub fn config_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&["service", "version", "direction", "max_hops"][..]).prop_map(str::to_owned),
        1 => prop::sample::select(&["Service", "max-hops", "", "colour", "service "][..])
            .prop_map(str::to_owned),
        1 => any::<String>(),
        1 => "[a-z_\\n`]{60,200}",
    ]
}
