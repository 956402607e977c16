//! Median pruning (`--prune median`, SPEC §5.4): a trial whose validation metric at (fold, epoch) is
//! below the median of the completed trials' values at the same (fold, epoch) is told to stop.
//! Like Optuna's MedianPruner, nothing is pruned until enough trials completed to make the median
//! meaningful.

/// Completed trials needed at a (fold, epoch) before the rule applies.
pub const MIN_COMPLETED: usize = 3;

pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Whether a trial with `value` should stop, given completed trials' values at the same point.
pub fn should_prune(value: f64, completed: &[f64]) -> bool {
    if completed.len() < MIN_COMPLETED {
        return false;
    }
    match median(completed) {
        Some(m) => !value.is_finite() || value < m,
        None => false,
    }
}

/// When a running trial is checked against the median rule (`--prune median`): from its first
/// evaluation after training started (epoch > 0) that is past the first `warmup` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRule {
    pub warmup: usize,
}

impl PruneRule {
    /// `evaluations`: the trial's evaluations after training started, this one included.
    pub fn applies(&self, epoch: i64, evaluations: usize) -> bool {
        epoch > 0 && evaluations > self.warmup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_rule() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert!(!should_prune(0.1, &[0.5, 0.6]), "too few completed trials");
        assert!(should_prune(0.1, &[0.5, 0.6, 0.7]));
        assert!(
            !should_prune(0.6, &[0.5, 0.6, 0.7]),
            "equal to the median is kept"
        );
        assert!(should_prune(f64::NAN, &[0.5, 0.6, 0.7]));
    }

    #[test]
    fn the_rule_waits_for_training_and_the_warmup() {
        let rule = PruneRule { warmup: 1 };
        assert!(!rule.applies(0, 5), "the evaluation before training");
        assert!(!rule.applies(1, 1), "within the warm-up");
        assert!(rule.applies(2, 2));
        assert!(PruneRule { warmup: 0 }.applies(1, 1));
    }
}
