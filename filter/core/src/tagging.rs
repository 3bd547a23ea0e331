//! Tagging rules: who called whom and how many hops, decided from raw header and property bytes.
//! Everything here takes untrusted input, so nothing here can fail or allocate without bound.

/// Header values longer than this are treated as absent: they are never valid tags and we do
/// not want to copy them.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;

/// The caller name used when nothing trustworthy identifies it.
pub const UNKNOWN: &str = "unknown";

pub use meshtally_wire::names::is_dns1123_label;

/// Reads an incoming `x-mesh-hops`. Missing, negative, malformed, oversized or out-of-range
/// values count as 0: the header is client-controlled, so it can only ever lower our guard's
/// count to where a fresh request starts.
pub fn parse_hops(value: Option<&[u8]>) -> u32 {
    let Some(raw) = value else { return 0 };
    let raw = raw.trim_ascii();
    if raw.is_empty() || raw.len() > 10 {
        return 0;
    }
    let mut n: u32 = 0;
    for &b in raw {
        if !b.is_ascii_digit() {
            return 0;
        }
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u32::from(b - b'0')))
        {
            Some(n) => n,
            None => return 0,
        };
    }
    n
}

/// Reads a response's `:status`: three digits from 100 to 999, else `None`.
pub fn parse_status(value: &[u8]) -> Option<u64> {
    let code = u64::from(parse_hops(Some(value)));
    (100..=999).contains(&code).then_some(code)
}

/// What the callee's side does with a call, given the `x-mesh-hops` it arrived with: the calls
/// made so far, this one included (the caller's app passes on what its own sidecar gave it; a
/// call from outside the mesh arrives with none, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopDecision {
    /// Pass the call to the app with this `x-mesh-hops`: the count the app's own calls carry.
    Forward(u32),
    /// Answer `508 Loop Detected` locally; the value is the hop count that was refused.
    Loop(u32),
}

pub fn inbound_hops(arrived: u32, max_hops: u32) -> HopDecision {
    if arrived > max_hops {
        HopDecision::Loop(arrived)
    } else {
        HopDecision::Forward(arrived.saturating_add(1))
    }
}

/// The destination service named by a request authority: its first DNS label, without the port
/// (`service-a.istio-demo.svc.cluster.local:8000` → `service-a`). Anything that is not a valid
/// label becomes `unknown`, so a client cannot mint arbitrary metric names through `Host`.
pub fn destination_from_authority(authority: Option<&[u8]>) -> &str {
    let Some(authority) = authority else {
        return UNKNOWN;
    };
    if authority.len() > MAX_HEADER_VALUE {
        return UNKNOWN;
    }
    let end = authority
        .iter()
        .position(|b| *b == b'.' || *b == b':')
        .unwrap_or(authority.len());
    let label = authority.get(..end).unwrap_or_default();
    if is_dns1123_label(label) {
        std::str::from_utf8(label).unwrap_or(UNKNOWN)
    } else {
        UNKNOWN
    }
}

/// The `destination_version` of a call that leaves the mesh, and the destinations of calls to
/// hosts the mesh does not know (see `meshtally_wire::metrics`).
pub use meshtally_wire::metrics::{BLACKHOLE, EXTERNAL_VERSION as EXTERNAL, PASSTHROUGH};

/// What an outbound call's destination is decided from besides its authority.
pub struct Registry<'a> {
    pub external: &'a [crate::config::ExternalHost],
    pub registry_only: bool,
    /// The caller's namespace (`<service>.<namespace>` is in the mesh); empty when unknown.
    pub namespace: &'a str,
    /// The caller: an entry that names its callers refuses the others.
    pub service: &'a str,
}

/// An outbound call's destination and whether it leaves the mesh: a declared external host is
/// its entry's name; a host inside the mesh its service's first label
/// ([`destination_from_authority`]); any other host (an address, or a name outside the mesh's
/// domain) [`BLACKHOLE`] or [`PASSTHROUGH`] as the sidecar treats it.
pub fn outbound_destination<'a>(
    authority: Option<&'a [u8]>,
    registry: &Registry<'a>,
) -> (&'a str, bool) {
    let Some(raw) = authority.filter(|a| a.len() <= MAX_HEADER_VALUE) else {
        return (UNKNOWN, false);
    };
    // The host without its port (an IPv6 literal keeps its brackets).
    let host = match raw.iter().rposition(|b| *b == b':') {
        Some(i) if !raw.ends_with(b"]") => raw.get(..i).unwrap_or_default(),
        _ => raw,
    };
    let unknown_host = if registry.registry_only {
        BLACKHOLE
    } else {
        PASSTHROUGH
    };
    if let Some(e) = registry.external.iter().find(|e| e.host.as_bytes() == host) {
        let admitted = e
            .callers
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == registry.service));
        return if admitted {
            (e.name.as_str(), true)
        } else {
            (unknown_host, true)
        };
    }
    if in_mesh(host, registry.namespace.as_bytes()) {
        (destination_from_authority(Some(raw)), false)
    } else {
        (unknown_host, true)
    }
}

