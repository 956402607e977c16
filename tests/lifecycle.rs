//! End-to-end lifecycle of one experiment through the real binaries: the coordinator's `run`
//! (library entry point) driving the built `metricbench-worker` via `worker_command`.
//! Small data and few iterations keep each run to a few seconds.

use metricbench::run::{run, RunArgs};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The worker binary built beside the coordinator (scripts/test.sh builds the whole workspace first).
fn worker() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_metricbench")).with_file_name("metricbench-worker")
}

/// A config root: the shipped configs, with small models/data and the given file overrides
/// (`category` -> YAML written as that category's `default.yaml`).
fn config_root(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let root = dir.join("configs");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let entry = entry.unwrap();
        let to = root.join(entry.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(entry.path()).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    let general = "training_method: MetricLossOnly\nmeta_testing_method: ConcatenateEmbeddings\n\
        dataset:\n  Synthetic: {num_classes: 48, samples_per_class: 12, input_dim: 16, seed: 3}\n\
        splits_to_eval: [val]\nnum_epochs_train: 4\niterations_per_epoch: 6\nsave_interval: 1\n\
        test_size: 0.5\ntest_start_idx: 0.5\nnum_training_partitions: 4\nnum_training_sets: 2\n\
        label_hierarchy_level: 0\ncheck_untrained_accuracy: true\npatience: 9\nseed: 5\ndevice: cpu\n";
    let models =
        "models:\n  trunk:\n    MLP: {layer_sizes: [32, 32], final_relu: true}\n  embedder:\n    \
        MLP: {layer_sizes: [16]}\nbatch_size: 32\nfreeze_batchnorm: true\n";
    let optimizers = "optimizers:\n  trunk_optimizer:\n    Adam: {lr: 0.003}\n  embedder_optimizer:\n    \
        RMSprop: {lr: 0.003, momentum: 0.5}\n    scheduler_by_epoch: {StepLR: {step_size: 2, gamma: 0.5}}\n";
    let mut files = vec![
        ("config_general", general),
        ("config_models", models),
        ("config_optimizers", optimizers),
    ];
    files.extend_from_slice(replace);
    for (category, text) in files {
        std::fs::write(root.join(category).join("default.yaml"), text).unwrap();
    }
    root
}

fn args(root_exp: &Path, configs: &Path, name: &str, extra: &str) -> RunArgs {
    let mut tokens: Vec<String> = vec![
        "--experiment_name".into(),
        name.into(),
        "--root_experiment_folder".into(),
        root_exp.to_string_lossy().into_owned(),
        "--root_config_folder".into(),
        configs.to_string_lossy().into_owned(),
        "--worker_command".into(),
        format!("[{}]", worker().display()),
    ];
    tokens.extend(extra.split_whitespace().map(String::from));
    RunArgs::from_tokens(&tokens).unwrap()
}

fn csv_files(folder: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("meta_logs") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "csv") {
                let rel = p
                    .strip_prefix(folder)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn val_table(exp: &Path, fold: &str) -> String {
    std::fs::read_to_string(exp.join(fold).join(
        "saved_csvs/accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_VAL.csv",
    ))
    .unwrap()
}

/// (epoch, MAP@R) rows of a fold's val table.
fn map_at_r(exp: &Path, fold: &str) -> Vec<(i64, f64)> {
    let text = val_table(exp, fold);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "mean_average_precision_at_r")
        .unwrap();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0].parse().unwrap(), cells[col].parse().unwrap())
        })
        .collect()
}

