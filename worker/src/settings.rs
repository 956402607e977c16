//! The training settings of a job, read once from the general config keys and shared by the runner
//! (which folds, which splits) and the fold loop (epochs, patience, evaluation, records).

use crate::errors::config_error;
use crate::spec::Config;
use crate::testers::EvalSettings;
use anyhow::Result;
use std::collections::BTreeMap;

/// `num_epochs_train`: one count for every fold, or `{fold name: count}` (how `--reproduce_results`
/// replays a resumed experiment).
#[derive(Debug, Clone)]
pub enum NumEpochs {
    All(i64),
    /// `{fold name: epochs}`, as the original's `--reproduce_results` sets it.
    PerFold(BTreeMap<String, i64>),
    /// `[epochs of fold 0, fold 1, ...]` in the split scheme's order: what a config-diff folder's
    /// name (`resume_training_config_diffs_<e0>_<e1>_...`) lists, usable without the fold names.
    PerIndex(Vec<i64>),
}

impl NumEpochs {
    /// The epochs of fold number `index` (in the split scheme's order), called `fold`.
    pub fn for_fold(&self, index: usize, fold: &str) -> Result<i64> {
        match self {
            NumEpochs::All(n) => Ok(*n),
            NumEpochs::PerFold(m) => m.get(fold).copied().ok_or_else(|| {
                config_error(format!(
                    "num_epochs_train is given per fold but has no entry for fold {fold} (it has {})",
                    m.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }),
            NumEpochs::PerIndex(v) => v.get(index).copied().ok_or_else(|| {
                config_error(format!(
                    "num_epochs_train lists {} epoch count(s), one per fold, but fold {fold} is \
                     fold number {} of the split scheme",
                    v.len(),
                    index + 1
                ))
            }),
        }
    }
}

/// Training settings from the general config keys.
pub struct Settings {
    pub num_epochs: NumEpochs,
    pub iterations_per_epoch: usize,
    pub save_interval: usize,
    pub patience: Option<usize>,
    pub batch_size: usize,
    pub check_untrained_accuracy: bool,
    pub label_level: usize,
    pub primary_metric: String,
    pub seed: u64,
    /// Threads that prepare training batches ahead of the training step (0: the step prepares
    /// its own).
    pub dataloader_num_workers: usize,
    pub eval: EvalSettings,
}

impl Settings {
    /// Accuracy table of a split: `accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_VAL`
    /// (the tester's name as configured).
    pub fn accuracy_table(&self, split: &str) -> String {
        format!(
            "accuracies_{}_{}_level_{}_{}",
            self.eval.table_tag(),
            self.eval.tester_name(),
            self.label_level,
            split.to_uppercase()
        )
    }

    /// The primary metric (`eval_metric_for_best_epoch`) of an evaluation.
    pub fn primary(&self, metrics: &BTreeMap<String, f64>) -> Result<f64> {
        metrics.get(&self.primary_metric).copied().ok_or_else(|| {
            config_error(format!(
                "eval_metric_for_best_epoch `{}` is not a computed metric; available: {}",
                self.primary_metric,
                metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    pub fn from_config(cfg: &Config) -> Result<Settings> {
        let save_interval = cfg.usize("save_interval", Some(2))?;
        if save_interval == 0 {
            return Err(config_error("save_interval must be at least 1"));
        }
        let iterations_per_epoch = cfg.usize("iterations_per_epoch", Some(100))?;
        if iterations_per_epoch == 0 {
            return Err(config_error("iterations_per_epoch must be at least 1"));
        }
        let batch_size = cfg.usize("batch_size", Some(32))?;
        if batch_size < 2 {
            return Err(config_error("batch_size must be at least 2"));
        }
        // Configs written before PML's 2020 renaming name MAP@R `mean_average_r_precision`.
        let primary_metric = metricbench_protocol::protocol::current_metric_name(
            match cfg.get("eval_metric_for_best_epoch") {
                Some(_) => cfg.str("eval_metric_for_best_epoch", "")?,
                None => cfg.str("eval_primary_metric", "mean_average_precision_at_r")?,
            },
        );
        let num_epochs = match cfg.get("num_epochs_train") {
            Some(serde_json::Value::Object(m)) => {
                let mut per_fold = BTreeMap::new();
                for (fold, v) in m {
                    let n = v.as_u64().ok_or_else(|| {
                        config_error(format!(
                            "num_epochs_train/{fold} must be a non-negative integer, got {v}"
                        ))
                    })?;
                    per_fold.insert(fold.clone(), n as i64);
                }
                NumEpochs::PerFold(per_fold)
            }
            Some(serde_json::Value::Array(items)) => NumEpochs::PerIndex(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_u64().map(|n| n as i64).ok_or_else(|| {
                            config_error(format!(
                                "num_epochs_train[{i}] must be a non-negative integer, got {v}"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => NumEpochs::All(cfg.usize("num_epochs_train", Some(1000))? as i64),
        };
        Ok(Settings {
            num_epochs,
            iterations_per_epoch,
            save_interval,
            patience: cfg.optional_usize("patience")?,
            batch_size,
            check_untrained_accuracy: cfg.bool("check_untrained_accuracy", true)?,
            label_level: cfg.usize("label_hierarchy_level", Some(0))?,
            primary_metric,
            seed: cfg.usize("seed", Some(0))? as u64,
            dataloader_num_workers: cfg.usize("dataloader_num_workers", Some(2))?,
            eval: EvalSettings::from_config(cfg)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Config;
    use serde_json::json;

    #[test]
    fn the_pre_2020_name_of_map_at_r_selects_the_best_epoch_by_map_at_r() {
        for key in ["eval_metric_for_best_epoch", "eval_primary_metric"] {
            let cfg = json!({ key: "mean_average_r_precision" });
            let settings = Settings::from_config(&Config(&cfg)).unwrap();
            assert_eq!(settings.primary_metric, "mean_average_precision_at_r");
        }
    }

    #[test]
    fn num_epochs_train_may_be_listed_per_fold_in_scheme_order() {
        let cfg = json!({"num_epochs_train": [3, 5]});
        let settings = Settings::from_config(&Config(&cfg)).unwrap();
        assert_eq!(settings.num_epochs.for_fold(0, "A_0").unwrap(), 3);
        assert_eq!(settings.num_epochs.for_fold(1, "A_1").unwrap(), 5);
        let e = settings
            .num_epochs
            .for_fold(2, "A_2")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lists 2 epoch count(s)") && e.contains("fold A_2"),
            "{e}"
        );
        let cfg = json!({"num_epochs_train": [3, -1]});
        let e = Settings::from_config(&Config(&cfg))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("num_epochs_train[1]"), "{e}");
    }
}