/// A name the mesh resolves: one label (`service-b`), `<service>.<namespace>[.svc…]`, or any
/// `….svc.cluster.local` / `….svc`. With no namespace known, any two labels are taken for
/// `<service>.<namespace>`.
fn in_mesh(host: &[u8], namespace: &[u8]) -> bool {
    let mut labels = host.split(|b| *b == b'.');
    let first = labels.next().unwrap_or_default();
    let Some(second) = labels.next() else {
        return is_dns1123_label(first);
    };
    if host.ends_with(b".svc.cluster.local") || host.ends_with(b".svc") {
        return true;
    }
    let two_labels = labels.next().is_none();
    if namespace.is_empty() {
        return two_labels && is_dns1123_label(second) && !second.iter().all(u8::is_ascii_digit);
    }
    second == namespace && two_labels
}

/// The service account named by an Istio SPIFFE identity (see [`crate::identity`]).
pub use crate::identity::parse_spiffe_id as spiffe_identity;

/// Who called, and whether a verified certificate said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller<'a> {
    pub name: &'a str,
    pub verified: bool,
}

/// Resolves the caller on the inbound side. A SPIFFE URI SAN from an mTLS peer certificate wins
/// over any header; a header is only used when it is a well-formed label; otherwise `unknown`.
pub fn resolve_caller<'a>(
    peer_uri_san: Option<&'a [u8]>,
    source_header: Option<&'a [u8]>,
) -> Caller<'a> {
    if let Some((_, sa)) = peer_uri_san.and_then(spiffe_identity) {
        return Caller {
            name: sa,
            verified: true,
        };
    }
    let claimed = source_header
        .filter(|v| v.len() <= MAX_HEADER_VALUE && is_dns1123_label(v))
        .and_then(|v| std::str::from_utf8(v).ok());
    match claimed {
        Some(name) => Caller {
            name,
            verified: false,
        },
        None => Caller {
            name: UNKNOWN,
            verified: false,
        },
    }
}

