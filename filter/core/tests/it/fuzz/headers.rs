//! Many duplicate `x-mesh-*` headers, as the filter sees them: Envoy hands `get_header` either
//! the values joined with "," or only the first. Either way, what the filter writes back must be
//! short and well-formed, and a list of names must never be taken for a name.

use meshtally_core::tagging::{
    destination_from_authority, format_u32, inbound_hops, parse_hops, resolve_caller, UNKNOWN,
};
use meshtally_core::HopDecision;
use proptest::prelude::*;

use super::strategies::{duplicates, header_value, is_label, label};

proptest! {
    /// A joined list of caller names is not a caller name.
    #[test]
    fn joined_sources_are_unknown(values in duplicates()) {
        let caller = resolve_caller(None, Some(&values));
        prop_assert_eq!(caller.name, UNKNOWN);
        prop_assert!(!caller.verified);
    }

    /// A joined list of hop counts is no count: it starts over at 0, never at one of the values.
    #[test]
    fn joined_hops_count_as_zero(counts in prop::collection::vec(0u32..20, 2..1000)) {
        for sep in [",", ", "] {
            let joined: Vec<String> = counts.iter().map(u32::to_string).collect();
            prop_assert_eq!(parse_hops(Some(joined.join(sep).as_bytes())), 0);
        }
    }

    /// With only the first of the duplicates, the filter behaves as for that one header.
    #[test]
    fn first_of_duplicates_is_a_plain_header(
        first in label(),
        hops in 0u32..1000,
        rest in duplicates(),
    ) {
        let rest = String::from_utf8(rest).unwrap();
        let first_value = |joined: &str| joined.split(',').next().unwrap_or_default().to_owned();
        let source = first_value(&format!("{first},{rest}"));
        prop_assert_eq!(resolve_caller(None, Some(source.as_bytes())).name, first.as_str());
        let count = first_value(&format!("{hops},{rest}"));
        prop_assert_eq!(parse_hops(Some(count.as_bytes())), hops);
    }

    /// Whatever the request carries, every value the filter writes is bounded and clean: the
    /// source and destination are labels or `unknown`, the hop count at most 10 digits.
    #[test]
    fn written_values_are_bounded(
        source in header_value(),
        hops in header_value(),
        authority in header_value(),
        max_hops in 1u32..20,
    ) {
        let caller = resolve_caller(None, Some(&source));
        let destination = destination_from_authority(Some(&authority));
        for name in [caller.name, destination] {
            prop_assert!(name == UNKNOWN || is_label(name.as_bytes()), "{name:?}");
        }
        let mut buf = [0; 10];
        let inbound = format_u32(parse_hops(Some(&hops)), &mut buf);
        prop_assert!(!inbound.is_empty() && inbound.bytes().all(|b| b.is_ascii_digit()));
        match inbound_hops(parse_hops(Some(&hops)), max_hops) {
            HopDecision::Forward(n) => {
                prop_assert!(n >= 1 && u64::from(n) <= u64::from(max_hops) + 1)
            }
            HopDecision::Loop(n) => prop_assert!(n > max_hops),
        }
    }
}
