//! End to end: `metricbench run` on an image folder of generated PNGs, through the whole image
//! pipeline (decode, train and eval transforms, prefetching workers) into the MLP trunk over
//! flattened pixels; plus the errors a broken image folder gives.

use image::{ImageBuffer, Rgb};
use std::path::Path;
use std::process::{Command, Output};

/// `classes` folders of `per_class` 40x30 images; each class has its own colour and stripe
/// period, with per-image noise, so classes are learnable from pixels.
fn image_folder(root: &Path, classes: usize, per_class: usize) {
    let mut state = 12345u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 40) as i32 - 20
    };
    for c in 0..classes {
        let dir = root.join(format!("class_{c:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = ImageBuffer::from_fn(40, 30, |x, y| {
                let stripe = if (x as usize / (2 + c)).is_multiple_of(2) {
                    200
                } else {
                    40
                };
                let base = [stripe, (c * 255 / classes) as i32, (y * 8) as i32];
                Rgb(base.map(|v| (v + noise()).clamp(0, 255) as u8))
            });
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

fn run(experiments: &Path, data: &Path, extra: &[&str]) -> Output {
    let worker = Path::new(env!("CARGO_BIN_EXE_metricbench")).with_file_name("metricbench-worker");
    assert!(
        worker.is_file(),
        "{} is missing: build the workspace first (scripts/test.sh does)",
        worker.display()
    );
    Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "--experiment_name",
            "images",
            "--root_experiment_folder",
        ])
        .arg(experiments)
        .arg("--dataset_root")
        .arg(data)
        .args([
            "--dataset~OVERRIDE~",
            "{ImageFolder: null}",
            "--transforms~OVERRIDE~",
            "{train: {Resize: {size: 20}, RandomResizedCrop: {size: 16, scale: \"0.5 1\"}, \
             RandomHorizontalFlip: {p: 0.5}}, eval: {Resize: {size: 20}, CenterCrop: {size: 16}}}",
            "--num_training_sets",
            "1",
            "--batch_size",
            "16",
            "--iterations_per_epoch",
            "5",
            "--device",
            "cpu",
        ])
        .args(extra)
        .output()
        .expect("metricbench runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn run_trains_on_an_image_folder() {
    let data = tempfile::tempdir().unwrap();
    // 16 classes: 8 for test, and 2 in each of the 4 cross-validation partitions.
    image_folder(data.path(), 16, 6);
    let experiments = tempfile::tempdir().unwrap();
    let out = run(
        experiments.path(),
        data.path(),
        &["--num_epochs_train", "2"],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // The worker's log (its stderr) opens with the dataset's summary.
    let log = std::fs::read_to_string(experiments.path().join("images/logs/worker_stderr.log"))
        .unwrap_or_default();
    assert!(
        log.contains("ImageFolder: 96 images, 16 classes (smallest: label 0 with 6 images, largest: label 0 with 6 images); 16x16 inputs in the imagenet convention"),
        "{log}"
    );
    assert!(all.contains("epoch 2 val:"), "{all}");
    assert!(
        all.contains("objective mean_average_precision_at_r"),
        "{all}"
    );
}

#[test]
fn broken_image_folders_give_clear_errors() {
    let experiments = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    // Missing folder: the error names the expected path and layout.
    let missing = data.path().join("nowhere");
    let out = run(experiments.path(), &missing, &["--num_epochs_train", "1"]);
    let all = text(&out);
    assert!(!out.status.success());
    assert!(
        all.contains(&missing.display().to_string()) && all.contains("<class name>"),
        "{all}"
    );
    // More than 1% of the files not images: a data error counting them.
    image_folder(data.path(), 4, 10);
    std::fs::write(data.path().join("class_00/broken.png"), b"not an image").unwrap();
    let out = run(
        experiments.path(),
        data.path(),
        &["--num_epochs_train", "1"],
    );
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains("1 of 41 image files"), "{all}");
}
