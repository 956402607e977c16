//! `StanfordOnlineProducts`: `<root>/Stanford_Online_Products/Ebay_train.txt` then `Ebay_test.txt`,
//! whitespace-separated tables with the header `image_id class_id super_class_id path` (paths
//! relative to that folder). Labels are `class_id - 1`; the second label level is
//! `super_class_id - 1` (the product category, for `WithSameParentLabelTester`); the predefined
//! split is `train` = the rows of the train file, `test` = those of the test file.

use super::download::{self, Plan, Source};
use super::layout;
use super::listing::ImageListing;
use crate::errors::data_error;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const NAME: &str = "StanfordOnlineProducts";
const LAYOUT: &str = "Stanford_Online_Products/Ebay_train.txt, Ebay_test.txt and the image \
                      folders they list, e.g. Stanford_Online_Products/bicycle_final/*.JPG \
                      (as Stanford_Online_Products.zip unpacks)";

/// The published archive.
pub const ARCHIVE: Source = Source {
    url: "http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
    md5: "7f73d41a2f44250d4779881525aea32e",
};

const PLAN: [Plan; 1] = [Plan {
    source: ARCHIVE,
    unpack: true,
    done_when: "Stanford_Online_Products/Ebay_test.txt",
}];

const COLUMNS: [&str; 3] = ["class_id", "super_class_id", "path"];

/// Rows of one Ebay_*.txt file: (path, class label, super class label), labels shifted to 0.
fn read_table(folder: &Path, file: &Path) -> Result<Vec<(PathBuf, i64, i64)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .map(|(_, l)| l.split_whitespace().collect())
        .unwrap_or_default();
    let column = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            data_error(format!(
                "{}: the header must name the columns image_id class_id super_class_id path, found {:?}",
                file.display(),
                header.join(" ")
            ))
        })
    };
    let [class_col, super_col, path_col] = [
        column(COLUMNS[0])?,
        column(COLUMNS[1])?,
        column(COLUMNS[2])?,
    ];
    let mut rows = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != header.len() {
            return Err(data_error(format!(
                "{} line {}: {} fields, the header has {}",
                file.display(),
                i + 1,
                fields.len(),
                header.len()
            )));
        }
        let id = |col: usize, name: &str| -> Result<i64> {
            match fields[col].parse::<i64>() {
                Ok(v) if v >= 1 => Ok(v - 1),
                _ => Err(data_error(format!(
                    "{} line {}: {name} must be a positive integer, found {:?}",
                    file.display(),
                    i + 1,
                    fields[col]
                ))),
            }
        };
        rows.push((
            folder.join(fields[path_col]),
            id(class_col, "class_id")?,
            id(super_col, "super_class_id")?,
        ));
    }
    Ok(rows)
}

/// The images, both label levels and the predefined split under the dataset root.
pub fn list(root: &Path) -> Result<ImageListing> {
    let folder = root.join("Stanford_Online_Products");
    let train_file = layout::require(NAME, folder.join("Ebay_train.txt"), LAYOUT)?;
    let test_file = layout::require(NAME, folder.join("Ebay_test.txt"), LAYOUT)?;
    let train = read_table(&folder, &train_file)?;
    let test = read_table(&folder, &test_file)?;
    let n_train = train.len();
    let n = n_train + test.len();
    let mut files = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut super_labels = Vec::with_capacity(n);
    for (path, class, super_class) in train.into_iter().chain(test) {
        files.push(path);
        labels.push(class);
        super_labels.push(super_class);
    }
    layout::check_images_exist(NAME, "Ebay_train.txt / Ebay_test.txt", &files)?;
    Ok(ImageListing {
        name: NAME.into(),
        files,
        labels: vec![labels, super_labels],
        predefined_splits: Some(vec![
            ("train".into(), (0..n_train).collect()),
            ("test".into(), (n_train..n).collect()),
        ]),
    })
}

/// Fetches and unpacks Stanford_Online_Products.zip into the root unless the tables are there.
pub fn download(root: &Path, mirror: Option<&str>) -> Result<()> {
    let mirror = download::mirror(mirror);
    download::run(NAME, root, &PLAN, mirror.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAIN: &str = "image_id class_id super_class_id path\n\
        1 1 1 bicycle_final/111085122871_0.JPG\n\
        2 1 1 bicycle_final/111085122871_1.JPG\n\
        3 2 1 bicycle_final/111265328556_0.JPG\n\
        4 3 2 cabinet_final/110794236093_0.JPG\n";
    const TEST: &str = "image_id class_id super_class_id path\n\
        5 4 2 cabinet_final/111022016862_0.JPG\n\
        6 4 2 cabinet_final/111022016862_1.JPG\n\
        7 5 3 chair_final/111192235066_0.JPG\n";

    /// A small SOP tree; images only for the listed rows unless `skip` names one.
    fn make(root: &Path, train: &str, skip: Option<&str>) {
        let folder = root.join("Stanford_Online_Products");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("Ebay_train.txt"), train).unwrap();
        std::fs::write(folder.join("Ebay_test.txt"), TEST).unwrap();
        for line in train.lines().chain(TEST.lines()).skip(1) {
            let path = line.split_whitespace().nth(3).unwrap_or("");
            if path.is_empty() || path == "path" || Some(path) == skip {
                continue;
            }
            let p = folder.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }

    #[test]
    fn labels_super_labels_and_the_predefined_split() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), TRAIN, None);
        let listing = list(dir.path()).unwrap();
        assert_eq!(
            listing.labels,
            vec![vec![0, 0, 1, 2, 3, 3, 4], vec![0, 0, 0, 1, 1, 1, 2]]
        );
        assert_eq!(
            listing.predefined_splits,
            Some(vec![
                ("train".to_string(), vec![0, 1, 2, 3]),
                ("test".to_string(), vec![4, 5, 6])
            ])
        );
        assert_eq!(
            listing.files[4],
            dir.path()
                .join("Stanford_Online_Products/cabinet_final/111022016862_0.JPG")
        );
        assert!(super::super::summary::count_warning(&listing)
            .unwrap()
            .contains("has 7 images, the published dataset has 120,053"));
    }

    #[test]
    fn bad_tables_and_missing_images_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), TRAIN, Some("bicycle_final/111265328556_0.JPG"));
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains("1 image(s) that do not exist (of 7)")
                && text.contains("111265328556_0.JPG"),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        make(
            dir.path(),
            &TRAIN.replace("4 3 2 cabinet", "4 x 2 cabinet"),
            None,
        );
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains(
                "Ebay_train.txt line 5: class_id must be a positive integer, found \"x\""
            ),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), &TRAIN.replace("super_class_id", "super"), None);
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(text.contains("the header must name the columns"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains(
                &dir.path()
                    .join("Stanford_Online_Products/Ebay_train.txt")
                    .display()
                    .to_string()
            ),
            "{text}"
        );
    }
}
