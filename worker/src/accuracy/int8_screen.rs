//! Integer screen for the exact kNN (`knn/`): on CPUs with AVX-512 VNNI the candidate search
//! runs on 8-bit codes of the embeddings instead of a float32 matrix product, and every candidate
//! list is then proven complete and ranked exactly as in the float32 path.
//!
//! Why: both the float32 screen and faiss spend most of their time in the `Nq x Nr x d` float32
//! matrix product; `vpdpbusd` does 64 byte multiply-adds per instruction against 16 float32 ones,
//! and the screen reads the products straight from registers (no distance tile goes to memory).
//!
//! How it stays exact:
//! 1. Each vector x is coded as `s·c` with `s = max|x_i| / 127` and `c` in [-127, 127]^d; its
//!    residual norm `|x - s·c|` and code norm `|s·c|` are kept (f64).
//! 2. The screen value of a pair is `ã = |r|² - 2 s_q s_r (c_q·c_r)` (integer dot product, exact),
//!    and `|ã - (|r|² - 2 q·r)| <= E_q` with `E_q = 2(e_q R + |ĉ_q| e_max)` (Cauchy-Schwarz on
//!    the residuals; R = max |r|, e_max = the largest reference residual) plus the float32
//!    rounding of `ã` and of `|r|²`.
//! 3. Each row keeps the values up to a limit (started from a sample of the references, lowered
//!    as its selection is compacted); every item left out has `ã` above the final limit.
//! 4. Items whose `ã` exceeds the k-th smallest kept `ã` by more than `2 E_q` are farther than k
//!    kept items. When the limit is at least that reach, the true k nearest are among the kept
//!    items within reach; they get their float32 expansion values (the float32 screen's, same
//!    error bound) and the float32 path's exact re-ranking. Rows without that proof are handed
//!    back and go through the float32 screen.

/// Size budget of a row's selection in the integer screen (its starting limit is the value of
/// about twice this rank): its error is far wider than float32 rounding, so the selection must
/// hold every item within about `2 E_q` of the k-th. 3k + 32 covers that on L2-normalised
/// 128-d embeddings with k = 99; the floor of 256 matters for small k (Stanford Online Products
/// size, 512-d, k = 5: 7.4% of rows lacked the proof with 50, 0.14% with 128, 2 in 120,000
/// with 256). Rows beyond it are screened again in float32.
pub fn candidates_per_row(k_search: usize, n_reference: usize) -> usize {
    (3 * k_search + 32).max(256).min(n_reference)
}

/// Proof that this CPU runs the integer screen (x86-64 with AVX-512 F, BW and VNNI): the
/// kernels are methods of this token, so they cannot be reached on a CPU without them.
#[derive(Clone, Copy)]
pub struct Vnni(());

impl Vnni {
    pub fn detect() -> Option<Vnni> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            return Some(Vnni(()));
        }
        None
    }
}

/// Largest dimension whose integer dot products cannot overflow an i32 lane
/// (255 · 127 per term, the unsigned query code times the signed reference code).
pub const MAX_DIM: usize = (i32::MAX as usize) / (255 * 127);

/// References per panel: two 16-lane registers.
const PANEL: usize = 32;
/// Query rows per register block.
const GROUP: usize = 8;

/// 8-bit codes of a set of vectors and what the error bound needs.
struct Codes {
    /// `n x dpad` codes (dimensions padded with zeros to a multiple of 4).
    codes: Vec<i8>,
    scale: Vec<f32>,
    /// `|x - s·c|` per vector.
    residual: Vec<f64>,
    /// `|s·c|` per vector.
    code_norm: Vec<f64>,
}

/// Dimensions padded with zeros to a whole number of 4-byte groups (one `vpdpbusd` lane each).
fn padded(dim: usize) -> usize {
    dim.div_ceil(4) * 4
}

