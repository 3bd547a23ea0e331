//! Sums over Envoy's `/stats` counters (read through the testkit's Envoy runner): meshtally
//! spreads one metric over a counter per tag set, so a figure is a sum of several.

/// One stat by exact name, 0 when absent.
pub fn value(stats: &[(String, u64)], name: &str) -> u64 {
    stats.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
}

/// The sum of every counter whose name ends with `suffix`: meshtally encodes its labels in the
/// name, so `meshtally_requests_total` is spread over one counter per tag set.
pub fn sum_ending_with(stats: &[(String, u64)], suffix: &str) -> u64 {
    stats
        .iter()
        .filter(|(name, _)| name.ends_with(suffix))
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_by_suffix() {
        let stats = vec![
            ("source=.=a;.;meshtally_requests_total".to_owned(), 3),
            ("source=.=b;.;meshtally_requests_total".to_owned(), 4),
            ("http.proxy.rq_total".to_owned(), 100),
        ];
        assert_eq!(sum_ending_with(&stats, "meshtally_requests_total"), 7);
    }
}
