//! Gaussian-process Bayesian optimisation (docs/tuning.md), independent of trials and processes.
//!
//! Ask/tell:
//! ```
//! use metricbench::optimizer::{Optimizer, OptimizerConfig, Dimension, ParamValue, Domain};
//! let space = Domain::new(vec![
//!     Dimension::log_float("lr", 1e-5, 1e-1),
//!     Dimension::int("layers", 1, 4),
//!     Dimension::choice("loss", 3),
//! ]).unwrap();
//! let mut opt = Optimizer::new(space, OptimizerConfig { seed: 7, ..Default::default() });
//! let batch = opt.suggest(2, &[]).unwrap();          // two different points to run in parallel
//! opt.observe(&batch[0], 0.61, None).unwrap();       // finished: objective value (maximised)
//! opt.mark_failed(&batch[1]).unwrap();               // crashed: never proposed again, not modelled
//! let running = vec![batch[0].clone()];
//! let next = opt.suggest(1, &running).unwrap();      // pending points are accounted for
//! assert_eq!(next.len(), 1);
//! ```
//!
//! Method:
//! * **Encoding** ([`space`]): unit cube; log floats in log space; ints at bin centres, rounded
//!   inside the acquisition; choices one-hot.
//! * **Initial design**: the first `max(5, #params)` successful observations come from a scrambled
//!   Sobol sequence (configurable); the GP takes over afterwards.
//! * **Model** ([`gp`]): ARD Matérn-5/2 on standardised outputs whose worse-than-median half is
//!   log-compressed (heavy bad tails would otherwise set the scale), constant prior mean by
//!   generalised least squares (the ML constant mean; the plain average overstates unexplored
//!   regions because BO samples good regions densely), noise variance ≥ 1e-8, MAP
//!   hyperparameters (exact LML + Optuna's priors by default, see [`Prior`]) by L-BFGS from the
//!   previous optimum, the prior centre and random restarts. Optionally
//!   ([`OptimizerConfig::n_hyper_samples`]) the acquisition is averaged over slice-sampled
//!   hyperparameter draws instead.
//! * **Acquisition** ([`acquisition`]): log expected improvement (Ament et al. 2023), maximised
//!   over the best of 2,048 scrambled-Sobol candidates plus perturbations of the best observed
//!   points, each of the top starts refined by L-BFGS on a sigmoid-reparameterised box (floats)
//!   followed by a discrete line search (ints: neighbours, or all values when ≤ 16; choices: all
//!   options).
//! * **Under known noise** (any observation with an SEM): the acquisition is noisy expected
//!   improvement ([`noisy_ei`], Letham et al. 2019) — the mean LogEI over
//!   [`OptimizerConfig::noisy_ei_draws`] quasi-random joint draws of the latent objective at the
//!   modelled points, each draw's best as its incumbent — instead of EI against one incumbent.
//! * **Final exploitation**: given the caller's [`OptimizerConfig::budget`] and no SEMs, the
//!   last few evaluations maximise the posterior mean (see
//!   [`OptimizerConfig::final_exploitation`]).
//! * **Final identification**: given the budget and SEMs, the last few evaluations maximise the
//!   knowledge gradient over the evaluated points ([`knowledge_gradient`], Frazier et al. 2009):
//!   the expected rise of the best posterior mean among evaluated points, the quantity the
//!   study's result is chosen by (see [`OptimizerConfig::knowledge_gradient_last`]).
//! * **Parallel suggestions**: kriging believer — each pending or already-chosen point is added
//!   to the model with its posterior mean as a fantasy observation, which collapses the variance
//!   (and so the acquisition) around it. [`BatchStrategy::ConstantLiar`] uses the worst observed
//!   value instead.
//! * **Direction**: [`Direction::Maximize`] by default (metric accuracy); `Minimize` negates
//!   values internally.
//!
//! Documented behaviour on awkward input (never a panic):
//! * empty search space → [`OptimizerError::EmptySpace`] from [`Domain::new`];
//! * invalid bounds/points → [`OptimizerError::InvalidSpace`] / [`OptimizerError::InvalidPoint`];
//! * a NaN or infinite objective passed to [`Optimizer::observe`] records the point as failed;
//! * all trials failed → the Sobol design continues (skipping failed points) until enough
//!   successes exist to fit a GP;
//! * all observed values equal → the Sobol design continues (nothing to model yet);
//! * a finite (all-discrete) space that is exhausted → `suggest` returns fewer than `k` points
//!   (possibly none), never a duplicate;
//! * the GP cannot be factorised even with jitter → that call falls back to Sobol points.
//!
//! Scale: the hyperparameters are fitted on at most [`OptimizerConfig::max_fit_points`]
//! observations (the best half plus a seeded random sample of the rest) and the posterior uses at
//! most [`OptimizerConfig::max_model_points`] (same rule); below those sizes all data is used.
//!
//! Determinism: all randomness comes from ChaCha8 streams derived from the seed and the number of
//! known points; iteration is over vectors only. The same seed and the same sequence of calls give
//! the same suggestions. (The last fitted hyperparameters warm-start the next fit, so a fresh
//! optimiser fed the same history can differ slightly from a long-running one.)

pub mod acquisition;
pub mod domain;
pub mod gp;
pub mod kernel;
mod knowledge_gradient;
mod minimize;
mod noisy_ei;
mod rng;
mod sobol;
pub mod surrogate;

use std::fmt;

pub use domain::{Dimension, DimensionKind, Domain, ParamValue, Point};
pub use gp::Prior;

use gp::{Data, Posterior};
use knowledge_gradient::KnowledgeGradient;
use noisy_ei::NoisyIncumbent;

/// The GP posteriors the acquisition is averaged over: the MAP fit alone, or several
/// hyperparameter draws (integrated expected improvement, Snoek et al. 2012).
#[derive(Clone, Debug)]
struct Model {
    posts: Vec<Posterior>,
    /// Noisy expected improvement (one set of fantasy models per member, see [`noisy_ei`]) when
    /// the observations carry known noise; empty for plain EI against a fixed incumbent.
    noisy: Vec<NoisyIncumbent>,
    /// Latent draws per member for the noisy acquisition (0: plain EI).
    noisy_draws: usize,
    /// Score points by the posterior mean instead of an improvement criterion (the budget's
    /// final evaluations, see [`OptimizerConfig::final_exploitation`]).
    maximise_mean: bool,
}

