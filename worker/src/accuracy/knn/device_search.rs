//! The search on the embeddings' own device (a GPU during CUDA runs): blocks of query rows
//! screened by one float32 matrix product against every reference and a `topk` there, so only
//! each row's candidates (`m` values and indices) cross to the host, where the proof, the exact
//! f64 re-ranking and the self-match rule are the CPU path's own (`RowRanker::rank_proven`). The
//! neighbour lists are therefore the CPU path's, whatever order the device summed in.
//!
//! Rows whose candidates lack the proof (the `m`-th screened value is within twice the rounding
//! bound of the `k_search`-th: duplicates or near-ties at the boundary) get a wider `topk` of the
//! same block rows, four times wider each round, until the proof holds or the candidates are the
//! whole row (proven by definition; counted as `fallback_rows`, the CPU path's full-row rows).
//!
//! While the host ranks block b, the device already computes block b + 1 (CUDA queues work
//! asynchronously; the host waits only when it copies b + 1's candidates).

use super::ranking::{by_value_then_index, RowRanker, Scratch};
use super::{Blocking, KnnBlock};
use anyhow::Result;
use std::marker::PhantomData;
use tch::{Device, Kind, Tensor};

// libtorch's `at::NoTF32Guard` (ATen/Context.h), a one-`bool` RAII object: while one lives, the
// calling thread's cuBLAS float32 products run in full float32 even where TF32 was allowed
// (`TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1`, or a process that enabled it). TF32 rounds the inputs to
// 10-bit mantissas, an error the screen's float32 bound does not cover. tch exposes no switch for
// it, so the constructor and destructor are called by their Itanium C++ ABI names (as
// `precision.rs` calls `set_autocast_dtype`).
extern "C" {
    #[link_name = "_ZN2at11NoTF32GuardC1Ev"]
    fn at_no_tf32_guard_construct(this: *mut u8);
    #[link_name = "_ZN2at11NoTF32GuardD1Ev"]
    fn at_no_tf32_guard_destruct(this: *mut u8);
}

/// Full-float32 matrix products on this thread while alive (thread-local in libtorch, hence not
/// `Send`).
struct NoTf32 {
    object: Box<u8>,
    _same_thread: PhantomData<*const ()>,
}

impl NoTf32 {
    fn enter() -> NoTf32 {
        let mut object = Box::new(0u8);
        // SAFETY: `object` is one writable, suitably aligned byte, the size of the C++ class
        // (a single `bool`); the destructor runs exactly once, on this thread, in `drop`.
        unsafe { at_no_tf32_guard_construct(&mut *object) };
        NoTf32 {
            object,
            _same_thread: PhantomData,
        }
    }
}

impl Drop for NoTf32 {
    fn drop(&mut self) {
        // SAFETY: constructed in `enter` on this thread (the type is not `Send`).
        unsafe { at_no_tf32_guard_destruct(&mut *self.object) };
    }
}

/// One block's screen, queued on the device: its distance rows and its `topk` candidates.
struct Screened {
    /// The candidates' values and indices on the device, until `fetch` copies them.
    top: Option<(Tensor, Tensor)>,
    start: usize,
    rows: usize,
    /// `rows x nr` screen values `|r|² - 2 q·r` (float32, on the device).
    partial: Tensor,
    /// `rows x 1` squared query norms (with `Blocking::keep_distances`, on the device).
    query_sq_norms: Option<Tensor>,
    /// The candidates, copied to the host: row-major `rows x m`.
    values: Vec<f32>,
    indices: Vec<i64>,
}

/// One row's candidates on the host, sorted by (value, index), and whether they are proven to
/// hold every item that can be among the `k_search` nearest.
#[derive(Default)]
struct RowCandidates {
    cand: Vec<(f32, i64)>,
    proven: bool,
}

/// The `k_search`-th and last screened values of a sorted candidate list are far enough apart
/// (or the list is the whole row): nothing outside it can be among the `k_search` nearest.
fn is_proven(cand: &[(f32, i64)], ranker: &RowRanker, tol2: f64) -> bool {
    cand.len() == ranker.nr
        || f64::from(cand[cand.len() - 1].0) > f64::from(cand[ranker.k_search - 1].0) + tol2
}

/// Runs `f` on every row, the rows split over `threads` threads.
fn for_each_row<T: Send>(rows: &mut [T], threads: usize, f: impl Fn(usize, &mut T) + Sync) {
    let per_thread = rows.len().div_ceil(threads.max(1)).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        for (c, chunk) in rows.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                for (r, row) in chunk.iter_mut().enumerate() {
                    f(c * per_thread + r, row);
                }
            });
        }
    });
}

