//! Property tests of the config merge and the command-line value parser.

use metricbench::cli_values;
use metricbench::config::{self, KeyScope, MergeOptions};
use proptest::prelude::*;
use serde_yaml::{Mapping, Value};

/// Plain words that YAML 1.2 reads as strings (no null/true/false spellings).
fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,5}".prop_filter("not a YAML keyword", |s| {
        !matches!(s.as_str(), "null" | "true" | "false")
    })
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(Value::String),
        (-1000i64..1000).prop_map(|i| Value::Number(i.into())),
        (-1.0e6f64..1.0e6).prop_map(|f| Value::Number(f.into())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

/// Keyword-free YAML values: scalars, lists of them, and maps with word keys, nested.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            prop::collection::vec((word(), inner), 0..5).prop_map(|entries| {
                Value::Mapping(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::String(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn mapping() -> impl Strategy<Value = Mapping> {
    prop::collection::vec((word(), value()), 0..6).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect()
    })
}

fn keys(m: &Mapping) -> Vec<Value> {
    m.keys().cloned().collect()
}

/// Deep equality including key order (serde_yaml's `==` on maps ignores order).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            keys(x) == keys(y) && x.iter().zip(y).all(|((_, v1), (_, v2))| same(v1, v2))
        }
        (Value::Sequence(x), Value::Sequence(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v1, v2)| same(v1, v2))
        }
        _ => a == b,
    }
}

fn same_map(a: &Mapping, b: &Mapping) -> bool {
    same(&Value::Mapping(a.clone()), &Value::Mapping(b.clone()))
}

/// Writes a value in YAML flow style, the way a user types it on a command line.
fn flow(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let text = n.to_string();
            if n.is_f64() && !text.contains(['.', 'e', 'E']) && !text.contains("inf") {
                format!("{text}.0")
            } else {
                text
            }
        }
        Value::String(s) => s.clone(),
        Value::Sequence(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Mapping(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", flow(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Tagged(_) => unreachable!("not generated"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merging_with_an_empty_map_is_identity(m in mapping()) {
        let empty = Mapping::new();
        prop_assert!(same_map(&config::merge(&m, &empty, "t").unwrap(), &m));
        prop_assert!(same_map(&config::merge(&empty, &m, "t").unwrap(), &m));
    }

    #[test]
    fn override_result_equals_the_override(base in mapping(), key in word(), v in value()) {
        let mut overlay = Mapping::new();
        overlay.insert(Value::String(format!("{key}~OVERRIDE~")), v.clone());
        let got = config::merge(&base, &overlay, "t").unwrap();
        prop_assert!(same(&got[key.as_str()], &v));
        // Every other key is untouched, and an existing key keeps its position.
        let k = Value::String(key.clone());
        for (bk, bv) in &base {
            if *bk != k {
                prop_assert!(same(&got[bk], bv));
            }
        }
        let mut want_keys = keys(&base);
        if !base.contains_key(&k) {
            want_keys.push(k);
        }
        prop_assert_eq!(keys(&got), want_keys);
    }

    #[test]
    fn nested_override_equals_the_override(base in mapping(), outer in word(), inner in word(), v in value()) {
        let mut inner_map = Mapping::new();
        inner_map.insert(Value::String(format!("{inner}~OVERRIDE~")), v.clone());
        let mut overlay = Mapping::new();
        overlay.insert(Value::String(outer.clone()), Value::Mapping(inner_map));
        let got = config::merge(&base, &overlay, "t").unwrap();
        prop_assert!(same(&got[outer.as_str()][inner.as_str()], &v));
    }

    #[test]
    fn key_order_is_preserved(base in mapping(), overlay in mapping()) {
        let got = config::merge(&base, &overlay, "t").unwrap();
        // Base keys first, in base order, then the overlay's new keys in overlay order.
        let mut want = keys(&base);
        for k in overlay.keys() {
            if !base.contains_key(k) {
                want.push(k.clone());
            }
        }
        prop_assert_eq!(keys(&got), want);
        // Recursively: a key that was a map on both sides is itself merged in order.
        for (k, v) in &overlay {
            if let (Some(Value::Mapping(b)), Value::Mapping(o)) = (base.get(k), v) {
                let sub = config::merge(b, o, "t").unwrap();
                prop_assert!(same(&got[k], &Value::Mapping(sub)));
            } else {
                prop_assert!(same(&got[k], v));
            }
        }
    }

    #[test]
    fn merging_keyword_free_maps_twice_changes_nothing(base in mapping(), overlay in mapping()) {
        // The command line is re-applied after every file: this must be harmless.
        let once = config::merge(&base, &overlay, "t").unwrap();
        let twice = config::merge(&once, &overlay, "t").unwrap();
        prop_assert!(same_map(&once, &twice));
        let only_existing = MergeOptions { max_depth: None, scope: KeyScope::OnlyExisting };
        let again = config::merge_with(&once, &overlay, only_existing, "t").unwrap();
        prop_assert!(same_map(&once, &again));
    }

    #[test]
    fn flow_values_split_into_shell_words_parse_back(key in word(), v in value()) {
        // An unquoted command line: the shell splits the flow text at every space.
        let text = flow(&v);
        let mut tokens = vec![format!("--{key}")];
        tokens.extend(text.split(' ').filter(|t| !t.is_empty()).map(str::to_string));
        tokens.push("--next".to_string());
        let parsed = cli_values::parse(&tokens).unwrap();
        prop_assert_eq!(parsed.len(), 2);
        prop_assert_eq!(&parsed[0].key, &key);
        prop_assert!(same(&parsed[0].value, &v), "{} -> {:?}", text, parsed[0].value);
        prop_assert_eq!(&parsed[1].value, &Value::Bool(true));
    }
}
