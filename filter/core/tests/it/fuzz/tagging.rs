//! The header rules against hostile values: each function is checked against a long-hand model
//! of its documented rule, and every name that can reach a header or a metric must be a
//! DNS-1123 label or `unknown`.

use meshtally_core::tagging::{
    destination_from_authority, format_u32, inbound_hops, is_dns1123_label, parse_hops,
    resolve_caller, spiffe_identity, UNKNOWN,
};
use meshtally_core::HopDecision;
use proptest::prelude::*;

use super::strategies::{header_value, is_label, label, near_label, MAX_HEADER_VALUE};

/// The hop count a header value means: ASCII digits, at most 10 of them once ASCII whitespace
/// is trimmed, that fit a u32; anything else is 0.
fn hops_model(raw: &[u8]) -> u32 {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c');
    let start = raw.iter().position(|b| !ws(b)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    let digits = &raw[start..end.max(start)];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// `spiffe://<td>/ns/<ns>/sa/<sa>` with a non-empty trust domain and label namespace and name.
fn spiffe_model(uri: &[u8]) -> Option<(String, String)> {
    let rest = std::str::from_utf8(uri).ok()?.strip_prefix("spiffe://")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts[..] {
        [td, "ns", ns, "sa", sa]
            if !td.is_empty() && is_label(ns.as_bytes()) && is_label(sa.as_bytes()) =>
        {
            Some((ns.to_owned(), sa.to_owned()))
        }
        _ => None,
    }
}

/// URI SANs: well-formed Istio identities, their near misses, and arbitrary bytes.
fn uri_san() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop_oneof![
        3 => label(),
        1 => near_label(),
        1 => prop::sample::select(&["ns", "sa", ""][..]).prop_map(str::to_owned),
    ];
    let shaped = (
        prop::sample::select(&["spiffe://", "SPIFFE://", "https://", "spiffe:/", ""][..]),
        prop_oneof![Just("cluster.local".to_owned()), near_label()],
        prop::collection::vec(segment, 0..6),
        any::<bool>(),
    )
        .prop_map(|(scheme, td, segs, istio)| {
            let path = if istio && segs.len() >= 2 {
                format!("ns/{}/sa/{}", segs[0], segs[1])
            } else {
                segs.join("/")
            };
            format!("{scheme}{td}/{path}").into_bytes()
        });
    prop_oneof![4 => shaped, 1 => header_value()]
}

proptest! {
    #[test]
    fn dns_labels_match_the_rule(
        name in prop_oneof![
            near_label().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..70),
        ],
    ) {
        prop_assert_eq!(is_dns1123_label(&name), is_label(&name), "{:?}", name);
    }

    #[test]
    fn hops_parse_as_documented(raw in header_value()) {
        prop_assert_eq!(parse_hops(Some(&raw)), hops_model(&raw), "{:?}", String::from_utf8_lossy(&raw));
    }

    #[test]
    fn hop_counts_round_trip(n in any::<u32>()) {
        let mut buf = [0; 10];
        let text = format_u32(n, &mut buf);
        prop_assert_eq!(text, n.to_string());
        prop_assert_eq!(parse_hops(Some(text.as_bytes())), n);
    }

    #[test]
    fn hop_guard_saturates(arrived in any::<u32>(), max_hops in any::<u32>()) {
        let want = if arrived > max_hops {
            HopDecision::Loop(arrived)
        } else {
            HopDecision::Forward(arrived.saturating_add(1))
        };
        prop_assert_eq!(inbound_hops(arrived, max_hops), want);
    }

    #[test]
    fn destination_is_a_label_prefix(authority in header_value()) {
        let got = destination_from_authority(Some(&authority));
        let end = authority.iter().position(|b| *b == b'.' || *b == b':').unwrap_or(authority.len());
        let first = &authority[..end];
        if authority.len() <= MAX_HEADER_VALUE && is_label(first) {
            prop_assert_eq!(got.as_bytes(), first);
        } else {
            prop_assert_eq!(got, UNKNOWN);
        }
    }

    #[test]
    fn spiffe_identities_match_the_grammar(uri in uri_san()) {
        let got = spiffe_identity(&uri).map(|(ns, sa)| (ns.to_owned(), sa.to_owned()));
        prop_assert_eq!(got, spiffe_model(&uri), "{:?}", String::from_utf8_lossy(&uri));
    }

    #[test]
    fn callers_are_labels_and_only_certificates_verify(
        san in prop::option::of(uri_san()),
        header in prop::option::of(header_value()),
    ) {
        let caller = resolve_caller(san.as_deref(), header.as_deref());
        prop_assert!(caller.name == UNKNOWN || is_label(caller.name.as_bytes()), "{caller:?}");
        prop_assert!(caller.name.len() <= 63);
        match san.as_deref().and_then(spiffe_model) {
            Some((_, sa)) => {
                prop_assert!(caller.verified);
                prop_assert_eq!(caller.name, sa);
            }
            None => {
                prop_assert!(!caller.verified);
                let want = header
                    .as_deref()
                    .filter(|h| is_label(h))
                    .map_or(UNKNOWN.to_owned(), |h| String::from_utf8_lossy(h).into_owned());
                prop_assert_eq!(caller.name, want);
            }
        }
    }
}
