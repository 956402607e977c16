//! End-to-end tests of `metricbench run` on real processes: the Rust worker on the embedded
//! Synthetic dataset, the Python example plugin worker, and workers that break the protocol.

mod common;
use common::{python_worker, text, worker_binary};

use std::path::Path;
use std::process::{Command, Output};

fn metricbench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_metricbench"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn run(root: &Path, name: &str, extra: &[&str]) -> Output {
    metricbench()
        .args(["run", "--experiment_name", name, "--root_experiment_folder"])
        .arg(root)
        .args(extra)
        .output()
        .expect("metricbench runs")
}

/// A plugin worker given as inline Python: lets each test script one misbehaviour.
fn inline_worker(code: &str) -> String {
    // JSON strings are valid YAML flow scalars, so any code survives the config parser.
    format!("[python3, -c, {}]", serde_json::to_string(code).unwrap())
}

fn accuracy_csv(folder: &Path) -> String {
    let csvs = folder.join("Test50_50_Partitions4_0/saved_csvs");
    let file = std::fs::read_dir(&csvs)
        .unwrap_or_else(|e| panic!("{}: {e}", csvs.display()))
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("accuracies_"))
        .expect("an accuracies table");
    std::fs::read_to_string(file.path()).unwrap()
}

#[test]
fn rust_worker_learns_the_synthetic_dataset() {
    worker_binary();
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "synthetic",
        &[
            "--num_epochs_train",
            "4",
            "--num_training_sets",
            "2",
            "--device",
            "cpu",
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let folder = dir.path().join("synthetic");
    for category in [
        "config_general",
        "config_models",
        "config_optimizers",
        "config_loss_and_miners",
        "config_transforms",
        "config_eval",
    ] {
        assert!(
            folder.join(format!("configs/{category}.yaml")).is_file(),
            "{category}"
        );
    }
    let saved: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(folder.join("configs/config_general.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        saved["num_epochs_train"].as_u64(),
        Some(4),
        "CLI values are saved"
    );

    // Progress was visible and the table was printed.
    assert!(all.contains("epoch 2 val:"), "{all}");
    assert!(
        all.contains("objective mean_average_precision_at_r"),
        "{all}"
    );

    // The recorded accuracies: P@1 at the best epoch must be far above chance (25 val classes:
    // 1/25 = 0.04) and above the untrained network's (epoch 0).
    let csv = accuracy_csv(&folder);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let p1 = header.iter().position(|h| *h == "precision_at_1").unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .take(p1 + 1)
                .map(|x| x.parse().unwrap())
                .collect()
        })
        .collect();
    let untrained = rows.iter().find(|r| r[0] == 0.0).unwrap()[p1];
    let trained = rows.last().unwrap()[p1];
    assert!(
        trained > 0.6,
        "P@1 {trained} is not well above chance\n{csv}"
    );
    assert!(trained > untrained + 0.3, "{untrained} -> {trained}\n{csv}");
}

#[test]
fn python_plugin_worker_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let worker = python_worker();
    let out = run(
        dir.path(),
        "py",
        &[
            "--worker_command",
            &worker,
            "--example_parameters",
            "{x: 0.5, y: 0.5}",
            "--num_epochs_train",
            "3",
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // Known objective: 1 * (1 - 0.5^3) = 0.875 at the last epoch, identical on every fold.
    assert!(
        all.contains("objective mean_average_precision_at_r = 0.8750"),
        "{all}"
    );
    let record = std::fs::read_to_string(dir.path().join("py/python_worker_result.json")).unwrap();
    assert!(record.contains("\"x\": 0.5"), "{record}");
}

#[test]
fn broken_workers_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, String, &str); 5] = [
        (
            "garbage",
            inline_worker("print('hello, not json', flush=True)"),
            "not a protocol-v1 event",
        ),
        (
            "early_exit",
            inline_worker("import sys; sys.stderr.write('boom\\n'); sys.exit(4)"),
            "without sending a result event",
        ),
        (
            "reported_error",
            inline_worker(
                "print('{\"event\": \"error\", \"kind\": \"data\", \"message\": \"no images\"}', flush=True)",
            ),
            "data error: no images",
        ),
        (
            "unknown_event",
            inline_worker("print('{\"event\": \"finished\"}', flush=True)"),
            "unknown event \"finished\"",
        ),
        (
            "missing_program",
            "[/nonexistent/worker-binary]".to_string(),
            "cannot start the worker",
        ),
    ];
    for (name, worker, expected) in cases {
        let out = run(dir.path(), name, &["--worker_command", &worker]);
        let all = text(&out);
        assert!(!out.status.success(), "{name}: {all}");
        assert!(
            all.contains(expected),
            "{name}: expected {expected:?} in\n{all}"
        );
        // Nothing but the configs (and the worker log) was written.
        let entries: Vec<String> = std::fs::read_dir(dir.path().join(name))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            entries.iter().all(|e| e == "configs" || e == "logs"),
            "{name}: {entries:?}"
        );
        // A failed start leaves nothing that blocks the next attempt with a working worker.
        let retry = run(
            dir.path(),
            name,
            &[
                "--worker_command",
                &python_worker(),
                "--num_epochs_train",
                "1",
            ],
        );
        assert!(retry.status.success(), "{name} retry: {}", text(&retry));
    }
}

