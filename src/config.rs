//! Configuration loading (docs/configs.md): one folder per category, a list of YAML files per category merged
//! in order, command-line values re-applied after every file, categories combined at the top level.
//!
//! The merge follows the original tool's config library (easy-module-attribute-getter 0.9.41,
//! `merge_two_dicts`) with its keywords, recognised as key suffixes at any depth, in files and on the
//! command line:
//! - `key~OVERRIDE~: v` replaces `key` wholesale instead of merging into it;
//! - `key~APPLY~n: {..}` merges the map into every map found `n` levels below `key` (1 = `key`'s value);
//! - `key~SWAP~n: {New: null}` renames the single key `n` levels down; `{Old: New}` renames a named one;
//! - `key~DELETE~: anything` removes `key`.
//!
//! Deliberate differences from the original, each a fix of behaviour nobody relies on:
//! - keywords nested inside a value that is inserted as a whole (a new key, an override) are resolved
//!   too, so no `~OVERRIDE~` ever survives into a saved config;
//! - `~SWAP~` renames in place (the original moved the renamed key to the end, which would reorder a
//!   transform pipeline);
//! - `~APPLY~` replaces only `null` leaves at the target depth (a class with no kwargs), never other
//!   scalars such as an optimizer's `clip_grad_norm: 1.0`;
//! - `--key~DELETE~` on the command line removes `key` (the original re-added it as `key: {}`);
//! - a keyword that cannot act (`~APPLY~` on a missing key, `~SWAP~` of one key among several, a
//!   malformed depth) is an error naming the file and key, instead of a crash or a silent no-op.

use crate::cli_values::CliValue;
use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// Config categories, in the order they are combined (a later category wins a top-level clash).
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

    /// Replaces a category's file list (from `--config_models a b c`). A trailing `.yaml` is
    /// accepted and dropped.
    pub fn set(&mut self, category: &str, names: Vec<String>) -> Result<()> {
        let Some(entry) = self.files.iter_mut().find(|(c, _)| c == category) else {
            bail!(
                "unknown config category --{category}; expected one of {}",
                CATEGORIES.join(", ")
            );
        };
        if names.is_empty() {
            bail!("--{category} needs at least one config file name, e.g. --{category} default");
        }
        entry.1 = names
            .into_iter()
            .map(|n| n.strip_suffix(".yaml").map(str::to_string).unwrap_or(n))
            .collect();
        Ok(())
    }

    /// The file names selected for a category.
    pub fn names(&self, category: &str) -> &[String] {
        self.files
            .iter()
            .find(|(c, _)| c == category)
            .map_or(&[], |(_, n)| n.as_slice())
    }
}

/// The merged configuration, per category (what gets saved) and combined (what the worker runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub categories: Vec<(String, Mapping)>,
}

impl Merged {
    /// All categories combined into one top-level map; a key present in two categories takes the
    /// later category's value (at the position where it first appeared).
    pub fn combined(&self) -> Mapping {
        let mut out = Mapping::new();
        for (_, map) in &self.categories {
            for (k, v) in map {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// One category's merged map.
    pub fn category(&self, name: &str) -> Option<&Mapping> {
        self.categories
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, m)| m)
    }
}

// ------------------------------------------------------------------------------------------------
// Merge engine

/// Which top-level keys of the overlay a merge considers (the original's `only_existing_keys` /
/// `only_non_existing_keys`; nested levels always consider every key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    All,
    /// Only keys the base already has (command-line values re-applied after each file).
    OnlyExisting,
    /// Only keys the base lacks.
    OnlyNew,
}

/// Options of [`merge_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeOptions {
    /// Maps deeper than this are replaced instead of merged (`Some(0)`: top-level keys replace
    /// wholesale, as when combining categories or reloading config diffs). `None`: unlimited.
    pub max_depth: Option<usize>,
    pub scope: KeyScope,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            max_depth: None,
            scope: KeyScope::All,
        }
    }
}

pub const OVERRIDE: &str = "~OVERRIDE~";
pub const APPLY: &str = "~APPLY~";
pub const SWAP: &str = "~SWAP~";
pub const DELETE: &str = "~DELETE~";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Plain,
    Override,
    Apply(usize),
    Swap(usize),
    Delete,
}