fn encode(data: &[f32], n: usize, dim: usize, dpad: usize) -> Codes {
    let mut out = Codes {
        codes: vec![0; n * dpad],
        scale: vec![0.0; n],
        residual: vec![0.0; n],
        code_norm: vec![0.0; n],
    };
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts = data
            .chunks(per * dim)
            .zip(out.codes.chunks_mut(per * dpad))
            .zip(out.scale.chunks_mut(per))
            .zip(out.residual.chunks_mut(per))
            .zip(out.code_norm.chunks_mut(per));
        for ((((x, codes), scale), residual), code_norm) in parts {
            scope.spawn(move || {
                for (i, x) in x.chunks_exact(dim).enumerate() {
                    let max = x.iter().fold(0f32, |a, v| a.max(v.abs()));
                    let s = if max > 0.0 { max / 127.0 } else { 1.0 };
                    let (mut res, mut norm) = (0f64, 0f64);
                    for (j, &v) in x.iter().enumerate() {
                        let c = (v / s).round().clamp(-127.0, 127.0);
                        codes[i * dpad + j] = c as i8;
                        let coded = f64::from(s) * f64::from(c);
                        res += (f64::from(v) - coded).powi(2);
                        norm += coded * coded;
                    }
                    scale[i] = s;
                    residual[i] = res.sqrt();
                    code_norm[i] = norm.sqrt();
                }
            });
        }
    });
    out
}

/// The reference set in the layout the kernel reads: panels of 32 references, each 4-dimension
/// group stored as 32 x 4 bytes, so one 64-byte load feeds 16 lanes.
pub struct References {
    n: usize,
    dpad: usize,
    panels: Vec<i8>,
    /// Per panel lane: 128 · Σ codes (the unsigned query shift's contribution), -2 s, |r|²
    /// (NaN for padding lanes, which then never pass a `<=` test).
    shift: Vec<i32>,
    neg2s: Vec<f32>,
    sq: Vec<f32>,
    norm_max: f64,
    residual_max: f64,
}

impl References {
    /// `data`: `n x dim` row-major; `sq`: |r|² per row in float32 (the float32 path's values).
    pub fn new(data: &[f32], n: usize, dim: usize, sq: &[f32]) -> References {
        References::from_codes(&encode(data, n, dim, padded(dim)), n, dim, sq)
    }

    /// The query set is the reference set (self-evaluation): one coding serves both.
    pub fn with_own_queries(
        data: &[f32],
        n: usize,
        dim: usize,
        sq: &[f32],
    ) -> (References, Queries) {
        let codes = encode(data, n, dim, padded(dim));
        let refs = References::from_codes(&codes, n, dim, sq);
        let queries = Queries::from_codes(&codes, n, dim, &refs);
        (refs, queries)
    }

    fn from_codes(codes: &Codes, n: usize, dim: usize, sq: &[f32]) -> References {
        let dpad = padded(dim);
        let n_panels = n.div_ceil(PANEL);
        let quads = dpad / 4;
        let lanes = n_panels * PANEL;
        let mut panels = vec![0i8; n_panels * quads * PANEL * 4];
        let mut shift = vec![0i32; lanes];
        let mut neg2s = vec![0f32; lanes];
        let mut sqv = vec![f32::NAN; lanes];
        for r in 0..n {
            let (p, lane) = (r / PANEL, r % PANEL);
            let code = &codes.codes[r * dpad..(r + 1) * dpad];
            for t in 0..quads {
                let at = ((p * quads + t) * PANEL + lane) * 4;
                panels[at..at + 4].copy_from_slice(&code[4 * t..4 * t + 4]);
            }
            shift[r] = 128 * code.iter().map(|&c| i32::from(c)).sum::<i32>();
            neg2s[r] = -2.0 * codes.scale[r];
            sqv[r] = sq[r];
        }
        let norm_max = sq.iter().map(|&v| f64::from(v)).fold(0f64, f64::max).sqrt();
        References {
            n,
            dpad,
            panels,
            shift,
            neg2s,
            sq: sqv,
            // |r| from the float32 |r|² can be below the true norm by its rounding; 1e-6 covers it.
            norm_max: norm_max * (1.0 + 1e-6),
            residual_max: codes.residual.iter().copied().fold(0f64, f64::max),
        }
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }
}

/// Query codes: unsigned (`c + 128`) rows, padded to whole groups of 8 rows, and each row's bound
/// `E_q` on the screen error.
pub struct Queries {
    n: usize,
    dpad: usize,
    codes: Vec<u8>,
    scale: Vec<f32>,
    bound: Vec<f64>,
}

impl Queries {
    pub fn new(data: &[f32], n: usize, dim: usize, refs: &References) -> Queries {
        Queries::from_codes(&encode(data, n, dim, refs.dpad), n, dim, refs)
    }

