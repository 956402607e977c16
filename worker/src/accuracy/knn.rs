//! Exact k-nearest neighbours by squared Euclidean distance, computed in blocks of query rows so
//! memory stays bounded whatever the set sizes (a block's distance matrix is at most
//! `block_bytes`), with deterministic tie-breaking and PML's self-match removal.
//!
//! Ranking: ascending squared L2 (as faiss `IndexFlatL2`), ties ordered by reference index, and
//! exact: the ranking is that of the f64 distances, not of float32 rounding.
//! 1. Screen: the block's distances by the float32 expansion `|r|² - 2 q·r` (one addmm, as faiss;
//!    the row constant `|q|²` does not change the ranking), and the `k + margin` smallest per row
//!    (a sampled threshold and one scan, on all cores; faster than `topk`).
//! 2. Proof: the f32 expansion's rounding error of a pair is at most γ·(|q| + |r|)² (γ = Higham's
//!    γ_{d+4}). If the last candidate's f32 distance exceeds the k-th's by more than twice that,
//!    no item outside the candidates can be among the true k nearest.
//! 3. Re-rank: candidates whose f32 values are further apart than twice the bound are already in
//!    their true order; runs of closer values (including exact ties) get exact f64 distances from
//!    coordinate differences and are sorted by (distance, index). So ties are deterministic
//!    (`topk` is not stable and picks arbitrarily among equal values at the k-th place) and the
//!    ranking is that of the exact distances, at the cost of a few f64 dot products per row.
//! 4. Rows without the proof (near-ties or duplicates at the boundary, huge norms) are solved from
//!    a full f64 row instead. Rare on real embeddings; counted in `fallback_rows`.
//!
//! faiss ranks by its float32 distances, so on pairs closer than float32 rounding it can order
//! differently from the true ranking computed here (docs/metrics.md).

use anyhow::Result;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tch::{Device, Kind, Tensor};

use super::int8_screen::{self, Selection, Vnni};

/// Default bytes of one block's distance matrix.
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
    /// With `Blocking::keep_distances`: the block's `rows x n_reference` matrix of
    /// `|r|² - 2 q·r` (float32), i.e. squared distances minus the row constant `query_sq_norms`,
    /// for metrics that need every pair (fnmr@fmr). Self pairs are still present.
    pub partial_distances: Option<&'a Tensor>,
    /// `rows x 1` squared norms of the block's queries (with `partial_distances`).
    pub query_sq_norms: Option<&'a Tensor>,
    /// Query rows so far that needed the full-row f64 fallback (diagnostics).
    pub fallback_rows: usize,
    /// Query rows so far whose integer-screen candidates were not proven complete and went
    /// through the float32 screen (diagnostics).
    pub rescreened_rows: usize,
}

/// How the search is split into blocks.
#[derive(Debug, Clone, Copy)]
pub struct Blocking {
    /// Query rows per block (tile side in the symmetric self path); `None` derives it from
    /// `block_bytes`.
    pub rows: Option<usize>,
    pub block_bytes: usize,
    /// The callback needs every pair's distance (fnmr@fmr): full-row blocks, float32 screen, no
    /// symmetric path.
    pub keep_distances: bool,
    pub screen: Screen,
}

impl Default for Blocking {
    fn default() -> Self {
        Blocking {
            rows: None,
            block_bytes: DEFAULT_BLOCK_BYTES,
            keep_distances: false,
            screen: Screen::Auto,
        }
    }
}

/// Which screen finds each row's candidates (the ranking that follows is exact either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The integer screen (`int8_screen.rs`) where the CPU has AVX-512 VNNI and the reference set
    /// has at least `INT8_MIN_REFERENCE` items (below that, coding the sets costs more than the
    /// float32 products it saves); the float32 screen otherwise.
    Auto,
    Float32,
    /// The integer screen whenever the CPU has it (tests).
    Int8,
}

