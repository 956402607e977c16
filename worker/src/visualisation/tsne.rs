//! Exact t-SNE (van der Maaten and Hinton, 2008) with scikit-learn's `TSNE(method="exact")`
//! choices, so maps look like the ones Python users know:
//!
//! - affinities: squared Euclidean distances (rounded to float32, as scikit-learn does), per point a
//!   binary search for the Gaussian precision whose conditional distribution has the wanted
//!   perplexity (entropy within 1e-5 nats, at most 100 steps), then symmetrised and normalised,
//!   every pair at least the float64 machine epsilon;
//! - initialisation: the first two principal components, scaled so the first has standard
//!   deviation 1e-4 (each component's sign makes its largest loading positive);
//! - optimisation: gradient descent with momentum and per-coordinate gains (+0.2 when the step
//!   changes direction, ×0.8 otherwise, at least 0.01); 250 iterations of early exaggeration (×12,
//!   momentum 0.5), then momentum 0.8 up to 1000 iterations in all; learning rate
//!   max(n / 12 / 4, 50); every 50 iterations it stops when the gradient norm is below 1e-7 or the
//!   KL divergence has not improved for 300 iterations (250 during exaggeration).
//!
//! Memory and time are quadratic in the number of points: the joint probabilities are one
//! `n x n` matrix, each iteration visits every pair (rows spread over the cores; sums are made per
//! row and then added in row order, so the result does not depend on the number of threads).

use crate::errors::config_error;
use anyhow::Result;
use tch::{Kind, Tensor};

/// The most points the exact method takes (its `n x n` float64 matrix is then 200 MB).
pub const MAX_POINTS: usize = 5000;

const MACHINE_EPSILON: f64 = f64::EPSILON;
const EXPLORATION_ITERATIONS: usize = 250;
const CHECK_EVERY: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct TsneSettings {
    /// Lowered to (n - 1) / 3 for fewer than 91 points, so every point has that many neighbours.
    pub perplexity: f64,
    pub early_exaggeration: f64,
    pub max_iterations: usize,
    /// `None`: max(n / early_exaggeration / 4, 50).
    pub learning_rate: Option<f64>,
    pub iterations_without_progress: usize,
    pub min_grad_norm: f64,
}

