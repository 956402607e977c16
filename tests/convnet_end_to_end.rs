//! End to end with an image trunk: `metricbench run` trains the `ConvNet` trunk on a generated image
//! folder whose classes differ by shape and colour (on noisy backgrounds, at random positions and
//! sizes), and validation MAP@R after training must beat the untrained network's (epoch 0), read
//! from the fold's records; then a 3-trial `metricbench tune` on the same data completes and
//! writes its report.

mod common;
use common::{text, worker_binary};

use metricbench::study::report::read_csv_rows;
use metricbench::study::storage::{StudyStore, TrialState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SIZE: u32 = 32;
const CLASSES: usize = 16;
const PER_CLASS: usize = 10;

/// A small deterministic generator (PCG-style LCG), so the data is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// Is pixel (x, y) inside shape `kind` of half-size `r` centred at (cx, cy)?
fn inside(kind: usize, x: i64, y: i64, cx: i64, cy: i64, r: i64) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    match kind {
        // Filled square.
        0 => dx.abs() <= r && dy.abs() <= r,
        // Filled disc.
        1 => dx * dx + dy * dy <= r * r,
        // Ring.
        2 => {
            let d = dx * dx + dy * dy;
            d <= r * r && d >= (r - 3) * (r - 3)
        }
        // Plus sign.
        _ => (dx.abs() <= 2 && dy.abs() <= r) || (dy.abs() <= 2 && dx.abs() <= r),
    }
}

