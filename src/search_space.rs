//! The search space as the user writes it: config keys with a search keyword suffix define tunable
//! parameters, whose values are config values (JSON). The optimiser never sees this layer; it works
//! on a typed `crate::optimizer::Domain`, and `crate::study::sampler` translates between the two.
//!
//! ```yaml
//! loss_funcs:
//!   metric_loss:
//!     MultiSimilarityLoss:
//!       alpha~LOG_BAYESIAN~: [0.01, 100]   # float, log scale
//!       base~BAYESIAN~: [0, 1]             # float, linear
//! batch_size~INT_BAYESIAN~: [32, 256]      # integer, inclusive
//! embedding_size~LOG_INT_BAYESIAN~: [16, 512]   # integer, inclusive, log scale
//! sampler~CHOICE~: [{MPerClassSampler: {m: 4}}, null]   # categorical
//! ```
//! A parameter's name is the `/`-joined path of plain key names
//! (`loss_funcs/metric_loss/MultiSimilarityLoss/alpha`); parameters are ordered as the keys appear
//! (depth first). For a trial, [`SearchSpace::substitute_merged`] replaces every keyword key by the
//! plain key holding the trial's value, at the same position (if the plain key also exists, the
//! value takes the plain key's position and the keyword key goes). A plain `run` uses
//! [`SearchSpace::midpoints`].
//!
//! Typical use by a tuning loop:
//! ```no_run
//! # fn demo(merged: &metricbench::config::Merged) -> anyhow::Result<()> {
//! use metricbench::search_space::{Assignment, SearchSpace};
//! let space = SearchSpace::from_merged(merged)?;          // validated parameters, in order
//! let mut trial: Assignment = space.midpoints();           // or values from the optimiser
//! trial.insert(space.parameters[0].name.clone(), serde_json::json!(0.3));
//! let concrete = space.substitute_merged(merged, &trial)?; // plain keys everywhere
//! # let _ = concrete; Ok(()) }
//! ```
//!
//! A plain `run` of a config with search keys runs once at the midpoints and says so.

use crate::config::{json_to_yaml, key_text, kind_name, yaml_to_json, Merged};
use anyhow::{anyhow, bail, Result};
use serde_yaml::{Mapping, Value};

pub const BAYESIAN: &str = "~BAYESIAN~";
pub const LOG_BAYESIAN: &str = "~LOG_BAYESIAN~";
pub const INT_BAYESIAN: &str = "~INT_BAYESIAN~";
pub const LOG_INT_BAYESIAN: &str = "~LOG_INT_BAYESIAN~";
pub const CHOICE: &str = "~CHOICE~";
/// All search keywords, longest suffixes first.
pub const SEARCH_KEYWORDS: [&str; 5] = [
    LOG_INT_BAYESIAN,
    LOG_BAYESIAN,
    INT_BAYESIAN,
    BAYESIAN,
    CHOICE,
];

/// What values a parameter takes.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    /// A real number in `[low, high]`; `log`: searched on a log scale (`low > 0`).
    Float { low: f64, high: f64, log: bool },
    /// An integer in `[low, high]`, both inclusive; `log`: searched on a log scale (`low >= 1`).
    Int { low: i64, high: i64, log: bool },
    /// One of the listed values (any JSON-representable YAML value, in the order written).
    Choice(Vec<serde_json::Value>),
}

/// One tunable parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// `/`-joined path of plain key names, e.g. `optimizers/trunk_optimizer/Adam/lr`.
    pub name: String,
    pub kind: ParamKind,
}

/// A value per parameter name, as JSON (the form the worker protocol's `trial.parameters` uses):
/// floats as JSON numbers, ints as JSON integers, choices as the chosen value.
pub type Assignment = serde_json::Map<String, serde_json::Value>;

