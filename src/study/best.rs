//! Which completed trial the study calls best — the one tested on `test`, reproduced, written to
//! `best_parameters.yaml` and reported.
//!
//! A trial's objective is a mean over folds with a standard error. When the SEMs are comparable
//! to the differences between trials, the highest observed mean is often a lucky draw; the
//! optimiser's model, which weighs every trial by its SEM and by its neighbours, is a better
//! judge. So by default, whenever any completed trial reported an SEM, the best trial is the
//! completed trial with the highest posterior mean at its parameters (as Ax recommends);
//! otherwise (one fold, workers that send no SEM) it is the highest observed mean.
//! `--best_trial_by model|observed` forces either rule.

use super::sampler::Sampler;
use super::storage::{StudyStore, TrialRecord, TrialState};
use crate::search_space::SearchSpace;
use anyhow::{bail, Result};

/// The rule that picks the best trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BestTrialRule {
    /// Highest posterior mean of the optimiser's model at a completed trial's parameters.
    Model,
    /// Highest observed objective mean (ties: the earliest trial).
    Observed,
}

impl BestTrialRule {
    pub fn parse(text: &str) -> Result<BestTrialRule> {
        match text {
            "model" => Ok(BestTrialRule::Model),
            "observed" => Ok(BestTrialRule::Observed),
            other => bail!("--best_trial_by expects `model` or `observed`, got `{other}`"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BestTrialRule::Model => "model",
            BestTrialRule::Observed => "observed",
        }
    }

    /// The default: `model` when any completed trial reported an SEM, else `observed`.
    pub fn default_for(trials: &[TrialRecord]) -> BestTrialRule {
        if completed(trials).any(|t| t.objective_sem.is_some()) {
            BestTrialRule::Model
        } else {
            BestTrialRule::Observed
        }
    }
}

/// The study.db meta key remembering `--best_trial_by`.
pub const RULE_META_KEY: &str = "best_trial_by";

/// The study's rule: `--best_trial_by` if given, else the one a previous run of the study was
/// given (remembered in study.db), else `None` (the default for the trials).
pub fn study_rule(
    given: Option<BestTrialRule>,
    store: &StudyStore,
) -> Result<Option<BestTrialRule>> {
    if let Some(rule) = given {
        return Ok(Some(rule));
    }
    match store.get_meta(RULE_META_KEY)? {
        Some(text) => Ok(Some(BestTrialRule::parse(&text)?)),
        None => Ok(None),
    }
}

/// The chosen trial and how it was chosen.
#[derive(Clone, Debug)]
pub struct BestChoice {
    pub trial: TrialRecord,
    /// The rule that chose it (`observed` when `model` was asked for but no model could be built:
    /// fewer than two completed trials, or all values equal).
    pub rule: BestTrialRule,
    /// The model's posterior mean at the trial's parameters, under the `model` rule.
    pub model_mean: Option<f64>,
}

impl BestChoice {
    /// One line for people, e.g. "chosen by the model's posterior mean (0.5312) among completed
    /// trials; observed 0.5401 ± 0.0213".
    pub fn describe(&self) -> String {
        let observed = format!(
            "observed {:.4}{}",
            self.trial.objective_mean.unwrap_or(f64::NAN),
            self.trial
                .objective_sem
                .map_or(String::new(), |s| format!(" ± {s:.4}"))
        );
        match (self.rule, self.model_mean) {
            (BestTrialRule::Model, Some(m)) => format!(
                "chosen by the model's posterior mean ({m:.4}) among completed trials; {observed}"
            ),
            _ => format!("chosen by the highest observed mean; {observed}"),
        }
    }
}

fn completed(trials: &[TrialRecord]) -> impl Iterator<Item = &TrialRecord> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Completed)
        .filter(|t| t.objective_mean.is_some_and(f64::is_finite))
}

/// The completed trial with the highest observed objective (ties: the earliest).
pub fn best_observed(trials: &[TrialRecord]) -> Option<TrialRecord> {
    completed(trials)
        .fold(None::<&TrialRecord>, |best, t| match best {
            Some(b) if b.objective_mean >= t.objective_mean => Some(b),
            _ => Some(t),
        })
        .cloned()
}