impl Model {
    /// Plain EI when `noisy_draws` is 0; otherwise noisy EI, or `None` if its fantasy models
    /// cannot be factorised.
    fn new(posts: Vec<Posterior>, noisy_draws: usize) -> Option<Self> {
        let noisy = if noisy_draws > 0 {
            posts
                .iter()
                .map(|p| NoisyIncumbent::new(p, noisy_draws))
                .collect::<Option<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Some(Self {
            posts,
            noisy,
            noisy_draws,
            maximise_mean: false,
        })
    }

    fn data(&self) -> &Data {
        self.posts[0].data()
    }

    fn mean(&self, x: &[f64]) -> f64 {
        self.posts.iter().map(|p| p.predict(x).0).sum::<f64>() / self.posts.len() as f64
    }

    /// The posterior mean (averaged over the members) and its gradient w.r.t. `x`.
    fn mean_with_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let k = self.posts.len() as f64;
        let mut value = 0.0;
        let mut g = vec![0.0; x.len()];
        for p in &self.posts {
            let (m, _, dm, _) = p.predict_with_grad(x);
            value += m / k;
            for (gi, d) in g.iter_mut().zip(&dm) {
                *gi += d / k;
            }
        }
        (value, g)
    }

    fn with_extra(&self, x: &[f64], y: f64) -> Option<Self> {
        let posts = self
            .posts
            .iter()
            .map(|p| p.with_extra(x, y))
            .collect::<Option<Vec<_>>>()?;
        let mut extended = Self::new(posts, self.noisy_draws)?;
        extended.maximise_mean = self.maximise_mean;
        Some(extended)
    }

    /// ln of the mean of EI over the members (`best` is ignored by the noisy acquisition, whose
    /// incumbents are the draws').
    /// When exploiting, the posterior mean itself.
    fn log_acq(&self, x: &[f64], best: f64) -> f64 {
        if self.maximise_mean {
            return self.mean(x);
        }
        let a: Vec<f64> = if self.noisy.is_empty() {
            self.posts
                .iter()
                .map(|p| {
                    let (m, v) = p.predict(x);
                    acquisition::log_ei(m, v, best).0
                })
                .collect()
        } else {
            self.noisy.iter().map(|n| n.log_acq(x)).collect()
        };
        log_mean_exp(&a)
    }

    fn log_acq_many(&self, xs: &[Vec<f64>], best: f64) -> Vec<f64> {
        if self.maximise_mean {
            return xs.iter().map(|x| self.mean(x)).collect();
        }
        let per: Vec<Vec<f64>> = if self.noisy.is_empty() {
            self.posts
                .iter()
                .map(|p| {
                    p.predict_many(xs)
                        .iter()
                        .map(|&(m, v)| acquisition::log_ei(m, v, best).0)
                        .collect()
                })
                .collect()
        } else {
            self.noisy.iter().map(|n| n.log_acq_many(xs)).collect()
        };
        (0..xs.len())
            .map(|i| {
                let a: Vec<f64> = per.iter().map(|v| v[i]).collect();
                log_mean_exp(&a)
            })
            .collect()
    }

    /// ln mean EI and its gradient w.r.t. `x`.
    fn log_acq_with_grad(&self, x: &[f64], best: f64) -> (f64, Vec<f64>) {
        if self.maximise_mean {
            return self.mean_with_grad(x);
        }
        let mut vals = Vec::with_capacity(self.posts.len());
        let mut grads = Vec::with_capacity(self.posts.len());
        if self.noisy.is_empty() {
            for p in &self.posts {
                let (m, v, dm, dv) = p.predict_with_grad(x);
                let (a, da_dm, da_dv) = acquisition::log_ei(m, v, best);
                vals.push(a);
                grads.push(
                    dm.iter()
                        .zip(&dv)
                        .map(|(gm, gv)| da_dm * gm + da_dv * gv)
                        .collect::<Vec<f64>>(),
                );
            }
        } else {
            for n in &self.noisy {
                let (a, g) = n.log_acq_with_grad(x);
                vals.push(a);
                grads.push(g);
            }
        }
        let value = log_mean_exp(&vals);
        let mut g = vec![0.0; x.len()];
        if value.is_finite() {
            for (a, gk) in vals.iter().zip(&grads) {
                let w = (a - value).exp() / vals.len() as f64;
                for (gi, v) in g.iter_mut().zip(gk) {
                    *gi += w * v;
                }
            }
        }
        (value, g)
    }
}

/// `ln((1/K) Σ e^{a_k})`, stable for very negative `a_k`.
fn log_mean_exp(a: &[f64]) -> f64 {
    if a.len() == 1 {
        return a[0];
    }
    let m = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + (a.iter().map(|v| (v - m).exp()).sum::<f64>() / a.len() as f64).ln()
}
use domain::same_point;
use rng::{derive_seed, Rng};
use sobol::sobol_point;

/// Errors of the optimiser API.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerError {
    /// A search space needs at least one parameter.
    EmptySpace,
    InvalidSpace(String),
    InvalidPoint(String),
    /// An observation's value or standard error cannot be used (negative or non-finite SEM, an
    /// SEM on a failed evaluation).
    InvalidObservation(String),
}

impl fmt::Display for OptimizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptimizerError::EmptySpace => write!(f, "the search space has no parameters"),
            OptimizerError::InvalidSpace(m) => write!(f, "invalid search space: {m}"),
            OptimizerError::InvalidPoint(m) => write!(f, "invalid point: {m}"),
            OptimizerError::InvalidObservation(m) => write!(f, "invalid observation: {m}"),
        }
    }
}

impl std::error::Error for OptimizerError {}

/// Which way the objective is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Larger is better (accuracy, MAP@R) — the default.
    #[default]
    Maximize,
    Minimize,
}

/// How pending points are accounted for when proposing several points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BatchStrategy {
    /// Fantasy value = posterior mean at the pending point.
    #[default]
    KrigingBeliever,
    /// Fantasy value = worst observed value (pessimistic, spreads points further).
    ConstantLiar,
}

