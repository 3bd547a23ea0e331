//! The one name rule every side checks the same way: a Kubernetes DNS-1123 label (service,
//! namespace, service account and version names).

/// True for an RFC 1123 label as Kubernetes uses it: 1–63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(name: &[u8]) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (name.first(), name.last()) {
        (Some(first), Some(last)) => {
            name.len() <= 63
                && alnum(first)
                && alnum(last)
                && name.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}