/// Formats a hop count without going through `core::fmt`, which keeps the module small.
pub fn format_u32(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(buf.get(i..).unwrap_or_default()).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "service-a", "a1", "1a", &"x".repeat(63)] {
            assert!(is_dns1123_label(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Service_A",
            "A",
            "a.b",
            "a b",
            &"x".repeat(64),
            "é",
        ] {
            assert!(!is_dns1123_label(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn hops_parsing() {
        let cases: &[(Option<&[u8]>, u32)] = &[
            (None, 0),
            (Some(b""), 0),
            (Some(b"0"), 0),
            (Some(b"3"), 3),
            (Some(b" 7 "), 7),
            (Some(b"-1"), 0),
            (Some(b"+1"), 0),
            (Some(b"1e3"), 0),
            (Some(b"0x10"), 0),
            (Some(b"3.0"), 0),
            (Some(b"999999999999999999999"), 0),
            (Some(b"4294967295"), u32::MAX),
            (Some(b"4294967296"), 0),
            (Some(b"\xff\xfe"), 0),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_hops(*raw), *want, "{raw:?}");
        }
        assert_eq!(parse_hops(Some("9".repeat(9000).as_bytes())), 0);
    }

    #[test]
    fn status_parsing() {
        assert_eq!(parse_status(b"200"), Some(200));
        assert_eq!(parse_status(b"508"), Some(508));
        for bad in [&b""[..], b"0", b"99", b"1000", b"2x0", b"-200", b"\xff"] {
            assert_eq!(parse_status(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hop_guard() {
        assert_eq!(inbound_hops(0, 10), HopDecision::Forward(1));
        assert_eq!(inbound_hops(9, 10), HopDecision::Forward(10));
        assert_eq!(inbound_hops(10, 10), HopDecision::Forward(11));
        assert_eq!(inbound_hops(11, 10), HopDecision::Loop(11));
        assert_eq!(inbound_hops(u32::MAX, 10), HopDecision::Loop(u32::MAX));
        assert_eq!(
            inbound_hops(u32::MAX, u32::MAX),
            HopDecision::Forward(u32::MAX)
        );
        assert_eq!(inbound_hops(0, 1), HopDecision::Forward(1));
        assert_eq!(inbound_hops(1, 1), HopDecision::Forward(2));
        assert_eq!(inbound_hops(2, 1), HopDecision::Loop(2));
    }

    #[test]
    fn outbound_destinations_inside_and_outside_the_mesh() {
        use crate::config::ExternalHost;
        let external = [
            ExternalHost {
                host: "api.payments.example".into(),
                name: "payments".into(),
                callers: Some(vec!["service-b".into()]),
            },
            ExternalHost {
                host: "weather.example.org".into(),
                name: "weather".into(),
                callers: None,
            },
        ];
        let registry = |service, registry_only| Registry {
            external: &external,
            registry_only,
            namespace: "istio-demo",
            service,
        };
        let at = |authority: &'static str, service, registry_only| {
            outbound_destination(
                Some(authority.as_bytes()),
                &registry(service, registry_only),
            )
        };
        assert_eq!(
            at("api.payments.example", "service-b", true),
            ("payments", true)
        );
        assert_eq!(
            at("api.payments.example:80", "service-b", true),
            ("payments", true)
        );
        assert_eq!(
            at("api.payments.example", "service-a", true),
            (BLACKHOLE, true)
        );
        assert_eq!(
            at("weather.example.org:8080", "service-a", false),
            ("weather", true)
        );
        assert_eq!(at("127.0.0.1:9000", "service-a", true), (BLACKHOLE, true));
        assert_eq!(
            at("127.0.0.1:9000", "service-a", false),
            (PASSTHROUGH, true)
        );
        assert_eq!(at("[::1]:9000", "service-a", false), (PASSTHROUGH, true));
        assert_eq!(at("example.com", "service-a", true), (BLACKHOLE, true));
        assert_eq!(at("service-b", "service-a", true), ("service-b", false));
        assert_eq!(
            at("service-b:8001", "service-a", true),
            ("service-b", false)
        );
        assert_eq!(
            at("service-b.istio-demo", "service-a", true),
            ("service-b", false)
        );
        assert_eq!(
            at(
                "service-b.istio-demo.svc.cluster.local:8001",
                "service-a",
                true
            ),
            ("service-b", false)
        );
        assert_eq!(
            at("service-b.other.svc.cluster.local", "service-a", true),
            ("service-b", false)
        );
        assert_eq!(
            outbound_destination(None, &registry("a", true)),
            (UNKNOWN, false)
        );
        let no_namespace = Registry {
            namespace: "",
            ..registry("a", true)
        };
        assert_eq!(
            outbound_destination(Some(b"b.ns"), &no_namespace),
            ("b", false)
        );
        assert_eq!(
            outbound_destination(Some(b"10.0.0.1"), &no_namespace),
            (BLACKHOLE, true)
        );
    }

    #[test]
    fn authority_to_destination() {
        let cases: &[(Option<&[u8]>, &str)] = &[
            (
                Some(b"service-a.istio-demo.svc.cluster.local:8000"),
                "service-a",
            ),
            (Some(b"service-b:8001"), "service-b"),
            (Some(b"service-c"), "service-c"),
            (Some(b"127.0.0.1:8000"), "127"),
            (Some(b"Evil;.;x"), UNKNOWN),
            (Some(b"a=.=b;.;c"), UNKNOWN),
            (Some(b""), UNKNOWN),
            (Some(b":80"), UNKNOWN),
            (Some(b"[::1]:80"), UNKNOWN),
            (None, UNKNOWN),
        ];
        for (raw, want) in cases {
            assert_eq!(destination_from_authority(*raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn caller_resolution() {
        let san = Some(&b"spiffe://cluster.local/ns/demo/sa/service-c"[..]);
        assert_eq!(
            resolve_caller(san, Some(b"service-b")),
            Caller {
                name: "service-c",
                verified: true
            }
        );
        assert_eq!(
            resolve_caller(None, Some(b"service-b")),
            Caller {
                name: "service-b",
                verified: false
            }
        );
        assert_eq!(
            resolve_caller(None, None),
            Caller {
                name: UNKNOWN,
                verified: false
            }
        );
        assert_eq!(
            resolve_caller(None, Some(b"Bad Name")),
            Caller {
                name: UNKNOWN,
                verified: false
            }
        );
        assert_eq!(
            resolve_caller(None, Some(b"\xc3\x28")),
            Caller {
                name: UNKNOWN,
                verified: false
            }
        );
        let huge = vec![b'a'; MAX_HEADER_VALUE + 1];
        assert_eq!(
            resolve_caller(None, Some(&huge)),
            Caller {
                name: UNKNOWN,
                verified: false
            }
        );
        // A URI SAN that is not an Istio identity does not verify anything.
        let other = Some(&b"spiffe://cluster.local/workload/x"[..]);
        assert_eq!(
            resolve_caller(other, Some(b"service-b")),
            Caller {
                name: "service-b",
                verified: false
            }
        );
    }

    #[test]
    fn number_formatting() {
        for n in [0, 1, 9, 10, 11, 4096, u32::MAX] {
            let mut buf = [0; 10];
            assert_eq!(format_u32(n, &mut buf), n.to_string());
        }
    }
}
