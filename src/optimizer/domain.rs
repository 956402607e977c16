//! The optimiser's domain: typed dimensions and their encoding into the unit cube the GP works in.
//!
//! This is the optimiser's own vocabulary, free of config syntax. The user-facing layer is
//! `crate::search_space` (keys such as `lr~LOG_BAYESIAN~` found in a merged config, with JSON
//! values); `crate::study::sampler` translates one into the other, in both directions. The split is
//! the one Optuna makes between its distributions and its samplers: the optimiser can be used and
//! benchmarked without any config (see `examples/bench_optimizer.rs`).
//!
//! Each dimension occupies one or more coordinates of the encoded vector:
//! * `Float` — one coordinate, linear in the value, or in `ln(value)` when `log` is set;
//! * `Int` — one coordinate; the integer `v` sits at the centre of its bin,
//!   `(v - low + 0.5) / (high - low + 1)`, so every integer owns an equal slice of `[0, 1]`;
//!   with `log`, the bins are `[ln(v - ½), ln(v + ½))` scaled from `[ln(low - ½), ln(high + ½)]`
//!   to `[0, 1]` and `v` sits at `ln v` inside its bin, so 16 → 32 is as far as 256 → 512 and
//!   every integer still owns exactly one slice;
//! * `Choice(n)` — `n` coordinates, a one-hot vector.
//!
//! Discrete parameters are always encoded exactly (bin centres / one-hot), so two points are the
//! same configuration exactly when their encodings agree on those coordinates.

use super::OptimizerError;

/// What kind of values one parameter takes.
#[derive(Clone, Debug, PartialEq)]
pub enum DimensionKind {
    /// Real value in `[low, high]`; with `log` the search is uniform in `ln(value)` (needs `low > 0`).
    Float { low: f64, high: f64, log: bool },
    /// Integer in `low..=high`; with `log` the search is uniform in `ln(value)` (needs `low >= 1`).
    Int { low: i64, high: i64, log: bool },
    /// One of `n` unordered options, identified by index `0..n`.
    Choice { n: usize },
}

/// One named parameter of a search space.
#[derive(Clone, Debug, PartialEq)]
pub struct Dimension {
    pub name: String,
    pub kind: DimensionKind,
}

impl Dimension {
    pub fn float(name: impl Into<String>, low: f64, high: f64) -> Self {
        Self {
            name: name.into(),
            kind: DimensionKind::Float {
                low,
                high,
                log: false,
            },
        }
    }
    pub fn log_float(name: impl Into<String>, low: f64, high: f64) -> Self {
        Self {
            name: name.into(),
            kind: DimensionKind::Float {
                low,
                high,
                log: true,
            },
        }
    }
    pub fn int(name: impl Into<String>, low: i64, high: i64) -> Self {
        Self {
            name: name.into(),
            kind: DimensionKind::Int {
                low,
                high,
                log: false,
            },
        }
    }
    /// An integer searched on a log scale (batch sizes, embedding sizes).
    pub fn log_int(name: impl Into<String>, low: i64, high: i64) -> Self {
        Self {
            name: name.into(),
            kind: DimensionKind::Int {
                low,
                high,
                log: true,
            },
        }
    }
    pub fn choice(name: impl Into<String>, n: usize) -> Self {
        Self {
            name: name.into(),
            kind: DimensionKind::Choice { n },
        }
    }
}

/// The value of one parameter in a suggested or observed point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamValue {
    Float(f64),
    Int(i64),
    /// Index of the chosen option.
    Choice(usize),
}

/// A full configuration: one value per parameter, in the order of the search space.
pub type Point = Vec<ParamValue>;

/// A validated list of parameters.
#[derive(Clone, Debug)]
pub struct Domain {
    params: Vec<Dimension>,
    /// Offset of each parameter's first coordinate in the encoded vector.
    offsets: Vec<usize>,
    dim: usize,
}

/// Two encoded points closer than this in every coordinate are the same configuration. Discrete
/// coordinates are exact, so this only matters for floats, where it is far below any meaningful
/// difference yet far above round-off of the encode/decode round trip.
pub(crate) const SAME_POINT_TOL: f64 = 1e-9;