#[test]
fn bad_invocations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let worker = python_worker();
    let ok = run(
        dir.path(),
        "taken",
        &["--worker_command", &worker, "--num_epochs_train", "1"],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let before =
        std::fs::read_to_string(dir.path().join("taken/python_worker_result.json")).unwrap();

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--experiment_name".into(), "taken".into()],
            "already holds results",
        ),
        (
            vec!["--experiment_name".into(), "../escape".into()],
            "contains `..`",
        ),
        (
            vec!["--experiment_name".into(), "a/b".into()],
            "path separator",
        ),
        (
            vec!["--num_epochs_train".into(), "3".into()],
            "--experiment_name is required",
        ),
        (
            vec![
                "--experiment_name".into(),
                "x".into(),
                "--root_config_folder".into(),
                "/nonexistent/configs".into(),
            ],
            "config folder /nonexistent/configs does not exist",
        ),
        (
            vec![
                "--experiment_name".into(),
                "x".into(),
                "--config_models".into(),
                "nope".into(),
            ],
            "available in",
        ),
        (
            vec![
                "--experiment_name".into(),
                "x".into(),
                "--worker_command".into(),
                "python3 worker.py".into(),
            ],
            "worker_command must be a non-empty list",
        ),
        (
            vec!["--experiment_name".into(), "x".into(), "stray".into()],
            "`stray` has no flag in front of it",
        ),
    ];
    for (args, expected) in cases {
        let out = metricbench()
            .arg("run")
            .args(&args)
            .arg("--root_experiment_folder")
            .arg(dir.path())
            .output()
            .unwrap();
        let all = text(&out);
        assert!(!out.status.success(), "{args:?}: {all}");
        assert!(
            all.contains(expected),
            "{args:?}: expected {expected:?} in\n{all}"
        );
        assert!(!all.contains("panicked"), "{all}");
    }
    let deep = dir.path().join("no/such/root");
    let out = run(&deep, "x", &[]);
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    // The refused runs left the earlier results untouched.
    let after =
        std::fs::read_to_string(dir.path().join("taken/python_worker_result.json")).unwrap();
    assert_eq!(before, after);
}

#[test]
fn run_is_the_default_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = metricbench()
        .args(["--experiment_name", "implicit", "--root_experiment_folder"])
        .arg(dir.path())
        .args([
            "--worker_command",
            &python_worker(),
            "--num_epochs_train",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir
        .path()
        .join("implicit/configs/config_general.yaml")
        .is_file());
}

/// `run` starts one worker: its OpenMP threads spin briefly if they fit the cores, sleep if not,
/// and the user's own choice is passed through untouched.
#[test]
fn workers_get_an_openmp_wait_policy_unless_the_user_chose_one() {
    let dir = tempfile::tempdir().unwrap();
    let worker = inline_worker(
        "import json, os; e = os.environ.get; print(json.dumps({'event': 'error', 'kind': 'data', \
         'message': 'policy=%s spin=%s' % (e('OMP_WAIT_POLICY', '-'), e('GOMP_SPINCOUNT', '-'))}), \
         flush=True)",
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let too_many = (cores + 1).to_string();
    // (experiment, variables the user set, what the worker sees)
    let cases = [
        ("fits", vec![("OMP_NUM_THREADS", "1")], "policy=- spin=3000"),
        (
            "oversubscribed",
            vec![("OMP_NUM_THREADS", too_many.as_str())],
            "policy=PASSIVE spin=-",
        ),
        (
            "chosen",
            vec![("OMP_WAIT_POLICY", "ACTIVE")],
            "policy=ACTIVE spin=-",
        ),
        (
            "spincount",
            vec![("GOMP_SPINCOUNT", "10")],
            "policy=- spin=10",
        ),
    ];
    for (name, env, expected) in cases {
        let mut command = metricbench();
        command
            .args(["run", "--experiment_name", name, "--root_experiment_folder"])
            .arg(dir.path())
            .args(["--worker_command", &worker])
            .env_remove("OMP_WAIT_POLICY")
            .env_remove("GOMP_SPINCOUNT")
            .env_remove("OMP_NUM_THREADS");
        command.envs(env);
        let out = command.output().expect("metricbench runs");
        let all = text(&out);
        assert!(
            all.contains(expected),
            "{name}: expected {expected:?} in\n{all}"
        );
    }
}
