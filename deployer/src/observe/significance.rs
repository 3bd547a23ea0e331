//! The two tests `canary` judges errors with: is the canary's error rate higher than the
//! baseline's, beyond chance? A one-sided two-proportion z-test (pooled) when every expected
//! cell count is at least 5, Fisher's exact test (one-sided) when one is smaller, as the
//! textbooks choose. Written here rather than taken from a statistics crate: two small
//! functions and the normal tail, against a crate (statrs) whose dependency tree would cost the
//! deployer's build more than the code it saves. Checked against scipy in the tests below
//! (`scripts/canary-reference.py` recomputes the reference values).

use serde::Serialize;

/// Which test judged a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Test {
    /// One-sided two-proportion z-test with the pooled standard error.
    TwoProportionZ,
    /// One-sided Fisher's exact test (hypergeometric tail).
    FisherExact,
}

impl Test {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Test::TwoProportionZ => "two-proportion z-test",
            Test::FisherExact => "Fisher's exact test",
        }
    }
}

/// The outcome of one comparison: the test used and the one-sided p-value of "the canary fails
/// more often than the baseline" (small: it does).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Comparison {
    pub test: Test,
    pub p_value: f64,
    /// The z statistic, for the z-test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
}

/// The smallest expected count at which the z-test's normal approximation is trusted.
const MIN_EXPECTED: f64 = 5.0;

/// Compares `canary_errors` of `canary_n` calls with `base_errors` of `base_n`: Fisher's exact
/// test when an expected count of the 2×2 table is under 5, else the pooled z-test. `None`
/// when either side has no calls.
pub(crate) fn compare(
    canary_errors: u64,
    canary_n: u64,
    base_errors: u64,
    base_n: u64,
) -> Option<Comparison> {
    if canary_n == 0 || base_n == 0 {
        return None;
    }
    let n = (canary_n + base_n) as f64;
    let errors = (canary_errors + base_errors) as f64;
    let smallest = [canary_n as f64, base_n as f64]
        .into_iter()
        .flat_map(|row| [row * errors / n, row * (n - errors) / n])
        .fold(f64::INFINITY, f64::min);
    if smallest < MIN_EXPECTED {
        return Some(Comparison {
            test: Test::FisherExact,
            p_value: fisher_greater(canary_errors, canary_n, base_errors, base_n),
            z: None,
        });
    }
    let z = two_proportion_z(canary_errors, canary_n, base_errors, base_n);
    Some(Comparison {
        test: Test::TwoProportionZ,
        p_value: normal_sf(z),
        z: Some(z),
    })
}

/// The pooled two-proportion z statistic of canary over baseline (positive: the canary fails
/// more often). 0 when no call or every call failed (no variance to speak of).
pub(crate) fn two_proportion_z(
    canary_errors: u64,
    canary_n: u64,
    base_errors: u64,
    base_n: u64,
) -> f64 {
    let (x1, n1, x2, n2) = (
        canary_errors as f64,
        canary_n as f64,
        base_errors as f64,
        base_n as f64,
    );
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return 0.0;
    }
    (x1 / n1 - x2 / n2) / se
}

/// One-sided Fisher's exact p-value that the canary's error share exceeds the baseline's: the
/// probability, with every margin of the 2×2 table fixed, of the canary holding at least
/// `canary_errors` of all the errors (scipy's `fisher_exact(…, alternative="greater")` on
/// `[[canary_errors, canary_ok], [base_errors, base_ok]]`).
pub(crate) fn fisher_greater(
    canary_errors: u64,
    canary_n: u64,
    base_errors: u64,
    base_n: u64,
) -> f64 {
    let total = canary_n + base_n;
    let errors = canary_errors + base_errors;
    let ln_fact = ln_factorials(total);
    let ln_choose = |n: u64, k: u64| -> f64 {
        ln_fact[n as usize] - ln_fact[k as usize] - ln_fact[(n - k) as usize]
    };
    let denominator = ln_choose(total, canary_n);
    let highest = errors.min(canary_n);
    let mut p = 0.0;
    for x in canary_errors..=highest {
        // The canary's row holds x errors and canary_n - x successes.
        if canary_n - x > total - errors {
            continue;
        }
        p += (ln_choose(errors, x) + ln_choose(total - errors, canary_n - x) - denominator).exp();
    }
    p.min(1.0)
}

/// ln(k!) for k in 0..=n, summed once (exact to rounding, unlike Stirling's series).
fn ln_factorials(n: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n as usize + 1);
    let mut acc = 0.0;
    out.push(0.0);
    for k in 1..=n {
        acc += (k as f64).ln();
        out.push(acc);
    }
    out
}

/// The standard normal's upper tail, P(Z > z).
pub(crate) fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, to about 1e-14 relative: erf's series (all terms positive)
/// below 2.5, the continued fraction of erfc above, by symmetry for negative x.
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 {
        // erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        return 1.0 - 2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum;
    }
    // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), by Lentz.
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..200 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d == 0.0 { tiny } else { 1.0 / d };
        c = x + a / c;
        if c == 0.0 {
            c = tiny;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative closeness, for p-values that span many orders of magnitude.
    fn close(ours: f64, reference: f64, rel: f64) -> bool {
        (ours - reference).abs() <= rel * reference.abs().max(1e-300)
    }

    // Reference values from scipy (the version and the exact calls are in
    // scripts/canary-reference.py, which prints these tables).
    include!("significance_reference.rs");

    #[test]
    fn normal_tail_matches_scipy() {
        for &(z, sf) in NORMAL_SF {
            let ours = normal_sf(z);
            assert!(close(ours, sf, 1e-9), "sf({z}) = {ours}, scipy {sf}");
        }
    }

    #[test]
    fn fisher_matches_scipy_including_small_counts() {
        for &(a, n1, c, n2, p) in FISHER_GREATER {
            let ours = fisher_greater(a, n1, c, n2);
            assert!(
                close(ours, p, 1e-9),
                "fisher({a}/{n1} vs {c}/{n2}) = {ours}, scipy {p}"
            );
        }
    }

    #[test]
    fn z_test_matches_scipy() {
        for &(a, n1, c, n2, z, p) in Z_TEST {
            let ours = two_proportion_z(a, n1, c, n2);
            assert!(
                close(ours, z, 1e-9),
                "z({a}/{n1} vs {c}/{n2}) = {ours}, reference {z}"
            );
            assert!(
                close(normal_sf(ours), p, 1e-8),
                "p of z {ours}: reference {p}"
            );
        }
    }

    #[test]
    fn the_test_is_chosen_by_the_smallest_expected_count() {
        // 3 errors in 400 calls: expected errors per row 1.5 < 5, so Fisher.
        let small = compare(3, 200, 0, 200).unwrap();
        assert_eq!(small.test, Test::FisherExact);
        assert!(small.z.is_none());
        // 30 vs 10 of 1000 each: every expected count ≥ 20, so the z-test.
        let large = compare(30, 1000, 10, 1000).unwrap();
        assert_eq!(large.test, Test::TwoProportionZ);
        assert!(large.p_value < 0.001, "{large:?}");
        assert!(compare(1, 0, 0, 10).is_none());
        // The same rates on both sides: nothing to see.
        assert!(compare(10, 1000, 10, 1000).unwrap().p_value > 0.4);
        // No error anywhere: the canary is not worse.
        assert_eq!(compare(0, 100, 0, 100).unwrap().p_value, 1.0);
    }
}
