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
//!
//! Layout: `ranking` (candidates, proof and exact re-ranking of a row), `selection` (a row's
//! running selection over column tiles), one module per search path (`float32_screen`: blocks
//! of rows; `symmetric`: self-evaluation in square tiles; `int8_search`: the integer screen;
//! `device_search`: the screen and `topk` on the embeddings' device, a GPU in CUDA runs), and
//! here the shared types and the choice of path.

mod device_search;
mod float32_screen;
mod int8_search;
mod ranking;
mod selection;
mod symmetric;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::int8_screen::{self, Vnni};
use ranking::RowRanker;

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
    /// Query rows so far solved from their whole row: the full-row f64 fallback, or on the
    /// device path candidates widened to the whole row (diagnostics).
    pub fallback_rows: usize,
    /// Query rows so far whose first candidates were not proven complete and were searched
    /// again: integer-screen rows through the float32 screen, device-path rows with a wider
    /// `topk` (diagnostics).
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
    pub backend: Backend,
}

impl Default for Blocking {
    fn default() -> Self {
        Blocking {
            rows: None,
            block_bytes: DEFAULT_BLOCK_BYTES,
            keep_distances: false,
            screen: Screen::Auto,
            backend: Backend::Auto,
        }
    }
}

/// Where the screen runs (the exact ranking on the host is the same either way, so are the
/// neighbour lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// On the embeddings' device when it is a GPU, else the CPU paths.
    Auto,
    /// The CPU paths (embeddings on a GPU are copied to the host).
    Cpu,
    /// `device_search` on whatever device the embeddings are, the CPU included (tests).
    Device,
}

impl Backend {
    /// `auto`, `cpu` or `device`.
    pub fn parse(text: &str) -> Option<Backend> {
        match text {
            "auto" => Some(Backend::Auto),
            "cpu" => Some(Backend::Cpu),
            "device" => Some(Backend::Device),
            _ => None,
        }
    }

