//! End-to-end tests of `metricbench tune` on real processes, driven by the Python example worker,
//! whose objective is known (optimum 1 at every parameter = 0.5; reported value at epoch e of E is
//! score * (1 - 0.5^e)).

mod common;
use common::{fails, python_worker, succeeds, text};

use metricbench::study::storage::{StudyStore, TrialState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn tune_command(root: &Path, name: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_metricbench"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tune",
            "--experiment_name",
            name,
            "--root_experiment_folder",
        ])
        .arg(root)
        .args(["--worker_command", &python_worker()])
        .args([
            "--example_parameters",
            "{x~BAYESIAN~: [0, 1], y~BAYESIAN~: [0, 1]}",
        ])
        .args(extra);
    cmd
}

fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    metricbench::study::report::read_csv_rows(path).unwrap()
}

#[test]
fn a_study_finds_the_known_optimum_and_its_files_agree() {
    let dir = tempfile::tempdir().unwrap();
    let all = succeeds(&mut tune_command(
        dir.path(),
        "known",
        &[
            "--bayes_opt_iters",
            "14",
            "--parallel",
            "2",
            "--reproductions",
            "2",
            "--num_epochs_train",
            "2",
            "--num_training_sets",
            "2",
            "--example_seconds_per_epoch",
            "0.15",
        ],
    ));
    let study = dir.path().join("known");

    // study.db: exactly 14 trials, indices 0..13, all completed.
    let store = StudyStore::open(&study.join("study.db")).unwrap();
    let trials = store.trials().unwrap();
    assert_eq!(trials.len(), 14);
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t.index, i as u64);
        assert_eq!(t.state, TrialState::Completed, "{t:?}");
        assert_eq!(t.name, format!("known{i}"));
        // Each trial folder holds its parameters and configs with plain keys.
        let params: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(study.join(&t.name).join("trial_parameters.yaml")).unwrap(),
        )
        .unwrap();
        let x = params["example_parameters/x"].as_f64().unwrap();
        assert_eq!(t.parameters["example_parameters/x"].as_f64(), Some(x));
        // Command-line-only keys land in the last category's file.
        let saved =
            std::fs::read_to_string(study.join(&t.name).join("configs/config_eval.yaml")).unwrap();
        assert!(!saved.contains("~BAYESIAN~"), "{saved}");
        assert!(saved.contains(&format!("x: {x}")), "{saved}");
    }

    // The best value approaches the optimum 0.75 (= 1 - 0.5^2) and is far above a random point's
    // typical value.
    let best = trials
        .iter()
        .max_by(|a, b| a.objective_mean.partial_cmp(&b.objective_mean).unwrap())
        .unwrap();
    assert!(best.objective_mean.unwrap() > 0.70, "{best:?}");

    // trials.csv and best_parameters.yaml agree with the store.
    let rows = csv_rows(&study.join("trials.csv"));
    assert_eq!(rows.len(), 14);
    let csv_best = rows
        .iter()
        .max_by(|a, b| {
            let v = |r: &BTreeMap<String, String>| {
                r["mean_average_precision_at_r"].parse::<f64>().unwrap()
            };
            v(a).total_cmp(&v(b))
        })
        .unwrap();
    assert_eq!(csv_best["name"], best.name);
    let best_yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("best_parameters.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        best_yaml["best_sub_experiment_name"].as_str(),
        Some(best.name.as_str())
    );
    assert_eq!(
        best_yaml["best_parameters"]["example_parameters/y"].as_f64(),
        best.parameters["example_parameters/y"].as_f64()
    );

    // report.yaml: the best trial plus two reproductions, each tested (the example worker reports
    // test = 0.9 * score), and the ensemble.
    let report: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("report.yaml")).unwrap()).unwrap();
    let experiments = report["test"]["experiments"].as_sequence().unwrap();
    assert_eq!(experiments.len(), 3);
    assert_eq!(
        experiments[1]["name"].as_str().unwrap(),
        format!("{}_reproduction0", best.name)
    );
    // Each reproduction retrains with its own seed (else a CPU run repeats the same numbers).
    for (j, seed) in [(0, 1000), (1, 2000)] {
        let general = std::fs::read_to_string(study.join(format!(
            "{}_reproduction{j}/configs/config_general.yaml",
            best.name
        )))
        .unwrap();
        assert!(general.contains(&format!("seed: {seed}\n")), "{general}");
    }
    let summary = &report["test"]["summary"]["mean_average_precision_at_r"];
    assert_eq!(summary["n"].as_u64(), Some(3));
    assert!(summary["mean"].as_f64().unwrap() > 0.85, "{summary:?}");
    assert!(report["test"]["ConcatenateEmbeddings"]["precision_at_1"]
        .as_f64()
        .is_some());
    assert!(
        report["errors"].as_sequence().unwrap().is_empty(),
        "{report:?}"
    );

    // --parallel 2 really ran two workers at once, on different parameters.
    let mut overlaps = 0;
    for a in &trials {
        for b in &trials {
            if a.index < b.index
                && a.started_at.as_deref().unwrap() < b.finished_at.as_deref().unwrap()
                && b.started_at.as_deref().unwrap() < a.finished_at.as_deref().unwrap()
            {
                assert_ne!(a.parameters, b.parameters);
                overlaps += 1;
            }
        }
    }
    assert!(overlaps >= 5, "only {overlaps} overlapping trial pairs");
    assert!(all.contains("best trial: "), "{all}");

    // report.html embeds both plots and names the best trial; `metricbench report` rewrites it.
    let html = std::fs::read_to_string(study.join("report.html")).unwrap();
    // The trace and the slices, then the figures of the study's insights (importance, contour,
    // intermediate values, parallel coordinates: tests/report_study.rs checks those).
    assert!(html.matches("<svg").count() >= 2, "trace and slices");
    assert!(html.contains("optimization_trace.png") && html.contains("parameter_slices.png"));
    assert!(html.contains(&format!("Best trial: {}", best.name)));
    std::fs::remove_file(study.join("report.html")).unwrap();
    succeeds(
        Command::new(env!("CARGO_BIN_EXE_metricbench"))
            .args(["report"])
            .arg(&study),
    );
    assert!(study.join("report.html").is_file());
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .args(["report"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        text(&out).contains("nor a study (study.db)"),
        "{}",
        text(&out)
    );
}

