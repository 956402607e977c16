//! End-to-end: `metricbench run` on a `Features` dataset read from files under `--dataset_root`,
//! with its own predefined split, driving the real Rust worker.

mod common;
use common::worker_binary;

use std::path::Path;
use std::process::Command;

/// Vectors of `classes` classes: each class a point in a 4-dimensional signal space, plus noise,
/// plus 12 nuisance dimensions with three times the spread, so untrained retrieval is weak and a
/// trained network can do much better.
fn write_dataset(dir: &Path, classes: usize, per_class: usize) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut unit = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut gauss = move || {
        let (u, v) = (unit().max(1e-12), unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let mut features = String::from("label,split");
    for j in 0..16 {
        features.push_str(&format!(",f{j}"));
    }
    features.push('\n');
    for c in 0..classes {
        let center: Vec<f64> = (0..4).map(|_| 2.0 * gauss()).collect();
        // Classes 100.. (labels need not start at 0); the split is class-disjoint.
        let label = 100 + c;
        let split = if c < classes / 2 {
            "train"
        } else if c < classes * 3 / 4 {
            "val"
        } else {
            "test"
        };
        for _ in 0..per_class {
            let mut row = format!("{label},{split}");
            for x in &center {
                row.push_str(&format!(",{:.5}", x + 0.3 * gauss()));
            }
            for _ in 0..12 {
                row.push_str(&format!(",{:.5}", 3.0 * gauss()));
            }
            features.push_str(&row);
            features.push('\n');
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("vectors.csv"), features).unwrap();
}

#[test]
fn run_trains_on_a_features_dataset_with_its_predefined_split() {
    worker_binary();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 40, 12);
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "--experiment_name",
            "feats",
            "--root_experiment_folder",
        ])
        .arg(dir.path())
        .arg("--dataset_root")
        .arg(&data)
        .args([
            "--dataset~OVERRIDE~",
            "{Features: {features: vectors.csv, label_column: label, split_column: split}}",
            "--special_split_scheme_name",
            "predefined",
            "--num_epochs_train",
            "3",
            "--device",
            "cpu",
        ])
        .output()
        .expect("metricbench runs");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    let folder = dir.path().join("feats/predefined");
    // The file's own classes and split reached the worker.
    let splits = std::fs::read_to_string(folder.join("splits.yaml")).unwrap();
    for expected in [
        "train:\n  num_samples: 240\n  num_classes: 20\n  classes: [\"100-119\"]",
        "val:\n  num_samples: 120\n  num_classes: 10\n  classes: [\"120-129\"]",
        "test:\n  num_samples: 120\n  num_classes: 10\n  classes: [\"130-139\"]",
    ] {
        assert!(splits.contains(expected), "{expected}\n---\n{splits}");
    }
    // Training learned to ignore the nuisance dimensions: val P@1 well above the untrained one.
    let csvs = folder.join("saved_csvs");
    let file = std::fs::read_dir(&csvs)
        .unwrap_or_else(|e| panic!("{}: {e}\n{all}", csvs.display()))
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("accuracies_"))
        .expect("an accuracies table");
    let csv = std::fs::read_to_string(file.path()).unwrap();
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
    let best = rows.iter().map(|r| r[p1]).fold(0.0, f64::max);
    assert!(best > untrained + 0.1, "{untrained} -> {best}\n{csv}");
}
