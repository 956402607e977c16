//! `metricbench config` end to end (the built binary), bad input through the binary, and the shipped
//! `configs/` folder (every file loads, documented combinations work, every file is documented).

use metricbench::config::CATEGORIES;
use metricbench::config_cmd::ConfigView;
use metricbench::search_space::ParamKind;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_metricbench"))
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// A small config folder: one default file per category.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("config_general", "dataset: {Synthetic: {num_classes: 10}}\npatience: 9\n"),
        (
            "config_models",
            "models: {trunk: {MLP: {layer_sizes: [8]}}, embedder: {MLP: {layer_sizes: [4]}}}\nbatch_size: 32\n",
        ),
        (
            "config_optimizers",
            "optimizers:\n  trunk_optimizer: {Adam: {lr~LOG_BAYESIAN~: [0.0001, 0.01]}}\n",
        ),
        (
            "config_loss_and_miners",
            "loss_funcs: {metric_loss: {ContrastiveLoss: {pos_margin~BAYESIAN~: [0, 0.5]}}}\nsampler: {MPerClassSampler: {m: 4}}\n",
        ),
        ("config_transforms", ""),
        ("config_eval", "eval_batch_size: 64\n"),
    ];
    for (cat, text) in files {
        std::fs::create_dir_all(dir.path().join(cat)).unwrap();
        std::fs::write(dir.path().join(cat).join("default.yaml"), text).unwrap();
    }
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .arg("config")
        .arg("--root_config_folder")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

