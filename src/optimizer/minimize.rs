//! L-BFGS (argmin 0.11, More–Thuente line search) over `Vec<f64>` for a function that returns its
//! value and gradient together.
//!
//! argmin asks for cost and gradient separately; both our objectives (GP marginal likelihood,
//! acquisition) share almost all work between the two, so the last evaluation is cached. The best
//! point ever evaluated is also kept here, so that a line search that wanders into a region where
//! the objective fails (returns `None`), or a solver error, still yields the best point found
//! instead of losing the whole run.

use std::cell::RefCell;

use argmin::core::{CostFunction, Error, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

type Eval = (Vec<f64>, f64, Vec<f64>);

struct Problem<'a, F> {
    f: &'a F,
    last: &'a RefCell<Option<Eval>>,
    best: &'a RefCell<Option<(Vec<f64>, f64)>>,
}

impl<F: Fn(&[f64]) -> Option<(f64, Vec<f64>)>> Problem<'_, F> {
    fn eval(&self, x: &[f64]) -> Result<(f64, Vec<f64>), Error> {
        if let Some((lx, v, g)) = self.last.borrow().as_ref() {
            if lx.as_slice() == x {
                return Ok((*v, g.clone()));
            }
        }
        let (v, g) = (self.f)(x)
            .filter(|(v, g)| v.is_finite() && g.iter().all(|x| x.is_finite()))
            .ok_or_else(|| Error::msg("objective not finite"))?;
        let mut best = self.best.borrow_mut();
        if best.as_ref().is_none_or(|(_, b)| v < *b) {
            *best = Some((x.to_vec(), v));
        }
        *self.last.borrow_mut() = Some((x.to_vec(), v, g.clone()));
        Ok((v, g))
    }
}

impl<F: Fn(&[f64]) -> Option<(f64, Vec<f64>)>> CostFunction for Problem<'_, F> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, Error> {
        self.eval(p).map(|(v, _)| v)
    }
}

impl<F: Fn(&[f64]) -> Option<(f64, Vec<f64>)>> Gradient for Problem<'_, F> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Self::Param) -> Result<Vec<f64>, Error> {
        self.eval(p).map(|(_, g)| g)
    }
}

/// Minimises `f` from `x0` with at most `max_iters` L-BFGS iterations. Returns the best point
/// evaluated and its value, or `None` when `f` is not finite at `x0` (nothing to improve on).
pub(crate) fn minimize<F>(f: &F, x0: Vec<f64>, max_iters: u64) -> Option<(Vec<f64>, f64)>
where
    F: Fn(&[f64]) -> Option<(f64, Vec<f64>)>,
{
    let last = RefCell::new(None);
    let best = RefCell::new(None);
    let problem = Problem {
        f,
        last: &last,
        best: &best,
    };
    problem.eval(&x0).ok()?;
    let run = || -> Result<(), Error> {
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), 7)
            .with_tolerance_grad(1e-7)?
            .with_tolerance_cost(1e-11)?;
        Executor::new(problem, solver)
            .configure(|s| s.param(x0.clone()).max_iters(max_iters))
            .timer(false)
            .run()?;
        Ok(())
    };
    // A solver error (e.g. the line search stepped where `f` is undefined, or found no descent)
    // is not fatal: the best evaluated point is still a valid, usually converged, answer.
    let _ = run();
    best.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_a_rosenbrock_valley() {
        let f = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            let v = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let g = vec![
                -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
                200.0 * (b - a * a),
            ];
            Some((v, g))
        };
        let (x, v) = minimize(&f, vec![-1.2, 1.0], 200).unwrap();
        assert!(v < 1e-10, "value {v} at {x:?}");
        assert!((x[0] - 1.0).abs() < 1e-4 && (x[1] - 1.0).abs() < 1e-4);
    }

    #[test]
    fn undefined_regions_keep_the_best_point() {
        // Undefined for x > 0.5; the minimum of (x-2)^2 restricted to the defined part is at 0.5.
        let f = |x: &[f64]| (x[0] <= 0.5).then(|| ((x[0] - 2.0).powi(2), vec![2.0 * (x[0] - 2.0)]));
        let (x, _) = minimize(&f, vec![0.0], 50).unwrap();
        assert!(x[0] <= 0.5 && x[0] >= 0.0);
        assert!(minimize(&f, vec![1.0], 50).is_none());
    }
}
