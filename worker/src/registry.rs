//! The component registry: every class a config can name, with its kwargs, their types and
//! defaults. Kwargs are not listed by hand: each class is built once from `{Class: sample}` and the
//! kwargs its builder asked for are read back from the `Spec`, so this list cannot drift from what
//! the builders accept. `metricbench-worker components [--format json]` prints it.

use crate::distances::{Distance, DISTANCES};
use crate::losses::{self, BuildContext, LOSSES};
use crate::miners::{self, MINERS};
use crate::reducers::{Reducer, REDUCERS};
use crate::regularizers::{Regularizer, REGULARIZERS};
use crate::samplers::{self, SAMPLERS};
use crate::spec::Spec;
use serde_json::{json, Value};
use tch::Device;

pub struct Kwarg {
    pub name: &'static str,
    pub ty: &'static str,
    pub default: String,
}

pub struct ClassInfo {
    pub category: &'static str,
    pub name: String,
    /// `None`: kwargs are documented with the component (models, optimizers, datasets are built
    /// by their own modules, not described here).
    pub kwargs: Option<Vec<Kwarg>>,
}

/// Kwargs needed only so that the describing build reaches every kwarg.
fn sample_kwargs(class: &str) -> Value {
    match class {
        "ThresholdReducer" => json!({"low": 0.0}),
        "SparseCentersRegularizer" => json!({"num_classes": 2, "centers_per_class": 2}),
        _ => Value::Null,
    }
}

fn describe(category: &'static str, class: &str, build: impl FnOnce(&mut Spec)) -> ClassInfo {
    let mut map = serde_json::Map::new();
    map.insert(class.to_string(), sample_kwargs(class));
    let mut spec = Spec::parse(category, &Value::Object(map)).expect("one-class spec");
    build(&mut spec);
    ClassInfo {
        category,
        name: class.to_string(),
        kwargs: Some(
            spec.known()
                .iter()
                .map(|(n, t, d)| Kwarg {
                    name: n,
                    ty: t,
                    default: d.clone(),
                })
                .collect(),
        ),
    }
}

/// Every known class, by category.
pub fn all() -> Vec<ClassInfo> {
    let ctx = BuildContext {
        num_classes: Some(2),
        embedding_size: Some(2),
        device: Device::Cpu,
    };
    let labels: Vec<i64> = (0..24).map(|i| i % 4).collect();
    let mut out = Vec::new();
    for c in LOSSES {
        out.push(describe("losses", c, |s| {
            let _ = losses::build_from_spec(s, &ctx);
        }));
    }
    for c in MINERS {
        out.push(describe("miners", c, |s| {
            let _ = miners::build_from_spec(s);
        }));
    }
    for c in DISTANCES {
        out.push(describe("distances", c, |s| {
            let _ = Distance::from_spec(s);
        }));
    }
    for c in REDUCERS {
        out.push(describe("reducers", c, |s| {
            let _ = Reducer::from_spec(s);
        }));
    }
    for c in REGULARIZERS {
        out.push(describe("regularizers", c, |s| {
            let _ = Regularizer::from_spec(s);
        }));
    }
    for c in SAMPLERS {
        out.push(describe("samplers", c, |s| {
            let _ = samplers::build_from_spec(s, &labels, 6);
        }));
    }
    let names_only: [(&'static str, &[&str]); 4] = [
        ("trunks", &crate::models::TRUNKS),
        ("embedders", &crate::models::EMBEDDERS),
        ("optimizers", &crate::optimizers::OPTIMIZERS),
        ("datasets", &crate::datasets::DATASETS),
    ];
    for (category, names) in names_only {
        for n in names {
            out.push(ClassInfo {
                category,
                name: n.to_string(),
                kwargs: None,
            });
        }
    }
    out
}

/// A default as JSON: numbers, booleans, null and lists as themselves, nested-spec labels such
/// as `MeanReducer()` as strings.
fn default_value(d: &str) -> Value {
    serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string()))
}

