//! The retrieval grid: the queries of a split that the model serves worst, each with what it
//! retrieves. "Worst" is the lowest average precision at R (the per-query value whose mean is
//! `mean_average_precision_at_r`, docs/metrics.md), ties by query order; queries without any
//! relevant reference item (lone classes) have no AP and are left out, as in the metrics.
//!
//! Written per fold into `visualisations/`: `retrieval_<split>.csv` (one row per query shown) and,
//! for datasets of images, `retrieval_<split>.png`: one row per query, the query's thumbnail in a
//! grey frame, then its `k` nearest references, nearest first, framed green when they share the
//! query's label and red when they do not.

use super::pictures::{canvas, encode_png, framed, thumbnails};
use crate::accuracy::knn::{blocked_knn, Blocking};
use crate::accuracy::metrics::pml_query_scores;
use crate::datasets::Dataset;
use crate::errors::config_error;
use crate::images::{paste, RgbImage};
use crate::spec::Config;
use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use tch::Tensor;

pub const QUERY_FRAME: [u8; 3] = [90, 90, 90];
pub const CORRECT_FRAME: [u8; 3] = [44, 160, 44];
pub const WRONG_FRAME: [u8; 3] = [214, 39, 40];
/// Thumbnail side, frame width and the space between tiles, in pixels.
const SIDE: usize = 96;
const FRAME: usize = 4;
const GAP: usize = 6;
/// Extra space between a query and its results.
const QUERY_GAP: usize = 18;

/// `save_retrieval_grid: {queries: N, k: K}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridSettings {
    pub queries: usize,
    pub k: usize,
}

impl GridSettings {
    pub const MAX_QUERIES: usize = 100;
    pub const MAX_K: usize = 50;

    /// `None` when the key is absent or null (the grid is opt-in).
    pub fn from_config(cfg: &Config) -> Result<Option<GridSettings>> {
        let Some(value) = cfg.get("save_retrieval_grid") else {
            return Ok(None);
        };
        let bad = |what: String| {
            config_error(format!(
                "save_retrieval_grid must be a mapping {{queries: N, k: K}} (N from 1 to {}, K \
                 from 1 to {}), {what}",
                Self::MAX_QUERIES,
                Self::MAX_K
            ))
        };
        let Value::Object(map) = value else {
            return Err(bad(format!("got {value}")));
        };
        if let Some(other) = map.keys().find(|k| *k != "queries" && *k != "k") {
            return Err(bad(format!("got the unknown key `{other}`")));
        }
        let read = |key: &str, default: usize, max: usize| -> Result<usize> {
            match map.get(key) {
                None => Ok(default),
                Some(v) => match v.as_u64() {
                    Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
                    _ => Err(bad(format!("got {key}: {v}"))),
                },
            }
        };
        Ok(Some(GridSettings {
            queries: read("queries", 8, Self::MAX_QUERIES)?,
            k: read("k", 5, Self::MAX_K)?,
        }))
    }
}

/// One query of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstQuery {
    /// Row of the query set.
    pub query: usize,
    pub label: i64,
    /// Relevant reference items (R).
    pub relevant: usize,
    pub average_precision_at_r: f64,
    /// Rows of the reference set, nearest first (at most `k`).
    pub retrieved: Vec<usize>,
    pub correct: Vec<bool>,
}

