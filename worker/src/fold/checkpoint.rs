//! A fold's checkpoint: every object training changes (models, loss parameters, optimizer state),
//! saved together under one suffix (`<object>_<epoch>` or `<object>_best<epoch>`, see
//! `crate::checkpoints`) and loaded back so a resumed fold continues exactly where the saved one
//! stood.

use crate::checkpoints::{self, Suffix};
use crate::trainers::Components;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

/// Every object of a checkpoint: models, loss parameters (when the losses have any) and optimizer
/// state. The trunk is written last so a complete trunk file means a complete checkpoint.
pub fn save(c: &Components, dir: &Path, suffix: Suffix) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for opt in &c.optimizers {
        checkpoints::save_tensors(
            &checkpoints::file(dir, &opt.name, suffix),
            &opt.state_tensors(),
        )?;
    }
    for (name, vs) in c.pipeline.var_stores() {
        let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        checkpoints::save_tensors(&checkpoints::file(dir, name, suffix), &tensors)?;
    }
    for model in c.models.iter().rev() {
        model.save(&checkpoints::file(dir, &model.name, suffix))?;
    }
    checkpoints::delete_others(dir, suffix)
}

/// Loads every object of a checkpoint written by [`save`].
pub fn load(c: &mut Components, dir: &Path, suffix: Suffix) -> Result<()> {
    for model in c.models.iter_mut() {
        model.load(&checkpoints::file(dir, &model.name, suffix))?;
    }
    for (name, vs) in c.pipeline.var_stores() {
        let path = checkpoints::file(dir, name, suffix);
        let saved: BTreeMap<String, Tensor> =
            checkpoints::load_tensors(&path)?.into_iter().collect();
        let variables = vs.variables();
        if saved.len() != variables.len() {
            anyhow::bail!(
                "{} holds {} tensors, but loss `{name}` has {} parameters (was it saved with the same loss config?)",
                path.display(),
                saved.len(),
                variables.len()
            );
        }
        tch::no_grad(|| -> Result<()> {
            for (key, mut var) in variables {
                let value = saved
                    .get(&key)
                    .filter(|t| t.size() == var.size())
                    .with_context(|| {
                        format!(
                            "{} has no tensor `{key}` of shape {:?} for loss `{name}`",
                            path.display(),
                            var.size()
                        )
                    })?;
                var.copy_(value);
            }
            Ok(())
        })?;
    }
    for opt in c.optimizers.iter_mut() {
        let path = checkpoints::file(dir, &opt.name, suffix);
        let tensors = checkpoints::load_tensors(&path)?;
        opt.load_state(&tensors, &path)?;
    }
    Ok(())
}
