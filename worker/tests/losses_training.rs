//! Losses and miners inside a real training job: a learnable loss with its own optimizer, a tuple
//! miner, a subset-batch miner (by its old alias), and the per-iteration statistics file.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(config: serde_json::Value, folder: &std::path::Path) -> (i32, Vec<serde_json::Value>) {
    let job = serde_json::json!({
        "protocol": 1, "action": "train", "experiment_folder": folder, "config": config,
        "resume": null, "splits_to_eval": ["val"],
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_metricbench-worker"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{job}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code().unwrap_or(-1), events)
}

fn config(extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "dataset": {"Synthetic": {"num_classes": 40, "samples_per_class": 10, "input_dim": 16}},
        "num_training_sets": 1,
        "num_epochs_train": 1,
        "iterations_per_epoch": 4,
        "save_interval": 1,
        "check_untrained_accuracy": false,
        "device": "cpu",
        "models": {"trunk": {"MLP": {"layer_sizes": [32]}}, "embedder": {"MLP": {"layer_sizes": [8]}}},
        "batch_size": 16,
        "optimizers": {"trunk_optimizer": {"Adam": {"lr": 0.01}}, "embedder_optimizer": {"Adam": {"lr": 0.01}}},
        "loss_funcs": {"metric_loss": {"ContrastiveLoss": null}},
        "sampler": {"MPerClassSampler": {"m": 4}},
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn stats_rows(folder: &std::path::Path) -> Vec<String> {
    let fold = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("saved_csvs").is_dir())
        .expect("a fold folder");
    std::fs::read_to_string(fold.join("saved_csvs/loss_stats.csv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn learnable_loss_with_its_optimizer_and_a_tuple_miner() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run(
        config(serde_json::json!({
            "loss_funcs": {"metric_loss": {"ProxyAnchorLoss": null}, "aux": {"TripletMarginLoss": null}},
            "loss_weights": {"aux": 0.5},
            "mining_funcs": {"tuple_miner": {"MultiSimilarityMiner": {"epsilon": 0.1}}},
            "optimizers": {
                "trunk_optimizer": {"Adam": {"lr": 0.01}},
                "embedder_optimizer": {"Adam": {"lr": 0.01}},
                "metric_loss_optimizer": {"Adam": {"lr": 0.01}},
            },
        })),
        dir.path(),
    );
    assert_eq!(code, 0, "{events:?}");
    assert_eq!(events.last().unwrap()["event"], "result");
    let rows = stats_rows(dir.path());
    assert_eq!(rows[0], "iteration,component,stat,value");
    assert!(rows
        .iter()
        .any(|r| r.starts_with("4,tuple_miner,num_pos_pairs,")));
    assert!(rows
        .iter()
        .any(|r| r.starts_with("1,metric_loss,pos_loss_divisor,")));
    assert!(rows.iter().any(|r| r.starts_with("1,aux,num_triplets,")));
}

#[test]
fn subset_batch_miner_by_its_old_name() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run(
        config(serde_json::json!({
            "loss_funcs": {"metric_loss": {"TripletMarginLoss": {"margin": 0.1}}},
            "mining_funcs": {"pre_gradient_miner": {"BatchHardMiner": null}},
        })),
        dir.path(),
    );
    assert_eq!(code, 0, "{events:?}");
    let rows = stats_rows(dir.path());
    assert!(rows
        .iter()
        .any(|r| r.starts_with("1,subset_batch_miner,num_triplets,")));
}

#[test]
fn optimizer_for_a_loss_without_parameters_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run(
        config(serde_json::json!({
            "optimizers": {
                "trunk_optimizer": {"Adam": {"lr": 0.01}},
                "metric_loss_optimizer": {"Adam": {"lr": 0.01}},
            },
        })),
        dir.path(),
    );
    assert_ne!(code, 0);
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "config");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("nothing to optimise"),
        "{last}"
    );
}