/// The `settings.queries` queries with the lowest AP@R, each with its `settings.k` nearest
/// references. With `reference_includes_query`, query row `i` is reference row `i` and is not its
/// own neighbour. The neighbours come from the same exact kNN as the metrics.
pub fn worst_queries(
    query: &Tensor,
    query_labels: &[i64],
    reference: &Tensor,
    reference_labels: &[i64],
    reference_includes_query: bool,
    settings: GridSettings,
) -> Result<Vec<WorstQuery>> {
    let self_count = usize::from(reference_includes_query);
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for &l in reference_labels {
        *counts.entry(l).or_insert(0) += 1;
    }
    let relevant_of = |l: i64| counts.get(&l).map_or(0, |c| c.saturating_sub(self_count));
    let available = reference_labels.len().saturating_sub(self_count);
    // AP@R needs the first R neighbours of every query; the grid shows k.
    let max_relevant = query_labels
        .iter()
        .map(|&l| relevant_of(l))
        .max()
        .unwrap_or(0);
    let k_search = max_relevant.max(settings.k).min(available);
    if k_search == 0 {
        return Ok(Vec::new());
    }
    let mut scored: Vec<WorstQuery> = Vec::new();
    blocked_knn(
        query,
        reference,
        k_search,
        reference_includes_query,
        Blocking::default(),
        |b| {
            for row in 0..b.rows {
                let q = b.start + row;
                let label = query_labels[q];
                let relevant = relevant_of(label);
                if relevant == 0 {
                    continue;
                }
                let neighbours = &b.indices[row * b.k..(row + 1) * b.k];
                let rel: Vec<bool> = neighbours
                    .iter()
                    .map(|&j| reference_labels[j as usize] == label)
                    .collect();
                let shown = settings.k.min(neighbours.len());
                scored.push(WorstQuery {
                    query: q,
                    label,
                    relevant,
                    // [MAP@k, MAP@R, MRR, P@1, R-precision] of this query.
                    average_precision_at_r: pml_query_scores(&rel, relevant)[1],
                    retrieved: neighbours[..shown].iter().map(|&j| j as usize).collect(),
                    correct: rel[..shown].to_vec(),
                });
            }
            Ok(())
        },
    )?;
    scored.sort_by(|a, b| {
        a.average_precision_at_r
            .total_cmp(&b.average_precision_at_r)
            .then(a.query.cmp(&b.query))
    });
    scored.truncate(settings.queries);
    Ok(scored)
}

/// The grid's table: one row per query, samples named by their index in the dataset.
pub fn grid_csv(
    rows: &[WorstQuery],
    query_samples: &[usize],
    reference_samples: &[usize],
) -> String {
    let mut out = String::from(
        "row,query_index,query_label,relevant,average_precision_at_r,retrieved_indices,\
         retrieved_correct\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let indices: Vec<String> = r
            .retrieved
            .iter()
            .map(|&j| reference_samples[j].to_string())
            .collect();
        let correct: Vec<&str> = r
            .correct
            .iter()
            .map(|&c| if c { "1" } else { "0" })
            .collect();
        let _ = writeln!(
            out,
            "{i},{},{},{},{},{},{}",
            query_samples[r.query],
            r.label,
            r.relevant,
            r.average_precision_at_r,
            indices.join(" "),
            correct.join(" ")
        );
    }
    out
}

/// The grid as a picture, `None` when the dataset has no images.
pub fn draw_grid(
    dataset: &dyn Dataset,
    rows: &[WorstQuery],
    query_samples: &[usize],
    reference_samples: &[usize],
    k: usize,
) -> Result<Option<RgbImage>> {
    let mut samples = Vec::new();
    for r in rows {
        samples.push(query_samples[r.query]);
        samples.extend(r.retrieved.iter().map(|&j| reference_samples[j]));
    }
    if samples.is_empty() {
        return Ok(None);
    }
    let Some(tiles) = thumbnails(dataset, &samples, SIDE) else {
        return Ok(None);
    };
    let cell = SIDE + 2 * FRAME;
    let width = GAP + cell + QUERY_GAP + k * (cell + GAP);
    let height = GAP + rows.len() * (cell + GAP);
    let mut grid = canvas(width, height);
    let mut tiles = tiles.iter();
    for (row, r) in rows.iter().enumerate() {
        let y = GAP + row * (cell + GAP);
        if let Some(t) = tiles.next() {
            paste(&mut grid, &framed(t, QUERY_FRAME, FRAME), GAP, y);
        }
        for (col, &correct) in r.correct.iter().enumerate() {
            let Some(t) = tiles.next() else { break };
            let frame = if correct { CORRECT_FRAME } else { WRONG_FRAME };
            let x = GAP + cell + QUERY_GAP + col * (cell + GAP);
            paste(&mut grid, &framed(t, frame, FRAME), x, y);
        }
    }
    Ok(Some(grid))
}