fn f64_json(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn fmt_num(x: f64) -> String {
    // Shortest round-trip form, e.g. 1e-6, 0.25, 50.
    format!("{x}")
}

impl Parameter {
    /// `"float"`, `"int"` or `"choice"`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ParamKind::Float { .. } => "float",
            ParamKind::Int { .. } => "int",
            ParamKind::Choice(_) => "choice",
        }
    }

    /// The value a plain run uses: the middle of the range (geometric middle on a log scale;
    /// rounded to the nearest integer, halves away from zero, for ints), or the first choice.
    pub fn midpoint(&self) -> serde_json::Value {
        match &self.kind {
            ParamKind::Float { low, high, log } => {
                let mid = if *log {
                    ((low.ln() + high.ln()) / 2.0).exp().clamp(*low, *high)
                } else {
                    // Halves first: `high - low` can overflow for huge bounds.
                    low / 2.0 + high / 2.0
                };
                // 12 significant digits: exp/ln round-off would show 1e-3 as 0.0010000000000000002.
                let tidy = format!("{mid:.11e}").parse::<f64>().unwrap_or(mid);
                f64_json(tidy.clamp(*low, *high))
            }
            ParamKind::Int {
                low,
                high,
                log: false,
            } => serde_json::Value::from(((*low as f64 + *high as f64) / 2.0).round() as i64),
            ParamKind::Int {
                low,
                high,
                log: true,
            } => serde_json::Value::from(
                ((*low as f64 * *high as f64).sqrt().round() as i64).clamp(*low, *high),
            ),
            ParamKind::Choice(choices) => choices[0].clone(),
        }
    }

    /// Checks a value for this parameter and returns it in canonical form (a float for `Float`,
    /// an integer for `Int`: `3.0` is accepted as `3`).
    pub fn normalize(&self, value: &serde_json::Value) -> Result<serde_json::Value> {
        let name = &self.name;
        match &self.kind {
            ParamKind::Float { low, high, .. } => {
                let x = value
                    .as_f64()
                    .ok_or_else(|| anyhow!("parameter `{name}` takes a number, got {value}"))?;
                let slack = 1e-9 * (high - low).abs().max(f64::MIN_POSITIVE);
                if !x.is_finite() || x < low - slack || x > high + slack {
                    bail!("parameter `{name}` must lie in [{low}, {high}], got {x}");
                }
                Ok(f64_json(x.clamp(*low, *high)))
            }
            ParamKind::Int { low, high, .. } => {
                let i = value
                    .as_i64()
                    .or_else(|| {
                        value
                            .as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(|| anyhow!("parameter `{name}` takes an integer, got {value}"))?;
                if i < *low || i > *high {
                    bail!("parameter `{name}` must lie in [{low}, {high}], got {i}");
                }
                Ok(serde_json::Value::from(i))
            }
            ParamKind::Choice(choices) => {
                if choices.contains(value) {
                    Ok(value.clone())
                } else {
                    bail!(
                        "parameter `{name}` must be one of {}, got {value}",
                        serde_json::Value::Array(choices.clone())
                    )
                }
            }
        }
    }

    /// `{"name", "type", "low", "high", "log", "choices"}`; `low`/`high` are null for a choice,
    /// `choices` is null for a range, `log` is false except for log-scale floats and ints.
    pub fn to_json(&self) -> serde_json::Value {
        let (low, high, log, choices) = match &self.kind {
            ParamKind::Float { low, high, log } => (
                f64_json(*low),
                f64_json(*high),
                *log,
                serde_json::Value::Null,
            ),
            ParamKind::Int { low, high, log } => (
                serde_json::Value::from(*low),
                serde_json::Value::from(*high),
                *log,
                serde_json::Value::Null,
            ),
            ParamKind::Choice(c) => (
                serde_json::Value::Null,
                serde_json::Value::Null,
                false,
                serde_json::Value::Array(c.clone()),
            ),
        };
        serde_json::json!({
            "name": self.name,
            "type": self.type_name(),
            "low": low,
            "high": high,
            "log": log,
            "choices": choices,
        })
    }
}

/// The tunable parameters of a config, in key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchSpace {
    pub parameters: Vec<Parameter>,
}

/// Splits `alpha~BAYESIAN~` into (`alpha`, `~BAYESIAN~`).
fn split_search_key(key: &str) -> Option<(&str, &'static str)> {
    SEARCH_KEYWORDS
        .iter()
        .find_map(|kw| key.strip_suffix(kw).map(|base| (base, *kw)))
}

/// A search keyword key: only a plain string key counts (a tagged key such as
/// `!t a~BAYESIAN~` is data, as it is to the merge).
fn search_key(key: &Value) -> Option<(&str, &'static str)> {
    match key {
        Value::String(s) => split_search_key(s),
        _ => None,
    }
}

