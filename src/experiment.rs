//! Experiment folders (SPEC §4.1): naming rules, the refusal to overwrite results, saved configs.

use crate::cli_values::CliValue;
use crate::config::{self, Merged, CATEGORIES};
use crate::fsutil::write_atomic;
use anyhow::{bail, Context, Result};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// Checks that an experiment name is one plain folder name, so it can never escape the root folder.
pub fn validate_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." || name.contains("..") {
        Some("it contains `..`")
    } else if name.contains('/') || name.contains('\\') {
        Some("it contains a path separator")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name.starts_with('-') {
        Some("it starts with `-`")
    } else {
        None
    };
    match problem {
        Some(why) => bail!(
            "invalid --experiment_name {name:?}: {why}; an experiment name must be a single folder \
             name inside --root_experiment_folder"
        ),
        None => Ok(()),
    }
}

/// Entries an experiment folder may hold before any result exists (written by the coordinator itself
/// before the worker starts): a run that failed that early may simply be run again.
const PRE_RESULT_ENTRIES: [&str; 2] = ["configs", "logs"];

/// True when the folder holds anything a worker produced (folds, records, checkpoints).
pub fn holds_results(folder: &Path) -> Result<bool> {
    if !folder.exists() {
        return Ok(false);
    }
    let entries = std::fs::read_dir(folder)
        .with_context(|| format!("cannot list experiment folder {}", folder.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !PRE_RESULT_ENTRIES.contains(&name.as_str()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Resolves `<root>/<name>` for a new experiment. The root is created when its parent exists (so a
/// typo in a deep path is reported instead of silently creating a tree); a folder that already holds
/// results is refused.
pub fn new_experiment_folder(root: &Path, name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    if !root.exists() {
        let parent = root
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            bail!(
                "--root_experiment_folder {} does not exist, and neither does its parent {}; \
                 create it first or fix the path",
                root.display(),
                parent.display()
            );
        }
        std::fs::create_dir(root).with_context(|| format!("cannot create {}", root.display()))?;
    } else if !root.is_dir() {
        bail!(
            "--root_experiment_folder {} exists but is not a folder",
            root.display()
        );
    }
    let folder = root.join(name);
    if holds_results(&folder)? {
        bail!(
            "the experiment {} already holds results; choose another --experiment_name, or use \
             --resume_training to continue it or --evaluate to evaluate it",
            folder.display()
        );
    }
    Ok(folder)
}

/// Writes `<folder>/configs/<category>.yaml`, one file per category, atomically.
pub fn save_configs(folder: &Path, merged: &Merged) -> Result<()> {
    for (category, map) in &merged.categories {
        let text = serde_yaml::to_string(map)
            .with_context(|| format!("cannot serialise the {category} config"))?;
        write_atomic(
            &folder.join("configs").join(format!("{category}.yaml")),
            text.as_bytes(),
        )?;
    }
    Ok(())
}

/// An experiment that already exists (for `--resume_training` and `--evaluate`): the folder must
/// hold the configs a run saved.
pub fn existing_experiment(root: &Path, name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    let folder = root.join(name);
    if !folder.is_dir() {
        bail!(
            "there is no experiment {} to resume or evaluate (check --experiment_name and \
             --root_experiment_folder)",
            folder.display()
        );
    }
    let general = folder.join("configs").join("config_general.yaml");
    if !general.is_file() {
        bail!(
            "{} is not an experiment folder: it has no {}; only folders written by `metricbench run` \
             can be resumed or evaluated",
            folder.display(),
            general.strip_prefix(&folder).unwrap_or(&general).display()
        );
    }
    Ok(folder)
}

const DIFF_PREFIX: &str = "resume_training_config_diffs_";

/// The config-diff folders of an experiment, sorted by their epoch tuple (oldest resume first).
pub fn diff_folders(folder: &Path) -> Result<Vec<(Vec<i64>, PathBuf)>> {
    let configs = folder.join("configs");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&configs) {
        Ok(e) => e,
        Err(_) => return Ok(out),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIFF_PREFIX) else {
            continue;
        };
        let epochs: Option<Vec<i64>> = rest.split('_').map(|e| e.parse().ok()).collect();
        match epochs {
            Some(e) if entry.path().is_dir() => out.push((e, entry.path())),
            _ => bail!(
                "{} is not a config-diff folder name ({DIFF_PREFIX}<epoch>_<epoch>...)",
                entry.path().display()
            ),
        }
    }
    out.sort();
    Ok(out)
}

/// Replaces top-level keys of each category with those of a diff folder's files.
fn apply_diff(merged: &mut Merged, diff: &Path) -> Result<()> {
    for (category, map) in merged.categories.iter_mut() {
        let file = diff.join(format!("{category}.yaml"));
        if file.is_file() {
            for (k, v) in config::read_yaml_map(&file)? {
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

/// The configs saved in an experiment (`configs/<category>.yaml`), without the diffs of resumes.
pub fn load_base_configs(folder: &Path) -> Result<Merged> {
    let mut categories = Vec::new();
    for category in CATEGORIES {
        let file = folder.join("configs").join(format!("{category}.yaml"));
        if !file.is_file() {
            bail!(
                "{} is missing; the experiment's saved configs are incomplete",
                file.display()
            );
        }
        categories.push((category.to_string(), config::read_yaml_map(&file)?));
    }
    Ok(Merged { categories })
}

/// The configs an experiment last ran with: saved configs plus every resume's diff, in order.
pub fn load_saved_configs(folder: &Path) -> Result<Merged> {
    let mut merged = load_base_configs(folder)?;
    for (_, diff) in diff_folders(folder)? {
        apply_diff(&mut merged, &diff)?;
    }
    Ok(merged)
}

/// Applies command-line values to loaded configs the way `config::load` does: merged into the
/// category that has the key, else added to the last category.
pub fn apply_overrides(merged: &mut Merged, overrides: &[CliValue]) {
    for cv in overrides {
        let key = Value::String(cv.key.clone());
        let holder = merged
            .categories
            .iter()
            .rposition(|(_, m)| m.contains_key(&key))
            .unwrap_or(merged.categories.len().saturating_sub(1));
        if let Some((_, map)) = merged.categories.get_mut(holder) {
            match map.get_mut(&key) {
                Some(existing) => config::deep_merge(existing, &cv.value),
                None => {
                    map.insert(key, cv.value.clone());
                }
            }
        }
    }
}

/// Per category, the top-level keys whose values differ between `old` and `new` (new values).
pub fn config_diff(old: &Merged, new: &Merged) -> Vec<(String, Mapping)> {
    let mut out = Vec::new();
    for (category, new_map) in &new.categories {
        let old_map = old
            .categories
            .iter()
            .find(|(c, _)| c == category)
            .map(|(_, m)| m);
        let mut changed = Mapping::new();
        for (k, v) in new_map {
            if old_map.and_then(|m| m.get(k)) != Some(v) {
                changed.insert(k.clone(), v.clone());
            }
        }
        if !changed.is_empty() {
            out.push((category.clone(), changed));
        }
    }
    out
}

/// The epoch of each fold's latest checkpoint (`<fold>/saved_models/trunk_<N>.*`, 0 when none),
/// folds sorted by name.
pub fn latest_epochs(folder: &Path) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(folder).with_context(|| format!("cannot list {}", folder.display()))?
    {
        let entry = entry?;
        let models = entry.path().join("saved_models");
        if !models.is_dir() {
            continue;
        }
        let mut latest = 0;
        for file in std::fs::read_dir(&models)?.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let epoch = name
                .strip_prefix("trunk_")
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<i64>().ok());
            if let Some(e) = epoch {
                latest = latest.max(e);
            }
        }
        out.push((entry.file_name().to_string_lossy().into_owned(), latest));
    }
    out.sort();
    Ok(out)
}

/// Writes the keys changed at a resume into
/// `configs/resume_training_config_diffs_<latest epochs joined by _>/<category>.yaml` (merged into
/// an existing file of the same resume point). Returns the folder, or `None` if nothing changed.
pub fn write_config_diffs(
    folder: &Path,
    epochs: &[i64],
    diffs: &[(String, Mapping)],
) -> Result<Option<PathBuf>> {
    if diffs.is_empty() {
        return Ok(None);
    }
    let joined: Vec<String> = epochs.iter().map(i64::to_string).collect();
    let dir = folder
        .join("configs")
        .join(format!("{DIFF_PREFIX}{}", joined.join("_")));
    for (category, changed) in diffs {
        let file = dir.join(format!("{category}.yaml"));
        let mut map = if file.is_file() {
            config::read_yaml_map(&file)?
        } else {
            Mapping::new()
        };
        for (k, v) in changed {
            map.insert(k.clone(), v.clone());
        }
        let text = serde_yaml::to_string(&map)
            .with_context(|| format!("cannot serialise the {category} config diff"))?;
        write_atomic(&file, text.as_bytes())?;
    }
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_root() {
        for bad in ["", "..", "../x", "a/b", "/abs", "a\\b", "x..y", "-rf"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["exp1", "my_experiment", "cub.run-2"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn results_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("experiments");
        let folder = new_experiment_folder(&root, "x").unwrap();
        std::fs::create_dir_all(folder.join("configs")).unwrap();
        // Only configs: a failed earlier start, safe to reuse.
        new_experiment_folder(&root, "x").unwrap();
        std::fs::create_dir_all(folder.join("Test50_50_Partitions4_0")).unwrap();
        let err = new_experiment_folder(&root, "x").unwrap_err().to_string();
        assert!(err.contains("already holds results"), "{err}");
        let deep = dir.path().join("no/such/root");
        let err = new_experiment_folder(&deep, "x").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn resume_diffs_are_written_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("exp");
        let err = existing_experiment(dir.path(), "exp")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no experiment"), "{err}");
        std::fs::create_dir_all(folder.join("not_configs")).unwrap();
        let err = existing_experiment(dir.path(), "exp")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an experiment folder"), "{err}");

        let y = |s: &str| -> Mapping { serde_yaml::from_str(s).unwrap() };
        let merged = Merged {
            categories: CATEGORIES
                .iter()
                .map(|c| {
                    let m = if *c == "config_general" {
                        y("{num_epochs_train: 4, patience: 9}")
                    } else {
                        y("{}")
                    };
                    (c.to_string(), m)
                })
                .collect(),
        };
        save_configs(&folder, &merged).unwrap();
        existing_experiment(dir.path(), "exp").unwrap();
        std::fs::create_dir_all(folder.join("F_0/saved_models")).unwrap();
        std::fs::write(folder.join("F_0/saved_models/trunk_4.safetensors"), b"").unwrap();
        std::fs::write(folder.join("F_0/saved_models/trunk_best2.safetensors"), b"").unwrap();
        std::fs::create_dir_all(folder.join("F_1/saved_models")).unwrap();
        assert_eq!(
            latest_epochs(&folder).unwrap(),
            vec![("F_0".to_string(), 4), ("F_1".to_string(), 0)]
        );

        let saved = load_saved_configs(&folder).unwrap();
        let mut new = saved.clone();
        let cli = crate::cli_values::parse(&[
            "--num_epochs_train".into(),
            "8".into(),
            "--patience".into(),
            "9".into(),
        ])
        .unwrap();
        apply_overrides(&mut new, &cli);
        let diffs = config_diff(&saved, &new);
        assert_eq!(
            diffs,
            vec![("config_general".to_string(), y("{num_epochs_train: 8}"))]
        );
        let written = write_config_diffs(&folder, &[4, 0], &diffs)
            .unwrap()
            .unwrap();
        assert!(written.ends_with("configs/resume_training_config_diffs_4_0"));
        let replayed = load_saved_configs(&folder).unwrap();
        assert_eq!(replayed.combined(), new.combined());
        assert_eq!(diff_folders(&folder).unwrap().len(), 1);
        assert_eq!(
            load_base_configs(&folder).unwrap().combined(),
            merged.combined()
        );
    }
}