#[test]
fn kill_9_of_the_coordinator_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run_log = dir.path().join("runs.log");
    let log_arg = run_log.to_string_lossy().into_owned();
    let args = [
        "--bayes_opt_iters",
        "10",
        "--parallel",
        "2",
        "--num_epochs_train",
        "3",
        "--num_training_sets",
        "1",
        "--example_seconds_per_epoch",
        "0.25",
        "--example_run_log",
        &log_arg,
    ];
    let study = dir.path().join("crashy");
    // Parameters of each trial index as first seen; they must never change.
    let mut seen: BTreeMap<u64, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    // (run-log length at the kill, trials completed at the kill): none of those may start again.
    let mut snapshots: Vec<(usize, BTreeSet<String>)> = Vec::new();
    let mut seed = (std::process::id() as u64).wrapping_mul(6_364_136_223_846_793_005) | 1;
    for _ in 0..4 {
        let mut child = tune_command(dir.path(), "crashy", &args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = Duration::from_millis(700 + (seed >> 33) % 1500);
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Workers die with the coordinator (PR_SET_PDEATHSIG); give them a moment to be gone.
        std::thread::sleep(Duration::from_millis(300));
        if !study.join("study.db").is_file() {
            continue;
        }
        let store = StudyStore::open(&study.join("study.db")).unwrap();
        let trials = store.trials().unwrap();
        for t in &trials {
            let first = seen.entry(t.index).or_insert_with(|| t.parameters.clone());
            assert_eq!(*first, t.parameters, "trial {} changed parameters", t.index);
        }
        let completed = trials
            .iter()
            .filter(|t| t.state == TrialState::Completed)
            .map(|t| t.name.clone())
            .collect();
        let log_len = std::fs::read_to_string(&run_log).map_or(0, |s| s.lines().count());
        snapshots.push((log_len, completed));
    }
    // The final run completes the study.
    succeeds(&mut tune_command(dir.path(), "crashy", &args));

    let store = StudyStore::open(&study.join("study.db")).unwrap();
    let trials = store.trials().unwrap();
    assert_eq!(trials.len(), 10, "{trials:?}");
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t.index, i as u64, "each index exactly once");
        assert!(t.state.is_finished(), "{t:?}");
        if let Some(first) = seen.get(&t.index) {
            assert_eq!(*first, t.parameters, "trial {} changed parameters", t.index);
        }
        let on_disk: serde_json::Value = serde_json::to_value(
            serde_yaml::from_str::<serde_yaml::Value>(
                &std::fs::read_to_string(study.join(&t.name).join("trial_parameters.yaml"))
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(on_disk, serde_json::Value::Object(t.parameters.clone()));
    }
    let log = std::fs::read_to_string(&run_log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    for (len, completed) in &snapshots {
        for line in &lines[*len..] {
            let mut parts = line.split(' ');
            let (what, folder, action) = (parts.next(), parts.next().unwrap(), parts.next());
            let name = Path::new(folder).file_name().unwrap().to_string_lossy();
            if what == Some("start") && action == Some("train") {
                assert!(
                    !completed.contains(name.as_ref()),
                    "{name} was completed at a kill but trained again"
                );
            }
        }
    }
    // No trial folder outside the store, no stray trial.
    let folders: BTreeSet<String> = std::fs::read_dir(&study)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("crashy") && !n.contains("_reproduction"))
        .collect();
    let names: BTreeSet<String> = trials.iter().map(|t| t.name.clone()).collect();
    assert_eq!(folders, names);
}

