//! `metricbench config [run/tune flags] [--format text|json]`: shows the merged config and its search
//! space, running nothing. The JSON form is documented in `docs/configs.md`.

use crate::args::CommonArgs;
use crate::config::{self, Merged};
use crate::search_space::SearchSpace;
use anyhow::{bail, Result};
use serde_yaml::Value;

/// Output format of `metricbench config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The combined config as YAML, then the search space as a commented table (the whole output
    /// stays valid YAML).
    Text,
    /// `{"config": {...}, "categories": {category: {...}}, "search_space": [...]}`.
    Json,
}

/// What `metricbench config` computed.
#[derive(Debug, Clone)]
pub struct ConfigView {
    pub args: CommonArgs,
    pub merged: Merged,
    pub space: SearchSpace,
    pub format: Format,
}

impl ConfigView {
    /// Parses the command line, loads and merges the configs and extracts the search space.
    /// `--experiment_name` is accepted and ignored; other tool flags (e.g. tune's) are ignored too.
    pub fn from_tokens(tokens: &[String]) -> Result<ConfigView> {
        let args = CommonArgs::from_tokens(tokens)?;
        let format = match args.tool_flag("format") {
            None => Format::Text,
            Some(Value::String(s)) if s == "json" => Format::Json,
            Some(Value::String(s)) if s == "text" || s == "yaml" => Format::Text,
            Some(other) => bail!(
                "--format expects `text` or `json`, got {}",
                serde_yaml::to_string(other).unwrap_or_default().trim()
            ),
        };
        let merged = args.load()?;
        let space = SearchSpace::from_merged(&merged)?;
        Ok(ConfigView {
            args,
            merged,
            space,
            format,
        })
    }

    /// The stable JSON object: `config` (all categories combined, search keywords kept),
    /// `categories` (each category's merged map, in category order) and `search_space` (one object
    /// per parameter, see [`crate::search_space::Parameter::to_json`]).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let mut categories = serde_json::Map::new();
        for (name, map) in &self.merged.categories {
            categories.insert(
                name.clone(),
                config::yaml_to_json(&Value::Mapping(map.clone()))?,
            );
        }
        Ok(serde_json::json!({
            "config": config::yaml_to_json(&Value::Mapping(self.merged.combined()))?,
            "categories": categories,
            "search_space": self.space.to_json(),
        }))
    }

    /// The text form: YAML of the combined config, then the search space as `#` comment lines.
    pub fn to_text(&self) -> Result<String> {
        let mut out = String::from("# merged config (");
        let files: Vec<String> = self
            .args
            .selection
            .files
            .iter()
            .map(|(c, names)| format!("{c}: {}", names.join(" ")))
            .collect();
        out.push_str(&files.join("; "));
        out.push_str(&format!(
            "; from {})\n",
            self.args.selection.root_config_folder.display()
        ));
        out.push_str(&serde_yaml::to_string(&self.merged.combined())?);
        if self.space.is_empty() {
            out.push_str(
                "# search space: none (no ~BAYESIAN~, ~LOG_BAYESIAN~, ~INT_BAYESIAN~, \
                 ~LOG_INT_BAYESIAN~ or ~CHOICE~ keys)\n",
            );
        } else {
            out.push_str(&format!(
                "# search space: {} parameter(s); `metricbench run` uses the midpoints, \
                 `metricbench tune` searches them\n",
                self.space.len()
            ));
            for line in self.space.table().lines() {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Whether the merged config can be run: every object spec names exactly one class
    /// ([`config::check_object_specs`]). `metricbench config` prints the config first, then this
    /// error, and exits non-zero.
    pub fn validate(&self) -> Result<()> {
        config::check_object_specs(&self.merged, &self.args.selection)
    }

    /// The output in the requested format.
    pub fn render(&self) -> Result<String> {
        match self.format {
            Format::Text => self.to_text(),
            Format::Json => Ok(format!(
                "{}\n",
                serde_json::to_string_pretty(&self.to_json()?)?
            )),
        }
    }
}