/// Splits a key into its plain name and merge keyword.
fn classify(key: &Value) -> std::result::Result<(Value, Op), String> {
    let Value::String(s) = key else {
        return Ok((key.clone(), Op::Plain));
    };
    let depth = |rest: &str, kw: &str| -> std::result::Result<usize, String> {
        match rest.parse::<usize>() {
            Ok(n) if n >= 1 && rest.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(format!(
                "`{s}`: {kw} must be followed by a depth of 1 or more, as in `optimizers{kw}3`"
            )),
        }
    };
    let (base, op) = if let Some(b) = s.strip_suffix(OVERRIDE) {
        (b, Op::Override)
    } else if let Some(b) = s.strip_suffix(DELETE) {
        (b, Op::Delete)
    } else if let Some(pos) = s.rfind(APPLY) {
        (&s[..pos], Op::Apply(depth(&s[pos + APPLY.len()..], APPLY)?))
    } else if let Some(pos) = s.rfind(SWAP) {
        (&s[..pos], Op::Swap(depth(&s[pos + SWAP.len()..], SWAP)?))
    } else {
        return Ok((key.clone(), Op::Plain));
    };
    if base.is_empty() {
        return Err(format!("`{s}` has no key name in front of its keyword"));
    }
    Ok((Value::String(base.to_string()), op))
}

/// Text of a key for paths and messages.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".to_string()),
    }
}

struct Ctx<'a> {
    origin: &'a str,
    max_depth: Option<usize>,
}

impl Ctx<'_> {
    fn err(&self, path: &[String], msg: impl std::fmt::Display) -> anyhow::Error {
        if path.is_empty() {
            anyhow!("{}: {msg}", self.origin)
        } else {
            anyhow!("{}: at `{}`: {msg}", self.origin, path.join("/"))
        }
    }

    fn unlimited(&self) -> Ctx<'_> {
        Ctx {
            origin: self.origin,
            max_depth: None,
        }
    }
}

fn merge_inner(
    base: &Mapping,
    overlay: &Mapping,
    depth: usize,
    scope: KeyScope,
    ctx: &Ctx,
    path: &mut Vec<String>,
) -> Result<Mapping> {
    if ctx.max_depth.is_some_and(|max| depth > max) {
        return resolve_map(overlay, ctx, path);
    }
    let mut z = base.clone();
    for (key, v) in overlay {
        let (k, op) = classify(key).map_err(|m| ctx.err(path, m))?;
        let exists = z.contains_key(&k);
        let eligible = match scope {
            KeyScope::All => true,
            KeyScope::OnlyExisting => exists,
            KeyScope::OnlyNew => !exists,
        };
        if !eligible {
            continue;
        }
        path.push(key_text(key));
        match op {
            Op::Delete => {
                z.shift_remove(&k);
            }
            Op::Plain | Op::Override => {
                let new = match (z.get(&k), v) {
                    (Some(Value::Mapping(old)), Value::Mapping(new)) if op == Op::Plain => {
                        Value::Mapping(merge_inner(old, new, depth + 1, KeyScope::All, ctx, path)?)
                    }
                    _ => resolve_value(v, ctx, path)?,
                };
                z.insert(k, new);
            }
            Op::Apply(n) | Op::Swap(n) => {
                let swap = matches!(op, Op::Swap(_));
                let Value::Mapping(y) = v else {
                    return Err(ctx.err(
                        path,
                        format!(
                            "the value of a {} key must be a mapping, found {}",
                            if swap { SWAP } else { APPLY },
                            kind_name(v)
                        ),
                    ));
                };
                let name = key_text(&k);
                let target = match z.get(&k) {
                    Some(Value::Mapping(t)) => t,
                    Some(other) => {
                        return Err(ctx.err(
                            path,
                            format!("`{name}` is {}, not a mapping", kind_name(other)),
                        ))
                    }
                    None => {
                        return Err(ctx.err(
                            path,
                            format!(
                                "there is no `{name}` to {} at this point",
                                if swap { "rename keys in" } else { "apply to" }
                            ),
                        ))
                    }
                };
                let new = apply_to(target, y, 1, n, swap, &ctx.unlimited(), path)?;
                z.insert(k, Value::Mapping(new));
            }
        }
        path.pop();
    }
    Ok(z)
}