#[test]
fn failing_trials_are_recorded_and_the_study_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    succeeds(&mut tune_command(
        dir.path(),
        "faults",
        &[
            "--bayes_opt_iters",
            "8",
            "--parallel",
            "2",
            "--trial_timeout",
            "3",
            "--num_epochs_train",
            "2",
            "--num_training_sets",
            "1",
            "--example_behaviour_by_trial",
            "{2: crash, 3: garbage, 4: hang, 5: nan, 6: error}",
        ],
    ));
    let store = StudyStore::open(&dir.path().join("faults/study.db")).unwrap();
    let trials = store.trials().unwrap();
    assert_eq!(trials.len(), 8);
    let expected: [(u64, &str); 5] = [
        (2, "without sending a result event"),
        (3, "not a protocol-v1 event"),
        (4, "--trial_timeout (3 s)"),
        (5, "NaN"),
        (6, "failing on purpose"),
    ];
    for t in &trials {
        match expected.iter().find(|(i, _)| *i == t.index) {
            Some((_, why)) => {
                assert_eq!(t.state, TrialState::Failed, "{t:?}");
                let error = t.error.as_deref().unwrap_or_default();
                assert!(error.contains(why), "trial {}: {error}", t.index);
            }
            None => assert_eq!(t.state, TrialState::Completed, "{t:?}"),
        }
    }
    let csv = std::fs::read_to_string(dir.path().join("faults/trials.csv")).unwrap();
    assert_eq!(csv.matches(",failed,").count(), 5, "{csv}");
}