impl Domain {
    /// Validates the parameters. Errors: no parameters at all, duplicate names, `low >= high` or a
    /// non-finite bound for floats, `low <= 0` for log floats, `low > high` for ints, `low < 1`
    /// for log ints, fewer than one option for choices. `Int` with `low == high` and `Choice { n: 1 }` are allowed (constant).
    pub fn new(params: Vec<Dimension>) -> Result<Self, OptimizerError> {
        if params.is_empty() {
            return Err(OptimizerError::EmptySpace);
        }
        let mut offsets = Vec::with_capacity(params.len());
        let mut dim = 0;
        for (i, p) in params.iter().enumerate() {
            if params[..i].iter().any(|q| q.name == p.name) {
                return Err(OptimizerError::InvalidSpace(format!(
                    "duplicate parameter name {:?}",
                    p.name
                )));
            }
            let bad =
                |why: &str| OptimizerError::InvalidSpace(format!("parameter {:?}: {why}", p.name));
            match p.kind {
                DimensionKind::Float { low, high, log } => {
                    if !low.is_finite() || !high.is_finite() {
                        return Err(bad("bounds must be finite"));
                    }
                    if low >= high {
                        return Err(bad("low must be below high"));
                    }
                    if log && low <= 0.0 {
                        return Err(bad("a log-scaled parameter needs low > 0"));
                    }
                }
                DimensionKind::Int { low, high, log } => {
                    if low > high {
                        return Err(bad("low must not exceed high"));
                    }
                    if log && low < 1 {
                        return Err(bad("a log-scaled integer needs low >= 1"));
                    }
                }
                DimensionKind::Choice { n } => {
                    if n == 0 {
                        return Err(bad("a choice needs at least one option"));
                    }
                }
            }
            offsets.push(dim);
            dim += match p.kind {
                DimensionKind::Choice { n } => n,
                _ => 1,
            };
        }
        Ok(Self {
            params,
            offsets,
            dim,
        })
    }

    pub fn params(&self) -> &[Dimension] {
        &self.params
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Always false: an empty space is rejected by [`Domain::new`].
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Number of coordinates of the encoded (unit-cube) vector.
    pub fn encoded_dim(&self) -> usize {
        self.dim
    }

    /// Number of distinct configurations if every parameter is discrete, else `None`.
    pub fn finite_size(&self) -> Option<f64> {
        let mut total = 1.0f64;
        for p in &self.params {
            total *= match p.kind {
                DimensionKind::Float { .. } => return None,
                DimensionKind::Int { low, high, .. } => (high as f64 - low as f64) + 1.0,
                DimensionKind::Choice { n } => n as f64,
            };
        }
        Some(total)
    }

    /// Checks a point: right length, right kinds, inside the bounds.
    pub fn validate(&self, point: &[ParamValue]) -> Result<(), OptimizerError> {
        if point.len() != self.params.len() {
            return Err(OptimizerError::InvalidPoint(format!(
                "expected {} values, got {}",
                self.params.len(),
                point.len()
            )));
        }
        for (p, v) in self.params.iter().zip(point) {
            let bad =
                |why: &str| OptimizerError::InvalidPoint(format!("parameter {:?}: {why}", p.name));
            match (&p.kind, v) {
                (DimensionKind::Float { low, high, .. }, ParamValue::Float(x)) => {
                    if !(x.is_finite() && *x >= *low && *x <= *high) {
                        return Err(bad("value outside [low, high]"));
                    }
                }
                (DimensionKind::Int { low, high, .. }, ParamValue::Int(x)) => {
                    if x < low || x > high {
                        return Err(bad("value outside low..=high"));
                    }
                }
                (DimensionKind::Choice { n }, ParamValue::Choice(x)) => {
                    if x >= n {
                        return Err(bad("option index out of range"));
                    }
                }
                _ => return Err(bad("value of the wrong kind")),
            }
        }
        Ok(())
    }

    /// Encodes a (validated) point into the unit cube.
    pub fn encode(&self, point: &[ParamValue]) -> Vec<f64> {
        let mut x = vec![0.0; self.dim];
        for ((p, v), &off) in self.params.iter().zip(point).zip(&self.offsets) {
            match (&p.kind, v) {
                (&DimensionKind::Float { low, high, log }, &ParamValue::Float(v)) => {
                    x[off] = float_to_unit(v, low, high, log);
                }
                (&DimensionKind::Int { low, high, log }, &ParamValue::Int(v)) => {
                    x[off] = int_to_unit(v, low, high, log);
                }
                (&DimensionKind::Choice { n }, &ParamValue::Choice(c)) => {
                    x[off + c.min(n - 1)] = 1.0;
                }
                // validate() rejects mismatched kinds before anything is encoded.
                _ => {}
            }
        }
        x
    }

    /// Decodes a unit-cube vector: floats are mapped back (clamped to the bounds), ints are
    /// rounded to the nearest bin, choices take the largest one-hot coordinate (first on ties).
    pub fn decode(&self, x: &[f64]) -> Point {
        self.params
            .iter()
            .zip(&self.offsets)
            .map(|(p, &off)| match p.kind {
                DimensionKind::Float { low, high, log } => {
                    ParamValue::Float(unit_to_float(x[off], low, high, log))
                }
                DimensionKind::Int { low, high, log } => {
                    ParamValue::Int(unit_to_int(x[off], low, high, log))
                }
                DimensionKind::Choice { n } => ParamValue::Choice(argmax(&x[off..off + n])),
            })
            .collect()
    }

    /// Snaps the discrete coordinates of an encoded vector to valid encodings (bin centres,
    /// one-hot) and clamps the continuous ones to `[0, 1]`. This is the "round inside the
    /// acquisition" step: the acquisition is always evaluated at a snapped point.
    pub fn snap(&self, x: &mut [f64]) {
        for (p, &off) in self.params.iter().zip(&self.offsets) {
            match p.kind {
                DimensionKind::Float { .. } => x[off] = x[off].clamp(0.0, 1.0),
                DimensionKind::Int { low, high, log } => {
                    x[off] = int_to_unit(unit_to_int(x[off], low, high, log), low, high, log)
                }
                DimensionKind::Choice { n } => {
                    let c = argmax(&x[off..off + n]);
                    x[off..off + n]
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v = if i == c { 1.0 } else { 0.0 });
                }
            }
        }
    }