#[derive(Clone, Debug)]
pub struct OptimizerConfig {
    pub seed: u64,
    pub direction: Direction,
    /// Successful observations gathered from the Sobol design before the GP is used;
    /// `None` → `max(5, number of parameters)`.
    pub n_initial: Option<usize>,
    /// Scrambled-Sobol candidates scored per suggested point.
    pub n_candidates: usize,
    /// Best candidates refined by local optimisation.
    pub n_local_searches: usize,
    /// Random restarts of the hyperparameter fit (besides the previous optimum and the prior
    /// centre).
    pub n_fit_restarts: usize,
    pub max_fit_points: usize,
    pub max_model_points: usize,
    pub prior: Prior,
    pub batch_strategy: BatchStrategy,
    /// Constant GP prior mean by generalised least squares instead of the sample mean (default
    /// on; 20-seed benchmark: Hartmann-6 median regret 0.10 → 0.004).
    pub gls_mean: bool,
    /// Log-compress the worse-than-median outputs before modelling (default on; 20-seed
    /// benchmark: Branin 4e-5 → 1e-5, Rosenbrock-4 540 → 85).
    pub compress_bad_tail: bool,
    /// Hyperparameters are refitted on every suggestion while fewer than this many observations
    /// exist; beyond, only when the observations grew by [`OptimizerConfig::refit_growth`] since
    /// the last fit (in between, the last fit is reused and only the posterior is updated). The fit
    /// is the O(n³)-per-step part of a suggestion, and hyperparameters change little from one
    /// observation to the next once there are many: this keeps a 200-trial study's per-trial
    /// overhead low.
    pub always_refit_below: usize,
    /// Relative growth of the number of observations that triggers a refit (see above).
    pub refit_growth: f64,
    /// Integrated expected improvement (Snoek et al. 2012) instead of the MAP plug-in: while
    /// fewer than [`OptimizerConfig::sample_hyper_below`] observations are modelled, the
    /// acquisition is the mean EI over this many hyperparameter draws (slice sampling of the
    /// posterior, started at the MAP fit). 0 (the default) → the MAP fit alone. Off by default:
    /// on the 20-seed benchmark 10 draws lowered the mean regret on Hartmann-6, Ackley-5 and
    /// Levy-4 but raised Rosenbrock-4's and Branin's, at 3–4x the suggestion time (BENCHMARKS.md).
    pub n_hyper_samples: usize,
    pub sample_hyper_below: usize,
    /// Slice-sampling sweeps discarded before the first draw, and sweeps per draw.
    pub hyper_burn: usize,
    pub hyper_thin: usize,
    /// Latent draws of the noisy expected improvement used when observations carry an SEM
    /// (Letham et al. 2019; see `noisy_ei`). 0 → plain LogEI against the best posterior mean at
    /// an observed point. Without SEMs the acquisition is plain LogEI whatever this says.
    pub noisy_ei_draws: usize,
    /// Evaluations the caller will make in all (a study's trial count), counting failed ones;
    /// `None` when open-ended. Only [`OptimizerConfig::final_exploitation`] uses it.
    pub budget: Option<usize>,
    /// Without SEMs, the last this-many evaluations of the `budget` maximise the model's
    /// posterior mean instead of the expected improvement: exploration that late cannot pay
    /// off, while a point at the predicted optimum can still raise the best value found. Capped
    /// at a quarter of the evaluations after the initial design. Evaluated, failed and pending
    /// points stay excluded as for any suggestion. Default 3: on the 40-evaluation benchmark over
    /// seeds 0-39 it lowered the median regret on all 8 noiseless functions (220 seed pairs
    /// better, 48 worse; BENCHMARKS.md). Not applied once any observation has an SEM: there it
    /// won only 156 of 279 pairs, on 4 of 7 functions, and the model's chosen trial of 7 of 8
    /// noisy `tune` studies was slightly worse with it. 0 turns it off.
    pub final_exploitation: usize,
    /// Once an observation has an SEM, the last this-many evaluations of the `budget` maximise
    /// the knowledge gradient over the evaluated points (`knowledge_gradient`) instead of the
    /// noisy expected improvement: a point is worth how much its result can improve the final
    /// choice among the evaluated points ([`Optimizer::recommend`]), which is where a noisy study
    /// loses most. Capped, like final exploitation, at a quarter of the evaluations after the
    /// initial design. Default 5: on the noisy benchmark (40 evaluations, seeds 40-119, paired
    /// with the noisy EI alone) it lowered the median regret on 6 of 7 functions, with 282 seed
    /// pairs better and 206 worse; 3 and 8 gained less, and an early version giving it 20 or
    /// every model evaluation lost (BENCHMARKS.md). 0 turns it off.
    pub knowledge_gradient_last: usize,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            direction: Direction::Maximize,
            n_initial: None,
            n_candidates: 2048,
            n_local_searches: 10,
            n_fit_restarts: 2,
            max_fit_points: 200,
            max_model_points: 1000,
            prior: Prior::Optuna,
            batch_strategy: BatchStrategy::KrigingBeliever,
            gls_mean: true,
            compress_bad_tail: true,
            always_refit_below: 40,
            refit_growth: 1.1,
            n_hyper_samples: 0,
            sample_hyper_below: 40,
            hyper_burn: 6,
            hyper_thin: 3,
            noisy_ei_draws: 16,
            budget: None,
            final_exploitation: 3,
            knowledge_gradient_last: 5,
        }
    }
}

#[derive(Clone, Debug)]
struct Observation {
    x: Vec<f64>,
    point: Point,
    /// Objective as given by the caller.
    value: f64,
    /// Objective in the internal "larger is better" orientation.
    internal: f64,
    /// Standard error of `value` (caller units), when the evaluation reported one.
    sem: Option<f64>,
}

/// The optimiser's pick among the completed evaluations (see [`Optimizer::recommend`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// Index of the chosen observation, in the order [`Optimizer::observe`] received them.
    pub index: usize,
    pub point: Point,
    /// The value observed there, and its standard error if one was reported.
    pub observed: f64,
    pub sem: Option<f64>,
    /// The model's posterior mean at the point (caller units); `None` when no model could be
    /// built (fewer than two observations, or all values equal), in which case the point is the
    /// best observed one.
    pub model_mean: Option<f64>,
}

/// The Bayesian optimiser. See the module documentation for the method and the edge cases.
#[derive(Clone, Debug)]
pub struct Optimizer {
    space: Domain,
    config: OptimizerConfig,
    observations: Vec<Observation>,
    failed: Vec<Vec<f64>>,
    last_theta: Option<Vec<f64>>,
    /// Observations modelled when `last_theta` was fitted.
    n_at_last_fit: usize,
}

impl Optimizer {
    pub fn new(space: Domain, config: OptimizerConfig) -> Self {
        Self {
            space,
            config,
            observations: Vec::new(),
            failed: Vec::new(),
            last_theta: None,
            n_at_last_fit: 0,
        }
    }