fn join(prefix: &str, part: &str) -> String {
    if prefix.is_empty() {
        part.to_string()
    } else {
        format!("{prefix}/{part}")
    }
}

fn parse_parameter(name: String, key_path: &str, kw: &str, v: &Value) -> Result<Parameter> {
    let expected = if kw == CHOICE {
        "a non-empty list of choices [a, b, ...]"
    } else {
        "a list [low, high]"
    };
    let Value::Sequence(items) = v else {
        bail!("`{key_path}` must hold {expected}, found {}", kind_name(v));
    };
    if kw == CHOICE {
        if items.is_empty() {
            bail!("`{key_path}` must hold {expected}, found an empty list");
        }
        // A choice is a concrete value; nested search keywords would never be searched.
        check_no_keywords(items, key_path)?;
        let mut choices: Vec<serde_json::Value> = Vec::new();
        for item in items {
            let j = yaml_to_json(item)
                .map_err(|e| anyhow!("`{key_path}`: a choice cannot be used: {e}"))?;
            if choices.contains(&j) {
                bail!("`{key_path}` lists the choice {j} twice");
            }
            if let Some(first) = choices
                .iter()
                .find(|c| choice_kind(c).is_some() && choice_kind(c) != choice_kind(&j))
                .filter(|_| choice_kind(&j).is_some())
            {
                bail!(
                    "`{key_path}` mixes choice types: {first} is {} but {j} is {}; list values \
                     of one type (a component name and a {{Name: {{args}}}} map count as one \
                     type, and null may join any type as \"none\")",
                    choice_kind(first).unwrap_or("null"),
                    choice_kind(&j).unwrap_or("null")
                );
            }
            choices.push(j);
        }
        return Ok(Parameter {
            name,
            kind: ParamKind::Choice(choices),
        });
    }
    if items.len() != 2 {
        bail!(
            "`{key_path}` must hold {expected}, found a list of {} item(s)",
            items.len()
        );
    }
    let bound = |v: &Value| -> Result<f64> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| anyhow!("`{key_path}`: bounds must be finite numbers, found {n}")),
            other => bail!(
                "`{key_path}`: bounds must be numbers, found {} ({})",
                kind_name(other),
                serde_yaml::to_string(other).unwrap_or_default().trim()
            ),
        }
    };
    let (low, high) = (bound(&items[0])?, bound(&items[1])?);
    if low >= high {
        bail!(
            "`{key_path}`: the low bound must be below the high bound, found [{}, {}]",
            fmt_num(low),
            fmt_num(high)
        );
    }
    let kind = match kw {
        INT_BAYESIAN | LOG_INT_BAYESIAN => {
            let as_int = |x: f64| -> Result<i64> {
                if x.fract() != 0.0 || x.abs() >= 9.0e15 {
                    bail!(
                        "`{key_path}`: {kw} bounds must be integers, found {}",
                        fmt_num(x)
                    );
                }
                Ok(x as i64)
            };
            let log = kw == LOG_INT_BAYESIAN;
            let (low, high) = (as_int(low)?, as_int(high)?);
            if log && low < 1 {
                bail!(
                    "`{key_path}`: a log-scale integer range needs a low bound of at least 1, \
                     found [{low}, {high}]"
                );
            }
            ParamKind::Int { low, high, log }
        }
        LOG_BAYESIAN => {
            if low <= 0.0 {
                bail!(
                    "`{key_path}`: a log-scale range needs a low bound above 0, found [{}, {}]",
                    fmt_num(low),
                    fmt_num(high)
                );
            }
            ParamKind::Float {
                low,
                high,
                log: true,
            }
        }
        _ => ParamKind::Float {
            low,
            high,
            log: false,
        },
    };
    Ok(Parameter { name, kind })
}

/// The type class of a choice for the mixed-types check: `None` for null (an "off" option that
/// may join any type); a string and a map share one class, since both name a component (`Name`
/// or `{Name: {args}}`).
fn choice_kind(v: &serde_json::Value) -> Option<&'static str> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::String(_) | serde_json::Value::Object(_) => {
            Some("a name or {Name: args} map")
        }
        serde_json::Value::Array(_) => Some("a list"),
    }
}