/// Resolves the keywords inside a value inserted as a whole (merging it onto nothing).
fn resolve_value(v: &Value, ctx: &Ctx, path: &mut Vec<String>) -> Result<Value> {
    match v {
        Value::Mapping(m) => Ok(Value::Mapping(resolve_map(m, ctx, path)?)),
        other => Ok(other.clone()),
    }
}

fn resolve_map(m: &Mapping, ctx: &Ctx, path: &mut Vec<String>) -> Result<Mapping> {
    merge_inner(&Mapping::new(), m, 0, KeyScope::All, &ctx.unlimited(), path)
}

/// The original's `apply_to_dict`: walk down to `depth` below the keyword's key, then merge `y`
/// into (or, for swaps, rename keys of) every map found there.
fn apply_to(
    z: &Mapping,
    y: &Mapping,
    curr: usize,
    depth: usize,
    swap: bool,
    ctx: &Ctx,
    path: &mut Vec<String>,
) -> Result<Mapping> {
    if curr == depth {
        return if swap {
            swap_keys(z, y, ctx, path)
        } else {
            merge_inner(z, y, 0, KeyScope::All, ctx, path)
        };
    }
    let mut out = Mapping::new();
    for (k, val) in z {
        path.push(key_text(k));
        let new = match val {
            Value::Mapping(m) => Value::Mapping(apply_to(m, y, curr + 1, depth, swap, ctx, path)?),
            Value::Null if curr + 1 == depth && !swap => Value::Mapping(resolve_map(y, ctx, path)?),
            other => other.clone(),
        };
        path.pop();
        out.insert(k.clone(), new);
    }
    Ok(out)
}

