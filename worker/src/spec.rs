//! Reading the job's configuration: typed accessors that name the offending key, and object specs
//! `{ClassName: kwargs}` whose kwargs are checked against what the class accepts.

use crate::errors::config_error;
use anyhow::Result;
use serde_json::{Map, Value};

/// The merged configuration of a job (all categories combined).
pub struct Config<'a>(pub &'a Value);

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl<'a> Config<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn require(&self, key: &str) -> Result<&'a Value> {
        self.get(key)
            .ok_or_else(|| config_error(format!("the config has no `{key}` key (or it is null)")))
    }

    pub fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match (self.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(config_error(format!("the config has no `{key}` key"))),
            (Some(v), _) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
                config_error(format!(
                    "`{key}` must be a non-negative integer, got {}",
                    type_name(v)
                ))
            }),
        }
    }

    pub fn optional_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.usize(key, None).map(Some),
        }
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| {
                config_error(format!("`{key}` must be a number, got {}", type_name(v)))
            }),
        }
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                config_error(format!(
                    "`{key}` must be true or false, got {}",
                    type_name(v)
                ))
            }),
        }
    }

    pub fn str(&self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| {
                config_error(format!("`{key}` must be a string, got {}", type_name(v)))
            }),
        }
    }
}

/// An object spec `{ClassName: kwargs-or-null}` taken apart, with kwargs consumed one by one so the
/// unknown ones can be reported with the list of valid ones.
pub struct Spec {
    /// Where the spec was found, e.g. `loss_funcs/metric_loss`.
    pub path: String,
    pub class: String,
    kwargs: Map<String, Value>,
    /// Every kwarg the builder asked for: (name, type, default), in asking order. The component
    /// registry reads it back, so the documented kwargs can never drift from the parsed ones.
    known: Vec<(&'static str, &'static str, String)>,
}

impl Spec {
    pub fn parse(path: &str, value: &Value) -> Result<Spec> {
        let map = value.as_object().ok_or_else(|| {
            config_error(format!(
                "`{path}` must be an object spec {{ClassName: {{kwarg: value}}}}, got {}",
                type_name(value)
            ))
        })?;
        if map.len() != 1 {
            let names: Vec<&String> = map.keys().collect();
            return Err(config_error(format!(
                "`{path}` must name exactly one class as {{ClassName: kwargs}}, found {} keys: {names:?}",
                map.len()
            )));
        }
        let (class, kwargs) = map.iter().next().expect("one entry");
        let kwargs = match kwargs {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            other => {
                return Err(config_error(format!(
                    "the kwargs of `{path}/{class}` must be a mapping or null, got {}",
                    type_name(other)
                )))
            }
        };
        Ok(Spec {
            path: path.to_string(),
            class: class.clone(),
            kwargs,
            known: Vec::new(),
        })
    }

    fn take(&mut self, name: &'static str, ty: &'static str, default: String) -> Option<Value> {
        self.known.push((name, ty, default));
        self.kwargs.remove(name).filter(|v| !v.is_null())
    }

    /// A kwarg of free-form type (`pretrained: true | imagenet | <path>`), `None` when absent/null;
    /// the caller checks the type and names `kwarg_path(name)` in its errors.
    pub fn value(&mut self, name: &'static str, ty: &'static str, default: &str) -> Option<Value> {
        self.take(name, ty, default.to_string())
    }

    /// The kwargs asked for so far: (name, type, default).
    pub fn known(&self) -> &[(&'static str, &'static str, String)] {
        &self.known
    }

