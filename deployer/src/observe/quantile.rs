//! Quantiles from cumulative histogram buckets, computed the way Prometheus's
//! `histogram_quantile` does, so `top`'s p50/p95/p99 equal what a dashboard over the same
//! buckets shows: find the bucket holding the rank, interpolate linearly inside it (from 0 for
//! the first bucket), and answer the highest finite bound when the rank falls in `+Inf`.

/// `q`-quantile of cumulative `(le, count)` buckets, in any order; `None` when there is no
/// observation, no `+Inf` bucket, or `q` is outside [0, 1].
pub(crate) fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Prometheus also merges equal bounds and forces counts to be monotonic (float sums of
    // separate series can dip by rounding).
    let mut sorted: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (le, count) in buckets {
        match sorted.last_mut() {
            Some(last) if last.0 == le => last.1 += count,
            _ => sorted.push((le, count)),
        }
    }
    let mut max = 0.0_f64;
    for b in &mut sorted {
        max = max.max(b.1);
        b.1 = max;
    }
    let &(last_le, total) = sorted.last()?;
    if last_le != f64::INFINITY || sorted.len() < 2 || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let i = sorted.iter().position(|b| b.1 >= rank)?;
    if i == sorted.len() - 1 {
        return sorted.get(i.checked_sub(1)?).map(|b| b.0);
    }
    let (end, count_end) = *sorted.get(i)?;
    if i == 0 && end <= 0.0 {
        return Some(end);
    }
    let (start, count_start) = match i.checked_sub(1).and_then(|p| sorted.get(p)) {
        Some(prev) => *prev,
        None => (0.0, 0.0),
    };
    let in_bucket = count_end - count_start;
    if in_bucket <= 0.0 {
        return Some(end);
    }
    Some(start + (end - start) * ((rank - count_start) / in_bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn interpolates_inside_the_bucket() {
        // 10 in (0, 1], 10 in (1, 5], 0 beyond.
        let b = [(1.0, 10.0), (5.0, 20.0), (10.0, 20.0), (INF, 20.0)];
        assert_eq!(histogram_quantile(0.5, &b), Some(1.0));
        assert_eq!(histogram_quantile(0.25, &b), Some(0.5));
        assert_eq!(histogram_quantile(0.75, &b), Some(3.0));
        assert_eq!(histogram_quantile(0.99, &b), Some(1.0 + 4.0 * 9.8 / 10.0));
        assert_eq!(histogram_quantile(1.0, &b), Some(5.0));
        assert_eq!(histogram_quantile(0.0, &b), Some(0.0));
    }

    #[test]
    fn rank_in_inf_answers_the_highest_bound() {
        let b = [(INF, 10.0), (1.0, 2.0), (5.0, 4.0)];
        assert_eq!(histogram_quantile(0.9, &b), Some(5.0));
    }

    #[test]
    fn nothing_to_say() {
        assert_eq!(histogram_quantile(0.5, &[]), None);
        assert_eq!(histogram_quantile(0.5, &[(INF, 3.0)]), None);
        assert_eq!(histogram_quantile(0.5, &[(1.0, 0.0), (INF, 0.0)]), None);
        assert_eq!(histogram_quantile(0.5, &[(1.0, 3.0), (2.0, 3.0)]), None);
        assert_eq!(histogram_quantile(1.5, &[(1.0, 3.0), (INF, 3.0)]), None);
    }

    #[test]
    fn equal_bounds_merge_and_dips_are_flattened() {
        let b = [(1.0, 2.0), (1.0, 2.0), (2.0, 3.9), (INF, 4.0)];
        // le=1 → 4, le=2 → max(4, 3.9) = 4: the median is inside (0, 1].
        assert_eq!(histogram_quantile(0.5, &b), Some(0.5));
    }
}
