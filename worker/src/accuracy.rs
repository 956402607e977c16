//! Accuracy metrics with PML 2.x's `AccuracyCalculator` definitions (reference §6): exact k-nearest
//! neighbours in blocks (memory bounded), self-match removal when queries are part of the reference,
//! lone queries (no other item of their class in the reference) excluded from the kNN metrics, and
//! `k = max_bin_count` (the largest class's reference count, minus the self match).

use anyhow::Result;
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// Bytes of distance matrix computed at once; bounds memory whatever the dataset size.
const BLOCK_BYTES: i64 = 128 << 20;

/// The `k` nearest reference rows of every query row, by Euclidean distance (ties by index order
/// as `topk` returns them). When `reference_includes_query`, query `i` is reference row `i`: that
/// self match is removed (or, if ties pushed it out of the list, the last neighbour is dropped, as
/// PML does).
pub fn knn(
    query: &Tensor,
    reference: &Tensor,
    k: usize,
    reference_includes_query: bool,
) -> Vec<Vec<usize>> {
    let nq = query.size()[0];
    let nr = reference.size()[0];
    let k_search = (k + usize::from(reference_includes_query)).min(nr as usize) as i64;
    if k_search == 0 || nq == 0 {
        return vec![Vec::new(); nq as usize];
    }
    let q = query.to_kind(Kind::Float);
    let r = reference.to_kind(Kind::Float);
    let r_sq = r
        .square()
        .sum_dim_intlist(&[1i64][..], false, Kind::Float)
        .view([1, nr]);
    let rows_per_block = (BLOCK_BYTES / (4 * nr.max(1))).clamp(1, nq);
    let mut out = Vec::with_capacity(nq as usize);
    let mut start = 0;
    while start < nq {
        let len = rows_per_block.min(nq - start);
        let qb = q.narrow(0, start, len);
        let q_sq = qb.square().sum_dim_intlist(&[1i64][..], true, Kind::Float);
        let d = (q_sq + &r_sq) - qb.matmul(&r.transpose(0, 1)) * 2.0;
        let (_, idx) = d.topk(k_search, 1, false, true);
        let idx: Vec<i64> = Vec::try_from(idx.to_kind(Kind::Int64).view([-1])).unwrap_or_default();
        for row in 0..len as usize {
            let mut neighbours: Vec<usize> = idx
                [row * k_search as usize..(row + 1) * k_search as usize]
                .iter()
                .map(|&i| i as usize)
                .collect();
            if reference_includes_query {
                let me = start as usize + row;
                match neighbours.iter().position(|&i| i == me) {
                    Some(pos) => {
                        neighbours.remove(pos);
                    }
                    None => {
                        neighbours.pop();
                    }
                }
            }
            neighbours.truncate(k);
            out.push(neighbours);
        }
        start += len;
    }
    out
}

/// Retrieval metrics of a query set against a reference set.
pub fn retrieval_metrics(
    query: &Tensor,
    query_labels: &[i64],
    reference: &Tensor,
    reference_labels: &[i64],
    reference_includes_query: bool,
) -> Result<BTreeMap<String, f64>> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for &l in reference_labels {
        *counts.entry(l).or_insert(0) += 1;
    }
    let self_count = usize::from(reference_includes_query);
    // k = max_bin_count over the query labels' reference counts.
    let max_bin = query_labels
        .iter()
        .filter_map(|l| counts.get(l))
        .max()
        .copied()
        .unwrap_or(0);
    let k = max_bin.saturating_sub(self_count);
    let neighbours = knn(query, reference, k, reference_includes_query);

    let mut p1 = Vec::new();
    let mut r_prec = Vec::new();
    let mut map_r = Vec::new();
    let mut map = Vec::new();
    let mut mrr = Vec::new();
    for (qi, &label) in query_labels.iter().enumerate() {
        let relevant = counts
            .get(&label)
            .copied()
            .unwrap_or(0)
            .saturating_sub(self_count);
        if relevant == 0 {
            continue; // lone query
        }
        let rel: Vec<bool> = neighbours[qi]
            .iter()
            .map(|&j| reference_labels[j] == label)
            .collect();
        p1.push(f64::from(u8::from(rel.first().copied().unwrap_or(false))));
        let r = relevant.min(rel.len());
        let hits_in_r = rel[..r].iter().filter(|&&x| x).count();
        r_prec.push(if r == 0 {
            0.0
        } else {
            hits_in_r as f64 / r as f64
        });
        let mut hits = 0usize;
        let mut ap_r = 0.0;
        let mut ap = 0.0;
        let mut first: Option<usize> = None;
        for (j, &is_rel) in rel.iter().enumerate() {
            if is_rel {
                hits += 1;
                let precision = hits as f64 / (j + 1) as f64;
                ap += precision;
                if j < r {
                    ap_r += precision;
                }
                first.get_or_insert(j + 1);
            }
        }
        map_r.push(ap_r / relevant as f64);
        map.push(ap / relevant as f64);
        mrr.push(first.map_or(0.0, |f| 1.0 / f as f64));
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let mut out = BTreeMap::new();
    out.insert("mean_average_precision".to_string(), mean(&map));
    out.insert("mean_average_precision_at_r".to_string(), mean(&map_r));
    out.insert("mean_reciprocal_rank".to_string(), mean(&mrr));
    out.insert("precision_at_1".to_string(), mean(&p1));
    out.insert("r_precision".to_string(), mean(&r_prec));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[&[f32]]) -> Tensor {
        let d = rows[0].len() as i64;
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, d])
    }

    #[test]
    fn perfect_and_hand_computed_retrieval() {
        // Two tight clusters far apart: perfect retrieval.
        let emb = t(&[&[0.0], &[0.1], &[0.2], &[10.0], &[10.1]]);
        let m = retrieval_metrics(&emb, &[0, 0, 0, 1, 1], &emb, &[0, 0, 0, 1, 1], true).unwrap();
        for v in m.values() {
            assert!((v - 1.0).abs() < 1e-12, "{m:?}");
        }
        // 1-D points 0,1,2,3 with labels a,b,a,b: each query's neighbours alternate in label.
        let emb = t(&[&[0.0], &[1.0], &[2.0], &[3.0]]);
        let labels = [0, 1, 0, 1];
        let m = retrieval_metrics(&emb, &labels, &emb, &labels, true).unwrap();
        // k = 1 (max bin 2 minus self). Every nearest neighbour (both candidates of a tie alike)
        // has the other label, so precision_at_1 is 0.
        assert_eq!(m["precision_at_1"], 0.0);
    }

    #[test]
    fn lone_queries_are_excluded() {
        let emb = t(&[&[0.0], &[0.1], &[5.0]]);
        let m = retrieval_metrics(&emb, &[0, 0, 1], &emb, &[0, 0, 1], true).unwrap();
        assert_eq!(m["precision_at_1"], 1.0);
    }

    #[test]
    fn blocked_knn_matches_brute_force() {
        tch::manual_seed(0);
        let q = Tensor::randn([50, 8], (Kind::Float, tch::Device::Cpu));
        let r = Tensor::randn([70, 8], (Kind::Float, tch::Device::Cpu));
        let got = knn(&q, &r, 5, false);
        let d = Tensor::cdist(&q, &r, 2.0, None::<i64>);
        let (_, idx) = d.topk(5, 1, false, true);
        let idx: Vec<i64> = Vec::try_from(idx.view([-1])).unwrap();
        for i in 0..50 {
            let want: Vec<usize> = idx[i * 5..i * 5 + 5].iter().map(|&x| x as usize).collect();
            assert_eq!(got[i], want);
        }
    }
}