impl Default for TsneSettings {
    fn default() -> Self {
        TsneSettings {
            perplexity: 30.0,
            early_exaggeration: 12.0,
            max_iterations: 1000,
            learning_rate: None,
            iterations_without_progress: 300,
            min_grad_norm: 1e-7,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TsneMap {
    /// One 2-D point per input row.
    pub points: Vec<[f64; 2]>,
    /// KL(P || Q) at the last iteration.
    pub kl_divergence: f64,
    /// Iterations run (the last iteration's index + 1).
    pub iterations: usize,
    /// The perplexity used (after lowering for small inputs).
    pub perplexity: f64,
}

/// Maps the rows of `data` (`n x dim`, float) to 2-D.
pub fn tsne(data: &Tensor, settings: &TsneSettings) -> Result<TsneMap> {
    let size = data.size();
    if size.len() != 2 {
        return Err(config_error(format!(
            "t-SNE needs a matrix of points, got shape {size:?}"
        )));
    }
    let (n, dim) = (size[0] as usize, size[1] as usize);
    if n < 2 {
        return Err(config_error(format!(
            "t-SNE needs at least 2 points, got {n}"
        )));
    }
    if n > MAX_POINTS {
        return Err(config_error(format!(
            "exact t-SNE takes at most {MAX_POINTS} points (quadratic memory), got {n}"
        )));
    }
    let x = data.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let values: Vec<f64> = Vec::try_from(x.contiguous().view([-1]))?;
    let perplexity = settings.perplexity.min(((n - 1) as f64 / 3.0).max(1.0));
    let p = joint_probabilities(&values, n, dim, perplexity);
    let init = pca_init(&x)?;
    let learning_rate = settings
        .learning_rate
        .unwrap_or((n as f64 / settings.early_exaggeration / 4.0).max(50.0));
    let mut state = Descent {
        p: &p,
        n,
        y: init.iter().flat_map(|q| q.iter().copied()).collect(),
        learning_rate,
        min_grad_norm: settings.min_grad_norm,
    };
    let (_, first_end) = state.run(
        0,
        EXPLORATION_ITERATIONS.min(settings.max_iterations),
        0.5,
        settings.early_exaggeration,
        EXPLORATION_ITERATIONS,
    );
    let (kl, last) = if first_end + 1 < settings.max_iterations {
        state.run(
            first_end + 1,
            settings.max_iterations,
            0.8,
            1.0,
            settings.iterations_without_progress,
        )
    } else {
        let (kl, _) = state.gradient(1.0, true, &mut vec![0.0; 2 * n]);
        (kl, first_end)
    };
    Ok(TsneMap {
        points: state.y.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
        kl_divergence: kl,
        iterations: last + 1,
        perplexity,
    })
}

/// The first two principal components of the rows of `x` (float64), scaled so the first
/// component's standard deviation is 1e-4.
fn pca_init(x: &Tensor) -> Result<Vec<[f64; 2]>> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let centred = x - x.mean_dim(&[0i64][..], true, Kind::Double);
    let mut scores = vec![[0.0f64; 2]; n as usize];
    if d >= 1 {
        let cov = centred.transpose(0, 1).matmul(&centred);
        // Ascending eigenvalues: the last columns are the top components.
        let (_, vecs) = cov.linalg_eigh("L");
        let components = d.min(2);
        for c in 0..components {
            let mut v: Vec<f64> = Vec::try_from(vecs.select(1, d - 1 - c).contiguous())?;
            let largest = v
                .iter()
                .copied()
                .fold(0.0f64, |m, a| if a.abs() > m.abs() { a } else { m });
            if largest < 0.0 {
                v.iter_mut().for_each(|a| *a = -*a);
            }
            let s: Vec<f64> = Vec::try_from(centred.matmul(&Tensor::from_slice(&v)))?;
            for (row, value) in scores.iter_mut().zip(s) {
                row[c as usize] = value;
            }
        }
    }
    let mean = scores.iter().map(|r| r[0]).sum::<f64>() / n as f64;
    let std = (scores.iter().map(|r| (r[0] - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    // All points equal along the first component: any tiny spread starts the descent.
    let scale = if std > 0.0 { 1e-4 / std } else { 0.0 };
    Ok(scores
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if scale > 0.0 {
                [r[0] * scale, r[1] * scale]
            } else {
                [1e-4 * i as f64 / n as f64, 0.0]
            }
        })
        .collect())
}

fn threads(n: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    // Fewer than ~64 rows per thread costs more in spawning than it saves.
    cores.min(n.div_ceil(64)).max(1)
}

/// Runs `work(first_row, rows_out)` on consecutive chunks of `out` (each `width` values per row) on
/// several threads.
fn rows_in_parallel<T: Send>(
    out: &mut [T],
    width: usize,
    n: usize,
    work: impl Fn(usize, &mut [T]) + Sync,
) {
    let t = threads(n);
    let rows_per = n.div_ceil(t);
    std::thread::scope(|s| {
        for (c, chunk) in out.chunks_mut(rows_per * width).enumerate() {
            let work = &work;
            s.spawn(move || work(c * rows_per, chunk));
        }
    });
}

/// Row-major `n x n` joint probabilities P (diagonal 0).
fn joint_probabilities(x: &[f64], n: usize, dim: usize, perplexity: f64) -> Vec<f64> {
    let mut conditional = vec![0.0f64; n * n];
    let desired_entropy = perplexity.ln();
    rows_in_parallel(&mut conditional, n, n, |first, rows| {
        let mut d = vec![0.0f64; n];
        for (r, p) in rows.chunks_exact_mut(n).enumerate() {
            let i = first + r;
            let xi = &x[i * dim..(i + 1) * dim];
            for (j, dj) in d.iter_mut().enumerate() {
                let xj = &x[j * dim..(j + 1) * dim];
                let sq: f64 = xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum();
                // scikit-learn hands float32 distances to its binary search.
                *dj = f64::from(sq as f32);
            }
            conditional_row(&d, i, desired_entropy, p);
        }
    });
    let mut total = 0.0;
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let v = conditional[i * n + j] + conditional[j * n + i];
                p[i * n + j] = v;
                total += v;
            }
        }
    }
    // Each unordered pair appears twice in `total`; scikit-learn divides the condensed (one per
    // pair) values by the sum of the full matrix, which is this same total.
    let total = total.max(MACHINE_EPSILON);
    for i in 0..n {
        for j in 0..n {
            if i != j {
                p[i * n + j] = (p[i * n + j] / total).max(MACHINE_EPSILON);
            }
        }
    }
    p
}

