//! The symmetric path of self-evaluation (the reference is the query set).

use super::ranking::{by_value_then_index, rank_rows, RowRanker};
use super::selection::{feed_rows, feed_transposed, RowState};
use super::{Blocking, KnnBlock};
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// Self-evaluation (the reference is the query set): the distance matrix is symmetric, so it is
/// computed in square tiles (I, J) with J >= I only, each tile serving the rows of I directly and
/// the rows of J through its transpose: about half the matmul work of the row-block path. Every
/// row keeps a running selection of its `m` smallest screened values; a row tile is ranked (same
/// proof and exact re-ranking as the row-block path) once all its tiles have been seen.
pub(super) fn symmetric_self_knn(
    x: &Tensor,
    sq: &Tensor,
    ranker: &RowRanker,
    blocking: Blocking,
    threads: usize,
    mut on_block: impl FnMut(&KnnBlock) -> Result<()>,
) -> Result<()> {
    let n = x.size()[0] as usize;
    let m = ranker.m;
    let side = blocking
        .rows
        .unwrap_or_else(|| ((blocking.block_bytes / 4) as f64).sqrt() as usize)
        .clamp(1, n);
    let tiles = n.div_ceil(side);
    let span = |t: usize| (t * side, side.min(n - t * side));
    let xt_m2 = x.transpose(0, 1).contiguous() * -2.0;
    let sq_host: Vec<f32> = Vec::try_from(sq.view([-1]))?;
    let mut states: Vec<RowState> = (0..n).map(|_| RowState::default()).collect();
    let mut fallback_rows = 0usize;
    // One tile buffer for the whole pass: a fresh 128 MiB tensor per tile would be faulted in
    // (and zeroed by the kernel) page by page every time.
    let tile_buffer = Tensor::empty([(side * side) as i64], (Kind::Float, Device::Cpu));
    for ti in 0..tiles {
        let (i0, il) = span(ti);
        let xi = x.narrow(0, i0 as i64, il as i64);
        for tj in ti..tiles {
            let (j0, jl) = span(tj);
            // Rows of I against columns of J: |x_j|² - 2 x_i·x_j (a matmul, then |x_j|² added).
            let tile = tile_buffer
                .narrow(0, 0, (il * jl) as i64)
                .view([il as i64, jl as i64]);
            let _ = xi.mm_out(&tile, &xt_m2.narrow(1, j0 as i64, jl as i64));
            let _ = tile
                .shallow_clone()
                .g_add_(&sq.narrow(1, j0 as i64, jl as i64));
            anyhow::ensure!(
                tile.kind() == Kind::Float && tile.numel() == il * jl,
                "internal: unexpected tile"
            );
            // SAFETY: `tile` is a contiguous CPU float32 tensor of il * jl elements, alive and
            // unmodified while this slice is used (until the end of this iteration).
            let values: &[f32] =
                unsafe { std::slice::from_raw_parts(tile.data_ptr() as *const f32, il * jl) };
            feed_rows(&mut states[i0..i0 + il], values, jl, j0 as i64, m, threads);
            if tj != ti {
                // Rows of J against columns of I from the same tile, read column-wise:
                // (|x_j|² - 2 x_i·x_j) - |x_j|² + |x_i|².
                feed_transposed(
                    &mut states[j0..j0 + jl],
                    values,
                    (il, jl),
                    (&sq_host[i0..i0 + il], &sq_host[j0..j0 + jl]),
                    i0 as i64,
                    m,
                    threads,
                );
            }
        }
        // Row tile I has seen every column: rank its rows.
        let (indices, fallbacks) = rank_rows(
            &mut states[i0..i0 + il],
            threads,
            ranker.k,
            |r, state, scratch, out| {
                state.compact(m);
                state.cand.sort_by(by_value_then_index);
                let fallback = ranker.rank_candidates(&state.cand, i0 + r, scratch, out);
                *state = RowState::default();
                fallback
            },
        );
        fallback_rows += fallbacks;
        on_block(&KnnBlock {
            start: i0,
            rows: il,
            k: ranker.k,
            indices: &indices,
            partial_distances: None,
            query_sq_norms: None,
            fallback_rows,
            rescreened_rows: 0,
        })?;
    }
    Ok(())
}
