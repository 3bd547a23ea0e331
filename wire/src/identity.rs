//! Istio workload identities in the two spellings meshtally meets: the SPIFFE ID a workload
//! certificate carries (`spiffe://cluster.local/ns/<namespace>/sa/<account>`), which the filter
//! reads from the peer certificate and the local mesh's CA writes into it, and the principal an
//! AuthorizationPolicy names (the same without `spiffe://`), which `render` writes.

use crate::names::is_dns1123_label;

/// The trust domain of every identity meshtally issues or names (Istio's default).
pub const TRUST_DOMAIN: &str = "cluster.local";

const SCHEME: &str = "spiffe://";

/// `cluster.local/ns/<namespace>/sa/<account>`: how an AuthorizationPolicy names a workload.
pub fn principal(namespace: &str, account: &str) -> String {
    format!("{TRUST_DOMAIN}/ns/{namespace}/sa/{account}")
}

/// `spiffe://cluster.local/ns/<namespace>/sa/<account>`: the URI SAN of a workload certificate.
pub fn spiffe_id(namespace: &str, account: &str) -> String {
    format!("{SCHEME}{}", principal(namespace, account))
}

/// The namespace and service account of a SPIFFE ID of any trust domain:
/// `spiffe://<trust-domain>/ns/<namespace>/sa/<account>` → `(namespace, account)`. Anything
/// else (another layout, a name that is not a DNS-1123 label, bytes that are not UTF-8) is
/// `None`: the filter then trusts no identity.
pub fn parse_spiffe_id(uri: &[u8]) -> Option<(&str, &str)> {
    let uri = std::str::from_utf8(uri).ok()?;
    let rest = uri.strip_prefix(SCHEME)?;
    let mut parts = rest.split('/');
    let trust_domain = parts.next()?;
    let (ns_key, ns, sa_key, sa) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || trust_domain.is_empty() || ns_key != "ns" || sa_key != "sa" {
        return None;
    }
    (is_dns1123_label(ns.as_bytes()) && is_dns1123_label(sa.as_bytes())).then_some((ns, sa))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (ns, sa) in [
            ("istio-demo", "service-b"),
            ("istio-system", "ingress-gateway"),
            ("a", "b"),
        ] {
            let id = spiffe_id(ns, sa);
            assert_eq!(parse_spiffe_id(id.as_bytes()), Some((ns, sa)), "{id}");
            assert_eq!(
                id.strip_prefix("spiffe://"),
                Some(principal(ns, sa).as_str())
            );
        }
        assert_eq!(
            spiffe_id("istio-demo", "service-b"),
            "spiffe://cluster.local/ns/istio-demo/sa/service-b"
        );
    }

    #[test]
    fn other_layouts_are_no_identity() {
        for bad in [
            &b"spiffe://cluster.local/ns/istio-demo/sa/"[..],
            b"spiffe://cluster.local/ns/istio-demo/sa/b/extra",
            b"spiffe:///ns/x/sa/b",
            b"https://cluster.local/ns/x/sa/b",
            b"spiffe://cluster.local/sa/b/ns/x",
            b"spiffe://cluster.local/ns/x/sa/Bad_Name",
            b"\xff",
        ] {
            assert_eq!(parse_spiffe_id(bad), None, "{bad:?}");
        }
        // Another trust domain still names the account.
        assert_eq!(
            parse_spiffe_id(b"spiffe://example.org/ns/x/sa/y"),
            Some(("x", "y"))
        );
    }
}
