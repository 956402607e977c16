//! Experiment folders (docs/experiments.md): naming rules, the refusal to overwrite results, saved configs.

use crate::config::{self, KeyScope, MergeOptions, Merged, CATEGORIES};
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
    save_configs_with(folder, merged, Vec::new())
}

/// Like [`save_configs`], writing `extra` files (path, contents) in the same atomic batch.
pub fn save_configs_with(
    folder: &Path,
    merged: &Merged,
    mut extra: Vec<(std::path::PathBuf, Vec<u8>)>,
) -> Result<()> {
    for (category, map) in &merged.categories {
        let text = serde_yaml::to_string(map)
            .with_context(|| format!("cannot serialise the {category} config"))?;
        extra.push((
            folder.join("configs").join(format!("{category}.yaml")),
            text.into_bytes(),
        ));
    }
    crate::fsutil::write_atomic_all(&extra)
}

/// Prefix of the folders that record config changes made when resuming (docs/experiments.md).
pub const CONFIG_DIFF_PREFIX: &str = "resume_training_config_diffs_";

/// `resume_training_config_diffs_<e0>_<e1>_...`: the latest saved epoch of every fold, joined by `_`.
pub fn config_diff_folder_name(latest_epochs: &[u64]) -> String {
    let epochs: Vec<String> = latest_epochs.iter().map(u64::to_string).collect();
    format!("{CONFIG_DIFF_PREFIX}{}", epochs.join("_"))
}

/// The top-level keys of `current` that differ from `previous`, per category, in `current`'s key
/// order: changed and new keys with their new value, then keys `current` no longer has as
/// `key~DELETE~: null` (which the config merge understands when the diffs are reloaded).
/// Categories without changes are left out.
pub fn config_diffs(previous: &Merged, current: &Merged) -> Vec<(String, Mapping)> {
    let empty = Mapping::new();
    let mut out = Vec::new();
    for (category, now) in &current.categories {
        let before = previous.category(category).unwrap_or(&empty);
        let mut diff = Mapping::new();
        for (k, v) in now {
            if before.get(k) != Some(v) {
                diff.insert(k.clone(), v.clone());
            }
        }
        for k in before.keys() {
            if !now.contains_key(k) {
                let name = format!("{}{}", config::key_text(k), config::DELETE);
                diff.insert(Value::String(name), Value::Null);
            }
        }
        if !diff.is_empty() {
            out.push((category.clone(), diff));
        }
    }
    out
}

/// Records the config changes of a resumed experiment: writes
/// `<experiment_folder>/configs/resume_training_config_diffs_<latest epochs joined by _>/<category>.yaml`
/// holding only the top-level keys that changed ([`config_diffs`]), atomically. `previous` must be
/// what the experiment ran with so far, i.e. [`load_saved_configs`]; `current` the newly merged
/// configs. A second resume at the same epochs adds to the same files (later values win). Returns the
/// diff folder, or `None` when nothing changed (then nothing is written).
pub fn save_resume_config_diffs(
    experiment_folder: &Path,
    latest_epochs: &[u64],
    previous: &Merged,
    current: &Merged,
) -> Result<Option<PathBuf>> {
    if latest_epochs.is_empty() {
        bail!("cannot name a config diff folder without the latest epoch of at least one fold");
    }
    let diffs = config_diffs(previous, current);
    if diffs.is_empty() {
        return Ok(None);
    }
    let folder = experiment_folder
        .join("configs")
        .join(config_diff_folder_name(latest_epochs));
    for (category, diff) in diffs {
        let path = folder.join(format!("{category}.yaml"));
        let combined = if path.is_file() {
            let existing = config::read_yaml_map(&path)?;
            top_level_merge(&existing, &diff)
        } else {
            diff
        };
        let text = serde_yaml::to_string(&combined)
            .with_context(|| format!("cannot serialise the {category} config diff"))?;
        write_atomic(&path, text.as_bytes())?;
    }
    Ok(Some(folder))
}

