//! The study's sampler: the GP optimiser (`crate::optimizer`) seen through the config's search space
//! (`crate::search_space`). It translates between the config's parameter values (JSON, what trials
//! and `study.db` hold) and the optimiser's points, and rebuilds the optimiser's knowledge from the
//! study store on resume (the store is the source of truth; the model is never persisted).

use crate::optimizer::{self, Optimizer, OptimizerConfig, ParamValue, Point, Recommendation};
use crate::search_space::{Assignment, ParamKind, SearchSpace};
use anyhow::{anyhow, bail, Result};

pub struct Sampler {
    space: SearchSpace,
    optimizer: Optimizer,
}

impl Sampler {
    /// The optimiser's default initial design (`max(5, number of parameters)` Sobol points).
    pub fn new(space: &SearchSpace, seed: u64) -> Result<Sampler> {
        Self::with_plan(space, seed, None, None)
    }

    /// `initial_trials`: successful trials from the Sobol design before the model takes over
    /// (`--initial_trials`); `None` for the default. `trials`: the study's trial count, so that
    /// its final trials exploit the model (`OptimizerConfig::final_exploitation`) or, once trials
    /// report SEMs, maximise the knowledge gradient (`OptimizerConfig::knowledge_gradient_last`);
    /// `None` when unknown.
    pub fn with_plan(
        space: &SearchSpace,
        seed: u64,
        initial_trials: Option<usize>,
        trials: Option<usize>,
    ) -> Result<Sampler> {
        let params = space
            .parameters
            .iter()
            .map(|p| match &p.kind {
                ParamKind::Float {
                    low,
                    high,
                    log: false,
                } => optimizer::Dimension::float(&p.name, *low, *high),
                ParamKind::Float {
                    low,
                    high,
                    log: true,
                } => optimizer::Dimension::log_float(&p.name, *low, *high),
                ParamKind::Int {
                    low,
                    high,
                    log: false,
                } => optimizer::Dimension::int(&p.name, *low, *high),
                ParamKind::Int {
                    low,
                    high,
                    log: true,
                } => optimizer::Dimension::log_int(&p.name, *low, *high),
                ParamKind::Choice(values) => optimizer::Dimension::choice(&p.name, values.len()),
            })
            .collect();
        let opt_space = optimizer::Domain::new(params)
            .map_err(|e| anyhow!("the search space cannot be optimised: {e}"))?;
        Ok(Sampler {
            space: space.clone(),
            optimizer: Optimizer::new(
                opt_space,
                OptimizerConfig {
                    seed,
                    n_initial: initial_trials,
                    budget: trials,
                    ..Default::default()
                },
            ),
        })
    }

    /// The optimiser's domain (what the reports' surrogate model is fitted on).
    pub fn domain(&self) -> &optimizer::Domain {
        self.optimizer.space()
    }

    /// The config values of an optimiser point.
    pub fn to_assignment(&self, point: &[ParamValue]) -> Assignment {
        self.space
            .parameters
            .iter()
            .zip(point)
            .map(|(p, v)| {
                let value = match (v, &p.kind) {
                    (ParamValue::Float(x), _) => serde_json::json!(x),
                    (ParamValue::Int(i), _) => serde_json::json!(i),
                    (ParamValue::Choice(i), ParamKind::Choice(values)) => {
                        values.get(*i).cloned().unwrap_or(serde_json::Value::Null)
                    }
                    (ParamValue::Choice(i), _) => serde_json::json!(i),
                };
                (p.name.clone(), value)
            })
            .collect()
    }

