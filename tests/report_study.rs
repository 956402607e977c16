//! The study report and the study's TensorBoard summaries, on a real `metricbench tune` run driven
//! by a worker whose objective is known (tests/fixtures/quadratic_worker.py): it depends on `x` and
//! the trunk's learning rate, not on `ignored`, and fails for x > 0.95.
//!
//! The TensorBoard check runs the real TensorBoard Python package when the test script provides
//! it (`METRICBENCH_PYREF`, set by scripts/test.sh from scripts/setup-pyref.sh); without it, that
//! part is skipped with a message.

mod common;
use common::{check_pages_in_chromium, text};

use metricbench::study::storage::{StudyStore, TrialState};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A finished 10-trial study in `root/study`.
fn tune(root: &Path) -> PathBuf {
    let worker = format!("[python3, {}]", fixture("quadratic_worker.py").display());
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tune",
            "--experiment_name",
            "study",
            "--root_experiment_folder",
        ])
        .arg(root)
        .args(["--worker_command", &worker, "--bayes_opt_iters", "10"])
        .args(["--eval_metric_for_best_epoch", "m"])
        .args([
            "--example_parameters",
            "{x~BAYESIAN~: [0, 1], ignored~BAYESIAN~: [0, 1]}",
        ])
        .args([
            "--optimizers",
            "{trunk_optimizer: {Adam: {lr~LOG_BAYESIAN~: [0.0001, 0.1]}}, \
             embedder_optimizer: {Adam: {lr~LOG_BAYESIAN~: [0.0001, 0.1]}}}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    root.join("study")
}

fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    )
}

