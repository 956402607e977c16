//! A row's running selection of its `m` smallest screened values over column tiles (the symmetric
//! path sees a row's distances tile by tile, directly or through a tile's transpose).

use super::ranking::by_value_then_index;

/// Running selection of one row's `m` smallest (value, index) pairs over column tiles.
#[derive(Default)]
pub(super) struct RowState {
    pub(super) cand: Vec<(f32, i64)>,
    /// The m-th smallest value so far (+inf until m are known); larger values cannot enter.
    pub(super) threshold: Option<f32>,
}

impl RowState {
    /// Values above this cannot enter the selection.
    pub(super) fn limit(&self) -> f32 {
        self.threshold.unwrap_or(f32::INFINITY)
    }

    /// Adds a value not above `limit()`; returns whether the limit changed (after a compaction).
    pub(super) fn offer(&mut self, value: f32, index: i64, m: usize) -> bool {
        self.cand.push((value, index));
        if self.cand.len() >= 4 * m.max(8) {
            self.compact(m);
            return true;
        }
        false
    }

    pub(super) fn feed(&mut self, values: &[f32], first_col: i64, m: usize) {
        let mut limit = self.limit();
        for (v, j) in values.iter().zip(first_col..) {
            if *v <= limit && self.offer(*v, j, m) {
                limit = self.limit();
            }
        }
    }

    pub(super) fn compact(&mut self, m: usize) {
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
pub(super) fn feed_rows(
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
pub(super) fn feed_transposed(
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