    /// Whether embeddings on `device` are searched there (and so should stay there).
    pub fn searches_on(self, device: Device) -> bool {
        match self {
            Backend::Auto => device.is_cuda(),
            Backend::Cpu => false,
            Backend::Device => true,
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
    on_block: impl FnMut(&KnnBlock) -> Result<()>,
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
    // The query set is the reference (self-evaluation): one host copy, and the symmetric path.
    let same_set = query.data_ptr() == reference.data_ptr()
        && nq == nr
        && query.device() == reference.device();
    let r = reference
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let q = if same_set {
        r.shallow_clone()
    } else {
        query
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
    };
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
    if blocking.backend.searches_on(query.device()) && k_search > 0 {
        let device = query.device();
        let on_device = |t: &Tensor| t.to_device(device).to_kind(Kind::Float).contiguous();
        let q_device = on_device(query);
        let r_device = if same_set {
            q_device.shallow_clone()
        } else {
            on_device(reference)
        };
        return device_search::device_knn(
            &q_device, &r_device, &ranker, blocking, threads, on_block,
        );
    }
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
    let selection_bytes = threads
        * int8_search::INT8_TASK_ROWS
        * (4 * int8_screen::candidates_per_row(k_search, nr) + 32)
        * 8;
    if let Some(vnni) = vnni {
        if !blocking.keep_distances
            && k_search > 0
            && dim <= int8_screen::MAX_DIM
            && selection_bytes <= blocking.block_bytes.max(64 << 20)
        {
            let sets = (&q, &r, &r_sq);
            return int8_search::int8_knn(vnni, sets, &ranker, blocking, threads, on_block);
        }
    }
    if reference_includes_query
        && !blocking.keep_distances
        && k_search > 0
        && nq == nr
        && q.data_ptr() == r.data_ptr()
    {
        return symmetric::symmetric_self_knn(&q, &r_sq, &ranker, blocking, threads, on_block);
    }
    float32_screen::row_block_knn(&q, &r, &r_sq, &ranker, blocking, threads, on_block)
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
    use super::ranking::{by_value_then_index, key_value, sort_key};
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

    /// The device path (`device_search`) on CPU tensors, with its counters.
    fn device_lists(
        q: &Tensor,
        r: &Tensor,
        k: usize,
        riq: bool,
        rows: Option<usize>,
    ) -> (Vec<Vec<usize>>, usize, usize) {
        let blocking = Blocking {
            rows,
            backend: Backend::Device,
            ..Blocking::default()
        };
        let mut lists = Vec::new();
        let (mut rescreened, mut fallbacks) = (0, 0);
        blocked_knn(q, r, k, riq, blocking, |b| {
            assert_eq!(b.start, lists.len(), "blocks arrive in order");
            for row in 0..b.rows {
                lists.push(
                    b.indices[row * b.k..(row + 1) * b.k]
                        .iter()
                        .map(|&i| i as usize)
                        .collect(),
                );
            }
            (rescreened, fallbacks) = (b.rescreened_rows, b.fallback_rows);
            Ok(())
        })
        .unwrap();
        (lists, rescreened, fallbacks)
    }

    #[test]
    fn device_path_gives_the_cpu_paths_neighbours() {
        tch::manual_seed(31);
        // Clustered, L2-normalised, 37 dimensions; sizes off every block size below. Rows 0-9
        // of the references repeat in 10-19 and 150-159 (ties across blocks), and 5 queries
        // are references (distance 0 ties in cross evaluation).
        let x = clustered(517, 37, 23, 0.5);
        let dup = x.narrow(0, 0, 10);
        x.narrow(0, 10, 10).copy_(&dup);
        x.narrow(0, 150, 10).copy_(&dup);
        let query = Tensor::cat(&[clustered(198, 37, 23, 0.5), x.narrow(0, 3, 5)], 0);
        let with_queries = Tensor::cat(&[&query, &x], 0);
        let cases: [(&Tensor, &Tensor, bool, &str); 3] = [
            (&x, &x, true, "self"),
            (&query, &x, false, "cross"),
            (&query, &with_queries, true, "queries included"),
        ];
        for (q, r, riq, what) in cases {
            for k in [1usize, 5, 70, 150] {
                let want = naive(q, r, k, riq);
                let cpu = Blocking {
                    screen: Screen::Float32,
                    backend: Backend::Cpu,
                    ..Blocking::default()
                };
                assert_eq!(knn_lists(q, r, k, riq, cpu).unwrap(), want, "{what} k {k}");
                // Block rows: one, fewer than k, not dividing the set, and all at once.
                for rows in [1usize, 64, 1000] {
                    let (got, _, _) = device_lists(q, r, k, riq, Some(rows));
                    assert_eq!(got, want, "{what} k {k} rows {rows}");
                }
            }
        }
    }

    #[test]
    fn device_path_widens_candidates_at_tied_boundaries() {
        // 300 copies of one point among 700 others: the k nearest of a copy tie with 299 more,
        // so the first k + 17 candidates are not proven and the rows get wider ones (m = 22,
        // then 88, then 352 > 300 copies) without needing their whole row.
        tch::manual_seed(12);
        let others = clustered(700, 8, 10, 0.4);
        let copies = others.narrow(0, 0, 1).repeat([300, 1]);
        let x = Tensor::cat(&[&copies, &others], 0);
        let (got, rescreened, fallbacks) = device_lists(&x, &x, 5, true, Some(128));
        assert_eq!(got, naive(&x, &x, 5, true));
        assert!(rescreened >= 300, "{rescreened} rows widened");
        assert_eq!(fallbacks, 0);
    }

    #[test]
    fn device_path_is_exact_where_float32_rounding_is_not() {
        // As `ranking_is_exact_where_float32_rounding_is_not`: no row can be proven from its
        // screen, so every row is widened to its whole row and ranked from exact distances.
        tch::manual_seed(9);
        let near = |n: i64| {
            (Tensor::full([n, 4], 1000.0, (Kind::Double, Device::Cpu))
                + Tensor::randn([n, 4], (Kind::Double, Device::Cpu)) * 1e-2)
                .to_kind(Kind::Float)
        };
        let q = near(20);
        let r = near(60);
        let qr = Tensor::cat(&[&q, &r], 0);
        for k in [1usize, 5, 40] {
            for rows in [None, Some(7)] {
                let (got, rescreened, fallbacks) = device_lists(&q, &r, k, false, rows);
                assert_eq!(got, naive(&q, &r, k, false), "k {k}");
                assert_eq!((rescreened, fallbacks), (20, 20));
                assert_eq!(
                    device_lists(&q, &qr, k, true, rows).0,
                    naive(&q, &qr, k, true)
                );
                assert_eq!(
                    device_lists(&qr, &qr, k, true, rows).0,
                    naive(&qr, &qr, k, true)
                );
            }
        }
    }

    #[test]
    fn backends_by_device() {
        assert!(Backend::Auto.searches_on(Device::Cuda(0)));
        assert!(!Backend::Auto.searches_on(Device::Cpu));
        assert!(Backend::Device.searches_on(Device::Cpu));
        assert!(!Backend::Cpu.searches_on(Device::Cuda(1)));
        assert_eq!(Backend::parse("device"), Some(Backend::Device));
        assert_eq!(Backend::parse("gpu"), None);
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
            backend: Backend::Cpu,
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