    /// Maps one coordinate per parameter (each in `[0, 1)`, e.g. a Sobol point) to an encoded
    /// vector. Using one coordinate per parameter, not per encoded dimension, keeps the Sobol
    /// stratification over choices and ints.
    pub fn from_param_unit(&self, u: &[f64]) -> Vec<f64> {
        let mut x = vec![0.0; self.dim];
        for ((p, &off), &ui) in self.params.iter().zip(&self.offsets).zip(u) {
            let ui = ui.clamp(0.0, 1.0);
            match p.kind {
                DimensionKind::Float { .. } => x[off] = ui,
                DimensionKind::Int { low, high, log } => {
                    x[off] = int_to_unit(unit_to_int(ui, low, high, log), low, high, log)
                }
                DimensionKind::Choice { n } => x[off + ((ui * n as f64) as usize).min(n - 1)] = 1.0,
            }
        }
        x
    }

    /// Indices of encoded coordinates that belong to float parameters (optimised by L-BFGS).
    pub(crate) fn continuous_coords(&self) -> Vec<usize> {
        self.params
            .iter()
            .zip(&self.offsets)
            .filter(|(p, _)| matches!(p.kind, DimensionKind::Float { .. }))
            .map(|(_, &o)| o)
            .collect()
    }

    /// For each discrete parameter, its alternative encodings near `x` (the discrete line search
    /// after L-BFGS): all options of a choice; for an int, every value when it has at most 16,
    /// otherwise the two neighbours on each side (a log int also its values at ×2^(±¼, ±½, ±1),
    /// the steps its scale calls neighbours).
    pub(crate) fn discrete_moves(&self, x: &[f64]) -> Vec<Vec<(usize, Vec<f64>)>> {
        let mut moves = Vec::new();
        for (p, &off) in self.params.iter().zip(&self.offsets) {
            match p.kind {
                DimensionKind::Float { .. } => {}
                DimensionKind::Int { low, high, log } => {
                    let cur = unit_to_int(x[off], low, high, log);
                    let count = high as i128 - low as i128 + 1;
                    let values: Vec<i64> = if count <= 16 {
                        (low..=high).filter(|&v| v != cur).collect()
                    } else {
                        let mut v: Vec<i64> = [-2i64, -1, 1, 2]
                            .iter()
                            .filter_map(|d| cur.checked_add(*d))
                            .collect();
                        if log {
                            for e in [-1.0, -0.5, -0.25, 0.25, 0.5, 1.0] {
                                let m = (cur as f64 * 2f64.powf(e)).round();
                                if m.is_finite() && m.abs() < 9.0e15 {
                                    v.push(m as i64);
                                }
                            }
                        }
                        v.sort_unstable();
                        v.dedup();
                        v.retain(|&w| w >= low && w <= high && w != cur);
                        v
                    };
                    moves.push(
                        values
                            .into_iter()
                            .map(|v| (off, vec![int_to_unit(v, low, high, log)]))
                            .collect(),
                    );
                }
                DimensionKind::Choice { n } => {
                    let cur = argmax(&x[off..off + n]);
                    moves.push(
                        (0..n)
                            .filter(|&c| c != cur)
                            .map(|c| {
                                (
                                    off,
                                    (0..n).map(|i| if i == c { 1.0 } else { 0.0 }).collect(),
                                )
                            })
                            .collect(),
                    );
                }
            }
        }
        moves
    }
}