/// The best completed trial under `rule` (`None`: the default rule for these trials). `seed`
/// seeds the model fit (the study's seed), so the choice is reproducible. Trials whose
/// parameters no longer fit the space (bounds narrowed on resume) are left out of the model.
pub fn choose(
    space: &SearchSpace,
    trials: &[TrialRecord],
    rule: Option<BestTrialRule>,
    seed: u64,
) -> Result<Option<BestChoice>> {
    let rule = rule.unwrap_or_else(|| BestTrialRule::default_for(trials));
    let observed = |rule| {
        best_observed(trials).map(|trial| BestChoice {
            trial,
            rule,
            model_mean: None,
        })
    };
    if rule == BestTrialRule::Observed || space.is_empty() {
        return Ok(observed(BestTrialRule::Observed));
    }
    let mut sampler = Sampler::new(space, seed)?;
    let mut used: Vec<&TrialRecord> = Vec::new();
    for t in completed(trials) {
        if sampler.observe_checked(&t.parameters, t.objective_mean, t.objective_sem)? {
            used.push(t);
        }
    }
    Ok(match sampler.recommend() {
        Some(r) if r.model_mean.is_some() => used.get(r.index).map(|t| BestChoice {
            trial: (*t).clone(),
            rule: BestTrialRule::Model,
            model_mean: r.model_mean,
        }),
        _ => observed(BestTrialRule::Observed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search_space::{ParamKind, Parameter};
    use serde_json::json;

    fn space() -> SearchSpace {
        SearchSpace {
            parameters: vec![Parameter {
                name: "x".into(),
                kind: ParamKind::Float {
                    low: 0.0,
                    high: 1.0,
                    log: false,
                },
            }],
        }
    }

    fn trial(index: u64, x: f64, mean: f64, sem: Option<f64>) -> TrialRecord {
        TrialRecord {
            index,
            name: format!("s{index}"),
            state: TrialState::Completed,
            parameters: serde_json::from_value(json!({ "x": x })).unwrap(),
            objective_mean: Some(mean),
            objective_sem: sem,
            fold_metrics: None,
            started_at: None,
            finished_at: None,
            duration_s: None,
            worker_host: None,
            exit_status: None,
            error: None,
            attempts: 1,
            job_id: None,
        }
    }

    /// A smooth accuracy curve peaking at x = 0.3, sampled on a grid; the trial at 0.8 had a
    /// lucky draw (+3 SEM) and is the highest observed mean.
    fn noisy_trials(sem: Option<f64>) -> Vec<TrialRecord> {
        let noise = [
            0.005, -0.008, 0.002, 0.003, -0.01, 0.007, -0.004, 0.001, 0.045, -0.002, 0.004,
        ];
        (0..11)
            .map(|i| {
                let x = i as f64 / 10.0;
                let acc = 0.6 - 0.15 * (x - 0.3) * (x - 0.3);
                let e = if sem.is_some() { noise[i] } else { 0.0 };
                trial(i as u64, x, acc + e, sem)
            })
            .collect()
    }

    #[test]
    fn the_model_discounts_a_lucky_trial_and_agrees_without_noise() {
        let noisy = noisy_trials(Some(0.015));
        assert_eq!(best_observed(&noisy).unwrap().index, 8);
        assert_eq!(BestTrialRule::default_for(&noisy), BestTrialRule::Model);
        let chosen = choose(&space(), &noisy, None, 0).unwrap().unwrap();
        assert_eq!(chosen.rule, BestTrialRule::Model);
        assert!((2..=4).contains(&chosen.trial.index), "{chosen:?}");
        assert!(chosen.describe().contains("model's posterior mean"));
        // Forcing the observed rule picks the lucky trial.
        let forced = choose(&space(), &noisy, Some(BestTrialRule::Observed), 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            (forced.trial.index, forced.rule),
            (8, BestTrialRule::Observed)
        );
        // Exact values, no SEM: the default is `observed`, and the model, when asked, agrees.
        let exact = noisy_trials(None);
        assert_eq!(BestTrialRule::default_for(&exact), BestTrialRule::Observed);
        let by_default = choose(&space(), &exact, None, 0).unwrap().unwrap();
        let by_model = choose(&space(), &exact, Some(BestTrialRule::Model), 0)
            .unwrap()
            .unwrap();
        assert_eq!(by_default.trial.index, 3);
        assert_eq!(by_model.trial.index, 3);
        assert_eq!(by_model.rule, BestTrialRule::Model);
    }

    #[test]
    fn one_trial_or_none_falls_back_to_the_observed_rule() {
        assert!(choose(&space(), &[], None, 0).unwrap().is_none());
        let one = [trial(0, 0.5, 0.4, Some(0.01))];
        let c = choose(&space(), &one, None, 0).unwrap().unwrap();
        assert_eq!((c.trial.index, c.rule), (0, BestTrialRule::Observed));
        assert!(BestTrialRule::parse("median")
            .unwrap_err()
            .to_string()
            .contains("`model` or `observed`"));
    }
}