/// `m` smallest values per row of `partial` (sorted ascending, ties in any order) and their
/// column indices, queued on `partial`'s device.
fn top_candidates(partial: &Tensor, m: usize) -> (Tensor, Tensor) {
    partial.topk(m as i64, 1, false, true)
}

/// `top_candidates` on the host, row-major (waits for the device).
fn to_host((values, indices): (Tensor, Tensor)) -> Result<(Vec<f32>, Vec<i64>)> {
    let values = Vec::<f32>::try_from(values.to_device(Device::Cpu).view([-1]))?;
    let indices = Vec::<i64>::try_from(indices.to_device(Device::Cpu).view([-1]))?;
    Ok((values, indices))
}

impl Screened {
    /// Copies the candidates to the host.
    fn fetch(&mut self) -> Result<()> {
        if let Some(top) = self.top.take() {
            (self.values, self.indices) = to_host(top)?;
        }
        Ok(())
    }
}

/// Blocks of query rows against every reference on the device of `q` and `r` (float32,
/// contiguous, same device). `ranker` holds the host copies and the bound; its `m` is the
/// first candidate count.
pub(super) fn device_knn(
    q: &Tensor,
    r: &Tensor,
    ranker: &RowRanker,
    blocking: Blocking,
    threads: usize,
    mut on_block: impl FnMut(&KnnBlock) -> Result<()>,
) -> Result<()> {
    let _full_float32 = NoTf32::enter();
    let (nq, nr, m) = (q.size()[0] as usize, ranker.nr, ranker.m);
    let r_sq = r
        .square()
        .sum_dim_intlist(&[1i64][..], false, Kind::Float)
        .view([1, nr as i64]);
    // -2 rᵀ (an exact scaling), so one product and one addition give |r|² - 2 q·r, the
    // distance minus the row constant |q|². A plain `mm` rather than `addmm`: libtorch may route
    // a bias-shaped addmm through cublasLt, whose float32 compute type follows the TF32 setting
    // without looking at the guard above.
    let rt_m2 = r.transpose(0, 1).contiguous() * -2.0;
    let rows_per_block = blocking
        .rows
        .unwrap_or_else(|| blocking.block_bytes / (4 * nr).max(1))
        .clamp(1, nq);
    let screen = |start: usize| -> Screened {
        let rows = rows_per_block.min(nq - start);
        let qb = q.narrow(0, start as i64, rows as i64);
        let mut partial = qb.mm(&rt_m2);
        let _ = partial.g_add_(&r_sq);
        let query_sq_norms = blocking
            .keep_distances
            .then(|| qb.square().sum_dim_intlist(&[1i64][..], true, Kind::Float));
        Screened {
            top: Some(top_candidates(&partial, m)),
            start,
            rows,
            partial,
            query_sq_norms,
            values: Vec::new(),
            indices: Vec::new(),
        }
    };
    let mut counts = Counts::default();
    let mut current = screen(0);
    current.fetch()?;
    loop {
        // Queue the next block on the device before ranking this one on the host.
        let next_start = current.start + current.rows;
        let next = (next_start < nq).then(|| screen(next_start));
        finish_block(
            &current,
            ranker,
            blocking,
            threads,
            &mut counts,
            &mut on_block,
        )?;
        let Some(mut block) = next else {
            return Ok(());
        };
        block.fetch()?;
        current = block;
    }
}

/// Rows needing more than the first candidates, so far.
#[derive(Default)]
struct Counts {
    /// Solved from candidates that were the whole row.
    full_rows: usize,
    /// Given a wider candidate list.
    widened: usize,
}