impl Domain {
    /// Every configuration of a finite space, as encodings (the caller bounds the size; float
    /// parameters, which make a space infinite, are placed at their midpoint).
    pub(crate) fn enumerate(&self) -> Vec<Vec<f64>> {
        let values: Vec<Vec<Vec<f64>>> = self
            .params
            .iter()
            .map(|p| match p.kind {
                DimensionKind::Int { low, high, log } => (low..=high)
                    .map(|v| vec![int_to_unit(v, low, high, log)])
                    .collect(),
                DimensionKind::Choice { n } => (0..n)
                    .map(|c| (0..n).map(|i| if i == c { 1.0 } else { 0.0 }).collect())
                    .collect(),
                DimensionKind::Float { .. } => vec![vec![0.5]],
            })
            .collect();
        let total: usize = values.iter().map(|v| v.len()).product();
        (0..total)
            .map(|mut idx| {
                let mut x = vec![0.0; self.dim];
                for (vals, &off) in values.iter().zip(&self.offsets) {
                    let enc = &vals[idx % vals.len()];
                    idx /= vals.len();
                    x[off..off + enc.len()].copy_from_slice(enc);
                }
                x
            })
            .collect()
    }
}

pub(crate) fn same_point(a: &[f64], b: &[f64]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= SAME_POINT_TOL)
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

