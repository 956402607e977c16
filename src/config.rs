//! Configuration loading (SPEC §3): one folder per category, a list of YAML files per category merged
//! in order, categories combined at the top level, command-line values applied last.

use crate::cli_values::CliValue;
use anyhow::{bail, Context, Result};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// Config categories, in the order the original tool combines them (a later category wins a clash).
pub const CATEGORIES: [&str; 6] = [
    "config_general",
    "config_models",
    "config_optimizers",
    "config_loss_and_miners",
    "config_transforms",
    "config_eval",
];

/// Which files to load: `<root>/<category>/<name>.yaml` for each name of each category.
#[derive(Debug, Clone)]
pub struct Selection {
    pub root_config_folder: PathBuf,
    pub files: Vec<(String, Vec<String>)>,
}

impl Selection {
    /// The `default` file of every category.
    pub fn defaults(root_config_folder: impl Into<PathBuf>) -> Self {
        Selection {
            root_config_folder: root_config_folder.into(),
            files: CATEGORIES
                .iter()
                .map(|c| (c.to_string(), vec!["default".to_string()]))
                .collect(),
        }
    }

    /// Replaces a category's file list (from `--config_models a b c`).
    pub fn set(&mut self, category: &str, names: Vec<String>) -> Result<()> {
        match self.files.iter_mut().find(|(c, _)| c == category) {
            Some(entry) => entry.1 = names,
            None => bail!(
                "unknown config category --{category}; expected one of {}",
                CATEGORIES.join(", ")
            ),
        }
        Ok(())
    }
}

/// The merged configuration, per category (what gets saved) and combined (what the worker runs).
#[derive(Debug, Clone)]
pub struct Merged {
    pub categories: Vec<(String, Mapping)>,
}

impl Merged {
    /// All categories combined into one top-level map; a key present in two categories takes the
    /// later category's value.
    pub fn combined(&self) -> Mapping {
        let mut out = Mapping::new();
        for (_, map) in &self.categories {
            for (k, v) in map {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

/// Recursive merge: maps merge key by key; everything else (scalars, lists, null) is replaced.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Reads one YAML file that must hold a mapping at its top level (an empty file is an empty map).
pub fn read_yaml_map(path: &Path) -> Result<Mapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let value: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("malformed YAML in {}", path.display()))?;
    match value {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        other => bail!(
            "{} must hold a mapping of config keys at its top level, found {}",
            path.display(),
            kind_name(&other)
        ),
    }
}

pub fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn available_names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yaml").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Loads and merges the selected files, then applies command-line values: after every file to the
/// top-level keys that file has, and at the end (to the last category) for keys no file has.
pub fn load(selection: &Selection, cli: &[CliValue]) -> Result<Merged> {
    let root = &selection.root_config_folder;
    if !root.is_dir() {
        bail!(
            "the config folder {} does not exist or is not a folder (set --root_config_folder)",
            root.display()
        );
    }
    let mut categories = Vec::new();
    let mut seen_keys = std::collections::HashSet::new();
    for (category, names) in &selection.files {
        let folder = root.join(category);
        if !folder.is_dir() {
            bail!(
                "the config category folder {} is missing from {}",
                category,
                root.display()
            );
        }
        let mut merged = Value::Mapping(Mapping::new());
        for name in names {
            let path = folder.join(format!("{name}.yaml"));
            if !path.is_file() {
                bail!(
                    "--{category} names {name:?}, but {} does not exist; available in {}: {}",
                    path.display(),
                    folder.display(),
                    available_names(&folder).join(", ")
                );
            }
            let file_map = read_yaml_map(&path)?;
            deep_merge(&mut merged, &Value::Mapping(file_map.clone()));
            for cv in cli {
                let key = Value::String(cv.key.clone());
                if file_map.contains_key(&key) {
                    deep_merge(&mut merged, &single(&cv.key, &cv.value));
                }
            }
        }
        let Value::Mapping(map) = merged else {
            unreachable!("merging maps yields a map")
        };
        for k in map.keys() {
            if let Some(s) = k.as_str() {
                seen_keys.insert(s.to_string());
            }
        }
        categories.push((category.clone(), map));
    }
    // Keys that no file defines are added to the last category, in command-line order.
    if let Some((_, last)) = categories.last_mut() {
        for cv in cli {
            if !seen_keys.contains(&cv.key) {
                last.insert(Value::String(cv.key.clone()), cv.value.clone());
            }
        }
    }
    Ok(Merged { categories })
}

fn single(key: &str, value: &Value) -> Value {
    let mut m = Mapping::new();
    m.insert(Value::String(key.to_string()), value.clone());
    Value::Mapping(m)
}

/// Converts a YAML value to JSON for the worker job (YAML maps with non-string keys are refused).
pub fn yaml_to_json(v: &Value) -> Result<serde_json::Value> {
    serde_json::to_value(v).context("the config cannot be expressed as JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn deep_merge_merges_maps_and_replaces_the_rest() {
        let mut base = y("{a: {b: 1, c: [1, 2]}, d: x}");
        deep_merge(&mut base, &y("{a: {c: [3], e: 4}, d: null}"));
        assert_eq!(base, y("{a: {b: 1, c: [3], e: 4}, d: null}"));
        let keys: Vec<_> = base["a"].as_mapping().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec![y("b"), y("c"), y("e")]);
    }

    #[test]
    fn load_applies_cli_to_existing_keys_and_appends_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        for c in CATEGORIES {
            std::fs::create_dir_all(dir.path().join(c)).unwrap();
            std::fs::write(dir.path().join(c).join("default.yaml"), "").unwrap();
        }
        std::fs::write(
            dir.path().join("config_general/default.yaml"),
            "batch_size: 32\npatience: 9\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config_general/big.yaml"),
            "batch_size: 256\n",
        )
        .unwrap();
        let mut sel = Selection::defaults(dir.path());
        sel.set("config_general", vec!["default".into(), "big".into()])
            .unwrap();
        let cli = crate::cli_values::parse(&[
            "--batch_size".into(),
            "64".into(),
            "--brand_new".into(),
            "7".into(),
        ])
        .unwrap();
        let merged = load(&sel, &cli).unwrap();
        let all = merged.combined();
        assert_eq!(all[&y("batch_size")], y("64"));
        assert_eq!(all[&y("brand_new")], y("7"));
        let err = sel.set("config_nope", vec![]).unwrap_err().to_string();
        assert!(err.contains("config_nope"));
        sel.set("config_models", vec!["missing".into()]).unwrap();
        let err = load(&sel, &[]).unwrap_err().to_string();
        assert!(
            err.contains("missing.yaml") && err.contains("available"),
            "{err}"
        );
    }
}