    fn from_codes(coded: &Codes, n: usize, dim: usize, refs: &References) -> Queries {
        let dpad = refs.dpad;
        let rows = n.div_ceil(GROUP) * GROUP;
        let mut codes = vec![128u8; rows * dpad];
        for (dst, src) in codes.iter_mut().zip(&coded.codes) {
            *dst = (i16::from(*src) + 128) as u8;
        }
        let unit = f64::from(f32::EPSILON) / 2.0;
        let terms = dim as f64 + 2.0;
        let gamma = terms * unit / (1.0 - terms * unit);
        let (big_r, e_max) = (refs.norm_max, refs.residual_max);
        // The reference codes' norms are at most |r| + e_r.
        let code_r = big_r + e_max;
        let bound = coded
            .residual
            .iter()
            .zip(&coded.code_norm)
            .map(|(&e_q, &c_q)| {
                let quantisation = 2.0 * (e_q * big_r + c_q * e_max);
                // float32 |r|² (libtorch's sum: γ_d R²), the scale product and the fused
                // multiply-add (a few units of rounding on |ã| <= R² + 2 |ĉ_q| |ĉ_r|), and the
                // int -> float conversion when the dot product exceeds 2^24.
                let rounding = gamma * big_r * big_r + 8.0 * unit * (big_r * big_r + c_q * code_r);
                (quantisation + rounding) * (1.0 + 1e-9) + 1e-30
            })
            .collect();
        Queries {
            n,
            dpad,
            codes,
            scale: coded.scale.clone(),
            bound,
        }
    }

    /// `E_q`: bound on |screen value - true `|r|² - 2 q·r`| for query `i`.
    pub fn bound(&self, i: usize) -> f64 {
        self.bound[i]
    }
}

/// One row's running selection of its `m` smallest screen values, stored as parallel arrays
/// the kernel appends to with compress-stores (up to 32 at a time, hence the slack).
pub struct Selection {
    value: Vec<f32>,
    index: Vec<u32>,
    len: usize,
    /// No value above this enters; every value offered and not kept is at least this.
    limit: f32,
    m: usize,
    scratch: Vec<f32>,
}

impl Selection {
    /// Starts with `limit` (+inf for none): values above it are not kept.
    pub fn new(m: usize, limit: f32) -> Selection {
        let cap = 4 * m.max(8);
        Selection {
            value: vec![0.0; cap + PANEL],
            index: vec![0; cap + PANEL],
            len: 0,
            limit,
            m,
            scratch: Vec::new(),
        }
    }

    /// Empties the selection for another row, starting with `limit`.
    pub fn restart(&mut self, limit: f32) {
        self.len = 0;
        self.limit = limit;
    }

    pub fn limit(&self) -> f32 {
        self.limit
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The kept (value, index) pairs, in the order they were offered.
    pub fn pairs(&self) -> impl Iterator<Item = (f32, usize)> + '_ {
        self.value[..self.len]
            .iter()
            .zip(&self.index[..self.len])
            .map(|(&v, &i)| (v, i as usize))
    }

    /// The `rank`-th smallest kept value (1-based; `rank <= len`).
    pub fn nth_value(&mut self, rank: usize) -> f32 {
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.value[..self.len]);
        *self
            .scratch
            .select_nth_unstable_by(rank - 1, f32::total_cmp)
            .1
    }

    /// Keeps the `m` smallest values (among equal values the first offered, i.e. the lowest
    /// reference indices) and lowers the limit to the m-th.
    pub fn compact(&mut self) {
        let m = self.m;
        if self.len <= m {
            return;
        }
        let t = self.nth_value(m);
        let mut ties = m - self.value[..self.len].iter().filter(|&&v| v < t).count();
        let mut w = 0;
        for r in 0..self.len {
            let v = self.value[r];
            let keep = v < t || (v == t && ties > 0);
            if keep {
                ties -= usize::from(v == t);
                self.value[w] = v;
                self.index[w] = self.index[r];
                w += 1;
            }
        }
        self.len = w;
        self.limit = t;
    }

    fn full(&self) -> bool {
        self.len + PANEL > self.value.len()
    }
}