// Floats: written as convex combinations / halved differences so that bounds like
// [-1e308, 1e308] (whose difference overflows) still map without infinities.
fn float_to_unit(v: f64, low: f64, high: f64, log: bool) -> f64 {
    let (v, low, high) = if log {
        (v.ln(), low.ln(), high.ln())
    } else {
        (v, low, high)
    };
    let u = (v * 0.5 - low * 0.5) / (high * 0.5 - low * 0.5);
    if u.is_finite() {
        u.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn unit_to_float(u: f64, low: f64, high: f64, log: bool) -> f64 {
    let u = if u.is_finite() {
        u.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if log {
        let (a, b) = (low.ln(), high.ln());
        (a * (1.0 - u) + b * u).exp().clamp(low, high)
    } else {
        (low * (1.0 - u) + high * u).clamp(low, high)
    }
}

// Ints: f64 arithmetic on i128 spans, so even [i64::MIN, i64::MAX] does not overflow (precision
// then degrades to f64's 53 bits, which is documented as the limit).
fn int_to_unit(v: i64, low: i64, high: i64, log: bool) -> f64 {
    if log {
        let (a, b) = log_int_range(low, high);
        return ((v as f64).ln() - a) / (b - a);
    }
    let count = (high as i128 - low as i128 + 1) as f64;
    (((v as i128 - low as i128) as f64) + 0.5) / count
}

fn unit_to_int(u: f64, low: i64, high: i64, log: bool) -> i64 {
    let u = if u.is_finite() {
        u.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if log {
        // The bin of v is [ln(v − ½), ln(v + ½)): rounding the value to the nearest integer
        // finds it, and ln v (its encoding) rounds back to v.
        let (a, b) = log_int_range(low, high);
        let v = (a * (1.0 - u) + b * u).exp().round();
        return if v.is_finite() {
            (v as i128).clamp(low as i128, high as i128) as i64
        } else {
            high
        };
    }
    let count = (high as i128 - low as i128 + 1) as f64;
    let k = ((u * count).floor() as i128).clamp(0, high as i128 - low as i128);
    (low as i128 + k) as i64
}

/// `[ln(low − ½), ln(high + ½)]`, the log-scale span of a log int's bins (`low >= 1`).
fn log_int_range(low: i64, high: i64) -> (f64, f64) {
    ((low as f64 - 0.5).ln(), (high as f64 + 0.5).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Domain {
        Domain::new(vec![
            Dimension::float("x", -2.0, 3.0),
            Dimension::log_float("lr", 1e-5, 1e-1),
            Dimension::int("layers", 1, 4),
            Dimension::choice("loss", 3),
        ])
        .unwrap()
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = space();
        assert_eq!(s.encoded_dim(), 6);
        let p = vec![
            ParamValue::Float(0.5),
            ParamValue::Float(1e-3),
            ParamValue::Int(3),
            ParamValue::Choice(2),
        ];
        s.validate(&p).unwrap();
        let x = s.encode(&p);
        assert!((x[0] - 0.5).abs() < 1e-12);
        // 1e-3 is half way between 1e-5 and 1e-1 in log space.
        assert!((x[1] - 0.5).abs() < 1e-12);
        assert!((x[2] - 2.5 / 4.0).abs() < 1e-12);
        assert_eq!(&x[3..], &[0.0, 0.0, 1.0]);
        let back = s.decode(&x);
        assert_eq!(back[2], ParamValue::Int(3));
        assert_eq!(back[3], ParamValue::Choice(2));
        match (back[0], back[1]) {
            (ParamValue::Float(a), ParamValue::Float(b)) => {
                assert!((a - 0.5).abs() < 1e-12);
                assert!((b / 1e-3 - 1.0).abs() < 1e-12);
            }
            _ => panic!("wrong kinds"),
        }
    }

    #[test]
    fn ints_round_to_bins_and_cover_the_range() {
        let s = Domain::new(vec![Dimension::int("n", -3, 3)]).unwrap();
        let mut seen = Vec::new();
        for i in 0..=100 {
            match s.decode(&[i as f64 / 100.0])[0] {
                ParamValue::Int(v) => {
                    assert!((-3..=3).contains(&v));
                    if !seen.contains(&v) {
                        seen.push(v);
                    }
                }
                _ => panic!(),
            }
        }
        assert_eq!(seen, vec![-3, -2, -1, 0, 1, 2, 3]);
        let mut x = vec![0.40];
        s.snap(&mut x);
        assert!((x[0] - 2.5 / 7.0).abs() < 1e-12);
        assert_eq!(s.decode(&x)[0], ParamValue::Int(-1));
    }

    #[test]
    fn choice_snaps_to_one_hot() {
        let s = Domain::new(vec![Dimension::choice("c", 4)]).unwrap();
        let mut x = vec![0.2, 0.7, 0.69, 0.1];
        s.snap(&mut x);
        assert_eq!(x, vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(s.from_param_unit(&[0.99]), vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(s.finite_size(), Some(4.0));
    }

    #[test]
    fn invalid_spaces_are_errors() {
        assert!(matches!(
            Domain::new(vec![]),
            Err(OptimizerError::EmptySpace)
        ));
        assert!(Domain::new(vec![Dimension::float("a", 1.0, 1.0)]).is_err());
        assert!(Domain::new(vec![Dimension::float("a", 0.0, f64::INFINITY)]).is_err());
        assert!(Domain::new(vec![Dimension::float("a", f64::NAN, 1.0)]).is_err());
        assert!(Domain::new(vec![Dimension::log_float("a", 0.0, 1.0)]).is_err());
        assert!(Domain::new(vec![Dimension::int("a", 2, 1)]).is_err());
        let e = Domain::new(vec![Dimension::log_int("batch", 0, 64)]).unwrap_err();
        assert!(
            e.to_string().contains("\"batch\"") && e.to_string().contains("low >= 1"),
            "{e}"
        );
        assert!(Domain::new(vec![Dimension::choice("a", 0)]).is_err());
        assert!(Domain::new(vec![Dimension::int("a", 0, 1), Dimension::int("a", 0, 1)]).is_err());
    }

    #[test]
    fn enormous_bounds_do_not_overflow() {
        let s = Domain::new(vec![
            Dimension::float("wide", -1e308, 1e308),
            Dimension::log_float("ratio", 1e-300, 1e300),
            Dimension::int("all", i64::MIN, i64::MAX),
        ])
        .unwrap();
        for u in [0.0, 0.25, 0.5, 1.0] {
            let p = s.decode(&[u, u, u]);
            s.validate(&p).unwrap();
            let x = s.encode(&p);
            assert!(
                x.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
                "{x:?}"
            );
            assert!(
                (x[0] - u).abs() < 1e-12 && (x[1] - u).abs() < 1e-12,
                "{x:?} vs {u}"
            );
        }
        match s.decode(&[0.5, 0.5, 0.5])[1] {
            ParamValue::Float(v) => assert!((v - 1.0).abs() < 1e-9),
            _ => panic!(),
        }
    }

    #[test]
    fn validate_rejects_bad_points() {
        let s = space();
        assert!(s.validate(&[ParamValue::Float(0.0)]).is_err());
        let p = vec![
            ParamValue::Float(9.0),
            ParamValue::Float(1e-3),
            ParamValue::Int(3),
            ParamValue::Choice(2),
        ];
        assert!(s.validate(&p).is_err());
        let p = vec![
            ParamValue::Float(0.0),
            ParamValue::Float(1e-3),
            ParamValue::Float(3.0),
            ParamValue::Choice(2),
        ];
        assert!(s.validate(&p).is_err());
        let p = vec![
            ParamValue::Float(0.0),
            ParamValue::Float(1e-3),
            ParamValue::Int(3),
            ParamValue::Choice(3),
        ];
        assert!(s.validate(&p).is_err());
        let p = vec![
            ParamValue::Float(f64::NAN),
            ParamValue::Float(1e-3),
            ParamValue::Int(3),
            ParamValue::Choice(0),
        ];
        assert!(s.validate(&p).is_err());
    }

    #[test]
    fn log_ints_own_one_log_scale_bin_each_and_round_trip_exactly() {
        let s = Domain::new(vec![Dimension::log_int("batch", 16, 512)]).unwrap();
        let (a, b) = log_int_range(16, 512);
        for v in 16..=512 {
            let x = s.encode(&[ParamValue::Int(v)]);
            assert_eq!(s.decode(&x), vec![ParamValue::Int(v)]);
            let mut y = x.clone();
            s.snap(&mut y);
            assert_eq!(x, y, "snap moved {v}");
            // Its bin edges decode to v (just inside) and the neighbours (just outside).
            let lo = ((v as f64 - 0.5).ln() - a) / (b - a);
            let hi = ((v as f64 + 0.5).ln() - a) / (b - a);
            assert!(lo < x[0] && x[0] < hi);
            assert_eq!(s.decode(&[lo + 1e-12]), vec![ParamValue::Int(v)]);
            assert_eq!(s.decode(&[hi - 1e-12]), vec![ParamValue::Int(v)]);
        }
        // Log scale: a doubling is the same distance everywhere (up to the half-integer edges).
        let enc = |v| s.encode(&[ParamValue::Int(v)])[0];
        assert!(((enc(32) - enc(16)) - (enc(512) - enc(256))).abs() < 1e-12);
        assert_eq!(s.decode(&[0.0]), vec![ParamValue::Int(16)]);
        assert_eq!(s.decode(&[1.0]), vec![ParamValue::Int(512)]);
        // Sobol coordinates spread over the log scale: half the unit interval is below ~90.
        let mid = match s.decode(&s.from_param_unit(&[0.5]))[0] {
            ParamValue::Int(v) => v,
            _ => unreachable!(),
        };
        assert!((85..=95).contains(&mid), "{mid}");
        // Neighbour moves include the multiplicative steps, all valid and distinct from the value.
        let moves = s.discrete_moves(&s.encode(&[ParamValue::Int(128)]));
        let vals: Vec<i64> = moves[0]
            .iter()
            .map(|(_, e)| match s.decode(e)[0] {
                ParamValue::Int(v) => v,
                _ => unreachable!(),
            })
            .collect();
        for want in [64, 91, 108, 126, 127, 129, 130, 152, 181, 256] {
            assert!(vals.contains(&want), "{want} missing from {vals:?}");
        }
        assert!(!vals.contains(&128));
    }

    #[test]
    fn enumeration_lists_every_configuration_once() {
        let s = Domain::new(vec![
            Dimension::log_int("b", 1, 8),
            Dimension::int("n", -1, 1),
            Dimension::choice("c", 2),
        ])
        .unwrap();
        let all = s.enumerate();
        assert_eq!(all.len(), 8 * 3 * 2);
        let mut decoded: Vec<Point> = all.iter().map(|x| s.decode(x)).collect();
        decoded.dedup();
        for (i, p) in decoded.iter().enumerate() {
            s.validate(p).unwrap();
            assert_eq!(s.encode(p), all[i]);
            assert!(!decoded[..i].contains(p));
        }
    }
}
