//! `metricbench report` on experiment folders: a complete one, a half-written one, hand-edited
//! tables, an empty folder, a folder that is neither experiment nor study, and a read-only one.
//! The folders are written here in the worker's record format (docs/experiments.md), so these
//! tests need no worker.

mod common;
use common::{check_pages_in_chromium, worker_binary};

use std::path::Path;
use std::process::{Command, Output};

const VAL: &str = "accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_VAL";
const TRAIN: &str =
    "accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_TRAIN";
const TEST: &str = "accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_TEST";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A finished fold: 3 evaluations (epochs -1, 0, 1, 2), best epoch `best`, `map` values per epoch.
fn write_fold(exp: &Path, fold: &str, map: [f64; 4], best: i64, test_map: f64) {
    let dir = exp.join(fold);
    write(
        &dir.join("splits.yaml"),
        "train:\n  num_samples: 100\n  num_classes: 10\n  classes: [\"0-9\"]\n\
         val:\n  num_samples: 50\n  num_classes: 5\n  classes: [\"10-14\"]\n\
         test:\n  num_samples: 60\n  num_classes: 6\n  classes: [\"15-20\"]\n",
    );
    let csvs = dir.join("saved_csvs");
    let mut val =
        "epoch,mean_average_precision_at_r,precision_at_1,best_epoch,best_accuracy\n".to_string();
    let mut train = "epoch,mean_average_precision_at_r,precision_at_1\n".to_string();
    for (i, m) in map.iter().enumerate() {
        let epoch = i as i64 - 1;
        let best_so_far =
            map[..=i].iter().enumerate().fold(
                (0, f64::MIN),
                |b, (j, v)| if *v > b.1 { (j, *v) } else { b },
            );
        val.push_str(&format!(
            "{epoch},{m},{},{},{}\n",
            m + 0.1,
            best_so_far.0 as i64 - 1,
            best_so_far.1
        ));
        train.push_str(&format!("{epoch},{},{}\n", m + 0.2, m + 0.3));
    }
    write(&csvs.join(format!("{VAL}.csv")), &val);
    write(&csvs.join(format!("{TRAIN}.csv")), &train);
    write(
        &csvs.join(format!("{TEST}.csv")),
        &format!(
            "epoch,mean_average_precision_at_r,precision_at_1\n{best},{test_map},{}\n",
            test_map + 0.1
        ),
    );
    let mut losses = "iteration,total_loss,metric_loss\n".to_string();
    let mut lr = "iteration,lr\n".to_string();
    for it in 1..=300 {
        let v = 1.0 / it as f64 + 0.01 * ((it * 7919) % 13) as f64;
        losses.push_str(&format!("{it},{v},{v}\n"));
        lr.push_str(&format!("{it},{}\n", 0.001 * 0.99f64.powi(it)));
    }
    write(&csvs.join("loss_histories.csv"), &losses);
    write(&csvs.join("trunk_optimizer_Adam.csv"), &lr);
}

fn write_experiment(exp: &Path) {
    write(
        &exp.join("configs/config_general.yaml"),
        "num_epochs_train: 2\nsave_interval: 1\n",
    );
    write(
        &exp.join("configs/config_eval.yaml"),
        "eval_metric_for_best_epoch: mean_average_precision_at_r\n",
    );
    write_fold(
        exp,
        "Test50_50_Partitions2_0",
        [0.1, 0.2, 0.5, 0.4],
        1,
        0.30,
    );
    write_fold(
        exp,
        "Test50_50_Partitions2_1",
        [0.1, 0.3, 0.35, 0.6],
        2,
        0.40,
    );
    write(
        &exp.join(format!(
            "meta_logs/saved_csvs/meta_ConcatenateEmbeddings_{TEST}.csv"
        )),
        "is_trained,mean_average_precision_at_r,precision_at_1,num_folds\n0,0.05,0.1,2\n1,0.45,0.55,2\n",
    );
}