/// One point's conditional distribution p(j|i) with the perplexity whose log is
/// `desired_entropy`, by bisection on the precision beta (scikit-learn's
/// `_binary_search_perplexity`).
fn conditional_row(d: &[f64], i: usize, desired_entropy: f64, p: &mut [f64]) {
    let (mut beta, mut beta_min, mut beta_max) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..100 {
        let mut sum = 0.0;
        for (j, (pj, dj)) in p.iter_mut().zip(d).enumerate() {
            *pj = if j == i { 0.0 } else { (-dj * beta).exp() };
            sum += *pj;
        }
        if sum == 0.0 {
            sum = 1e-8;
        }
        let mut weighted = 0.0;
        for (pj, dj) in p.iter_mut().zip(d) {
            *pj /= sum;
            weighted += dj * *pj;
        }
        let entropy = sum.ln() + beta * weighted;
        let diff = entropy - desired_entropy;
        if diff.abs() <= 1e-5 {
            break;
        }
        if diff > 0.0 {
            beta_min = beta;
            beta = if beta_max == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + beta_max) / 2.0
            };
        } else {
            beta_max = beta;
            beta = if beta_min == f64::NEG_INFINITY {
                beta / 2.0
            } else {
                (beta + beta_min) / 2.0
            };
        }
    }
}

struct Descent<'a> {
    p: &'a [f64],
    n: usize,
    /// Row-major `n x 2`.
    y: Vec<f64>,
    learning_rate: f64,
    min_grad_norm: f64,
}