#[test]
fn resume_after_stop_or_split_run_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_root(dir.path(), &[]);
    let exps = dir.path().join("exps");
    let full = run(args(&exps, &configs, "full", "")).unwrap();
    let full_dir = exps.join("full");
    assert_eq!(full.folds.len(), 2);
    let saved: Vec<String> =
        std::fs::read_dir(full_dir.join("Test50_50_Partitions4_0/saved_models"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    for object in ["trunk", "embedder", "trunk_optimizer", "embedder_optimizer"] {
        assert!(
            saved.contains(&format!("{object}_4.safetensors")),
            "{saved:?}"
        );
    }
    assert_eq!(saved.len(), 8, "latest and best only: {saved:?}");

    // 1. Train 2 epochs, then resume to 4 with a command-line change (written as a config diff).
    run(args(&exps, &configs, "split", "--num_epochs_train 2")).unwrap();
    let resumed = run(args(
        &exps,
        &configs,
        "split",
        "--resume_training --num_epochs_train 4",
    ))
    .unwrap();
    let split_dir = exps.join("split");
    let diff = split_dir.join("configs/resume_training_config_diffs_2_2/config_general.yaml");
    assert_eq!(
        std::fs::read_to_string(&diff).unwrap().trim(),
        "num_epochs_train: 4"
    );
    assert_eq!(csv_files(&split_dir), csv_files(&full_dir));
    assert_eq!(resumed.folds, full.folds);

    // 2. A `stop` command: the worker stops after its first evaluation, leaving a checkpoint.
    let stopped_dir = exps.join("stopped");
    std::fs::create_dir_all(&stopped_dir).unwrap();
    let merged = metricbench::experiment::load_saved_configs(&full_dir).unwrap();
    metricbench::experiment::save_configs(&stopped_dir, &merged).unwrap();
    let job = serde_json::json!({
        "protocol": 1, "action": "train", "experiment_folder": stopped_dir,
        "config": metricbench::config::yaml_to_json(&serde_yaml::Value::Mapping(merged.combined())).unwrap(),
        "resume": null, "splits_to_eval": ["val"]
    });
    let mut child = Command::new(worker())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{job}").unwrap();
    writeln!(stdin, "{{\"command\": \"stop\"}}").unwrap();
    let events: Vec<String> = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(child.wait().unwrap().success());
    assert!(
        events.last().unwrap().contains("\"event\":\"result\""),
        "{events:?}"
    );
    let latest: Vec<(String, u64)> = metricbench::experiment::latest_epochs(&stopped_dir).unwrap();
    assert_eq!(latest, vec![("Test50_50_Partitions4_0".to_string(), 1)]);
    let after_stop = run(args(&exps, &configs, "stopped", "--resume_training latest")).unwrap();
    assert_eq!(csv_files(&stopped_dir), csv_files(&full_dir));
    assert_eq!(after_stop.folds, full.folds);

    // 3. Resuming a finished experiment trains nothing and reports the same results.
    let again = run(args(&exps, &configs, "full", "--resume_training")).unwrap();
    assert_eq!(again.folds, full.folds);
    assert_eq!(csv_files(&full_dir), csv_files(&split_dir));

    // 4. --reproduce_results replays the split run (2 epochs, diff, resume to 4): same records.
    let reproduced = run(args(
        &exps,
        &configs,
        "reproduced",
        &format!("--reproduce_results {}", split_dir.display()),
    ))
    .unwrap();
    assert_eq!(reproduced.folds, full.folds);
    assert_eq!(csv_files(&exps.join("reproduced")), csv_files(&full_dir));
    assert!(exps
        .join("reproduced/configs/resume_training_config_diffs_2_2/config_general.yaml")
        .is_file());

    // 5. --evaluate reproduces the stored best accuracies exactly, and the ensemble runs on test.
    let evaluated = run(args(&exps, &configs, "full", "--evaluate")).unwrap();
    assert_eq!(evaluated.folds, full.folds);
    let ensemble = run(args(
        &exps,
        &configs,
        "full",
        "--evaluate --splits_to_eval [val, test]",
    ))
    .unwrap();
    assert_eq!(ensemble.folds.len(), 1);
    assert_eq!(ensemble.folds[0].fold, "ConcatenateEmbeddings");
    let meta = full_dir.join("meta_logs/saved_csvs");
    let table = std::fs::read_to_string(meta.join(
        "meta_ConcatenateEmbeddings_accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_TEST.csv",
    ))
    .unwrap();
    assert_eq!(
        table.lines().count(),
        3,
        "header, untrained and trained rows:\n{table}"
    );
    let meta_val = std::fs::read_to_string(meta.join(
        "meta_accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_VAL.csv",
    ))
    .unwrap();
    let header: Vec<&str> = meta_val.lines().next().unwrap().split(',').collect();
    assert!(
        header.contains(&"SEM_mean_average_precision_at_r"),
        "{header:?}"
    );
    let trained_row: Vec<&str> = meta_val.lines().nth(2).unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "mean_average_precision_at_r")
        .unwrap();
    let mean: f64 = trained_row[col].parse().unwrap();
    assert!(
        (mean - full.objective.mean.unwrap()).abs() < 1e-12,
        "{mean} vs {:?}",
        full.objective
    );
}

