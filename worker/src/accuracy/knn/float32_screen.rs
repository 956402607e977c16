//! The float32 screen of blocks of query rows (the default path, and the one that can hand the
//! block distances to the caller).

use super::ranking::RowRanker;
use super::{Blocking, KnnBlock};
use anyhow::Result;
use tch::{Kind, Tensor};

/// The row-block path: blocks of query rows against every reference, each block's distances
/// screened in float32 by one addmm (kept for the caller when `keep_distances`) and ranked exactly.
pub(super) fn row_block_knn(
    q: &Tensor,
    r: &Tensor,
    r_sq: &Tensor,
    ranker: &RowRanker,
    blocking: Blocking,
    threads: usize,
    mut on_block: impl FnMut(&KnnBlock) -> Result<()>,
) -> Result<()> {
    let (nq, nr, k, k_search) = (q.size()[0] as usize, ranker.nr, ranker.k, ranker.k_search);
    // -2 rᵀ, so one addmm gives |r|² - 2 q·r: the distance minus the row constant |q|², which
    // does not change a row's ranking.
    let rt_m2 = r.transpose(0, 1).contiguous() * -2.0;
    let rows_per_block = blocking
        .rows
        .unwrap_or_else(|| blocking.block_bytes / (4 * nr).max(1))
        .clamp(1, nq);

    let mut fallback_rows = 0usize;
    let mut start = 0usize;
    while start < nq {
        let len = rows_per_block.min(nq - start);
        let qb = q.narrow(0, start as i64, len as i64);
        let partial = r_sq.addmm(&qb, &rt_m2).contiguous();
        let q_sq = qb.square().sum_dim_intlist(&[1i64][..], true, Kind::Float);

        let mut indices = Vec::new();
        if k_search > 0 {
            let (ranked, fallbacks) = ranker.rank_block(&partial, threads, |row| start + row)?;
            indices = ranked;
            fallback_rows += fallbacks;
        }
        on_block(&KnnBlock {
            start,
            rows: len,
            k,
            indices: &indices,
            partial_distances: Some(&partial),
            query_sq_norms: Some(&q_sq),
            fallback_rows,
            rescreened_rows: 0,
        })?;
        start += len;
    }
    Ok(())
}
