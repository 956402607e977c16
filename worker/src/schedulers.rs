//! Learning-rate schedulers (tch has none): StepLR, MultiStepLR, CosineAnnealingLR and
//! ReduceLROnPlateau with PyTorch's kwargs, defaults and formulas. The step counter and plateau
//! bookkeeping are plain numbers so checkpoints can save them.

use crate::errors::config_error;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;

pub const SCHEDULERS: [&str; 4] = [
    "StepLR",
    "MultiStepLR",
    "CosineAnnealingLR",
    "ReduceLROnPlateau",
];

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Step {
        step_size: usize,
        gamma: f64,
    },
    MultiStep {
        milestones: Vec<usize>,
        gamma: f64,
    },
    Cosine {
        t_max: usize,
        eta_min: f64,
    },
    Plateau {
        maximize: bool,
        factor: f64,
        patience: usize,
        threshold: f64,
        relative: bool,
        cooldown: usize,
        min_lr: f64,
        eps: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scheduler {
    kind: Kind,
    base_lr: f64,
    /// Steps taken (`last_epoch` in PyTorch).
    steps: usize,
    /// ReduceLROnPlateau: current lr, best metric, bad steps, cooldown left.
    lr: f64,
    best: f64,
    num_bad: usize,
    cooldown_left: usize,
}

impl Scheduler {
    pub fn build(path: &str, value: &serde_json::Value, base_lr: f64) -> Result<Scheduler> {
        let mut spec = Spec::parse(path, value)?;
        let class = spec.class.clone();
        let bad = |what: String| config_error(format!("`{path}/{class}`: {what}"));
        let kind = match class.as_str() {
            "StepLR" => {
                let step_size = spec.usize("step_size", 0)?;
                if step_size == 0 {
                    return Err(bad("step_size must be given as a positive integer".into()));
                }
                Kind::Step {
                    step_size,
                    gamma: spec.f64("gamma", 0.1)?,
                }
            }
            "MultiStepLR" => {
                let milestones = spec.usize_list("milestones", &[])?;
                if milestones.is_empty() {
                    return Err(bad("milestones must be a non-empty list of steps".into()));
                }
                Kind::MultiStep {
                    milestones,
                    gamma: spec.f64("gamma", 0.1)?,
                }
            }
            "CosineAnnealingLR" => {
                let t_max = spec.usize("T_max", 0)?;
                if t_max == 0 {
                    return Err(bad("T_max must be given as a positive integer".into()));
                }
                Kind::Cosine {
                    t_max,
                    eta_min: spec.f64("eta_min", 0.0)?,
                }
            }
            "ReduceLROnPlateau" => {
                let mode = spec.string("mode", "min")?;
                let threshold_mode = spec.string("threshold_mode", "rel")?;
                let factor = spec.f64("factor", 0.1)?;
                if !(0.0..1.0).contains(&factor) {
                    return Err(bad(format!("factor must be in [0, 1), got {factor}")));
                }
                Kind::Plateau {
                    maximize: match mode.as_str() {
                        "min" => false,
                        "max" => true,
                        m => return Err(bad(format!("mode must be min or max, got `{m}`"))),
                    },
                    factor,
                    patience: spec.usize("patience", 10)?,
                    threshold: spec.f64("threshold", 1e-4)?,
                    relative: match threshold_mode.as_str() {
                        "rel" => true,
                        "abs" => false,
                        m => {
                            return Err(bad(format!(
                                "threshold_mode must be rel or abs, got `{m}`"
                            )))
                        }
                    },
                    cooldown: spec.usize("cooldown", 0)?,
                    min_lr: spec.f64("min_lr", 0.0)?,
                    eps: spec.f64("eps", 1e-8)?,
                }
            }
            other => return Err(unknown_class(path, other, &SCHEDULERS)),
        };
        spec.finish()?;
        let best = match kind {
            Kind::Plateau { maximize: true, .. } => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        };
        Ok(Scheduler {
            kind,
            base_lr,
            steps: 0,
            lr: base_lr,
            best,
            num_bad: 0,
            cooldown_left: 0,
        })
    }

    pub fn is_plateau(&self) -> bool {
        matches!(self.kind, Kind::Plateau { .. })
    }

    /// The optimizer's current lr, which a plateau scheduler reduces from.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One scheduler step; returns the new learning rate.
    pub fn step(&mut self, metric: Option<f64>) -> f64 {
        self.steps += 1;
        let t = self.steps;
        match &self.kind {
            Kind::Step { step_size, gamma } => self.base_lr * gamma.powi((t / step_size) as i32),
            Kind::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= t).count();
                self.base_lr * gamma.powi(passed as i32)
            }
            Kind::Cosine { t_max, eta_min } => {
                let cos = (std::f64::consts::PI * t as f64 / *t_max as f64).cos();
                eta_min + (self.base_lr - eta_min) * (1.0 + cos) / 2.0
            }
            Kind::Plateau {
                maximize,
                factor,
                patience,
                threshold,
                relative,
                cooldown,
                min_lr,
                eps,
            } => {
                let Some(current) = metric.filter(|m| m.is_finite()) else {
                    return self.lr;
                };
                let better = match (maximize, relative) {
                    (false, true) => current < self.best * (1.0 - threshold),
                    (false, false) => current < self.best - threshold,
                    (true, true) => current > self.best * (threshold + 1.0),
                    (true, false) => current > self.best + threshold,
                };
                if better {
                    self.best = current;
                    self.num_bad = 0;
                } else {
                    self.num_bad += 1;
                }
                if self.cooldown_left > 0 {
                    self.cooldown_left -= 1;
                    self.num_bad = 0;
                }
                if self.num_bad > *patience {
                    let new_lr = (self.lr * factor).max(*min_lr);
                    if self.lr - new_lr > *eps {
                        self.lr = new_lr;
                    }
                    self.cooldown_left = *cooldown;
                    self.num_bad = 0;
                }
                self.lr
            }
        }
    }

    pub fn state(&self) -> Vec<f64> {
        vec![
            self.steps as f64,
            self.lr,
            self.best,
            self.num_bad as f64,
            self.cooldown_left as f64,
        ]
    }

    pub fn load_state(&mut self, v: &[f64]) {
        if let [steps, lr, best, bad, cooldown] = v {
            self.steps = *steps as usize;
            self.lr = *lr;
            self.best = *best;
            self.num_bad = *bad as usize;
            self.cooldown_left = *cooldown as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lrs(spec: serde_json::Value, n: usize) -> Vec<f64> {
        let mut s = Scheduler::build("s", &spec, 1.0).unwrap();
        (0..n).map(|_| s.step(None)).collect()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} != {b:?}");
        }
    }

    #[test]
    fn pytorch_schedules() {
        // Values printed by torch.optim.lr_scheduler with lr=1.0, after each scheduler.step().
        close(
            &lrs(json!({"StepLR": {"step_size": 2, "gamma": 0.5}}), 5),
            &[1.0, 0.5, 0.5, 0.25, 0.25],
        );
        close(
            &lrs(json!({"MultiStepLR": {"milestones": [1, 3]}}), 4),
            &[0.1, 0.1, 0.01, 0.01],
        );
        close(
            &lrs(
                json!({"CosineAnnealingLR": {"T_max": 4, "eta_min": 0.2}}),
                4,
            ),
            &[0.8828427124746191, 0.6, 0.3171572875253809, 0.2],
        );
    }

    #[test]
    fn plateau_reduces_after_patience() {
        let mut s = Scheduler::build(
            "s",
            &json!({"ReduceLROnPlateau": {"mode": "max", "patience": 1, "factor": 0.5}}),
            1.0,
        )
        .unwrap();
        let got: Vec<f64> = [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7]
            .iter()
            .map(|&m| s.step(Some(m)))
            .collect();
        close(&got, &[1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
        let saved = s.state();
        let mut t = Scheduler::build(
            "s",
            &json!({"ReduceLROnPlateau": {"mode": "max", "patience": 1, "factor": 0.5}}),
            1.0,
        )
        .unwrap();
        t.load_state(&saved);
        assert_eq!(s, t);
        let e = Scheduler::build("s", &json!({"ReduceLROnPlateau": {"mode": "up"}}), 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode must be min or max"), "{e}");
        let e = Scheduler::build("s", &json!({"StepLR": null}), 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("step_size"), "{e}");
    }
}
