//! The study's sampler: the GP optimiser (`crate::optimizer`) seen through the config's search space
//! (`crate::search_space`). It translates between the config's parameter values (JSON, what trials
//! and `study.db` hold) and the optimiser's points, and rebuilds the optimiser's knowledge from the
//! study store on resume (the store is the source of truth; the model is never persisted).

use crate::optimizer::{self, Optimizer, OptimizerConfig, ParamValue, Point};
use crate::search_space::{Assignment, ParamKind, SearchSpace};
use anyhow::{anyhow, bail, Result};

pub struct Sampler {
    space: SearchSpace,
    optimizer: Optimizer,
}

impl Sampler {
    pub fn new(space: &SearchSpace, seed: u64) -> Result<Sampler> {
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
                    ..Default::default()
                },
            ),
        })
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

    /// Tells the optimiser a finished trial's value (NaN or missing: failed, never proposed again).
    pub fn observe(
        &mut self,
        assignment: &serde_json::Map<String, serde_json::Value>,
        value: Option<f64>,
    ) {
        let point = match self.to_point(assignment) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("note: a past trial is not used by the optimiser: {e}");
                return;
            }
        };
        let outcome = match value {
            Some(v) if v.is_finite() => self.optimizer.observe(&point, v, None),
            _ => self.optimizer.mark_failed(&point),
        };
        if let Err(e) = outcome {
            eprintln!("note: the optimiser could not use a past trial: {e}");
        }
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