/// Smallest reference set `Screen::Auto` gives the integer screen.
pub const INT8_MIN_REFERENCE: usize = 2048;

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
    let dim = query.size()[1] as usize;
    let self_count = usize::from(reference_includes_query);
    anyhow::ensure!(
        k + self_count <= nr,
        "internal: k = {k} exceeds the reference size {nr}"
    );
    let k_search = k + self_count;
    if nq == 0 {
        return Ok(());
    }
    let q = query
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let r = reference
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    // Host copies for the exact f64 re-ranking; one copy when the query set is the reference.
    let r_data: Vec<f32> = Vec::try_from(r.view([-1]))?;
    let q_own: Option<Vec<f32>> = if q.data_ptr() == r.data_ptr() && nq == nr {
        None
    } else {
        Some(Vec::try_from(q.view([-1]))?)
    };
    let q_data: &[f32] = q_own.as_deref().unwrap_or(&r_data);
    let r_sq = r
        .square()
        .sum_dim_intlist(&[1i64][..], false, Kind::Float)
        .view([1, nr as i64]);
    let r_norm_max = f64::from(f32::try_from(r_sq.max())?).sqrt();
    // Rigorous bound on the f32 screen's rounding error for a pair (q, r) (Higham's γ_n for an
    // n-term sum, n = dim + 4: the dot product, |r|², and the two extra additions of the
    // symmetric path's transposed values): |err| <= γ (|q| + |r|)².
    let unit = f64::from(f32::EPSILON) / 2.0;
    let terms = dim as f64 + 4.0;
    let gamma = terms * unit / (1.0 - terms * unit);
    let ranker = RowRanker {
        q_data,
        r_data: &r_data,
        dim,
        nr,
        k,
        k_search,
        // Candidates per row: the k_search nearest by the screen plus a margin for the proof.
        m: (k_search + 16.max(k_search / 8)).min(nr),
        gamma,
        r_norm_max,
        reference_includes_query,
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let vnni = match blocking.screen {
        Screen::Float32 => None,
        // The integer screen prunes nothing when its candidate lists cover much of each row.
        Screen::Auto
            if nr < INT8_MIN_REFERENCE
                || 4 * int8_screen::candidates_per_row(k_search, nr) > nr =>
        {
            None
        }
        Screen::Auto | Screen::Int8 => Vnni::detect(),
    };
    // The live selections (4m + 32 values and indices per row of a running task) stay within
    // the block budget too; otherwise (k near the reference size) the float32 screen runs.
    let selection_bytes =
        threads * INT8_TASK_ROWS * (4 * int8_screen::candidates_per_row(k_search, nr) + 32) * 8;
    if let Some(vnni) = vnni {
        if !blocking.keep_distances
            && k_search > 0
            && dim <= int8_screen::MAX_DIM
            && selection_bytes <= blocking.block_bytes.max(64 << 20)
        {
            let sets = (&q, &r, &r_sq);
            return int8_knn(vnni, sets, &ranker, blocking, threads, on_block);
        }
    }
    // -2 rᵀ, so one addmm gives |r|² - 2 q·r: the distance minus the row constant |q|², which
    // does not change a row's ranking.
    let rt_m2 = r.transpose(0, 1).contiguous() * -2.0;
    if reference_includes_query
        && !blocking.keep_distances
        && k_search > 0
        && nq == nr
        && q.data_ptr() == r.data_ptr()
    {
        return symmetric_self_knn(&q, &r_sq, &ranker, blocking, threads, on_block);
    }
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

/// Ranks `rows` split over `threads` threads, keeping their order: `rank(i, row, scratch, out)`
/// appends row i's `k` neighbours to `out` and says whether it needed the full-row fallback.
/// Returns every row's neighbours (row-major) and the number of fallbacks.
fn rank_rows<T: Send>(
    rows: &mut [T],
    threads: usize,
    k: usize,
    rank: impl Fn(usize, &mut T, &mut Scratch, &mut Vec<i64>) -> bool + Sync,
) -> (Vec<i64>, usize) {
    let per_thread = rows.len().div_ceil(threads.max(1)).max(1);
    let rank = &rank;
    let parts: Vec<(Vec<i64>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks_mut(per_thread)
            .enumerate()
            .map(|(c, chunk)| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(chunk.len() * k);
                    let mut scratch = Scratch::default();
                    let mut fallbacks = 0;
                    for (r, row) in chunk.iter_mut().enumerate() {
                        fallbacks +=
                            usize::from(rank(c * per_thread + r, row, &mut scratch, &mut out));
                    }
                    (out, fallbacks)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("kNN worker thread panicked"))
            .collect()
    });
    let mut indices = Vec::with_capacity(rows.len() * k);
    let mut fallbacks = 0;
    for (part, f) in parts {
        indices.extend_from_slice(&part);
        fallbacks += f;
    }
    (indices, fallbacks)
}

/// Reusable per-thread buffers.
#[derive(Default)]
struct Scratch {
    cand: Vec<(f32, i64)>,
    exact: Vec<(f64, i64)>,
    order: Vec<i64>,
}

/// Everything needed to rank one query's row of screened distances.
struct RowRanker<'a> {
    q_data: &'a [f32],
    r_data: &'a [f32],
    dim: usize,
    nr: usize,
    k: usize,
    k_search: usize,
    m: usize,
    gamma: f64,
    r_norm_max: f64,
    reference_includes_query: bool,
}

fn by_value_then_index<T: PartialOrd + Copy>(a: &(T, i64), b: &(T, i64)) -> std::cmp::Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

