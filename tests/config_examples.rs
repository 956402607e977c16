//! Every row of `reference/config-merge-examples.md`, through the code path `metricbench config`
//! uses (`ConfigView::from_tokens`), on a temporary config folder holding that page's default files.

use metricbench::config_cmd::ConfigView;
use metricbench::search_space::ParamKind;
use serde_yaml::{Mapping, Value};
use std::path::Path;

const FILES: [(&str, &str); 7] = [
    (
        "config_optimizers/default.yaml",
        "optimizers:\n  trunk_optimizer:    {RMSprop: {lr: 0.000001, weight_decay: 0.00005, momentum: 0.9}}\n  embedder_optimizer: {RMSprop: {lr: 0.000001, weight_decay: 0.00005, momentum: 0.9}}\n",
    ),
    (
        "config_optimizers/with_higher_lr.yaml",
        "optimizers:\n  trunk_optimizer:    {RMSprop: {lr: 0.00001}}\n  embedder_optimizer: {RMSprop: {lr: 0.00001}}\n",
    ),
    (
        "config_loss_and_miners/default.yaml",
        "loss_funcs: {metric_loss: {ContrastiveLoss: null}}\nsampler: {MPerClassSampler: {m: 4}}\nmining_funcs: {}\n",
    ),
    (
        "config_general/default.yaml",
        "dataset: {CUB200: null}\nsave_interval: 2\npatience: 9\n",
    ),
    (
        "config_general/with_cars196.yaml",
        "dataset~OVERRIDE~: {Cars196: null}\nsave_interval: 5\npatience: 14\n",
    ),
    (
        "config_models/default.yaml",
        "models: {trunk: {bninception: {pretrained: imagenet}}, embedder: {MLP: {layer_sizes: [128]}}}\n",
    ),
    ("config_transforms/default.yaml", ""),
];

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    dir
}