fn improves(method_general: &str, losses: &str, optimizers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let general_base = "meta_testing_method: null\n\
        dataset:\n  Synthetic: {num_classes: 48, samples_per_class: 12, input_dim: 16, seed: 3}\n\
        splits_to_eval: [val]\nnum_epochs_train: 4\niterations_per_epoch: 15\nsave_interval: 2\n\
        num_training_partitions: 4\nnum_training_sets: 1\ncheck_untrained_accuracy: true\n\
        patience: 9\nseed: 1\ndevice: cpu\n";
    let general = format!("{general_base}{method_general}");
    let configs = config_root(
        dir.path(),
        &[
            ("config_general", &general),
            ("config_loss_and_miners", losses),
            ("config_optimizers", optimizers),
        ],
    );
    let exps = dir.path().join("exps");
    let outcome = run(args(&exps, &configs, "m", "")).unwrap();
    let rows = map_at_r(&exps.join("m"), "Test50_50_Partitions4_0");
    let epoch0 = rows.iter().find(|(e, _)| *e == 0).unwrap().1;
    let best = outcome.folds[0].metrics["mean_average_precision_at_r"]
        .as_f64()
        .unwrap();
    assert!(
        outcome.folds[0].best_epoch > 0,
        "{method_general}: {rows:?}"
    );
    assert!(
        best > epoch0 + 0.02,
        "{method_general}: MAP@R {epoch0} -> {best}"
    );
}

const ADAM: &str = "Adam: {lr: 0.003}";

#[test]
fn metric_loss_only_improves() {
    improves(
        "training_method: MetricLossOnly\n",
        "loss_funcs:\n  metric_loss: {ContrastiveLoss: null}\nsampler:\n  MPerClassSampler: {m: 4}\n",
        &format!("optimizers:\n  trunk_optimizer: {{{ADAM}}}\n  embedder_optimizer: {{SGD: {{lr: 0.05, momentum: 0.9, nesterov: true}}}}\n"),
    );
}

#[test]
fn train_with_classifier_improves() {
    improves(
        "training_method: TrainWithClassifier\n",
        "loss_funcs:\n  metric_loss: {ContrastiveLoss: null}\n  classifier_loss: {CrossEntropyLoss: null}\n\
         loss_weights: {metric_loss: 1, classifier_loss: 0.5}\nsampler:\n  MPerClassSampler: {m: 4}\n",
        &format!("optimizers:\n  trunk_optimizer: {{{ADAM}}}\n  embedder_optimizer: {{{ADAM}}}\n  classifier_optimizer: {{{ADAM}}}\n"),
    );
}

#[test]
fn cascaded_embeddings_improves() {
    improves(
        "training_method: CascadedEmbeddings\n",
        "loss_funcs:\n  metric_loss_0: {ContrastiveLoss: null}\n  metric_loss_1: {ContrastiveLoss: null}\n\
         sampler:\n  MPerClassSampler: {m: 4}\n",
        &format!("optimizers:\n  trunk_optimizer: {{{ADAM}}}\n  embedder_optimizer: {{AdamW: {{lr: 0.003}}}}\n"),
    );
}