    pub fn space(&self) -> &Domain {
        &self.space
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Number of observations with a finite objective.
    pub fn n_observed(&self) -> usize {
        self.observations.len()
    }

    /// Number of failed points (including non-finite objectives).
    pub fn n_failed(&self) -> usize {
        self.failed.len()
    }

    /// Hyperparameters of the last GP fit, `[ln ℓ_1..ln ℓ_D, ln s, ln(σ² − floor)]` on the
    /// encoded coordinates (for reports and debugging).
    pub fn last_hyperparameters(&self) -> Option<&[f64]> {
        self.last_theta.as_deref()
    }

    /// The number of initial Sobol successes before the GP is used.
    pub fn n_initial(&self) -> usize {
        self.config
            .n_initial
            .unwrap_or_else(|| self.space.len().max(5))
    }

    /// Records a finished evaluation. A non-finite `value` marks the point failed instead (a
    /// worker reporting NaN is a failed trial, docs/tuning.md). Observing the same point twice keeps both values
    /// (the noise term absorbs them).
    ///
    /// `sem` is the standard error of `value` when the evaluation measured one (e.g. the spread
    /// of a metric over cross-validation folds): the model treats its square as that
    /// observation's known noise variance, on top of the learned noise. `None` keeps the
    /// behaviour of a noise-free observation. Errors: a negative, NaN or infinite SEM, or an SEM
    /// given with a non-finite value (a failed evaluation has no standard error).
    pub fn observe(
        &mut self,
        point: &[ParamValue],
        value: f64,
        sem: Option<f64>,
    ) -> Result<(), OptimizerError> {
        self.space.validate(point)?;
        if let Some(e) = sem {
            if !value.is_finite() {
                return Err(OptimizerError::InvalidObservation(format!(
                    "sem = {e} given for a failed evaluation (value {value}); a failed \
                     evaluation has no standard error"
                )));
            }
            if !(e.is_finite() && e >= 0.0) {
                return Err(OptimizerError::InvalidObservation(format!(
                    "sem must be a finite number >= 0, got {e}"
                )));
            }
        }
        if !value.is_finite() {
            return self.mark_failed(point);
        }
        let internal = match self.config.direction {
            Direction::Maximize => value,
            Direction::Minimize => -value,
        };
        self.observations.push(Observation {
            x: self.space.encode(point),
            point: point.to_vec(),
            value,
            internal,
            sem,
        });
        Ok(())
    }

    /// Records a failed evaluation: the point is excluded from the model and never proposed again.
    pub fn mark_failed(&mut self, point: &[ParamValue]) -> Result<(), OptimizerError> {
        self.space.validate(point)?;
        self.failed.push(self.space.encode(point));
        Ok(())
    }

    /// The best observation so far (by the configured direction) and its value.
    pub fn best(&self) -> Option<(&Point, f64)> {
        self.observations
            .iter()
            .fold(None::<&Observation>, |b, o| match b {
                Some(b) if b.internal >= o.internal => Some(b),
                _ => Some(o),
            })
            .map(|o| (&o.point, o.value))
    }

    /// Whether any observation so far came with a standard error.
    pub fn has_sem(&self) -> bool {
        self.observations.iter().any(|o| o.sem.is_some())
    }

    /// The completed evaluation the model believes best: the one with the highest posterior
    /// mean at its point (lowest for `Minimize`), as Ax recommends under noise. A lucky noisy
    /// draw at a mediocre point is discounted by its neighbours and its SEM, where the highest
    /// observed value would favour it. Falls back to the best observed value (`model_mean`
    /// `None`) when no model can be built. Leaves the optimiser untouched: its next suggestions
    /// are the same whether or not this was called. `None` without observations.
    pub fn recommend(&self) -> Option<Recommendation> {
        if self.observations.is_empty() {
            return None;
        }
        let observed_best = || {
            let (index, o) = self.observations.iter().enumerate().fold(
                None::<(usize, &Observation)>,
                |b, (i, o)| match b {
                    Some((_, bo)) if bo.internal >= o.internal => b,
                    _ => Some((i, o)),
                },
            )?;
            Some(Recommendation {
                index,
                point: o.point.clone(),
                observed: o.value,
                sem: o.sem,
                model_mean: None,
            })
        };
        if self.observations.len() < 2 {
            return observed_best();
        }
        // A scratch copy fits the model, so the warm start and refit schedule of the real
        // optimiser are unchanged.
        let mut scratch = self.clone();
        let mut rng = Rng::new(derive_seed(self.config.seed ^ 0x5eed_0b5e, 0));
        let Some((model, _, transform)) = scratch.build_model(&[], &mut rng) else {
            return observed_best();
        };
        let means: Vec<f64> = self.observations.iter().map(|o| model.mean(&o.x)).collect();
        let index = (0..means.len()).fold(0, |b, i| if means[i] > means[b] { i } else { b });
        let o = &self.observations[index];
        let internal = transform.inverse(means[index]);
        Some(Recommendation {
            index,
            point: o.point.clone(),
            observed: o.value,
            sem: o.sem,
            model_mean: Some(match self.config.direction {
                Direction::Maximize => internal,
                Direction::Minimize => -internal,
            }),
        })
    }

    /// Proposes up to `k` new points, all distinct from each other, from every observed, failed
    /// and `pending` point. Fewer than `k` are returned only when a finite space runs out.
    ///
    /// The optimiser does not remember what it suggested: points handed out but not yet observed
    /// or failed must be passed back as `pending`, otherwise an identical call returns the same
    /// points again (that is what makes the result a function of seed and history).
    pub fn suggest(&mut self, k: usize, pending: &[Point]) -> Result<Vec<Point>, OptimizerError> {
        for p in pending {
            self.space.validate(p)?;
        }
        let pending_x: Vec<Vec<f64>> = pending.iter().map(|p| self.space.encode(p)).collect();
        let mut known: Vec<Vec<f64>> = self.observations.iter().map(|o| o.x.clone()).collect();
        known.extend(self.failed.iter().cloned());
        known.extend(pending_x.iter().cloned());
        // Everything random in this call derives from the seed and the history length.
        let call_seed = derive_seed(self.config.seed, known.len() as u64);
        let mut rng = Rng::new(call_seed);

        let mut chosen: Vec<Vec<f64>> = Vec::new();
        let gp_state = if self.observations.len() >= self.n_initial().max(2) {
            self.build_model(&pending_x, &mut rng)
        } else {
            None
        };
        match gp_state {
            Some((mut post, mut best, _)) => {
                for _ in 0..k {
                    post.maximise_mean = self.exploits(known.len() + chosen.len());
                    let excluded: Vec<&[f64]> =
                        known.iter().chain(&chosen).map(|v| v.as_slice()).collect();
                    let near: Vec<&[f64]> = pending_x
                        .iter()
                        .chain(&chosen)
                        .map(|v| v.as_slice())
                        .collect();
                    let x = if self.identifies(known.len() + chosen.len()) {
                        self.maximize_knowledge_gradient(&post, &excluded, &near, &mut rng)
                    } else {
                        self.maximize_acquisition(&post, best, &excluded, &near, &mut rng)
                    };
                    let Some(x) = x else {
                        // Only when every candidate is excluded: let the exact-duplicate rule of
                        // the Sobol/enumeration fallback decide what is left.
                        let rest = k - chosen.len();
                        self.fill_sobol(rest, &known, &mut chosen);
                        break;
                    };
                    let fantasy = self.fantasy_value(&post, &x);
                    best = best.max(fantasy);
                    match post.with_extra(&x, fantasy) {
                        Some(p) => post = p,
                        None => {
                            chosen.push(x);
                            // The model cannot absorb more fantasies; fill the rest from Sobol.
                            let rest = k - chosen.len();
                            self.fill_sobol(rest, &known, &mut chosen);
                            break;
                        }
                    }
                    chosen.push(x);
                }
            }
            None => self.fill_sobol(k, &known, &mut chosen),
        }
        Ok(chosen.iter().map(|x| self.space.decode(x)).collect())
    }

    /// Whether the evaluation with this 0-based number (observed, failed and pending points
    /// before it) is one of the budget's final exploiting ones. Never once an observation
    /// carries an SEM: under noise the benchmarks did not show a consistent gain (see
    /// [`OptimizerConfig::final_exploitation`]).
    fn exploits(&self, number: usize) -> bool {
        !self.has_sem() && self.in_final(number, self.config.final_exploitation)
    }

    /// Whether the evaluation with this 0-based number (observed, failed and pending points
    /// before it) is among the budget's last `last`, capped at a quarter of the evaluations after
    /// the initial design. Never without a budget.
    fn in_final(&self, number: usize, last: usize) -> bool {
        let Some(budget) = self.config.budget else {
            return false;
        };
        let cap = budget.saturating_sub(self.n_initial()) / 4;
        let last = last.min(cap);
        last > 0 && number + last >= budget
    }

    /// Whether the evaluation with this 0-based number is one of the budget's final ones chosen
    /// by the knowledge gradient (only once an observation carries an SEM).
    fn identifies(&self, number: usize) -> bool {
        self.has_sem() && self.in_final(number, self.config.knowledge_gradient_last)
    }

    /// The candidate with the largest knowledge gradient (mean over the model's members): the
    /// candidate pool of the expected improvement, then a shrinking random local search from
    /// the three best candidates (the envelope's expectation has kinks, so no gradient search).
    fn maximize_knowledge_gradient(
        &self,
        post: &Model,
        excluded: &[&[f64]],
        near: &[&[f64]],
        rng: &mut Rng,
    ) -> Option<Vec<f64>> {
        let space = &self.space;
        let n_real = self.observations.len().min(post.data().n());
        let kgs: Vec<KnowledgeGradient> = post
            .posts
            .iter()
            .map(|p| KnowledgeGradient::new(p, n_real))
            .collect();
        let score_many = |xs: &[Vec<f64>]| {
            let mut total = vec![0.0; xs.len()];
            for k in &kgs {
                for (t, v) in total.iter_mut().zip(k.values(xs)) {
                    *t += v / kgs.len() as f64;
                }
            }
            for (t, x) in total.iter_mut().zip(xs) {
                if is_excluded(x, excluded, near) {
                    *t = f64::NEG_INFINITY;
                }
            }
            total
        };
        let score = |x: &[f64]| score_many(std::slice::from_ref(&x.to_vec()))[0];
        // Perturbations around the points the model ranks highest (posterior mean over the
        // members, as `Model::mean`), the candidates the choice is between.
        let means: Vec<f64> = (0..n_real)
            .map(|i| kgs.iter().map(|k| k.means()[i]).sum::<f64>() / kgs.len() as f64)
            .collect();
        let mut leaders: Vec<usize> = (0..n_real).collect();
        leaders.sort_by(|&a, &b| means[b].total_cmp(&means[a]).then(a.cmp(&b)));
        let (pool, _) = self.candidate_pool(post, &leaders, rng);
        let mut scored: Vec<(f64, usize)> = score_many(&pool)
            .into_iter()
            .enumerate()
            .map(|(i, s)| (s, i))
            .filter(|(s, _)| *s > f64::NEG_INFINITY)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut best: Option<(Vec<f64>, f64)> = None;
        for &(s0, i) in scored.iter().take(3) {
            let (mut x, mut s) = (pool[i].clone(), s0);
            for step in 0..60 {
                let sigma = 0.05 * 0.5f64.powi(step / 12);
                let mut y = x.clone();
                for c in space.continuous_coords() {
                    y[c] += sigma * rng.normal();
                }
                space.snap(&mut y);
                let sy = score(&y);
                if sy > s {
                    (x, s) = (y, sy);
                }
            }
            if best.as_ref().is_none_or(|(_, b)| s > *b) {
                best = Some((x, s));
            }
        }
        best.map(|(x, _)| x)
    }

    fn fantasy_value(&self, post: &Model, x: &[f64]) -> f64 {
        match self.config.batch_strategy {
            BatchStrategy::KrigingBeliever => post.mean(x),
            BatchStrategy::ConstantLiar => {
                post.data().y.iter().copied().fold(f64::INFINITY, f64::min)
            }
        }
    }

    /// Sobol design points not yet known, continuing the sequence at the number of known points
    /// so that the design is a function of the history, not of the call pattern.
    fn fill_sobol(&self, k: usize, known: &[Vec<f64>], chosen: &mut Vec<Vec<f64>>) {
        let seed = (self.config.seed ^ (self.config.seed >> 32)) as u32;
        let p = self.space.len();
        let mut index = known.len();
        let target = chosen.len() + k;
        let mut misses = 0;
        while chosen.len() < target {
            let x = self.space.from_param_unit(&sobol_point(index, p, seed));
            index += 1;
            if is_new(&x, known, chosen) {
                chosen.push(x);
                misses = 0;
            } else {
                misses += 1;
                // In a nearly exhausted finite space Sobol hits known points over and over:
                // enumerate the space instead.
                if misses > 256 {
                    self.fill_by_enumeration(target, known, chosen);
                    return;
                }
            }
        }
    }

    fn fill_by_enumeration(&self, target: usize, known: &[Vec<f64>], chosen: &mut Vec<Vec<f64>>) {
        let Some(size) = self.space.finite_size() else {
            // Continuous parameters: 256 consecutive Sobol misses cannot really happen; stop
            // rather than loop.
            return;
        };
        if size > 1e6 {
            return;
        }
        for x in self.space.enumerate() {
            if chosen.len() >= target {
                return;
            }
            if is_new(&x, known, chosen) {
                chosen.push(x);
            }
        }
    }

    /// Fits the GP and conditions it on the pending points. Returns the posterior, the
    /// incumbent (standardised) and the output transform. `None` if the model cannot be built
    /// (fallback to Sobol).
    fn build_model(
        &mut self,
        pending_x: &[Vec<f64>],
        rng: &mut Rng,
    ) -> Option<(Model, f64, OutputTransform)> {
        let d = self.space.encoded_dim();
        let n = self.observations.len();
        // Standardise in units of the largest magnitude first, so values near f64::MAX neither
        // overflow the sum nor the squares.
        let scale = self
            .observations
            .iter()
            .map(|o| o.internal.abs())
            .fold(0.0, f64::max);
        let scale = if scale > 0.0 { scale } else { 1.0 };
        let mean_s = self
            .observations
            .iter()
            .map(|o| o.internal / scale)
            .sum::<f64>()
            / n as f64;
        let var_s = self
            .observations
            .iter()
            .map(|o| (o.internal / scale - mean_s).powi(2))
            .sum::<f64>()
            / n as f64;
        if var_s.sqrt() <= 1e-12 {
            // All values equal, up to round-off: the model has nothing to exploit, so the Sobol
            // design continues (space filling) until the values differ.
            return None;
        }
        let std_s = var_s.sqrt();
        let ys: Vec<f64> = self
            .observations
            .iter()
            .map(|o| (o.internal / scale - mean_s) / std_s)
            .collect();
        let tail = if self.config.compress_bad_tail {
            BadTail::fit(&ys)
        } else {
            None
        };
        let transform = OutputTransform {
            scale,
            mean_s,
            std_s,
            tail,
        };
        let ys: Vec<f64> = self
            .observations
            .iter()
            .map(|o| transform.forward(o.internal))
            .collect();
        // Known noise on the model's scale: the SEM goes through the same affine map as the
        // values, times the local slope of the tail compression (a first-order propagation).
        let noise: Vec<f64> = if self.has_sem() {
            self.observations
                .iter()
                .map(|o| (o.sem.unwrap_or(0.0) * transform.slope(o.internal)).powi(2))
                .collect()
        } else {
            Vec::new()
        };
        let model_idx = subset(&ys, self.config.max_model_points, rng);
        let fit_idx = if model_idx.len() > self.config.max_fit_points {
            let sub_y: Vec<f64> = model_idx.iter().map(|&i| ys[i]).collect();
            subset(&sub_y, self.config.max_fit_points, rng)
                .into_iter()
                .map(|j| model_idx[j])
                .collect()
        } else {
            model_idx.clone()
        };
        let make = |idx: &[usize]| Data {
            x: idx
                .iter()
                .flat_map(|&i| self.observations[i].x.iter().copied())
                .collect(),
            y: idx.iter().map(|&i| ys[i]).collect(),
            d,
            noise: if noise.is_empty() {
                Vec::new()
            } else {
                idx.iter().map(|&i| noise[i]).collect()
            },
        };
        let n_modelled = model_idx.len();
        let theta = match &self.last_theta {
            Some(theta)
                if n_modelled >= self.config.always_refit_below
                    && (n_modelled as f64)
                        < self.n_at_last_fit as f64 * self.config.refit_growth =>
            {
                theta.clone()
            }
            _ => {
                let theta = gp::fit(
                    &make(&fit_idx),
                    self.config.prior,
                    self.last_theta.as_deref(),
                    self.config.n_fit_restarts,
                    rng,
                );
                self.n_at_last_fit = n_modelled;
                theta
            }
        };
        self.last_theta = Some(theta.clone());
        let mut thetas = Vec::new();
        if self.config.n_hyper_samples > 0 && n_modelled < self.config.sample_hyper_below {
            thetas.extend(gp::sample_hyperparameters(
                &make(&fit_idx),
                self.config.prior,
                &theta,
                self.config.n_hyper_samples,
                self.config.hyper_burn,
                self.config.hyper_thin,
                rng,
            ));
        }
        if thetas.is_empty() {
            thetas.push(theta);
        }
        let posts = thetas
            .iter()
            .map(|t| {
                if self.config.gls_mean {
                    Posterior::new_gls(make(&model_idx), t)
                } else {
                    Posterior::new(make(&model_idx), t)
                }
            })
            .collect::<Option<Vec<_>>>()?;
        // With known noise the acquisition is noisy EI; if its fantasy models cannot be
        // factorised, plain EI against the best posterior mean below still works.
        let noisy_draws = if noise.is_empty() {
            0
        } else {
            self.config.noisy_ei_draws
        };
        let mut post = match Model::new(posts.clone(), noisy_draws) {
            Some(m) => m,
            None => Model::new(posts, 0)?,
        };
        // The incumbent EI improves on: the best observed value when observations are exact;
        // with known noise, the best posterior mean at an observed point (a noisy maximum would
        // set the bar at a lucky draw, and EI would stop exploring). The noisy EI ignores it (each
        // of its draws has its own incumbent); it is the fallback's, and the batch fantasies'.
        let mut best = if noise.is_empty() {
            ys.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        } else {
            self.observations
                .iter()
                .map(|o| post.mean(&o.x))
                .fold(f64::NEG_INFINITY, f64::max)
        };
        for x in pending_x {
            let f = self.fantasy_value(&post, x);
            best = best.max(f);
            post = post.with_extra(x, f)?;
        }
        Some((post, best, transform))
    }

    /// Candidate pool of an acquisition search: scrambled Sobol points (or the whole space when
    /// it is small and finite), then perturbations of the first five `leaders` (rows of the model
    /// data); also returns how many of the first are Sobol points.
    fn candidate_pool(
        &self,
        post: &Model,
        leaders: &[usize],
        rng: &mut Rng,
    ) -> (Vec<Vec<f64>>, usize) {
        let space = &self.space;
        let mut pool: Vec<Vec<f64>> = match space.finite_size() {
            Some(s) if s <= self.config.n_candidates as f64 => space.enumerate(),
            _ => {
                let seed = rng.next_u32();
                (0..self.config.n_candidates)
                    .map(|i| space.from_param_unit(&sobol_point(i, space.len(), seed)))
                    .collect()
            }
        };
        let n_sobol = pool.len();
        let data = post.data();
        for &i in leaders.iter().take(5) {
            for j in 0..20 {
                let sigma = [0.1, 0.03, 0.01, 0.003][j % 4];
                let mut x = data.row(i).to_vec();
                for c in space.continuous_coords() {
                    x[c] += sigma * rng.normal();
                }
                for moves in space.discrete_moves(&x) {
                    if !moves.is_empty() && rng.uniform() < 0.2 {
                        let (off, enc) =
                            &moves[(rng.uniform() * moves.len() as f64) as usize % moves.len()];
                        x[*off..*off + enc.len()].copy_from_slice(enc);
                    }
                }
                space.snap(&mut x);
                pool.push(x);
            }
        }
        (pool, n_sobol)
    }

    /// The acquisition maximiser. Returns a snapped encoded point not in `excluded`, or `None`
    /// when no such point can be found (only in an exhausted finite space).
    fn maximize_acquisition(
        &self,
        post: &Model,
        best: f64,
        excluded: &[&[f64]],
        near: &[&[f64]],
        rng: &mut Rng,
    ) -> Option<Vec<f64>> {
        let is_excluded = |x: &[f64]| is_excluded(x, excluded, near);
        let data = post.data();
        // Real observations come first in the model data; fantasies (pending points) follow.
        let n_real = self.observations.len().min(data.n());
        let mut order: Vec<usize> = (0..n_real).collect();
        order.sort_by(|&a, &b| data.y[b].total_cmp(&data.y[a]).then(a.cmp(&b)));
        let (pool, n_sobol) = self.candidate_pool(post, &order, rng);
        let scores: Vec<f64> = post
            .log_acq_many(&pool, best)
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                if s.is_nan() || is_excluded(&pool[i]) {
                    f64::NEG_INFINITY
                } else {
                    s
                }
            })
            .collect();
        let argmax = |range: std::ops::Range<usize>| {
            range
                .filter(|&i| scores[i] > f64::NEG_INFINITY)
                .fold(None, |b: Option<usize>, i| match b {
                    Some(b) if scores[b] >= scores[i] => Some(b),
                    _ => Some(i),
                })
        };