fn report(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .arg("report")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Width and height of a PNG (IHDR).
fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn experiment_report_summarises_folds_meta_and_ensemble_and_draws_figures() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp1");
    write_experiment(&exp);
    let out = report(&[&exp]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Experiment exp1 (2 fold(s))"), "{stdout}");
    assert!(
        stdout.contains("fold Test50_50_Partitions2_0: best epoch 1, latest evaluated epoch 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fold Test50_50_Partitions2_1: best epoch 2"),
        "{stdout}"
    );
    // val at the best epochs: 0.5 and 0.6 -> mean 0.55, SEM = sd / sqrt(2) = 0.0707.../1.414 = 0.05.
    assert!(
        stdout.contains("mean_average_precision_at_r          0.5500 ± 0.0500"),
        "{stdout}"
    );
    // test: 0.30 and 0.40.
    let test_block = stdout.split("test: mean ± SEM").nth(1).unwrap();
    assert!(
        test_block.contains("mean_average_precision_at_r          0.3500 ± 0.0500"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "ensemble (ConcatenateEmbeddings) on test, trained: mean_average_precision_at_r 0.4500"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("missing"), "{stdout}");

    let html = std::fs::read_to_string(exp.join("report.html")).unwrap();
    for fold in ["Test50_50_Partitions2_0", "Test50_50_Partitions2_1"] {
        for kind in ["accuracy", "loss", "learning_rate"] {
            let stem = format!("report_figures/{kind}_{fold}");
            assert!(
                html.contains(&format!("{stem}.svg")),
                "{stem} not in the page"
            );
            let svg = std::fs::read_to_string(exp.join(format!("{stem}.svg"))).unwrap();
            assert!(svg.contains("width=\"760\" height=\"380\""), "{stem}");
            assert_eq!(png_size(&exp.join(format!("{stem}.png"))), (1520, 760));
        }
    }
    let accuracy =
        std::fs::read_to_string(exp.join("report_figures/accuracy_Test50_50_Partitions2_0.svg"))
            .unwrap();
    assert!(accuracy.contains("best epoch 1"));
    // The split composition table.
    assert!(html.contains("<td>15-20</td>"), "{html}");
    check_pages_in_chromium(&[&exp.join("report.html")]);
}

#[test]
fn a_half_written_run_reports_what_exists_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    write_experiment(&exp);
    // A third fold that has only started: splits and a few loss rows, no evaluation yet, and a
    // loss row cut in the middle by a crash.
    let fold = exp.join("Test50_50_Partitions2_2");
    write(&fold.join("splits.yaml"), "train:\n  num_samples: 10\n");
    write(
        &fold.join("saved_csvs/loss_histories.csv"),
        "iteration,total_loss\n1,0.9\n2,0.8\n3,",
    );
    std::fs::remove_file(exp.join("Test50_50_Partitions2_1/saved_csvs/loss_histories.csv"))
        .unwrap();
    let out = report(&[&exp]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Experiment exp (3 fold(s))"), "{stdout}");
    assert!(
        stdout.contains("Test50_50_Partitions2_2: no accuracy tables"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Test50_50_Partitions2_1: no loss_histories.csv"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fold Test50_50_Partitions2_2: best epoch -"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(exp.join("report.html")).unwrap();
    assert!(html.contains("Missing or unreadable"));
    assert!(exp
        .join("report_figures/loss_Test50_50_Partitions2_2.png")
        .is_file());
    check_pages_in_chromium(&[&exp.join("report.html")]);
}

#[test]
fn hand_edited_tables_without_the_expected_columns_give_messages_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    write_experiment(&exp);
    let csvs = exp.join("Test50_50_Partitions2_0/saved_csvs");
    write(
        &csvs.join(format!("{VAL}.csv")),
        "epoch,precision_at_1\n0,0.5\n1,0.7\n",
    );
    write(&csvs.join(format!("{TRAIN}.csv")), "accuracy\n0.5\n");
    write(&csvs.join("loss_histories.csv"), "");
    write(
        &exp.join("Test50_50_Partitions2_1/splits.yaml"),
        "- just\n- a list\n",
    );
    let out = report(&[&exp]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the val table has neither `best_epoch` nor the primary metric `mean_average_precision_at_r`"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{TRAIN}.csv has no `epoch` column")),
        "{stdout}"
    );
    assert!(stdout.contains("loss_histories.csv is empty"), "{stdout}");
    assert!(
        stdout.contains("splits.yaml: expected a mapping"),
        "{stdout}"
    );
    // The other fold is reported in full.
    assert!(
        stdout.contains("fold Test50_50_Partitions2_1: best epoch 2"),
        "{stdout}"
    );
}

#[test]
fn folders_that_are_not_experiments_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (_, stderr) = text(&report(&[&empty]));
    assert!(
        stderr.contains("is empty: neither an experiment") && stderr.contains("nor a study"),
        "{stderr}"
    );
    let other = dir.path().join("photos");
    write(&other.join("cat.jpg"), "not a record");
    let out = report(&[&other]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("photos is neither an experiment"),
        "{stderr}"
    );
    let (_, stderr) = text(&report(&[&dir.path().join("nowhere")]));
    assert!(stderr.contains("nowhere does not exist"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn a_read_only_experiment_prints_its_summary_and_points_to_output() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    write_experiment(&exp);
    std::fs::set_permissions(&exp, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(exp.join("probe"), "x").is_ok() {
        // Root ignores permission bits: make the figures folder impossible to create instead,
        // which fails the same way.
        std::fs::remove_file(exp.join("probe")).unwrap();
        std::fs::set_permissions(&exp, std::fs::Permissions::from_mode(0o755)).unwrap();
        write(
            &exp.join("report_figures"),
            "a file where the folder should be",
        );
        println!("running as root: a file named report_figures stands in for a read-only folder");
    }
    let out = report(&[&exp]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stdout.contains("fold Test50_50_Partitions2_1: best epoch 2"),
        "{stdout}"
    );
    assert!(
        stderr.contains("report.html could not be written into") && stderr.contains("--output DIR"),
        "{stderr}"
    );
    let elsewhere = dir.path().join("elsewhere");
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .arg("report")
        .arg(&exp)
        .arg("--output")
        .arg(&elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(elsewhere.join("report.html").is_file());
    assert!(elsewhere
        .join("report_figures/loss_Test50_50_Partitions2_0.png")
        .is_file());
    std::fs::set_permissions(&exp, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The real worker on the Synthetic dataset with the Projector opt-in, then `report`: the
/// report's mean ± SEM over folds on val equals the objective the run printed (computed by the
/// worker from the same records), and every fold has its Projector files.
#[test]
fn a_real_run_reports_its_objective_and_writes_projector_files() {
    worker_binary();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--experiment_name", "pj", "--root_experiment_folder"])
        .arg(dir.path())
        .args(["--num_epochs_train", "1", "--iterations_per_epoch", "5"])
        .args(["--num_training_sets", "2", "--device", "cpu"])
        .args(["--save_embeddings_for_projector", "20"])
        .args([
            "--eval_size_of_tsne",
            "30",
            "--save_retrieval_grid",
            "{queries: 3}",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // "objective mean_average_precision_at_r = 0.0318 ± 0.0031 (SEM)"
    let objective = stdout
        .lines()
        .find_map(|l| l.strip_prefix("objective mean_average_precision_at_r = "))
        .unwrap_or_else(|| panic!("no objective line:\n{stdout}"));
    let (mean, sem) = objective
        .trim_end_matches(" (SEM)")
        .split_once(" ± ")
        .unwrap();
    let exp = dir.path().join("pj");
    let out = report(&[&exp]);
    let (summary, stderr) = text(&out);
    assert!(out.status.success(), "{summary}\n{stderr}");
    let val = summary
        .split("val: mean ± SEM over 2 fold(s)")
        .nth(1)
        .unwrap();
    assert!(
        val.contains(&format!(
            "mean_average_precision_at_r          {mean} ± {sem}"
        )),
        "{summary}\nrun: {objective}"
    );
    let mut folds = 0;
    for entry in std::fs::read_dir(&exp).unwrap().flatten() {
        let tb = entry.path().join("tensorboard_logs");
        if !tb.is_dir() {
            continue;
        }
        folds += 1;
        let config = std::fs::read_to_string(tb.join("projector_config.pbtxt")).unwrap();
        for split in ["train", "val", "test"] {
            assert!(
                config.contains(&format!("tensor_name: \"{split}\"")),
                "{config}"
            );
            let rows = std::fs::read_to_string(tb.join(format!("{split}_embeddings.tsv"))).unwrap();
            assert_eq!(rows.lines().count(), 20);
        }
        // Synthetic data has no images: no sprite, no grid picture, but the grid's table and the
        // t-SNE map of the last evaluated split (val: test is not evaluated here).
        assert!(!config.contains("sprite"), "{config}");
        let vis = entry.path().join("visualisations");
        let grid = std::fs::read_to_string(vis.join("retrieval_val.csv")).unwrap();
        assert_eq!(grid.lines().count(), 4, "{grid}");
        assert!(!vis.join("retrieval_val.png").exists());
        let map = std::fs::read_to_string(vis.join("tsne_val.csv")).unwrap();
        assert_eq!(map.lines().count(), 31, "{map}");
        let stem = entry.file_name().to_string_lossy().into_owned();
        assert!(exp
            .join(format!("report_figures/tsne_val_{stem}.svg"))
            .is_file());
    }
    assert_eq!(folds, 2);
    check_pages_in_chromium(&[&exp.join("report.html")]);
}
