//! Split schemes (docs/experiments.md), exactly as the original `create_one_split_scheme`: class-disjoint
//! cross-validation over classes sorted by label value, `old_approach`, and `predefined`.
//! Splits are defined by rules over label *values* (ranges that may wrap past the end of the sorted
//! label list), which is what makes the original's fold tables come out as they do.

use crate::errors::config_error;
use anyhow::Result;

/// One fold: named splits (`test`, `train`, `val` for cross-validation) of sample indices.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitScheme {
    pub name: String,
    pub splits: Vec<(String, Vec<usize>)>,
}

impl SplitScheme {
    pub fn split(&self, name: &str) -> Option<&[usize]> {
        self.splits
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, idx)| idx.as_slice())
    }
}

/// Settings of the cross-validation scheme (config keys of the same names).
#[derive(Debug, Clone, Copy)]
pub struct CrossValidation {
    pub test_size: f64,
    pub test_start_idx: f64,
    pub num_training_partitions: usize,
    pub num_training_sets: usize,
}

/// A label rule: inclusive range of label values `[a, b]`, wrapping when `a > b`.
#[derive(Debug, Clone, Copy)]
struct Range {
    a: i64,
    b: i64,
}

impl Range {
    fn contains(&self, l: i64) -> bool {
        if self.a < self.b {
            self.a <= l && l <= self.b
        } else {
            l >= self.a || l <= self.b
        }
    }
}

/// `single_rule(start, length, S)`: the range from `S[start % n]` to `S[(start + length - 1) % n]`.
fn single_rule(start: usize, length: usize, sorted: &[i64], split: &str) -> Result<Range> {
    let n = sorted.len();
    if length == 0 {
        return Err(config_error(format!(
            "the {split} split would be empty ({n} classes available); adjust test_size / \
             num_training_partitions or use a dataset with more classes"
        )));
    }
    if length == 1 {
        return Err(config_error(format!(
            "the {split} split would hold a single class; retrieval metrics need at least two \
             classes — adjust test_size / num_training_partitions"
        )));
    }
    let s = start % n;
    let e = (start + length - 1) % n;
    Ok(Range {
        a: sorted[s],
        b: sorted[e],
    })
}

/// Python's `int(x)` for the non-negative values used here (truncation toward zero).
fn trunc(x: f64) -> usize {
    x.max(0.0) as usize
}

fn sorted_unique(labels: &[i64]) -> Vec<i64> {
    let mut s = labels.to_vec();
    s.sort_unstable();
    s.dedup();
    s
}

fn indices_where(labels: &[i64], pred: impl Fn(i64) -> bool) -> Vec<usize> {
    labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| pred(l))
        .map(|(i, _)| i)
        .collect()
}

/// The original's scheme name, with its truncating `int(x*100)`: `Test50_50_Partitions4_0`.
pub fn cross_validation_name(cv: &CrossValidation, partition: usize) -> String {
    format!(
        "Test{:02}_{:02}_Partitions{}_{}",
        trunc(cv.test_size * 100.0),
        trunc(cv.test_start_idx * 100.0),
        cv.num_training_partitions,
        partition
    )
}