        // Local-search starts, as in Optuna's optimize_acqf_mixed: the best candidate, the best
        // observed point (exploitation), the best local perturbation, and the rest drawn by
        // roulette with weights exp(score − max) among the Sobol candidates. The roulette spreads
        // the starts over several acquisition modes instead of crowding one basin.
        let mut start_idx: Vec<usize> = Vec::new();
        let mut starts: Vec<Vec<f64>> = Vec::new();
        if let Some(i) = argmax(0..n_sobol) {
            start_idx.push(i);
            starts.push(pool[i].clone());
        }
        if let Some(&i) = order.first() {
            starts.push(data.row(i).to_vec());
        }
        if let Some(i) = argmax(n_sobol..pool.len()) {
            starts.push(pool[i].clone());
        }
        if let Some(top) = start_idx.first().map(|&i| scores[i]) {
            let mut weights: Vec<f64> = (0..n_sobol)
                .map(|i| {
                    if start_idx.contains(&i) {
                        0.0
                    } else {
                        (scores[i] - top).exp()
                    }
                })
                .collect();
            while starts.len() < self.config.n_local_searches {
                let total: f64 = weights.iter().sum();
                if total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                    break;
                }
                let mut r = rng.uniform() * total;
                let mut pick = None;
                for (i, w) in weights.iter().enumerate() {
                    if *w > 0.0 {
                        pick = Some(i);
                        if r < *w {
                            break;
                        }
                        r -= w;
                    }
                }
                let Some(i) = pick else { break };
                weights[i] = 0.0;
                starts.push(pool[i].clone());
            }
        }
        let mut best_point: Option<(Vec<f64>, f64)> =
            argmax(0..pool.len()).map(|i| (pool[i].clone(), scores[i]));
        for start in starts {
            let (x, s) = self.local_search(post, best, start);
            if !is_excluded(&x) && best_point.as_ref().is_none_or(|(_, b)| s > *b) {
                best_point = Some((x, s));
            }
        }
        best_point.map(|(x, _)| x)
    }

    /// L-BFGS over the float coordinates (through `x = sigmoid(u)`, so the box needs no bounds
    /// handling) with the discrete coordinates fixed, then one sweep of discrete moves; two rounds.
    fn local_search(&self, post: &Model, best: f64, mut x: Vec<f64>) -> (Vec<f64>, f64) {
        let space = &self.space;
        let cont = space.continuous_coords();
        let eval = |x: &[f64]| post.log_acq(x, best);
        let mut val = eval(&x);
        for _round in 0..2 {
            let before = val;
            if !cont.is_empty() {
                let base = x.clone();
                let f = |u: &[f64]| {
                    let mut xx = base.clone();
                    for (k, &c) in cont.iter().enumerate() {
                        xx[c] = sigmoid(u[k]);
                    }
                    let (a, ga) = post.log_acq_with_grad(&xx, best);
                    let g = cont
                        .iter()
                        .map(|&c| -ga[c] * xx[c] * (1.0 - xx[c]))
                        .collect();
                    Some((-a, g))
                };
                let u0: Vec<f64> = cont.iter().map(|&c| logit(x[c])).collect();
                if let Some((u, neg)) = minimize::minimize(&f, u0, 100) {
                    if -neg > val {
                        for (k, &c) in cont.iter().enumerate() {
                            x[c] = sigmoid(u[k]);
                        }
                        val = -neg;
                    }
                }
            }
            for moves in space.discrete_moves(&x) {
                let mut best_move: Option<(Vec<f64>, f64)> = None;
                for (off, enc) in &moves {
                    let mut y = x.clone();
                    y[*off..*off + enc.len()].copy_from_slice(enc);
                    let s = eval(&y);
                    if s > val && best_move.as_ref().is_none_or(|(_, b)| s > *b) {
                        best_move = Some((y, s));
                    }
                }
                if let Some((y, s)) = best_move {
                    x = y;
                    val = s;
                }
            }
            if val <= before + 1e-12 {
                break;
            }
        }
        (x, val)
    }
}