impl RowRanker<'_> {
    /// Exact squared distance in f64 from coordinate differences.
    fn exact(&self, qi: usize, ri: usize) -> f64 {
        let a = &self.q_data[qi * self.dim..(qi + 1) * self.dim];
        let b = &self.r_data[ri * self.dim..(ri + 1) * self.dim];
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                let t = f64::from(*x) - f64::from(*y);
                t * t
            })
            .sum()
    }

    /// The `m` smallest (value, index) pairs of `values`, sorted. A sampled threshold keeps the
    /// scan to one comparison per element (no full selection over the row), which is what makes
    /// this faster than `topk`.
    fn candidates(&self, values: &[f32], cand: &mut Vec<(f32, i64)>) {
        let n = values.len();
        let m = self.m;
        cand.clear();
        if m * 4 >= n {
            cand.extend(values.iter().copied().zip(0i64..));
        } else {
            let stride = (n / 2048).max(1);
            let mut sample: Vec<f32> = values.iter().step_by(stride).copied().collect();
            sample.sort_by(f32::total_cmp);
            // Aim for about twice the needed share of the row; widen until enough pass.
            let mut pick = ((m as f64 / n as f64) * sample.len() as f64 * 2.0) as usize + 8;
            loop {
                let threshold = sample.get(pick).copied().unwrap_or(f32::INFINITY);
                cand.clear();
                cand.extend(
                    values
                        .iter()
                        .zip(0i64..)
                        .filter(|(v, _)| **v <= threshold)
                        .map(|(v, i)| (*v, i)),
                );
                if cand.len() >= m {
                    break;
                }
                pick = pick * 2 + 8;
            }
        }
        if cand.len() > m {
            cand.select_nth_unstable_by(m - 1, by_value_then_index);
            cand.truncate(m);
        }
        cand.sort_by(by_value_then_index);
    }

    /// Appends query `qi`'s `k` neighbours to `out`; returns whether the full-row fallback ran.
    fn rank(&self, values: &[f32], qi: usize, s: &mut Scratch, out: &mut Vec<i64>) -> bool {
        let mut cand = std::mem::take(&mut s.cand);
        self.candidates(values, &mut cand);
        let fallback = self.rank_candidates(&cand, qi, s, out);
        s.cand = cand;
        fallback
    }

    /// Ranks every row of `partial`, a contiguous `rows x nr` float32 block of screen values
    /// `|r|² - 2 q·r` whose row `i` belongs to query `query_of(i)`, the rows split over
    /// `threads` (libtorch's matmul already used them all): (neighbours row-major, fallbacks).
    fn rank_block(
        &self,
        partial: &Tensor,
        threads: usize,
        query_of: impl Fn(usize) -> usize + Sync,
    ) -> Result<(Vec<i64>, usize)> {
        let nr = self.nr;
        let rows = partial.size()[0] as usize;
        anyhow::ensure!(
            partial.kind() == Kind::Float
                && partial.is_contiguous()
                && partial.numel() == rows * nr,
            "internal: unexpected distance block"
        );
        // SAFETY: `partial` is a contiguous CPU float32 tensor of rows * nr elements, borrowed
        // (so alive and unmodified) for as long as this slice is used.
        let block: &[f32] =
            unsafe { std::slice::from_raw_parts(partial.data_ptr() as *const f32, rows * nr) };
        let mut values: Vec<&[f32]> = block.chunks(nr).collect();
        Ok(rank_rows(
            &mut values,
            threads,
            self.k,
            |i, row, scratch, out| self.rank(row, query_of(i), scratch, out),
        ))
    }

    /// Twice the bound on a float32 screen value's rounding error for query `qi`.
    fn tolerance(&self, qi: usize) -> f64 {
        let q_norm = self.q_data[qi * self.dim..(qi + 1) * self.dim]
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            .sqrt();
        2.0 * self.gamma * (q_norm + self.r_norm_max).powi(2)
    }

    /// As `rank`, from the row's `m` smallest screened (value, index) pairs, sorted.
    fn rank_candidates(
        &self,
        cand: &[(f32, i64)],
        qi: usize,
        s: &mut Scratch,
        out: &mut Vec<i64>,
    ) -> bool {
        let m = self.m;
        let tol2 = self.tolerance(qi);
        let kth = f64::from(cand[self.k_search - 1].0);
        let proven = m == self.nr || f64::from(cand[m - 1].0) > kth + tol2;
        self.rank_proven(cand, proven, qi, tol2, s, out)
    }

    /// Ranks from float32 screen values `cand`, sorted, that hold every item whose value is within
    /// `tol2` of the `k_search`-th when `proven` (else solves the row in f64); returns `!proven`.
    fn rank_proven(
        &self,
        cand: &[(f32, i64)],
        proven: bool,
        qi: usize,
        tol2: f64,
        s: &mut Scratch,
        out: &mut Vec<i64>,
    ) -> bool {
        let k_search = self.k_search;
        let m = cand.len();
        let kth = f64::from(cand[k_search - 1].0);
        s.order.clear();
        let fallback = !proven;
        if !fallback {
            // Items outside the candidates are provably farther than k_search of them. Inside,
            // values further apart than tol2 are in their true order; runs of closer values are
            // re-ranked by exact f64 distances (then index).
            let limit = cand
                .iter()
                .position(|c| f64::from(c.0) > kth + tol2)
                .unwrap_or(m);
            let mut i = 0;
            while i < limit && s.order.len() < k_search {
                let mut j = i + 1;
                while j < limit && f64::from(cand[j].0) - f64::from(cand[j - 1].0) <= tol2 {
                    j += 1;
                }
                if j - i == 1 {
                    s.order.push(cand[i].1);
                } else {
                    s.exact.clear();
                    s.exact.extend(
                        cand[i..j]
                            .iter()
                            .map(|c| (self.exact(qi, c.1 as usize), c.1)),
                    );
                    s.exact.sort_by(by_value_then_index);
                    s.order.extend(s.exact.iter().map(|p| p.1));
                }
                i = j;
            }
        } else {
            s.exact.clear();
            s.exact
                .extend((0..self.nr).map(|ri| (self.exact(qi, ri), ri as i64)));
            if k_search < self.nr {
                s.exact
                    .select_nth_unstable_by(k_search, by_value_then_index);
            }
            s.exact.truncate(k_search);
            s.exact.sort_by(by_value_then_index);
            s.order.extend(s.exact.iter().map(|p| p.1));
        }
        s.order.truncate(k_search);
        if self.reference_includes_query {
            match s.order.iter().position(|&p| p == qi as i64) {
                Some(pos) => {
                    s.order.remove(pos);
                }
                None => {
                    s.order.pop();
                }
            }
        }
        out.extend_from_slice(&s.order[..self.k]);
        fallback
    }
}