/// `<root>/class_NN/i.png`: class `c` is shape `c % 4` in colour `c / 4`, each image at its own
/// position and size over a background of random colour with per-pixel noise.
fn shapes_folder(root: &Path) {
    const COLOURS: [[i64; 3]; 4] = [[220, 40, 40], [40, 200, 60], [50, 70, 230], [230, 210, 40]];
    let mut rng = Lcg(2026);
    for c in 0..CLASSES {
        let dir = root.join(format!("class_{c:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (kind, colour) = (c % 4, COLOURS[c / 4]);
        for i in 0..PER_CLASS {
            let r = rng.range(7, 11);
            let (cx, cy) = (
                rng.range(r, SIZE as i64 - 1 - r),
                rng.range(r, SIZE as i64 - 1 - r),
            );
            let background = [rng.range(60, 190), rng.range(60, 190), rng.range(60, 190)];
            let mut pixels = Vec::with_capacity((SIZE * SIZE * 3) as usize);
            for y in 0..SIZE as i64 {
                for x in 0..SIZE as i64 {
                    let base = if inside(kind, x, y, cx, cy, r) {
                        colour
                    } else {
                        background
                    };
                    for v in base {
                        pixels.push((v + rng.range(-30, 30)).clamp(0, 255) as u8);
                    }
                }
            }
            image::RgbImage::from_raw(SIZE, SIZE, pixels)
                .unwrap()
                .save(dir.join(format!("{i}.png")))
                .unwrap();
        }
    }
}

/// The flags both commands share: the image folder, the ConvNet trunk, augmentation for 32-pixel
/// images, and a split with six validation classes (test: 4 classes; the other 12 in 2 partitions).
fn common_flags(data: &Path) -> Vec<String> {
    let mut v: Vec<String> = vec!["--dataset_root".into(), data.display().to_string()];
    v.extend(
        [
            "--dataset~OVERRIDE~",
            "{ImageFolder: null}",
            "--models~OVERRIDE~",
            "{trunk: {ConvNet: {channels: [16, 32, 64]}}, embedder: {MLP: {layer_sizes: [32]}}}",
            "--freeze_batchnorm",
            "false",
            "--transforms~OVERRIDE~",
            "{train: {RandomResizedCrop: {size: 32, scale: [0.7, 1]}, \
             RandomHorizontalFlip: {p: 0.5}}, eval: {CenterCrop: {size: 32}}}",
            "--test_size",
            "0.25",
            "--num_training_partitions",
            "2",
            "--num_training_sets",
            "1",
            // MPerClassSampler's m = 4 samples of each of the 6 training classes.
            "--batch_size",
            "24",
            "--eval_batch_size",
            "64",
            "--iterations_per_epoch",
            "10",
            "--save_interval",
            "1",
            "--patience",
            "null",
            "--dataloader_num_workers",
            "1",
            "--device",
            "cpu",
        ]
        .map(String::from),
    );
    v
}

fn metricbench(args: &[String]) -> Output {
    worker_binary();
    Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("metricbench runs")
}

/// The fold's validation table: epoch -> MAP@R.
fn val_map_at_r(fold: &Path) -> BTreeMap<i64, f64> {
    let csv = fold.join(
        "saved_csvs/accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_VAL.csv",
    );
    read_csv_rows(&csv)
        .unwrap_or_else(|e| panic!("{}: {e:#}", csv.display()))
        .iter()
        .map(|row| {
            (
                row["epoch"].parse().unwrap(),
                row["mean_average_precision_at_r"].parse().unwrap(),
            )
        })
        .collect()
}

fn only_fold(experiment: &Path) -> PathBuf {
    let fold = experiment.join("Test25_50_Partitions2_0");
    assert!(fold.is_dir(), "no fold folder {}", fold.display());
    fold
}

#[test]
fn convnet_training_beats_the_untrained_network_and_a_study_completes() {
    let data = tempfile::tempdir().unwrap();
    shapes_folder(data.path());
    let root = tempfile::tempdir().unwrap();

    // One run: 10 epochs of 10 iterations, evaluated after each (with lr 0 MAP@R ends below epoch
    // 0's, about 0.13; trained, about 0.24).
    let mut args: Vec<String> = [
        "run",
        "--experiment_name",
        "convnet",
        "--root_experiment_folder",
    ]
    .map(String::from)
    .to_vec();
    args.push(root.path().display().to_string());
    args.extend(common_flags(data.path()));
    args.extend(["--num_epochs_train", "10"].map(String::from));
    let out = metricbench(&args);
    assert!(out.status.success(), "{}", text(&out));
    let map = val_map_at_r(&only_fold(&root.path().join("convnet")));
    let epochs: Vec<i64> = map.keys().copied().collect();
    assert_eq!(epochs, (-1..=10).collect::<Vec<_>>(), "{map:?}");
    let (untrained, trained) = (map[&0], map[&10]);
    eprintln!("validation MAP@R by epoch: {map:?}");
    // Six unseen classes that differ by shape and colour: training on the other six must lift
    // MAP@R clearly above what the random network's features give.
    assert!(
        trained > untrained + 0.05,
        "MAP@R after training {trained} is not above epoch 0's {untrained}: {map:?}"
    );

    // A 3-trial study searching the trunk's learning rate.
    let mut args: Vec<String> = [
        "tune",
        "--experiment_name",
        "convnet_study",
        "--root_experiment_folder",
    ]
    .map(String::from)
    .to_vec();
    args.push(root.path().display().to_string());
    args.extend(common_flags(data.path()));
    args.extend(
        [
            "--num_epochs_train",
            "2",
            "--bayes_opt_iters",
            "3",
            "--optimizers~OVERRIDE~",
            "{trunk_optimizer: {Adam: {lr~LOG_BAYESIAN~: [0.0003, 0.01]}}, \
             embedder_optimizer: {Adam: {lr: 0.001}}}",
        ]
        .map(String::from),
    );
    let out = metricbench(&args);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let study = root.path().join("convnet_study");
    let trials = StudyStore::open(&study.join("study.db"))
        .unwrap()
        .trials()
        .unwrap();
    assert_eq!(trials.len(), 3, "{trials:?}");
    for t in &trials {
        assert_eq!(t.state, TrialState::Completed, "{t:?}");
        let objective = t.objective_mean.unwrap();
        assert!((0.0..=1.0).contains(&objective), "{t:?}");
        // Each trial trained the ConvNet: its fold has the epochs' validation rows.
        let map = val_map_at_r(&only_fold(&study.join(&t.name)));
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), [-1, 0, 1, 2]);
    }
    let rows = read_csv_rows(&study.join("trials.csv")).unwrap();
    assert_eq!(rows.len(), 3);
    // The report: the best trial evaluated on the test split, and the HTML page.
    let report: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(study.join("report.yaml")).unwrap()).unwrap();
    let tested = &report["test"]["summary"]["mean_average_precision_at_r"]["mean"];
    assert!(
        tested.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)),
        "{report:?}"
    );
    assert!(
        report["errors"].as_sequence().is_none_or(|e| e.is_empty()),
        "{report:?}"
    );
    let html = std::fs::read_to_string(study.join("report.html")).unwrap();
    assert!(html.contains("Best trial: convnet_study"), "{html}");
}