pub fn to_json(classes: &[ClassInfo]) -> Value {
    let mut cats = serde_json::Map::new();
    for c in classes {
        let entry = json!({
            "class": c.name,
            "kwargs": c.kwargs.as_ref().map(|ks| ks.iter().map(|k| json!({
                "name": k.name, "type": k.ty, "default": default_value(&k.default)
            })).collect::<Vec<_>>()),
        });
        cats.entry(c.category)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("array")
            .push(entry);
    }
    Value::Object(cats)
}

pub fn to_table(classes: &[ClassInfo]) -> String {
    let mut out = String::new();
    let mut current = "";
    for c in classes {
        if c.category != current {
            current = c.category;
            out.push_str(&format!("\n{}\n", current.to_uppercase()));
        }
        match &c.kwargs {
            None => out.push_str(&format!("  {}\n", c.name)),
            Some(ks) if ks.is_empty() => out.push_str(&format!("  {}  (no kwargs)\n", c.name)),
            Some(ks) => {
                out.push_str(&format!("  {}\n", c.name));
                for k in ks {
                    out.push_str(&format!(
                        "      {:<24} {:<24} {}\n",
                        k.name, k.ty, k.default
                    ));
                }
            }
        }
    }
    out.trim_start().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(all: &'a [ClassInfo], name: &str) -> &'a ClassInfo {
        all.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn lists_every_class_with_typed_defaults() {
        let all = all();
        for name in LOSSES
            .iter()
            .chain(&MINERS)
            .chain(&SAMPLERS)
            .chain(&REDUCERS)
        {
            assert!(all.iter().any(|c| c.name == *name), "{name}");
        }
        let t = find(&all, "TripletMarginLoss").kwargs.as_ref().unwrap();
        let margin = t.iter().find(|k| k.name == "margin").unwrap();
        assert_eq!((margin.ty, margin.default.as_str()), ("float", "0.05"));
        assert!(t
            .iter()
            .any(|k| k.name == "distance" && k.default == "LpDistance()"));
        assert!(t
            .iter()
            .any(|k| k.name == "reducer" && k.default == "AvgNonZeroReducer()"));
        let arc = find(&all, "ArcFaceLoss").kwargs.as_ref().unwrap();
        assert!(arc.iter().any(|k| k.name == "num_classes"));
        assert!(arc.iter().any(|k| k.name == "weight_regularizer"));
        // Losses without parameters take no weight regulariser.
        assert!(!t.iter().any(|k| k.name == "weight_regularizer"));
        let th = find(&all, "ThresholdReducer").kwargs.as_ref().unwrap();
        assert_eq!(
            th.iter().map(|k| k.name).collect::<Vec<_>>(),
            ["low", "high"]
        );
        let json = to_json(&all);
        assert!(json["losses"].as_array().unwrap().len() == LOSSES.len());
        assert_eq!(json["miners"][0]["class"], "AngularMiner");
        assert!(to_table(&all).contains("MultiSimilarityMiner"));
    }

    #[test]
    fn every_listed_scalar_default_is_accepted_back() {
        // Building each loss / miner with all its scalar kwargs set to the listed defaults must
        // succeed: the registry describes what the builders really accept.
        let ctx = BuildContext {
            num_classes: Some(3),
            embedding_size: Some(4),
            device: Device::Cpu,
        };
        for c in all() {
            let Some(ks) = &c.kwargs else { continue };
            let mut kwargs = serde_json::Map::new();
            for k in ks {
                let v = default_value(&k.default);
                if !v.is_null() && !k.ty.contains("spec") {
                    kwargs.insert(k.name.to_string(), v);
                }
            }
            for (k, v) in sample_kwargs(&c.name)
                .as_object()
                .cloned()
                .unwrap_or_default()
            {
                kwargs.insert(k, v);
            }
            let spec = json!({ c.name.clone(): kwargs });
            let ok = match c.category {
                "losses" => losses::build("l", &spec, &ctx).map(|_| ()),
                "miners" => miners::build("m", &spec).map(|_| ()),
                _ => Ok(()),
            };
            assert!(ok.is_ok(), "{}: {:?}", c.name, ok.err());
        }
    }
}