/// Class-disjoint cross-validation: one scheme per training set.
pub fn cross_validation(labels: &[i64], cv: &CrossValidation) -> Result<Vec<SplitScheme>> {
    if !(0.0..1.0).contains(&cv.test_size) {
        return Err(config_error(format!(
            "test_size must be in [0, 1), got {}",
            cv.test_size
        )));
    }
    if !(0.0..1.0).contains(&cv.test_start_idx) {
        return Err(config_error(format!(
            "test_start_idx must be in [0, 1), got {}",
            cv.test_start_idx
        )));
    }
    let p = cv.num_training_partitions;
    if p < 2 {
        return Err(config_error(format!(
            "num_training_partitions must be at least 2, got {p}"
        )));
    }
    if cv.num_training_sets == 0 || cv.num_training_sets > p {
        return Err(config_error(format!(
            "num_training_sets must be between 1 and num_training_partitions ({p}), got {}",
            cv.num_training_sets
        )));
    }
    let sorted = sorted_unique(labels);
    let n = sorted.len();
    let val_ratio = (1.0 / p as f64) * (1.0 - cv.test_size);
    let test_len = trunc(n as f64 * cv.test_size);
    let val_len = trunc(n as f64 * val_ratio);
    // The original computes train from its ratio, then adds the remainder N - (train + val + test),
    // so train is simply what test and val leave over.
    let train_len = n as i64 - val_len as i64 - test_len as i64;
    if train_len < 2 {
        return Err(config_error(format!(
            "the train split would hold {train_len} classes out of {n}; lower test_size"
        )));
    }
    let train_len = train_len as usize;

    let test_rule = if test_len > 0 {
        Some(single_rule(
            trunc(cv.test_start_idx * n as f64),
            test_len,
            &sorted,
            "test",
        )?)
    } else {
        None
    };
    let in_test = |l: i64| test_rule.is_some_and(|r| r.contains(l));
    let rest: Vec<i64> = sorted.iter().copied().filter(|&l| !in_test(l)).collect();
    let n2 = rest.len();
    let test = indices_where(labels, in_test);

    let mut schemes = Vec::new();
    for partition in 0..cv.num_training_sets {
        let start = trunc((partition as f64 / p as f64) * n2 as f64);
        let train_rule = single_rule(start, train_len, &rest, "train")?;
        let val_rule = single_rule(start + train_len, val_len, &rest, "val")?;
        let train = indices_where(labels, |l| !in_test(l) && train_rule.contains(l));
        let val = indices_where(labels, |l| !in_test(l) && val_rule.contains(l));
        let mut splits = Vec::new();
        if test_rule.is_some() {
            splits.push(("test".to_string(), test.clone()));
        }
        splits.push(("train".to_string(), train));
        splits.push(("val".to_string(), val));
        schemes.push(SplitScheme {
            name: cross_validation_name(cv, partition),
            splits,
        });
    }
    for s in &schemes {
        check_disjoint(labels, s)?;
    }
    Ok(schemes)
}

/// `old_approach`: first half of the sorted classes train, second half val, no test.
pub fn old_approach(labels: &[i64]) -> Result<SplitScheme> {
    let sorted = sorted_unique(labels);
    let n = sorted.len();
    let val_len = trunc(n as f64 * 0.5);
    let train_len = n - val_len;
    let train_rule = single_rule(0, train_len, &sorted, "train")?;
    let val_rule = single_rule(train_len, val_len, &sorted, "val")?;
    let scheme = SplitScheme {
        name: "old_approach".to_string(),
        splits: vec![
            (
                "train".to_string(),
                indices_where(labels, |l| train_rule.contains(l)),
            ),
            (
                "val".to_string(),
                indices_where(labels, |l| val_rule.contains(l)),
            ),
        ],
    };
    check_disjoint(labels, &scheme)?;
    Ok(scheme)
}

/// Every pair of splits of a scheme must share no class.
fn check_disjoint(labels: &[i64], scheme: &SplitScheme) -> Result<()> {
    let class_sets: Vec<(String, std::collections::BTreeSet<i64>)> = scheme
        .splits
        .iter()
        .map(|(n, idx)| (n.clone(), idx.iter().map(|&i| labels[i]).collect()))
        .collect();
    for (i, (a, sa)) in class_sets.iter().enumerate() {
        for (b, sb) in &class_sets[i + 1..] {
            if let Some(shared) = sa.intersection(sb).next() {
                return Err(config_error(format!(
                    "split scheme {}: splits {a} and {b} share class {shared}",
                    scheme.name
                )));
            }
        }
    }
    Ok(())
}