impl Descent<'_> {
    /// The KL divergence (when `with_error`, else NaN) and its gradient (into `grad`) at `y`, with P
    /// multiplied by `exaggeration`.
    fn gradient(&self, exaggeration: f64, with_error: bool, grad: &mut [f64]) -> (f64, f64) {
        let (n, y, p) = (self.n, &self.y, self.p);
        let w = |i: usize, j: usize| {
            let (dx, dy) = (y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
            1.0 / (1.0 + dx * dx + dy * dy)
        };
        let mut row_sums = vec![0.0f64; n];
        rows_in_parallel(&mut row_sums, 1, n, |first, out| {
            for (r, s) in out.iter_mut().enumerate() {
                let i = first + r;
                *s = (0..n).filter(|&j| j != i).map(|j| w(i, j)).sum();
            }
        });
        let z: f64 = row_sums.iter().sum();
        // Per row: gradient (2 values) and KL contribution.
        let mut rows = vec![0.0f64; 3 * n];
        rows_in_parallel(&mut rows, 3, n, |first, out| {
            for (r, o) in out.chunks_exact_mut(3).enumerate() {
                let i = first + r;
                let (mut gx, mut gy, mut kl) = (0.0, 0.0, 0.0);
                for j in (0..n).filter(|&j| j != i) {
                    let wij = w(i, j);
                    let q = (wij / z).max(MACHINE_EPSILON);
                    let pij = p[i * n + j] * exaggeration;
                    let f = (pij - q) * wij;
                    gx += f * (y[2 * i] - y[2 * j]);
                    gy += f * (y[2 * i + 1] - y[2 * j + 1]);
                    if with_error {
                        kl += pij * (pij.max(MACHINE_EPSILON) / q).ln();
                    }
                }
                // c = 2 (dof + 1) / dof with one degree of freedom.
                o[0] = 4.0 * gx;
                o[1] = 4.0 * gy;
                o[2] = kl;
            }
        });
        let mut kl = 0.0;
        for (g, r) in grad.chunks_exact_mut(2).zip(rows.chunks_exact(3)) {
            g[0] = r[0];
            g[1] = r[1];
            kl += r[2];
        }
        let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        (if with_error { kl } else { f64::NAN }, norm)
    }

    /// Iterations `start..end` of gradient descent (scikit-learn's `_gradient_descent`, fresh
    /// momentum and gains); returns the last KL divergence and the last iteration's index.
    fn run(
        &mut self,
        start: usize,
        end: usize,
        momentum: f64,
        exaggeration: f64,
        without_progress: usize,
    ) -> (f64, usize) {
        let len = self.y.len();
        let (mut update, mut gains, mut grad) =
            (vec![0.0f64; len], vec![1.0f64; len], vec![0.0f64; len]);
        let (mut error, mut best_error, mut best_iteration) = (f64::MAX, f64::MAX, start);
        let mut i = start;
        while i < end {
            let check = (i + 1).is_multiple_of(CHECK_EVERY);
            let (e, _) = self.gradient(exaggeration, check || i + 1 == end, &mut grad);
            error = e;
            for (((y, u), g), gain) in self
                .y
                .iter_mut()
                .zip(&mut update)
                .zip(&mut grad)
                .zip(&mut gains)
            {
                if *u * *g < 0.0 {
                    *gain += 0.2;
                } else {
                    *gain *= 0.8;
                }
                *gain = (*gain).max(0.01);
                *g *= *gain;
                *u = momentum * *u - self.learning_rate * *g;
                *y += *u;
            }
            if check {
                let grad_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
                if error < best_error {
                    best_error = error;
                    best_iteration = i;
                } else if i - best_iteration > without_progress {
                    break;
                }
                if grad_norm <= self.min_grad_norm {
                    break;
                }
            }
            i += 1;
        }
        (error, i.min(end.saturating_sub(1)).max(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `classes` Gaussian blobs of `per_class` points in `dim` dimensions, centres far apart.
    fn blobs(classes: usize, per_class: usize, dim: usize, seed: u64) -> (Tensor, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f64>> = (0..classes)
            .map(|_| (0..dim).map(|_| rng.random_range(-20.0..20.0)).collect())
            .collect();
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..classes * per_class {
            // Interleaved classes, so no class is one contiguous block of rows.
            let c = i % classes;
            for centre in &centres[c] {
                values.push((centre + rng.random_range(-1.0..1.0)) as f32);
            }
            labels.push(c);
        }
        let t = Tensor::from_slice(&values).view([(classes * per_class) as i64, dim as i64]);
        (t, labels)
    }

    /// Leave-one-out nearest-neighbour accuracy of the labels in the map.
    fn knn1_accuracy(points: &[[f64; 2]], labels: &[usize]) -> f64 {
        let hits = (0..points.len())
            .filter(|&i| {
                let nearest = (0..points.len())
                    .filter(|&j| j != i)
                    .min_by(|&a, &b| {
                        let d = |j: usize| {
                            (points[i][0] - points[j][0]).powi(2)
                                + (points[i][1] - points[j][1]).powi(2)
                        };
                        d(a).total_cmp(&d(b))
                    })
                    .unwrap();
                labels[nearest] == labels[i]
            })
            .count();
        hits as f64 / points.len() as f64
    }

    #[test]
    fn separated_clusters_stay_separated_in_the_map() {
        let (x, labels) = blobs(6, 40, 32, 1);
        let map = tsne(&x, &TsneSettings::default()).unwrap();
        assert_eq!(map.points.len(), 240);
        assert_eq!(map.perplexity, 30.0);
        let acc = knn1_accuracy(&map.points, &labels);
        assert!(acc > 0.95, "1-NN accuracy in 2-D {acc}");
        assert!(map.kl_divergence.is_finite() && map.kl_divergence > 0.0);
        assert!(map.iterations > EXPLORATION_ITERATIONS && map.iterations <= 1000);
        // The same input gives the same map, bit for bit.
        assert_eq!(tsne(&x, &TsneSettings::default()).unwrap(), map);
    }

    #[test]
    fn conditional_rows_have_the_wanted_perplexity() {
        let d: Vec<f64> = (0..60)
            .map(|j| (j as f64 * 0.37).sin().abs() * 5.0)
            .collect();
        let mut p = vec![0.0; 60];
        conditional_row(&d, 3, 10f64.ln(), &mut p);
        assert_eq!(p[3], 0.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let entropy: f64 = -p
            .iter()
            .filter(|v| **v > 0.0)
            .map(|v| v * v.ln())
            .sum::<f64>();
        assert!((entropy.exp() - 10.0).abs() < 1e-3, "{}", entropy.exp());
    }

    #[test]
    fn joint_probabilities_are_symmetric_and_sum_to_one() {
        let (x, _) = blobs(2, 10, 3, 2);
        let v: Vec<f64> = Vec::try_from(x.to_kind(Kind::Double).view([-1])).unwrap();
        let p = joint_probabilities(&v, 20, 3, 5.0);
        let total: f64 = p.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        for i in 0..20 {
            assert_eq!(p[i * 20 + i], 0.0);
            for j in 0..20 {
                assert_eq!(p[i * 20 + j], p[j * 20 + i]);
            }
        }
    }

    /// The analytic gradient against central differences of the KL divergence.
    #[test]
    fn the_gradient_is_that_of_the_kl_divergence() {
        let (x, _) = blobs(3, 5, 4, 3);
        let v: Vec<f64> = Vec::try_from(x.to_kind(Kind::Double).view([-1])).unwrap();
        let p = joint_probabilities(&v, 15, 4, 4.0);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let y: Vec<f64> = (0..30).map(|_| rng.random_range(-2.0..2.0)).collect();
        let mut d = Descent {
            p: &p,
            n: 15,
            y: y.clone(),
            learning_rate: 1.0,
            min_grad_norm: 0.0,
        };
        let mut grad = vec![0.0; 30];
        d.gradient(1.0, true, &mut grad);
        let mut scratch = vec![0.0; 30];
        for k in [0, 7, 29] {
            let h = 1e-6;
            d.y = y.clone();
            d.y[k] += h;
            let (plus, _) = d.gradient(1.0, true, &mut scratch);
            d.y[k] -= 2.0 * h;
            let (minus, _) = d.gradient(1.0, true, &mut scratch);
            let numeric = (plus - minus) / (2.0 * h);
            assert!(
                (numeric - grad[k]).abs() < 1e-5 * (1.0 + grad[k].abs()),
                "coordinate {k}: analytic {} numeric {numeric}",
                grad[k]
            );
        }
    }

    /// scikit-learn's `TSNE(method="exact")` on the same points reaches the same KL divergence.
    /// Needs scikit-learn importable by the reference interpreter (it is not in
    /// scripts/setup-pyref.sh; e.g. `pip install --target DIR scikit-learn` and `PYTHONPATH=DIR`),
    /// else skipped.
    #[test]
    fn the_kl_divergence_is_that_of_scikit_learn() {
        let Some(python) = crate::datasets::test_python::python() else {
            return;
        };
        let probe = std::process::Command::new(&python)
            .args(["-c", "import sklearn"])
            .output()
            .unwrap();
        if !probe.status.success() {
            eprintln!(
                "SKIPPED: scikit-learn is not importable by {}",
                python.display()
            );
            return;
        }
        // Uniform points in 8-D: no clusters to fall into, so the KL divergence stays large and
        // the comparison is sensitive.
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let values: Vec<f32> = (0..200 * 8).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x = Tensor::from_slice(&values).view([200, 8]);
        let rows: Vec<Vec<f32>> = Vec::try_from(&x).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("x.csv");
        let text: Vec<String> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| format!("{v:e}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        std::fs::write(&input, text.join("\n")).unwrap();
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(
                "import sys, numpy as np\n\
                 from sklearn.manifold import TSNE\n\
                 x = np.loadtxt(sys.argv[1], delimiter=',', dtype=np.float32)\n\
                 t = TSNE(method='exact', random_state=0).fit(x)\n\
                 print(t.kl_divergence_, t.n_iter_ + 1)",
            )
            .arg(&input)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut words = said.split_whitespace();
        let theirs: f64 = words.next().unwrap().parse().unwrap();
        let map = tsne(&x, &TsneSettings::default()).unwrap();
        eprintln!(
            "KL divergence: ours {} after {} iterations, scikit-learn {theirs} after {}",
            map.kl_divergence,
            map.iterations,
            words.next().unwrap_or("?")
        );
        assert!(
            (map.kl_divergence - theirs).abs() <= 0.02 * theirs,
            "ours {} scikit-learn {theirs}",
            map.kl_divergence
        );
    }

    #[test]
    fn small_inputs_lower_the_perplexity_and_bad_shapes_are_errors() {
        let (x, _) = blobs(2, 5, 3, 5);
        let map = tsne(&x, &TsneSettings::default()).unwrap();
        assert_eq!(map.perplexity, 3.0);
        assert!(map
            .points
            .iter()
            .all(|p| p[0].is_finite() && p[1].is_finite()));
        let one = Tensor::zeros([1, 3], (Kind::Float, tch::Device::Cpu));
        assert!(tsne(&one, &TsneSettings::default()).is_err());
    }
}