    /// Where the kwarg `name` of this spec lives, for error messages and nested specs.
    pub fn kwarg_path(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.path, self.class)
    }

    /// A nested object spec (`distance: {CosineSimilarity: null}`), or `None` when absent/null.
    pub fn nested(&mut self, name: &'static str, default: &str) -> Result<Option<Spec>> {
        match self.take(name, "spec", default.to_string()) {
            None => Ok(None),
            Some(v) => Spec::parse(&self.kwarg_path(name), &v).map(Some),
        }
    }

    /// A mapping of nested specs (`reducers: {pos_loss: {MeanReducer: null}}`).
    pub fn nested_map(&mut self, name: &'static str) -> Result<Vec<(String, Spec)>> {
        match self.take(name, "mapping of spec", "{}".to_string()) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => {
                let base = self.kwarg_path(name);
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), Spec::parse(&format!("{base}/{k}"), v)?)))
                    .collect()
            }
            Some(v) => Err(self.wrong_type(name, "a mapping {name: {Class: kwargs}}", &v)),
        }
    }

    pub fn string(&mut self, name: &'static str, default: &str) -> Result<String> {
        match self.take(name, "str", format!("{default:?}")) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| self.wrong_type(name, "a string", &v)),
        }
    }

    /// A string restricted to `choices`.
    pub fn choice(
        &mut self,
        name: &'static str,
        default: &str,
        choices: &[&str],
    ) -> Result<String> {
        let value = self.string(name, default)?;
        if !choices.contains(&value.as_str()) {
            return Err(config_error(format!(
                "`{}` must be one of {}, got {value:?}",
                self.kwarg_path(name),
                choices.join(", ")
            )));
        }
        Ok(value)
    }

    pub fn optional_f64(&mut self, name: &'static str) -> Result<Option<f64>> {
        match self.take(name, "float or null", "null".to_string()) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(name, "a number", &v)),
        }
    }

    /// An integer or the string `all` (PML's `triplets_per_anchor`): `None` means all.
    pub fn count_or_all(&mut self, name: &'static str) -> Result<Option<usize>> {
        match self.take(name, "int or \"all\"", "\"all\"".to_string()) {
            None => Ok(None),
            Some(Value::String(s)) if s == "all" => Ok(None),
            Some(v) => match v.as_u64() {
                Some(x) if x > 0 => Ok(Some(x as usize)),
                _ => Err(self.wrong_type(name, "a positive integer or \"all\"", &v)),
            },
        }
    }

    pub fn optional_f64_pair(&mut self, name: &'static str) -> Result<Option<(f64, f64)>> {
        match self.take(name, "[float, float] or null", "null".to_string()) {
            None => Ok(None),
            Some(v) => match v
                .as_array()
                .map(|a| a.iter().map(Value::as_f64).collect::<Vec<_>>())
            {
                Some(items) if items.len() == 2 && items.iter().all(Option::is_some) => Ok(Some((
                    items[0].unwrap_or_default(),
                    items[1].unwrap_or_default(),
                ))),
                _ => Err(self.wrong_type(name, "a list of two numbers", &v)),
            },
        }
    }

    fn wrong_type(&self, name: &str, ty: &str, v: &Value) -> anyhow::Error {
        config_error(format!(
            "`{}/{}/{name}` must be {ty}, got {}",
            self.path,
            self.class,
            type_name(v)
        ))
    }

    /// One or more numbers: a number, a list of numbers, or a string of numbers separated by
    /// spaces (`scale: "0.16 1"`, as the original tool's configs write them). `None` when absent.
    pub fn numbers(
        &mut self,
        name: &'static str,
        ty: &'static str,
        default: &str,
    ) -> Result<Option<Vec<f64>>> {
        let expected = "a number, a list of numbers or a string of numbers separated by spaces";
        let Some(v) = self.take(name, ty, default.to_string()) else {
            return Ok(None);
        };
        let items: Option<Vec<f64>> = match &v {
            Value::Number(n) => n.as_f64().map(|x| vec![x]),
            Value::Array(a) => a.iter().map(Value::as_f64).collect(),
            Value::String(s) => s.split_whitespace().map(|t| t.parse().ok()).collect(),
            _ => None,
        };
        match items {
            Some(items) if !items.is_empty() && items.iter().all(|x| x.is_finite()) => {
                Ok(Some(items))
            }
            _ => Err(self.wrong_type(name, expected, &v)),
        }
    }

    pub fn f64(&mut self, name: &'static str, default: f64) -> Result<f64> {
        match self.take(name, "float", format!("{default:?}")) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.wrong_type(name, "a number", &v)),
        }
    }

    pub fn usize(&mut self, name: &'static str, default: usize) -> Result<usize> {
        match self.take(name, "int", default.to_string()) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| self.wrong_type(name, "a non-negative integer", &v)),
        }
    }

    pub fn optional_usize(&mut self, name: &'static str) -> Result<Option<usize>> {
        match self.take(name, "int or null", "null".to_string()) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| self.wrong_type(name, "a non-negative integer", &v)),
        }
    }

    pub fn bool(&mut self, name: &'static str, default: bool) -> Result<bool> {
        match self.take(name, "bool", default.to_string()) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.wrong_type(name, "true or false", &v)),
        }
    }

    pub fn usize_list(&mut self, name: &'static str, default: &[usize]) -> Result<Vec<usize>> {
        match self.take(name, "list of int", format!("{default:?}")) {
            None => Ok(default.to_vec()),
            Some(v) => {
                let items = v
                    .as_array()
                    .ok_or_else(|| self.wrong_type(name, "a list of integers", &v))?;
                items
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .map(|x| x as usize)
                            .ok_or_else(|| self.wrong_type(name, "a list of integers", &v))
                    })
                    .collect()
            }
        }
    }

    pub fn f64_pair(&mut self, name: &'static str, default: (f64, f64)) -> Result<(f64, f64)> {
        match self.take(
            name,
            "[float, float]",
            format!("[{:?}, {:?}]", default.0, default.1),
        ) {
            None => Ok(default),
            Some(v) => match v
                .as_array()
                .map(|a| a.iter().map(Value::as_f64).collect::<Vec<_>>())
            {
                Some(items) if items.len() == 2 && items.iter().all(Option::is_some) => {
                    Ok((items[0].unwrap_or_default(), items[1].unwrap_or_default()))
                }
                _ => Err(self.wrong_type(name, "a list of two numbers", &v)),
            },
        }
    }

    /// Fails if kwargs were given that the class does not accept, listing the valid ones.
    pub fn finish(self) -> Result<()> {
        if let Some(unknown) = self.kwargs.keys().next() {
            let valid: Vec<String> = self
                .known
                .iter()
                .map(|(n, t, _)| format!("{n} ({t})"))
                .collect();
            return Err(config_error(format!(
                "`{}/{}` has no kwarg `{unknown}`; valid kwargs: {}",
                self.path,
                self.class,
                if valid.is_empty() {
                    "none".to_string()
                } else {
                    valid.join(", ")
                }
            )));
        }
        Ok(())
    }
}

/// Error for an unknown class name, listing the valid ones.
pub fn unknown_class(path: &str, class: &str, valid: &[&str]) -> anyhow::Error {
    config_error(format!(
        "`{path}` names unknown class `{class}`; valid classes: {}",
        valid.join(", ")
    ))
}
