//! Per-query retrieval scores from one query's ranked relevance list, with PML 2.9's and OML's
//! exact definitions (docs/metrics.md), and the averaging PML applies (`avg_of_avgs`, per class).

use std::collections::BTreeMap;

/// PML's kNN metrics, alphabetical as PML reports them.
pub const PML_KNN_METRICS: [&str; 5] = [
    "mean_average_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
    "precision_at_1",
    "r_precision",
];

/// PML scores of one query. `rel` are the first `k` neighbours' relevance (self match already
/// removed), `relevant` = R_q, the number of relevant reference items (self excluded).
pub fn pml_query_scores(rel: &[bool], relevant: usize) -> [f64; 5] {
    let r = relevant.min(rel.len());
    let mut hits = 0usize;
    let mut ap = 0.0;
    let mut ap_r = 0.0;
    let mut hits_in_r = 0usize;
    let mut first: Option<usize> = None;
    for (j, &is_rel) in rel.iter().enumerate() {
        if is_rel {
            hits += 1;
            let precision = hits as f64 / (j + 1) as f64;
            ap += precision;
            if j < r {
                ap_r += precision;
                hits_in_r += 1;
            }
            first.get_or_insert(j + 1);
        }
    }
    let denom = relevant.max(1) as f64;
    [
        // MAP@k divides by R_q (PML >= 1.6.1), not by the hits found.
        ap / denom,
        // MAP@R divides by R_q even when k < R_q.
        ap_r / denom,
        first.map_or(0.0, |f| 1.0 / f as f64),
        f64::from(u8::from(rel.first().copied().unwrap_or(false))),
        // R-precision divides by min(R_q, k).
        if r == 0 {
            0.0
        } else {
            hits_in_r as f64 / r as f64
        },
    ]
}

/// OML's cmc@k, precision@k and map@k of one query for each `k` in `ks` (each at most `rel.len()`).
pub fn oml_query_scores(rel: &[bool], relevant: usize, ks: &[usize]) -> Vec<[f64; 3]> {
    // n_i = hits in the top i; sum_ap_i = Σ_{j<=i} (n_j / j) rel(j).
    let mut n = Vec::with_capacity(rel.len());
    let mut sum_ap = Vec::with_capacity(rel.len());
    let (mut hits, mut acc) = (0usize, 0.0f64);
    for (j, &is_rel) in rel.iter().enumerate() {
        if is_rel {
            hits += 1;
            acc += hits as f64 / (j + 1) as f64;
        }
        n.push(hits);
        sum_ap.push(acc);
    }
    ks.iter()
        .map(|&k| {
            let k = k.min(rel.len());
            if k == 0 {
                return [0.0, 0.0, 0.0];
            }
            let nk = n[k - 1];
            let cmc = f64::from(u8::from(nk > 0));
            // OML: normaliser min(k, n_gt), not k.
            let precision = nk as f64 / k.min(relevant).max(1) as f64;
            // OML: normaliser n_k = hits within the top k (0 when there are none).
            let map = if nk == 0 {
                0.0
            } else {
                sum_ap[k - 1] / nk as f64
            };
            [cmc, precision, map]
        })
        .collect()
}

/// How per-query scores become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Averaging {
    /// Mean over queries (PML default).
    Queries,
    /// Mean of the per-class means (PML `avg_of_avgs`).
    Classes,
}