/// Compresses the worse-than-median half of standardised outputs logarithmically,
/// `y ↦ q − ln(1 + (q − y))` below the median `q` (continuous, slope 1 at `q`, monotone), then
/// re-standardises. Objectives with a heavy bad tail (a diverged run, Rosenbrock's walls) would
/// otherwise dominate the standardisation and the length scales, flattening the good region the
/// acquisition cares about; the order of values, and so the incumbent, is unchanged.
#[derive(Clone, Copy, Debug)]
struct BadTail {
    q: f64,
    mean: f64,
    sd: f64,
}

impl BadTail {
    /// `None` when the compressed values have no spread (nothing to re-standardise by).
    fn fit(ys: &[f64]) -> Option<Self> {
        let mut sorted = ys.to_vec();
        sorted.sort_by(f64::total_cmp);
        let q = sorted[sorted.len() / 2];
        let warped: Vec<f64> = ys.iter().map(|&y| Self::warp(q, y)).collect();
        let n = warped.len() as f64;
        let mean = warped.iter().sum::<f64>() / n;
        let sd = (warped.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n).sqrt();
        (sd > 1e-12).then_some(Self { q, mean, sd })
    }

    fn warp(q: f64, y: f64) -> f64 {
        if y < q {
            q - (q - y).ln_1p()
        } else {
            y
        }
    }