fn write_files(root: &Path) {
    for (path, text) in FILES {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(root.join("config_eval")).unwrap();
    std::fs::write(root.join("config_eval/default.yaml"), "# empty\n").unwrap();
}

fn tokens(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut t = vec![
        "--root_config_folder".to_string(),
        dir.display().to_string(),
    ];
    t.extend(args.iter().map(|s| s.to_string()));
    t
}

/// Splits like an unquoted shell command line.
fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn config(args: &str) -> Mapping {
    let dir = setup();
    let view = ConfigView::from_tokens(&tokens(dir.path(), &words(args))).unwrap();
    view.validate().unwrap();
    view.merged.combined()
}

fn error(args: &[&str]) -> String {
    let dir = setup();
    format!(
        "{:#}",
        ConfigView::from_tokens(&tokens(dir.path(), args)).unwrap_err()
    )
}

/// Merges fine, but cannot run: the message of `ConfigView::validate`.
fn invalid(args: &str) -> String {
    let dir = setup();
    let view = ConfigView::from_tokens(&tokens(dir.path(), &words(args))).unwrap();
    format!("{:#}", view.validate().unwrap_err())
}

fn y(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

const EMBEDDER_DEFAULT: &str = "{RMSprop: {lr: 0.000001, weight_decay: 0.00005, momentum: 0.9}}";

fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_deep_merge_into_existing() {
    let c = config("--optimizers {trunk_optimizer: {RMSprop: {lr: 0.01}}}");
    assert_eq!(
        c["optimizers"]["trunk_optimizer"],
        y("{RMSprop: {lr: 0.01, weight_decay: 5e-05, momentum: 0.9}}")
    );
    assert_eq!(c["optimizers"]["embedder_optimizer"], y(EMBEDDER_DEFAULT));
}

#[test]
fn b_override_one_sub_key() {
    let c = config("--optimizers {trunk_optimizer~OVERRIDE~: {Adam: {lr: 0.01}}}");
    assert_eq!(
        c["optimizers"],
        y(&format!(
            "{{trunk_optimizer: {{Adam: {{lr: 0.01}}}}, embedder_optimizer: {EMBEDDER_DEFAULT}}}"
        ))
    );
    // Without ~OVERRIDE~ the optimizer would name two classes: an error naming both.
    let e = invalid("--optimizers {trunk_optimizer: {Adam: {lr: 0.01}}}");
    assert!(
        e.contains("optimizers/trunk_optimizer") && e.contains("exactly one class"),
        "{e}"
    );
    assert!(e.contains("found RMSprop, Adam"), "{e}");
}

#[test]
fn c_override_at_depth_3() {
    let c = config("--optimizers {trunk_optimizer: {RMSprop~OVERRIDE~: {lr: 0.1}}}");
    assert_eq!(
        c["optimizers"]["trunk_optimizer"],
        y("{RMSprop: {lr: 0.1}}")
    );
    assert_eq!(c["optimizers"]["embedder_optimizer"], y(EMBEDDER_DEFAULT));
}

#[test]
fn d_top_level_override_to_empty_and_d2_merge_into_empty() {
    let c = config("--mining_funcs~OVERRIDE~ {}");
    assert_eq!(c["mining_funcs"], y("{}"));
    let c = config("--mining_funcs {tuple_miner: {MultiSimilarityMiner: {epsilon: 0.1}}}");
    assert_eq!(
        c["mining_funcs"],
        y("{tuple_miner: {MultiSimilarityMiner: {epsilon: 0.1}}}")
    );
}

#[test]
fn e_add_a_sibling() {
    let c = config("--optimizers {metric_loss_optimizer: {SGD: {lr: 0.01}}}");
    assert_eq!(
        keys(&c["optimizers"]),
        [
            "trunk_optimizer",
            "embedder_optimizer",
            "metric_loss_optimizer"
        ]
    );
    assert_eq!(
        c["optimizers"]["metric_loss_optimizer"],
        y("{SGD: {lr: 0.01}}")
    );
}

#[test]
fn f_two_files_in_a_category() {
    let c = config("--config_optimizers default with_higher_lr");
    let want = y("{RMSprop: {lr: 1e-05, weight_decay: 5e-05, momentum: 0.9}}");
    assert_eq!(c["optimizers"]["trunk_optimizer"], want);
    assert_eq!(c["optimizers"]["embedder_optimizer"], want);
    // The YAML-list form of the file list is the same.
    assert_eq!(c, config("--config_optimizers [default, with_higher_lr]"));
}

#[test]
fn f2_file_override() {
    let c = config("--config_general default with_cars196");
    assert_eq!(c["dataset"], y("{Cars196: null}"));
    assert_eq!(c["save_interval"], y("5"));
    assert_eq!(c["patience"], y("14"));
}

#[test]
fn g_command_line_reapplied_after_each_file() {
    let dir = setup();
    let view = ConfigView::from_tokens(&tokens(
        dir.path(),
        &words("--config_general default with_cars196 --dataset {CUB200: {foo: 1}}"),
    ))
    .unwrap();
    let c = view.merged.combined();
    assert_eq!(c["dataset"], y("{Cars196: null, CUB200: {foo: 1}}"));
    // This two-class dataset is what the original produced too; it cannot be built, which
    // `metricbench config` reports after printing it (and `run` before starting anything).
    assert_eq!(keys(&c["dataset"]), ["Cars196", "CUB200"]);
    let e = format!("{:#}", view.validate().unwrap_err());
    assert!(
        e.contains("`dataset`") && e.contains("Cars196, CUB200"),
        "{e}"
    );
    assert!(
        e.contains("config_general (files default, with_cars196"),
        "{e}"
    );
}

#[test]
fn h_multi_file_and_command_line_override() {
    let c = config(
        "--config_optimizers default with_higher_lr --optimizers~OVERRIDE~ {trunk_optimizer: {Adam: {lr: 0.1}}}",
    );
    assert_eq!(c["optimizers"], y("{trunk_optimizer: {Adam: {lr: 0.1}}}"));
}

#[test]
fn i_map_into_null_and_i2_null_replaces_map() {
    let c = config("--loss_funcs {metric_loss: {ContrastiveLoss: {pos_margin: 0.1}}}");
    assert_eq!(
        c["loss_funcs"],
        y("{metric_loss: {ContrastiveLoss: {pos_margin: 0.1}}}")
    );
    let c = config("--sampler null");
    assert_eq!(c["sampler"], Value::Null);
}

#[test]
fn j_keys_in_no_file_are_added_at_the_end() {
    let c = config("--foo 3 --bar --baz abc");
    assert_eq!(c["foo"], y("3"));
    assert_eq!(c["bar"], Value::Bool(true));
    assert_eq!(c["baz"], Value::String("abc".into()));
    let all: Vec<&str> = c.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(&all[all.len() - 3..], ["foo", "bar", "baz"]);
    // J2
    let c = config("--foo~OVERRIDE~ {a: 1}");
    assert_eq!(c["foo"], y("{a: 1}"));
    assert!(!c.contains_key("foo~OVERRIDE~"));
}

#[test]
fn k_yaml_1_2_scalars() {
    let c = config("--batch_size 256 --x 1e-6 --y 1.0e-6");
    assert_eq!(c["batch_size"].as_i64(), Some(256));
    assert!(c["batch_size"].is_i64());
    assert_eq!(c["x"].as_f64(), Some(1e-6));
    assert_eq!(c["y"].as_f64(), Some(1e-6));
    assert!(c["x"].is_f64() && c["y"].is_f64());
}

#[test]
fn l_lists_replace() {
    let c = config("--models {embedder: {MLP: {layer_sizes: [256, 128]}}}");
    assert_eq!(
        c["models"]["embedder"],
        y("{MLP: {layer_sizes: [256, 128]}}")
    );
    assert_eq!(
        c["models"]["trunk"],
        y("{bninception: {pretrained: imagenet}}")
    );
    // L2: both spellings give the same list.
    assert_eq!(
        config("--splits_to_eval [train, val]")["splits_to_eval"],
        y("[train, val]")
    );
    assert_eq!(
        config("--splits_to_eval [train,val]")["splits_to_eval"],
        y("[train, val]")
    );
}

#[test]
fn m_search_keywords_survive_merging_and_form_the_space() {
    let dir = setup();
    let view = ConfigView::from_tokens(&tokens(
        dir.path(),
        &words(
            "--loss_funcs~OVERRIDE~ {metric_loss: {MultiSimilarityLoss: {alpha~BAYESIAN~: [0.01, 50], base~BAYESIAN~: [0, 1]}}}",
        ),
    ))
    .unwrap();
    let c = view.merged.combined();
    assert_eq!(
        c["loss_funcs"],
        y("{metric_loss: {MultiSimilarityLoss: {alpha~BAYESIAN~: [0.01, 50], base~BAYESIAN~: [0, 1]}}}")
    );
    let p = &view.space.parameters;
    assert_eq!(p.len(), 2);
    assert_eq!(
        p[0].name,
        "loss_funcs/metric_loss/MultiSimilarityLoss/alpha"
    );
    assert_eq!(
        p[0].kind,
        ParamKind::Float {
            low: 0.01,
            high: 50.0,
            log: false
        }
    );
    assert_eq!(p[1].name, "loss_funcs/metric_loss/MultiSimilarityLoss/base");
    assert_eq!(
        p[1].kind,
        ParamKind::Float {
            low: 0.0,
            high: 1.0,
            log: false
        }
    );
}

#[test]
fn n_apply_delete_swap() {
    let c = config("--optimizers~APPLY~3 {lr: 0.01}");
    for o in ["trunk_optimizer", "embedder_optimizer"] {
        assert_eq!(
            c["optimizers"][o],
            y("{RMSprop: {lr: 0.01, weight_decay: 0.00005, momentum: 0.9}}")
        );
    }
    let c = config("--optimizers {embedder_optimizer~DELETE~: {}}");
    assert_eq!(keys(&c["optimizers"]), ["trunk_optimizer"]);
    let c = config("--models {trunk~SWAP~1: {resnet50: null}}");
    assert_eq!(
        c["models"]["trunk"],
        y("{resnet50: {pretrained: imagenet}}")
    );
    assert_eq!(keys(&c["models"]), ["trunk", "embedder"]);
}

#[test]
fn p_command_line_errors_quote_the_token() {
    let e = error(&words(
        "--optimizers {trunk_optimizer: {RMSprop: {lr: 0.5}}",
    ));
    assert!(
        e.contains("bracket imbalance") && e.contains("3 `{` and 2 `}`"),
        "{e}"
    );
    let e = error(&words("--foo a b"));
    assert!(
        e.contains("`b` has no flag in front of it") && e.contains("[a, b]"),
        "{e}"
    );
    let e = error(&["--optimizers", "{trunk_optimizer:{RMSprop: {lr: 0.5}}}"]);
    assert!(e.contains("colon must be followed by a space"), "{e}");
    assert!(
        e.contains("`{trunk_optimizer:{RMSprop: {lr: 0.5}}}`"),
        "{e}"
    );
}

#[test]
fn categories_combine_at_the_top_level() {
    let dir = setup();
    std::fs::write(
        dir.path().join("config_eval/default.yaml"),
        "patience: 1\nmodels: {trunk: {Other: null}}\n",
    )
    .unwrap();
    let view = ConfigView::from_tokens(&tokens(dir.path(), &[])).unwrap();
    let c = view.merged.combined();
    // The later category wins wholesale, at the key's first position.
    assert_eq!(c["patience"], y("1"));
    assert_eq!(c["models"], y("{trunk: {Other: null}}"));
    let all: Vec<&str> = c.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(all[..3], ["dataset", "save_interval", "patience"]);
    // The per-category maps keep their own values.
    assert_eq!(
        view.merged.category("config_general").unwrap()["patience"],
        y("9")
    );
}

#[test]
fn command_line_delete_removes_the_key_for_good() {
    // Deliberate difference: the original re-added a deleted top-level key as `sampler: {}`.
    let c = config("--sampler~DELETE~ {}");
    assert!(!c.contains_key("sampler"));
    assert!(!c.contains_key("sampler~DELETE~"));
    assert_eq!(keys(&c["loss_funcs"]), ["metric_loss"]);
}

#[test]
fn keyword_errors_name_the_command_line_and_the_key() {
    let e = error(&words(
        "--models {trunk~SWAP~1: {a: b, c: null}, nope~APPLY~1: {x: 1}}",
    ));
    assert!(
        e.contains("the command line") && e.contains("`models/nope~APPLY~1`"),
        "{e}"
    );
    assert!(e.contains("no `nope`"), "{e}");
    let dir = setup();
    std::fs::write(
        dir.path().join("config_models/bad.yaml"),
        "models:\n  trunk~SWAP~: {x: null}\n",
    )
    .unwrap();
    let e = format!(
        "{:#}",
        ConfigView::from_tokens(&tokens(dir.path(), &words("--config_models default bad")))
            .unwrap_err()
    );
    assert!(e.contains("bad.yaml") && e.contains("`trunk~SWAP~`"), "{e}");
    assert!(e.contains("depth of 1 or more"), "{e}");
}