#[test]
fn a_broken_setup_stops_after_a_few_failures() {
    let dir = tempfile::tempdir().unwrap();
    let all = fails(&mut tune_command(
        dir.path(),
        "broken",
        &["--bayes_opt_iters", "20", "--example_behaviour", "crash"],
    ));
    assert!(all.contains("the first 3 trials all failed"), "{all}");
    assert!(
        all.contains("crashing on purpose"),
        "the first error is shown: {all}"
    );
    let store = StudyStore::open(&dir.path().join("broken/study.db")).unwrap();
    assert_eq!(store.trials().unwrap().len(), 3);
}

#[test]
fn studies_refuse_foreign_folders_and_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    succeeds(&mut tune_command(
        dir.path(),
        "mine",
        &[
            "--bayes_opt_iters",
            "2",
            "--num_epochs_train",
            "1",
            "--num_training_sets",
            "1",
        ],
    ));
    // Same folder, different parameters: another study.
    let other = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tune",
            "--experiment_name",
            "mine",
            "--root_experiment_folder",
        ])
        .arg(dir.path())
        .args([
            "--worker_command",
            &python_worker(),
            "--bayes_opt_iters",
            "2",
        ])
        .args(["--example_parameters", "{z~BAYESIAN~: [0, 1]}"])
        .output()
        .unwrap();
    assert!(
        text(&other).contains("belongs to a different study"),
        "{}",
        text(&other)
    );
    // A plain experiment folder is not a study.
    std::fs::create_dir_all(dir.path().join("plain/Test50_50_Partitions4_0")).unwrap();
    let out = tune_command(dir.path(), "plain", &["--bayes_opt_iters", "2"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("is not a study folder (it has no study.db)"),
        "{}",
        text(&out)
    );
    // Missing iterations, bad values, nothing to tune.
    for (extra, expected) in [
        (vec!["--parallel", "2"], "--bayes_opt_iters N is required"),
        (vec!["--bayes_opt_iters", "0"], "positive integer"),
        (
            vec!["--bayes_opt_iters", "3", "--prune", "mean"],
            "--prune expects `median`",
        ),
        (
            vec!["--bayes_opt_iters", "3", "--executor", "k8s"],
            "--executor `k8s`",
        ),
    ] {
        let out = tune_command(dir.path(), "x", &extra).output().unwrap();
        assert!(!out.status.success());
        assert!(text(&out).contains(expected), "{extra:?}: {}", text(&out));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tune",
            "--experiment_name",
            "nothing",
            "--bayes_opt_iters",
            "3",
            "--root_experiment_folder",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        text(&out).contains("no search parameters"),
        "{}",
        text(&out)
    );
    // `--bayes_opt_iters` without a subcommand means tune.
    succeeds(
        Command::new(env!("CARGO_BIN_EXE_metricbench"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "--experiment_name",
                "implicit",
                "--bayes_opt_iters",
                "2",
                "--root_experiment_folder",
            ])
            .arg(dir.path())
            .args(["--worker_command", &python_worker()])
            .args([
                "--example_parameters",
                "{x~BAYESIAN~: [0, 1]}",
                "--num_epochs_train",
                "1",
            ]),
    );
    assert!(dir.path().join("implicit/study.db").is_file());
}

#[test]
fn median_pruning_stops_hopeless_trials() {
    let dir = tempfile::tempdir().unwrap();
    // Slow epochs so the stop command arrives mid-training. The suggestions are deterministic (seed
    // 0), and some of the Sobol design's points score below the median of the first three.
    let all = succeeds(&mut tune_command(
        dir.path(),
        "pruned",
        &[
            "--bayes_opt_iters",
            "9",
            "--prune",
            "median",
            "--num_epochs_train",
            "6",
            "--num_training_sets",
            "1",
            "--example_seconds_per_epoch",
            "0.15",
        ],
    ));
    let store = StudyStore::open(&dir.path().join("pruned/study.db")).unwrap();
    let trials = store.trials().unwrap();
    let pruned: Vec<_> = trials
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .collect();
    assert!(!pruned.is_empty(), "no trial was pruned:\n{all}");
    for t in &pruned {
        // A pruned trial stopped early: it reported fewer than 6 epochs.
        let folds = t.fold_metrics.as_ref().unwrap();
        assert!(folds[0]["best_epoch"].as_i64().unwrap() < 6, "{t:?}");
        assert!(t.index >= 3, "nothing is pruned before 3 trials completed");
    }
}

