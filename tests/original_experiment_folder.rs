//! The original tool's own experiment folders run: a `configs/` folder written the way
//! powerful-benchmarker 0.9.25 saves it for its default experiment (CUB200, a BN-Inception trunk
//! with `pretrained: imagenet`, RMSprop, ContrastiveLoss, the 227-pixel transforms), reproduced with
//! `metricbench run --reproduce_results` on a tiny CUB-200-2011 layout, with BN-Inception weights
//! placed in a PyTorch hub cache under the file name the original downloads. This is how a user
//! re-runs a published config (docs/experiments.md).
//!
//! The fixture (JPEGs by PIL, weights by pretrainedmodels and torch.save in the legacy format of the
//! published file) comes from the Python reference environment (`METRICBENCH_PYREF`, else
//! scripts/setup-pyref.sh); without it the test says so and skips.

mod common;
use common::{text, worker_binary};

use metricbench::study::report::read_csv_rows;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cub200_bninception.py"
);
const HUB_FILE: &str = "bn_inception-52deb4733.pth";

/// The saved configs of the original's default experiment, one file per category, as its
/// `yaml.dump(..., default_flow_style=False, sort_keys=False)` writes them (0.9.25: `splits_to_eval`
/// in config_general, the list of meta testing methods, `eval_primary_metric`, the accuracy
/// calculator, and `config_foldernames.yaml` beside the categories).
const ORIGINAL_CONFIGS: [(&str, &str); 7] = [
    (
        "config_general",
        "training_method: MetricLossOnly
testing_method: GlobalEmbeddingSpaceTester
meta_testing_method:
- meta_SeparateEmbeddings
- meta_ConcatenateEmbeddings
dataset:
  CUB200: null
splits_to_eval:
- val
num_epochs_train: 1000
iterations_per_epoch: 100
save_interval: 2
special_split_scheme_name: null
test_size: 0.5
test_start_idx: 0.5
num_training_partitions: 4
num_training_sets: 4
label_hierarchy_level: 0
dataloader_num_workers: 2
check_untrained_accuracy: true
skip_eval_if_already_done: true
skip_meta_eval_if_already_done: true
patience: 9
",
    ),
    (
        "config_models",
        "models:
  trunk:
    bninception:
      pretrained: imagenet
  embedder:
    MLP:
      layer_sizes:
      - 128
batch_size: 32
freeze_batchnorm: true
",
    ),
    (
        "config_optimizers",
        "optimizers:
  trunk_optimizer:
    RMSprop:
      lr: 1.0e-06
      weight_decay: 0.0001
      momentum: 0.9
  embedder_optimizer:
    RMSprop:
      lr: 1.0e-06
      weight_decay: 0.0001
      momentum: 0.9
",
    ),
    (
        "config_loss_and_miners",
        "loss_funcs:
  metric_loss:
    ContrastiveLoss: null
sampler:
  MPerClassSampler:
    m: 4
mining_funcs: {}
",
    ),
    (
        "config_transforms",
        "transforms:
  train:
    Resize:
      size: 256
    RandomResizedCrop:
      scale: 0.16 1
      ratio: 0.75 1.33
      size: 227
    RandomHorizontalFlip:
      p: 0.5
  eval:
    Resize:
      size: 256
    CenterCrop:
      size: 227
",
    ),
    (
        "config_eval",
        "eval_reference_set: compared_to_self
eval_normalize_embeddings: true
eval_use_trunk_output: false
eval_batch_size: 32
eval_primary_metric: mean_average_precision_at_r
eval_dataloader_num_workers: 2
eval_pca: null
eval_accuracy_calculator:
  AccuracyCalculator: null
",
    ),
    (
        "config_foldernames",
        "config_foldernames:
- config_eval
- config_general
- config_loss_and_miners
- config_models
- config_optimizers
- config_transforms
",
    ),
];

/// The Python reference interpreter, or `None` (with a message) when it is unavailable.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("METRICBENCH_PYREF").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup-pyref.sh");
    let out = Command::new("bash").arg(&script).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let p = PathBuf::from(text.lines().last()?.trim());
    (out.status.success() && p.is_file()).then_some(p)
}

/// `metricbench run --reproduce_results <published>` into `<root>/<name>`, with tiny settings: one
/// fold of the four, one epoch of two iterations, batches of 8.
fn reproduce(root: &Path, name: &str, published: &Path, data: &Path, torch_home: &Path) -> Output {
    worker_binary();
    Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--experiment_name", name, "--root_experiment_folder"])
        .arg(root)
        .arg("--reproduce_results")
        .arg(published)
        .arg("--dataset_root")
        .arg(data)
        .arg("--pytorch_home")
        .arg(torch_home)
        .args([
            "--num_training_sets",
            "1",
            "--num_epochs_train",
            "1",
            "--iterations_per_epoch",
            "2",
            "--batch_size",
            "8",
            "--eval_batch_size",
            "8",
            "--dataloader_num_workers",
            "1",
            "--eval_dataloader_num_workers",
            "1",
            "--device",
            "cpu",
        ])
        .output()
        .expect("metricbench runs")
}