    fn apply(&self, y: f64) -> f64 {
        (Self::warp(self.q, y) - self.mean) / self.sd
    }

    /// d apply / dy.
    fn slope(&self, y: f64) -> f64 {
        let w = if y < self.q {
            1.0 / (1.0 + (self.q - y))
        } else {
            1.0
        };
        w / self.sd
    }

    fn invert(&self, z: f64) -> f64 {
        let w = z * self.sd + self.mean;
        if w < self.q {
            // w = q − ln(1 + q − y)  ⇔  y = q + 1 − e^{q − w}
            self.q + 1.0 - (self.q - w).exp()
        } else {
            w
        }
    }
}

#[cfg(test)]
fn compress_bad_tail(ys: &[f64]) -> Vec<f64> {
    match BadTail::fit(ys) {
        Some(t) => ys.iter().map(|&y| t.apply(y)).collect(),
        None => ys.to_vec(),
    }
}

/// The map from internal objective values (larger is better) to the model's outputs:
/// standardisation (in units of the largest magnitude first, so values near f64::MAX neither
/// overflow the sum nor the squares), then the optional bad-tail compression.
#[derive(Clone, Copy, Debug)]
struct OutputTransform {
    scale: f64,
    mean_s: f64,
    std_s: f64,
    tail: Option<BadTail>,
}