/// `metricbench tune` with only the study's folder: everything else comes from the saved study.
fn resume_command(root: &Path, name: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_metricbench"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tune",
            "--experiment_name",
            name,
            "--root_experiment_folder",
        ])
        .arg(root)
        .args(extra);
    cmd
}

#[test]
fn a_study_resumes_by_folder_and_can_be_extended_but_not_shrunk() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("again");
    // The first three trials crash, so the study stops early (3 of its 5 trials made).
    let first = fails(&mut tune_command(
        dir.path(),
        "again",
        &[
            "--bayes_opt_iters",
            "5",
            "--reproductions",
            "1",
            "--num_epochs_train",
            "1",
            "--num_training_sets",
            "1",
            "--example_behaviour_by_trial",
            "{0: crash, 1: crash, 2: crash}",
        ],
    ));
    assert!(first.contains("the first 3 trials all failed"), "{first}");
    let count = || {
        StudyStore::open(&study.join("study.db"))
            .unwrap()
            .trials()
            .unwrap()
    };
    assert_eq!(count().len(), 3);

    // Only the folder: the remaining trials run with the saved count and flags.
    let resumed = succeeds(&mut resume_command(dir.path(), "again", &[]));
    assert!(
        resumed.contains("flags from the saved study: --bayes_opt_iters 5 --reproductions 1"),
        "{resumed}"
    );
    assert!(
        resumed.contains("flags from the command line: (none)"),
        "{resumed}"
    );
    let trials = count();
    assert_eq!(trials.len(), 5, "{trials:?}");
    assert!(trials[3..].iter().all(|t| t.state == TrialState::Completed));
    let reproduced = std::fs::read_dir(&study)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with("_reproduction0"));
    assert!(reproduced, "--reproductions 1 was kept");

    // A larger count extends the finished study, and says so.
    let extended = succeeds(&mut resume_command(
        dir.path(),
        "again",
        &["--bayes_opt_iters", "7"],
    ));
    assert!(
        extended.contains("extending the study from 5 to 7 trials"),
        "{extended}"
    );
    assert!(
        extended.contains("flags from the command line: --bayes_opt_iters 7"),
        "{extended}"
    );
    assert_eq!(count().len(), 7);

    // Fewer than the trials that exist is an error naming how many there are.
    let shrunk = fails(&mut resume_command(
        dir.path(),
        "again",
        &["--bayes_opt_iters", "4"],
    ));
    assert!(
        shrunk.contains("--bayes_opt_iters 4 is smaller than the 7 trials this study already has"),
        "{shrunk}"
    );
    assert_eq!(count().len(), 7);
    // The saved count is now 7: a plain resume runs nothing new.
    let again = succeeds(&mut resume_command(dir.path(), "again", &[]));
    assert!(again.contains("--bayes_opt_iters 7"), "{again}");
    assert_eq!(count().len(), 7);
}

#[test]
fn trials_csv_names_the_objective_as_the_worker_reported_it() {
    let dir = tempfile::tempdir().unwrap();
    succeeds(&mut tune_command(
        dir.path(),
        "named",
        &[
            "--bayes_opt_iters",
            "2",
            "--num_epochs_train",
            "1",
            "--num_training_sets",
            "1",
            "--example_objective_metric",
            "plugin_score",
        ],
    ));
    let study = dir.path().join("named");
    let rows = csv_rows(&study.join("trials.csv"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(row.contains_key("plugin_score"), "{row:?}");
        assert!(row.contains_key("SEM_plugin_score"), "{row:?}");
        assert!(!row.contains_key("mean_average_precision_at_r"), "{row:?}");
        assert!(row["plugin_score"].parse::<f64>().is_ok(), "{row:?}");
    }
    let report: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("report.yaml")).unwrap()).unwrap();
    assert_eq!(report["objective"]["metric"].as_str(), Some("plugin_score"));
    let source = report["objective"]["metric_source"].as_str().unwrap();
    assert!(source.contains("the worker reported"), "{source}");
    let best: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("best_parameters.yaml")).unwrap())
            .unwrap();
    assert!(
        best["best_values"]["plugin_score"]["mean"].is_f64(),
        "{best:?}"
    );
}