#[test]
fn an_experiment_folder_of_the_original_reproduces_with_bninception_from_the_hub_cache() {
    let Some(py) = python() else {
        println!(
            "SKIPPED: the Python reference environment (scripts/setup-pyref.sh, or \
             METRICBENCH_PYREF) is unavailable, and it makes this test's fixture"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&py)
        .args([FIXTURE, "make"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let data = dir.path().join("data");
    let torch_home = dir.path().join("torch_home");
    let weights = torch_home.join("hub/checkpoints").join(HUB_FILE);
    assert!(weights.is_file());

    // The published experiment: its configs folder alone, as downloaded.
    let published = dir.path().join("published/cub200_bninception");
    std::fs::create_dir_all(published.join("configs")).unwrap();
    for (category, contents) in ORIGINAL_CONFIGS {
        std::fs::write(
            published.join("configs").join(format!("{category}.yaml")),
            contents,
        )
        .unwrap();
    }
    // It was resumed once with more epochs: the original then wrote the changed key into a diff
    // folder named after every fold's epochs, and published folders carry it without the folds.
    let diff = published.join("configs/resume_training_config_diffs_1_1_1_1");
    std::fs::create_dir_all(&diff).unwrap();
    std::fs::write(diff.join("config_general.yaml"), "num_epochs_train: 2\n").unwrap();
    let root = dir.path().join("experiments");

    // Without the weights in the hub cache: an error naming the file and where it was looked for.
    let empty_home = dir.path().join("empty_torch_home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let out = reproduce(&root, "no_weights", &published, &data, &empty_home);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(HUB_FILE)
            && all.contains(&empty_home.join("hub/checkpoints").display().to_string()),
        "{all}"
    );

    // With them: trains and evaluates, and writes the records.
    let out = reproduce(&root, "reproduced", &published, &data, &torch_home);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let experiment = root.join("reproduced");
    let log = std::fs::read_to_string(experiment.join("logs/worker_stderr.log")).unwrap();
    assert!(
        log.contains("CUB200: 32 images, 16 classes")
            && log.contains("in the bninception convention"),
        "{log}"
    );
    // The original's configs were taken over, with this command line's values.
    let models = std::fs::read_to_string(experiment.join("configs/config_models.yaml")).unwrap();
    assert!(
        models.contains("bninception") && models.contains("pretrained: imagenet"),
        "{models}"
    );
    let general = std::fs::read_to_string(experiment.join("configs/config_general.yaml")).unwrap();
    assert!(general.contains("num_epochs_train: 1\n"), "{general}");
    // Trained to epoch 1, then resumed with the diff (2 epochs), which the new folder records.
    let copied =
        experiment.join("configs/resume_training_config_diffs_1_1_1_1/config_general.yaml");
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap(),
        "num_epochs_train: 2\n"
    );

    // The default split's first fold: validation rows for the untrained trunk (-1), the untrained
    // embedder (0) and the two trained epochs; one loss row per iteration.
    let fold = experiment.join("Test50_50_Partitions4_0");
    let val = fold.join(
        "saved_csvs/accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_VAL.csv",
    );
    let rows = read_csv_rows(&val).unwrap_or_else(|e| panic!("{}: {e:#}", val.display()));
    let epochs: Vec<&str> = rows.iter().map(|r| r["epoch"].as_str()).collect();
    assert_eq!(epochs, ["-1", "0", "1", "2"], "{rows:?}");
    for r in &rows {
        let v: f64 = r["mean_average_precision_at_r"].parse().unwrap();
        assert!((0.0..=1.0).contains(&v), "{r:?}");
    }
    let losses = read_csv_rows(&fold.join("saved_csvs/loss_histories.csv")).unwrap();
    assert_eq!(losses.len(), 4, "{losses:?}");
    assert!(experiment.join("meta_logs/saved_csvs").is_dir());

    // The trained trunk still holds the file's BatchNorm statistics (freeze_batchnorm: true): the
    // weights came from the hub cache, not from a random initialisation.
    let trunk = fold.join("saved_models/trunk_2.safetensors");
    assert!(trunk.is_file(), "no {}", trunk.display());
    let out = Command::new(&py)
        .args([FIXTURE, "check"])
        .arg(&weights)
        .arg(&trunk)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn folders_of_the_later_config_format_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let published = dir.path().join("published");
    std::fs::create_dir_all(published.join("configs")).unwrap();
    // 0.9.26+: the dataset and its split manager in config_dataset.
    std::fs::write(
        published.join("configs/config_general.yaml"),
        "num_epochs_train: 1000\nsave_interval: 2\npatience: 9\n",
    )
    .unwrap();
    std::fs::write(
        published.join("configs/config_dataset.yaml"),
        "dataset:\n  CUB200: null\nsplits_to_eval:\n- val\nsplit_manager:\n  \
         ClassDisjointSplitManager:\n    test_size: 0.5\n",
    )
    .unwrap();
    let empty = dir.path().join("empty");
    let out = reproduce(
        &dir.path().join("experiments"),
        "later",
        &published,
        &empty,
        &empty,
    );
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("config_dataset.yaml") && all.contains("0.9.26 or later"),
        "{all}"
    );
}
