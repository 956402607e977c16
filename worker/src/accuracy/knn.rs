//! Exact k-nearest neighbours by squared Euclidean distance, computed in blocks of query rows so
//! memory stays bounded whatever the set sizes (a block's distance matrix is at most
//! `block_bytes`), with deterministic tie-breaking and PML's self-match removal.
//!
//! Ranking: ascending squared L2 (as faiss `IndexFlatL2`), computed as `|q|² + |r|² - 2 q·r` in
//! float32 and clamped at 0 (faiss's BLAS path does the same), so near-ties rank like faiss. Equal
//! distances are ordered by reference index. `topk` alone does not guarantee that (it is not
//! stable and, at the k-th position, may pick any of several equal candidates), so every block's
//! top-k is re-sorted by (distance, index), and rows where more candidates than fit tie with the
//! k-th distance are repaired from the full row.

use anyhow::Result;
use tch::{Kind, Tensor};

/// Default bytes of one block's distance matrix (the kNN pass needs about three such buffers).
pub const DEFAULT_BLOCK_BYTES: usize = 128 << 20;

/// The neighbours of one block of consecutive query rows.
pub struct KnnBlock<'a> {
    /// Index of the block's first query row.
    pub start: usize,
    /// Number of query rows in the block.
    pub rows: usize,
    /// Neighbours per row (after self-match removal).
    pub k: usize,
    /// Row-major `rows x k` reference indices, nearest first.
    pub indices: &'a [i64],
    /// The block's full `rows x n_reference` squared-distance matrix, for metrics that need every
    /// pair (fnmr@fmr); self pairs are still present in it.
    pub all_distances: &'a Tensor,
}

/// How the search is split into blocks.
#[derive(Debug, Clone, Copy)]
pub struct Blocking {
    /// Query rows per block; `None` derives it from `block_bytes`.
    pub rows: Option<usize>,
    pub block_bytes: usize,
}

impl Default for Blocking {
    fn default() -> Self {
        Blocking {
            rows: None,
            block_bytes: DEFAULT_BLOCK_BYTES,
        }
    }
}

/// Runs the blocked search and hands every block to `on_block`. `k` is the number of neighbours
/// wanted after self-match removal and must be at most `n_reference - self` (callers clamp).
/// When `reference_includes_query`, query row `i` is reference row `i`: that column is removed, or,
/// when ties pushed it out of the `k + 1` nearest, the last column is dropped (PML's rule).
pub fn blocked_knn(
    query: &Tensor,
    reference: &Tensor,
    k: usize,
    reference_includes_query: bool,
    blocking: Blocking,
    mut on_block: impl FnMut(&KnnBlock) -> Result<()>,
) -> Result<()> {
    let nq = query.size()[0] as usize;
    let nr = reference.size()[0] as usize;
    let self_count = usize::from(reference_includes_query);
    anyhow::ensure!(
        k + self_count <= nr,
        "internal: k = {k} exceeds the reference size {nr}"
    );
    let k_search = k + self_count;
    if nq == 0 {
        return Ok(());
    }
    let q = query.to_kind(Kind::Float).contiguous();
    let r = reference.to_kind(Kind::Float).contiguous();
    let rt = r.transpose(0, 1).contiguous();
    let r_sq = r
        .square()
        .sum_dim_intlist(&[1i64][..], false, Kind::Float)
        .view([1, nr as i64]);
    let rows_per_block = blocking
        .rows
        .unwrap_or_else(|| blocking.block_bytes / (4 * nr.max(1)))
        .clamp(1, nq);

    let mut indices = Vec::new();
    let mut start = 0usize;
    while start < nq {
        let len = rows_per_block.min(nq - start);
        let qb = q.narrow(0, start as i64, len as i64);
        let q_sq = qb.square().sum_dim_intlist(&[1i64][..], true, Kind::Float);
        let mut d = qb.matmul(&rt);
        let _ = d.g_mul_scalar_(-2.0);
        let _ = d.g_add_(&q_sq);
        let _ = d.g_add_(&r_sq);
        let _ = d.clamp_min_(0.0);

        indices.clear();
        if k_search > 0 {
            let (vals, idx) = d.topk(k_search as i64, 1, false, true);
            let vals: Vec<f32> = Vec::try_from(vals.contiguous().view([-1]))?;
            let idx: Vec<i64> = Vec::try_from(idx.contiguous().view([-1]))?;
            // Rows where more reference items than selected share the k-th distance.
            let kth = Tensor::from_slice(
                &(0..len)
                    .map(|row| vals[row * k_search + k_search - 1])
                    .collect::<Vec<f32>>(),
            )
            .view([len as i64, 1]);
            let at_or_below: Vec<i64> = Vec::try_from(d.le_tensor(&kth).sum_dim_intlist(
                &[1i64][..],
                false,
                Kind::Int64,
            ))?;
            let mut row_pairs: Vec<(f32, i64)> = Vec::with_capacity(k_search);
            for (row, &tied_or_closer) in at_or_below.iter().enumerate() {
                row_pairs.clear();
                let span = row * k_search..(row + 1) * k_search;
                row_pairs.extend(
                    vals[span.clone()]
                        .iter()
                        .copied()
                        .zip(idx[span].iter().copied()),
                );
                if tied_or_closer as usize > k_search {
                    repair_boundary_ties(&d, row, &mut row_pairs)?;
                }
                row_pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                if reference_includes_query {
                    let me = (start + row) as i64;
                    match row_pairs.iter().position(|p| p.1 == me) {
                        Some(pos) => {
                            row_pairs.remove(pos);
                        }
                        None => {
                            row_pairs.pop();
                        }
                    }
                }
                indices.extend(row_pairs[..k].iter().map(|p| p.1));
            }
        }
        on_block(&KnnBlock {
            start,
            rows: len,
            k,
            indices: &indices,
            all_distances: &d,
        })?;
        start += len;
    }
    Ok(())
}