/// A string value written like a keyword (`lr: ~BAYESIAN~ [0, 1]`) is a likely mistake.
fn check_keyword_value(path: &str, v: &Value) -> Result<()> {
    if let Value::String(s) = v {
        if let Some(kw) = SEARCH_KEYWORDS
            .iter()
            .find(|kw| s.trim_start().starts_with(**kw))
        {
            bail!(
                "`{path}` holds the string {s:?}: a search keyword goes on the key, as in \
                 `{}{kw}: [low, high]`",
                path.rsplit('/').next().unwrap_or(path)
            );
        }
    }
    Ok(())
}

fn walk(map: &Mapping, prefix: &str, key_prefix: &str, out: &mut Vec<Parameter>) -> Result<()> {
    for (k, v) in map {
        let kt = key_text(k);
        let key_path = join(key_prefix, &kt);
        if let (Value::String(s), Some((base, kw))) = (k, search_key(k)) {
            if base.is_empty() {
                bail!("`{key_path}`: the keyword {kw} needs a key name in front of it");
            }
            if base.contains('~') {
                bail!(
                    "`{key_path}`: a parameter name cannot contain `~` ({s:?}); a search keyword \
                     must come right after the name, with any merge keyword after it, e.g. \
                     `alpha{kw}~OVERRIDE~`"
                );
            }
            let name = join(prefix, base);
            if out.iter().any(|p| p.name == name) {
                bail!("`{key_path}`: the parameter `{name}` is defined twice");
            }
            out.push(parse_parameter(name, &key_path, kw, v)?);
            continue;
        }
        check_keyword_value(&key_path, v)?;
        match v {
            Value::Mapping(m) => walk(m, &join(prefix, &kt), &key_path, out)?,
            Value::Sequence(items) => check_no_keywords(items, &key_path)?,
            _ => {}
        }
    }
    Ok(())
}

/// Search keywords inside lists have no path name; refuse them rather than pass them on.
fn check_no_keywords(items: &[Value], key_path: &str) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        let here = format!("{key_path}[{i}]");
        match item {
            Value::Mapping(m) => {
                for (k, v) in m {
                    if let Some((_, kw)) = search_key(k) {
                        bail!(
                            "`{here}/{}`: {kw} is not supported inside a list; use a map",
                            key_text(k)
                        );
                    }
                    if let Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_) = v {
                        check_no_keywords(
                            std::slice::from_ref(v),
                            &format!("{here}/{}", key_text(k)),
                        )?;
                    }
                }
            }
            Value::Sequence(inner) => check_no_keywords(inner, &here)?,
            Value::Tagged(t) => check_no_keywords(std::slice::from_ref(&t.value), &here)?,
            _ => {}
        }
    }
    Ok(())
}

impl SearchSpace {
    /// Finds and validates the parameters of one config map (e.g. [`Merged::combined`]). Errors name
    /// the keyword key's full path and what was expected.
    pub fn from_config(config: &Mapping) -> Result<SearchSpace> {
        let mut parameters = Vec::new();
        walk(config, "", "", &mut parameters)?;
        Ok(SearchSpace { parameters })
    }