/// Mean of `values` (one per counted query, labels in `labels`), plus the per-class means in
/// sorted label order. No values gives NaN (PML: all queries lone -> NaN with a warning).
pub fn aggregate(
    values: &[f64],
    labels: &[i64],
    averaging: Averaging,
) -> (f64, BTreeMap<i64, f64>) {
    let mut per_class: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for (&v, &l) in values.iter().zip(labels) {
        let e = per_class.entry(l).or_insert((0.0, 0));
        e.0 += v;
        e.1 += 1;
    }
    let per_class: BTreeMap<i64, f64> = per_class
        .into_iter()
        .map(|(l, (s, c))| (l, s / c as f64))
        .collect();
    let overall = match averaging {
        Averaging::Queries => mean(values),
        Averaging::Classes => mean(&per_class.values().copied().collect::<Vec<_>>()),
    };
    (overall, per_class)
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PML's tests/utils/test_calculate_accuracies.py::test_accuracy_calculator, fed with
    /// `knn_labels` directly (docs/metrics.md). Expected values were produced by PML 2.9.0.
    #[test]
    fn pml_suite_knn_labels_cases() {
        let query_labels = [1i64, 1, 2, 3, 4, 0];
        let knn_labels: [[i64; 5]; 6] = [
            [0, 1, 1, 2, 2],
            [1, 0, 1, 1, 3],
            [4, 4, 4, 4, 2],
            [3, 1, 3, 1, 3],
            [0, 0, 4, 2, 2],
            [1, 2, 3, 4, 5],
        ];
        let counts = |l: i64| [2usize, 3, 5, 4, 5][l as usize];
        // (riq, avg_of_avgs) -> [MAP, MAP@R, MRR, P@1, R-prec]
        let cases = [
            (
                false,
                Averaging::Queries,
                [
                    0.3112962963,
                    0.2446296296,
                    0.5055555701,
                    0.3333333333,
                    0.3722222222,
                ],
            ),
            (
                true,
                Averaging::Queries,
                [
                    0.3506944444,
                    0.2673611111,
                    0.4583333433,
                    0.1666666667,
                    0.3888888889,
                ],
            ),
            (
                false,
                Averaging::Classes,
                [0.2541111111, 0.1991111111, 0.4566666484, 0.3, 0.3133333333],
            ),
            (
                true,
                Averaging::Classes,
                [0.2625, 0.1958333333, 0.400000006, 0.1, 0.3166666667],
            ),
        ];
        for (riq, averaging, want) in cases {
            let mut per_metric = vec![Vec::new(); 5];
            for (q, &ql) in query_labels.iter().enumerate() {
                let row: &[i64] = if riq {
                    &knn_labels[q][1..]
                } else {
                    &knn_labels[q]
                };
                let rel: Vec<bool> = row.iter().map(|&l| l == ql).collect();
                let relevant = counts(ql) - usize::from(riq);
                for (m, s) in pml_query_scores(&rel, relevant).into_iter().enumerate() {
                    per_metric[m].push(s);
                }
            }
            for m in 0..5 {
                let (got, _) = aggregate(&per_metric[m], &query_labels, averaging);
                // PML computes MRR in float32 (hence 0.5055555701); we use float64.
                let tol = if m == 2 { 1e-7 } else { 1e-10 };
                assert!(
                    (got - want[m]).abs() < tol,
                    "riq {riq} {averaging:?} {}: {got} vs {}",
                    PML_KNN_METRICS[m],
                    want[m]
                );
            }
        }
    }

    #[test]
    fn oml_definitions() {
        // rel = [0, 1, 1, 0, 1], 4 relevant items in the gallery.
        let rel = [false, true, true, false, true];
        let got = oml_query_scores(&rel, 4, &[1, 2, 3, 5]);
        assert_eq!(got[0], [0.0, 0.0, 0.0]);
        assert_eq!(got[1][0], 1.0);
        assert!((got[1][1] - 0.5).abs() < 1e-12); // 1 hit / min(2, 4)
        assert!((got[1][2] - 0.5).abs() < 1e-12); // (1/2) / 1
        assert!((got[2][1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((got[2][2] - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // k = 5 > n_gt = 4: precision normalised by 4; map@5 by the 3 hits.
        assert!((got[3][1] - 3.0 / 4.0).abs() < 1e-12);
        assert!((got[3][2] - (0.5 + 2.0 / 3.0 + 3.0 / 5.0) / 3.0).abs() < 1e-12);
    }
}
