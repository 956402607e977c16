//! NMI and AMI between two labelings, as scikit-learn's `normalized_mutual_info_score` and
//! `adjusted_mutual_info_score` with `average_method="arithmetic"` (what PML 2.x calls).
//!
//! Expected mutual information (AMI's correction term) under the hypergeometric model is
//!   EMI = Σ_i Σ_j Σ_{n=max(1, a_i+b_j-N)}^{min(a_i, b_j)} (n/N) log(N n / (a_i b_j)) P(n | a_i, b_j, N)
//! with row sums `a`, column sums `b`. sklearn loops over every (row, column) pair, which is
//! O(R·C·min(a,b)) and takes hours for the ~10k classes of retrieval datasets (sklearn #24254). The
//! inner sum depends only on the *values* (a_i, b_j), so we group rows and columns by their sums
//! and compute each distinct (a, b) pair once, weighted by how many rows and columns share it:
//! exact, and O(distinct(a)·distinct(b)·min(a,b)). Class and cluster sizes of real datasets take
//! few distinct values (SOP: about a dozen class sizes), so this is milliseconds. log-gamma of
//! integers comes from a table of log-factorials (Kahan-summed logs).

use std::collections::{BTreeMap, HashMap};

/// Contingency data of two labelings of the same items.
struct Contingency {
    n: usize,
    rows: Vec<u64>,
    cols: Vec<u64>,
    cells: Vec<u64>,
    cell_rows: Vec<usize>,
    cell_cols: Vec<usize>,
}

fn contingency(truth: &[i64], pred: &[i64]) -> Contingency {
    let mut row_id: HashMap<i64, usize> = HashMap::new();
    let mut col_id: HashMap<i64, usize> = HashMap::new();
    // Ordered, so sums run in the same order every time (HashMap order is random per process).
    let mut cells: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for (&t, &p) in truth.iter().zip(pred) {
        let next = row_id.len();
        let r = *row_id.entry(t).or_insert(next);
        let next = col_id.len();
        let c = *col_id.entry(p).or_insert(next);
        *cells.entry((r, c)).or_insert(0) += 1;
    }
    let mut rows = vec![0u64; row_id.len()];
    let mut cols = vec![0u64; col_id.len()];
    let mut out = Contingency {
        n: truth.len(),
        rows: Vec::new(),
        cols: Vec::new(),
        cells: Vec::with_capacity(cells.len()),
        cell_rows: Vec::with_capacity(cells.len()),
        cell_cols: Vec::with_capacity(cells.len()),
    };
    for ((r, c), v) in cells {
        rows[r] += v;
        cols[c] += v;
        out.cells.push(v);
        out.cell_rows.push(r);
        out.cell_cols.push(c);
    }
    out.rows = rows;
    out.cols = cols;
    out
}

fn entropy(sums: &[u64]) -> f64 {
    if sums.len() <= 1 {
        return 0.0;
    }
    let total: f64 = sums.iter().map(|&v| v as f64).sum();
    -sums
        .iter()
        .filter(|&&v| v > 0)
        .map(|&v| {
            let v = v as f64;
            (v / total) * (v.ln() - total.ln())
        })
        .sum::<f64>()
}

fn mutual_info(c: &Contingency) -> f64 {
    if c.rows.len() == 1 || c.cols.len() == 1 {
        return 0.0;
    }
    let total = c.n as f64;
    let mut mi = 0.0;
    for ((&v, &r), &col) in c.cells.iter().zip(&c.cell_rows).zip(&c.cell_cols) {
        let nm = v as f64 / total;
        let outer = (c.rows[r] * c.cols[col]) as f64;
        let term = nm * ((v as f64).ln() - total.ln()) + nm * (-outer.ln() + 2.0 * total.ln());
        // sklearn zeroes terms below machine epsilon before summing.
        if term.abs() >= f64::EPSILON {
            mi += term;
        }
    }
    mi.max(0.0)
}

/// ln(i!) for i in 0..=n.
fn log_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    out.push(0.0);
    for i in 1..=n {
        let y = (i as f64).ln() - comp;
        let t = sum + y;
        comp = (t - sum) - y;
        sum = t;
        out.push(sum);
    }
    out
}