/// Later diff values replace earlier ones wholesale; a `key~DELETE~` entry replaces an earlier value
/// of `key` (and the reverse), so the file always holds one entry per key.
fn top_level_merge(existing: &Mapping, diff: &Mapping) -> Mapping {
    let mut out = existing.clone();
    for k in diff.keys() {
        let text = config::key_text(k);
        let other = match text.strip_suffix(config::DELETE) {
            Some(base) => Value::String(base.to_string()),
            None => Value::String(format!("{text}{}", config::DELETE)),
        };
        if k.is_string() {
            out.shift_remove(&other);
        }
    }
    // Keys are copied as they are (a `~DELETE~` key is data here, not an instruction).
    for (k, v) in diff {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The configs saved when an experiment was created: `<folder>/configs/<category>.yaml` for every
/// category that has a file, without the diffs of later resumes.
pub fn load_base_configs(experiment_folder: &Path) -> Result<Merged> {
    let configs = experiment_folder.join("configs");
    let mut categories = Vec::new();
    for category in CATEGORIES {
        let path = configs.join(format!("{category}.yaml"));
        if path.is_file() {
            categories.push((category.to_string(), config::read_yaml_map(&path)?));
        }
    }
    if categories.is_empty() {
        bail!(
            "{} holds no saved config (expected files such as config_general.yaml)",
            configs.display()
        );
    }
    Ok(Merged { categories })
}

/// The `resume_training_config_diffs_*` folders of an experiment with their epoch numbers, in order
/// of those numbers (oldest resume first).
pub fn config_diff_folders(experiment_folder: &Path) -> Result<Vec<(Vec<u64>, PathBuf)>> {
    let configs = experiment_folder.join("configs");
    let mut diff_folders: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    if !configs.is_dir() {
        return Ok(diff_folders);
    }
    for entry in
        std::fs::read_dir(&configs).with_context(|| format!("cannot list {}", configs.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(epochs) = name.strip_prefix(CONFIG_DIFF_PREFIX) else {
            continue;
        };
        let parsed: std::result::Result<Vec<u64>, _> =
            epochs.split('_').map(str::parse::<u64>).collect();
        match parsed {
            Ok(e) if entry.path().is_dir() => diff_folders.push((e, entry.path())),
            _ => bail!(
                "{} is not a config diff folder name ({CONFIG_DIFF_PREFIX}<epoch>_<epoch>...)",
                entry.path().display()
            ),
        }
    }
    diff_folders.sort();
    Ok(diff_folders)
}

/// Applies one config-diff folder to `merged` at the top level (a changed key replaces the saved
/// one; `key~DELETE~` removes it).
pub fn apply_config_diff_folder(merged: &mut Merged, diff_folder: &Path) -> Result<()> {
    let depth0 = MergeOptions {
        max_depth: Some(0),
        scope: KeyScope::All,
    };
    for (category, map) in merged.categories.iter_mut() {
        let path = diff_folder.join(format!("{category}.yaml"));
        if path.is_file() {
            let diff = config::read_yaml_map(&path)?;
            *map = config::merge_with(map, &diff, depth0, &path.display().to_string())?;
        }
    }
    Ok(())
}

/// The configs an experiment ran with: `<folder>/configs/<category>.yaml` for every category that
/// has a file, then each `resume_training_config_diffs_*` folder in order of its epoch numbers,
/// merged at the top level (a changed key replaces the saved one; `key~DELETE~` removes it).
pub fn load_saved_configs(experiment_folder: &Path) -> Result<Merged> {
    let mut merged = load_base_configs(experiment_folder)?;
    for (_, folder) in config_diff_folders(experiment_folder)? {
        apply_config_diff_folder(&mut merged, &folder)?;
    }
    Ok(merged)
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

/// The epoch of each fold's latest checkpoint (`<fold>/saved_models/trunk_<N>.*`, 0 when none),
/// folds in the split scheme's order (by the number that ends their name, so `_10` follows `_9`).
pub fn latest_epochs(folder: &Path) -> Result<Vec<(String, u64)>> {
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
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(e) = epoch {
                latest = latest.max(e);
            }
        }
        out.push((entry.file_name().to_string_lossy().into_owned(), latest));
    }
    out.sort_by_cached_key(|(name, _)| {
        let (base, index) = name.rsplit_once('_').unwrap_or((name, ""));
        (base.to_string(), index.parse::<u64>().ok(), name.clone())
    });
    Ok(out)
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

    fn m(s: &str) -> Mapping {
        serde_yaml::from_str(s).unwrap()
    }

    fn merged(cats: &[(&str, &str)]) -> Merged {
        Merged {
            categories: cats.iter().map(|(c, t)| (c.to_string(), m(t))).collect(),
        }
    }

    #[test]
    fn diffs_hold_only_changed_top_level_keys() {
        let before = merged(&[
            (
                "config_general",
                "{num_epochs_train: 100, patience: 9, seed: 0}",
            ),
            (
                "config_models",
                "{models: {trunk: {MLP: {a: 1}}}, batch_size: 32}",
            ),
        ]);
        let after = merged(&[
            (
                "config_general",
                "{num_epochs_train: 150, patience: 9, new_key: 1}",
            ),
            (
                "config_models",
                "{models: {trunk: {MLP: {a: 1}}}, batch_size: 32}",
            ),
        ]);
        let d = config_diffs(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, "config_general");
        assert_eq!(
            d[0].1,
            m("{num_epochs_train: 150, new_key: 1, seed~DELETE~: null}")
        );
        assert!(config_diffs(&after, &after).is_empty());
    }

    #[test]
    fn resume_diffs_are_written_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("exp");
        let first = merged(&[
            (
                "config_general",
                "{num_epochs_train: 100, patience: 9, seed: 0}",
            ),
            ("config_models", "{batch_size: 32}"),
        ]);
        save_configs(&folder, &first).unwrap();
        let saved = load_saved_configs(&folder).unwrap();
        assert_eq!(saved, first);
        // Nothing changed: nothing written.
        assert_eq!(
            save_resume_config_diffs(&folder, &[10, 12], &saved, &first).unwrap(),
            None
        );
        let second = merged(&[
            ("config_general", "{num_epochs_train: 150, patience: 9}"),
            ("config_models", "{batch_size: 32}"),
        ]);
        let out = save_resume_config_diffs(&folder, &[100, 100, 98, 100], &saved, &second)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            folder.join("configs/resume_training_config_diffs_100_100_98_100")
        );
        let files: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            ["config_general.yaml"],
            "only changed categories, no temp files"
        );
        assert_eq!(
            config::read_yaml_map(&out.join("config_general.yaml")).unwrap(),
            m("{num_epochs_train: 150, seed~DELETE~: null}")
        );
        let reloaded = load_saved_configs(&folder).unwrap();
        assert_eq!(reloaded, second);
        // A second resume at the same epochs adds to the same file; a later folder sorts after.
        let third = merged(&[
            (
                "config_general",
                "{num_epochs_train: 150, patience: 20, seed: 3}",
            ),
            ("config_models", "{batch_size: 32}"),
        ]);
        save_resume_config_diffs(&folder, &[100, 100, 98, 100], &reloaded, &third).unwrap();
        assert_eq!(
            config::read_yaml_map(&out.join("config_general.yaml")).unwrap(),
            m("{num_epochs_train: 150, patience: 20, seed: 3}")
        );
        assert_eq!(load_saved_configs(&folder).unwrap(), third);
        let fourth = merged(&[
            (
                "config_general",
                "{num_epochs_train: 200, patience: 20, seed: 3}",
            ),
            ("config_models", "{batch_size: 32}"),
        ]);
        save_resume_config_diffs(&folder, &[150, 150, 150, 150], &third, &fourth).unwrap();
        assert_eq!(load_saved_configs(&folder).unwrap(), fourth);
        assert!(save_resume_config_diffs(&folder, &[], &third, &fourth).is_err());
    }

    #[test]
    fn existing_experiments_and_latest_epochs() {
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
        save_configs(
            &folder,
            &merged(&[("config_general", "{num_epochs_train: 4}")]),
        )
        .unwrap();
        existing_experiment(dir.path(), "exp").unwrap();
        std::fs::create_dir_all(folder.join("F_0/saved_models")).unwrap();
        std::fs::write(folder.join("F_0/saved_models/trunk_4.safetensors"), b"").unwrap();
        std::fs::write(folder.join("F_0/saved_models/trunk_best2.safetensors"), b"").unwrap();
        std::fs::create_dir_all(folder.join("F_1/saved_models")).unwrap();
        // Eleven folds: `F_10` is the last fold, not the third (a name sort would put it there).
        for i in 2..=10 {
            std::fs::create_dir_all(folder.join(format!("F_{i}/saved_models"))).unwrap();
        }
        std::fs::write(folder.join("F_10/saved_models/trunk_7.safetensors"), b"").unwrap();
        let latest = latest_epochs(&folder).unwrap();
        assert_eq!(latest.len(), 11);
        assert_eq!(latest[0], ("F_0".to_string(), 4));
        assert_eq!(latest[1], ("F_1".to_string(), 0));
        assert_eq!(latest[2].0, "F_2");
        assert_eq!(latest[10], ("F_10".to_string(), 7));
        assert!(config_diff_folders(&folder).unwrap().is_empty());
    }
}