#[test]
fn deep_adversarial_metric_learning_improves() {
    improves(
        "training_method: DeepAdversarialMetricLearning\nmetric_alone_epochs: 1\ng_alone_epochs: 1\n\
         g_triplets_per_anchor: 2\n",
        "loss_funcs:\n  metric_loss: {ContrastiveLoss: null}\n  synth_loss: {ContrastiveLoss: null}\n  \
         g_adv_loss: {ContrastiveLoss: null}\nloss_weights: {synth_loss: 0.1, g_adv_loss: 0.1}\n\
         sampler:\n  MPerClassSampler: {m: 4}\n",
        &format!("optimizers:\n  trunk_optimizer: {{{ADAM}}}\n  embedder_optimizer: {{{ADAM}}}\n  generator_optimizer: {{{ADAM}}}\n"),
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let configs = config_root(dir.path(), &[]);
    let exps = dir.path().join("exps");
    let err = |extra: &str, name: &str| {
        format!(
            "{:#}",
            run(args(&exps, &configs, name, extra)).expect_err(extra)
        )
    };
    let e = err("--training_method Magic", "a");
    assert!(
        e.contains("unknown class `Magic`") && e.contains("TrainWithClassifier"),
        "{e}"
    );
    let e = err("--num_training_sets 5", "b");
    assert!(
        e.contains("num_training_sets must be between 1 and num_training_partitions (4)"),
        "{e}"
    );
    let e = err("--num_training_partitions 30", "c");
    assert!(e.contains("val split would be empty"), "{e}");
    std::fs::create_dir_all(exps.join("plain/stuff")).unwrap();
    let e = err("--resume_training", "plain");
    assert!(e.contains("is not an experiment folder"), "{e}");
    let e = err("--evaluate", "never_ran");
    assert!(e.contains("no experiment"), "{e}");
    // An experiment whose checkpoints are gone cannot be evaluated.
    run(args(
        &exps,
        &configs,
        "trained",
        "--num_epochs_train 1 --num_training_sets 1",
    ))
    .unwrap();
    std::fs::remove_dir_all(exps.join("trained/Test50_50_Partitions4_0/saved_models")).unwrap();
    let e = err("--evaluate --num_training_sets 1", "trained");
    assert!(e.contains("has no best checkpoint"), "{e}");
    // A diverging run stops with the protocol's `nan` error kind, naming the loss and the epoch.
    let e = err(
        "--optimizers {trunk_optimizer: {Adam: {lr: 1.0e38}}} --num_training_sets 1",
        "diverges",
    );
    assert!(
        e.contains("reported a nan error") && e.contains("at epoch 1"),
        "{e}"
    );
    let e = err("--training_method TrainWithClassifier", "d");
    assert!(e.contains("needs `loss_funcs/classifier_loss`"), "{e}");
}

#[test]
fn loss_parameters_and_miners_are_checkpointed_and_resumed_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let losses = "loss_funcs:\n  metric_loss:\n    ProxyAnchorLoss: null\nsampler:\n  \
        MPerClassSampler: {m: 4}\nmining_funcs:\n  tuple_miner:\n    MultiSimilarityMiner: {epsilon: 0.1}\n\
        loss_weights: null\n";
    let optimizers =
        "optimizers:\n  trunk_optimizer:\n    Adam: {lr: 0.003}\n  embedder_optimizer:\n    \
        Adam: {lr: 0.003}\n  metric_loss_optimizer:\n    Adam: {lr: 0.01}\n";
    let configs = config_root(
        dir.path(),
        &[
            ("config_loss_and_miners", losses),
            ("config_optimizers", optimizers),
        ],
    );
    let exps = dir.path().join("exps");
    let full = run(args(&exps, &configs, "full", "")).unwrap();
    let saved: Vec<String> =
        std::fs::read_dir(exps.join("full/Test50_50_Partitions4_0/saved_models"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    for object in ["metric_loss", "metric_loss_optimizer"] {
        assert!(
            saved.contains(&format!("{object}_4.safetensors")),
            "{saved:?}"
        );
    }
    run(args(&exps, &configs, "split", "--num_epochs_train 2")).unwrap();
    let resumed = run(args(
        &exps,
        &configs,
        "split",
        "--resume_training --num_epochs_train 4",
    ))
    .unwrap();
    assert_eq!(
        csv_files(&exps.join("split")),
        csv_files(&exps.join("full"))
    );
    assert_eq!(resumed.folds, full.folds);
    let stats = std::fs::read_to_string(
        exps.join("full/Test50_50_Partitions4_0/saved_csvs/loss_stats.csv"),
    )
    .unwrap();
    assert!(stats.contains("\n24,tuple_miner,"), "{stats}");
}