    /// The search space of a merged config (its combined map: what a run would use).
    pub fn from_merged(merged: &Merged) -> Result<SearchSpace> {
        Self::from_config(&merged.combined())
    }

    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.parameters.len()
    }

    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// Every parameter at its [`Parameter::midpoint`], in order.
    pub fn midpoints(&self) -> Assignment {
        self.parameters
            .iter()
            .map(|p| (p.name.clone(), p.midpoint()))
            .collect()
    }

    /// Checks that an assignment gives a valid value to every parameter and names no other, and
    /// returns it in canonical form and parameter order.
    pub fn check(&self, assignment: &Assignment) -> Result<Assignment> {
        if let Some(extra) = assignment.keys().find(|k| self.get(k).is_none()) {
            bail!(
                "`{extra}` is not a parameter of the search space (parameters: {})",
                self.names().join(", ")
            );
        }
        self.parameters
            .iter()
            .map(|p| {
                let v = assignment
                    .get(&p.name)
                    .ok_or_else(|| anyhow!("no value given for the parameter `{}`", p.name))?;
                Ok((p.name.clone(), p.normalize(v)?))
            })
            .collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.parameters.iter().map(|p| p.name.as_str()).collect()
    }

    /// Replaces every keyword key of `config` by its plain key holding the assigned value.
    pub fn substitute(&self, config: &Mapping, assignment: &Assignment) -> Result<Mapping> {
        let values = self.check(assignment)?;
        substitute_map(config, "", &|name| values.get(name).map(json_to_yaml))
    }

    /// Substitutes an assignment into every category of a merged config (the maps that get saved,
    /// and so the combined map the worker runs). A keyword key that only occurs in a category whose
    /// top-level key is shadowed by a later category (so it is not a parameter of this space) takes
    /// the midpoint of its own range, so saved configs never hold keyword keys.
    pub fn substitute_merged(&self, merged: &Merged, assignment: &Assignment) -> Result<Merged> {
        let values = self.check(assignment)?;
        let mut categories = Vec::new();
        for (category, map) in &merged.categories {
            let own = SearchSpace::from_config(map)
                .map_err(|e| anyhow!("{category}: {e}"))?
                .midpoints();
            let lookup = |name: &str| values.get(name).or_else(|| own.get(name)).map(json_to_yaml);
            let new = substitute_map(map, "", &lookup).map_err(|e| anyhow!("{category}: {e}"))?;
            categories.push((category.clone(), new));
        }
        let out = Merged { categories };
        // The combined map must now hold each assigned value where its parameter was.
        let combined = out.combined();
        for (name, v) in &values {
            if let Some(found) = value_at(&combined, name) {
                if *found != json_to_yaml(v) {
                    bail!(
                        "the parameter `{name}` is shadowed: another category sets the same key \
                         to {}; define it in one category only",
                        serde_yaml::to_string(found).unwrap_or_default().trim()
                    );
                }
            }
        }
        Ok(out)
    }

    /// The parameters as a JSON array of [`Parameter::to_json`] objects.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.parameters.iter().map(Parameter::to_json).collect())
    }

    /// A plain-text table: name, type, bounds (or choices), scale, and the midpoint a plain run uses.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "name".to_string(),
            "type".to_string(),
            "bounds".to_string(),
            "scale".to_string(),
            "midpoint (plain run)".to_string(),
        ]];
        for p in &self.parameters {
            let (bounds, scale) = match &p.kind {
                ParamKind::Float { low, high, log } => (
                    format!("[{}, {}]", fmt_num(*low), fmt_num(*high)),
                    if *log { "log" } else { "linear" },
                ),
                ParamKind::Int { low, high, log } => (
                    format!("[{low}, {high}]"),
                    if *log { "log" } else { "linear" },
                ),
                ParamKind::Choice(c) => (
                    c.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(" | "),
                    "categorical",
                ),
            };
            rows.push([
                p.name.clone(),
                p.type_name().to_string(),
                bounds,
                scale.to_string(),
                p.midpoint().to_string(),
            ]);
        }
        let widths: Vec<usize> = (0..5)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (i, row) in rows.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * 4));
                out.push('\n');
            }
        }
        out
    }
}

/// The value at a parameter's path in a keyword-free map (keys may themselves contain `/`).
fn value_at<'a>(map: &'a Mapping, name: &str) -> Option<&'a Value> {
    for (k, v) in map {
        let kt = key_text(k);
        if kt == name {
            return Some(v);
        }
        if let (Some(rest), Value::Mapping(m)) = (name.strip_prefix(&format!("{kt}/")), v) {
            if let Some(found) = value_at(m, rest) {
                return Some(found);
            }
        }
    }
    None
}