/// Running selection of one row's `m` smallest (value, index) pairs over column tiles.
#[derive(Default)]
struct RowState {
    cand: Vec<(f32, i64)>,
    /// The m-th smallest value so far (+inf until m are known); larger values cannot enter.
    threshold: Option<f32>,
}

impl RowState {
    /// Values above this cannot enter the selection.
    fn limit(&self) -> f32 {
        self.threshold.unwrap_or(f32::INFINITY)
    }

    /// Adds a value not above `limit()`; returns whether the limit changed (after a compaction).
    fn offer(&mut self, value: f32, index: i64, m: usize) -> bool {
        self.cand.push((value, index));
        if self.cand.len() >= 4 * m.max(8) {
            self.compact(m);
            return true;
        }
        false
    }

    fn feed(&mut self, values: &[f32], first_col: i64, m: usize) {
        let mut limit = self.limit();
        for (v, j) in values.iter().zip(first_col..) {
            if *v <= limit && self.offer(*v, j, m) {
                limit = self.limit();
            }
        }
    }

    fn compact(&mut self, m: usize) {
        if self.cand.len() > m {
            self.cand.select_nth_unstable_by(m - 1, by_value_then_index);
            self.cand.truncate(m);
        }
        if self.cand.len() == m {
            self.threshold = self.cand.iter().map(|c| c.0).reduce(f32::max);
        }
    }
}

/// Feeds `rows x width` values (row-major) to the matching row states, rows split over threads.
fn feed_rows(
    states: &mut [RowState],
    values: &[f32],
    width: usize,
    first_col: i64,
    m: usize,
    threads: usize,
) {
    let per_thread = states.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (chunk, rows) in states
            .chunks_mut(per_thread)
            .zip(values.chunks(per_thread * width))
        {
            scope.spawn(move || {
                for (state, row) in chunk.iter_mut().zip(rows.chunks(width)) {
                    state.feed(row, first_col, m);
                }
            });
        }
    });
}

/// Feeds the rows of J from an `il x jl` tile of rows of I (row-major): row j's value for column
/// i is `tile[i][j] - sq_j[j] + sq_i[i]`. Each thread owns a range of J rows and walks the tile
/// row by row, reading contiguous segments.
fn feed_transposed(
    states: &mut [RowState],
    tile: &[f32],
    (il, jl): (usize, usize),
    (sq_i, sq_j): (&[f32], &[f32]),
    first_col: i64,
    m: usize,
    threads: usize,
) {
    let per_thread = jl.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (c, chunk) in states.chunks_mut(per_thread).enumerate() {
            let j_start = c * per_thread;
            scope.spawn(move || {
                let mut limits: Vec<f32> = chunk.iter().map(RowState::limit).collect();
                for i in 0..il {
                    let row = &tile[i * jl + j_start..i * jl + j_start + chunk.len()];
                    let add = sq_i[i];
                    for (r, &v) in row.iter().enumerate() {
                        let value = (v - sq_j[j_start + r]) + add;
                        if value <= limits[r] && chunk[r].offer(value, first_col + i as i64, m) {
                            limits[r] = chunk[r].limit();
                        }
                    }
                }
            });
        }
    });
}

