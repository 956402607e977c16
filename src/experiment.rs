//! Experiment folders (SPEC §4.1): naming rules, the refusal to overwrite results, saved configs.

use crate::config::Merged;
use crate::fsutil::write_atomic;
use anyhow::{bail, Context, Result};
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
}