#[test]
fn study_report_tensorboard_hparams_and_trial_reports() {
    let dir = tempfile::tempdir().unwrap();
    let study = tune(dir.path());
    let store = StudyStore::open(&study.join("study.db")).unwrap();
    let trials = store.trials().unwrap();
    assert_eq!(trials.len(), 10);

    // Regenerated from study.db and the trial folders alone.
    std::fs::remove_dir_all(study.join("tensorboard")).unwrap();
    std::fs::remove_file(study.join("report.html")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .arg("report")
        .arg(&study)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(study.join("report.html")).unwrap();
    // Full parameter names, never two slices called Adam/lr.
    assert!(
        html.contains("optimizers/trunk_optimizer/Adam/lr"),
        "{html}"
    );
    assert!(html.contains("optimizers/embedder_optimizer/Adam/lr"));
    for stem in ["optimization_trace", "parameter_slices"] {
        let svg = std::fs::read_to_string(study.join(format!("{stem}.svg"))).unwrap();
        let (w, h) = svg_size(&svg);
        assert_eq!(png_size(&study.join(format!("{stem}.png"))), (2 * w, 2 * h));
    }
    for stem in [
        "parameter_importance",
        "gp_mean_contour",
        "intermediate_values",
        "parallel_coordinates",
    ] {
        assert!(
            html.contains(&format!("{stem}.png")),
            "{stem} missing from the page"
        );
        assert!(study.join(format!("{stem}.png")).is_file(), "{stem}.png");
    }
    assert!(html.contains("fANOVA main effects of the Gaussian-process posterior mean"));
    // A trial folder is an experiment: its own report, into a separate folder.
    let trial_report = dir.path().join("trial_report");
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .arg("report")
        .arg(study.join(&trials[0].name))
        .arg("--output")
        .arg(&trial_report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // This test's worker writes no records: the trial's report says so.
    assert!(
        text(&out).contains("has no fold folders with records yet"),
        "{}",
        text(&out)
    );
    assert!(trial_report.join("report.html").is_file());
    check_pages_in_chromium(&[&study.join("report.html")]);

    // TensorBoard: one run per trial under the trial's name, plus the experiment summary.
    let tb = study.join("tensorboard");
    for t in &trials {
        assert!(tb.join(&t.name).is_dir(), "no run for {}", t.name);
    }
    let Some(python) = std::env::var_os("METRICBENCH_PYREF") else {
        println!(
            "skipping the TensorBoard reader check: METRICBENCH_PYREF is not set \
             (scripts/test.sh sets it from scripts/setup-pyref.sh)"
        );
        return;
    };
    // A corrupted trailing record in one trial's file must not stop TensorBoard reading the rest.
    let first = tb.join(&trials[0].name);
    let file = std::fs::read_dir(&first)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut data = std::fs::read(&file).unwrap();
    data.extend_from_slice(&[0x20, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 9, 9]);
    std::fs::write(&file, data).unwrap();
    let out = Command::new(python)
        .arg(fixture("read_hparams.py"))
        .arg(&tb)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // Every trial: its parameters under their full names, its state, and the objective.
    for t in &trials {
        let line = all
            .lines()
            .find(|l| l.starts_with(&format!("session {} ", t.name)))
            .unwrap_or_else(|| panic!("no session for {}:\n{all}", t.name));
        let x = t.parameters["example_parameters/x"].as_f64().unwrap();
        assert!(
            line.contains(&format!("example_parameters/x={x:.6}")),
            "{line}"
        );
        assert!(
            line.contains(&format!("trial_state={}", t.state.as_str())),
            "{line}"
        );
        let status = if t.state == TrialState::Failed {
            "STATUS_FAILURE"
        } else {
            "STATUS_SUCCESS"
        };
        assert!(line.contains(&format!("status={status}")), "{line}");
        if let Some(m) = t.objective_mean {
            assert!(line.contains(&format!("objective/m={m:.5}")), "{line}");
            // Three epochs per fold, two folds: the pruner's curves.
            assert!(
                line.contains("curves=intermediate/f0:3,intermediate/f1:3"),
                "{line}"
            );
        }
    }
    assert!(
        all.contains("experiment hparams=example_parameters/ignored,example_parameters/x,optimizers/embedder_optimizer/Adam/lr,optimizers/trunk_optimizer/Adam/lr,trial_state metrics=objective/SEM_m,objective/m"),
        "{all}"
    );
}

fn svg_size(svg: &str) -> (u32, u32) {
    let head = &svg[..svg.find('>').unwrap()];
    let attr = |name: &str| -> u32 {
        let start = head.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = start + head[start..].find('"').unwrap();
        head[start..end].parse().unwrap()
    };
    (attr("width"), attr("height"))
}

/// The Projector files as TensorBoard's Projector plugin reads them, the sprite served by the
/// plugin itself: 5 thumbnails of 6x4 pixels, 3 per row, each a colour of its own, so the order
/// the Projector slices them in is checked against the metadata order.
#[test]
fn projector_files_are_read_by_tensorboard() {
    use metricbench_protocol::projector::{write, ProjectedSplit, Sprite};
    use resvg::tiny_skia::{Color, Pixmap, Rect, Transform};
    let dir = tempfile::tempdir().unwrap();
    let val: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
    let test: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let colours: [(u8, u8, u8); 5] = [
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
        (255, 255, 0),
        (0, 255, 255),
    ];
    let mut atlas = Pixmap::new(18, 8).unwrap();
    for (i, (r, g, b)) in colours.iter().enumerate() {
        let (x, y) = ((i % 3) as f32 * 6.0, (i / 3) as f32 * 4.0);
        let mut paint = resvg::tiny_skia::Paint::default();
        paint.set_color(Color::from_rgba8(*r, *g, *b, 255));
        atlas.fill_rect(
            Rect::from_xywh(x, y, 6.0, 4.0).unwrap(),
            &paint,
            Transform::identity(),
            None,
        );
    }
    let png = atlas.encode_png().unwrap();
    write(
        dir.path(),
        &[
            ProjectedSplit {
                split: "val",
                embeddings: &val,
                dim: 3,
                labels: &[0, 0, 1, 1],
                indices: &[4, 5, 6, 7],
                sprite: None,
            },
            ProjectedSplit {
                split: "test",
                embeddings: &test,
                dim: 2,
                labels: &[5, 6, 7, 8, 9],
                indices: &[0, 1, 2, 3, 4],
                sprite: Some(Sprite {
                    png: &png,
                    thumbnail_width: 6,
                    thumbnail_height: 4,
                }),
            },
        ],
    )
    .unwrap();
    let Some(python) = std::env::var_os("METRICBENCH_PYREF") else {
        println!(
            "skipping the Projector reader check: METRICBENCH_PYREF is not set \
             (scripts/test.sh sets it from scripts/setup-pyref.sh)"
        );
        return;
    };
    let out = Command::new(python)
        .arg(fixture("read_projector.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("embedding val shape=4,3 values=-1,4.5 metadata_rows=4 header=label|index"),
        "{all}"
    );
    assert!(
        all.contains("embedding test shape=5,2 values=0,9 metadata_rows=5"),
        "{all}"
    );
    assert!(
        all.contains(
            "sprite test size=18,8 thumbnail=6,4 \
             colours=255.0.0|0.255.0|0.0.255|255.255.0|0.255.255"
        ),
        "{all}"
    );
    assert!(!all.contains("sprite val"), "{all}");
}