/// The stderr of a run; never a panic message.
fn stderr(o: &Output) -> String {
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn json_output_is_the_documented_object() {
    let dir = folder();
    let out = run(
        dir.path(),
        &[
            "--format",
            "json",
            "--batch_size~INT_BAYESIAN~",
            "[16,",
            "64]",
            "--foo",
            "bar",
            "--bayes_opt_iters",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(top, ["config", "categories", "search_space"]);
    let cats: Vec<&String> = v["categories"].as_object().unwrap().keys().collect();
    assert_eq!(cats, CATEGORIES);
    // Combined config: keyword keys kept, CLI-only keys at the end, tool flags absent.
    let config = v["config"].as_object().unwrap();
    assert_eq!(config.keys().next_back().unwrap(), "foo");
    assert_eq!(config["foo"], json!("bar"));
    assert!(!config.contains_key("bayes_opt_iters") && !config.contains_key("format"));
    assert_eq!(config["batch_size~INT_BAYESIAN~"], json!([16, 64]));
    assert_eq!(config["eval_batch_size"], json!(64));
    assert_eq!(v["categories"]["config_eval"]["foo"], json!("bar"));
    assert_eq!(
        v["search_space"],
        json!([
            {"name": "optimizers/trunk_optimizer/Adam/lr", "type": "float", "low": 0.0001, "high": 0.01, "log": true, "choices": null},
            {"name": "loss_funcs/metric_loss/ContrastiveLoss/pos_margin", "type": "float", "low": 0.0, "high": 0.5, "log": false, "choices": null},
            {"name": "batch_size", "type": "int", "low": 16, "high": 64, "log": false, "choices": null},
        ])
    );
}

#[test]
fn text_output_is_yaml_with_a_commented_table() {
    let dir = folder();
    let out = run(dir.path(), &["--experiment_name", "ignored"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    // The whole output is valid YAML equal to the combined config.
    let parsed: serde_yaml::Mapping = serde_yaml::from_str(&text).unwrap();
    let view = ConfigView::from_tokens(&[
        "--root_config_folder".to_string(),
        dir.path().display().to_string(),
    ])
    .unwrap();
    assert_eq!(parsed, view.merged.combined());
    assert!(text.contains("# search space: 2 parameter(s)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("optimizers/trunk_optimizer/Adam/lr"))
        .unwrap();
    assert!(
        row.contains("float") && row.contains("[0.0001, 0.01]") && row.contains("log"),
        "{row}"
    );
    assert!(row.contains("0.001"), "midpoint shown: {row}");
}

#[test]
fn bad_input_exits_non_zero_naming_the_culprit() {
    let dir = folder();
    // Malformed YAML: file and line.
    let bad = dir.path().join("config_models/broken.yaml");
    std::fs::write(&bad, "models:\n  trunk: {MLP: [1, 2}\n").unwrap();
    let out = run(dir.path(), &["--config_models", "default", "broken"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("line 2"),
        "{err}"
    );
    // Missing file in a list: the folder and the available names.
    let out = run(dir.path(), &["--config_models", "default", "nope"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("\"nope\"") && err.contains("config_models"),
        "{err}"
    );
    assert!(
        err.contains("available in") && err.contains("broken, default"),
        "{err}"
    );
    // Unknown category.
    let out = run(dir.path(), &["--config_nope", "default"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown config category --config_nope"));
    // Invalid range on the command line, naming the key.
    let out = run(dir.path(), &["--x~BAYESIAN~", "[1,", "0]"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("`x~BAYESIAN~`") && err.contains("[1, 0]"),
        "{err}"
    );
    // Keyword key with a non-list value, in a file.
    std::fs::write(
        dir.path().join("config_eval/kw.yaml"),
        "eval_pca~INT_BAYESIAN~: 3\n",
    )
    .unwrap();
    let out = run(dir.path(), &["--config_eval", "kw"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("`eval_pca~INT_BAYESIAN~` must hold a list"),
        "{err}"
    );
    // Two classes in one object spec: the config is printed, then the error.
    let out = run(
        dir.path(),
        &[
            "--optimizers",
            "{trunk_optimizer:",
            "{SGD:",
            "{lr:",
            "0.1}}}",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SGD"));
    assert!(
        err.contains("`optimizers/trunk_optimizer`") && err.contains("Adam, SGD"),
        "{err}"
    );
    assert!(err.contains("config_optimizers"), "{err}");
    // Command-line syntax.
    let out = run(dir.path(), &["--foo", "a", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`b` has no flag"));
}

#[test]
fn run_rejects_two_classes_before_creating_anything() {
    let dir = folder();
    let root = dir.path().join("experiments");
    let out = bin()
        .args(["run", "--experiment_name", "e", "--root_config_folder"])
        .arg(dir.path())
        .arg("--root_experiment_folder")
        .arg(&root)
        .args(["--sampler", "{FixedSetOfTriplets:", "null}"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`sampler`") && err.contains("MPerClassSampler, FixedSetOfTriplets"),
        "{err}"
    );
    assert!(!root.exists(), "nothing created");
}

fn view(args: &[&str]) -> ConfigView {
    let mut tokens = vec![
        "--root_config_folder".to_string(),
        shipped().display().to_string(),
    ];
    tokens.extend(args.iter().map(|s| s.to_string()));
    let v = ConfigView::from_tokens(&tokens).unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
    v.validate().unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
    v
}

#[test]
fn every_shipped_file_loads_after_the_default() {
    for cat in CATEGORIES {
        let names = metricbench::config::available_names(&shipped().join(cat));
        assert!(names.contains(&"default".to_string()), "{cat}");
        for name in names {
            let flag = format!("--{cat}");
            let v = view(&[&flag, "default", &name]);
            let (merged, _) = metricbench::run::substitute_midpoints(v.merged).unwrap();
            let text = serde_yaml::to_string(&merged.combined()).unwrap();
            assert!(
                !text.contains('~'),
                "{cat}/{name} leaves a keyword:\n{text}"
            );
        }
    }
}

#[test]
fn shipped_combinations() {
    let v = view(&[]);
    assert!(v.space.is_empty());
    assert!(v.merged.combined()["dataset"]["Synthetic"].is_mapping());

    let v = view(&[
        "--config_general",
        "default",
        "with_cub200",
        "--config_models",
        "default",
        "with_resnet50",
    ]);
    let c = v.merged.combined();
    assert_eq!(
        c["dataset"],
        serde_yaml::from_str::<serde_yaml::Value>("{CUB200: null}").unwrap()
    );
    assert_eq!(
        c["models"]["trunk"],
        serde_yaml::from_str::<serde_yaml::Value>("{ResNet50: {pretrained: true}}").unwrap()
    );
    assert_eq!(c["batch_size"].as_i64(), Some(128));

    let v = view(&["--config_general", "default", "with_sop"]);
    assert_eq!(v.merged.combined()["patience"].as_i64(), Some(39));

    let v = view(&[
        "--config_optimizers",
        "default",
        "with_metric_loss_optimizer",
        "with_higher_lr",
    ]);
    let c = v.merged.combined();
    for o in [
        "trunk_optimizer",
        "embedder_optimizer",
        "metric_loss_optimizer",
    ] {
        assert_eq!(c["optimizers"][o]["Adam"]["lr"].as_f64(), Some(0.01), "{o}");
    }

    let v = view(&[
        "--config_general",
        "default",
        "with_classifier",
        "--config_models",
        "default",
        "with_classifier",
        "--config_optimizers",
        "default",
        "with_classifier",
        "--config_loss_and_miners",
        "default",
        "with_classifier",
    ]);
    let c = v.merged.combined();
    assert_eq!(c["training_method"].as_str(), Some("TrainWithClassifier"));
    assert!(c["models"]["classifier"].is_mapping());
    assert!(c["optimizers"]["classifier_optimizer"].is_mapping());
    assert_eq!(c["loss_weights"]["classifier_loss"].as_i64(), Some(1));

    let v = view(&["--config_loss_and_miners", "default", "with_cascaded"]);
    let lf = v.merged.combined()["loss_funcs"].clone();
    let keys: Vec<&str> = lf
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["metric_loss_0", "metric_loss_1"]);

    // The search example: four parameters in key order, midpoints as documented.
    let v = view(&[
        "--config_loss_and_miners",
        "default",
        "bayes_example",
        "--config_optimizers",
        "default",
        "bayes_example",
    ]);
    let names: Vec<&str> = v.space.names();
    assert_eq!(
        names,
        [
            "optimizers/trunk_optimizer/Adam/lr",
            "optimizers/embedder_optimizer/Adam/lr",
            "loss_funcs/metric_loss/ContrastiveLoss/pos_margin",
            "loss_funcs/metric_loss/ContrastiveLoss/neg_margin",
        ]
    );
    assert!(matches!(
        v.space.parameters[0].kind,
        ParamKind::Float { log: true, .. }
    ));
    let mid = v.space.midpoints();
    assert!((mid[names[0]].as_f64().unwrap() - 0.001).abs() < 1e-12);
    assert_eq!(mid[names[2]], json!(0.25));
    assert_eq!(mid[names[3]], json!(1.0));
    let concrete = v.space.substitute_merged(&v.merged, &mid).unwrap();
    let c = concrete.combined();
    assert_eq!(
        c["loss_funcs"],
        serde_yaml::from_str::<serde_yaml::Value>(
            "{metric_loss: {ContrastiveLoss: {pos_margin: 0.25, neg_margin: 1.0}}}"
        )
        .unwrap()
    );
    let adam: Vec<&str> = c["optimizers"]["trunk_optimizer"]["Adam"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(adam, ["lr", "weight_decay"]);
}

#[test]
fn every_shipped_file_is_documented() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configs.md"))
            .unwrap();
    for cat in CATEGORIES {
        for name in metricbench::config::available_names(&shipped().join(cat)) {
            let entry = format!("`{cat}/{name}`");
            assert!(doc.contains(&entry), "docs/configs.md lacks {entry}");
        }
    }
}

#[test]
fn run_saves_plain_keys_at_the_midpoints_and_says_so() {
    let dir = folder();
    let root = dir.path().join("experiments");
    // `false` stands in for a worker that fails at once: the configs are saved before it starts.
    let out = bin()
        .args(["run", "--experiment_name", "mid", "--root_config_folder"])
        .arg(dir.path())
        .arg("--root_experiment_folder")
        .arg(&root)
        .args([
            "--worker_command",
            "[false]",
            "--batch_size~INT_BAYESIAN~",
            "[16,",
            "63]",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("note: the config defines 3 search parameter(s)"),
        "{err}"
    );
    assert!(
        err.contains("optimizers/trunk_optimizer/Adam/lr = 0.001"),
        "{err}"
    );
    let saved = |cat: &str| {
        std::fs::read_to_string(root.join("mid/configs").join(format!("{cat}.yaml"))).unwrap()
    };
    for cat in CATEGORIES {
        assert!(!saved(cat).contains('~'), "{cat}: {}", saved(cat));
    }
    let opt: serde_yaml::Value = serde_yaml::from_str(&saved("config_optimizers")).unwrap();
    assert_eq!(
        opt["optimizers"]["trunk_optimizer"]["Adam"]["lr"].as_f64(),
        Some(0.001)
    );
    let loss: serde_yaml::Value = serde_yaml::from_str(&saved("config_loss_and_miners")).unwrap();
    assert_eq!(
        loss["loss_funcs"]["metric_loss"]["ContrastiveLoss"]["pos_margin"].as_f64(),
        Some(0.25)
    );
    // A command-line-only key is saved with the last category, at its (rounded) midpoint.
    let eval: serde_yaml::Value = serde_yaml::from_str(&saved("config_eval")).unwrap();
    assert_eq!(eval["batch_size"].as_i64(), Some(40));
}