    /// The optimiser point of stored config values; an error if a value no longer fits the space
    /// (e.g. bounds were narrowed on resume).
    pub fn to_point(
        &self,
        assignment: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Point> {
        self.space
            .parameters
            .iter()
            .map(|p| {
                let v = assignment
                    .get(&p.name)
                    .ok_or_else(|| anyhow!("no value for parameter `{}`", p.name))?;
                Ok(match &p.kind {
                    ParamKind::Float { low, high, .. } => {
                        let x = v
                            .as_f64()
                            .ok_or_else(|| anyhow!("`{}` is not a number", p.name))?;
                        if x < *low || x > *high {
                            bail!("`{}` = {x} is outside [{low}, {high}]", p.name);
                        }
                        ParamValue::Float(x)
                    }
                    ParamKind::Int { low, high, .. } => {
                        let x = v
                            .as_i64()
                            .ok_or_else(|| anyhow!("`{}` is not an integer", p.name))?;
                        if x < *low || x > *high {
                            bail!("`{}` = {x} is outside [{low}, {high}]", p.name);
                        }
                        ParamValue::Int(x)
                    }
                    ParamKind::Choice(values) => {
                        ParamValue::Choice(values.iter().position(|c| c == v).ok_or_else(|| {
                            anyhow!("`{}` = {v} is not one of the choices", p.name)
                        })?)
                    }
                })
            })
            .collect()
    }

    /// Tells the optimiser a finished trial's value and its standard error (value NaN or missing:
    /// failed, never proposed again). A trial the optimiser cannot use (parameters outside the
    /// space, an invalid SEM) is left out with a note: the store stays the record.
    pub fn observe(
        &mut self,
        assignment: &serde_json::Map<String, serde_json::Value>,
        value: Option<f64>,
        sem: Option<f64>,
    ) {
        if let Err(e) = self.observe_checked(assignment, value, sem) {
            eprintln!("note: the optimiser could not use a past trial: {e}");
        }
    }

    /// As [`Sampler::observe`], but an invalid SEM is an error; `Ok(false)` when the parameters no
    /// longer fit the space (the trial is then left out), `Ok(true)` when it was recorded as an
    /// observation (a finite value), `Ok(false)` as well when it was recorded as failed.
    pub fn observe_checked(
        &mut self,
        assignment: &serde_json::Map<String, serde_json::Value>,
        value: Option<f64>,
        sem: Option<f64>,
    ) -> Result<bool> {
        let point = match self.to_point(assignment) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("note: a past trial is not used by the optimiser: {e}");
                return Ok(false);
            }
        };
        match value {
            Some(v) if v.is_finite() => {
                self.optimizer
                    .observe(&point, v, sem)
                    .map_err(|e| anyhow!("{e}"))?;
                Ok(true)
            }
            _ => {
                self.optimizer
                    .mark_failed(&point)
                    .map_err(|e| anyhow!("{e}"))?;
                Ok(false)
            }
        }
    }

    /// The optimiser's pick among the observed trials (indices in the order of the successful
    /// [`Sampler::observe_checked`] calls), see [`Optimizer::recommend`].
    pub fn recommend(&self) -> Option<Recommendation> {
        self.optimizer.recommend()
    }

    /// `k` new, distinct parameter sets, accounting for the trials still running.
    pub fn suggest(
        &mut self,
        k: usize,
        running: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<Vec<Assignment>> {
        let pending: Vec<Point> = running
            .iter()
            .filter_map(|a| self.to_point(a).ok())
            .collect();
        let points = self
            .optimizer
            .suggest(k, &pending)
            .map_err(|e| anyhow!("the optimiser could not suggest parameters: {e}"))?;
        Ok(points.iter().map(|p| self.to_assignment(p)).collect())
    }
}

/// An assignment as the JSON object stored in `study.db` and sent in `trial.parameters`.
pub fn to_json_map(a: &Assignment) -> serde_json::Map<String, serde_json::Value> {
    a.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search_space::Parameter;

    fn space() -> SearchSpace {
        SearchSpace {
            parameters: vec![
                Parameter {
                    name: "a/lr".into(),
                    kind: ParamKind::Float {
                        low: 1e-5,
                        high: 1e-1,
                        log: true,
                    },
                },
                Parameter {
                    name: "b".into(),
                    kind: ParamKind::Int {
                        low: 1,
                        high: 4,
                        log: false,
                    },
                },
                Parameter {
                    name: "c".into(),
                    kind: ParamKind::Choice(vec![
                        serde_json::json!("x"),
                        serde_json::json!({"k": 1}),
                    ]),
                },
            ],
        }
    }

    #[test]
    fn log_int_parameters_reach_the_optimiser_on_a_log_scale() {
        let space = SearchSpace {
            parameters: vec![Parameter {
                name: "batch_size".into(),
                kind: ParamKind::Int {
                    low: 16,
                    high: 512,
                    log: true,
                },
            }],
        };
        let mut s = Sampler::with_plan(&space, 1, Some(8), None).unwrap();
        let batch: Vec<i64> = s
            .suggest(8, &[])
            .unwrap()
            .iter()
            .map(|a| a["batch_size"].as_i64().unwrap())
            .collect();
        // A log-scale design puts about half its points below the geometric middle (~90); a
        // linear one would put one in six there.
        let small = batch.iter().filter(|&&b| b < 90).count();
        assert!((3..=5).contains(&small), "{batch:?}");
        assert!(batch.iter().all(|b| (16..=512).contains(b)));
    }

    #[test]
    fn assignments_round_trip_and_suggestions_are_valid() {
        let mut s = Sampler::new(&space(), 3).unwrap();
        let batch = s.suggest(3, &[]).unwrap();
        assert_eq!(batch.len(), 3);
        for a in &batch {
            let map = to_json_map(a);
            let point = s.to_point(&map).unwrap();
            assert_eq!(to_json_map(&s.to_assignment(&point)), map);
            let lr = map["a/lr"].as_f64().unwrap();
            assert!((1e-5..=1e-1).contains(&lr));
            let c = &map["c"];
            assert!(*c == serde_json::json!("x") || *c == serde_json::json!({"k": 1}));
        }
        let mut outside = to_json_map(&batch[0]);
        outside.insert("b".into(), serde_json::json!(9));
        assert!(s
            .to_point(&outside)
            .unwrap_err()
            .to_string()
            .contains("outside"));
        // Same seed, same suggestions.
        let mut again = Sampler::new(&space(), 3).unwrap();
        assert_eq!(again.suggest(3, &[]).unwrap(), batch);
    }
}