fn expected_mutual_info(c: &Contingency) -> f64 {
    if c.rows.len() == 1 || c.cols.len() == 1 {
        return 0.0;
    }
    let n = c.n;
    let lf = log_factorials(n);
    let big_n = n as f64;
    let group = |sums: &[u64]| {
        let mut g: BTreeMap<u64, u64> = BTreeMap::new();
        for &s in sums {
            *g.entry(s).or_insert(0) += 1;
        }
        g
    };
    let (rows, cols) = (group(&c.rows), group(&c.cols));
    let mut emi = 0.0;
    for (&a, &a_mult) in &rows {
        for (&b, &b_mult) in &cols {
            let (au, bu) = (a as usize, b as usize);
            let start = (au + bu).saturating_sub(n).max(1);
            let end = au.min(bu);
            let fixed = lf[au] + lf[bu] + lf[n - au] + lf[n - bu] - lf[n];
            let (la, lb) = ((a as f64).ln(), (b as f64).ln());
            let mut inner = 0.0;
            for nij in start..=end {
                let term2 = big_n.ln() + (nij as f64).ln() - la - lb;
                let gln = fixed - lf[nij] - lf[au - nij] - lf[bu - nij] - lf[n + nij - au - bu];
                inner += (nij as f64 / big_n) * term2 * gln.exp();
            }
            emi += (a_mult * b_mult) as f64 * inner;
        }
    }
    emi
}

/// `sklearn.metrics.normalized_mutual_info_score(truth, pred)` (arithmetic mean normaliser).
pub fn nmi(truth: &[i64], pred: &[i64]) -> f64 {
    let c = contingency(truth, pred);
    if c.rows.len() == c.cols.len() && c.rows.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_info(&c);
    if mi == 0.0 {
        return 0.0;
    }
    mi / ((entropy(&c.rows) + entropy(&c.cols)) / 2.0)
}

/// `sklearn.metrics.adjusted_mutual_info_score(truth, pred)` (arithmetic mean normaliser).
pub fn ami(truth: &[i64], pred: &[i64]) -> f64 {
    let c = contingency(truth, pred);
    if c.rows.len() == c.cols.len() && c.rows.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_info(&c);
    let emi = expected_mutual_info(&c);
    let normalizer = (entropy(&c.rows) + entropy(&c.cols)) / 2.0;
    let mut denominator = normalizer - emi;
    // sklearn keeps the denominator's sign away from zero.
    denominator = if denominator < 0.0 {
        denominator.min(-f64::EPSILON)
    } else {
        denominator.max(f64::EPSILON)
    };
    (mi - emi) / denominator
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from scikit-learn 1.x for the fixed labelings in
    /// scripts/reference/nmi_ami_sklearn.py (the script prints these numbers).
    #[test]
    fn matches_sklearn() {
        for (truth, pred, want_nmi, want_ami) in super::super::sklearn_cases::cases() {
            let (got_nmi, got_ami) = (nmi(&truth, &pred), ami(&truth, &pred));
            assert!(
                (got_nmi - want_nmi).abs() < 1e-10,
                "nmi {got_nmi} vs {want_nmi} for {truth:?} {pred:?}"
            );
            assert!(
                (got_ami - want_ami).abs() < 1e-9,
                "ami {got_ami} vs {want_ami} for {truth:?} {pred:?}"
            );
        }
    }

    #[test]
    fn identical_and_single_cluster_edge_cases() {
        assert_eq!(nmi(&[0, 0, 1, 1], &[5, 5, 7, 7]), 1.0);
        assert!((ami(&[0, 0, 1, 1], &[5, 5, 7, 7]) - 1.0).abs() < 1e-12);
        assert_eq!(nmi(&[0, 0, 0], &[1, 1, 1]), 1.0);
        assert_eq!(nmi(&[0, 1, 2], &[0, 0, 0]), 0.0);
        assert_eq!(ami(&[0, 1, 2], &[0, 0, 0]), 0.0);
    }

    #[test]
    fn grouped_emi_equals_pairwise_loop() {
        // The grouping is exact: compare with sklearn's direct R x C loop on a mid-size case.
        let truth: Vec<i64> = (0..300).map(|i| (i * 7 % 23) as i64).collect();
        let pred: Vec<i64> = (0..300).map(|i| (i * 11 % 17 + i % 3) as i64).collect();
        let c = contingency(&truth, &pred);
        let n = c.n;
        let lf = log_factorials(n);
        let mut direct = 0.0;
        for &a in &c.rows {
            for &b in &c.cols {
                let (a, b) = (a as usize, b as usize);
                for nij in (a + b).saturating_sub(n).max(1)..=a.min(b) {
                    let term2 =
                        (n as f64).ln() + (nij as f64).ln() - (a as f64).ln() - (b as f64).ln();
                    let gln = lf[a] + lf[b] + lf[n - a] + lf[n - b]
                        - lf[n]
                        - lf[nij]
                        - lf[a - nij]
                        - lf[b - nij]
                        - lf[n + nij - a - b];
                    direct += (nij as f64 / n as f64) * term2 * gln.exp();
                }
            }
        }
        assert!((expected_mutual_info(&c) - direct).abs() < 1e-12);
    }
}
