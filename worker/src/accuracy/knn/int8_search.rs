//! The search path with the integer screen (`accuracy::int8_screen`): tasks of query rows screened
//! on all threads, delivered in order as blocks; unproven rows fall back to the float32 screen.

use super::super::int8_screen::{self, Selection, Vnni};
use super::ranking::{key_value, sort_key, RowRanker, Scratch};
use super::{Blocking, KnnBlock};
use anyhow::Result;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tch::Tensor;

/// Query rows per task of the integer screen (a multiple of its 8-row groups): small enough to
/// balance the threads, large enough to reuse each cached chunk of references 8 times.
pub(super) const INT8_TASK_ROWS: usize = 64;

/// The blocked search with the integer screen: passes of up to `threads x 256` query rows, each
/// thread screening its rows against every reference and ranking them; rows whose candidates
/// could not be proven complete are screened again in float32 (`RowRanker::rank`).
pub(super) fn int8_knn(
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
pub(super) type RankedRows = (Vec<i64>, Vec<usize>, usize);

/// Readies `n` selections of budget `m` with the given starting limits. They are reused from
/// task to task (each holds 4m + 32 slots), so only their lengths and limits start over.
pub(super) fn restart(
    selections: &mut Vec<Selection>,
    n: usize,
    m: usize,
    limits: impl Iterator<Item = f32>,
) {
    selections.resize_with(n, || Selection::new(m, f32::INFINITY));
    for (selection, limit) in selections.iter_mut().zip(limits) {
        selection.restart(limit);
    }
}

/// A worker thread's buffers for the integer screen, kept from task to task.
#[derive(Default)]
pub(super) struct Int8Buffers {
    probe: Vec<Selection>,
    states: Vec<Selection>,
    scratch: Scratch,
    near: Vec<usize>,
    values: Vec<(f32, i64)>,
    keys: Vec<u64>,
}

/// What one thread of the integer-screen search needs.
pub(super) struct Int8Rows<'a> {
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
    pub(super) fn rank(
        &self,
        rows: std::ops::Range<usize>,
        buffers: &mut Int8Buffers,
    ) -> RankedRows {
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