/// Proves, widens where needed, ranks and hands one screened block to `on_block`.
fn finish_block(
    block: &Screened,
    ranker: &RowRanker,
    blocking: Blocking,
    threads: usize,
    counts: &mut Counts,
    on_block: &mut impl FnMut(&KnnBlock) -> Result<()>,
) -> Result<()> {
    let (start, nr, m) = (block.start, ranker.nr, ranker.m);
    let mut rows: Vec<RowCandidates> = (0..block.rows).map(|_| RowCandidates::default()).collect();
    let tolerance = |row: usize| ranker.tolerance(start + row);
    // The host copies alone go to the threads (tensors cannot be shared between threads).
    let (values, indices) = (&block.values, &block.indices);
    for_each_row(&mut rows, threads, |row, state| {
        let span = row * m..(row + 1) * m;
        state.cand.extend(
            values[span.clone()]
                .iter()
                .copied()
                .zip(indices[span].iter().copied()),
        );
        // `topk` orders equal values arbitrarily; the ranking reads runs in (value, index) order.
        state.cand.sort_by(by_value_then_index);
        state.proven = is_proven(&state.cand, ranker, tolerance(row));
    });
    widen_unproven(block, &mut rows, ranker, blocking, &tolerance, counts)?;
    let k = ranker.k;
    let mut parts: Vec<(Vec<i64>, usize)> = Vec::new();
    let per_thread = rows.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(per_thread)
            .enumerate()
            .map(|(c, chunk)| {
                let tolerance = &tolerance;
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(chunk.len() * k);
                    let mut scratch = Scratch::default();
                    let mut full = 0;
                    for (i, state) in chunk.iter().enumerate() {
                        let row = c * per_thread + i;
                        full += usize::from(state.cand.len() == nr && m < nr);
                        ranker.rank_proven(
                            &state.cand,
                            true,
                            start + row,
                            tolerance(row),
                            &mut scratch,
                            &mut out,
                        );
                    }
                    (out, full)
                })
            })
            .collect();
        for h in handles {
            parts.push(h.join().expect("kNN ranking thread panicked"));
        }
    });
    let mut indices = Vec::with_capacity(block.rows * k);
    for (part, full) in parts {
        indices.extend_from_slice(&part);
        counts.full_rows += full;
    }
    on_block(&KnnBlock {
        start,
        rows: block.rows,
        k,
        indices: &indices,
        partial_distances: blocking.keep_distances.then_some(&block.partial),
        query_sq_norms: block.query_sq_norms.as_ref(),
        fallback_rows: counts.full_rows,
        rescreened_rows: counts.widened,
    })
}

/// Gives every unproven row of `block` wider candidates from its distance row on the device,
/// four times wider each round, until each is proven (the whole row at the latest). Each round's
/// rows go in groups whose `topk` results (12 bytes per value) stay within the block budget.
fn widen_unproven(
    block: &Screened,
    rows: &mut [RowCandidates],
    ranker: &RowRanker,
    blocking: Blocking,
    tolerance: &impl Fn(usize) -> f64,
    counts: &mut Counts,
) -> Result<()> {
    let nr = ranker.nr;
    let mut width = ranker.m;
    let mut pending: Vec<i64> = (0..rows.len() as i64)
        .filter(|&i| !rows[i as usize].proven)
        .collect();
    counts.widened += pending.len();
    let device = block.partial.device();
    while !pending.is_empty() {
        // Past half the row, take it all: a topk that wide costs a sort anyway.
        width = if 8 * width >= nr { nr } else { 4 * width };
        let group = (blocking.block_bytes / (12 * width)).max(1);
        let mut still = Vec::new();
        for chunk in pending.chunks(group) {
            let picked = Tensor::from_slice(chunk).to_device(device);
            let (values, indices) = to_host(top_candidates(
                &block.partial.index_select(0, &picked),
                width,
            ))?;
            for (g, &row) in chunk.iter().enumerate() {
                let state = &mut rows[row as usize];
                state.cand.clear();
                let span = g * width..(g + 1) * width;
                state.cand.extend(
                    values[span.clone()]
                        .iter()
                        .copied()
                        .zip(indices[span].iter().copied()),
                );
                state.cand.sort_by(by_value_then_index);
                state.proven = is_proven(&state.cand, ranker, tolerance(row as usize));
                if !state.proven {
                    still.push(row);
                }
            }
        }
        pending = still;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::NoTf32;

    extern "C" {
        // `static bool at::NoTF32Guard::should_disable_tf32()`: what libtorch's cuBLAS handle
        // setup asks before choosing TF32.
        #[link_name = "_ZN2at11NoTF32Guard19should_disable_tf32Ev"]
        fn at_should_disable_tf32() -> bool;
    }

    fn disabled() -> bool {
        // SAFETY: a static function without arguments reading a thread-local flag.
        unsafe { at_should_disable_tf32() }
    }

    #[test]
    fn the_guard_turns_tf32_off_on_its_thread_while_alive() {
        assert!(!disabled());
        {
            let _guard = NoTf32::enter();
            assert!(disabled());
            // Thread-local: another thread's products are not affected.
            assert!(!std::thread::spawn(disabled).join().unwrap());
        }
        assert!(!disabled());
    }
}