impl OutputTransform {
    fn forward(&self, internal: f64) -> f64 {
        let z = (internal / self.scale - self.mean_s) / self.std_s;
        self.tail.map_or(z, |t| t.apply(z))
    }

    /// d forward / d internal: how a standard error on the internal scale maps to the model's.
    fn slope(&self, internal: f64) -> f64 {
        let z = (internal / self.scale - self.mean_s) / self.std_s;
        let dz = 1.0 / (self.scale * self.std_s);
        self.tail.map_or(dz, |t| t.slope(z) * dz)
    }

    fn inverse(&self, out: f64) -> f64 {
        let z = self.tail.map_or(out, |t| t.invert(out));
        (z * self.std_s + self.mean_s) * self.scale
    }
}

/// Half-width (unit cube, per coordinate) of the box around pending points in which no other
/// point of the same batch is proposed.
const BATCH_RADIUS: f64 = 1e-3;

/// Observed and failed points (`excluded`) exclude only themselves (refining right next to the
/// incumbent is legitimate); pending and batch points (`near`) exclude a small box around them,
/// because kriging believer alone can place the next point a hair's breadth away when the model
/// is confident, and two workers would then run the same configuration.
fn is_excluded(x: &[f64], excluded: &[&[f64]], near: &[&[f64]]) -> bool {
    excluded.iter().any(|e| same_point(e, x))
        || near
            .iter()
            .any(|e| e.iter().zip(x).all(|(a, b)| (a - b).abs() < BATCH_RADIUS))
}

fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// Inverse sigmoid, with the argument kept off 0 and 1 so Sobol points on the boundary map to
/// finite starts.
fn logit(x: f64) -> f64 {
    let x = x.clamp(1e-6, 1.0 - 1e-6);
    (x / (1.0 - x)).ln()
}

fn is_new(x: &[f64], known: &[Vec<f64>], chosen: &[Vec<f64>]) -> bool {
    !known.iter().chain(chosen).any(|k| same_point(k, x))
}

/// Indices of at most `max` values: the best half by value, then a seeded random sample of the
/// rest, returned in ascending index order.
fn subset(y: &[f64], max: usize, rng: &mut Rng) -> Vec<usize> {
    let n = y.len();
    if n <= max {
        return (0..n).collect();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| y[b].total_cmp(&y[a]).then(a.cmp(&b)));
    let top = max / 2;
    let mut rest: Vec<usize> = order[top..].to_vec();
    // Partial Fisher–Yates.
    for i in 0..(max - top) {
        let j = i + (rng.uniform() * (rest.len() - i) as f64) as usize;
        let last = rest.len() - 1;
        rest.swap(i, j.min(last));
    }
    let mut out: Vec<usize> = order[..top]
        .iter()
        .chain(&rest[..max - top])
        .copied()
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tail_compression_keeps_order_and_tames_outliers() {
        let ys = vec![0.5, 0.4, 0.3, 0.2, -0.1, -0.2, -50.0, 0.45];
        let w = compress_bad_tail(&ys);
        for i in 0..ys.len() {
            for j in 0..ys.len() {
                assert_eq!(ys[i] < ys[j], w[i] < w[j], "order of {i}, {j} changed");
            }
        }
        // Re-standardised, and the outlier no longer dominates the spread.
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        assert!(mean.abs() < 1e-12);
        let spread_good = w[0] - w[3];
        let raw_ratio = (ys[0] - ys[3]) / (ys[0] - ys[6]);
        assert!(spread_good / (w[0] - w[6]) > 5.0 * raw_ratio);
    }

    #[test]
    fn log_mean_exp_is_stable_and_exact() {
        assert_eq!(log_mean_exp(&[-3.5]), -3.5);
        let v = log_mean_exp(&[-1000.0, -1000.0 + 2f64.ln()]);
        assert!((v - (-1000.0 + 1.5f64.ln())).abs() < 1e-12, "{v}");
        assert_eq!(
            log_mean_exp(&[f64::NEG_INFINITY, f64::NEG_INFINITY]),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn ensemble_acquisition_averages_ei_and_its_gradient_matches_finite_differences() {
        let mut rng = Rng::new(11);
        let d = 2;
        let x: Vec<f64> = (0..8 * d).map(|_| rng.uniform()).collect();
        let y: Vec<f64> = (0..8)
            .map(|i| (4.0 * x[i * d]).sin() - x[i * d + 1])
            .collect();
        let data = Data {
            x,
            y,
            d,
            noise: Vec::new(),
        };
        let thetas = [
            vec![-1.0, -0.5, 0.0, -6.0],
            vec![-0.2, -1.5, 0.3, -9.0],
            vec![-2.0, 0.4, -0.4, -4.0],
        ];
        let posts: Vec<Posterior> = thetas
            .iter()
            .map(|t| Posterior::new_gls(data.clone(), t).unwrap())
            .collect();
        let model = Model::new(posts.clone(), 0).unwrap();
        let best = data.y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for p in [[0.2, 0.9], [0.55, 0.1], [0.97, 0.5]] {
            // ln of the arithmetic mean of the members' EI.
            let ei: f64 = posts
                .iter()
                .map(|q| {
                    let (m, v) = q.predict(&p);
                    acquisition::log_ei(m, v, best).0.exp()
                })
                .sum::<f64>()
                / 3.0;
            let (a, g) = model.log_acq_with_grad(&p, best);
            assert!((a - ei.ln()).abs() < 1e-10, "{a} vs {}", ei.ln());
            assert!((model.log_acq(&p, best) - a).abs() < 1e-12);
            assert!((model.log_acq_many(&[p.to_vec()], best)[0] - a).abs() < 1e-9);
            for j in 0..d {
                let h = 1e-6;
                let mut xp = p.to_vec();
                xp[j] += h;
                let mut xm = p.to_vec();
                xm[j] -= h;
                let fd = (model.log_acq(&xp, best) - model.log_acq(&xm, best)) / (2.0 * h);
                assert!(
                    (fd - g[j]).abs() < 1e-5 * g[j].abs().max(1.0),
                    "{fd} vs {}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn subset_keeps_the_best_half_and_is_seeded() {
        let y: Vec<f64> = (0..50).map(|i| ((i * 37) % 50) as f64).collect();
        let a = subset(&y, 10, &mut Rng::new(1));
        assert_eq!(a.len(), 10);
        assert_eq!(a, subset(&y, 10, &mut Rng::new(1)));
        for best in 45..50 {
            let idx = y.iter().position(|&v| v == best as f64).unwrap();
            assert!(a.contains(&idx), "best value {best} missing");
        }
        assert_eq!(subset(&y, 100, &mut Rng::new(1)).len(), 50);
    }
}
