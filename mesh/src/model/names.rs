//! Service and namespace names: the DNS rules Kubernetes holds them to, and the generated
//! names `service-a`, `service-b`, … for `--services N`.

/// True for a DNS-1035 label, the rule Kubernetes applies to Service names: 1–63 of
/// `[a-z0-9-]`, starting with a letter, ending with a letter or digit.
pub fn is_dns1035_label(name: &str) -> bool {
    name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && meshtally_wire::names::is_dns1123_label(name.as_bytes())
}

/// True for a DNS-1123 label, the rule for namespaces (may start with a digit).
pub fn is_dns1123_label(name: &str) -> bool {
    meshtally_wire::names::is_dns1123_label(name.as_bytes())
}

/// The name of the `index`-th generated service (0-based): `service-a` … `service-z`, then
/// `service-aa`, `service-ab`, … `service-zz`, `service-aaa` (spreadsheet-column style), so
/// every name stays a short DNS label and the first three are the demo's service-a, -b and -c.
pub fn generated(index: usize) -> String {
    let mut letters = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        letters.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    let mut name = String::from("service-");
    name.extend(letters.iter().rev());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names() {
        let names: Vec<_> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .iter()
            .map(|i| generated(*i))
            .collect();
        assert_eq!(
            names,
            [
                "service-a",
                "service-b",
                "service-z",
                "service-aa",
                "service-ab",
                "service-az",
                "service-ba",
                "service-zz",
                "service-aaa"
            ]
        );
        let all: std::collections::BTreeSet<_> = (0..5000).map(generated).collect();
        assert_eq!(all.len(), 5000);
        assert!(all.iter().all(|n| is_dns1035_label(n)));
    }

    #[test]
    fn dns_rules() {
        for good in ["a", "service-a", "a1", &"a".repeat(63)] {
            assert!(is_dns1035_label(good), "{good}");
        }
        for bad in [
            "",
            "1a",
            "Service_A",
            "a-",
            "-a",
            "a.b",
            "Ab",
            &"a".repeat(64),
        ] {
            assert!(!is_dns1035_label(bad), "{bad}");
        }
        assert!(is_dns1123_label("1demo"));
        assert!(!is_dns1123_label("Demo"));
    }
}