#[test]
fn noisy_trials_pass_their_sem_and_the_model_chooses_the_best_trial() {
    // Three folds with noise of sd 0.1 each: every trial reports a mean and a real SEM.
    let dir = tempfile::tempdir().unwrap();
    let noisy = [
        "--bayes_opt_iters",
        "10",
        "--initial_trials",
        "4",
        "--num_epochs_train",
        "1",
        "--num_training_sets",
        "3",
        "--example_noise_sd",
        "0.1",
    ];
    let all = succeeds(&mut tune_command(dir.path(), "noisy", &noisy));
    assert!(
        all.contains("chosen by the model's posterior mean"),
        "{all}"
    );
    let study = dir.path().join("noisy");
    let store = StudyStore::open(&study.join("study.db")).unwrap();
    let trials = store.trials().unwrap();
    assert_eq!(trials.len(), 10);
    assert!(
        trials
            .iter()
            .all(|t| t.objective_sem.is_some_and(|s| s > 0.0)),
        "{trials:?}"
    );
    let report: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("report.yaml")).unwrap()).unwrap();
    assert_eq!(
        report["best_trial_by"].as_str(),
        Some("model"),
        "{report:?}"
    );
    assert!(report["model_mean"].as_f64().is_some(), "{report:?}");
    let chosen = report["best_trial"].as_str().unwrap();
    let best_yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("best_parameters.yaml")).unwrap())
            .unwrap();
    assert_eq!(best_yaml["best_sub_experiment_name"].as_str(), Some(chosen));
    assert_eq!(best_yaml["best_trial_by"].as_str(), Some("model"));
    let html = std::fs::read_to_string(study.join("report.html")).unwrap();
    assert!(html.contains("chosen by the model"), "{html}");

    // The same trials judged by the observed rule: `metricbench report` after the rule is
    // remembered by a resumed run with --best_trial_by observed (nothing left to run).
    let mut again = noisy.to_vec();
    again.extend(["--best_trial_by", "observed"]);
    succeeds(&mut tune_command(dir.path(), "noisy", &again));
    let out = succeeds(
        Command::new(env!("CARGO_BIN_EXE_metricbench"))
            .args(["report"])
            .arg(&study),
    );
    assert!(out.contains("chosen by the highest observed mean"), "{out}");
    let highest = trials
        .iter()
        .max_by(|a, b| a.objective_mean.partial_cmp(&b.objective_mean).unwrap())
        .unwrap();
    let best_yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("best_parameters.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        best_yaml["best_sub_experiment_name"].as_str(),
        Some(highest.name.as_str())
    );
    assert_eq!(best_yaml["best_trial_by"].as_str(), Some("observed"));

    // Bad values of the new flags are errors naming the flag.
    let bad = fails(&mut tune_command(
        dir.path(),
        "other",
        &["--bayes_opt_iters", "2", "--best_trial_by", "median"],
    ));
    assert!(
        bad.contains("--best_trial_by expects `model` or `observed`"),
        "{bad}"
    );
    let bad = fails(&mut tune_command(
        dir.path(),
        "other",
        &["--bayes_opt_iters", "2", "--initial_trials", "0"],
    ));
    assert!(
        bad.contains("--initial_trials expects a positive integer"),
        "{bad}"
    );
}
