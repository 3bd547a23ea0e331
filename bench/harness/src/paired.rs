//! Paired differences with a 95 % confidence interval: round i of variant A minus round i of
//! variant B, so a slow stretch of the machine that hits both sides cancels out. Student's t,
//! since a benchmark has a handful of rounds, not hundreds.

/// Mean of the per-round differences and the half-width of its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    pub mean: f64,
    pub half_width: f64,
    pub n: usize,
}

impl Difference {
    pub fn show(&self, decimals: usize) -> String {
        if self.n < 2 {
            format!("{:.*}", decimals, self.mean)
        } else {
            format!(
                "{:.*} ± {:.*}",
                decimals, self.mean, decimals, self.half_width
            )
        }
    }

    /// The upper end of the interval: a goal "at most X" is met with 95 % confidence when this
    /// is ≤ X.
    pub fn upper(&self) -> f64 {
        self.mean + self.half_width
    }
}

/// Two-sided 95 % quantile of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE.get(df - 1).copied().unwrap_or(2.228),
        11..=20 => 2.086,
        21..=30 => 2.042,
        _ => 1.96,
    }
}

/// Differences `a[i] − b[i]` over the rounds both have (non-finite values skipped in pairs).
pub fn difference(a: &[f64], b: &[f64]) -> Option<Difference> {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x - y)
        .filter(|d| d.is_finite())
        .collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let half_width = if n < 2 {
        f64::INFINITY
    } else {
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        t95(n - 1) * (var / n as f64).sqrt()
    };
    Some(Difference {
        mean,
        half_width,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_cancel_a_shared_drift() {
        // B drifts by 10 per round; A is always B + 2: the difference is exactly 2.
        let b = [10.0, 20.0, 30.0, 40.0];
        let a = [12.0, 22.0, 32.0, 42.0];
        let d = difference(&a, &b).unwrap();
        assert_eq!((d.mean, d.half_width, d.n), (2.0, 0.0, 4));
    }

    #[test]
    fn interval_uses_student_t() {
        let d = difference(&[1.0, 3.0], &[0.0, 0.0]).unwrap();
        // mean 2, sd √2, se 1, t(1) = 12.706
        assert!((d.mean - 2.0).abs() < 1e-12);
        assert!((d.half_width - 12.706).abs() < 1e-9);
        assert_eq!(d.show(1), "2.0 ± 12.7");
        assert!(difference(&[], &[]).is_none());
        assert_eq!(difference(&[5.0], &[1.0]).unwrap().show(0), "4");
    }
}