impl Vnni {
    /// Screens query rows `rows` (a multiple of 8 from its start, or running to the end of the set)
    /// against every reference: `states[i]` receives row `rows.start + i`'s screen values (with their
    /// reference indices) up to its selection's limit. References are visited in chunks that stay in
    /// the core's L2 cache while every group of 8 rows passes over them.
    pub fn screen(
        self,
        queries: &Queries,
        refs: &References,
        rows: std::ops::Range<usize>,
        states: &mut [Selection],
    ) {
        assert_eq!(states.len(), rows.len());
        assert!(refs.n <= u32::MAX as usize);
        assert!(rows.start.is_multiple_of(GROUP) && rows.end <= queries.n);
        assert_eq!(queries.dpad, refs.dpad);
        let panel_bytes = refs.dpad * PANEL;
        let chunk = ((512 << 10) / panel_bytes).max(1);
        let mut first = 0;
        while first < refs.panels() {
            let last = (first + chunk).min(refs.panels());
            for g in (0..rows.len()).step_by(GROUP) {
                let valid = GROUP.min(rows.len() - g);
                let row0 = rows.start + g;
                // SAFETY: the CPU has the instructions (`self` exists); `row0 + 8` rows of codes
                // exist (padded to whole groups), and panels `first..last` exist.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    kernel::screen_group(
                        queries,
                        refs,
                        row0,
                        first..last,
                        &mut states[g..g + valid],
                    );
                }
            }
            first = last;
        }
    }

    /// Asks for `row` to be brought into the cache (the candidates' rows are read in an order
    /// the hardware prefetcher cannot guess).
    pub fn prefetch(self, row: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        for line in row.chunks(16) {
            // SAFETY: a prefetch hint on a valid address; SSE is part of x86-64.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    line.as_ptr() as *const i8
                )
            };
        }
    }

    /// Float32 dot product for the candidates' float32 expansion values.
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: the CPU has AVX-512 F (`self` exists).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            kernel::dot(a, b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use super::{Queries, References, Selection, GROUP, PANEL};
    use std::arch::x86_64::*;

    /// Integer dot products of 8 query rows with the references of `panels`, 32 at a time in 16
    /// registers, then the screen values and the `<=` test against each row's limit, all in
    /// registers; only passing values are written out.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,popcnt")]
    pub(super) unsafe fn screen_group(
        queries: &Queries,
        refs: &References,
        row0: usize,
        panels: std::ops::Range<usize>,
        states: &mut [Selection],
    ) {
        let dpad = queries.dpad;
        let quads = dpad / 4;
        let q = queries.codes.as_ptr().add(row0 * dpad);
        let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        for p in panels {
            let panel = refs.panels.as_ptr().add(p * quads * PANEL * 4);
            let mut acc = [_mm512_setzero_si512(); 2 * GROUP];
            for t in 0..quads {
                let r0 = _mm512_loadu_si512(panel.add(t * PANEL * 4) as *const _);
                let r1 = _mm512_loadu_si512(panel.add(t * PANEL * 4 + 64) as *const _);
                for i in 0..GROUP {
                    let b = _mm512_set1_epi32(std::ptr::read_unaligned(
                        q.add(i * dpad + 4 * t) as *const i32
                    ));
                    acc[2 * i] = _mm512_dpbusd_epi32(acc[2 * i], b, r0);
                    acc[2 * i + 1] = _mm512_dpbusd_epi32(acc[2 * i + 1], b, r1);
                }
            }
            let lane0 = p * PANEL;
            let load_i = |at: usize| _mm512_loadu_si512(refs.shift.as_ptr().add(at) as *const _);
            let shift = [load_i(lane0), load_i(lane0 + 16)];
            let neg2s = [
                _mm512_loadu_ps(refs.neg2s.as_ptr().add(lane0)),
                _mm512_loadu_ps(refs.neg2s.as_ptr().add(lane0 + 16)),
            ];
            let sq = [
                _mm512_loadu_ps(refs.sq.as_ptr().add(lane0)),
                _mm512_loadu_ps(refs.sq.as_ptr().add(lane0 + 16)),
            ];
            let index = [
                _mm512_add_epi32(_mm512_set1_epi32(lane0 as i32), lanes),
                _mm512_add_epi32(_mm512_set1_epi32(lane0 as i32 + 16), lanes),
            ];
            for (i, state) in states.iter_mut().enumerate() {
                let s = _mm512_set1_ps(queries.scale[row0 + i]);
                let limit = _mm512_set1_ps(state.limit);
                let mut masks = [0u16; 2];
                let mut values = [_mm512_setzero_ps(); 2];
                for h in 0..2 {
                    let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[2 * i + h], shift[h]));
                    values[h] = _mm512_fmadd_ps(dot, _mm512_mul_ps(s, neg2s[h]), sq[h]);
                    masks[h] = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(values[h], limit);
                }
                // Append the passing values and indices (the stores may write past `len`
                // into the spare room; only `len` counts). Unconditionally: whether any value
                // of a row passes is close to a coin toss, which a branch would mispredict.
                for h in 0..2 {
                    let at = state.len;
                    _mm512_storeu_ps(
                        state.value.as_mut_ptr().add(at),
                        _mm512_maskz_compress_ps(masks[h], values[h]),
                    );
                    _mm512_storeu_si512(
                        state.index.as_mut_ptr().add(at) as *mut _,
                        _mm512_maskz_compress_epi32(masks[h], index[h]),
                    );
                    state.len = at + masks[h].count_ones() as usize;
                }
                if state.full() {
                    state.compact();
                }
            }
        }
    }

    /// Float32 dot product, 16 lanes (order differs from a sequential sum; the error bound of
    /// the float32 path holds for any order).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            acc = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.as_ptr().add(i)),
                _mm512_loadu_ps(b.as_ptr().add(i)),
                acc,
            );
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u16 << (n - i)) - 1;
            acc = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(mask, a.as_ptr().add(i)),
                _mm512_maskz_loadu_ps(mask, b.as_ptr().add(i)),
                acc,
            );
        }
        _mm512_reduce_add_ps(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn screen_values_stay_within_their_error_bound() {
        let Some(vnni) = Vnni::detect() else {
            eprintln!("no AVX-512 VNNI on this CPU: nothing to test");
            return;
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let dim = 45;
        // Norms from 1e-3 to 1e3, a zero vector and one dominated by a single coordinate: the
        // bound must hold for all of them, not only for normalised embeddings.
        let mut set = |n: usize| -> Vec<f32> {
            let mut data: Vec<f32> = Vec::with_capacity(n * dim);
            for i in 0..n {
                let scale = 10f32.powi(i as i32 % 7 - 3);
                for j in 0..dim {
                    let v: f32 = rng.random_range(-1.0..1.0);
                    data.push(match i % 11 {
                        0 => 0.0,
                        1 if j == 3 => 500.0 * scale,
                        _ => v * scale,
                    });
                }
            }
            data
        };
        let (nq, nr) = (19, 77);
        let q = set(nq);
        let r = set(nr);
        let sq: Vec<f32> = r
            .chunks(dim)
            .map(|x| x.iter().map(|v| v * v).sum())
            .collect();
        let refs = References::new(&r, nr, dim, &sq);
        let queries = Queries::new(&q, nq, dim, &refs);
        // m = nr: every value is kept.
        let mut states: Vec<Selection> =
            (0..nq).map(|_| Selection::new(nr, f32::INFINITY)).collect();
        vnni.screen(&queries, &refs, 0..nq, &mut states);
        let mut worst = 0f64;
        for (i, state) in states.iter().enumerate() {
            assert_eq!(state.len(), nr);
            let qi = &q[i * dim..(i + 1) * dim];
            for (value, j) in state.pairs() {
                let rj = &r[j * dim..(j + 1) * dim];
                let exact: f64 = rj.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>()
                    - 2.0
                        * qi.iter()
                            .zip(rj)
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum::<f64>();
                let error = (f64::from(value) - exact).abs();
                assert!(
                    error <= queries.bound(i),
                    "query {i} reference {j}: {error} > {}",
                    queries.bound(i)
                );
                worst = worst.max(error / queries.bound(i));
            }
        }
        // The bound is rigorous, not vacuous: the largest error uses a visible share of it.
        assert!(worst > 1e-3, "largest error / bound {worst}");
    }

    #[test]
    fn compaction_keeps_the_m_smallest_and_the_lowest_indices_among_ties() {
        let values = [3.0f32, 1.0, 2.0, 2.0, 2.0, 0.0, 2.0, 5.0, 2.0];
        let mut selection = Selection::new(5, f32::INFINITY);
        selection.value[..values.len()].copy_from_slice(&values);
        for (i, slot) in selection.index[..values.len()].iter_mut().enumerate() {
            *slot = i as u32 + 100;
        }
        selection.len = values.len();
        selection.compact();
        let kept: Vec<(f32, usize)> = selection.pairs().collect();
        assert_eq!(
            kept,
            vec![(1.0, 101), (2.0, 102), (2.0, 103), (2.0, 104), (0.0, 105)]
        );
        assert_eq!(selection.limit(), 2.0);
        assert_eq!(selection.nth_value(1), 0.0);
        assert_eq!(selection.nth_value(5), 2.0);
    }
}
