//! The worker's side of protocol v1 on a real process: malformed jobs are answered with one `error`
//! event and a non-zero exit; a good job streams `ready`, `evaluation`s and a `result`.

use std::io::Write;
use std::process::{Command, Stdio};

fn worker_with_stdin(input: &str) -> (i32, Vec<serde_json::Value>, String) {
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
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line {l:?}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn job(config: serde_json::Value, folder: &std::path::Path) -> String {
    let job = serde_json::json!({
        "protocol": 1,
        "action": "train",
        "experiment_folder": folder,
        "config": config,
        "resume": null,
        "splits_to_eval": ["val"],
    });
    format!("{job}\n")
}

fn small_config() -> serde_json::Value {
    serde_json::json!({
        "dataset": {"Synthetic": {"num_classes": 40, "samples_per_class": 10, "input_dim": 16}},
        "num_training_sets": 1,
        "num_epochs_train": 2,
        "iterations_per_epoch": 5,
        "save_interval": 1,
        "device": "cpu",
        "models": {"trunk": {"MLP": {"layer_sizes": [32]}}, "embedder": {"MLP": {"layer_sizes": [8]}}},
        "batch_size": 16,
        "optimizers": {"trunk_optimizer": {"Adam": {"lr": 0.01}}, "embedder_optimizer": {"Adam": {"lr": 0.01}}},
        "loss_funcs": {"metric_loss": {"ContrastiveLoss": null}},
        "sampler": {"MPerClassSampler": {"m": 4}},
    })
}

#[test]
fn malformed_jobs_get_an_error_event() {
    for (input, expected) in [
        ("", "no job received"),
        ("this is not json\n", "not valid JSON"),
        ("{\"protocol\": 2}\n", "protocol version 2"),
        ("{\"protocol\": 1, \"action\": \"dance\"}\n", "malformed"),
    ] {
        let (code, events, _) = worker_with_stdin(input);
        assert_ne!(code, 0, "{input:?}");
        let last = events
            .last()
            .unwrap_or_else(|| panic!("{input:?}: no events"));
        assert_eq!(last["event"], "error", "{input:?}");
        assert_eq!(last["kind"], "config", "{input:?}");
        let message = last["message"].as_str().unwrap();
        assert!(message.contains(expected), "{input:?}: {message}");
    }
}

#[test]
fn bad_configs_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            serde_json::json!({"loss_funcs": {"metric_loss": {"NoSuchLoss": null}}}),
            "unknown class `NoSuchLoss`; valid classes: ArcFaceLoss, CircleLoss, ContrastiveLoss",
        ),
        (
            serde_json::json!({"loss_funcs": {"metric_loss": {"ContrastiveLoss": {"margin": 1}}}}),
            "has no kwarg `margin`; valid kwargs: pos_margin (float), neg_margin (float)",
        ),
        (
            serde_json::json!({"batch_size": 15}),
            "multiple of MPerClassSampler's m",
        ),
        (
            serde_json::json!({"device": "tpu"}),
            "device must be cpu, cuda, cuda:N or auto",
        ),
        (
            serde_json::json!({"num_training_sets": 9}),
            "num_training_sets must be between 1 and num_training_partitions",
        ),
        (
            serde_json::json!({"models": {"trunk": {"MLP": null, "Other": null}, "embedder": {"MLP": null}}}),
            "exactly one class",
        ),
    ];
    for (patch, expected) in cases {
        let mut config = small_config();
        for (k, v) in patch.as_object().unwrap() {
            config[k] = v.clone();
        }
        let (code, events, _) = worker_with_stdin(&job(config, dir.path()));
        assert_ne!(code, 0, "{patch}");
        let last = events.last().unwrap();
        assert_eq!(last["event"], "error", "{patch}");
        assert_eq!(last["kind"], "config", "{patch}");
        let message = last["message"].as_str().unwrap();
        assert!(message.contains(expected), "{patch}: {message}");
    }
}

#[test]
fn a_good_job_streams_events_and_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events, stderr) = worker_with_stdin(&job(small_config(), dir.path()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(events[0]["event"], "ready");
    assert_eq!(events[0]["device"], "cpu");
    let evaluations: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "evaluation")
        .collect();
    // epochs -1 and 0 (untrained), 1 and 2.
    let epochs: Vec<i64> = evaluations
        .iter()
        .map(|e| e["epoch"].as_i64().unwrap())
        .collect();
    assert_eq!(epochs, vec![-1, 0, 1, 2]);
    let result = events.last().unwrap();
    assert_eq!(result["event"], "result");
    assert_eq!(result["objective"]["metric"], "mean_average_precision_at_r");
    let best = result["folds"][0]["metrics"]["mean_average_precision_at_r"]
        .as_f64()
        .unwrap();
    let mean = result["objective"]["mean"].as_f64().unwrap();
    assert_eq!(best, mean, "one fold: the objective is its best value");
    assert!(result["objective"]["sem"].is_null(), "no SEM with one fold");
}