/// Self-evaluation (the reference is the query set): the distance matrix is symmetric, so it is
/// computed in square tiles (I, J) with J >= I only, each tile serving the rows of I directly and
/// the rows of J through its transpose: about half the matmul work of the row-block path. Every
/// row keeps a running selection of its `m` smallest screened values; a row tile is ranked (same
/// proof and exact re-ranking as the row-block path) once all its tiles have been seen.
fn symmetric_self_knn(
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

/// Query rows per task of the integer screen (a multiple of its 8-row groups): small enough to
/// balance the threads, large enough to reuse each cached chunk of references 8 times.
const INT8_TASK_ROWS: usize = 64;

/// The blocked search with the integer screen: passes of up to `threads x 256` query rows, each
/// thread screening its rows against every reference and ranking them; rows whose candidates
/// could not be proven complete are screened again in float32 (`RowRanker::rank`).
fn int8_knn(
    vnni: Vnni,
    (q, r, r_sq): (&Tensor, &Tensor, &Tensor),
    ranker: &RowRanker,
    blocking: Blocking,
    threads: usize,
    mut on_block: impl FnMut(&KnnBlock) -> Result<()>,
) -> Result<()> {
    let (nq, nr, dim, k) = (q.size()[0] as usize, ranker.nr, ranker.dim, ranker.k);
    let sq: Vec<f32> = Vec::try_from(r_sq.view([-1]))?;
    let (refs, queries) = if std::ptr::eq(ranker.q_data, ranker.r_data) {
        int8_screen::References::with_own_queries(ranker.r_data, nr, dim, &sq)
    } else {
        let refs = int8_screen::References::new(ranker.r_data, nr, dim, &sq);
        let queries = int8_screen::Queries::new(ranker.q_data, nq, dim, &refs);
        (refs, queries)
    };
    let m = int8_screen::candidates_per_row(ranker.k_search, nr);
    // The sample holds about 16 values per row below the rank-2m screen value of the whole set.
    let sample_size = (8 * nr / m).max(1024);
    let sample = (sample_size * 4 <= nr).then(|| {
        let picks: Vec<usize> = (0..sample_size).map(|i| i * nr / sample_size).collect();
        let data: Vec<f32> = picks
            .iter()
            .flat_map(|&i| ranker.r_data[i * dim..(i + 1) * dim].iter().copied())
            .collect();
        let sample_sq: Vec<f32> = picks.iter().map(|&i| sq[i]).collect();
        // (At most the sample's size: a forced integer screen with k near the reference size
        // asks for a rank beyond it.)
        let rank = (2 * m * sample_size).div_ceil(nr).clamp(1, sample_size);
        let refs = int8_screen::References::new(&data, sample_size, dim, &sample_sq);
        (refs, rank)
    });
    let int8 = Int8Rows {
        vnni,
        queries: &queries,
        refs: &refs,
        ranker,
        sq: &sq,
        m,
        sample,
    };
    let (mut fallback_rows, mut rescreened_rows) = (0usize, 0usize);
    // -2 rᵀ for the float32 screen of rows without the proof, made when the first one comes.
    let mut rt_m2: Option<Tensor> = None;
    // Rows without the proof go through the float32 screen in batches as large as one block of
    // `block_bytes` of distances allows (a matrix product of a few rows would read all of -2 rᵀ
    // for each of them); the tasks holding them wait, in order, for their batch.
    let batch = (blocking.block_bytes / (4 * nr).max(1)).max(1);
    let mut held: std::collections::VecDeque<(usize, RankedRows)> = Default::default();
    let mut held_unproven = 0usize;
    let mut deliver = |task: Option<(usize, RankedRows)>| -> Result<()> {
        let finished = task.is_none();
        if let Some((start, ranked)) = task {
            held_unproven += ranked.1.len();
            held.push_back((start, ranked));
        }
        if held_unproven > 0 && (held_unproven >= batch || finished) {
            rescreened_rows += held_unproven;
            held_unproven = 0;
            let rt_m2 = rt_m2.get_or_insert_with(|| r.transpose(0, 1).contiguous() * -2.0);
            // (task position in `held`, row) of every unproven row, in row order.
            let rows: Vec<(usize, usize)> = held
                .iter()
                .enumerate()
                .flat_map(|(h, (_, ranked))| ranked.1.iter().map(move |&row| (h, row)))
                .collect();
            for rows in rows.chunks(batch) {
                let at: Vec<i64> = rows.iter().map(|&(_, row)| row as i64).collect();
                let qb = q.index_select(0, &Tensor::from_slice(&at));
                let partial = r_sq.addmm(&qb, rt_m2).contiguous();
                let (ranked, fallbacks) = ranker.rank_block(&partial, threads, |i| rows[i].1)?;
                fallback_rows += fallbacks;
                for (i, &(h, row)) in rows.iter().enumerate() {
                    let (start, (indices, _, _)) = &mut held[h];
                    let at = (row - *start) * k;
                    indices[at..at + k].copy_from_slice(&ranked[i * k..(i + 1) * k]);
                }
            }
            for (_, ranked) in held.iter_mut() {
                ranked.1.clear();
            }
        }
        // Every task before the first one still waiting for its batch goes out.
        while held.front().is_some_and(|(_, ranked)| ranked.1.is_empty()) {
            let (start, (indices, _, fallbacks)) = held.pop_front().expect("checked");
            fallback_rows += fallbacks;
            on_block(&KnnBlock {
                start,
                rows: indices.len() / k.max(1),
                k,
                indices: &indices,
                partial_distances: None,
                query_sq_norms: None,
                fallback_rows,
                rescreened_rows,
            })?;
        }
        Ok(())
    };
    // Tasks of 64 rows, handed out as threads come free (rows differ in how many values pass
    // their limit); this thread puts the results back in row order and delivers them while the
    // others go on.
    let tasks = nq.div_ceil(INT8_TASK_ROWS);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, results) = std::sync::mpsc::channel::<(usize, RankedRows)>();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(tasks) {
            let (sender, int8, next, stop) = (sender.clone(), &int8, &next, &stop);
            scope.spawn(move || {
                let mut buffers = Int8Buffers::default();
                loop {
                    let t = next.fetch_add(1, Ordering::Relaxed);
                    if t >= tasks || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let a = t * INT8_TASK_ROWS;
                    let ranked = int8.rank(a..(a + INT8_TASK_ROWS).min(nq), &mut buffers);
                    if sender.send((t, ranked)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut waiting = std::collections::BTreeMap::new();
        let mut due = 0;
        let mut delivered = (|| -> Result<()> {
            for (t, ranked) in results.iter() {
                waiting.insert(t, ranked);
                while let Some(ranked) = waiting.remove(&due) {
                    deliver(Some((due * INT8_TASK_ROWS, ranked)))?;
                    due += 1;
                }
            }
            Ok(())
        })();
        if delivered.is_ok() {
            delivered = deliver(None);
        }
        if delivered.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        delivered
    })
}

/// Neighbour lists of a run of rows (row-major, zeros for rows without the proof), the rows
/// without the proof, and the number of f64 full-row fallbacks.
type RankedRows = (Vec<i64>, Vec<usize>, usize);

/// Readies `n` selections of budget `m` with the given starting limits. They are reused from
/// task to task (each holds 4m + 32 slots), so only their lengths and limits start over.
fn restart(selections: &mut Vec<Selection>, n: usize, m: usize, limits: impl Iterator<Item = f32>) {
    selections.resize_with(n, || Selection::new(m, f32::INFINITY));
    for (selection, limit) in selections.iter_mut().zip(limits) {
        selection.restart(limit);
    }
}

/// A worker thread's buffers for the integer screen, kept from task to task.
#[derive(Default)]
struct Int8Buffers {
    probe: Vec<Selection>,
    states: Vec<Selection>,
    scratch: Scratch,
    near: Vec<usize>,
    values: Vec<(f32, i64)>,
    keys: Vec<u64>,
}

/// What one thread of the integer-screen search needs.
struct Int8Rows<'a> {
    vnni: Vnni,
    queries: &'a int8_screen::Queries,
    refs: &'a int8_screen::References,
    ranker: &'a RowRanker<'a>,
    /// |r|² in float32, as in the float32 screen.
    sq: &'a [f32],
    /// Candidates kept per row by the integer screen.
    m: usize,
    /// A strided sample of the references and the rank in it whose screen value starts each
    /// row's limit (`None` for small reference sets).
    sample: Option<(int8_screen::References, usize)>,
}

impl Int8Rows<'_> {
    /// Screens and ranks query rows `rows`: every row's `k` neighbours (zeros for rows without
    /// the proof), the rows without it, and the number of f64 full-row fallbacks.
    fn rank(&self, rows: std::ops::Range<usize>, buffers: &mut Int8Buffers) -> RankedRows {
        let r = self.ranker;
        let (dim, k_search, m) = (r.dim, r.k_search, self.m);
        let Int8Buffers {
            probe,
            states,
            scratch,
            near,
            values,
            keys,
        } = buffers;
        // Starting limits from the sample: about 2m values per row pass the screen, instead
        // of every value until a running selection of m has formed.
        match &self.sample {
            Some((sample, rank)) => {
                restart(
                    probe,
                    rows.len(),
                    *rank * 4,
                    std::iter::repeat(f32::INFINITY),
                );
                self.vnni
                    .screen(self.queries, sample, rows.clone(), &mut probe[..rows.len()]);
                let limits = probe[..rows.len()].iter_mut().map(|p| p.nth_value(*rank));
                restart(states, rows.len(), m, limits);
            }
            None => restart(states, rows.len(), m, std::iter::repeat(f32::INFINITY)),
        }
        let states = &mut states[..rows.len()];
        self.vnni
            .screen(self.queries, self.refs, rows.clone(), states);
        let mut out = Vec::with_capacity(rows.len() * r.k);
        let (mut unproven, mut fallbacks) = (Vec::new(), 0usize);
        for (state, qi) in states.iter_mut().zip(rows) {
            // Every item not kept has a screen value >= the limit, so a true value >= limit -
            // E_q; the k_search smallest screen values are within E_q of theirs. Items (kept
            // or not) more than 2 E_q above the k_search-th screen value are therefore farther
            // than k_search kept items: proven when that covers everything not kept.
            let bound = self.queries.bound(qi);
            let proven = state.len() >= k_search && {
                let reach = f64::from(state.nth_value(k_search)) + 2.0 * bound;
                near.clear();
                near.extend(
                    state
                        .pairs()
                        .filter(|p| f64::from(p.0) <= reach)
                        .map(|p| p.1),
                );
                state.limit() == f32::INFINITY || f64::from(state.limit()) > reach
            };
            if !proven {
                unproven.push(qi);
                out.resize(out.len() + r.k, 0);
                continue;
            }
            // The candidates within reach get their float32 expansion values, as the float32
            // screen computes them, and that path's exact ranking.
            let q_row = &r.q_data[qi * dim..(qi + 1) * dim];
            // (value, index) packed into one u64 that sorts the same way (by_value_then_index):
            // selecting and sorting plain integers is about twice as fast as through a closure.
            keys.clear();
            for (c, &j) in near.iter().enumerate() {
                if let Some(&ahead) = near.get(c + 12) {
                    self.vnni
                        .prefetch(&r.r_data[ahead * dim..(ahead + 1) * dim]);
                }
                let dot = self.vnni.dot(q_row, &r.r_data[j * dim..(j + 1) * dim]);
                keys.push(sort_key(self.sq[j] - 2.0 * dot, j));
            }
            keys.select_nth_unstable(k_search - 1);
            let kth = f64::from(key_value(keys[k_search - 1]));
            let tol2 = r.tolerance(qi);
            // Only values within tol2 of the k-th can matter; rank those, sorted.
            let mut end = k_search;
            for i in k_search..keys.len() {
                if f64::from(key_value(keys[i])) <= kth + tol2 {
                    keys.swap(end, i);
                    end += 1;
                }
            }
            keys[..end].sort_unstable();
            values.clear();
            values.extend(
                keys[..end]
                    .iter()
                    .map(|&key| (key_value(key), (key & 0xffff_ffff) as i64)),
            );
            fallbacks +=
                usize::from(r.rank_proven(&values[..end], true, qi, tol2, scratch, &mut out));
        }
        (out, unproven, fallbacks)
    }
}

/// `value` (finite) and `index` (< 2^32) as one integer ordered like `by_value_then_index`:
/// the float's bits made monotone (negatives flipped, positives offset) above the index.
fn sort_key(value: f32, index: usize) -> u64 {
    let bits = (value + 0.0).to_bits(); // -0.0 becomes +0.0: they compare equal as floats
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    (u64::from(ordered) << 32) | index as u64
}

fn key_value(key: u64) -> f32 {
    let ordered = (key >> 32) as u32;
    f32::from_bits(if ordered >> 31 == 1 {
        ordered & !(1 << 31)
    } else {
        !ordered
    })
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

    /// Whether this CPU lacks the integer screen (said on stderr: its tests then check nothing).
    fn lacks_vnni() -> bool {
        let lacks = Vnni::detect().is_none();
        if lacks {
            eprintln!("no AVX-512 VNNI on this CPU: the integer screen is not tested");
        }
        lacks
    }

    /// Both screens; the integer one only where the CPU has it.
    fn screens() -> Vec<Screen> {
        let mut screens = vec![Screen::Float32];
        if !lacks_vnni() {
            screens.push(Screen::Int8);
        }
        screens
    }

    #[test]
    fn blocked_matches_naive_for_many_block_sizes_and_k() {
        tch::manual_seed(7);
        // Integer-valued coordinates: distances are exact in f32 and f64 alike and ties are
        // frequent, which exercises the tie-breaking and boundary repair.
        let q = Tensor::randint(4, [37, 3], (Kind::Float, Device::Cpu));
        let r = Tensor::randint(4, [53, 3], (Kind::Float, Device::Cpu));
        let qr = Tensor::cat(&[&q, &r], 0);
        for (rows, screen) in [1usize, 2, 5, 16, 37, 1000]
            .into_iter()
            .flat_map(|rows| screens().into_iter().map(move |s| (rows, s)))
        {
            let blocking = Blocking {
                rows: Some(rows),
                screen,
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
                // The query set as its own reference: the symmetric tile path (tile side `rows`),
                // and the row-block path when every pair's distance is kept.
                if k < 37 {
                    let want = naive(&q, &q, k, true);
                    assert_eq!(
                        knn_lists(&q, &q, k, true, blocking).unwrap(),
                        want,
                        "symmetric rows {rows} k {k}"
                    );
                    let rowwise = Blocking {
                        keep_distances: true,
                        ..blocking
                    };
                    assert_eq!(knn_lists(&q, &q, k, true, rowwise).unwrap(), want);
                }
            }
        }
        // Continuous data in 16 dimensions: no ties, so the float32 expansion must reproduce the
        // exact ordering.
        let q = Tensor::randn([40, 16], (Kind::Float, Device::Cpu));
        let r = Tensor::randn([90, 16], (Kind::Float, Device::Cpu));
        for (rows, screen) in [3usize, 40]
            .into_iter()
            .flat_map(|rows| screens().into_iter().map(move |s| (rows, s)))
        {
            let blocking = Blocking {
                rows: Some(rows),
                screen,
                ..Blocking::default()
            };
            assert_eq!(
                knn_lists(&q, &r, 10, false, blocking).unwrap(),
                naive(&q, &r, 10, false)
            );
        }
    }

    #[test]
    fn ranking_is_exact_where_float32_rounding_is_not() {
        // Norms near 2000 and coordinate differences near 1e-2: the f32 expansion's rounding
        // (about 1 in squared distance) swamps the true differences, so the screen cannot prove
        // its candidates and the f64 paths must give the exact ranking.
        tch::manual_seed(9);
        let near = |n: i64| {
            (Tensor::full([n, 4], 1000.0, (Kind::Double, Device::Cpu))
                + Tensor::randn([n, 4], (Kind::Double, Device::Cpu)) * 1e-2)
                .to_kind(Kind::Float)
        };
        let q = near(20);
        let r = near(60);
        let qr = Tensor::cat(&[&q, &r], 0);
        let mut fallbacks = 0;
        blocked_knn(&q, &r, 5, false, Blocking::default(), |b| {
            fallbacks = b.fallback_rows;
            Ok(())
        })
        .unwrap();
        assert!(fallbacks > 0);
        for (rows, screen) in [1usize, 7]
            .into_iter()
            .flat_map(|rows| screens().into_iter().map(move |s| (rows, s)))
        {
            let blocking = Blocking {
                rows: Some(rows),
                screen,
                ..Blocking::default()
            };
            for k in [1usize, 5, 40] {
                assert_eq!(
                    knn_lists(&q, &r, k, false, blocking).unwrap(),
                    naive(&q, &r, k, false)
                );
                assert_eq!(
                    knn_lists(&q, &qr, k, true, blocking).unwrap(),
                    naive(&q, &qr, k, true)
                );
                assert_eq!(
                    knn_lists(&qr, &qr, k, true, blocking).unwrap(),
                    naive(&qr, &qr, k, true)
                );
            }
        }
    }

    /// L2-normalised points around `classes` random centres, as trained embeddings are.
    fn clustered(n: i64, dim: i64, classes: i64, spread: f64) -> Tensor {
        let centres = Tensor::randn([classes, dim], (Kind::Float, Device::Cpu));
        let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(classes);
        let x = centres.index_select(0, &labels)
            + Tensor::randn([n, dim], (Kind::Float, Device::Cpu)) * spread;
        let norms = x
            .square()
            .sum_dim_intlist(&[1i64][..], true, Kind::Float)
            .sqrt();
        (x / norms).contiguous()
    }

    #[test]
    fn integer_screen_proves_almost_every_row_and_ranks_exactly() {
        if lacks_vnni() {
            return;
        }
        tch::manual_seed(21);
        // Sizes off every multiple the kernel works in (8 query rows, 32 references, 4
        // dimensions), self and cross evaluation, a sample-seeded and an unseeded limit.
        let x = clustered(2_501, 37, 40, 0.6);
        let query = clustered(203, 37, 40, 0.6);
        for k in [1usize, 10, 61] {
            for (q, r, riq) in [(&x, &x, true), (&query, &x, false)] {
                let want = naive(q, r, k, riq);
                let mut got = Vec::new();
                let mut rescreened = 0;
                let blocking = Blocking {
                    screen: Screen::Int8,
                    ..Blocking::default()
                };
                blocked_knn(q, r, k, riq, blocking, |b| {
                    for row in 0..b.rows {
                        got.push(
                            b.indices[row * b.k..(row + 1) * b.k]
                                .iter()
                                .map(|&i| i as usize)
                                .collect::<Vec<_>>(),
                        );
                    }
                    rescreened = b.rescreened_rows;
                    Ok(())
                })
                .unwrap();
                assert_eq!(got, want, "k {k} self {riq}");
                // The integer screen, not its float32 safety net, found these neighbours.
                assert!(
                    rescreened * 50 <= got.len(),
                    "k {k} self {riq}: {rescreened} of {} rows re-screened",
                    got.len()
                );
            }
        }
    }

    #[test]
    fn a_forced_integer_screen_with_k_near_the_reference_size_agrees_with_float32() {
        if lacks_vnni() {
            return;
        }
        tch::manual_seed(5);
        // 4,100 references: large enough for the sampled starting limits, whose rank (about 2m
        // of 4,100 scaled to a 1,024-point sample) would exceed the sample for this k.
        let x = clustered(4_100, 8, 30, 0.5);
        let query = x.narrow(0, 0, 40);
        for k in [1_500usize, 4_000] {
            let lists = |screen| {
                let blocking = Blocking {
                    screen,
                    ..Blocking::default()
                };
                knn_lists(&query, &x, k, true, blocking).unwrap()
            };
            assert_eq!(lists(Screen::Int8), lists(Screen::Float32), "k {k}");
        }
    }

    #[test]
    fn sort_keys_order_like_value_then_index() {
        let values = [
            3.5f32,
            -0.0,
            0.0,
            -2.25,
            1e-30,
            -1e-30,
            f32::MAX,
            f32::MIN,
            3.5,
            -7.0,
        ];
        let pairs: Vec<(f32, i64)> = values
            .iter()
            .copied()
            .zip((0i64..).map(|i| 9 - i))
            .collect();
        let mut want = pairs.clone();
        want.sort_by(by_value_then_index);
        let mut keys: Vec<u64> = pairs
            .iter()
            .map(|&(v, i)| sort_key(v, i as usize))
            .collect();
        keys.sort_unstable();
        let got: Vec<(f32, i64)> = keys
            .iter()
            .map(|&k| (key_value(k), (k & 0xffff_ffff) as i64))
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.1, w.1);
            assert_eq!(g.0, w.0); // -0.0 == 0.0
        }
    }

    #[test]
    fn sampled_candidate_selection_equals_a_full_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for (n, levels, m) in [
            (10_000usize, 50u32, 40usize),
            (5_000, 3, 100),
            (3_000, 1_000_000, 17),
        ] {
            // Few distinct levels: heavy ties, including across the m-th place.
            let values: Vec<f32> = (0..n)
                .map(|_| rng.random_range(0..levels) as f32 * 0.5 - 3.0)
                .collect();
            let ranker = RowRanker {
                q_data: &[],
                r_data: &[],
                dim: 0,
                nr: n,
                k: m,
                k_search: m,
                m,
                gamma: 0.0,
                r_norm_max: 0.0,
                reference_includes_query: false,
            };
            let mut got = Vec::new();
            ranker.candidates(&values, &mut got);
            let mut want: Vec<(f32, i64)> = values.iter().copied().zip(0i64..).collect();
            want.sort_by(by_value_then_index);
            want.truncate(m);
            assert_eq!(got, want, "n {n} levels {levels}");
        }
    }

    #[test]
    fn byte_budget_splits_into_blocks() {
        let q = Tensor::randn([30, 4], (Kind::Float, Device::Cpu));
        let count_blocks = |blocking: Blocking, max_rows: usize| {
            let mut blocks = 0;
            blocked_knn(&q, &q, 2, true, blocking, |b| {
                assert!(b.rows <= max_rows);
                blocks += 1;
                Ok(())
            })
            .unwrap();
            blocks
        };
        // Row blocks: 4 bytes x 30 reference columns x 7 rows per block.
        let budget = 4 * 30 * 7;
        let rowwise = Blocking {
            rows: None,
            block_bytes: budget,
            keep_distances: true,
            screen: Screen::Float32,
        };
        assert_eq!(count_blocks(rowwise, 7), 5);
        // Symmetric self path: square tiles of side sqrt(budget / 4) = 14.
        let symmetric = Blocking {
            keep_distances: false,
            ..rowwise
        };
        assert_eq!(count_blocks(symmetric, 14), 3);
    }

    #[test]
    fn self_match_removed_even_when_duplicates_tie() {
        // PML's test_tied_distances: duplicates of other labels are kept, the self row removed.
        let e = Tensor::from_slice(&[10f32, 10., 20., 20.]).view([4, 1]);
        let got = knn_lists(&e, &e, 1, true, Blocking::default()).unwrap();
        assert_eq!(got, vec![vec![1], vec![0], vec![3], vec![2]]);
    }
}
