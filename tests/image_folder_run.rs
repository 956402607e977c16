//! End to end: `metricbench run` on an image folder of generated PNGs, through the whole image
//! pipeline (decode, train and eval transforms, prefetching workers) into the MLP trunk over
//! flattened pixels; plus the errors a broken image folder gives.

mod common;
use common::{check_pages_in_chromium, text, worker_binary};

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
    worker_binary();
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

fn pixel(img: &image::RgbImage, x: usize, y: usize) -> [u8; 3] {
    img.get_pixel(x as u32, y as u32).0
}

/// The pictures of a trained fold on an image dataset: the Projector's sprite (read back by
/// TensorBoard's plugin when the Python reference is there), the retrieval grid (its frames agree
/// with its table) and the t-SNE map, all shown by `metricbench report` and loaded in Chromium.
#[test]
fn pictures_of_an_image_run_reach_the_report() {
    let data = tempfile::tempdir().unwrap();
    image_folder(data.path(), 16, 6);
    let experiments = tempfile::tempdir().unwrap();
    let out = run(
        experiments.path(),
        data.path(),
        &[
            "--num_epochs_train",
            "1",
            "--save_embeddings_for_projector",
            "12",
            "--save_retrieval_grid",
            "{queries: 4, k: 3}",
            "--eval_size_of_tsne",
            "40",
            "--splits_to_eval",
            "[val, test]",
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let exp = experiments.path().join("images");
    let fold = std::fs::read_dir(&exp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("visualisations").is_dir())
        .unwrap_or_else(|| panic!("no fold with visualisations in {}", exp.display()));

    // Sprite: 12 samples, 4 per row of 64-pixel thumbnails.
    let tb = fold.join("tensorboard_logs");
    let config = std::fs::read_to_string(tb.join("projector_config.pbtxt")).unwrap();
    assert!(
        config.contains(
            "  sprite {\n    image_path: \"test_sprite.png\"\n    single_image_dim: 64\n    \
             single_image_dim: 64\n  }\n"
        ),
        "{config}"
    );
    let sprite = image::open(tb.join("test_sprite.png")).unwrap().into_rgb8();
    assert_eq!(sprite.dimensions(), (256, 192));
    if let Some(python) = std::env::var_os("METRICBENCH_PYREF") {
        let read = Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/read_projector.py"))
            .arg(&tb)
            .output()
            .unwrap();
        let said = text(&read);
        assert!(read.status.success(), "{said}");
        let line = said
            .lines()
            .find(|l| l.starts_with("sprite test size=256,192 thumbnail=64,64 colours="))
            .unwrap_or_else(|| panic!("{said}"));
        assert_eq!(line.split('|').count(), 12, "{line}");
    }

    // Retrieval grid: 4 rows of a query and 3 results; frames green or red as the table says.
    let vis = fold.join("visualisations");
    let csv = std::fs::read_to_string(vis.join("retrieval_test.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    let grid = image::open(vis.join("retrieval_test.png"))
        .unwrap()
        .into_rgb8();
    // Tiles of 96 pixels in 4-pixel frames, 6 pixels apart, 18 more after the query.
    let (cell, gap) = (104, 6);
    assert_eq!(
        grid.dimensions(),
        (
            (gap + cell + 18 + 3 * (cell + gap)) as u32,
            (gap + 4 * (cell + gap)) as u32
        )
    );
    let mut aps = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let cells: Vec<&str> = row.split(',').collect();
        aps.push(cells[4].parse::<f64>().unwrap());
        let y = gap + r * (cell + gap) + 1;
        assert_eq!(
            pixel(&grid, gap + 1, y),
            [90, 90, 90],
            "query frame of row {r}"
        );
        let correct: Vec<&str> = cells[6].split(' ').collect();
        assert_eq!(correct.len(), 3, "{row}");
        for (c, flag) in correct.iter().enumerate() {
            let x = gap + cell + 18 + c * (cell + gap) + 1;
            let want = if *flag == "1" {
                [44, 160, 44]
            } else {
                [214, 39, 40]
            };
            assert_eq!(pixel(&grid, x, y), want, "row {r} result {c}: {row}");
        }
    }
    assert!(aps.windows(2).all(|w| w[0] <= w[1]), "worst first: {aps:?}");

    // t-SNE: 40 of the 48 test samples.
    let map = std::fs::read_to_string(vis.join("tsne_test.csv")).unwrap();
    assert!(map.starts_with("x,y,label,index\n"), "{map}");
    assert_eq!(map.lines().count(), 41);

    let report = Command::new(env!("CARGO_BIN_EXE_metricbench"))
        .arg("report")
        .arg(&exp)
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", text(&report));
    let stem = fold.file_name().unwrap().to_string_lossy().into_owned();
    let html = std::fs::read_to_string(exp.join("report.html")).unwrap();
    for figure in [
        format!("report_figures/retrieval_test_{stem}.png"),
        format!("report_figures/tsne_test_{stem}.svg"),
        format!("report_figures/tsne_test_{stem}.png"),
    ] {
        assert!(html.contains(&figure), "{figure} not in the page");
        assert!(exp.join(&figure).is_file(), "{figure} missing");
    }
    assert!(html.contains("Worst-served queries on test"));
    check_pages_in_chromium(&[&exp.join("report.html")]);
}