/// Replaces the candidates tied with the k-th distance by the lowest-index reference items at that
/// distance (rare: only rows with more ties than places at the boundary).
fn repair_boundary_ties(d: &Tensor, row: usize, pairs: &mut Vec<(f32, i64)>) -> Result<()> {
    let k = pairs.len();
    let kth = pairs.iter().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max);
    pairs.retain(|p| p.0 < kth);
    let full: Vec<f32> = Vec::try_from(d.get(row as i64))?;
    let need = k - pairs.len();
    pairs.extend(
        full.iter()
            .enumerate()
            .filter(|(_, &v)| v == kth)
            .take(need)
            .map(|(i, &v)| (v, i as i64)),
    );
    Ok(())
}

/// Every query's neighbour list (tests).
#[cfg(test)]
pub fn knn_lists(
    query: &Tensor,
    reference: &Tensor,
    k: usize,
    reference_includes_query: bool,
    blocking: Blocking,
) -> Result<Vec<Vec<usize>>> {
    let mut out = Vec::new();
    blocked_knn(
        query,
        reference,
        k,
        reference_includes_query,
        blocking,
        |b| {
            for row in 0..b.rows {
                out.push(
                    b.indices[row * b.k..(row + 1) * b.k]
                        .iter()
                        .map(|&i| i as usize)
                        .collect(),
                );
            }
            Ok(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Naive reference: every distance in f64 from the same float32 expansion, full stable sort by
    /// (distance, index), then PML's self removal.
    fn naive(q: &Tensor, r: &Tensor, k: usize, riq: bool) -> Vec<Vec<usize>> {
        let qv: Vec<Vec<f32>> = Vec::try_from(q).unwrap();
        let rv: Vec<Vec<f32>> = Vec::try_from(r).unwrap();
        qv.iter()
            .enumerate()
            .map(|(qi, a)| {
                let mut all: Vec<(f64, usize)> = rv
                    .iter()
                    .enumerate()
                    .map(|(ri, b)| {
                        let d: f64 = a
                            .iter()
                            .zip(b)
                            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                            .sum();
                        (d, ri)
                    })
                    .collect();
                all.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                let mut top: Vec<usize> = all[..k + usize::from(riq)].iter().map(|p| p.1).collect();
                if riq {
                    match top.iter().position(|&i| i == qi) {
                        Some(p) => {
                            top.remove(p);
                        }
                        None => {
                            top.pop();
                        }
                    }
                }
                top
            })
            .collect()
    }

    #[test]
    fn blocked_matches_naive_for_many_block_sizes_and_k() {
        tch::manual_seed(7);
        // Integer-valued coordinates: distances are exact in f32 and f64 alike and ties are
        // frequent, which exercises the tie-breaking and boundary repair.
        let q = Tensor::randint(4, [37, 3], (Kind::Float, Device::Cpu));
        let r = Tensor::randint(4, [53, 3], (Kind::Float, Device::Cpu));
        let qr = Tensor::cat(&[&q, &r], 0);
        for rows in [1usize, 2, 5, 16, 37, 1000] {
            let blocking = Blocking {
                rows: Some(rows),
                ..Blocking::default()
            };
            for k in [1usize, 3, 8, 20, 53] {
                assert_eq!(
                    knn_lists(&q, &r, k, false, blocking).unwrap(),
                    naive(&q, &r, k, false),
                    "rows {rows} k {k}"
                );
                assert_eq!(
                    knn_lists(&q, &qr, k, true, blocking).unwrap(),
                    naive(&q, &qr, k, true),
                    "self rows {rows} k {k}"
                );
            }
        }
        // Continuous data in 16 dimensions: no ties, so the float32 expansion must reproduce the
        // exact ordering.
        let q = Tensor::randn([40, 16], (Kind::Float, Device::Cpu));
        let r = Tensor::randn([90, 16], (Kind::Float, Device::Cpu));
        for rows in [3usize, 40] {
            let blocking = Blocking {
                rows: Some(rows),
                ..Blocking::default()
            };
            assert_eq!(
                knn_lists(&q, &r, 10, false, blocking).unwrap(),
                naive(&q, &r, 10, false)
            );
        }
    }

    #[test]
    fn byte_budget_splits_into_blocks() {
        let q = Tensor::randn([30, 4], (Kind::Float, Device::Cpu));
        let mut blocks = 0;
        // 4 bytes x 30 reference columns x 7 rows per block.
        let blocking = Blocking {
            rows: None,
            block_bytes: 4 * 30 * 7,
        };
        blocked_knn(&q, &q, 2, true, blocking, |b| {
            assert!(b.rows <= 7);
            blocks += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(blocks, 5);
    }

    #[test]
    fn self_match_removed_even_when_duplicates_tie() {
        // PML's test_tied_distances: duplicates of other labels are kept, the self row removed.
        let e = Tensor::from_slice(&[10f32, 10., 20., 20.]).view([4, 1]);
        let got = knn_lists(&e, &e, 1, true, Blocking::default()).unwrap();
        assert_eq!(got, vec![vec![1], vec![0], vec![3], vec![2]]);
    }
}