/// `draw_grid` encoded as PNG.
pub fn grid_png(
    dataset: &dyn Dataset,
    rows: &[WorstQuery],
    query_samples: &[usize],
    reference_samples: &[usize],
    k: usize,
) -> Result<Option<Vec<u8>>> {
    draw_grid(dataset, rows, query_samples, reference_samples, k)?
        .map(|g| encode_png(&g))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 2])
    }

    /// Three classes on a line; class 2's points sit among class 0's, so its queries retrieve
    /// the wrong class first.
    #[test]
    fn the_worst_queries_come_first_with_their_neighbours() {
        let x = t(&[
            [0.0, 0.0],
            [0.1, 0.0],
            [0.25, 0.0],
            [0.2, 0.0],
            [5.0, 0.0],
            [5.1, 0.0],
            [5.2, 0.0],
            [9.0, 0.0],
        ]);
        let labels = [0, 0, 0, 2, 1, 1, 1, 2];
        let rows = worst_queries(
            &x,
            &labels,
            &x,
            &labels,
            true,
            GridSettings { queries: 3, k: 2 },
        )
        .unwrap();
        // Query 3 (label 2, R = 1): its nearest are 2 and 1 (label 0); the one relevant item
        // (sample 7) is far: AP@R 0. Query 7 likewise: AP@R 0. Then the class-0 queries, whose
        // first neighbours include sample 3.
        assert_eq!(rows[0].query, 3);
        assert_eq!(rows[0].average_precision_at_r, 0.0);
        assert_eq!(rows[0].retrieved, vec![2, 1]);
        assert_eq!(rows[0].correct, vec![false, false]);
        assert_eq!(rows[1].query, 7);
        assert_eq!(rows[1].retrieved, vec![6, 5]);
        assert_eq!(rows[2].label, 0);
        assert!(rows[2].average_precision_at_r > 0.0 && rows[2].average_precision_at_r < 1.0);
        assert_eq!(rows.len(), 3);
        let csv = grid_csv(
            &rows,
            &[10, 11, 12, 13, 14, 15, 16, 17],
            &[10, 11, 12, 13, 14, 15, 16, 17],
        );
        assert!(csv.contains("\n0,13,2,1,0,12 11,0 0\n"), "{csv}");
    }

    #[test]
    fn lone_queries_are_left_out() {
        let x = t(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]);
        let rows = worst_queries(
            &x,
            &[0, 0, 1],
            &x,
            &[0, 0, 1],
            true,
            GridSettings { queries: 8, k: 5 },
        )
        .unwrap();
        assert_eq!(rows.iter().map(|r| r.query).collect::<Vec<_>>(), vec![0, 1]);
        // k is clamped to the two other samples.
        assert_eq!(rows[0].retrieved.len(), 2);
    }

    #[test]
    fn settings_are_read_and_checked() {
        let read =
            |v: Value| GridSettings::from_config(&Config(&json!({"save_retrieval_grid": v})));
        assert_eq!(
            read(json!({"queries": 3, "k": 7})).unwrap(),
            Some(GridSettings { queries: 3, k: 7 })
        );
        assert_eq!(
            read(json!({})).unwrap(),
            Some(GridSettings { queries: 8, k: 5 })
        );
        assert_eq!(read(Value::Null).unwrap(), None);
        for bad in [
            json!(5),
            json!({"queries": 0}),
            json!({"k": 500}),
            json!({"rows": 2}),
        ] {
            let e = read(bad).unwrap_err().to_string();
            assert!(e.contains("save_retrieval_grid"), "{e}");
        }
    }
}