/// Renames `old` to `new` keeping its position (an existing `new` entry is dropped).
fn rename(x: &Mapping, old: &Value, new: &Value) -> Mapping {
    let mut out = Mapping::new();
    for (k, v) in x {
        if k == old {
            out.insert(new.clone(), v.clone());
        } else if k != new {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn swap_keys(x: &Mapping, y: &Mapping, ctx: &Ctx, path: &[String]) -> Result<Mapping> {
    let mut x = x.clone();
    for (k, v) in y {
        let explicit = match v {
            Value::Null => false,
            Value::Mapping(m) if m.is_empty() => false,
            Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
            other => {
                return Err(ctx.err(
                    path,
                    format!(
                        "a {SWAP} entry is `{{New: null}}` or `{{Old: New}}`; `{}` maps to {}",
                        key_text(k),
                        kind_name(other)
                    ),
                ))
            }
        };
        if explicit {
            if x.contains_key(k) {
                x = rename(&x, k, v);
            }
        } else if !x.contains_key(k) {
            if x.len() != 1 {
                let keys: Vec<String> = x.keys().map(key_text).collect();
                return Err(ctx.err(
                    path,
                    format!(
                        "`{{{}: null}}` renames the only key at that depth, but there {} {}: {}; \
                         name the key to rename with `{{Old: {}}}`",
                        key_text(k),
                        if keys.len() == 1 { "is" } else { "are" },
                        keys.len(),
                        if keys.is_empty() {
                            "none".to_string()
                        } else {
                            keys.join(", ")
                        },
                        key_text(k)
                    ),
                ));
            }
            let only = x.keys().next().cloned().expect("one key");
            x = rename(&x, &only, k);
        }
    }
    Ok(x)
}

/// Merges `overlay` into `base` with unlimited depth, all keys considered. `origin` (a file path or
/// "the command line") prefixes error messages.
pub fn merge(base: &Mapping, overlay: &Mapping, origin: &str) -> Result<Mapping> {
    merge_with(base, overlay, MergeOptions::default(), origin)
}

/// Merges `overlay` into `base` (the original's `merge_two_dicts`), see the module documentation.
pub fn merge_with(
    base: &Mapping,
    overlay: &Mapping,
    options: MergeOptions,
    origin: &str,
) -> Result<Mapping> {
    let ctx = Ctx {
        origin,
        max_depth: options.max_depth,
    };
    merge_inner(base, overlay, 0, options.scope, &ctx, &mut Vec::new())
}

/// Resolves the merge keywords of a standalone map (as if merged onto an empty map).
pub fn resolve(map: &Mapping, origin: &str) -> Result<Mapping> {
    merge(&Mapping::new(), map, origin)
}

// ------------------------------------------------------------------------------------------------
// Files

/// Reads one YAML file that must hold a mapping at its top level (an empty file is an empty map).
/// Malformed YAML is reported with the file, line and column.
pub fn read_yaml_map(path: &Path) -> Result<Mapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_yaml_map(&text, &path.display().to_string())
}

/// Parses YAML text that must hold a mapping; `origin` names it in errors.
pub fn parse_yaml_map(text: &str, origin: &str) -> Result<Mapping> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(l) => anyhow!(
            "malformed YAML in {origin} at line {}, column {}: {e}",
            l.line(),
            l.column()
        ),
        None => anyhow!("malformed YAML in {origin}: {e}"),
    })?;
    match value {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        other => bail!(
            "{origin} must hold a mapping of config keys at its top level, found {}",
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

/// The `.yaml` file names (without extension) in a folder, sorted.
pub fn available_names(folder: &Path) -> Vec<String> {
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

/// The command-line values as one map, in command-line order (a repeated flag: the last value wins).
pub fn cli_mapping(cli: &[CliValue]) -> Mapping {
    let mut m = Mapping::new();
    for cv in cli {
        m.insert(Value::String(cv.key.clone()), cv.value.clone());
    }
    m
}

pub const COMMAND_LINE: &str = "the command line";

/// Loads and merges the selected files (docs/configs.md; the original config library 0.9.41's `load_yamls`): for each category,
/// each file is merged into the previous ones and the command-line values are then re-applied to the
/// top-level keys the category has so far; categories are combined at the top level; command-line
/// keys that no category has are appended to the last category, in command-line order. The result
/// is the merge as the original computed it; [`check_object_specs`] then tells whether every object
/// spec names one class (what `run` and `tune` require before starting anything).
pub fn load(selection: &Selection, cli: &[CliValue]) -> Result<Merged> {
    let root = &selection.root_config_folder;
    if !root.is_dir() {
        bail!(
            "the config folder {} does not exist or is not a folder (set --root_config_folder)",
            root.display()
        );
    }
    let cli_map = cli_mapping(cli);
    let only_existing = MergeOptions {
        max_depth: None,
        scope: KeyScope::OnlyExisting,
    };
    let mut categories = Vec::new();
    for (category, names) in &selection.files {
        let folder = root.join(category);
        if !folder.is_dir() {
            bail!(
                "the config category folder {category} is missing from {} (expected {})",
                root.display(),
                folder.display()
            );
        }
        if names.is_empty() {
            bail!("--{category} needs at least one config file name");
        }
        let mut acc = Mapping::new();
        for name in names {
            let path = folder.join(format!("{name}.yaml"));
            if !path.is_file() {
                let available = available_names(&folder);
                bail!(
                    "--{category} names {name:?}, but {} does not exist; available in {}: {}",
                    path.display(),
                    folder.display(),
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                );
            }
            let file_map = read_yaml_map(&path)?;
            acc = merge(&acc, &file_map, &path.display().to_string())?;
            acc = merge_with(&acc, &cli_map, only_existing, COMMAND_LINE)?;
        }
        categories.push((category.clone(), acc));
    }
    let mut merged = Merged { categories };
    append_cli_keys(&mut merged, &cli_map)?;
    Ok(merged)
}

/// Applies command-line values to configs that were merged before (an experiment's saved configs
/// when it is resumed or evaluated) the way [`load`] applies them to the files: merged into the
/// top-level keys each category has, then keys no category has appended to the last category.
pub fn apply_command_line(merged: &mut Merged, cli: &[CliValue]) -> Result<()> {
    let cli_map = cli_mapping(cli);
    let only_existing = MergeOptions {
        max_depth: None,
        scope: KeyScope::OnlyExisting,
    };
    for (_, map) in merged.categories.iter_mut() {
        *map = merge_with(map, &cli_map, only_existing, COMMAND_LINE)?;
    }
    append_cli_keys(merged, &cli_map)
}

/// Appends the command-line keys that no category has to the last category, in command-line order.
fn append_cli_keys(merged: &mut Merged, cli_map: &Mapping) -> Result<()> {
    let combined = merged.combined();
    let mut added = Mapping::new();
    for (key, value) in cli_map {
        let (k, op) = classify(key).map_err(|m| anyhow!("{COMMAND_LINE}: {m}"))?;
        if op == Op::Delete || combined.contains_key(&k) {
            continue;
        }
        let mut path = vec![key_text(&k)];
        let ctx = Ctx {
            origin: COMMAND_LINE,
            max_depth: None,
        };
        let v = resolve_value(value, &ctx, &mut path)?;
        added.insert(k, v);
    }
    if let Some((_, last)) = merged.categories.last_mut() {
        for (k, v) in added {
            last.insert(k, v);
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Object specs

/// Top-level keys whose every child is an object spec `{ClassName: kwargs}`.
pub const SPEC_CONTAINERS: [&str; 4] = ["models", "loss_funcs", "mining_funcs", "optimizers"];
/// Top-level keys that are themselves object specs.
pub const SPEC_KEYS: [&str; 2] = ["sampler", "dataset"];
/// Keys allowed next to an optimizer's class (the original pops them before building it).
pub const OPTIMIZER_EXTRAS: [&str; 4] = [
    "scheduler_by_iteration",
    "scheduler_by_epoch",
    "scheduler_by_plateau",
    "clip_grad_norm",
];

fn check_spec(path: &str, spec: &Value, extras: &[&str]) -> std::result::Result<(), String> {
    let Value::Mapping(m) = spec else {
        return Ok(());
    };
    let classes: Vec<String> = m
        .keys()
        .map(key_text)
        .filter(|k| !extras.contains(&k.as_str()))
        .collect();
    if classes.len() > 1 {
        let last = path.rsplit('/').next().unwrap_or(path);
        return Err(format!(
            "`{path}` must name exactly one class ({{ClassName: kwargs}}), found {}; to replace the \
             class instead of merging into it write `{last}~OVERRIDE~: {{{}: ...}}`",
            classes.join(", "),
            classes.last().expect("two or more")
        ));
    }
    Ok(())
}

/// Checks that every object spec in the combined config names one class: merging
/// `{trunk_optimizer: {Adam: ..}}` into `{trunk_optimizer: {RMSprop: ..}}` yields two, which the
/// original only reported when building objects.
pub fn check_object_specs(merged: &Merged, selection: &Selection) -> Result<()> {
    let combined = merged.combined();
    let origin_of = |top: &str| -> String {
        let key = Value::String(top.to_string());
        match merged
            .categories
            .iter()
            .rev()
            .find(|(_, m)| m.contains_key(&key))
        {
            Some((cat, _)) => format!(
                "{cat} (files {} and the command line)",
                selection.names(cat).join(", ")
            ),
            None => "the merged config".to_string(),
        }
    };
    for top in SPEC_CONTAINERS {
        if let Some(Value::Mapping(children)) = combined.get(top) {
            let extras: &[&str] = if top == "optimizers" {
                &OPTIMIZER_EXTRAS
            } else {
                &[]
            };
            for (name, spec) in children {
                check_spec(&format!("{top}/{}", key_text(name)), spec, extras)
                    .map_err(|m| anyhow!("{}: {m}", origin_of(top)))?;
            }
        }
    }
    for top in SPEC_KEYS {
        if let Some(spec) = combined.get(top) {
            check_spec(top, spec, &[]).map_err(|m| anyhow!("{}: {m}", origin_of(top)))?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// JSON

/// Converts a YAML value to JSON (for the worker job and `metricbench config --format json`).
/// Scalar map keys become strings (`1: a` -> `"1": "a"`); non-finite floats become `null`; a tag is
/// dropped (its value kept). Maps with list or map keys are refused.
pub fn yaml_to_json(v: &Value) -> Result<serde_json::Value> {
    Ok(match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(items) => {
            serde_json::Value::Array(items.iter().map(yaml_to_json).collect::<Result<_>>()?)
        }
        Value::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                if matches!(k, Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_)) {
                    bail!(
                        "the config cannot be expressed as JSON: a map key is {} ({})",
                        kind_name(k),
                        key_text(k)
                    );
                }
                out.insert(key_text(k), yaml_to_json(v)?);
            }
            serde_json::Value::Object(out)
        }
        Value::Tagged(t) => yaml_to_json(&t.value)?,
    })
}

/// Converts JSON to YAML (trial parameter values into configs).
pub fn json_to_yaml(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                Value::Number(n.as_f64().unwrap_or(f64::NAN).into())
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Sequence(a.iter().map(json_to_yaml).collect()),
        serde_json::Value::Object(o) => Value::Mapping(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), json_to_yaml(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    fn m(s: &str) -> Mapping {
        serde_yaml::from_str(s).unwrap()
    }

    fn keys(map: &Mapping) -> Vec<String> {
        map.keys().map(key_text).collect()
    }

    #[test]
    fn plain_merge_merges_maps_and_replaces_the_rest() {
        let got = merge(
            &m("{a: {b: 1, c: [1, 2]}, d: x}"),
            &m("{a: {c: [3], e: 4}, d: null}"),
            "t",
        )
        .unwrap();
        assert_eq!(got, m("{a: {b: 1, c: [3], e: 4}, d: null}"));
        assert_eq!(keys(got["a"].as_mapping().unwrap()), ["b", "c", "e"]);
        // A map merged onto null replaces it; a scalar replaces a map.
        let got = merge(&m("{a: null, b: {x: 1}}"), &m("{a: {k: 1}, b: 3}"), "t").unwrap();
        assert_eq!(got, m("{a: {k: 1}, b: 3}"));
    }

    #[test]
    fn override_replaces_wholesale_at_any_depth() {
        let base = m("{o: {t: {R: {lr: 1, wd: 2}}, e: 1}}");
        let got = merge(&base, &m("{o: {t: {R~OVERRIDE~: {lr: 5}}}}"), "t").unwrap();
        assert_eq!(got, m("{o: {t: {R: {lr: 5}}, e: 1}}"));
        let got = merge(&base, &m("{o~OVERRIDE~: {z: 1}}"), "t").unwrap();
        assert_eq!(got, m("{o: {z: 1}}"));
        // Absent key: a plain set; nested keywords inside the inserted value are resolved.
        let got = merge(&base, &m("{n~OVERRIDE~: {q~OVERRIDE~: 1}}"), "t").unwrap();
        assert_eq!(got["n"], y("{q: 1}"));
    }

    #[test]
    fn apply_merges_into_every_map_at_depth() {
        let base = m("{opt: {a: {R: {lr: 1, m: 0.9}}, b: {R: {lr: 1}}}}");
        let got = merge(&base, &m("{opt~APPLY~3: {lr: 0.5}}"), "t").unwrap();
        assert_eq!(
            got,
            m("{opt: {a: {R: {lr: 0.5, m: 0.9}}, b: {R: {lr: 0.5}}}}")
        );
        let got = merge(&base, &m("{opt~APPLY~1: {c: 1}}"), "t").unwrap();
        assert_eq!(keys(got["opt"].as_mapping().unwrap()), ["a", "b", "c"]);
        // A null at the target depth (a class without kwargs) receives the map; scalars are kept.
        let base = m("{l: {metric: {Contrastive: null}, w: 3}}");
        let got = merge(&base, &m("{l~APPLY~3: {pos_margin: 0.1}}"), "t").unwrap();
        assert_eq!(
            got,
            m("{l: {metric: {Contrastive: {pos_margin: 0.1}}, w: 3}}")
        );
        let e = merge(&base, &m("{nope~APPLY~1: {a: 1}}"), "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.yaml") && e.contains("no `nope`"), "{e}");
        let e = merge(&base, &m("{l~APPLY~1: 3}"), "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a mapping"), "{e}");
        let e = merge(&base, &m("{l~APPLY~: {a: 1}}"), "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("depth of 1 or more") && e.contains("`l~APPLY~`"),
            "{e}"
        );
        let e = merge(&base, &m("{l~APPLY~0: {a: 1}}"), "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("depth of 1 or more"), "{e}");
    }

    #[test]
    fn swap_renames_in_place() {
        let base = m("{models: {trunk: {bn: {p: 1}}, emb: {MLP: null}}}");
        let got = merge(&base, &m("{models: {trunk~SWAP~1: {resnet50: null}}}"), "t").unwrap();
        assert_eq!(
            got,
            m("{models: {trunk: {resnet50: {p: 1}}, emb: {MLP: null}}}")
        );
        // Applying it twice changes nothing more (the command line is re-applied after each file).
        let again = merge(&got, &m("{models: {trunk~SWAP~1: {resnet50: null}}}"), "t").unwrap();
        assert_eq!(again, got);
        let t = m("{tf: {train: {A: 1, B: 2, C: 3}}}");
        let got = merge(&t, &m("{tf~SWAP~2: {B: X}}"), "t").unwrap();
        assert_eq!(
            keys(got["tf"]["train"].as_mapping().unwrap()),
            ["A", "X", "C"]
        );
        let e = merge(&t, &m("{tf~SWAP~2: {Q: null}}"), "g.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("g.yaml") && e.contains("there are 3: A, B, C"),
            "{e}"
        );
    }

    #[test]
    fn delete_removes_and_keeps_order() {
        let got = merge(
            &m("{a: 1, b: 2, c: 3}"),
            &m("{b~DELETE~: null, z~DELETE~: 1}"),
            "t",
        )
        .unwrap();
        assert_eq!(keys(&got), ["a", "c"]);
    }

    #[test]
    fn scopes_and_depth_limits() {
        let base = m("{a: {x: 1}, b: 2}");
        let over = m("{a: {y: 2}, c: 3}");
        let only_existing = MergeOptions {
            max_depth: None,
            scope: KeyScope::OnlyExisting,
        };
        assert_eq!(
            merge_with(&base, &over, only_existing, "t").unwrap(),
            m("{a: {x: 1, y: 2}, b: 2}")
        );
        let only_new = MergeOptions {
            max_depth: None,
            scope: KeyScope::OnlyNew,
        };
        assert_eq!(
            merge_with(&base, &over, only_new, "t").unwrap(),
            m("{a: {x: 1}, b: 2, c: 3}")
        );
        let depth0 = MergeOptions {
            max_depth: Some(0),
            scope: KeyScope::All,
        };
        assert_eq!(
            merge_with(&base, &over, depth0, "t").unwrap(),
            m("{a: {y: 2}, b: 2, c: 3}")
        );
    }

    #[test]
    fn search_keywords_are_plain_keys_to_the_merge() {
        let got = merge(
            &m("{l: {a~BAYESIAN~: [0, 1]}}"),
            &m("{l: {a~BAYESIAN~: [0, 2], b: 1}}"),
            "t",
        )
        .unwrap();
        assert_eq!(got, m("{l: {a~BAYESIAN~: [0, 2], b: 1}}"));
    }

    #[test]
    fn object_specs_must_name_one_class() {
        let sel = Selection::defaults("/nowhere");
        let merged = Merged {
            categories: vec![(
                "config_optimizers".into(),
                m("{optimizers: {t: {RMSprop: {lr: 1}, Adam: {lr: 2}}}}"),
            )],
        };
        let e = check_object_specs(&merged, &sel).unwrap_err().to_string();
        assert!(
            e.contains("`optimizers/t`") && e.contains("RMSprop, Adam"),
            "{e}"
        );
        assert!(
            e.contains("config_optimizers") && e.contains("t~OVERRIDE~"),
            "{e}"
        );
        let ok = Merged {
            categories: vec![(
                "config_optimizers".into(),
                m("{optimizers: {t: {Adam: {lr: 2}, scheduler_by_epoch: {StepLR: null}, clip_grad_norm: 1}}, sampler: null, dataset: {X: null}}"),
            )],
        };
        check_object_specs(&ok, &sel).unwrap();
        for bad in [
            "{sampler: {A: null, B: null}}",
            "{dataset: {C: 1, D: 2}}",
            "{models: {trunk: {A: 1, B: 2}}}",
            "{loss_funcs: {m: {A: 1, B: 2}}}",
            "{mining_funcs: {t: {A: 1, B: 2}}}",
        ] {
            let merged = Merged {
                categories: vec![("config_general".into(), m(bad))],
            };
            assert!(check_object_specs(&merged, &sel).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let e = parse_yaml_map("a: 1\nb: [1,\nc: 2\n", "x/f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed YAML in x/f.yaml at line 4"), "{e}");
        let e = parse_yaml_map("- 1\n- 2\n", "x/f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mapping") && e.contains("a list"), "{e}");
        let e = parse_yaml_map("a: 1\na: 2\n", "x/f.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate") && e.contains("line"), "{e}");
    }

    #[test]
    fn json_conversion() {
        let j = yaml_to_json(&y("{1: a, b: [1, 2.5, .inf, null, true]}")).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"1": "a", "b": [1, 2.5, null, null, true]})
        );
        assert!(yaml_to_json(&y("{[1]: a}")).is_err());
        assert_eq!(
            json_to_yaml(&serde_json::json!({"a": [1, 0.5, "x"]})),
            y("{a: [1, 0.5, x]}")
        );
    }
}
