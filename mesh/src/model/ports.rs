//! Which application ports a meshed pod can use. Istio's sidecar binds a block of ports inside
//! every pod (and iptables redirects traffic through some of them), so an app listening there
//! either fails to bind or has its traffic hijacked.

/// First and last port of the block Istio keeps for itself. Istio's "Application Requirements"
/// page lists 15000 (Envoy admin), 15001 (outbound), 15002 (failure detection), 15004 (debug),
/// 15006 (inbound), 15008 (HBONE), 15009 (HBONE on older releases), 15020 (merged telemetry),
/// 15021 (health), 15053 (DNS) and 15090 (Envoy Prometheus); istiod's 15010/15012/15014/15017
/// fall inside too. We reserve the whole span rather than the list, as new releases add ports
/// inside it (15002 and 15008 are recent) and nothing outside it is documented.
pub const RESERVED_FIRST: u16 = 15000;
pub const RESERVED_LAST: u16 = 15090;

pub fn is_reserved(port: u16) -> bool {
    (RESERVED_FIRST..=RESERVED_LAST).contains(&port)
}

/// A port number as the user wrote it, checked to be a usable TCP port.
pub fn checked(port: u64) -> Option<u16> {
    u16::try_from(port).ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_sidecar_ports_are_reserved() {
        for port in [
            15000, 15001, 15002, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090,
        ] {
            assert!(is_reserved(port), "{port}");
        }
        assert!(!is_reserved(14999));
        assert!(!is_reserved(15091));
        assert!(!is_reserved(8000));
    }

    #[test]
    fn range() {
        assert_eq!(checked(0), None);
        assert_eq!(checked(1), Some(1));
        assert_eq!(checked(65535), Some(65535));
        assert_eq!(checked(65536), None);
    }
}
