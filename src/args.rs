//! Command-line arguments shared by `run`, `tune` and `config`: tool flags (the original's argparse
//! flags) are separated from config overrides (everything else; docs/configs.md).

use crate::cli_values::{self, CliValue};
use crate::config::{self, Merged, Selection};
use crate::flags;
use anyhow::{bail, Context, Result};
use serde_yaml::Value;
use std::path::PathBuf;

/// The parsed command line of `run`, `tune` or `config`.
#[derive(Debug, Clone)]
pub struct CommonArgs {
    pub experiment_name: Option<String>,
    pub root_experiment_folder: PathBuf,
    pub dataset_root: PathBuf,
    /// Which config files to load (`--root_config_folder`, `--config_<category> a b c`).
    pub selection: Selection,
    /// Tool flags other than the four above, in command-line order (e.g. `--bayes_opt_iters 50`).
    pub tool_flags: Vec<CliValue>,
    /// Config overrides `--KEY VALUE`, in command-line order.
    pub overrides: Vec<CliValue>,
}

/// A single word (`--experiment_name exp1`, `--dataset_root /data`).
pub fn as_string(cv: &CliValue) -> Result<String> {
    match &cv.value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => bail!(
            "--{} expects a single word, got {}",
            cv.key,
            config::kind_name(other)
        ),
    }
}

fn as_names(cv: &CliValue) -> Result<Vec<String>> {
    match &cv.value {
        Value::Sequence(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => bail!(
                    "--{} expects config file names, got {}",
                    cv.key,
                    config::kind_name(other)
                ),
            })
            .collect(),
        Value::Bool(true) => bail!(
            "--{} needs at least one config file name, e.g. --{} default",
            cv.key,
            cv.key
        ),
        _ => Ok(vec![as_string(cv)?]),
    }
}

/// The config folder used when `--root_config_folder` is not given: `./configs`, else the shipped
/// configs of the source tree this binary was built from.
pub fn default_config_folder() -> PathBuf {
    let local = PathBuf::from("configs");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// Pulls `--config_<anything> a b c` out of the token list (several plain words are a list here,
/// unlike any other flag), leaving the other tokens for the YAML value parser. A YAML list
/// (`--config_general [default, with_cars196]`) is left to the value parser.
fn split_category_lists(tokens: &[String]) -> (Vec<CliValue>, Vec<String>) {
    let mut lists = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let is_category = t.starts_with("--config_") && cli_values::is_flag(t);
        let next_is_list = tokens.get(i + 1).is_some_and(|n| n.starts_with('['));
        if is_category && !next_is_list {
            let key = t[2..].to_string();
            let mut names = Vec::new();
            i += 1;
            while i < tokens.len() && !cli_values::is_flag(&tokens[i]) {
                names.push(Value::String(tokens[i].clone()));
                i += 1;
            }
            lists.push(CliValue {
                key,
                value: Value::Sequence(names),
            });
        } else {
            rest.push(t.clone());
            i += 1;
        }
    }
    (lists, rest)
}

impl CommonArgs {
    /// Parses the raw tokens after the subcommand.
    pub fn from_tokens(tokens: &[String]) -> Result<CommonArgs> {
        let (category_lists, rest) = split_category_lists(tokens);
        let values = cli_values::parse(&rest)?;
        let mut experiment_name = None;
        let mut root_experiment_folder = PathBuf::from("experiments");
        let mut dataset_root = PathBuf::from("datasets");
        let mut root_config_folder = None;
        let mut tool_flags = Vec::new();
        let mut lists = Vec::new();
        let mut overrides = Vec::new();
        for cv in values {
            match cv.key.as_str() {
                "experiment_name" => experiment_name = Some(as_string(&cv)?),
                "root_experiment_folder" => root_experiment_folder = as_string(&cv)?.into(),
                "dataset_root" => dataset_root = as_string(&cv)?.into(),
                "root_config_folder" => root_config_folder = Some(PathBuf::from(as_string(&cv)?)),
                k if k.starts_with("config_") => lists.push(cv),
                // Tool flags (the table in `flags`) other than the four above.
                k if flags::is_tool_flag(k) => tool_flags.push(cv),
                _ => overrides.push(cv),
            }
        }
        let mut selection =
            Selection::defaults(root_config_folder.unwrap_or_else(default_config_folder));
        for cv in lists.iter().chain(&category_lists) {
            selection.set(&cv.key, as_names(cv)?)?;
        }
        Ok(CommonArgs {
            experiment_name,
            root_experiment_folder,
            dataset_root,
            selection,
            tool_flags,
            overrides,
        })
    }

    /// The value of a tool flag (the last one if repeated).
    pub fn tool_flag(&self, name: &str) -> Option<&Value> {
        self.tool_flags
            .iter()
            .rev()
            .find(|cv| cv.key == name)
            .map(|cv| &cv.value)
    }

    /// `--experiment_name`, which `run` and `tune` require.
    pub fn require_experiment_name(&self) -> Result<&str> {
        self.experiment_name.as_deref().context(
            "--experiment_name is required (the experiment's folder name inside --root_experiment_folder)",
        )
    }

    /// Loads and merges the selected config files with the overrides.
    pub fn load(&self) -> Result<Merged> {
        config::load(&self.selection, &self.overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn tool_flags_category_lists_and_overrides_are_separated() {
        let a = CommonArgs::from_tokens(&toks(
            "--config_general default with_cars196 --batch_size 64 --bayes_opt_iters 5 \
             --root_config_folder /cfg --config_models [default, big] --format json \
             --config_eval default.yaml",
        ))
        .unwrap();
        assert_eq!(a.experiment_name, None);
        assert_eq!(a.selection.root_config_folder, PathBuf::from("/cfg"));
        assert_eq!(
            a.selection.names("config_general"),
            ["default", "with_cars196"]
        );
        assert_eq!(a.selection.names("config_models"), ["default", "big"]);
        assert_eq!(a.selection.names("config_eval"), ["default"]);
        assert_eq!(a.overrides.len(), 1);
        assert_eq!(a.overrides[0].key, "batch_size");
        assert_eq!(a.tool_flag("bayes_opt_iters"), Some(&Value::from(5)));
        assert_eq!(a.tool_flag("format").and_then(Value::as_str), Some("json"));
        assert!(a.require_experiment_name().is_err());
    }

    #[test]
    fn bad_category_flags_are_errors() {
        let e = CommonArgs::from_tokens(&toks("--config_foo a b"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown config category --config_foo"), "{e}");
        let e = CommonArgs::from_tokens(&toks("--config_general --x 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one config file name"), "{e}");
    }
}
