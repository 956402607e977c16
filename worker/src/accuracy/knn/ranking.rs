//! Ranking one query row exactly: the candidates of its screened (float32) distances, the proof
//! that no other reference can be among the k nearest, the exact f64 re-ranking of near-ties, and
//! the f64 full-row fallback for rows without the proof; rows are ranked on all threads.

use anyhow::Result;
use tch::{Kind, Tensor};

/// Ranks `rows` split over `threads` threads, keeping their order: `rank(i, row, scratch, out)`
/// appends row i's `k` neighbours to `out` and says whether it needed the full-row fallback.
/// Returns every row's neighbours (row-major) and the number of fallbacks.
pub(super) fn rank_rows<T: Send>(
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
pub(super) struct Scratch {
    pub(super) cand: Vec<(f32, i64)>,
    pub(super) exact: Vec<(f64, i64)>,
    pub(super) order: Vec<i64>,
}

/// Everything needed to rank one query's row of screened distances.
pub(super) struct RowRanker<'a> {
    pub(super) q_data: &'a [f32],
    pub(super) r_data: &'a [f32],
    pub(super) dim: usize,
    pub(super) nr: usize,
    pub(super) k: usize,
    pub(super) k_search: usize,
    pub(super) m: usize,
    pub(super) gamma: f64,
    pub(super) r_norm_max: f64,
    pub(super) reference_includes_query: bool,
}

pub(super) fn by_value_then_index<T: PartialOrd + Copy>(
    a: &(T, i64),
    b: &(T, i64),
) -> std::cmp::Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

impl RowRanker<'_> {
    /// Exact squared distance in f64 from coordinate differences.
    pub(super) fn exact(&self, qi: usize, ri: usize) -> f64 {
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
    pub(super) fn candidates(&self, values: &[f32], cand: &mut Vec<(f32, i64)>) {
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
    pub(super) fn rank(
        &self,
        values: &[f32],
        qi: usize,
        s: &mut Scratch,
        out: &mut Vec<i64>,
    ) -> bool {
        let mut cand = std::mem::take(&mut s.cand);
        self.candidates(values, &mut cand);
        let fallback = self.rank_candidates(&cand, qi, s, out);
        s.cand = cand;
        fallback
    }

    /// Ranks every row of `partial`, a contiguous `rows x nr` float32 block of screen values
    /// `|r|² - 2 q·r` whose row `i` belongs to query `query_of(i)`, the rows split over
    /// `threads` (libtorch's matmul already used them all): (neighbours row-major, fallbacks).
    pub(super) fn rank_block(
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
    pub(super) fn tolerance(&self, qi: usize) -> f64 {
        let q_norm = self.q_data[qi * self.dim..(qi + 1) * self.dim]
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            .sqrt();
        2.0 * self.gamma * (q_norm + self.r_norm_max).powi(2)
    }

    /// As `rank`, from the row's `m` smallest screened (value, index) pairs, sorted.
    pub(super) fn rank_candidates(
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
    pub(super) fn rank_proven(
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

/// `value` (finite) and `index` (< 2^32) as one integer ordered like `by_value_then_index`:
/// the float's bits made monotone (negatives flipped, positives offset) above the index.
pub(super) fn sort_key(value: f32, index: usize) -> u64 {
    let bits = (value + 0.0).to_bits(); // -0.0 becomes +0.0: they compare equal as floats
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    (u64::from(ordered) << 32) | index as u64
}

pub(super) fn key_value(key: u64) -> f32 {
    let ordered = (key >> 32) as u32;
    f32::from_bits(if ordered >> 31 == 1 {
        ordered & !(1 << 31)
    } else {
        !ordered
    })
}