/// Sorted class labels of a split, as inclusive ranges (for `splits.yaml` and tests): `0-74, 100-120`.
pub fn class_ranges(labels: &[i64], indices: &[usize]) -> Vec<(i64, i64)> {
    let classes = sorted_unique(&indices.iter().map(|&i| labels[i]).collect::<Vec<_>>());
    let mut out: Vec<(i64, i64)> = Vec::new();
    for c in classes {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == c => *hi = c,
            _ => out.push((c, c)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(range: std::ops::RangeInclusive<i64>) -> Vec<i64> {
        // Two samples per class, interleaved, so index order differs from label order.
        let mut v: Vec<i64> = range.clone().collect();
        v.extend(range);
        v
    }

    fn ranges(l: &[i64], s: &SplitScheme, split: &str) -> Vec<(i64, i64)> {
        class_ranges(l, s.split(split).unwrap())
    }

    fn cv(t: f64, s: f64, p: usize, n: usize) -> CrossValidation {
        CrossValidation {
            test_size: t,
            test_start_idx: s,
            num_training_partitions: p,
            num_training_sets: n,
        }
    }

    #[test]
    fn cub_default_folds() {
        let l = labels(0..=199);
        let s = cross_validation(&l, &cv(0.5, 0.5, 4, 4)).unwrap();
        assert_eq!(s[0].name, "Test50_50_Partitions4_0");
        let expect = [
            (vec![(0, 74)], vec![(75, 99)]),
            (vec![(25, 99)], vec![(0, 24)]),
            (vec![(0, 24), (50, 99)], vec![(25, 49)]),
            (vec![(0, 49), (75, 99)], vec![(50, 74)]),
        ];
        for (scheme, (train, val)) in s.iter().zip(expect) {
            assert_eq!(ranges(&l, scheme, "test"), vec![(100, 199)]);
            assert_eq!(ranges(&l, scheme, "train"), train, "{}", scheme.name);
            assert_eq!(ranges(&l, scheme, "val"), val, "{}", scheme.name);
        }
    }

    #[test]
    fn cars_default_folds() {
        let l = labels(1..=196);
        let s = cross_validation(&l, &cv(0.5, 0.5, 4, 4)).unwrap();
        let expect = [
            (vec![(1, 74)], vec![(75, 98)]),
            (vec![(25, 98)], vec![(1, 24)]),
            (vec![(1, 25), (50, 98)], vec![(26, 49)]),
            (vec![(1, 49), (74, 98)], vec![(50, 73)]),
        ];
        for (scheme, (train, val)) in s.iter().zip(expect) {
            assert_eq!(ranges(&l, scheme, "test"), vec![(99, 196)]);
            assert_eq!(ranges(&l, scheme, "train"), train, "{}", scheme.name);
            assert_eq!(ranges(&l, scheme, "val"), val, "{}", scheme.name);
        }
    }

    #[test]
    fn shifted_test_block_and_uneven_partitions() {
        let l = labels(0..=199);
        let s = cross_validation(&l, &cv(0.5, 0.25, 4, 4)).unwrap();
        assert_eq!(ranges(&l, &s[0], "test"), vec![(50, 149)]);
        assert_eq!(ranges(&l, &s[0], "train"), vec![(0, 49), (150, 174)]);
        assert_eq!(ranges(&l, &s[0], "val"), vec![(175, 199)]);

        let s = cross_validation(&l, &cv(0.3, 0.9, 5, 3)).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "Test30_90_Partitions5_0");
        for scheme in &s {
            assert_eq!(ranges(&l, scheme, "test"), vec![(0, 39), (180, 199)]);
        }
        assert_eq!(ranges(&l, &s[0], "train"), vec![(40, 152)]);
        assert_eq!(ranges(&l, &s[0], "val"), vec![(153, 179)]);
        assert_eq!(ranges(&l, &s[1], "train"), vec![(40, 40), (68, 179)]);
        assert_eq!(ranges(&l, &s[1], "val"), vec![(41, 67)]);
        assert_eq!(ranges(&l, &s[2], "train"), vec![(40, 68), (96, 179)]);
        assert_eq!(ranges(&l, &s[2], "val"), vec![(69, 95)]);
    }

    #[test]
    fn old_approach_halves() {
        let l = labels(0..=199);
        let s = old_approach(&l).unwrap();
        assert_eq!(ranges(&l, &s, "train"), vec![(0, 99)]);
        assert_eq!(ranges(&l, &s, "val"), vec![(100, 199)]);
        let l = labels(1..=196);
        let s = old_approach(&l).unwrap();
        assert_eq!(ranges(&l, &s, "train"), vec![(1, 98)]);
        assert_eq!(ranges(&l, &s, "val"), vec![(99, 196)]);
    }

    #[test]
    fn truncating_names() {
        assert_eq!(
            cross_validation_name(&cv(0.29, 0.57, 4, 4), 1),
            "Test28_56_Partitions4_1"
        );
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let l = labels(0..=9);
        assert!(cross_validation(&l, &cv(0.5, 0.5, 4, 5)).is_err());
        // 10 classes, 8 partitions: val gets int(10 * 1/8 * 0.5) = 0 classes.
        let e = cross_validation(&l, &cv(0.5, 0.5, 8, 1)).unwrap_err();
        assert!(e.to_string().contains("val split would be empty"), "{e}");
    }
}