fn substitute_map(
    map: &Mapping,
    prefix: &str,
    lookup: &dyn Fn(&str) -> Option<Value>,
) -> Result<Mapping> {
    // Keyword keys of this map, by plain name.
    let mut keyword_bases: Vec<String> = Vec::new();
    for k in map.keys() {
        if let Some((base, _)) = search_key(k) {
            if keyword_bases.iter().any(|b| b == base) {
                bail!(
                    "`{}` has two search keywords in one map",
                    join(prefix, base)
                );
            }
            keyword_bases.push(base.to_string());
        }
    }
    let value_for = |base: &str| -> Result<Value> {
        let name = join(prefix, base);
        lookup(&name).ok_or_else(|| anyhow!("no value given for the parameter `{name}`"))
    };
    let mut out = Mapping::new();
    for (k, v) in map {
        if let Some((base, _)) = search_key(k) {
            let plain = Value::String(base.to_string());
            if map.contains_key(&plain) {
                continue; // the value goes into the plain key's position
            }
            out.insert(plain, value_for(base)?);
            continue;
        }
        let kt = key_text(k);
        if matches!(k, Value::String(_)) && keyword_bases.contains(&kt) {
            out.insert(k.clone(), value_for(&kt)?);
            continue;
        }
        let new = match v {
            Value::Mapping(m) => Value::Mapping(substitute_map(m, &join(prefix, &kt), lookup)?),
            other => other.clone(),
        };
        out.insert(k.clone(), new);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(s: &str) -> Mapping {
        serde_yaml::from_str(s).unwrap()
    }

    fn space(s: &str) -> Result<SearchSpace> {
        SearchSpace::from_config(&m(s))
    }

    #[test]
    fn finds_parameters_in_key_order_at_any_depth() {
        let s = space(
            "{batch_size~INT_BAYESIAN~: [32, 256], loss_funcs: {metric_loss: {MultiSimilarityLoss: \
             {alpha~LOG_BAYESIAN~: [0.01, 100], base~BAYESIAN~: [0, 1]}}}, sampler~CHOICE~: [a, {B: {m: 2}}]}",
        )
        .unwrap();
        assert_eq!(
            s.names(),
            [
                "batch_size",
                "loss_funcs/metric_loss/MultiSimilarityLoss/alpha",
                "loss_funcs/metric_loss/MultiSimilarityLoss/base",
                "sampler"
            ]
        );
        assert_eq!(
            s.parameters[0].kind,
            ParamKind::Int {
                low: 32,
                high: 256,
                log: false
            }
        );
        assert_eq!(
            s.parameters[1].kind,
            ParamKind::Float {
                low: 0.01,
                high: 100.0,
                log: true
            }
        );
        assert_eq!(
            s.parameters[2].kind,
            ParamKind::Float {
                low: 0.0,
                high: 1.0,
                log: false
            }
        );
        assert_eq!(
            s.parameters[3].kind,
            ParamKind::Choice(vec![json!("a"), json!({"B": {"m": 2}})])
        );
    }

    #[test]
    fn midpoints() {
        let s = space(
            "{a~BAYESIAN~: [0, 0.5], b~LOG_BAYESIAN~: [0.000001, 1], c~INT_BAYESIAN~: [1, 4], \
             d~INT_BAYESIAN~: [-4, -1], e~CHOICE~: [x, y]}",
        )
        .unwrap();
        let mid = s.midpoints();
        assert_eq!(mid["a"], json!(0.25));
        assert!(
            (mid["b"].as_f64().unwrap() - 0.001).abs() < 1e-12,
            "{}",
            mid["b"]
        );
        assert_eq!(mid["c"], json!(3));
        assert_eq!(mid["d"], json!(-3));
        assert_eq!(mid["e"], json!("x"));
    }

    #[test]
    fn invalid_ranges_are_errors_naming_the_key() {
        let cases = [
            (
                "{l: {a~BAYESIAN~: 3}}",
                "`l/a~BAYESIAN~` must hold a list [low, high], found a number",
            ),
            ("{l: {a~BAYESIAN~: {x: 1}}}", "found a mapping"),
            (
                "{a~BAYESIAN~: [1, 1]}",
                "low bound must be below the high bound, found [1, 1]",
            ),
            ("{a~BAYESIAN~: [2, 1]}", "found [2, 1]"),
            (
                "{a~LOG_BAYESIAN~: [0, 1]}",
                "log-scale range needs a low bound above 0",
            ),
            ("{a~LOG_BAYESIAN~: [-1, 1]}", "above 0"),
            (
                "{a~BAYESIAN~: [x, 1]}",
                "bounds must be numbers, found a string (x)",
            ),
            ("{a~BAYESIAN~: [0, .inf]}", "finite"),
            (
                "{a~INT_BAYESIAN~: [1.5, 4]}",
                "bounds must be integers, found 1.5",
            ),
            ("{a~BAYESIAN~: [1, 2, 3]}", "list of 3 item(s)"),
            ("{a~CHOICE~: []}", "empty list"),
            ("{a~CHOICE~: x}", "non-empty list of choices"),
            ("{a~CHOICE~: [x, x]}", "twice"),
            (
                "{l: {a~CHOICE~: [x, 2]}}",
                "`l/a~CHOICE~` mixes choice types: \"x\" is a name or {Name: args} map but 2 \
                 is a number",
            ),
            ("{a~CHOICE~: [1, true, null]}", "1 is a number but true is a boolean"),
            (
                "{b~LOG_INT_BAYESIAN~: [0, 64]}",
                "`b~LOG_INT_BAYESIAN~`: a log-scale integer range needs a low bound of at least 1, \
                 found [0, 64]",
            ),
            (
                "{b~LOG_INT_BAYESIAN~: [16, 512.5]}",
                "~LOG_INT_BAYESIAN~ bounds must be integers, found 512.5",
            ),
            ("{~BAYESIAN~: [0, 1]}", "needs a key name"),
            (
                "{a~BAYESIAN~: [0, 1], a~LOG_BAYESIAN~: [1, 2]}",
                "defined twice",
            ),
            (
                "{l: [{a~BAYESIAN~: [0, 1]}]}",
                "not supported inside a list",
            ),
            (
                "{l: {lr: \"~BAYESIAN~ [0, 1]\"}}",
                "goes on the key, as in `lr~BAYESIAN~",
            ),
            ("{a~OVERRIDE~~BAYESIAN~: [0, 1]}", "cannot contain `~`"),
        ];
        for (yaml, want) in cases {
            let e = space(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
        // Integral floats are fine as int bounds.
        let s = space("{a~INT_BAYESIAN~: [1.0, 3]}").unwrap();
        assert_eq!(
            s.parameters[0].kind,
            ParamKind::Int {
                low: 1,
                high: 3,
                log: false
            }
        );
    }

    #[test]
    fn substitution_replaces_keyword_keys_in_place() {
        let cfg =
            m("{l: {M: {alpha~LOG_BAYESIAN~: [0.01, 100], x: 1, base~BAYESIAN~: [0, 1]}}, z: 2}");
        let s = SearchSpace::from_config(&cfg).unwrap();
        // Found by fuzzing: a tagged key is never a keyword, for extraction and substitution alike.
        let tagged = m("{a: {!t b~BAYESIAN~: [0, 1]}}");
        let none = SearchSpace::from_config(&tagged).unwrap();
        assert!(none.is_empty());
        assert_eq!(
            none.substitute(&tagged, &Assignment::new()).unwrap(),
            tagged
        );
        let mut a = Assignment::new();
        a.insert("l/M/base".into(), json!(0.5));
        a.insert("l/M/alpha".into(), json!(2));
        let got = s.substitute(&cfg, &a).unwrap();
        assert_eq!(got, m("{l: {M: {alpha: 2.0, x: 1, base: 0.5}}, z: 2}"));
        let keys: Vec<String> = got["l"]["M"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(key_text)
            .collect();
        assert_eq!(keys, ["alpha", "x", "base"]);
        // Plain key present too: the value takes the plain key's slot.
        let cfg = m("{o: {lr: 0.1, wd: 0, lr~LOG_BAYESIAN~: [0.001, 1]}}");
        let s = SearchSpace::from_config(&cfg).unwrap();
        let got = s.substitute(&cfg, &s.midpoints()).unwrap();
        let keys: Vec<String> = got["o"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(key_text)
            .collect();
        assert_eq!(keys, ["lr", "wd"]);
        assert!((got["o"]["lr"].as_f64().unwrap() - 0.0316227766).abs() < 1e-9);
    }

    #[test]
    fn assignments_are_checked() {
        let s =
            space("{a~BAYESIAN~: [0, 1], n~INT_BAYESIAN~: [1, 3], c~CHOICE~: [x, null]}").unwrap();
        let mut a = s.midpoints();
        assert_eq!(s.check(&a).unwrap(), a);
        a.insert("n".into(), json!(2.0));
        assert_eq!(s.check(&a).unwrap()["n"], json!(2));
        a.insert("a".into(), json!(1.5));
        assert!(s.check(&a).unwrap_err().to_string().contains("[0, 1]"));
        a.insert("a".into(), json!(0.5));
        a.insert("n".into(), json!(2.5));
        assert!(s.check(&a).unwrap_err().to_string().contains("integer"));
        a.insert("n".into(), json!(1));
        a.insert("c".into(), json!("y"));
        assert!(s.check(&a).unwrap_err().to_string().contains("one of"));
        a.insert("c".into(), json!(null));
        a.insert("q".into(), json!(2));
        assert!(s
            .check(&a)
            .unwrap_err()
            .to_string()
            .contains("`q` is not a parameter"));
        a.remove("q");
        a.remove("a");
        assert!(s
            .check(&a)
            .unwrap_err()
            .to_string()
            .contains("no value given for the parameter `a`"));
    }

    #[test]
    fn merged_substitution_covers_every_category() {
        let merged = Merged {
            categories: vec![
                (
                    "config_general".into(),
                    m("{models: {t: {M: {k~BAYESIAN~: [0, 4]}}}, b~INT_BAYESIAN~: [1, 9]}"),
                ),
                ("config_models".into(), m("{models: {t: {M: {k: 1}}}}")),
                ("config_eval".into(), m("{e: {f~CHOICE~: [p, q]}}")),
            ],
        };
        let s = SearchSpace::from_merged(&merged).unwrap();
        // models/t/M/k is shadowed by config_models, so it is not a parameter.
        assert_eq!(s.names(), ["b", "e/f"]);
        let mut a = Assignment::new();
        a.insert("b".into(), json!(7));
        a.insert("e/f".into(), json!("q"));
        let out = s.substitute_merged(&merged, &a).unwrap();
        assert_eq!(out.categories[0].1, m("{models: {t: {M: {k: 2.0}}}, b: 7}"));
        assert_eq!(out.categories[2].1, m("{e: {f: q}}"));
        assert_eq!(
            out.combined(),
            m("{models: {t: {M: {k: 1}}}, b: 7, e: {f: q}}")
        );
        // A parameter set again as a plain key by a later category is refused.
        let merged = Merged {
            categories: vec![
                ("config_general".into(), m("{b~INT_BAYESIAN~: [1, 9]}")),
                ("config_models".into(), m("{b: 64}")),
            ],
        };
        let s = SearchSpace::from_merged(&merged).unwrap();
        let e = s
            .substitute_merged(&merged, &s.midpoints())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`b` is shadowed"), "{e}");
    }

    #[test]
    fn json_form_and_table() {
        let s = space(
            "{a~LOG_BAYESIAN~: [0.001, 1], n~INT_BAYESIAN~: [1, 3], c~CHOICE~: [x, null], \
             b~LOG_INT_BAYESIAN~: [16, 512]}",
        )
        .unwrap();
        assert_eq!(
            s.to_json(),
            json!([
                {"name": "a", "type": "float", "low": 0.001, "high": 1.0, "log": true, "choices": null},
                {"name": "n", "type": "int", "low": 1, "high": 3, "log": false, "choices": null},
                {"name": "c", "type": "choice", "low": null, "high": null, "log": false, "choices": ["x", null]},
                {"name": "b", "type": "int", "low": 16, "high": 512, "log": true, "choices": null},
            ])
        );
        let t = s.table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("name") && lines[0].contains("scale"),
            "{t}"
        );
        assert!(
            lines[2].contains("float")
                && lines[2].contains("[0.001, 1]")
                && lines[2].contains("log"),
            "{t}"
        );
        assert!(
            lines[4].contains("\"x\" | null") && lines[4].contains("categorical"),
            "{t}"
        );
        // The log int: log scale, geometric midpoint (√(16·512) ≈ 90.5 → 91).
        assert!(
            lines[5].contains("int")
                && lines[5].contains("[16, 512]")
                && lines[5].contains("log")
                && lines[5].trim_end().ends_with("91"),
            "{t}"
        );
        assert_eq!(
            s.parameters[3].kind,
            ParamKind::Int {
                low: 16,
                high: 512,
                log: true
            }
        );
    }
}
